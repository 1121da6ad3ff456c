"""Tests for the flow table: roles, counters, eviction and expiry."""

from __future__ import annotations

import gc
import logging
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.flows.reassembly import StreamReassembler
from detector.flows.table import IDLE_TIMEOUT, Flow, FlowTable
from detector.model import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    TCP,
    UDP,
    Direction,
    FlowCounters,
    FlowKey,
    Segment,
)

CLIENT = "10.0.0.2"
POOL = "198.51.100.7"


def tcp(
    src: str,
    sport: int,
    dst: str,
    dport: int,
    flags: int = ACK,
    payload: bytes = b"",
    timestamp: float = 0.0,
) -> Segment:
    return Segment(
        timestamp=timestamp,
        transport=TCP,
        src_ip=src,
        src_port=sport,
        dst_ip=dst,
        dst_port=dport,
        payload=payload,
        seq=1,
        ack=1,
        flags=flags,
    )


def udp(src: str, sport: int, dst: str, dport: int, timestamp: float = 0.0) -> Segment:
    return Segment(
        timestamp=timestamp,
        transport=UDP,
        src_ip=src,
        src_port=sport,
        dst_ip=dst,
        dst_port=dport,
        payload=b"datagram",
    )


def open_flow(table: FlowTable, port: int, timestamp: float = 0.0) -> Flow:
    """Open a flow from CLIENT:``port`` to the pool with a SYN."""
    flow, _ = table.lookup(tcp(CLIENT, port, POOL, 3333, SYN, timestamp=timestamp))
    return flow


# Roles.


def test_syn_sender_is_client() -> None:
    table = FlowTable()

    flow, direction = table.lookup(tcp(CLIENT, 45000, POOL, 3333, SYN))

    assert flow.key == FlowKey(TCP, CLIENT, 45000, POOL, 3333)
    assert direction is Direction.TO_SERVER
    assert flow.handshake_seen


def test_syn_ack_reply_same_flow() -> None:
    table = FlowTable()
    flow, _ = table.lookup(tcp(CLIENT, 45000, POOL, 3333, SYN))

    reply, direction = table.lookup(tcp(POOL, 3333, CLIENT, 45000, SYN | ACK))

    assert reply is flow
    assert direction is Direction.TO_CLIENT
    assert len(table) == 1


def test_syn_ack_first_sender_is_server() -> None:
    table = FlowTable()

    flow, direction = table.lookup(tcp(POOL, 3333, CLIENT, 45000, SYN | ACK))

    assert flow.key == FlowKey(TCP, CLIENT, 45000, POOL, 3333)
    assert direction is Direction.TO_CLIENT
    assert flow.handshake_seen


def test_syn_wins_over_port_rules() -> None:
    table = FlowTable(server_ports=frozenset({50000}))

    flow, direction = table.lookup(tcp(CLIENT, 443, POOL, 50000, SYN))

    assert flow.key.client_port == 443
    assert flow.key.server_port == 50000
    assert direction is Direction.TO_SERVER


@pytest.mark.parametrize(
    ("server_ports", "source_port", "destination_port", "server_port"),
    [
        # A listed server port wins over every other rule.
        (frozenset({3333}), 3333, 80, 3333),
        (frozenset({3333}), 45000, 3333, 3333),
        (frozenset({14444}), 14444, 50000, 14444),
        # Both ports listed: the next rules decide.
        (frozenset({3333, 443}), 3333, 443, 443),
        # Below 1024 against 1024 or above.
        (frozenset(), 443, 50000, 443),
        (frozenset(), 50000, 443, 443),
        (frozenset(), 1023, 1024, 1023),
        # Ephemeral port against a registered one.
        (frozenset(), 32768, 3333, 3333),
        (frozenset(), 3333, 60999, 3333),
        (frozenset(), 65535, 32767, 32767),
        (frozenset(), 8080, 49152, 8080),
        # Both registered, or both ephemeral: the lower port.
        (frozenset(), 3333, 5555, 3333),
        (frozenset(), 5555, 3333, 3333),
        (frozenset(), 40000, 50000, 40000),
        (frozenset(), 53, 123, 53),
    ],
)
def test_mid_session_roles_by_port(
    server_ports: frozenset[int],
    source_port: int,
    destination_port: int,
    server_port: int,
) -> None:
    table = FlowTable(server_ports=server_ports)

    flow, direction = table.lookup(tcp(CLIENT, source_port, POOL, destination_port))

    assert flow.key.server_port == server_port
    assert not flow.handshake_seen
    expected = (
        Direction.TO_SERVER if destination_port == server_port else Direction.TO_CLIENT
    )
    assert direction is expected


