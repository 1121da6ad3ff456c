"""Tests for the pcapng reader, through read_capture."""

from __future__ import annotations

import io
import struct

import pytest

from detector.capture import MAX_BLOCK_LENGTH, MAX_RECORD_LENGTH, read_capture
from detector.errors import CaptureError
from tests.capture.builders import (
    INTERFACE_STATISTICS,
    NAME_RESOLUTION,
    ChunkedStream,
    block,
    enhanced_packet,
    interface_description,
    option,
    packet_block,
    section_header,
    simple_packet,
)

ETHERNET = 1
RAW = 101
SLL = 113


def read_all(data: bytes) -> list:
    return list(read_capture(io.BytesIO(data), "test.pcapng"))


def read_until_error(data: bytes) -> tuple[list, CaptureError]:
    packets = []
    with pytest.raises(CaptureError) as caught:
        for packet in read_capture(io.BytesIO(data), "test.pcapng"):
            packets.append(packet)
    return packets, caught.value


def two_interface_capture(order: str = "<") -> bytes:
    """Ethernet at the default microseconds, raw IP at 2^-10 s with an offset."""
    return b"".join(
        [
            section_header(order),
            interface_description(ETHERNET, order),
            interface_description(RAW, order, tsresol=0x80 | 10, tsoffset=100),
            enhanced_packet(0, 1_500_000, b"ether", order),
            enhanced_packet(1, 3 * 1024 + 512, b"raw-ip", order),
            enhanced_packet(0, 2_000_000, b"ether again", order, wire_length=1500),
        ]
    )


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_two_interfaces(order: str) -> None:
    packets = read_all(two_interface_capture(order))

    assert [packet.data for packet in packets] == [b"ether", b"raw-ip", b"ether again"]
    assert [packet.linktype for packet in packets] == [ETHERNET, RAW, ETHERNET]
    assert packets[0].timestamp == pytest.approx(1.5)
    assert packets[1].timestamp == pytest.approx(103.5)
    assert packets[2].timestamp == pytest.approx(2.0)
    assert packets[2].wire_length == 1500
    assert [packet.number for packet in packets] == [1, 2, 3]


def test_pcapng_unknown_linktype_yielded() -> None:
    data = (
        section_header()
        + interface_description(147)
        + enhanced_packet(0, 1, b"user link")
    )

    packet = read_all(data)[0]

    assert packet.linktype == 147
    assert packet.data == b"user link"


def test_pcapng_power_of_ten_resolution() -> None:
    data = (
        section_header()
        + interface_description(ETHERNET, tsresol=9)
        + enhanced_packet(0, 1_700_000_000_123_456_789, b"x")
    )

    packet = read_all(data)[0]

    assert packet.timestamp == pytest.approx(1_700_000_000.123_456_789, abs=1e-6)


def test_pcapng_offsets_point_at_blocks() -> None:
    data = two_interface_capture()

    packets = read_all(data)

    for packet in packets:
        block_type = struct.unpack_from("<I", data, packet.offset)[0]
        assert block_type == 6
    first_offset = (
        len(section_header())
        + len(interface_description(ETHERNET))
        + len(interface_description(RAW, tsresol=0x80 | 10, tsoffset=100))
    )
    assert packets[0].offset == first_offset


def test_pcapng_simple_packet_block() -> None:
    data = (
        section_header()
        + interface_description(SLL, snaplen=8)
        + enhanced_packet(0, 7_000_000, b"first")
        + simple_packet(b"12345678", wire_length=60)
        + simple_packet(b"abc")
    )

    packets = read_all(data)

    assert [packet.data for packet in packets] == [b"first", b"12345678", b"abc"]
    assert [packet.wire_length for packet in packets] == [5, 60, 3]
    assert [packet.timestamp for packet in packets] == [7.0, 7.0, 7.0]
    assert packets[1].linktype == SLL


def test_pcapng_simple_packet_first_has_zero_time() -> None:
    data = section_header() + interface_description(RAW) + simple_packet(b"abc")

    packet = read_all(data)[0]

    assert packet.timestamp == 0.0
    assert packet.data == b"abc"


def test_pcapng_obsolete_packet_block() -> None:
    data = (
        section_header()
        + interface_description(ETHERNET)
        + packet_block(0, 2_500_000, b"old")
    )

    packet = read_all(data)[0]

    assert packet.data == b"old"
    assert packet.timestamp == pytest.approx(2.5)


def test_pcapng_unknown_blocks_skipped() -> None:
    data = (
        section_header()
        + block(NAME_RESOLUTION, b"\0" * 8)
        + interface_description(ETHERNET)
        + block(0x40000BAD, b"custom block body")
        + enhanced_packet(0, 1, b"x")
        + block(INTERFACE_STATISTICS, b"\0" * 20)
    )

    assert [packet.data for packet in read_all(data)] == [b"x"]


def test_pcapng_sections_change_byte_order() -> None:
    first = two_interface_capture("<")
    second = (
        section_header(">")
        + interface_description(SLL, ">")
        + enhanced_packet(0, 4_000_000, b"big endian", ">")
    )

    packets = read_all(first + second)

    assert len(packets) == 4
    assert packets[3].data == b"big endian"
    assert packets[3].linktype == SLL
    assert packets[3].timestamp == pytest.approx(4.0)
    assert packets[3].offset == len(first) + len(section_header(">")) + len(
        interface_description(SLL, ">")
    )


