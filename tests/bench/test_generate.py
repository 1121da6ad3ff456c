"""The benchmark captures on small sizes: determinism, counts, and the
detector's verdicts on the mixed traffic."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dpkt
import pytest

from detector.bench import mining
from detector.bench.generate import (
    BASE_TIME_NS,
    EMPTY_NAME,
    EXPECTED_NAME,
    FLOOD_NAME,
    FLOOD_PORTS,
    FLOOD_TARGET,
    MIXED_NAME,
    MIXED_PACKETS_PER_SECOND,
    POOLS,
    generate,
    merge_conversations,
    write_flood,
    write_mixed,
)
from detector.model import ACK, SYN

PACKETS = 20_000
FLOOD_FLOWS = 5_000
MINING_FLOWS = 300
OUTPUT_NAMES = (MIXED_NAME, EXPECTED_NAME, FLOOD_NAME, EMPTY_NAME)


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bench")
    generate(folder, packets=PACKETS, flood_flows=FLOOD_FLOWS)
    return folder


def read_frames(path: Path) -> list[tuple[float, bytes]]:
    with path.open("rb") as stream:
        reader = dpkt.pcap.Reader(stream)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        return [(timestamp, bytes(frame)) for timestamp, frame in reader]


def expected_flows(folder: Path) -> list[dict[str, str]]:
    document = json.loads((folder / EXPECTED_NAME).read_text(encoding="utf-8"))
    flows: list[dict[str, str]] = document["mining_flows"]
    return flows


def transport_of(frame: bytes) -> tuple[object, object]:
    ethernet = dpkt.ethernet.Ethernet(frame)
    ip = ethernet.data
    return ip, ip.data


def test_generation_is_deterministic(captures: Path, tmp_path: Path) -> None:
    generate(tmp_path, packets=PACKETS, flood_flows=FLOOD_FLOWS)
    for name in OUTPUT_NAMES:
        first = (captures / name).read_bytes()
        second = (tmp_path / name).read_bytes()
        assert first == second, name


def test_mixed_packet_count(captures: Path) -> None:
    frames = read_frames(captures / MIXED_NAME)
    assert len(frames) == PACKETS
    document = json.loads((captures / EXPECTED_NAME).read_text(encoding="utf-8"))
    assert document["packets"] == PACKETS
    assert sum(document["packets_by_kind"].values()) == PACKETS
    assert document["frame_bytes"] == sum(len(frame) for _, frame in frames)


def test_mixed_timestamps_in_order(captures: Path) -> None:
    times = [timestamp for timestamp, _ in read_frames(captures / MIXED_NAME)]
    assert times == sorted(times)


def test_mixed_has_every_kind(captures: Path) -> None:
    frames = read_frames(captures / MIXED_NAME)
    ipv6 = vlan = udp = 0
    for _, frame in frames:
        ethernet = dpkt.ethernet.Ethernet(frame)
        if getattr(ethernet, "vlan_tags", None):
            vlan += 1
        if isinstance(ethernet.data, dpkt.ip6.IP6):
            ipv6 += 1
        if isinstance(ethernet.data.data, dpkt.udp.UDP):
            udp += 1
    assert ipv6 > 0
    assert vlan > 0
    assert udp > 0
    document = json.loads((captures / EXPECTED_NAME).read_text(encoding="utf-8"))
    assert set(document["packets_by_kind"]) == {"dns", "tls", "http", "ssh", "mining"}


def test_each_tcp_flow_opens_once(captures: Path) -> None:
    # A 5-tuple used twice would merge two conversations into one flow.
    opens: Counter[tuple[bytes, int, bytes, int]] = Counter()
    for _, frame in read_frames(captures / MIXED_NAME):
        ip, transport = transport_of(frame)
        if isinstance(transport, dpkt.tcp.TCP) and transport.flags == SYN:
            opens[(ip.src, transport.sport, ip.dst, transport.dport)] += 1
    assert opens
    assert max(opens.values()) == 1


def test_expected_mining_flows(captures: Path) -> None:
    flows = expected_flows(captures)
    assert len(flows) == MINING_FLOWS
    dialects = Counter(flow["dialect"] for flow in flows)
    assert set(dialects) == set(mining.DIALECTS)
    assert min(dialects.values()) == MINING_FLOWS // len(mining.DIALECTS)
    pool_addresses = {str(pool) for pools in POOLS.values() for pool in pools}
    for flow in flows:
        assert flow["client"].startswith("172.17.")
        assert flow["server"] in pool_addresses
    assert len({flow["client"] for flow in flows}) == MINING_FLOWS


def test_mining_flows_spread_through_file(captures: Path) -> None:
    # Background conversations start at a steady packet rate, so the mining
    # flows should open from the start to the end of that span.
    clients = {flow["client"] for flow in expected_flows(captures)}
    span = PACKETS / MIXED_PACKETS_PER_SECOND
    start = BASE_TIME_NS / 1e9
    opened: list[float] = []
    for timestamp, frame in read_frames(captures / MIXED_NAME):
        ip, transport = transport_of(frame)
        if not isinstance(ip, dpkt.ip.IP) or not isinstance(transport, dpkt.tcp.TCP):
            continue
        if transport.flags != SYN:
            continue
        source = ".".join(str(byte) for byte in ip.src) + f":{transport.sport}"
        if source in clients:
            opened.append(timestamp - start)
    assert len(opened) == MINING_FLOWS
    assert opened[0] < span * 0.1
    assert opened[-1] > span * 0.8


def test_detector_finds_exactly_the_mining_flows(captures: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "detector",
            "scan",
            "--format",
            "jsonl",
            "--quiet",
            str(captures / MIXED_NAME),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 1, completed.stderr
    reported = Counter()
    for line in completed.stdout.splitlines():
        document = json.loads(line)
        source = document["source"]
        destination = document["destination"]
        reported[
            (
                f"{source['ip']}:{source['port']}",
                f"{destination['ip']}:{destination['port']}",
                document["mining"]["dialect"],
            )
        ] += 1
    expected = Counter(
        (flow["client"], flow["server"], flow["dialect"])
        for flow in expected_flows(captures)
    )
    missing = expected - reported
    unexpected = reported - expected
    assert not missing, sorted(missing)[:5]
    assert not unexpected, sorted(unexpected)[:5]


def test_flood_flows_are_distinct(captures: Path) -> None:
    frames = read_frames(captures / FLOOD_NAME)
    assert len(frames) == FLOOD_FLOWS
    flows = set()
    ports = set()
    for _, frame in frames:
        ip, transport = transport_of(frame)
        assert isinstance(transport, dpkt.tcp.TCP)
        assert transport.flags == SYN
        assert not transport.flags & ACK
        assert ".".join(str(byte) for byte in ip.dst) == FLOOD_TARGET
        flows.add((ip.src, transport.sport, ip.dst, transport.dport))
        ports.add(transport.dport)
    assert len(flows) == FLOOD_FLOWS
    assert ports == set(FLOOD_PORTS)


def test_empty_capture_has_no_packets(captures: Path) -> None:
    assert read_frames(captures / EMPTY_NAME) == []


def test_too_few_packets_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no room"):
        write_mixed(tmp_path / "small.pcap", packets=100, mining_flows=10)


def test_flood_size_bounds(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flood flows"):
        write_flood(tmp_path / "flood.pcap", flows=0)


def test_small_capture_exact_count(tmp_path: Path) -> None:
    # Sizes that leave odd remainders still end on the exact count.
    for packets in (1_001, 1_002, 2_345):
        summary = write_mixed(tmp_path / "m.pcap", packets=packets, mining_flows=3)
        assert summary.packets == packets
        assert len(read_frames(tmp_path / "m.pcap")) == packets


def test_merge_orders_by_time() -> None:
    conversations = [
        [(0, b"a0"), (50, b"a1")],
        [],
        [(10, b"b0"), (20, b"b1"), (60, b"b2")],
        [(10, b"c0")],
    ]
    merged = list(merge_conversations(iter(conversations)))
    assert [frame for _, frame in merged] == [
        b"a0",
        b"b0",
        b"c0",
        b"b1",
        b"a1",
        b"b2",
    ]
