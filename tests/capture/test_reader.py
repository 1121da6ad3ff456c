"""Tests for open_capture and read_capture: format detection, gzip, pipes, errors."""

from __future__ import annotations

import errno
import gzip
import io
import os
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.capture import FORMATS_UNDERSTOOD, open_capture, read_capture
from detector.errors import CaptureError
from detector.model import Packet
from tests.capture.builders import (
    ChunkedStream,
    enhanced_packet,
    interface_description,
    pcap_file,
    pcap_header,
    section_header,
)

FRAMES = [bytes([index]) * (40 + index * 37) for index in range(30)]


def pcap_bytes() -> bytes:
    return pcap_file(FRAMES)


def pcapng_bytes() -> bytes:
    blocks = [section_header(), interface_description(1)]
    blocks += [enhanced_packet(0, index, frame) for index, frame in enumerate(FRAMES)]
    return b"".join(blocks)


def read_until_error(stream: io.IOBase | ChunkedStream) -> tuple[list, CaptureError]:
    packets = []
    with pytest.raises(CaptureError) as caught:
        for packet in read_capture(stream, "input"):  # type: ignore[arg-type]
            packets.append(packet)
    return packets, caught.value


@contextmanager
def pipe_reader(data: bytes) -> Iterator[io.BufferedReader]:
    """Yield a non-seekable reader of ``data`` fed through an OS pipe."""
    read_end, write_end = os.pipe()

    def feed() -> None:
        with open(write_end, "wb") as writer:
            try:
                writer.write(data)
            except BrokenPipeError:
                pass

    feeder = threading.Thread(target=feed)
    feeder.start()
    with open(read_end, "rb") as reader:
        yield reader
    feeder.join()


@pytest.mark.parametrize("build", [pcap_bytes, pcapng_bytes])
def test_open_capture_path_types(tmp_path: Path, build) -> None:
    path = tmp_path / "capture"
    path.write_bytes(build())

    by_str = list(open_capture(str(path)))
    by_path = list(open_capture(path))

    assert [packet.data for packet in by_str] == FRAMES
    assert [packet.data for packet in by_path] == FRAMES
    assert by_str[0].source == str(path)


def test_format_found_by_magic(tmp_path: Path) -> None:
    misnamed_pcap = tmp_path / "really-pcap.pcapng"
    misnamed_pcapng = tmp_path / "really-pcapng.pcap.gz"
    misnamed_pcap.write_bytes(pcap_bytes())
    misnamed_pcapng.write_bytes(pcapng_bytes())

    assert len(list(open_capture(misnamed_pcap))) == len(FRAMES)
    assert len(list(open_capture(misnamed_pcapng))) == len(FRAMES)


@pytest.mark.parametrize("build", [pcap_bytes, pcapng_bytes])
def test_gzip_capture_file(tmp_path: Path, build) -> None:
    plain = build()
    path = tmp_path / "capture.gz"
    path.write_bytes(gzip.compress(plain))

    packets = list(open_capture(path))

    assert [packet.data for packet in packets] == FRAMES
    assert [packet.offset for packet in packets] == [
        packet.offset for packet in read_capture(io.BytesIO(plain), "plain")
    ]


def test_gzip_one_byte_reads() -> None:
    compressed = gzip.compress(pcapng_bytes())

    packets = list(read_capture(ChunkedStream(compressed, 1), "chunked"))  # type: ignore[arg-type]

    assert [packet.data for packet in packets] == FRAMES


def test_gzip_several_members() -> None:
    plain = pcap_bytes()
    middle = len(plain) // 2
    compressed = gzip.compress(plain[:middle]) + gzip.compress(plain[middle:])

    packets = list(read_capture(io.BytesIO(compressed), "members"))

    assert [packet.data for packet in packets] == FRAMES


@pytest.mark.parametrize(
    "data", [pcap_bytes(), pcapng_bytes(), gzip.compress(pcapng_bytes())]
)
def test_pipe_input(data: bytes) -> None:
    with pipe_reader(data) as reader:
        assert not reader.seekable()

        packets = list(read_capture(reader, "pipe"))

        assert [packet.data for packet in packets] == FRAMES


def test_open_capture_dash_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    with pipe_reader(gzip.compress(pcap_bytes())) as reader:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(reader))

        packets = list(open_capture("-"))

        assert [packet.data for packet in packets] == FRAMES
        assert packets[0].source == "-"


