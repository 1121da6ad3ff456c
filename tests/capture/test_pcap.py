"""Tests for the classic pcap reader, through read_capture."""

from __future__ import annotations

import io

import pytest

from detector.capture import MAX_RECORD_LENGTH, SNAPLEN_OVERRUN_FACTOR, read_capture
from detector.errors import CaptureError
from tests.capture.builders import (
    PCAP_MICROSECONDS,
    PCAP_NANOSECONDS,
    ChunkedStream,
    pcap_file,
    pcap_header,
    pcap_record,
)

FRAMES = [b"\x01" * 60, b"\x02" * 1514, b"\x03" * 14, b""]


def read_all(data: bytes, source: str = "test.pcap") -> list:
    return list(read_capture(io.BytesIO(data), source))


def read_until_error(data: bytes) -> tuple[list, CaptureError]:
    packets = []
    with pytest.raises(CaptureError) as caught:
        for packet in read_capture(io.BytesIO(data), "test.pcap"):
            packets.append(packet)
    return packets, caught.value


@pytest.mark.parametrize(
    ("order", "magic", "units"),
    [
        ("<", PCAP_MICROSECONDS, 1e6),
        (">", PCAP_MICROSECONDS, 1e6),
        ("<", PCAP_NANOSECONDS, 1e9),
        (">", PCAP_NANOSECONDS, 1e9),
    ],
)
def test_pcap_every_magic(order: str, magic: int, units: float) -> None:
    data = pcap_file(FRAMES, order=order, magic=magic, linktype=113)

    packets = read_all(data)

    assert [packet.data for packet in packets] == FRAMES
    for index, packet in enumerate(packets):
        assert packet.timestamp == pytest.approx(1000 + index + index / units)
        assert packet.linktype == 113
        assert packet.wire_length == len(FRAMES[index])
        assert packet.source == "test.pcap"
        assert packet.number == index + 1


def test_pcap_offsets_point_at_records() -> None:
    data = pcap_file(FRAMES)

    packets = read_all(data)

    expected = 24
    for packet in packets:
        assert packet.offset == expected
        assert data[packet.offset + 16 : packet.offset + 16 + len(packet.data)] == (
            packet.data
        )
        expected += 16 + len(packet.data)


def test_pcap_nanoseconds_differ_from_microseconds() -> None:
    record = pcap_record(1, 500_000, b"x")
    micro = read_all(pcap_header(magic=PCAP_MICROSECONDS) + record)
    nano = read_all(pcap_header(magic=PCAP_NANOSECONDS) + record)

    assert micro[0].timestamp == pytest.approx(1.5)
    assert nano[0].timestamp == pytest.approx(1.0005)


def test_pcap_linktype_ignores_fcs_bits() -> None:
    # Bits 28-31 and 26 describe the frame check sequence, not the link type.
    data = pcap_header(linktype=0x14000001) + pcap_record(1, 0, b"x")

    assert read_all(data)[0].linktype == 1


def test_pcap_unknown_linktype_yielded() -> None:
    # The decoder, not the reader, reports link types it cannot decode.
    data = pcap_file(FRAMES, linktype=147)

    packets = read_all(data)

    assert [packet.linktype for packet in packets] == [147] * len(FRAMES)


def test_pcap_wire_length_kept() -> None:
    data = pcap_header(snaplen=64) + pcap_record(1, 0, b"x" * 64, wire_length=1500)

    packet = read_all(data)[0]

    assert len(packet.data) == 64
    assert packet.wire_length == 1500


def test_pcap_header_only_gives_no_packets() -> None:
    assert read_all(pcap_header()) == []


def test_pcap_one_byte_reads() -> None:
    data = pcap_file(FRAMES)

    packets = list(read_capture(ChunkedStream(data, 1), "chunked"))  # type: ignore[arg-type]

    assert [packet.data for packet in packets] == FRAMES
    assert [packet.offset for packet in packets] == [
        packet.offset for packet in read_all(data)
    ]


def test_pcap_trailing_bytes_raise_after_packets() -> None:
    data = pcap_file(FRAMES)

    packets, error = read_until_error(data + b"\0" * 5)

    assert [packet.data for packet in packets] == FRAMES
    assert error.offset == len(data)
    assert "expected 16 bytes, found 5" in error.reason


def test_pcap_truncated_file_header() -> None:
    packets, error = read_until_error(pcap_header()[:10])

    assert packets == []
    assert error.offset == 0
    assert "truncated pcap file header" in error.reason
    assert "found 10" in error.reason


def test_pcap_truncated_record_data_keeps_earlier() -> None:
    data = pcap_file(FRAMES[:2])
    record_offset = 24 + 16 + len(FRAMES[0])

    packets, error = read_until_error(data[:-100])

    assert [packet.data for packet in packets] == FRAMES[:1]
    assert error.offset == record_offset
    assert f"declares {len(FRAMES[1])} bytes, found {len(FRAMES[1]) - 100}" in (
        error.reason
    )


def test_pcap_truncated_record_header_keeps_earlier() -> None:
    data = pcap_file(FRAMES[:1]) + pcap_record(5, 0, b"abc")[:7]

    packets, error = read_until_error(data)

    assert len(packets) == 1
    assert error.offset == 24 + 16 + len(FRAMES[0])
    assert "expected 16 bytes, found 7" in error.reason


def test_pcap_record_beyond_maximum() -> None:
    huge = MAX_RECORD_LENGTH + 1
    data = (
        pcap_header(snaplen=0)
        + pcap_record(1, 0, b"ok")
        + pcap_record(2, 0, b"", captured_length=huge)
    )

    packets, error = read_until_error(data)

    assert len(packets) == 1
    assert error.offset == 24 + 16 + 2
    assert str(huge) in error.reason
    assert str(MAX_RECORD_LENGTH) in error.reason


def test_pcap_record_far_beyond_snaplen() -> None:
    length = 96 * SNAPLEN_OVERRUN_FACTOR + 1
    data = pcap_header(snaplen=96) + pcap_record(1, 0, b"x" * length)

    packets, error = read_until_error(data)

    assert packets == []
    assert error.offset == 24
    assert "snap length 96" in error.reason


def test_pcap_record_slightly_beyond_snaplen() -> None:
    # Writers that leave the link header out of the snap length overrun it a
    # little, and the packet is still read.
    data = pcap_header(snaplen=96) + pcap_record(1, 0, b"x" * 110)

    assert len(read_all(data)[0].data) == 110


def test_pcap_unknown_version() -> None:
    packets, error = read_until_error(pcap_header(version=(3, 0)))

    assert packets == []
    assert error.offset == 0
    assert "version 3.0" in error.reason
