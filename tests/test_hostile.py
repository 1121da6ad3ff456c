"""Hostile and damaged input through the whole scan: nothing crashes, memory
stays bounded, what is skipped is counted, and mining next to it is found."""

from __future__ import annotations

import json
import struct
import tracemalloc
from pathlib import Path

from detector.model import Direction
from detector.scan import scan_file
from detector.trafficgen.conversation import Endpoint, Step, tcp_conversation
from detector.trafficgen.links import Ethernet
from detector.trafficgen.writers import Record, encode_pcap

CLIENT = Endpoint("172.17.0.9", 45000)
POOL = Endpoint("203.0.113.77", 3333)
START_NS = 1_767_225_600 * 10**9
H64 = "cd" * 32


def line(message: dict) -> bytes:
    return json.dumps(message).encode() + b"\n"


def stratum_lines() -> list[Step]:
    notify = ["j1", "00" * 32, "01", "02", [], "20000000", "1d00ffff", "5a0b0c0d", True]
    return [
        Step(
            Direction.TO_SERVER,
            line({"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.10.0"]}),
        ),
        Step(
            Direction.TO_CLIENT,
            line({"id": None, "method": "mining.notify", "params": notify}),
        ),
        Step(
            Direction.TO_SERVER,
            line(
                {
                    "id": 4,
                    "method": "mining.submit",
                    "params": ["w.1", "j1", "00", "5a0b", "1a2b"],
                }
            ),
        ),
    ]


def write(path: Path, steps: list[Step], client: Endpoint = CLIENT) -> Path:
    packets = tcp_conversation(client, POOL, steps, start_ns=START_NS)
    link = Ethernet()
    records = [Record(p.timestamp_ns, link.frame(p)) for p in packets]
    path.write_bytes(encode_pcap(records, link.linktype))
    return path


def test_bad_lines_counted_and_session_found(tmp_path, signatures):
    hostile = [
        b"[" * 100_000 + b"\n",
        b'{"id": 1, "method": "x", "params": [' + b"9" * 100_000 + b"]}\n",
        b'{"id": 1, "method": "\xff\xfe"}\n',
        b'{"id": NaN}\n',
        b"42\n",
    ]
    steps = [Step(Direction.TO_SERVER, data) for data in hostile] + stratum_lines()
    result = scan_file(str(write(tmp_path / "bad-lines.pcap", steps)), signatures)
    assert result.error is None
    assert result.stats.malformed_messages == len(hostile)
    assert len(result.detections) == 1
    assert result.detections[0].mining.dialect == "stratum-v1"


def test_megabyte_line_without_newline_bounded(tmp_path, signatures):
    steps = [Step(Direction.TO_SERVER, b'{"id": 1, "params": "' + b"A" * 5_000_000)]
    path = write(tmp_path / "long-line.pcap", steps)
    tracemalloc.start()
    result = scan_file(str(path), signatures)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert result.error is None
    assert result.detections == []
    # The capture holds 5 MB of payload in 1460-byte segments; the line
    # decoder and the reassembler keep at most their named limits of it.
    assert peak < 3_000_000


def test_hostile_types_in_mining_methods(tmp_path, signatures):
    odd_values = [None, True, 7, -1.5, "x", [], {}, [[]], {"a": {}}, ["x"] * 20]
    steps = []
    methods = [
        "login",
        "submit",
        "job",
        "keepalived",
        "mining.subscribe",
        "mining.authorize",
        "mining.submit",
        "mining.notify",
        "mining.set_difficulty",
        "mining.set_target",
        "mining.configure",
        "mining.hello",
        "client.reconnect",
        "eth_submitLogin",
        "eth_getWork",
        "eth_submitWork",
        "eth_submitHashrate",
        "getwork",
        "getblocktemplate",
        "submitblock",
    ]
    for method in methods:
        for value in odd_values:
            for direction in Direction:
                steps.append(
                    Step(
                        direction,
                        line({"id": [1, 2], "method": method, "params": value}),
                    )
                )
    steps.append(Step(Direction.TO_CLIENT, line({"id": {"a": 1}, "result": [1]})))
    steps.append(Step(Direction.TO_CLIENT, line({"id": 1, "error": [[]]})))
    result = scan_file(str(write(tmp_path / "odd-types.pcap", steps)), signatures)
    assert result.error is None


def syn_frame(index: int) -> bytes:
    source = struct.pack("!I", 0x0A000000 + index // 60000 + 1)
    port = 1024 + index % 60000
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        40,
        index & 0xFFFF,
        0,
        64,
        6,
        0,
        source,
        bytes([198, 51, 100, 1]),
    )
    tcp = struct.pack("!HHIIBBHHH", port, 3333, index, 0, 0x50, 0x02, 64240, 0, 0)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp


def test_flood_of_tiny_flows_bounded(tmp_path, signatures):
    flood = 200_000
    packets = tcp_conversation(CLIENT, POOL, stratum_lines(), start_ns=START_NS)
    link = Ethernet()
    records = [Record(START_NS + i, syn_frame(i)) for i in range(flood)]
    # The mining flow's packets are spread through the flood, so it must
    # survive evictions while it is active.
    spacing = flood // len(packets)
    for number, packet in enumerate(packets):
        records.insert(
            number * (spacing + 1),
            Record(START_NS + number * spacing, link.frame(packet)),
        )
    path = tmp_path / "flood.pcap"
    path.write_bytes(encode_pcap(records, link.linktype))
    result = scan_file(str(path), signatures, max_flows=1000)
    assert result.error is None
    assert result.stats.packets == flood + len(packets)
    assert result.stats.flows_evicted >= flood - 1000
    assert [d.flow.client_port for d in result.detections] == [CLIENT.port]
