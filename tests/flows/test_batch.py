"""Tests for BatchFlowTable: the same flows, counters, evictions and
inspection as FlowTable fed one segment at a time."""

from __future__ import annotations

import gc
import socket
import tracemalloc
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.decode.batch import SegmentBatch
from detector.flows.batch import BatchFlowTable, FlowKeys, flow_keys, key_text
from detector.flows.reassembly import StreamData
from detector.flows.table import Flow, FlowTable
from detector.model import ACK, FIN, PSH, RST, SYN, TCP, UDP, Direction, Segment

CLIENT = "10.0.0.2"
POOL = "198.51.100.7"


def segment_batch(segments: list[Segment]) -> SegmentBatch:
    """Lay ``segments`` out as a SegmentBatch, as the batch decoder would."""
    count = len(segments)
    sources = np.zeros((count, 16), dtype=np.uint8)
    destinations = np.zeros((count, 16), dtype=np.uint8)
    versions = np.zeros(count, dtype=np.int64)
    for row, segment in enumerate(segments):
        for array, text in ((sources, segment.src_ip), (destinations, segment.dst_ip)):
            if ":" in text:
                packed = socket.inet_pton(socket.AF_INET6, text)
            else:
                packed = socket.inet_aton(text)
            array[row, : len(packed)] = np.frombuffer(packed, dtype=np.uint8)
        versions[row] = 6 if ":" in segment.src_ip else 4
    lengths = np.array([len(s.payload) for s in segments], dtype=np.int64)
    offsets = np.zeros(count, dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])

    def column(name: str) -> np.ndarray:
        return np.array([getattr(s, name) for s in segments], dtype=np.int64)

    return SegmentBatch(
        b"".join(s.payload for s in segments),
        np.arange(count, dtype=np.int64),
        column("packet_number"),
        np.array([s.timestamp for s in segments], dtype=np.float64),
        np.array([6 if s.transport == TCP else 17 for s in segments], dtype=np.int64),
        versions,
        sources,
        destinations,
        column("src_port"),
        column("dst_port"),
        column("flags"),
        column("seq"),
        column("ack"),
        offsets,
        lengths,
    )


@dataclass
class FakeInspector:
    """Stands in for the engine: judged after ``budget`` bytes or datagrams,
    mining once a stream carries b"MINE"."""

    key: object
    budget: int
    events: list[tuple[object, ...]]
    fed: int = 0
    mining: bool = False
    datagrams: int = 0
    closed_directions: set[Direction] = field(default_factory=set)

    @property
    def wants_data(self) -> bool:
        return self.fed < self.budget and self.datagrams < 3

    def feed(
        self, direction: Direction, chunks: list[StreamData], timestamp: float
    ) -> None:
        for chunk in chunks:
            self.events.append(("feed", self.key, direction, chunk, timestamp))
            self.fed += len(chunk.data)
            if b"MINE" in chunk.data:
                self.mining = True

    def feed_datagram(
        self, direction: Direction, payload: bytes, timestamp: float
    ) -> None:
        self.events.append(("datagram", self.key, direction, payload, timestamp))
        self.datagrams += 1

    def is_mining(self) -> bool:
        return self.mining


def budget_of(flow: Flow) -> int:
    return 5 + flow.key.client_port % 40


def finish_flows(flows: list[Flow], events: list[tuple[object, ...]]) -> None:
    for flow in flows:
        inspector = flow.state
        if not isinstance(inspector, FakeInspector):
            continue
        if flow.key.transport == TCP:
            for direction in (Direction.TO_SERVER, Direction.TO_CLIENT):
                rest = flow.stream(direction).flush()
                if rest:
                    inspector.feed(direction, rest, flow.last_seen)
        events.append(
            (
                "finish",
                flow.key,
                flow.first_seen,
                flow.last_seen,
                flow.counters(),
                flow.closed,
                flow.pinned,
                flow.handshake_seen,
            )
        )
        flow.state = None


