"""Tests for BatchDecoder: the same segments, errors and fragment state as
decoding every packet with PacketDecoder."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from detector.capture.batch import PacketBatch, open_batches
from detector.decode import FRAGMENT_TIMEOUT, PacketDecoder
from detector.decode.batch import (
    NO_SEGMENT,
    PER_PACKET,
    SEGMENT,
    BatchDecoder,
    _Layout,
)
from detector.errors import CaptureError, DecodeError
from detector.model import Segment
from tests.conftest import SAMPLES
from tests.decode.samples import (
    CLIENT_V4,
    SERVER_V4,
    ethernet,
    sll,
    sll2,
    tcp_v4,
    tcp_v6,
    udp_v4,
)

LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 147, 228, 229, 276]

Frame = tuple[int, bytes]


def make_batch(
    frames: list[Frame], start: float = 1.0, step: float = 0.5
) -> PacketBatch:
    """Lay ``frames`` (link type, bytes) out as one batch, numbered from 1."""
    lengths = np.array([len(data) for _, data in frames], dtype=np.int64)
    offsets = np.zeros(len(frames), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    count = len(frames)
    return PacketBatch(
        "test",
        b"".join(data for _, data in frames),
        offsets,
        lengths,
        lengths.copy(),
        start + step * np.arange(count, dtype=np.float64),
        np.array([linktype for linktype, _ in frames], dtype=np.int64),
        np.arange(1, count + 1, dtype=np.int64),
        offsets + 24,
    )


Outcome = tuple[list[Segment], list[tuple[int, str]], dict[int, int]]


def per_packet(batches: list[PacketBatch]) -> Outcome:
    decoder = PacketDecoder()
    segments: list[Segment] = []
    errors: list[tuple[int, str]] = []
    unsupported: dict[int, int] = {}
    for batch in batches:
        for packet in batch.packets():
            try:
                segment = decoder.decode(packet)
            except DecodeError as error:
                name = type(error).__name__
                if name == "UnsupportedLinkType":
                    linktype = packet.linktype
                    unsupported[linktype] = unsupported.get(linktype, 0) + 1
                else:
                    errors.append((packet.number, str(error)))
                continue
            if segment is not None:
                segments.append(segment)
    return segments, errors, unsupported


def batched(batches: list[PacketBatch]) -> Outcome:
    decoder = BatchDecoder()
    segments: list[Segment] = []
    errors: list[tuple[int, str]] = []
    unsupported: dict[int, int] = {}
    for batch in batches:
        decoded = decoder.decode(batch)
        found = decoded.segments
        for index in range(len(found)):
            segment = found.segment(index)
            assert int(found.payload_lengths[index]) == len(segment.payload)
            segments.append(segment)
        errors.extend((number, str(error)) for number, error in decoded.malformed)
        for linktype, count in decoded.unsupported.items():
            unsupported[linktype] = unsupported.get(linktype, 0) + count
    return segments, errors, unsupported


def assert_same(frames: list[Frame], step: float = 0.5) -> Outcome:
    batch = make_batch(frames, step=step)
    expected = per_packet([batch])
    found = batched([batch])
    assert found[0] == expected[0]
    assert found[1] == expected[1]
    assert found[2] == expected[2]
    return found


def kinds(frames: list[Frame]) -> list[int]:
    return _Layout(make_batch(frames)).kinds.tolist()


# Samples of every layout the batch path decodes itself, and some it leaves
# to PacketDecoder.
COMMON_SAMPLES: dict[str, Frame] = {
    "ethernet-ipv4-tcp": (1, ethernet(tcp_v4())),
    "ethernet-ipv4-udp": (1, ethernet(udp_v4())),
    "ethernet-ipv6-tcp": (1, ethernet(tcp_v6())),
    "ethernet-vlan-ipv4": (1, bytes(Ether() / Dot1Q(vlan=7) / tcp_v4())),
    "ethernet-ipv4-options": (
        1,
        ethernet(
            IP(src=CLIENT_V4, dst=SERVER_V4, options=b"\x01" * 8) / TCP() / Raw(b"x")
        ),
    ),
    "ethernet-tcp-options": (
        1,
        ethernet(
            IP(src=CLIENT_V4, dst=SERVER_V4)
            / TCP(options=[("MSS", 1460), ("WScale", 7)])
            / Raw(b"payload")
        ),
    ),
    "sll-ipv4": (113, sll(bytes(tcp_v4()), 0x0800)),
    "sll2-ipv6": (276, sll2(bytes(tcp_v6()), 0x86DD)),
    "raw-ipv4": (101, bytes(tcp_v4())),
    "raw-ipv6": (101, bytes(tcp_v6())),
    "ipv4-linktype": (228, bytes(udp_v4())),
    "ipv6-linktype": (229, bytes(tcp_v6())),
}

ODD_SAMPLES: dict[str, Frame] = {
    "qinq": (1, bytes(Ether() / Dot1Q(vlan=1) / Dot1Q(vlan=2) / tcp_v4())),
    "ipv6-hop-by-hop": (
        1,
        ethernet(IPv6() / IPv6ExtHdrHopByHop() / TCP() / Raw(b"data")),
    ),
    "loopback": (0, struct.pack("<I", 2) + bytes(tcp_v4())),
    "ipip": (1, ethernet(IP(src="192.0.2.1", dst="192.0.2.2") / tcp_v4())),
    "llc": (
        1,
        b"\x00" * 12
        + b"\x00\x30"
        + b"\xaa\xaa\x03\x00\x00\x00\x08\x00"
        + bytes(tcp_v4()),
    ),
}


@pytest.mark.parametrize("name", sorted(COMMON_SAMPLES))
def test_common_layouts_decoded_in_batch(name: str) -> None:
    frame = COMMON_SAMPLES[name]

    assert kinds([frame]) == [SEGMENT]
    segments, errors, _ = assert_same([frame])
    assert len(segments) == 1
    assert errors == []


@pytest.mark.parametrize("name", sorted(ODD_SAMPLES))
def test_odd_layouts_left_to_packet_decoder(name: str) -> None:
    frame = ODD_SAMPLES[name]

    assert kinds([frame]) == [PER_PACKET]
    segments, _, _ = assert_same([frame])
    assert len(segments) == 1


def test_not_ip_needs_no_packet_decoder() -> None:
    arp = (1, b"\xff" * 12 + b"\x08\x06" + b"\x00" * 28)
    icmp = (1, ethernet(IP(src=CLIENT_V4, dst=SERVER_V4, proto=1) / Raw(b"ping")))
    netlink = (113, struct.pack("!HHH8sH", 4, 824, 0, b"\0" * 8, 0x0800) + b"\x45")

    assert kinds([arp, icmp, netlink]) == [NO_SEGMENT] * 3
    assert assert_same([arp, icmp, netlink])[0] == []


EDGE_CASES: dict[str, Frame] = {
    "icmp-header-beyond-capture": (
        1,
        ethernet(IP(src=CLIENT_V4, dst=SERVER_V4, proto=1, options=b"\x01" * 40))[:40],
    ),
    "icmp-total-below-header": (
        1,
        b"\x02" * 12
        + b"\x08\x00"
        + struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 10, 1, 0, 64, 1, 0, b"\x0a\0\0\1", b"\x0a\0\0\2"
        )
        + b"\x00" * 8,
    ),
    "tcp-offset-beyond-ip-payload": (
        101,
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + 24,
            1,
            0,
            64,
            6,
            0,
            b"\x0a\0\0\1",
            b"\x0a\0\0\2",
        )
        + struct.pack("!HHIIBBHHH", 1, 2, 3, 4, 0xF0, 0x18, 0, 0, 0)
        + b"\x00" * 60,
    ),
    "tcp-options-cut-by-snaplen": (
        1,
        ethernet(IP() / TCP(options=[("NOP", None)] * 20))[:60],
    ),
    "udp-length-below-header": (
        101,
        bytes(IP(src=CLIENT_V4, dst=SERVER_V4) / UDP(len=4) / Raw(b"abcd")),
    ),
    "udp-length-zero": (101, bytes(IP() / UDP(len=0) / Raw(b"abcd"))),
    "udp-length-beyond-ip": (101, bytes(IP() / UDP(len=400) / Raw(b"abcd"))),
    "ipv4-version-6-in-ipv4-frame": (
        1,
        ethernet(IP() / TCP())[:14] + b"\x65" + b"\0" * 40,
    ),
    "sll-netlink-truncated": (113, struct.pack("!HHH8s", 4, 824, 0, b"\0" * 8)[:12]),
    "sll2-netlink": (276, struct.pack("!HHIHBB8s", 0x0800, 0, 1, 824, 0, 6, b"\0" * 8)),
    "vlan-tag-truncated": (1, b"\x02" * 12 + b"\x81\x00\x00"),
    "raw-empty": (101, b""),
    "raw-version-5": (101, b"\x50" + b"\0" * 40),
    "ipv6-short": (229, bytes(tcp_v6())[:39]),
    "ipv6-zero-payload-length": (229, bytes(IPv6(plen=0) / TCP() / Raw(b"jumbo"))),
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases_match(name: str) -> None:
    frame = EDGE_CASES[name]

    assert_same([frame, (1, ethernet(tcp_v4()))])


def test_unsupported_linktype_counted() -> None:
    frames = [(147, b"abc"), (1, ethernet(tcp_v4())), (147, b""), (300, b"x")]

    segments, errors, unsupported = assert_same(frames)

    assert unsupported == {147: 2, 300: 1}
    assert len(segments) == 1
    assert errors == []


@pytest.mark.parametrize("name", sorted(COMMON_SAMPLES | ODD_SAMPLES))
def test_every_prefix_matches(name: str) -> None:
    linktype, data = (COMMON_SAMPLES | ODD_SAMPLES)[name]
    frames = [(linktype, data[:cut]) for cut in range(len(data) + 1)]

    assert_same(frames)


@pytest.mark.parametrize("name", sorted(COMMON_SAMPLES | ODD_SAMPLES))
def test_trailing_bytes_match(name: str) -> None:
    linktype, data = (COMMON_SAMPLES | ODD_SAMPLES)[name]
    frames = [(linktype, data + b"\x00" * extra) for extra in (1, 6, 60)]

    segments, _, _ = assert_same(frames)

    assert len(segments) == 3


def test_fragments_expire_by_batch_timestamps() -> None:
    datagram = IP(src=CLIENT_V4, dst=SERVER_V4, id=9) / UDP() / Raw(b"z" * 3000)
    first, *rest = [(1, ethernet(part)) for part in fragment(datagram, 1000)]
    filler = [(1, ethernet(tcp_v4()))] * 4
    # The filler packets are decoded in the batch, but their timestamps still
    # time out the pending fragment set before the other fragments arrive.
    frames = [first, *filler, *rest]
    step = FRAGMENT_TIMEOUT / 3

    segments, _, _ = assert_same(frames, step=step)

    decoder = BatchDecoder()
    decoder.decode(make_batch(frames, step=step))
    assert decoder.fragments_expired >= 1
    assert all(segment.payload != b"z" * 3000 for segment in segments)


def test_fragments_reassembled_across_batch() -> None:
    datagram = IP(src=CLIENT_V4, dst=SERVER_V4, id=9) / UDP() / Raw(b"q" * 3000)
    parts = [(1, ethernet(part)) for part in fragment(datagram, 1000)]
    frames = [parts[0], (1, ethernet(tcp_v4())), *parts[1:]]

    segments, _, _ = assert_same(frames, step=0.001)

    assert [segment.payload for segment in segments][-1] == b"q" * 3000


def test_fragment_state_spans_batches() -> None:
    datagram = IP(src=CLIENT_V4, dst=SERVER_V4, id=3) / UDP() / Raw(b"r" * 2500)
    parts = [(1, ethernet(part)) for part in fragment(datagram, 1000)]
    whole = make_batch(parts + [(1, ethernet(tcp_v4()))], step=0.01)
    batches = [whole.slice(0, 1), whole.slice(1, len(whole))]

    assert batched(batches) == per_packet(batches)


def read_until_error(path: Path) -> list[PacketBatch]:
    """Return the batches of ``path``, up to the damage in a damaged capture."""
    batches: list[PacketBatch] = []
    try:
        batches.extend(open_batches(path))
    except CaptureError:
        pass
    return batches


@pytest.mark.parametrize(
    "path", sorted(p for p in SAMPLES.iterdir() if p.name != "manifest.yaml")
)
def test_bundled_samples_match(path: Path) -> None:
    batches = list(open_batches(path))

    assert batched(batches) == per_packet(batches)


def test_real_captures_match(real_pcaps: Path) -> None:
    paths = [
        path
        for path in sorted(real_pcaps.rglob("*"))
        if path.is_file() and path.suffix in (".pcap", ".pcapng", ".cap", ".gz")
    ]
    assert paths
    for path in paths:
        batches = read_until_error(path)
        assert batched(batches) == per_packet(batches), path


# Properties: headers built field by field with values that are often wrong.

ports = st.integers(0, 65535)


@st.composite
def transports(draw: st.DrawFn) -> tuple[int, bytes]:
    payload = draw(st.binary(max_size=40))
    if draw(st.booleans()):
        offset = draw(st.sampled_from([5] * 6 + [8, 8, 4, 15, 0]))
        options = b"\x01" * max(0, (offset - 5) * 4)
        header = struct.pack(
            "!HHIIBBHHH",
            draw(ports),
            draw(ports),
            draw(st.integers(0, 2**32 - 1)),
            draw(st.integers(0, 2**32 - 1)),
            offset << 4,
            draw(st.integers(0, 255)),
            1024,
            0,
            0,
        )
        return 6, header + options + payload
    length = draw(st.sampled_from([8 + len(payload)] * 6 + [0, 3, 8, 500]))
    return 17, struct.pack("!HHHH", draw(ports), draw(ports), length, 0) + payload


@st.composite
def networks(draw: st.DrawFn) -> tuple[int, bytes]:
    protocol, transport = draw(transports())
    protocol = draw(st.sampled_from([protocol] * 10 + [1, 1, 1, 4, 41, 47]))
    if draw(st.booleans()):
        words = draw(st.sampled_from([5] * 6 + [6, 6, 4, 15]))
        options = b"\x00" * max(0, (words - 5) * 4)
        total = draw(
            st.sampled_from(
                [words * 4 + len(transport)] * 8
                + [0, 10, 65535, words * 4 + 3, words * 4 + 24]
            )
        )
        fragment_field = draw(
            st.sampled_from([0] * 6 + [0x4000] * 3 + [0x2000, 0x0001])
        )
        version = draw(st.sampled_from([4] * 8 + [6]))
        header = struct.pack(
            "!BBHHHBBH4s4s",
            (version << 4) | words,
            0,
            total,
            7,
            fragment_field,
            64,
            protocol,
            0,
            bytes([10, 0, 0, draw(st.integers(0, 3))]),
            bytes([10, 0, 0, draw(st.integers(0, 3))]),
        )
        return 0x0800, header + options + transport
    next_header = draw(st.sampled_from([protocol] * 12 + [0, 44, 58, 59]))
    length = draw(st.sampled_from([len(transport)] * 8 + [0, 3, 9000]))
    version = draw(st.sampled_from([6] * 8 + [4]))
    header = struct.pack(
        "!IHBB16s16s",
        version << 28,
        length,
        next_header,
        64,
        bytes(15) + bytes([draw(st.integers(0, 3))]),
        bytes(15) + bytes([draw(st.integers(0, 3))]),
    )
    return 0x86DD, header + transport


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    ethertype, network = draw(networks())
    ethertype = draw(st.sampled_from([ethertype] * 12 + [0x0806, 0x0030, 0x88CC]))
    tags = b"".join(
        struct.pack("!HH", draw(st.sampled_from([0x8100, 0x88A8, 0x9100])), 5)
        for _ in range(draw(st.sampled_from([0] * 6 + [1, 1, 2])))
    )
    linktype = draw(st.sampled_from([1] * 6 + [113, 276, 101, 228, 229, 0, 147]))
    if linktype == 1:
        if tags:
            data = b"\x02" * 12 + tags[:2] + tags[2:] + struct.pack("!H", ethertype)
        else:
            data = b"\x02" * 12 + struct.pack("!H", ethertype)
        data += network
    elif linktype == 113:
        arphrd = draw(st.sampled_from([1, 1, 824]))
        data = struct.pack("!HHH8sH", 0, arphrd, 6, b"\0" * 8, ethertype) + network
    elif linktype == 276:
        data = struct.pack("!HHIHBB8s", ethertype, 0, 1, 1, 0, 6, b"\0" * 8) + network
    else:
        data = network
    cut = draw(st.sampled_from([None] * 10 + [0, 10, 20, 33, 40, 50, 54, 60, 70]))
    if cut is not None:
        data = data[:cut]
    if draw(st.booleans()):
        data += draw(st.binary(max_size=8))
    return linktype, data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), min_size=1, max_size=20))
def test_built_packets_match(batch_frames: list[Frame]) -> None:
    assert_same(batch_frames)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(LINKTYPES), st.binary(max_size=120)),
        min_size=1,
        max_size=20,
    )
)
def test_random_bytes_match(batch_frames: list[Frame]) -> None:
    assert_same(batch_frames)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(COMMON_SAMPLES)),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3),
)
def test_damaged_samples_match(name: str, changes: list[tuple[int, int]]) -> None:
    linktype, data = COMMON_SAMPLES[name]
    damaged = bytearray(data)
    for position, value in changes:
        damaged[position % len(damaged)] = value
    assert_same([(linktype, bytes(damaged)), (linktype, data)])