def test_equal_ports_first_sender_is_client() -> None:
    table = FlowTable()

    flow, direction = table.lookup(tcp(POOL, 4000, CLIENT, 4000))

    assert flow.key == FlowKey(TCP, POOL, 4000, CLIENT, 4000)
    assert direction is Direction.TO_SERVER


def test_udp_roles_by_port() -> None:
    table = FlowTable()

    flow, direction = table.lookup(udp("192.0.2.53", 53, CLIENT, 41000))

    assert flow.key == FlowKey(UDP, CLIENT, 41000, "192.0.2.53", 53)
    assert direction is Direction.TO_CLIENT


def test_udp_flags_ignored() -> None:
    table = FlowTable()
    segment = Segment(
        timestamp=0.0,
        transport=UDP,
        src_ip=CLIENT,
        src_port=53,
        dst_ip=POOL,
        dst_port=41000,
        payload=b"",
        flags=SYN,
    )

    flow, _ = table.lookup(segment)

    assert flow.key.server_port == 53
    assert not flow.handshake_seen


def test_roles_never_flip() -> None:
    table = FlowTable()
    # Joined mid-session: port rules make 3333 the server.
    flow, _ = table.lookup(tcp(CLIENT, 45000, POOL, 3333))

    same, direction = table.lookup(tcp(POOL, 3333, CLIENT, 45000, SYN))
    again, second_direction = table.lookup(tcp(CLIENT, 45000, POOL, 3333, SYN | ACK))

    assert same is flow
    assert again is flow
    assert direction is Direction.TO_CLIENT
    assert second_direction is Direction.TO_SERVER
    assert flow.key.server_port == 3333
    assert len(table) == 1


def test_tcp_and_udp_flows_kept_apart() -> None:
    table = FlowTable()

    tcp_flow, _ = table.lookup(tcp(CLIENT, 45000, POOL, 3333))
    udp_flow, _ = table.lookup(udp(CLIENT, 45000, POOL, 3333))

    assert tcp_flow is not udp_flow
    assert len(table) == 2


# Counters, times and closing.


def test_counters_by_direction() -> None:
    table = FlowTable()
    table.lookup(tcp(CLIENT, 45000, POOL, 3333, SYN))
    table.lookup(tcp(POOL, 3333, CLIENT, 45000, SYN | ACK))
    table.lookup(tcp(CLIENT, 45000, POOL, 3333, PSH | ACK, b"login"))
    flow, _ = table.lookup(tcp(POOL, 3333, CLIENT, 45000, PSH | ACK, b"job!!!!"))

    assert flow.counters() == FlowCounters(
        packets_to_server=2,
        packets_to_client=2,
        bytes_to_server=5,
        bytes_to_client=7,
    )


def test_first_and_last_seen() -> None:
    table = FlowTable()
    flow = open_flow(table, 45000, timestamp=100.0)

    table.lookup(tcp(POOL, 3333, CLIENT, 45000, timestamp=130.0))
    table.lookup(tcp(CLIENT, 45000, POOL, 3333, timestamp=120.0))
    table.lookup(tcp(CLIENT, 45000, POOL, 3333, timestamp=99.5))

    assert flow.first_seen == 99.5
    assert flow.last_seen == 130.0


def test_fin_both_ways_closes() -> None:
    table = FlowTable()
    flow = open_flow(table, 45000)

    table.lookup(tcp(CLIENT, 45000, POOL, 3333, FIN | ACK))
    assert not flow.closed
    table.lookup(tcp(CLIENT, 45000, POOL, 3333, FIN | ACK))
    assert not flow.closed
    table.lookup(tcp(POOL, 3333, CLIENT, 45000, FIN | ACK))

    assert flow.closed


def test_rst_closes() -> None:
    table = FlowTable()
    flow = open_flow(table, 45000)

    table.lookup(tcp(POOL, 3333, CLIENT, 45000, RST))

    assert flow.closed