def feed_segment(
    flow: Flow,
    direction: Direction,
    transport: str,
    flags: int,
    seq: int,
    payload: bytes,
    timestamp: float,
    events: list[tuple[object, ...]],
) -> None:
    """The scanner's inspection of one segment, with a FakeInspector."""
    inspector = flow.state
    assert isinstance(inspector, FakeInspector)
    if not inspector.wants_data:
        return
    if transport != TCP:
        inspector.feed_datagram(direction, payload, timestamp)
        return
    stream = flow.stream(direction)
    chunks = stream.add(seq, payload, syn=bool(flags & SYN), fin=bool(flags & FIN))
    if chunks:
        inspector.feed(direction, chunks, timestamp)
    if flags & (FIN | RST):
        rest = stream.flush()
        if rest:
            inspector.feed(direction, rest, timestamp)
    if not flow.pinned and inspector.is_mining():
        flow.pinned = True


def reference(
    segments: list[Segment],
    cuts: list[int],
    max_flows: int,
    server_ports: frozenset[int],
) -> tuple[list[tuple[object, ...]], int]:
    """Run FlowTable one segment at a time, as the per-packet scan does."""
    table = FlowTable(max_flows=max_flows, idle_timeout=50.0, server_ports=server_ports)
    events: list[tuple[object, ...]] = []
    for index, segment in enumerate(segments):
        flow, direction = table.lookup(segment)
        finish_flows(table.drain_evicted(), events)
        if flow.state is None:
            if not segment.payload:
                if segment.transport == TCP and segment.flags & SYN:
                    flow.stream(direction).add(segment.seq, b"", syn=True)
            else:
                flow.state = FakeInspector(flow.key, budget_of(flow), events)
                events.append(("promote", flow.key))
        if flow.state is not None:
            feed_segment(
                flow,
                direction,
                segment.transport,
                segment.flags,
                segment.seq,
                segment.payload,
                segment.timestamp,
                events,
            )
        if index + 1 in cuts:
            finish_flows(table.expire(segment.timestamp), events)
    finish_flows(table.flush_all(), events)
    return events, table.evictions


def batched(
    segments: list[Segment],
    cuts: list[int],
    max_flows: int,
    server_ports: frozenset[int],
) -> tuple[list[tuple[object, ...]], int]:
    """Run BatchFlowTable on the batches between ``cuts``."""
    table = BatchFlowTable(
        max_flows=max_flows, idle_timeout=50.0, server_ports=server_ports
    )
    events: list[tuple[object, ...]] = []
    bounds = [0, *cuts, len(segments)]
    for start, stop in zip(bounds, bounds[1:], strict=False):
        part = segments[start:stop]
        if not part:
            continue
        batch = segment_batch(part)
        keys = flow_keys(batch)

        def inspect(
            index: int,
            slot: int,
            to_server: bool,
            part: list[Segment] = part,
            keys: FlowKeys = keys,
        ) -> None:
            segment = part[index]
            direction = Direction.TO_SERVER if to_server else Direction.TO_CLIENT
            flow = table.flow(slot)
            if flow is None:
                if not segment.payload:
                    if segment.transport == TCP and segment.flags & SYN:
                        table.note_syn(slot, to_server, segment.seq)
                    return
                flow = table.promote(slot, keys.key(index))
                flow.state = FakeInspector(flow.key, budget_of(flow), events)
                events.append(("promote", flow.key))
            feed_segment(
                flow,
                direction,
                segment.transport,
                segment.flags,
                segment.seq,
                segment.payload,
                segment.timestamp,
                events,
            )
            inspector = flow.state
            assert isinstance(inspector, FakeInspector)
            if not inspector.wants_data:
                table.mark_judged(slot)
            elif segment.transport == TCP and flow.stream(direction).depth_reached:
                table.mark_done(slot, to_server)

        table.process(batch, keys, inspect, lambda flows: finish_flows(flows, events))
        if stop in cuts:
            finish_flows(table.expire(part[-1].timestamp), events)
    finish_flows(table.flush_all(), events)
    return events, table.evictions


def tcp(
    src: str,
    sport: int,
    dst: str,
    dport: int,
    flags: int = ACK,
    payload: bytes = b"",
    seq: int = 1,
    timestamp: float = 0.0,
) -> Segment:
    return Segment(timestamp, TCP, src, sport, dst, dport, payload, seq, 1, flags)