def test_pcapng_interfaces_reset_per_section() -> None:
    first = two_interface_capture()
    second = section_header() + interface_description(ETHERNET)
    stray = enhanced_packet(1, 0, b"x")

    packets, error = read_until_error(first + second + stray)

    assert len(packets) == 3
    assert error.offset == len(first) + len(second)
    assert "interface 1" in error.reason
    assert "1 interface before" in error.reason


def test_pcapng_one_byte_reads() -> None:
    data = two_interface_capture()

    stream = ChunkedStream(data, 1)
    packets = list(read_capture(stream, "chunked"))  # type: ignore[arg-type]

    assert [packet.data for packet in packets] == [
        packet.data for packet in read_all(data)
    ]


def test_pcapng_trailing_bytes_raise_after_packets() -> None:
    data = two_interface_capture()

    packets, error = read_until_error(data + b"\0\0\0")

    assert len(packets) == 3
    assert error.offset == len(data)
    assert "expected 8 bytes, found 3" in error.reason


def test_pcapng_truncated_block_keeps_earlier() -> None:
    data = two_interface_capture()
    last = enhanced_packet(0, 2_000_000, b"ether again", wire_length=1500)

    packets, error = read_until_error(data[:-6])

    assert len(packets) == 2
    assert error.offset == len(data) - len(last)
    assert f"declares {len(last)} bytes, found {len(last) - 6}" in error.reason


def test_pcapng_truncated_section_header() -> None:
    packets, error = read_until_error(section_header()[:10])

    assert packets == []
    assert error.offset == 0
    assert "truncated" in error.reason


def block_with_length(length: int, body: bytes, trailer: int | None = None) -> bytes:
    if trailer is None:
        trailer = length
    return struct.pack("<II", 6, length) + body + struct.pack("<I", trailer)


@pytest.mark.parametrize(
    ("bad_block", "message"),
    [
        (block_with_length(34, b"\0" * 24), "not a multiple of 4"),
        (block_with_length(8, b""), "smaller than the minimum"),
        (block_with_length(24, b"\0" * 12), "smaller than the minimum 32"),
        (block_with_length(36, b"\0" * 24, trailer=40), "differs from the length 40"),
        (block_with_length(MAX_BLOCK_LENGTH + 4, b""), "larger than the maximum"),
    ],
)
def test_pcapng_bad_block_length(bad_block: bytes, message: str) -> None:
    start = section_header() + interface_description(ETHERNET)
    good = enhanced_packet(0, 1, b"good")

    packets, error = read_until_error(start + good + bad_block)

    assert [packet.data for packet in packets] == [b"good"]
    assert error.offset == len(start) + len(good)
    assert message in error.reason


def test_pcapng_packet_without_interface() -> None:
    data = section_header() + enhanced_packet(0, 1, b"x")

    packets, error = read_until_error(data)

    assert packets == []
    assert error.offset == len(section_header())
    assert "names interface 0" in error.reason
    assert "0 interfaces" in error.reason


def test_pcapng_simple_packet_without_interface() -> None:
    data = section_header() + simple_packet(b"x")

    packets, error = read_until_error(data)

    assert packets == []
    assert error.offset == len(section_header())


def test_pcapng_captured_length_beyond_block() -> None:
    start = section_header() + interface_description(ETHERNET)
    data = start + enhanced_packet(0, 1, b"abcd", captured_length=200)

    packets, error = read_until_error(data)

    assert packets == []
    assert error.offset == len(start)
    assert "captured length 200 does not fit" in error.reason


def test_pcapng_captured_length_beyond_maximum() -> None:
    start = section_header() + interface_description(ETHERNET)
    body = b"\0" * (MAX_RECORD_LENGTH + 4)
    data = start + enhanced_packet(0, 1, body)

    packets, error = read_until_error(data)

    assert packets == []
    assert error.offset == len(start)
    assert str(MAX_RECORD_LENGTH) in error.reason


def test_pcapng_captured_length_far_beyond_snaplen() -> None:
    start = section_header() + interface_description(ETHERNET, snaplen=64)
    data = start + enhanced_packet(0, 1, b"\0" * 200)

    packets, error = read_until_error(data)

    assert packets == []
    assert "snap length 64" in error.reason


def test_pcapng_bad_byte_order_magic() -> None:
    data = bytearray(section_header())
    data[8:12] = b"\x11\x22\x33\x44"

    packets, error = read_until_error(bytes(data))

    assert packets == []
    assert error.offset == 0
    assert "11 22 33 44" in error.reason


def test_pcapng_unsupported_version() -> None:
    data = section_header(version=(2, 0)) + interface_description(ETHERNET)

    packets, error = read_until_error(data)

    assert packets == []
    assert "version 2.0" in error.reason


def test_pcapng_option_past_block_end() -> None:
    body = struct.pack("<HHI", ETHERNET, 0, 0) + struct.pack("<HH", 9, 40)
    data = section_header() + block(1, body)

    packets, error = read_until_error(data)

    assert packets == []
    assert error.offset == len(section_header())
    assert "runs past the end" in error.reason


def test_pcapng_bad_tsresol_length() -> None:
    body = struct.pack("<HHI", ETHERNET, 0, 0) + option(9, b"\x06\x06")
    data = section_header() + block(1, body)

    packets, error = read_until_error(data)

    assert packets == []
    assert "if_tsresol has 2 bytes, expected 1" in error.reason