def test_syn_on_closed_flow_starts_new_flow() -> None:
    table = FlowTable()
    old = open_flow(table, 45000)
    table.lookup(tcp(CLIENT, 45000, POOL, 3333, RST))

    new = open_flow(table, 45000)

    assert new is not old
    assert not new.closed
    assert new.packets_to_server == 1
    assert table.drain_evicted() == [old]
    assert len(table) == 1


def test_syn_on_open_flow_keeps_flow() -> None:
    table = FlowTable()
    flow = open_flow(table, 45000)

    again = open_flow(table, 45000)

    assert again is flow
    assert table.drain_evicted() == []


# Streams.


def test_streams_made_lazily() -> None:
    table = FlowTable(stream_depth=123)
    flow = open_flow(table, 45000)

    assert flow.streams is None
    to_server = flow.stream(Direction.TO_SERVER)
    to_client = flow.stream(Direction.TO_CLIENT)

    assert isinstance(to_server, StreamReassembler)
    assert to_server is not to_client
    assert flow.stream(Direction.TO_SERVER) is to_server
    assert flow.streams == (to_server, to_client)
    assert to_server.depth == 123


def test_udp_flow_has_no_stream() -> None:
    table = FlowTable()
    flow, _ = table.lookup(udp(CLIENT, 41000, POOL, 3333))

    with pytest.raises(ValueError, match="not TCP"):
        flow.stream(Direction.TO_SERVER)


def test_state_slot_free_for_engine() -> None:
    table = FlowTable()
    flow = open_flow(table, 45000)
    marker = object()

    flow.state = marker

    assert table.lookup(tcp(CLIENT, 45000, POOL, 3333))[0].state is marker


# Eviction and expiry.


def test_eviction_least_recently_seen_first() -> None:
    table = FlowTable(max_flows=3)
    first = open_flow(table, 40001, 1.0)
    second = open_flow(table, 40002, 2.0)
    third = open_flow(table, 40003, 3.0)
    table.lookup(tcp(POOL, 3333, CLIENT, 40001, timestamp=4.0))

    fourth = open_flow(table, 40004, 5.0)
    evicted_once = table.drain_evicted()
    fifth = open_flow(table, 40005, 6.0)
    evicted_twice = table.drain_evicted()

    assert evicted_once == [second]
    assert evicted_twice == [third]
    assert len(table) == 3
    assert table.evictions == 2
    assert table.flush_all() == [first, fourth, fifth]


def test_drain_evicted_empties() -> None:
    table = FlowTable(max_flows=1)
    first = open_flow(table, 40001)
    open_flow(table, 40002)

    assert table.drain_evicted() == [first]
    assert table.drain_evicted() == []


def test_pinned_flow_kept() -> None:
    table = FlowTable(max_flows=3)
    mining = open_flow(table, 40001, 1.0)
    mining.pinned = True
    other = open_flow(table, 40002, 2.0)
    open_flow(table, 40003, 3.0)

    open_flow(table, 40004, 4.0)

    assert table.drain_evicted() == [other]
    assert table.pinned_evictions == 0
    assert len(table) == 3


def test_all_pinned_evicts_oldest(caplog: pytest.LogCaptureFixture) -> None:
    table = FlowTable(max_flows=2)
    first = open_flow(table, 40001, 1.0)
    second = open_flow(table, 40002, 2.0)
    first.pinned = True
    second.pinned = True

    with caplog.at_level(logging.WARNING, logger="detector.flows.table"):
        third = open_flow(table, 40003, 3.0)
        third.pinned = True
        open_flow(table, 40004, 4.0)

    assert table.drain_evicted() == [first, second]
    assert table.pinned_evictions == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "max_flows" in warnings[0].getMessage()


def test_flow_count_bound() -> None:
    max_flows = 100
    table = FlowTable(max_flows=max_flows)
    evicted: list[Flow] = []
    total = 20_000

    for index in range(total):
        source = f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
        table.lookup(udp(source, 40000 + index % 1000, POOL, 3333, float(index)))
        evicted.extend(table.drain_evicted())
        assert len(table) <= max_flows

    remaining = table.flush_all()
    assert len(evicted) == total - max_flows
    assert table.evictions == total - max_flows
    assert len(remaining) == max_flows
    assert len(table) == 0
    assert [flow.first_seen for flow in evicted + remaining] == [
        float(index) for index in range(total)
    ]


