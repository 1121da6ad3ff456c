"""Tests for the batch readers: the same packets and errors as read_capture."""

from __future__ import annotations

import gzip
import io
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.capture import MAX_BATCH_PACKETS, open_capture, read_capture
from detector.capture.batch import PacketBatch, open_batches, read_batches
from detector.errors import CaptureError
from detector.model import Packet
from tests.capture.builders import (
    EPB,
    PCAP_NANOSECONDS,
    ChunkedStream,
    block,
    enhanced_packet,
    interface_description,
    pcap_file,
    pcap_header,
    pcap_record,
    section_header,
    simple_packet,
)
from tests.conftest import SAMPLES

FRAMES = [bytes([index % 256]) * (index * 53 % 1600) for index in range(40)]

Outcome = tuple[list[Packet], tuple[str, int | None] | None]


def per_packet(stream: object) -> Outcome:
    packets: list[Packet] = []
    try:
        for packet in read_capture(stream, "input"):  # type: ignore[arg-type]
            packets.append(packet)
    except CaptureError as error:
        return packets, (error.reason, error.offset)
    return packets, None


def batched(stream: object) -> Outcome:
    packets: list[Packet] = []
    try:
        for batch in read_batches(stream, "input"):  # type: ignore[arg-type]
            assert len(batch) > 0
            packets.extend(batch.packets())
    except CaptureError as error:
        return packets, (error.reason, error.offset)
    return packets, None


def assert_same(data: bytes, chunk: int | None = None) -> Outcome:
    def stream() -> object:
        return io.BytesIO(data) if chunk is None else ChunkedStream(data, chunk)

    expected = per_packet(stream())
    found = batched(stream())
    assert found[1] == expected[1]
    assert len(found[0]) == len(expected[0])
    assert found[0] == expected[0]
    return found


def pcapng_file(frames: list[bytes], order: str = "<") -> bytes:
    blocks = [section_header(order), interface_description(1, order, tsresol=9)]
    blocks += [
        enhanced_packet(0, 1_700_000_000_123_456_789 + index, frame, order)
        for index, frame in enumerate(frames)
    ]
    return b"".join(blocks)


GOOD_CAPTURES: dict[str, Callable[[], bytes]] = {
    "pcap-little": lambda: pcap_file(FRAMES),
    "pcap-big": lambda: pcap_file(FRAMES, order=">"),
    "pcap-nanoseconds": lambda: pcap_file(FRAMES, magic=PCAP_NANOSECONDS),
    "pcap-empty": lambda: pcap_header(),
    "pcapng-little": lambda: pcapng_file(FRAMES),
    "pcapng-big": lambda: pcapng_file(FRAMES, ">"),
    "pcapng-simple": lambda: b"".join(
        [section_header(), interface_description(1, snaplen=0)]
        + [simple_packet(frame) for frame in FRAMES]
    ),
}


def damaged_captures() -> dict[str, bytes]:
    pcap = pcap_file(FRAMES)
    pcapng = pcapng_file(FRAMES)
    oversized = pcap_record(1, 0, b"", captured_length=300_000)
    return {
        "pcap-cut-in-data": pcap[:-10],
        "pcap-cut-in-header": pcap + b"\x01\x02\x03",
        "pcap-oversized-record": pcap + oversized + b"\x00" * 64,
        "pcap-beyond-snaplen": pcap_file(FRAMES, snaplen=64),
        "pcap-file-header-cut": pcap[:10],
        "pcapng-cut": pcapng[:-7],
        "pcapng-bad-trailer": pcapng[:-4] + b"\x00\x00\x00\x00",
        "pcapng-bad-length": pcapng + block(EPB, b"\x00" * 20)[:4] + b"\x0d\0\0\0",
        "not-a-capture": b"hello world, not a capture",
        "empty": b"",
    }


@pytest.mark.parametrize("name", sorted(GOOD_CAPTURES))
@pytest.mark.parametrize("chunk", [None, 1, 7, 4096])
def test_batches_match_packets(name: str, chunk: int | None) -> None:
    packets, error = assert_same(GOOD_CAPTURES[name](), chunk)

    assert error is None
    if name != "pcap-empty":
        assert [packet.data for packet in packets] == FRAMES


@pytest.mark.parametrize("name", sorted(damaged_captures()))
@pytest.mark.parametrize("chunk", [None, 1, 13])
def test_batches_match_damage(name: str, chunk: int | None) -> None:
    packets, error = assert_same(damaged_captures()[name], chunk)

    assert error is not None


@pytest.mark.parametrize("name", sorted(GOOD_CAPTURES))
def test_gzip_batches_match_packets(name: str) -> None:
    compressed = gzip.compress(GOOD_CAPTURES[name]())

    packets, error = assert_same(compressed)

    assert error is None


