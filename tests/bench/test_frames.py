"""Frames and checksums of the benchmark generator, read back with dpkt."""

from __future__ import annotations

import random

import dpkt
from hypothesis import given
from hypothesis import strategies as st

from detector.bench.conversation import TcpConversation, Write, tcp_flow, udp_exchange
from detector.bench.frames import (
    Endpoint,
    FramePath,
    container_mac,
    finish_checksum,
    ones_complement_sum,
)
from detector.model import ACK, FIN, PSH, SYN

CLIENT = Endpoint("172.17.0.9", 40000)
SERVER = Endpoint("203.0.113.10", 3333)
CLIENT6 = Endpoint("2001:db8:ac11::9", 40000)
SERVER6 = Endpoint("2001:db8::53", 53)


def naive_sum(data: bytes) -> int:
    """RFC 1071's loop: add 16-bit words, folding the carries back in."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for index in range(0, len(data), 2):
        total += (data[index] << 8) | data[index + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum_ok(pseudo: bytes, segment: bytes) -> bool:
    # A segment whose checksum field is right sums to 0xFFFF with its
    # pseudo-header.
    return naive_sum(pseudo + segment) == 0xFFFF


def ipv4_pseudo(ip: dpkt.ip.IP, protocol: int) -> bytes:
    return ip.src + ip.dst + bytes([0, protocol]) + len(ip.data).to_bytes(2, "big")


def ipv6_pseudo(ip: dpkt.ip6.IP6, protocol: int) -> bytes:
    return (
        ip.src + ip.dst + len(ip.data).to_bytes(4, "big") + bytes([0, 0, 0, protocol])
    )


@given(st.binary(max_size=3000))
def test_sum_matches_rfc1071_loop(data: bytes) -> None:
    assert ones_complement_sum(data) % 0xFFFF == naive_sum(data) % 0xFFFF
    assert (ones_complement_sum(data) == 0) == (naive_sum(data) == 0)


def test_sum_of_all_ones_is_ffff() -> None:
    assert ones_complement_sum(b"\xff\xff\xff\xff") == 0xFFFF
    assert ones_complement_sum(b"") == 0
    assert finish_checksum(0xFFFF) == 0


def test_container_mac_embeds_ipv4() -> None:
    assert container_mac("172.17.0.2") == bytes.fromhex("0242ac110002")


def test_tcp_frame_fields_and_checksums() -> None:
    path = FramePath(
        CLIENT, SERVER, container_mac(CLIENT.ip), b"\x02" * 6, ttl=64, ip_id=7
    )
    frame = path.tcp(1000, 2000, ACK | PSH, b"hello\n", window=502)
    ethernet = dpkt.ethernet.Ethernet(frame)
    ip = ethernet.data
    tcp = ip.data
    assert isinstance(ip, dpkt.ip.IP)
    assert isinstance(tcp, dpkt.tcp.TCP)
    assert ip.ttl == 64
    assert ip.id == 7
    assert ip.len == len(frame) - 14
    assert (tcp.sport, tcp.dport) == (CLIENT.port, SERVER.port)
    assert (tcp.seq, tcp.ack, tcp.flags, tcp.win) == (1000, 2000, ACK | PSH, 502)
    assert tcp.data == b"hello\n"
    assert naive_sum(bytes(frame[14:34])) == 0xFFFF
    assert checksum_ok(ipv4_pseudo(ip, 6), frame[34:])


def test_ip_id_counts_up() -> None:
    path = FramePath(CLIENT, SERVER, b"\x02" * 6, b"\x02" * 6, ttl=64, ip_id=0xFFFF)
    first = dpkt.ethernet.Ethernet(path.tcp(1, 0, SYN, window=1))
    second = dpkt.ethernet.Ethernet(path.tcp(2, 0, SYN, window=1))
    assert first.data.id == 0xFFFF
    assert second.data.id == 0


@given(st.binary(max_size=1500), st.integers(0, 2**32 - 1))
def test_udp_checksum_always_valid(payload: bytes, seq: int) -> None:
    path = FramePath(CLIENT, SERVER, b"\x02" * 6, b"\x02" * 6, ttl=64)
    frame = path.udp(payload)
    ip = dpkt.ethernet.Ethernet(frame).data
    assert ip.data.data == payload
    assert checksum_ok(ipv4_pseudo(ip, 17), frame[34:])
    tcp_frame = path.tcp(seq, seq, ACK, payload, window=1)
    tcp_ip = dpkt.ethernet.Ethernet(tcp_frame).data
    assert checksum_ok(ipv4_pseudo(tcp_ip, 6), tcp_frame[34:])


def test_ipv6_frame_over_vlan() -> None:
    path = FramePath(
        CLIENT6, SERVER6, b"\x02" * 6, b"\x04" * 6, ttl=60, vlan=100, flow_label=5
    )
    frame = path.udp(b"query")
    ethernet = dpkt.ethernet.Ethernet(frame)
    assert ethernet.vlan_tags[0].id == 100
    ip = ethernet.data
    assert isinstance(ip, dpkt.ip6.IP6)
    assert ip.hlim == 60
    assert ip.flow == 5
    assert ip.data.data == b"query"
    assert checksum_ok(ipv6_pseudo(ip, 17), bytes(ip.data))


def test_mixed_versions_rejected() -> None:
    try:
        FramePath(CLIENT, SERVER6, b"\0" * 6, b"\0" * 6, ttl=1)
    except ValueError as error:
        assert "IP version" in str(error)
    else:
        raise AssertionError("expected ValueError")


def test_tcp_flow_sequence_numbers() -> None:
    writes = [Write(True, b"a" * 3000), Write(False, b"b" * 10)]
    frames = tcp_flow(
        CLIENT, SERVER, writes, 0, random.Random(1), rtt_ns=1000, segment_gap_ns=10
    )
    segments = [dpkt.ethernet.Ethernet(frame).data.data for _, frame in frames]
    assert segments[0].flags == SYN
    assert segments[1].flags == SYN | ACK
    assert segments[1].ack == segments[0].seq + 1
    client_data = b"".join(
        s.data for s in segments if s.sport == CLIENT.port and s.data
    )
    server_data = b"".join(
        s.data for s in segments if s.sport == SERVER.port and s.data
    )
    assert client_data == b"a" * 3000
    assert server_data == b"b" * 10
    assert max(len(s.data) for s in segments) == 1460
    # Client data starts right after the SYN and follows on without gaps.
    expected_seq = segments[0].seq + 1
    for segment in segments[2:]:
        if segment.sport == CLIENT.port and segment.data:
            assert segment.seq == expected_seq
            expected_seq += len(segment.data)
    fins = [s for s in segments if s.flags & FIN]
    assert len(fins) == 2
    times = [timestamp for timestamp, _ in frames]
    assert times == sorted(times)


def test_server_waits_a_round_trip() -> None:
    conversation = TcpConversation(
        CLIENT, SERVER, 0, random.Random(2), rtt_ns=5000, segment_gap_ns=1
    )
    conversation.send(True, b"x")
    before = conversation.now
    conversation.send(False, b"y")
    # The server's write follows the client's one round trip later at least.
    server_frame_time = conversation.frames[-2][0]
    assert server_frame_time - before >= 5000


def test_udp_exchange_without_reply() -> None:
    frames = udp_exchange(CLIENT, SERVER, 10, random.Random(3), b"q", None, rtt_ns=1)
    assert len(frames) == 1
    assert frames[0][0] == 10