def test_expire_idle_flows() -> None:
    table = FlowTable(idle_timeout=300.0)
    quiet = open_flow(table, 40001, 0.0)
    busy = open_flow(table, 40002, 0.0)
    table.lookup(tcp(POOL, 3333, CLIENT, 40002, timestamp=250.0))

    assert table.expire(300.0) == []
    assert table.expire(300.5) == [quiet]
    assert table.expire(550.0) == []
    assert table.expire(551.0) == [busy]
    assert len(table) == 0


def test_expire_includes_pinned() -> None:
    table = FlowTable(idle_timeout=10.0)
    flow = open_flow(table, 40001, 0.0)
    flow.pinned = True

    assert table.expire(11.0) == [flow]


def test_expired_flow_not_drained_again() -> None:
    table = FlowTable(idle_timeout=10.0)
    open_flow(table, 40001, 0.0)

    table.expire(20.0)

    assert table.drain_evicted() == []
    assert table.flush_all() == []


def test_flush_all_returns_undrained_evicted() -> None:
    table = FlowTable(max_flows=1)
    first = open_flow(table, 40001, 1.0)
    second = open_flow(table, 40002, 2.0)

    assert table.flush_all() == [first, second]
    assert table.drain_evicted() == []
    assert len(table) == 0


def test_default_idle_timeout_above_keepalive() -> None:
    # XMRig sends a keepalive after 60 s without traffic, so a flow that only
    # keeps alive must never look idle.
    table = FlowTable()
    flow = open_flow(table, 40001, 0.0)
    for minute in range(1, 30):
        table.lookup(tcp(CLIENT, 40001, POOL, 3333, timestamp=60.0 * minute))
        assert table.expire(60.0 * minute + 59.0) == []

    assert IDLE_TIMEOUT > 60.0
    assert len(table) == 1
    assert flow.packets_to_server == 30


@pytest.mark.parametrize(
    "arguments",
    [{"max_flows": 0}, {"idle_timeout": 0.0}, {"idle_timeout": float("nan")}],
)
def test_invalid_arguments_rejected(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid"):
        FlowTable(**arguments)  # type: ignore[arg-type]


# Memory.


def test_flow_memory_bound() -> None:
    count = 20_000
    segments = [
        tcp(f"10.0.{index >> 8 & 255}.{index & 255}", 40000 + index, POOL, 3333, SYN)
        for index in range(count)
    ]
    table = FlowTable(max_flows=count)
    gc.collect()
    tracemalloc.start()
    try:
        for segment in segments:
            flow, direction = table.lookup(segment)
            flow.stream(direction)
        allocated, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # About 0.4 KiB for the flow, its key and its table entry, and 0.4 KiB for
    # its two empty reassemblers (CPython 3.11).
    assert allocated / count < 1024


# Properties.


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([TCP, UDP]),
            st.sampled_from(["10.0.0.1", "10.0.0.2", "192.0.2.9"]),
            st.sampled_from([80, 3333, 40000, 60000]),
            st.sampled_from(["10.0.0.1", "198.51.100.7"]),
            st.sampled_from([443, 3333, 50000]),
            st.sampled_from([0, SYN, SYN | ACK, ACK, FIN | ACK, RST]),
        ),
        max_size=80,
    ),
    st.integers(min_value=1, max_value=6),
)
def test_lookup_consistent(
    segments: list[tuple[str, str, int, str, int, int]], max_flows: int
) -> None:
    table = FlowTable(max_flows=max_flows)
    # Flows stay referenced here, so no id is reused by a later flow.
    roles: dict[int, tuple[Flow, FlowKey]] = {}

    for index, (transport, src, sport, dst, dport, flags) in enumerate(segments):
        segment = Segment(
            timestamp=float(index),
            transport=transport,
            src_ip=src,
            src_port=sport,
            dst_ip=dst,
            dst_port=dport,
            payload=b"",
            flags=flags,
        )
        flow, direction = table.lookup(segment)
        table.drain_evicted()
        key = flow.key
        if direction is Direction.TO_SERVER:
            assert (key.client_ip, key.client_port) == (src, sport)
            assert (key.server_ip, key.server_port) == (dst, dport)
        else:
            assert (key.client_ip, key.client_port) == (dst, dport)
            assert (key.server_ip, key.server_port) == (src, sport)
        assert key.transport == transport
        assert roles.setdefault(id(flow), (flow, key))[1] == key
        assert len(table) <= max_flows
        assert flow.last_seen == float(index)
