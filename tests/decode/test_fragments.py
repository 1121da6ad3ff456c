"""Tests for IPv4 and IPv6 fragment reassembly in PacketDecoder."""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    fragment6,
)
from scapy.packet import Raw

from detector.decode import (
    FRAGMENT_TIMEOUT,
    MAX_FRAGMENT_BYTES,
    MAX_FRAGMENT_SETS,
    PacketDecoder,
)
from detector.errors import DecodeError
from detector.model import TCP as TCP_TRANSPORT
from detector.model import UDP as UDP_TRANSPORT
from tests.decode.samples import CLIENT_V4, CLIENT_V6, SERVER_V4, SERVER_V6, packet

BIG_PAYLOAD = bytes(range(256)) * 16
RAW_IPV4 = 228
RAW_IPV6 = 229


def ipv4_fragments(
    payload: bytes = BIG_PAYLOAD, identification: int = 99
) -> list[bytes]:
    whole = (
        IP(src=CLIENT_V4, dst=SERVER_V4, id=identification)
        / TCP(sport=40000, dport=3333, seq=5)
        / Raw(payload)
    )
    return [bytes(piece) for piece in fragment(whole, fragsize=1000)]


def ipv6_fragments(payload: bytes = BIG_PAYLOAD) -> list[bytes]:
    whole = (
        IPv6(src=CLIENT_V6, dst=SERVER_V6)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrFragment(id=1234)
        / IPv6ExtHdrDestOpt()
        / UDP(sport=5000, dport=3333)
        / Raw(payload)
    )
    return [bytes(piece) for piece in fragment6(whole, 1280)]


def feed(decoder: PacketDecoder, pieces: list[bytes], linktype: int = RAW_IPV4):
    results = []
    for number, piece in enumerate(pieces, start=1):
        results.append(decoder.decode(packet(piece, linktype, 10.0 + number, number)))
    return results


def raw_fragment(
    offset: int, more: bool, data: bytes, identification: int = 7
) -> bytes:
    flags = "MF" if more else 0
    return bytes(
        IP(
            src=CLIENT_V4,
            dst=SERVER_V4,
            id=identification,
            proto=17,
            flags=flags,
            frag=offset // 8,
        )
        / Raw(data)
    )


def test_ipv4_fragments_in_order() -> None:
    decoder = PacketDecoder()
    pieces = ipv4_fragments()
    assert len(pieces) > 3

    results = feed(decoder, pieces)

    assert results[:-1] == [None] * (len(pieces) - 1)
    segment = results[-1]
    assert segment is not None
    assert segment.transport == TCP_TRANSPORT
    assert segment.payload == BIG_PAYLOAD
    assert segment.seq == 5
    assert segment.packet_number == len(pieces)
    assert segment.timestamp == 10.0 + len(pieces)
    assert decoder.fragments_pending == 0
    assert decoder.fragments_expired == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ipv4_fragments_out_of_order(seed: int) -> None:
    pieces = ipv4_fragments()
    random.Random(seed).shuffle(pieces)
    decoder = PacketDecoder()

    results = feed(decoder, pieces)

    segments = [result for result in results if result is not None]
    assert len(segments) == 1
    assert results[-1] is segments[0]
    assert segments[0].payload == BIG_PAYLOAD


def test_ipv4_fragments_reversed() -> None:
    decoder = PacketDecoder()

    results = feed(decoder, ipv4_fragments()[::-1])

    assert results[-1] is not None
    assert results[-1].payload == BIG_PAYLOAD


def test_ipv4_fragments_with_ethernet_padding() -> None:
    pieces = [piece + b"\0" * 6 for piece in ipv4_fragments()]
    decoder = PacketDecoder()

    results = feed(decoder, pieces)

    assert results[-1] is not None
    assert results[-1].payload == BIG_PAYLOAD


