"""TCP and UDP conversations: sequence numbers, flags, segmentation options."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from detector.model import ACK, FIN, PSH, SYN, Direction
from detector.trafficgen.conversation import (
    IPV4_MSS,
    IPV6_MSS,
    Endpoint,
    Step,
    TimedPacket,
    coalesce,
    default_isn,
    merge,
    tcp_conversation,
    to_client,
    to_server,
    udp_conversation,
)

CLIENT = Endpoint("172.17.0.2", 40000)
SERVER = Endpoint("203.0.113.10", 3333)
START = 1_767_225_600_000_000_000


def payload(packet: TimedPacket) -> bytes:
    return bytes(packet.packet[Raw].load) if Raw in packet.packet else b""


def reassemble(packets: list[TimedPacket], direction: Direction) -> bytes:
    """Rebuild one direction's stream from sequence numbers, keeping the first
    copy of retransmitted bytes."""
    if direction is Direction.TO_SERVER:
        isn = default_isn(CLIENT, SERVER)
    else:
        isn = default_isn(SERVER, CLIENT)
    pieces: dict[int, bytes] = {}
    for packet in packets:
        data = payload(packet)
        if packet.direction is direction and data:
            offset = (packet.packet[TCP].seq - isn - 1) % 2**32
            pieces.setdefault(offset, data)
    stream = b""
    for offset in sorted(pieces):
        assert offset == len(stream), "gap or overlap in the stream"
        stream += pieces[offset]
    return stream


def flags(packet: TimedPacket) -> int:
    return int(packet.packet[TCP].flags)


def test_handshake_and_close() -> None:
    steps = [to_server(b"hello\n"), to_client(b"world\n")]
    packets = tcp_conversation(CLIENT, SERVER, steps, start_ns=START)
    assert [flags(packet) for packet in packets[:3]] == [SYN, SYN | ACK, ACK]
    assert flags(packets[-3]) == FIN | ACK
    assert packets[-3].direction is Direction.TO_SERVER
    assert flags(packets[-2]) == FIN | ACK
    assert packets[-2].direction is Direction.TO_CLIENT
    assert flags(packets[-1]) == ACK
    assert packets[0].timestamp_ns == START


def test_syn_advertises_mss() -> None:
    packets = tcp_conversation(CLIENT, SERVER, [to_server(b"x")], start_ns=START)
    options = dict(packets[0].packet[TCP].options)
    assert options["MSS"] == IPV4_MSS


def test_acknowledgements_follow_the_other_stream() -> None:
    steps = [to_server(b"abc"), to_client(b"defgh")]
    packets = tcp_conversation(CLIENT, SERVER, steps, start_ns=START)
    reply = next(p for p in packets if payload(p) == b"defgh")
    client_isn = default_isn(CLIENT, SERVER)
    assert reply.packet[TCP].ack == client_isn + 1 + 3


def test_mid_session_has_no_handshake() -> None:
    packets = tcp_conversation(
        CLIENT,
        SERVER,
        [to_client(b"push\n")],
        start_ns=START,
        handshake=False,
        close_by=None,
    )
    assert len(packets) == 2
    assert flags(packets[0]) == ACK | PSH
    assert flags(packets[1]) == ACK
    assert packets[1].direction is Direction.TO_SERVER


def test_long_write_is_cut_at_mss() -> None:
    data = bytes(range(256)) * 13
    packets = tcp_conversation(CLIENT, SERVER, [to_server(data)], start_ns=START)
    sizes = [len(payload(p)) for p in packets if payload(p)]
    assert sizes == [IPV4_MSS, IPV4_MSS, len(data) - 2 * IPV4_MSS]
    assert reassemble(packets, Direction.TO_SERVER) == data


def test_ipv6_uses_ipv6_mss() -> None:
    client = Endpoint("2001:db8:1::2", 40000)
    server = Endpoint("2001:db8:2::10", 3333)
    data = b"z" * 3000
    packets = tcp_conversation(client, server, [to_server(data)], start_ns=START)
    assert IPv6 in packets[0].packet
    sizes = [len(payload(p)) for p in packets if payload(p)]
    assert sizes[0] == IPV6_MSS


def test_segment_sizes_split_a_line() -> None:
    line = b'{"id":1,"method":"login"}\n'
    step = to_server(line, segment_sizes=(1, 2, 3))
    packets = tcp_conversation(CLIENT, SERVER, [step], start_ns=START)
    sizes = [len(payload(p)) for p in packets if payload(p)]
    assert sizes == [1, 2, 3, len(line) - 6]
    psh = [bool(flags(p) & PSH) for p in packets if payload(p)]
    assert psh == [False, False, False, True]


def test_send_order_and_retransmit() -> None:
    data = b"aaaabbbbcccc"
    step = to_server(data, segment_sizes=(4, 4), send_order=(2, 0, 1), retransmit=(0,))
    packets = tcp_conversation(CLIENT, SERVER, [step], start_ns=START)
    on_wire = [payload(p) for p in packets if payload(p)]
    assert on_wire == [b"cccc", b"aaaa", b"bbbb", b"aaaa"]
    first, resent = [p for p in packets if payload(p) == b"aaaa"]
    assert first.packet[TCP].seq == resent.packet[TCP].seq
    assert reassemble(packets, Direction.TO_SERVER) == data


def test_coalesce_joins_lines() -> None:
    merged = coalesce([to_client(b"a\n"), to_client(b"b\n", delay=9.0)])
    assert merged.data == b"a\nb\n"
    assert merged.direction is Direction.TO_CLIENT
    packets = tcp_conversation(CLIENT, SERVER, [merged], start_ns=START)
    assert [payload(p) for p in packets if payload(p)] == [b"a\nb\n"]


def test_coalesce_rejects_mixed_directions() -> None:
    with pytest.raises(ValueError):
        coalesce([to_client(b"a"), to_server(b"b")])
    with pytest.raises(ValueError):
        coalesce([])


@pytest.mark.parametrize(
    "options",
    [
        {"segment_sizes": (0,)},
        {"segment_sizes": (5, 5)},
        {"delay": -1.0},
    ],
)
def test_step_rejects_bad_options(options: dict) -> None:
    with pytest.raises(ValueError):
        to_server(b"12345678", **options)


def test_step_rejects_empty_data() -> None:
    with pytest.raises(ValueError):
        to_server(b"")


@pytest.mark.parametrize(
    "options",
    [
        {"send_order": (0, 0)},
        {"send_order": (1,)},
        {"retransmit": (3,)},
        {"segment_sizes": (IPV4_MSS + 1,)},
    ],
)
def test_builder_rejects_options_that_do_not_fit(options: dict) -> None:
    step = to_server(b"x" * (IPV4_MSS + 10), **options)
    with pytest.raises(ValueError):
        tcp_conversation(CLIENT, SERVER, [step], start_ns=START)


def test_mixed_ip_versions_rejected() -> None:
    with pytest.raises(ValueError):
        tcp_conversation(
            CLIENT, Endpoint("2001:db8::1", 3333), [to_server(b"x")], start_ns=START
        )


def test_endpoint_validation() -> None:
    with pytest.raises(ValueError):
        Endpoint("not-an-ip", 80)
    with pytest.raises(ValueError):
        Endpoint("192.0.2.1", 0)
    assert str(Endpoint("2001:db8::1", 443)) == "[2001:db8::1]:443"
    assert str(CLIENT) == "172.17.0.2:40000"


def test_udp_one_datagram_per_step() -> None:
    steps = [to_server(b"query"), to_client(b"answer", delay=0.004)]
    packets = udp_conversation(
        CLIENT, Endpoint("192.0.2.53", 53), steps, start_ns=START
    )
    assert len(packets) == 2
    assert UDP in packets[0].packet
    assert bytes(packets[1].packet[Raw].load) == b"answer"
    assert packets[1].timestamp_ns - packets[0].timestamp_ns == 4_000_000
    assert packets[1].packet[IP].src == "192.0.2.53"


def test_udp_rejects_segment_options() -> None:
    with pytest.raises(ValueError):
        udp_conversation(
            CLIENT, SERVER, [to_server(b"abc", segment_sizes=(1,))], start_ns=START
        )


def test_merge_orders_by_time() -> None:
    early = tcp_conversation(CLIENT, SERVER, [to_server(b"a")], start_ns=START)
    other_client = Endpoint("172.17.0.3", 40001)
    late = tcp_conversation(
        other_client, SERVER, [to_server(b"b")], start_ns=START + 1_000
    )
    combined = merge([late, early])
    times = [packet.timestamp_ns for packet in combined]
    assert times == sorted(times)
    assert len(combined) == len(early) + len(late)


def test_times_never_go_backwards() -> None:
    steps = [to_server(b"a" * 4000), to_client(b"b"), to_client(b"c", delay=0.0)]
    packets = tcp_conversation(CLIENT, SERVER, steps, start_ns=START)
    times = [packet.timestamp_ns for packet in packets]
    assert times == sorted(times)


@st.composite
def step_lists(draw: st.DrawFn) -> list[Step]:
    count = draw(st.integers(min_value=1, max_value=6))
    steps = []
    for _ in range(count):
        direction = draw(st.sampled_from(list(Direction)))
        data = draw(st.binary(min_size=1, max_size=4000))
        sizes = draw(st.lists(st.integers(min_value=1, max_value=1600), max_size=5))
        order = draw(st.permutations(range(draw(st.integers(0, 6)))))
        retransmit = draw(st.lists(st.integers(min_value=-1, max_value=6), max_size=2))
        try:
            step = Step(
                direction,
                data,
                delay=0.01,
                segment_sizes=tuple(sizes),
                send_order=tuple(order),
                retransmit=tuple(retransmit),
            )
        except ValueError:
            step = Step(direction, data, delay=0.01)
        steps.append(step)
    return steps


@settings(max_examples=150, deadline=None)
@given(steps=step_lists(), handshake=st.booleans())
def test_streams_reassemble_or_reject(steps: list[Step], handshake: bool) -> None:
    try:
        packets = tcp_conversation(
            CLIENT, SERVER, steps, start_ns=START, handshake=handshake
        )
    except ValueError:
        return
    for direction in Direction:
        expected = b"".join(s.data for s in steps if s.direction is direction)
        assert reassemble(packets, direction) == expected
    for packet in packets:
        assert len(payload(packet)) <= IPV4_MSS
    times = [packet.timestamp_ns for packet in packets]
    assert times == sorted(times)
