"""The scanner fed batch by batch, as a live watch feeds it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from detector.capture.batch import PacketBatch, open_batches
from detector.engine.context import InspectionContext
from detector.flows.batch import BatchFlowTable, key_bytes, key_text
from detector.model import Detection, FlowKey
from detector.scan import CaptureScanner, scan_file

PCAPS = Path(__file__).resolve().parents[2] / "pcaps"


def feed_capture(
    path: Path, signatures, context: InspectionContext | None = None
) -> tuple[list[Detection], list[Detection], CaptureScanner]:
    early: list[Detection] = []
    final: list[Detection] = []
    scanner = CaptureScanner(
        signatures,
        "veth-test",
        on_detection=final.append,
        on_mining=early.append,
        context=context,
        keep_detections=False,
    )
    for batch in open_batches(path):
        scanner.feed(batch)
    scanner.close()
    return early, final, scanner


@pytest.mark.parametrize(
    "name",
    ["monero-xmrig.pcap", "stratum-v1-cgminer.pcap", "xmrig-donate-tls.pcap"],
)
def test_mining_flow_reported_while_open(name, signatures) -> None:
    early, final, scanner = feed_capture(PCAPS / name, signatures)
    assert early, "no flow was reported while open"
    assert {d.flow for d in early} <= {d.flow for d in final}
    for detection in early:
        ended = next(d for d in final if d.flow == detection.flow)
        assert detection.session_id == ended.session_id
        assert detection.last_seen <= ended.last_seen
        # Reported as soon as the evidence arrived, so with fewer packets.
        assert detection.counters.packets_to_server <= (
            ended.counters.packets_to_server
        )
    assert scanner.result.detections == []


@pytest.mark.parametrize(
    "path", sorted(PCAPS.glob("*.pcap*")), ids=lambda path: path.name
)
def test_early_dialect_matches_end(path, signatures) -> None:
    early, final, _ = feed_capture(path, signatures)
    ended = {d.flow: d for d in final}
    for detection in early:
        assert detection.mining.dialect == ended[detection.flow].mining.dialect


def lone_subscribe_capture(folder: Path, agent: str = "sgminer/5.6.1") -> Path:
    """A flow that sends only a subscribe, which several Stratum dialects
    share, and then an authorize half a minute later. sgminer mines many
    algorithms, so its agent does not tell the dialect."""
    from detector.trafficgen.conversation import Endpoint, tcp_conversation, to_server
    from detector.trafficgen.messages import stratum_v1
    from detector.trafficgen.writers import Record, encode_pcap

    packets = tcp_conversation(
        Endpoint("198.18.20.10", 40000),
        Endpoint("198.18.20.2", 3333),
        [
            to_server(stratum_v1.subscribe(1, agent)),
            to_server(stratum_v1.authorize(2, "worker1", "x"), delay=30.0),
        ],
        start_ns=1_700_000_000 * 10**9,
        close_by=None,
    )
    path = folder / "lone-subscribe.pcap"
    # Link type 101: raw IP, as the conversation's packets are.
    records = [Record(item.timestamp_ns, bytes(item.packet)) for item in packets]
    path.write_bytes(encode_pcap(records, 101))
    return path


@dataclass
class SubscribeFeed:
    """A scanner fed a lone-subscribe capture up to its subscribe."""

    scanner: CaptureScanner
    early: list[Detection]
    batch: PacketBatch
    subscribe: int
    sent_at: float


def feed_until_subscribe(path: Path, signatures) -> SubscribeFeed:
    (batch,) = list(open_batches(path))
    packets = list(batch.packets())
    subscribe = next(
        index
        for index, packet in enumerate(packets)
        if b"mining.subscribe" in packet.data
    )
    early: list[Detection] = []
    scanner = CaptureScanner(
        signatures, "veth-test", on_mining=early.append, keep_detections=False
    )
    scanner.feed(batch.slice(0, subscribe + 1))
    return SubscribeFeed(scanner, early, batch, subscribe, packets[subscribe].timestamp)


def test_tied_dialect_report_waits(tmp_path, signatures) -> None:
    from detector.scan import DIALECT_WAIT_SECONDS

    fed = feed_until_subscribe(lone_subscribe_capture(tmp_path), signatures)
    # A lone subscribe fits several dialects: the report waits.
    assert fed.early == []
    fed.scanner.report_waiting(fed.sent_at + DIALECT_WAIT_SECONDS / 2)
    assert fed.early == []
    fed.scanner.report_waiting(fed.sent_at + DIALECT_WAIT_SECONDS)
    assert len(fed.early) == 1
    fed.scanner.feed(fed.batch.slice(fed.subscribe + 1, len(fed.batch)))
    assert len(fed.early) == 1


def test_agent_dialect_settles_lone_subscribe(tmp_path, signatures) -> None:
    path = lone_subscribe_capture(tmp_path, agent="cgminer/4.12.1")
    fed = feed_until_subscribe(path, signatures)
    assert [d.mining.dialect for d in fed.early] == ["stratum-v1"]


def test_flow_ends_match_scan(signatures) -> None:
    path = PCAPS / "mixed-containers.pcap"
    _, final, _ = feed_capture(path, signatures)
    scanned = scan_file(str(path), signatures)
    # A scan sorts by first packet; a live feed reports flows as they end.
    final.sort(key=lambda d: (d.first_seen, str(d.flow)))
    assert len(final) >= 2
    assert [(d.flow, d.confidence, d.mining.dialect) for d in final] == [
        (d.flow, d.confidence, d.mining.dialect) for d in scanned.detections
    ]


def test_twice_reported_flow_counts_once(signatures) -> None:
    context = InspectionContext()
    early, final, _ = feed_capture(PCAPS / "monero-xmrig.pcap", signatures, context)
    assert len(early) == 1
    assert len(final) == 1
    sessions = {id(s): s for s in context.sessions._open.values()}
    (session,) = sessions.values()
    assert session.flows == 1
    assert session.shares_submitted == final[0].mining.shares_submitted
    assert session.jobs == final[0].mining.jobs


def test_packet_callback_gets_flow_packets(signatures) -> None:
    seen: dict[bytes, int] = {}

    def on_packet(key: bytes, packet) -> None:
        seen[key] = seen.get(key, 0) + 1

    final: list[Detection] = []
    scanner = CaptureScanner(
        signatures, "veth-test", on_detection=final.append, on_packet=on_packet
    )
    for batch in open_batches(PCAPS / "monero-xmrig.pcap"):
        scanner.feed(batch)
    scanner.close()
    (detection,) = final
    assert seen[key_bytes(detection.flow)] >= 2


def _table_after(name: str) -> tuple[BatchFlowTable, float, float]:
    from detector.decode import BatchDecoder
    from detector.flows.batch import flow_keys

    batches = list(open_batches(PCAPS / name))
    table = BatchFlowTable()
    for batch in batches:
        segments = BatchDecoder().decode(batch).segments
        table.process(segments, flow_keys(segments), lambda *a: None, lambda f: None)
    return table, float(batches[0].timestamps[0]), float(batches[-1].timestamps[-1])


def test_expire_ended_ends_old_flows() -> None:
    # The flow of this capture is never closed.
    table, first, last = _table_after("monero-midsession-submits.pcap")
    assert len(table) == 1
    assert table.expire_ended(last + 10.0, 3600.0, 2.0) == []
    assert len(table) == 1
    table.expire_ended(first + 3601.0, 3600.0, 2.0)
    assert len(table) == 0


def test_expire_ended_ends_closed_flows() -> None:
    table, _, last = _table_after("monero-xmrig.pcap")
    assert len(table) == 1
    assert table.expire_ended(last + 1.0, 3600.0, 2.0) == []
    assert len(table) == 1
    table.expire_ended(last + 2.5, 3600.0, 2.0)
    assert len(table) == 0


@pytest.mark.parametrize(
    "flow",
    [
        FlowKey("tcp", "198.18.20.10", 40000, "198.18.20.2", 3333),
        FlowKey("tcp", "198.18.20.2", 3333, "198.18.20.10", 40000),
        FlowKey("udp", "2001:db8::10", 5353, "2001:db8::1", 53),
    ],
)
def test_key_bytes_inverts_key_text(flow) -> None:
    key = key_bytes(flow)
    assert flow in (key_text(key, True), key_text(key, False))


def syn_flood_batch(start: int, count: int, timestamp: float):
    """A batch of ``count`` SYNs, each opening a new flow to 192.0.2.1:443."""
    import struct

    import numpy as np

    from detector.capture.batch import PacketBatch

    frames = []
    for number in range(start, start + count):
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            40,
            0,
            0,
            64,
            6,
            0,
            bytes([198, 18, (number >> 16) & 0xFF, (number >> 8) & 0xFF]),
            bytes([192, 0, 2, 1]),
        )
        tcp = struct.pack(
            "!HHIIBBHHH", 1024 + number % 60000, 443, number, 0, 0x50, 0x02, 65535, 0, 0
        )
        frames.append(b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp)
    lengths = np.array([len(frame) for frame in frames], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return PacketBatch(
        source="flood",
        data=b"".join(frames),
        offsets=offsets,
        captured_lengths=lengths,
        wire_lengths=lengths,
        timestamps=np.full(count, timestamp),
        linktypes=np.ones(count, dtype=np.int64),
        numbers=np.arange(start + 1, start + count + 1, dtype=np.int64),
        record_offsets=np.zeros(count, dtype=np.int64),
    )


def test_flood_keeps_memory_and_mining_flow(signatures) -> None:
    import tracemalloc

    ended: list[Detection] = []
    early: list[Detection] = []
    scanner = CaptureScanner(
        signatures,
        "flood",
        max_flows=2000,
        on_detection=ended.append,
        on_mining=early.append,
        keep_detections=False,
    )
    batches = list(open_batches(PCAPS / "monero-midsession-submits.pcap"))
    for batch in batches:
        scanner.feed(batch)
    assert len(early) == 1
    assert not ended
    now = float(batches[-1].timestamps[-1]) + 1.0
    per_batch = 4000
    tracemalloc.start()
    try:
        sizes = []
        for round_number in range(12):
            scanner.feed(syn_flood_batch(round_number * per_batch, per_batch, now))
            assert len(scanner.table) <= 2000
            sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    # Full after the first batch; from then on each batch evicts as many
    # flows as it adds, so memory stays where it was.
    assert sizes[-1] - sizes[2] < 256 * 1024, sizes
    assert not ended, "the mining flow was evicted by flows that are not mining"
    scanner.close()
    assert [d.flow for d in ended] == [early[0].flow]