def assert_same(
    segments: list[Segment],
    cuts: list[int],
    max_flows: int = 100,
    server_ports: frozenset[int] = frozenset(),
) -> list[tuple[object, ...]]:
    expected, expected_evictions = reference(segments, cuts, max_flows, server_ports)
    found, evictions = batched(segments, cuts, max_flows, server_ports)
    assert found == expected
    assert evictions == expected_evictions
    return found


def conversation(port: int, start: float = 0.0) -> list[Segment]:
    return [
        tcp(CLIENT, port, POOL, 3333, SYN, seq=100, timestamp=start),
        tcp(POOL, 3333, CLIENT, port, SYN | ACK, seq=500, timestamp=start + 0.1),
        tcp(CLIENT, port, POOL, 3333, ACK, seq=101, timestamp=start + 0.2),
        tcp(CLIENT, port, POOL, 3333, PSH | ACK, b"login MINE", 101, start + 0.3),
        tcp(POOL, 3333, CLIENT, port, PSH | ACK, b"job", 501, start + 0.4),
        tcp(CLIENT, port, POOL, 3333, FIN | ACK, seq=111, timestamp=start + 0.5),
        tcp(POOL, 3333, CLIENT, port, FIN | ACK, seq=504, timestamp=start + 0.6),
    ]


# Examples.


def test_keys_shared_by_both_directions() -> None:
    batch = segment_batch(
        [
            tcp(CLIENT, 40000, POOL, 3333),
            tcp(POOL, 3333, CLIENT, 40000),
            tcp("2001:db8::1", 0, "2001:db8::2", 0),
            tcp("2001:db8::2", 0, "2001:db8::1", 0),
        ]
    )

    keys = flow_keys(batch)

    assert keys.key(0) == keys.key(1)
    assert keys.key(2) == keys.key(3)
    assert len(keys.keys) == 2
    assert keys.key_ids.tolist() == [0, 0, 1, 1]
    assert keys.first_rows.tolist() == [0, 2]
    assert len(keys.key(0)) == 13
    assert len(keys.key(2)) == 37
    assert keys.source_is_low.tolist() == [True, False, True, False]
    assert key_text(keys.key(0), True).client_ip == CLIENT
    assert key_text(keys.key(2), False).client_port == 0
    assert key_text(keys.key(2), False).client_ip == "2001:db8::2"


def test_keys_keep_trailing_zero_bytes() -> None:
    batch = segment_batch(
        [tcp("0.0.0.0", 0, "0.0.0.0", 0), tcp("::", 0, "::", 0), tcp("::", 0, "::1", 0)]
    )

    keys = flow_keys(batch)

    assert [len(keys.key(index)) for index in range(3)] == [13, 37, 37]
    assert len(set(keys.keys)) == 3


def test_conversation_in_one_batch() -> None:
    events = assert_same(conversation(40000), [])

    assert events[0] == (
        "promote",
        key_text(flow_keys(segment_batch(conversation(40000))).keys[0], True),
    )
    assert events[-1][0] == "finish"


@pytest.mark.parametrize("cut", range(1, 7))
def test_conversation_split_anywhere(cut: int) -> None:
    assert_same(conversation(40000), [cut])


def test_syn_flood_stays_compact() -> None:
    flood = [tcp(f"10.1.{i >> 8}.{i & 255}", 40000, POOL, 80, SYN) for i in range(500)]
    table = BatchFlowTable()

    table.process(segment_batch(flood), flow_keys(segment_batch(flood)), _never, _never)

    assert len(table) == 500
    assert table.flush_all() == []


def _never(*arguments: object) -> None:
    raise AssertionError(f"unexpected call with {arguments}")


def test_eviction_takes_untouched_flows() -> None:
    first = [tcp(CLIENT, 40000 + i, POOL, 3333, SYN, timestamp=i) for i in range(4)]
    second = [
        tcp(CLIENT, 50000 + i, POOL, 3333, SYN, timestamp=10 + i) for i in range(3)
    ]

    assert_same(first + second, [4], max_flows=4)