def test_gzip_truncated_keeps_earlier_packets() -> None:
    plain = pcap_bytes()
    compressed = gzip.compress(plain)
    cut = compressed[: len(compressed) * 2 // 3]
    # Every record that lies wholly inside the bytes zlib recovers from the cut
    # stream must come out before the error.
    recoverable = zlib.decompressobj(wbits=31).decompress(cut)
    complete = [
        packet
        for packet in read_capture(io.BytesIO(plain), "plain")
        if packet.offset + 16 + len(packet.data) <= len(recoverable)
    ]

    packets, error = read_until_error(io.BytesIO(cut))

    assert len(packets) >= len(complete)
    assert len(packets) < len(FRAMES)
    assert error.offset is not None
    assert error.offset <= len(recoverable)
    assert "end-of-stream marker" in error.reason
    assert "decompressed stream" in error.reason


def test_gzip_bad_crc() -> None:
    compressed = bytearray(gzip.compress(pcap_bytes()))
    compressed[-8] ^= 0xFF

    packets, error = read_until_error(io.BytesIO(bytes(compressed)))

    assert [packet.data for packet in packets] == FRAMES[: len(packets)]
    assert "corrupt" in error.reason
    assert "gzip -t" in error.reason


def test_gzip_corrupt_deflate_data() -> None:
    compressed = bytearray(gzip.compress(pcap_bytes(), compresslevel=1))
    compressed[20:40] = b"\xff" * 20

    packets, error = read_until_error(io.BytesIO(bytes(compressed)))

    assert [packet.data for packet in packets] == FRAMES[: len(packets)]
    assert "gzip stream" in error.reason


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")

    with pytest.raises(CaptureError) as caught:
        list(open_capture(path))

    assert caught.value.reason.startswith("empty file, no capture header")
    assert caught.value.offset == 0
    assert caught.value.source == str(path)


def test_empty_gzip() -> None:
    packets, error = read_until_error(io.BytesIO(gzip.compress(b"")))

    assert packets == []
    assert "empty file, no capture header after gzip decompression" in error.reason


def test_not_a_capture() -> None:
    packets, error = read_until_error(io.BytesIO(b"<html><body>"))

    assert packets == []
    assert error.offset == 0
    assert "not a capture file" in error.reason
    assert "3c 68 74 6d" in error.reason
    assert FORMATS_UNDERSTOOD in error.reason


def test_not_a_capture_inside_gzip() -> None:
    packets, error = read_until_error(io.BytesIO(gzip.compress(b"plain text")))

    assert packets == []
    assert "after gzip decompression" in error.reason
    assert "70 6c 61 69" in error.reason


@pytest.mark.parametrize(
    ("start", "named"),
    [
        (b"\x28\xb5\x2f\xfd\x00\x00", "zstd"),
        (b"BZh91AY&SY", "bzip2"),
        (b"PK\x03\x04\x14\x00", "zip"),
    ],
)
def test_other_format_named(start: bytes, named: str) -> None:
    packets, error = read_until_error(io.BytesIO(start))

    assert packets == []
    assert named in error.reason


def test_file_too_short_for_magic() -> None:
    packets, error = read_until_error(io.BytesIO(b"\xd4\xc3"))

    assert packets == []
    assert "too short" in error.reason
    assert "d4 c3" in error.reason


def test_gzip_inside_gzip() -> None:
    twice = gzip.compress(gzip.compress(pcap_bytes()))

    packets, error = read_until_error(io.BytesIO(twice))

    assert packets == []
    assert "another gzip stream" in error.reason


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.pcap"

    with pytest.raises(CaptureError) as caught:
        list(open_capture(path))

    assert caught.value.offset is None
    assert "cannot open the capture" in caught.value.reason


def test_directory_is_not_a_capture(tmp_path: Path) -> None:
    with pytest.raises(CaptureError) as caught:
        list(open_capture(tmp_path))

    assert caught.value.offset is None


class FailingStream:
    """A stream that returns ``data`` and then fails with EIO."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self, size: int = -1) -> bytes:
        if not self._data:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        chunk = self._data[:size]
        self._data = self._data[size:]
        return chunk


def test_read_failure_becomes_capture_error() -> None:
    data = pcap_bytes()

    packets, error = read_until_error(FailingStream(data[:1000]))  # type: ignore[arg-type]

    assert len(packets) > 0
    assert "reading the capture failed" in error.reason
    assert os.strerror(errno.EIO) in error.reason


def read_or_capture_error(data: bytes) -> list[Packet]:
    packets = []
    try:
        for packet in read_capture(io.BytesIO(data), "fuzz"):
            packets.append(packet)
    except CaptureError:
        pass
    return packets


PREFIXES = [
    b"",
    pcap_header(),
    pcap_header(">"),
    section_header() + interface_description(1),
    section_header(">"),
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(PREFIXES), rest=st.binary(max_size=600))
def test_random_bytes_give_packets_or_capture_error(prefix: bytes, rest: bytes) -> None:
    for packet in read_or_capture_error(prefix + rest):
        assert isinstance(packet, Packet)
        assert len(packet.data) <= len(rest)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    build=st.sampled_from([pcap_bytes, pcapng_bytes]),
    compress=st.booleans(),
    flips=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=4
    ),
)
def test_damaged_captures_give_packets_or_capture_error(build, compress, flips) -> None:
    data = bytearray(build())
    if compress:
        data = bytearray(gzip.compress(bytes(data)))
    for position, mask in flips:
        data[position % len(data)] ^= mask

    for packet in read_or_capture_error(bytes(data)):
        assert isinstance(packet, Packet)