def test_ipv4_duplicate_fragment_ignored() -> None:
    pieces = ipv4_fragments()
    decoder = PacketDecoder()

    results = feed(decoder, [pieces[0], pieces[1], pieces[1], *pieces[2:]])

    assert results[-1] is not None
    assert results[-1].payload == BIG_PAYLOAD


def test_ipv4_pending_counts_sets() -> None:
    decoder = PacketDecoder()

    feed(
        decoder,
        [ipv4_fragments(identification=1)[0], ipv4_fragments(identification=2)[0]],
    )

    assert decoder.fragments_pending == 2


def test_ipv4_overlap_discards_datagram() -> None:
    decoder = PacketDecoder()
    decoder.decode(packet(raw_fragment(0, True, b"A" * 16), RAW_IPV4))

    with pytest.raises(DecodeError, match="overlaps"):
        decoder.decode(packet(raw_fragment(8, True, b"B" * 16), RAW_IPV4))

    assert decoder.fragments_pending == 0
    # The rest of the datagram cannot complete the discarded set.
    assert decoder.decode(packet(raw_fragment(16, False, b"C" * 8), RAW_IPV4)) is None


def test_ipv4_same_offset_different_bytes_is_overlap() -> None:
    decoder = PacketDecoder()
    decoder.decode(packet(raw_fragment(0, True, b"A" * 16), RAW_IPV4))

    with pytest.raises(DecodeError, match="overlaps"):
        decoder.decode(packet(raw_fragment(0, True, b"Z" * 16), RAW_IPV4))


def test_ipv4_conflicting_last_fragments() -> None:
    decoder = PacketDecoder()
    decoder.decode(packet(raw_fragment(16, False, b"A" * 8), RAW_IPV4))

    with pytest.raises(DecodeError, match="earlier last fragment"):
        decoder.decode(packet(raw_fragment(32, False, b"B" * 8), RAW_IPV4))

    assert decoder.fragments_pending == 0


def test_ipv4_fragment_beyond_last() -> None:
    decoder = PacketDecoder()
    decoder.decode(packet(raw_fragment(16, False, b"A" * 8), RAW_IPV4))

    with pytest.raises(DecodeError, match="beyond the end 24"):
        decoder.decode(packet(raw_fragment(24, True, b"B" * 8), RAW_IPV4))


def test_ipv4_fragment_beyond_maximum_length() -> None:
    decoder = PacketDecoder()

    with pytest.raises(DecodeError, match="beyond the maximum datagram length"):
        decoder.decode(packet(raw_fragment(65528, False, b"A" * 16), RAW_IPV4))


def test_fragments_time_out() -> None:
    decoder = PacketDecoder()
    first = ipv4_fragments()[0]
    decoder.decode(packet(first, RAW_IPV4, timestamp=100.0))

    decoder.decode(packet(raw_fragment(0, True, b"x" * 8), RAW_IPV4, timestamp=129.0))
    assert decoder.fragments_pending == 2
    assert decoder.fragments_expired == 0

    decoder.decode(
        packet(bytes(IP() / TCP()), RAW_IPV4, timestamp=100.0 + FRAGMENT_TIMEOUT)
    )
    assert decoder.fragments_pending == 1
    assert decoder.fragments_expired == 1


def test_expired_set_does_not_complete() -> None:
    decoder = PacketDecoder()
    pieces = ipv4_fragments()
    decoder.decode(packet(pieces[0], RAW_IPV4, timestamp=0.0))

    late = [
        decoder.decode(packet(piece, RAW_IPV4, timestamp=FRAGMENT_TIMEOUT + 1))
        for piece in pieces[1:]
    ]

    assert late == [None] * len(late)
    assert decoder.fragments_expired == 1
    assert decoder.fragments_pending == 1