def test_eviction_of_touched_flow_counted_in_order() -> None:
    first = [tcp(CLIENT, 40000 + i, POOL, 3333, SYN, timestamp=i) for i in range(3)]
    second = [
        tcp(CLIENT, 50000, POOL, 3333, SYN, timestamp=5),
        tcp(CLIENT, 40000, POOL, 3333, ACK, b"late", 101, timestamp=6),
    ]

    assert_same(first + second, [3], max_flows=3)


def test_pinned_flow_survives_eviction() -> None:
    mining = conversation(40000)[:5]
    flood = [
        tcp(f"10.9.0.{i}", 1024 + i, POOL, 80, SYN, timestamp=1 + i) for i in range(20)
    ]
    tail = [tcp(CLIENT, 40000, POOL, 3333, PSH | ACK, b"submit", 111, timestamp=30)]

    events = assert_same(mining + flood + tail, [5, 15], max_flows=4)

    finished = [event for event in events if event[0] == "finish"]
    assert finished[-1][1].client_port == 40000
    assert finished[-1][4].packets_to_server == 4


def test_closed_tuple_reused() -> None:
    first = conversation(40000)
    second = conversation(40000, start=1.0)

    events = assert_same(first + second, [])

    assert sum(event[0] == "finish" for event in events) == 2


def test_closed_tuple_reused_next_batch() -> None:
    first = conversation(40000)
    # No FIN or RST: only the state at the batch's start says the flow closed.
    second = conversation(40000, start=1.0)[:5]

    events = assert_same(first + second, [len(first)])

    assert sum(event[0] == "finish" for event in events) == 2


def test_same_endpoints_flow() -> None:
    segments = [
        tcp(CLIENT, 5000, CLIENT, 5000, ACK, b"self", 1, 0.0),
        tcp(CLIENT, 5000, CLIENT, 5000, ACK, b"again", 5, 0.1),
    ]

    assert_same(segments, [])


def test_expiry_between_batches() -> None:
    first = conversation(40000)[:5]
    later = [tcp(CLIENT, 41000, POOL, 3333, SYN, timestamp=500.0)]

    events = assert_same(first + later, [5, 6])

    assert events[-1][0] == "finish"


def test_udp_datagrams_fed_until_judged() -> None:
    query = Segment(0.0, UDP, CLIENT, 53000, "192.0.2.53", 53, b"query")
    empty = Segment(0.1, UDP, "192.0.2.53", 53, CLIENT, 53000, b"")
    answer = Segment(0.2, UDP, "192.0.2.53", 53, CLIENT, 53000, b"answer")

    events = assert_same([query, empty, empty, answer, answer], [1, 3])

    datagrams = [event[3] for event in events if event[0] == "datagram"]
    assert datagrams == [b"query", b"", b""]


def test_fin_flushes_flow_promoted_in_batch() -> None:
    segments = [
        tcp(CLIENT, 40030, POOL, 3333, PSH | ACK, b"first", 100, 0.0),
        tcp(CLIENT, 40030, POOL, 3333, PSH | ACK, b"after a hole", 200, 0.1),
        tcp(CLIENT, 40030, POOL, 3333, FIN | ACK, b"", 212, 0.2),
        tcp(POOL, 3333, CLIENT, 40030, ACK, b"", 1, 5.0),
    ]

    events = assert_same(segments, [])

    gapped = [event for event in events if event[0] == "feed" and event[3].gap_before]
    assert [event[4] for event in gapped] == [0.2]


def test_second_syn_keeps_first_sequence_number() -> None:
    segments = [
        tcp(CLIENT, 40000, POOL, 3333, SYN, b"", 100, 0.0),
        tcp(CLIENT, 40000, POOL, 3333, SYN, b"", 500, 1.0),
        tcp(CLIENT, 40000, POOL, 3333, PSH | ACK, b"hello", 101, 2.0),
    ]

    events = assert_same(segments, [1, 2])

    assert [event[3].data for event in events if event[0] == "feed"] == [b"hello"]


