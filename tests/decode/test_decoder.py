"""Tests for IPv4, IPv6, TCP and UDP decoding in PacketDecoder."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6ND_NS,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from detector.decode import (
    MAX_IPV6_EXTENSION_HEADERS,
    MAX_TUNNEL_DEPTH,
    SUPPORTED_LINKTYPES,
    PacketDecoder,
)
from detector.errors import DecodeError
from detector.model import ACK, PSH, Segment
from detector.model import TCP as TCP_TRANSPORT
from detector.model import UDP as UDP_TRANSPORT
from tests.decode.samples import (
    CLIENT_V4,
    CLIENT_V6,
    PAYLOAD,
    SERVER_V4,
    SERVER_V6,
    ethernet,
    packet,
    tcp_v4,
    tcp_v6,
    udp_v4,
)


def decode(data: bytes, linktype: int = 1, wire_length: int | None = None):
    return PacketDecoder().decode(packet(data, linktype, wire_length=wire_length))


def test_tcp_fields() -> None:
    segment = PacketDecoder().decode(
        packet(ethernet(tcp_v4()), timestamp=12.5, number=9)
    )

    assert segment == Segment(
        timestamp=12.5,
        transport=TCP_TRANSPORT,
        src_ip=CLIENT_V4,
        src_port=40000,
        dst_ip=SERVER_V4,
        dst_port=3333,
        payload=PAYLOAD,
        seq=1000,
        ack=2000,
        flags=PSH | ACK,
        packet_number=9,
    )


def test_tcp_options_skipped() -> None:
    network = (
        IP(src=CLIENT_V4, dst=SERVER_V4)
        / TCP(options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])
        / Raw(PAYLOAD)
    )

    segment = decode(ethernet(network))

    assert segment is not None
    assert segment.payload == PAYLOAD


def test_udp_fields() -> None:
    segment = decode(ethernet(udp_v4()))

    assert segment is not None
    assert segment.transport == UDP_TRANSPORT
    assert segment.src_port == 5353
    assert segment.dst_port == 53
    assert segment.payload == PAYLOAD
    assert (segment.seq, segment.ack, segment.flags) == (0, 0, 0)


def test_ipv6_address_text() -> None:
    network = (
        IPv6(src="2001:0db8:0000:0000:0000:0000:0000:0001", dst="fe80::1:0:0:2")
        / UDP(sport=1, dport=2)
        / Raw(b"x")
    )

    segment = decode(ethernet(network))

    assert segment is not None
    assert segment.src_ip == "2001:db8::1"
    assert segment.dst_ip == str(ipaddress.IPv6Address("fe80::1:0:0:2"))


def test_ipv4_mapped_address_text() -> None:
    network = IPv6(src="::ffff:192.0.2.1", dst="::1") / UDP(sport=1, dport=2)

    segment = decode(ethernet(network))

    assert segment is not None
    assert segment.src_ip == "::ffff:192.0.2.1"


def test_ipv4_options_skipped() -> None:
    network = IP(src=CLIENT_V4, dst=SERVER_V4, options=b"\x01" * 8) / TCP() / PAYLOAD

    segment = decode(ethernet(network))

    assert segment is not None
    assert segment.payload == PAYLOAD


def test_ethernet_padding_ignored() -> None:
    # Ethernet pads short frames to 60 bytes and some captures keep the frame
    # check sequence, so the IP total length must end the payload.
    frame = ethernet(tcp_v4(b"hi"))

    segment = decode(frame + b"\0" * 20 + b"FCS!")

    assert segment is not None
    assert segment.payload == b"hi"


def test_udp_length_ends_payload() -> None:
    segment = decode(ethernet(udp_v4(b"abc")) + b"trailer")

    assert segment is not None
    assert segment.payload == b"abc"


def test_not_tcp_or_udp() -> None:
    assert decode(ethernet(IP() / ICMP())) is None
    assert decode(ethernet(IPv6() / ICMPv6ND_NS(tgt="fe80::1"))) is None
    assert decode(ethernet(IPv6(nh=50) / Raw(b"\0" * 16))) is None
    assert decode(ethernet(IPv6(nh=59))) is None


def test_snaplen_cut_payload_kept() -> None:
    frame = ethernet(tcp_v4())
    cut = frame[:-10]

    segment = decode(cut, wire_length=len(frame))

    assert segment is not None
    assert segment.payload == PAYLOAD[:-10]


def test_snaplen_cut_tcp_options_gives_empty_payload() -> None:
    network = IP(src=CLIENT_V4, dst=SERVER_V4) / TCP(options=[("MSS", 1460)]) / PAYLOAD
    frame = ethernet(network)
    cut = frame[: 14 + 20 + 22]

    segment = decode(cut, wire_length=len(frame))

    assert segment is not None
    assert segment.payload == b""
    assert segment.dst_port == 80


def test_every_prefix_decodes_or_raises() -> None:
    # Each prefix is what a smaller snap length would have captured.
    for frame in (ethernet(tcp_v4()), ethernet(tcp_v6()), ethernet(udp_v4())):
        for length in range(len(frame) + 1):
            try:
                segment = decode(frame[:length], wire_length=len(frame))
            except DecodeError:
                continue
            assert segment is not None
            assert PAYLOAD.startswith(segment.payload)
        assert decode(frame).payload == PAYLOAD


@pytest.mark.parametrize(
    ("network", "message"),
    [
        (bytes(tcp_v4())[:19], "IPv4 header truncated: 19 bytes captured"),
        (
            b"\x43" + bytes(tcp_v4())[1:],
            "IPv4 header length 3 words is below the minimum 5",
        ),
        (b"\x4f" + bytes(tcp_v4())[1:40], "IPv4 header length 60 bytes is beyond"),
        (b"\x60" + bytes(tcp_v4())[1:], "IPv4 version field is 6"),
        (
            bytes(IP(len=19) / TCP()),
            "IPv4 total length 19 is below the header length 20",
        ),
        (bytes(IP() / TCP())[:30], "TCP header truncated: 10 bytes"),
        (
            bytes(IP() / TCP(dataofs=4)),
            "TCP data offset 4 words is below the minimum 5",
        ),
        (bytes(IP() / TCP(dataofs=15)), "TCP data offset 60 bytes is beyond the 20"),
        (
            bytes(IP(len=40) / TCP(options=[("MSS", 1460)])) + b"padding",
            "TCP data offset 24 bytes is beyond the 20 bytes of the IP payload",
        ),
        (bytes(IP() / UDP())[:25], "UDP header truncated: 5 bytes"),
        (bytes(IP() / UDP(len=7)), "UDP length 7 is below the header length 8"),
        (bytes(IP() / UDP(len=30)), "UDP length 30 is beyond the 8 bytes"),
        (bytes(tcp_v6())[:39], "IPv6 header truncated: 39 bytes captured"),
        (b"\x40" + bytes(tcp_v6())[1:], "IPv6 version field is 4"),
    ],
    ids=lambda value: value if isinstance(value, str) else "network",
)
def test_malformed_headers(network: bytes, message: str) -> None:
    ethertype = 0x86DD if "IPv6" in message else 0x0800
    frame = bytes(Ether(type=ethertype) / Raw(network))

    with pytest.raises(DecodeError, match=message):
        decode(frame)


def test_ipv4_zero_total_length_uses_capture() -> None:
    # Linux GSO packets above 64 KiB carry a total length of 0.
    network = bytearray(bytes(tcp_v4()))
    network[2:4] = b"\0\0"

    segment = decode(bytes(Ether(type=0x0800) / Raw(bytes(network))))

    assert segment is not None
    assert segment.payload == PAYLOAD


def test_ipv6_extension_headers() -> None:
    network = (
        IPv6(src=CLIENT_V6, dst=SERVER_V6)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrRouting(addresses=["2001:db8::99"])
        / AH(spi=1, icv=b"\0" * 12)
        / IPv6ExtHdrDestOpt()
        / TCP(sport=1, dport=2)
        / Raw(PAYLOAD)
    )

    segment = decode(ethernet(network))

    assert segment is not None
    assert segment.src_ip == CLIENT_V6
    assert segment.payload == PAYLOAD


def extension_chain(count: int) -> bytes:
    headers = b""
    for index in range(count):
        next_header = 60 if index < count - 1 else 6
        headers += bytes([next_header, 0]) + b"\x01\x04\0\0\0\0"
    tcp = bytes(TCP(sport=1, dport=2) / Raw(b"x"))
    fixed = struct.pack("!IHBB", 0x60000000, len(headers) + len(tcp), 60, 64)
    return fixed + bytes(32) + headers + tcp


def test_ipv6_extension_chain_at_maximum() -> None:
    segment = decode(extension_chain(MAX_IPV6_EXTENSION_HEADERS), 229)

    assert segment is not None
    assert segment.payload == b"x"


def test_ipv6_extension_chain_beyond_maximum() -> None:
    with pytest.raises(DecodeError, match="extension header chain is longer"):
        decode(extension_chain(MAX_IPV6_EXTENSION_HEADERS + 1), 229)


def test_ipv6_extension_header_beyond_packet() -> None:
    network = bytearray(bytes(IPv6() / IPv6ExtHdrDestOpt() / TCP()))
    network[41] = 200

    with pytest.raises(DecodeError, match="destination options header length 1608"):
        decode(bytes(network), 229)


def test_ipv6_extension_header_truncated() -> None:
    network = bytes(IPv6(nh=0, plen=1)) + b"\x06"

    with pytest.raises(DecodeError, match="hop-by-hop options header truncated"):
        decode(network, 229)


def test_ipip_tunnel() -> None:
    outer = IP(src="192.0.2.1", dst="192.0.2.2") / tcp_v4()

    segment = decode(ethernet(outer))

    assert segment is not None
    assert segment.src_ip == CLIENT_V4
    assert segment.payload == PAYLOAD


def test_ipv6_in_ipv4_tunnel() -> None:
    segment = decode(ethernet(IP(src="192.0.2.1", dst="192.0.2.2") / tcp_v6()))

    assert segment is not None
    assert segment.src_ip == CLIENT_V6


def test_tunnel_depth_limited() -> None:
    network = tcp_v4()
    for _ in range(MAX_TUNNEL_DEPTH):
        network = IP(src="192.0.2.1", dst="192.0.2.2") / network
    assert decode(bytes(network), 228) is not None

    network = IP(src="192.0.2.1", dst="192.0.2.2") / network
    with pytest.raises(DecodeError, match="tunnel nesting"):
        decode(bytes(network), 228)


def test_decoder_keeps_no_state_between_whole_packets() -> None:
    decoder = PacketDecoder()

    first = decoder.decode(packet(ethernet(tcp_v4()), number=1))
    second = decoder.decode(packet(ethernet(tcp_v4()), number=2))

    assert first is not None
    assert second is not None
    assert first.packet_number == 1
    assert second.packet_number == 2
    assert decoder.fragments_pending == 0


SAMPLE_FRAMES = [
    ethernet(tcp_v4()),
    ethernet(tcp_v6()),
    ethernet(udp_v4()),
    bytes(Ether() / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / TCP()),
]


@settings(max_examples=400)
@given(
    linktype=st.sampled_from(sorted(SUPPORTED_LINKTYPES) + [147]),
    data=st.binary(max_size=200),
)
def test_random_bytes_give_segment_or_decode_error(linktype: int, data: bytes) -> None:
    try:
        result = decode(data, linktype)
    except DecodeError:
        return
    assert result is None or isinstance(result, Segment)


@settings(max_examples=400)
@given(
    frame=st.sampled_from(SAMPLE_FRAMES),
    flips=st.lists(
        st.tuples(st.integers(min_value=0, max_value=200), st.integers(1, 255)),
        min_size=1,
        max_size=4,
    ),
)
def test_damaged_frames_give_segment_or_decode_error(frame: bytes, flips) -> None:
    damaged = bytearray(frame)
    for position, mask in flips:
        damaged[position % len(damaged)] ^= mask

    try:
        result = decode(bytes(damaged))
    except DecodeError:
        return
    assert result is None or isinstance(result, Segment)


@settings(max_examples=300)
@given(
    ports=st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
    numbers=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    flags=st.integers(0, 255),
    option_words=st.integers(0, 10),
    payload=st.binary(max_size=64),
    cut=st.integers(0, 200),
    total_length=st.none() | st.integers(0, 200),
    padding=st.binary(max_size=8),
)
def test_ethernet_ipv4_tcp_matches_raw_ipv4(
    ports,
    numbers,
    flags: int,
    option_words: int,
    payload: bytes,
    cut: int,
    total_length: int | None,
    padding: bytes,
) -> None:
    # Ethernet/IPv4/TCP takes a shortcut past the per-layer decoders, which
    # raw IPv4 packets do not, so both must give the same segment.
    network = bytes(
        IP(src=CLIENT_V4, dst=SERVER_V4)
        / TCP(
            sport=ports[0],
            dport=ports[1],
            seq=numbers[0],
            ack=numbers[1],
            flags=flags,
            options=[("NOP", None)] * (option_words * 4),
        )
        / Raw(payload)
    )
    if total_length is not None:
        network = network[:2] + total_length.to_bytes(2, "big") + network[4:]
    network = network[: max(len(network) - cut, 0)] + padding
    frame = bytes(Ether(type=0x0800)) + network

    results = []
    for data, linktype in ((frame, 1), (network, 228)):
        try:
            results.append(decode(data, linktype))
        except DecodeError as exc:
            results.append(str(exc))

    assert results[0] == results[1]