def test_gzip_cut_batches_match_packets() -> None:
    compressed = gzip.compress(pcap_file(FRAMES * 20))

    packets, error = assert_same(compressed[: len(compressed) // 2])

    assert error is not None
    assert "end-of-stream marker" in error[0]


def test_batch_arrays_describe_packets() -> None:
    data = pcap_file(FRAMES, magic=PCAP_NANOSECONDS)
    expected = list(read_capture(io.BytesIO(data), "input"))

    batches = list(read_batches(io.BytesIO(data), "input"))

    numbers = np.concatenate([batch.numbers for batch in batches])
    timestamps = np.concatenate([batch.timestamps for batch in batches])
    offsets = np.concatenate([batch.record_offsets for batch in batches])
    assert numbers.tolist() == [packet.number for packet in expected]
    assert timestamps.tolist() == [packet.timestamp for packet in expected]
    assert offsets.tolist() == [packet.offset for packet in expected]
    for batch in batches:
        assert batch.linktypes.tolist() == [1] * len(batch)
        assert batch.captured_lengths.tolist() == batch.wire_lengths.tolist()


def test_pcapng_nanosecond_timestamps_exact() -> None:
    data = pcapng_file(FRAMES)
    expected = [packet.timestamp for packet in read_capture(io.BytesIO(data), "x")]

    batches = list(read_batches(io.BytesIO(data), "x"))

    found = np.concatenate([batch.timestamps for batch in batches]).tolist()
    assert found == expected


def test_batch_limit_on_packet_count() -> None:
    count = MAX_BATCH_PACKETS + 100
    header = struct.pack("<IIII", 5, 0, 0, 0)
    data = pcap_header() + header * count

    batches = list(read_batches(io.BytesIO(data), "tiny"))

    assert [len(batch) for batch in batches] == [MAX_BATCH_PACKETS, 100]
    assert int(batches[1].numbers[0]) == MAX_BATCH_PACKETS + 1


class BlockStream:
    """A pipe whose writer writes one pcapng block at a time, as ``tcpdump -U``."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        while self._pieces and not self._pieces[0]:
            self._pieces.pop(0)
        if not self._pieces:
            return b""
        piece = self._pieces[0]
        size = len(piece) if size < 0 else size
        self._pieces[0] = piece[size:]
        return piece[:size]


def test_slow_stream_gives_small_batches() -> None:
    blocks = [section_header(), interface_description(1)]
    blocks += [enhanced_packet(0, index, frame) for index, frame in enumerate(FRAMES)]
    stream = BlockStream(blocks)

    sizes = [len(batch) for batch in read_batches(stream, "pipe")]  # type: ignore[arg-type]

    assert sizes == [1] * len(FRAMES)


def test_pcap_batches_follow_reads() -> None:
    data = pcap_file(FRAMES)
    stream = ChunkedStream(data, 2000)

    sizes = [len(batch) for batch in read_batches(stream, "pipe")]  # type: ignore[arg-type]

    assert sum(sizes) == len(FRAMES)
    assert len(sizes) > 10


def test_error_raised_after_last_batch() -> None:
    data = pcap_file(FRAMES)[:-1]
    iterator = read_batches(io.BytesIO(data), "cut")

    first = next(iterator)

    assert len(first) == len(FRAMES) - 1
    with pytest.raises(CaptureError) as caught:
        next(iterator)
    assert "truncated packet data" in caught.value.reason


def test_batch_slice_and_packet() -> None:
    data = pcap_file(FRAMES)
    (batch,) = list(read_batches(io.BytesIO(data), "input"))

    part = batch.slice(3, 7)

    assert len(part) == 4
    assert [packet.data for packet in part.packets()] == FRAMES[3:7]
    assert part.packet(0) == batch.packet(3)
    assert isinstance(part, PacketBatch)


def test_open_batches_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "capture.pcap.gz"
    path.write_bytes(gzip.compress(pcapng_file(FRAMES)))

    packets = [packet for batch in open_batches(path) for packet in batch.packets()]

    assert packets == list(open_capture(path))


def test_open_batches_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot open the capture"):
        list(open_batches(tmp_path / "missing.pcap"))


@pytest.mark.parametrize(
    "path", sorted(p for p in SAMPLES.iterdir() if p.name != "manifest.yaml")
)
def test_bundled_samples_match(path: Path) -> None:
    packets = [packet for batch in open_batches(path) for packet in batch.packets()]

    assert packets == list(open_capture(path))


def test_real_captures_match(real_pcaps: Path) -> None:
    paths = [
        path
        for path in sorted(real_pcaps.rglob("*"))
        if path.is_file() and path.suffix in (".pcap", ".pcapng", ".cap", ".gz")
    ]
    assert paths
    for path in paths:
        expected = per_packet(path.open("rb"))
        found = batched(path.open("rb"))
        assert found == expected, path


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    st.sampled_from(sorted(GOOD_CAPTURES)),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    st.integers(0, 10**6),
    st.sampled_from([None, 1, 100]),
)
def test_damaged_input_matches(
    name: str, changes: list[tuple[int, int]], cut: int, chunk: int | None
) -> None:
    data = bytearray(GOOD_CAPTURES[name]())
    for position, value in changes:
        data[position % len(data)] = value
    assert_same(bytes(data[: max(cut % (len(data) + 1), 0)]), chunk)