def test_fragment_set_limit_drops_oldest() -> None:
    decoder = PacketDecoder()
    for identification in range(MAX_FRAGMENT_SETS + 1):
        piece = raw_fragment(0, True, b"x" * 8, identification=identification)
        decoder.decode(packet(piece, RAW_IPV4))

    assert decoder.fragments_pending == MAX_FRAGMENT_SETS
    assert decoder.fragments_expired == 1
    # The oldest set (identification 0) is gone, so its last piece starts a new set.
    last = raw_fragment(8, False, b"y" * 8, identification=0)
    assert decoder.decode(packet(last, RAW_IPV4)) is None
    assert decoder.fragments_expired == 2


def test_fragment_byte_limit_drops_oldest() -> None:
    decoder = PacketDecoder()
    size = 60_000
    sets = MAX_FRAGMENT_BYTES // size + 1
    for identification in range(sets):
        piece = raw_fragment(0, True, b"x" * size, identification=identification)
        decoder.decode(packet(piece, RAW_IPV4))

    assert decoder.fragments_expired == 1
    assert decoder.fragments_pending == sets - 1


def test_ipv6_fragments_with_extension_headers() -> None:
    pieces = ipv6_fragments()
    assert len(pieces) > 2
    decoder = PacketDecoder()

    results = feed(decoder, pieces, RAW_IPV6)

    assert results[:-1] == [None] * (len(pieces) - 1)
    segment = results[-1]
    assert segment is not None
    assert segment.transport == UDP_TRANSPORT
    assert segment.src_ip == CLIENT_V6
    assert segment.dst_ip == SERVER_V6
    assert segment.dst_port == 3333
    assert segment.payload == BIG_PAYLOAD
    assert decoder.fragments_pending == 0


def test_ipv6_fragments_out_of_order() -> None:
    pieces = ipv6_fragments()
    decoder = PacketDecoder()

    results = feed(decoder, [pieces[-1], *pieces[1:-1], pieces[0]], RAW_IPV6)

    assert results[-1] is not None
    assert results[-1].payload == BIG_PAYLOAD


def test_ipv6_atomic_fragment() -> None:
    network = (
        IPv6(src=CLIENT_V6, dst=SERVER_V6)
        / IPv6ExtHdrFragment(offset=0, m=0, id=5)
        / TCP(sport=1, dport=2)
        / Raw(b"atomic")
    )
    decoder = PacketDecoder()

    segment = decoder.decode(packet(bytes(network), RAW_IPV6))

    assert segment is not None
    assert segment.payload == b"atomic"
    assert decoder.fragments_pending == 0


def test_ipv6_fragment_header_truncated() -> None:
    network = bytes(IPv6(nh=44, plen=4)) + b"\x06\0\0\x01"

    with pytest.raises(DecodeError, match="IPv6 fragment header truncated"):
        PacketDecoder().decode(packet(network, RAW_IPV6))


def test_ipv6_overlap_discards_datagram() -> None:
    def piece(offset: int, data: bytes) -> bytes:
        return bytes(
            IPv6(src=CLIENT_V6, dst=SERVER_V6)
            / IPv6ExtHdrFragment(nh=17, offset=offset // 8, m=1, id=77)
            / Raw(data)
        )

    decoder = PacketDecoder()
    decoder.decode(packet(piece(0, b"A" * 16), RAW_IPV6))

    with pytest.raises(DecodeError, match="overlaps"):
        decoder.decode(packet(piece(8, b"B" * 16), RAW_IPV6))

    assert decoder.fragments_pending == 0


def test_snaplen_cut_fragment_never_completes() -> None:
    pieces = ipv4_fragments()
    decoder = PacketDecoder()
    cut = pieces[1][:-50]

    results = [
        decoder.decode(packet(pieces[0], RAW_IPV4)),
        decoder.decode(packet(cut, RAW_IPV4, wire_length=len(pieces[1]))),
        *[decoder.decode(packet(piece, RAW_IPV4)) for piece in pieces[2:]],
    ]

    assert results == [None] * len(pieces)
    assert decoder.fragments_pending == 1