def test_late_syn_after_payload_in_batch() -> None:
    segments = [
        tcp(CLIENT, 40000, POOL, 3333, PSH | ACK, b"data", 1000, 0.0),
        tcp(CLIENT, 40000, POOL, 3333, SYN, b"", 10, 0.1),
        tcp(CLIENT, 40000, POOL, 3333, PSH | ACK, b"more", 1004, 0.2),
    ]

    events = assert_same(segments, [])

    assert [event[3].data for event in events if event[0] == "feed"] == [
        b"data",
        b"more",
    ]


def test_earlier_timestamp_moves_first_seen() -> None:
    segments = conversation(40000, start=10.0)[:5]
    late = tcp(POOL, 3333, CLIENT, 40000, ACK, b"", 504, timestamp=3.0)

    events = assert_same([*segments, late], [5])

    assert events[-1][2] == 3.0


def test_stream_depth_stops_callbacks() -> None:
    table = BatchFlowTable(stream_depth=10)
    segments = [
        tcp(CLIENT, 40000, POOL, 3333, ACK, b"x" * 8, 1 + 8 * i, timestamp=i)
        for i in range(6)
    ]
    calls: list[int] = []
    batch = segment_batch(segments)
    keys = flow_keys(batch)

    def inspect(index: int, slot: int, to_server: bool) -> None:
        calls.append(index)
        if table.flow(slot) is None:
            table.promote(slot, keys.key(index))
        table.mark_done(slot, to_server)

    table.process(batch, keys, inspect, _never)
    table.process(batch, keys, inspect, _never)

    assert calls == [0]


# Properties.

ADDRESSES = ["10.0.0.1", "10.0.0.2", "192.0.2.9", "2001:db8::1"]
PORTS = [80, 3333, 40000, 60000]
FLAGS = [
    ACK,
    ACK,
    PSH | ACK,
    SYN,
    SYN | ACK,
    FIN | ACK,
    RST,
    RST | ACK,
    FIN | PSH | ACK,
    0,
]


@st.composite
def segment_lists(draw: st.DrawFn) -> list[Segment]:
    count = draw(st.integers(1, 60))
    segments = []
    timestamp = 0.0
    for number in range(count):
        source = draw(st.sampled_from(ADDRESSES))
        destination = draw(st.sampled_from(ADDRESSES))
        if (":" in source) != (":" in destination):
            destination = source
        transport = draw(st.sampled_from([TCP, TCP, TCP, UDP]))
        flags = draw(st.sampled_from(FLAGS)) if transport == TCP else 0
        payload = draw(st.sampled_from([b"", b"", b"data", b"MINE", b"x" * 30]))
        timestamp += draw(st.sampled_from([0.5, 1.0, 30.0, 80.0, -2.0]))
        seq = draw(st.sampled_from([1, 5, 100, 4000]))
        segments.append(
            Segment(
                timestamp,
                transport,
                source,
                draw(st.sampled_from(PORTS)),
                destination,
                draw(st.sampled_from(PORTS)),
                payload,
                seq if transport == TCP else 0,
                1 if transport == TCP else 0,
                flags,
                number + 1,
            )
        )
    return segments


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    segment_lists(),
    st.lists(st.integers(1, 59), max_size=4),
    st.integers(1, 8),
    st.sampled_from([frozenset(), frozenset({3333}), frozenset({40000, 80})]),
)
def test_batches_match_segments(
    segments: list[Segment],
    cuts: list[int],
    max_flows: int,
    server_ports: frozenset[int],
) -> None:
    assert_same(segments, sorted(set(cuts)), max_flows, server_ports)


# Memory.


def test_flow_memory_on_syn_flood() -> None:
    count = 100_000
    flood = [
        tcp(f"10.{i >> 16}.{i >> 8 & 255}.{i & 255}", 40000, POOL, 80, SYN)
        for i in range(count)
    ]
    batches = [segment_batch(flood[i : i + 20_000]) for i in range(0, count, 20_000)]
    table = BatchFlowTable(max_flows=count)
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for batch in batches:
            table.process(batch, flow_keys(batch), _never, _never)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert len(table) == count
    # Per flow: its key, its dict entry and slot number, and its array slot.
    assert (after - before) / count < 400
