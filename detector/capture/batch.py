"""Capture files read as batches: many packets in one buffer, fields as arrays.

:func:`open_batches` and :func:`read_batches` read the same formats as
:func:`~detector.capture.open_capture` and give the same packets with the same
numbers, offsets and timestamps, but as :class:`PacketBatch` values, so later
stages can work on whole batches with numpy instead of one packet at a time.
Errors keep the per-packet contract: every packet before the damage is
delivered in a batch first, and the next step of the iterator raises
:class:`~detector.errors.CaptureError`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from detector.capture.limits import BATCH_BYTES, MAX_BATCH_PACKETS
from detector.capture.pcap import (
    FILE_HEADER_LENGTH,
    RECORD_HEADER_LENGTH,
    length_error,
    read_pcap_header,
    truncated_data_error,
    truncated_header_error,
)
from detector.capture.pcapng import PcapngRecord, read_pcapng_records
from detector.capture.reader import open_stream, read_stream
from detector.capture.stream import Read
from detector.errors import CaptureError
from detector.model import Packet

# Offsets of the captured length in a pcap record header, and of the four
# header fields seen as 32-bit words.
_CAPTURED_LENGTH_AT = 8
_RECORD_WORDS = 4

# The bytes of a batch: a bytearray filled in place by the pcap reader, or
# bytes. Nothing writes to it once the batch is made.
Buffer = bytes | bytearray

_UnpackLength = Callable[[Buffer, int], tuple[Any, ...]]


@dataclass(frozen=True, slots=True, eq=False)
class PacketBatch:
    """Consecutive packets of one capture: their bytes in one buffer, fields as arrays.

    Packet ``i`` is ``data[offsets[i] : offsets[i] + captured_lengths[i]]``.
    ``timestamps`` are seconds since the Unix epoch, ``numbers`` the 1-based
    positions of the packets in the capture and ``record_offsets`` the byte
    offsets of their records in the (decompressed) capture, as in
    :class:`~detector.model.Packet`. Every array has one element per packet.
    """

    source: str
    data: Buffer
    offsets: NDArray[np.int64]
    captured_lengths: NDArray[np.int64]
    wire_lengths: NDArray[np.int64]
    timestamps: NDArray[np.float64]
    linktypes: NDArray[np.int64]
    numbers: NDArray[np.int64]
    record_offsets: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.offsets)

    def packet(self, index: int) -> Packet:
        """Return packet ``index`` of the batch as a :class:`Packet`."""
        start = int(self.offsets[index])
        end = start + int(self.captured_lengths[index])
        return Packet(
            float(self.timestamps[index]),
            int(self.linktypes[index]),
            bytes(memoryview(self.data)[start:end]),
            int(self.wire_lengths[index]),
            self.source,
            int(self.record_offsets[index]),
            int(self.numbers[index]),
        )

    def packets(self) -> Iterator[Packet]:
        """Yield the packets of the batch in order."""
        for index in range(len(self)):
            yield self.packet(index)

    def slice(self, start: int, stop: int) -> PacketBatch:
        """Return the packets ``start`` to ``stop`` (excluded); the buffer is shared."""
        return PacketBatch(
            self.source,
            self.data,
            self.offsets[start:stop],
            self.captured_lengths[start:stop],
            self.wire_lengths[start:stop],
            self.timestamps[start:stop],
            self.linktypes[start:stop],
            self.numbers[start:stop],
            self.record_offsets[start:stop],
        )


def open_batches(path: str | os.PathLike[str]) -> Iterator[PacketBatch]:
    """Yield the packets of the capture file at ``path`` in batches.

    ``-`` reads standard input. The file is opened when the first batch is
    requested and closed when the iterator is exhausted or closed.

    Raises:
        CaptureError: as :func:`~detector.capture.open_capture`, once every
            packet before the damage has been yielded.
    """
    return open_stream(path, read_batches, buffering=0)


def read_batches(stream: BinaryIO, source: str) -> Iterator[PacketBatch]:
    """Yield the packets of the capture read from the binary ``stream`` in batches.

    A batch contains the packets of about :data:`BATCH_BYTES` of input, at most
    :data:`MAX_BATCH_PACKETS`, and fewer when a pipe has no more bytes ready,
    so packets from a slow pipe are not held back.

    Raises:
        CaptureError: as :func:`~detector.capture.read_capture`, once every
            packet before the damage has been yielded.
    """
    return read_stream(
        stream, source, read_pcap_batches, read_pcapng_batches, chunked=True
    )


def read_pcap_batches(read: Read, magic: bytes, source: str) -> Iterator[PacketBatch]:
    """Yield the packets of a pcap file whose 4-byte ``magic`` was already read.

    ``read`` returns the bytes that follow the magic, as many as are ready up
    to the size requested, and ``b""`` only at the end. A
    :class:`~detector.capture.stream.ChunkReader` also reads straight into
    the batch's buffer, which saves a copy of every chunk.

    Raises:
        CaptureError: as :func:`~detector.capture.pcap.read_pcap`, once every
            packet before the damaged record has been yielded.
    """
    header = read_pcap_header(read, magic, source)
    unpack_length = struct.Struct(header.byte_order + "I").unpack_from
    word = np.dtype(np.uint32).newbyteorder("<" if header.byte_order == "<" else ">")
    # The start of a record cut off by the end of the last chunk.
    rest = b""
    # Offset in the capture of the first byte of ``rest``, and packets so far.
    base = FILE_HEADER_LENGTH
    number = 0
    while True:
        buffer = _fill(read, rest)
        if len(buffer) == len(rest):
            break
        end = 0
        while True:
            starts, end = _record_starts(buffer, end, unpack_length, header.max_length)
            if starts:
                batch = _pcap_batch(
                    buffer, starts, word, header.units_per_second, source
                )
                yield _numbered(batch, base, number, header.linktype)
                del batch
                number += len(starts)
            if end + RECORD_HEADER_LENGTH <= len(buffer):
                (captured_length,) = unpack_length(buffer, end + _CAPTURED_LENGTH_AT)
                if captured_length > header.max_length:
                    raise length_error(
                        source, base + end, captured_length, header.snaplen
                    )
            if len(starts) < MAX_BATCH_PACKETS:
                # What is left is a record cut off by the end of the chunk,
                # while a full batch may have left whole records behind.
                break
        rest = bytes(buffer[end:])
        base += end
        # The batches yielded share ``buffer``; dropping it here lets it go
        # once the caller is done with them, before the next one is filled.
        del buffer
    if not rest:
        return
    if len(rest) < RECORD_HEADER_LENGTH:
        raise truncated_header_error(source, base, len(rest))
    (captured_length,) = unpack_length(rest, _CAPTURED_LENGTH_AT)
    raise truncated_data_error(
        source, base, captured_length, len(rest) - RECORD_HEADER_LENGTH
    )


def _fill(read: Read, rest: bytes) -> bytearray:
    """Return a buffer of ``rest`` followed by what one read gives, up to
    BATCH_BYTES in all; it is no longer than ``rest`` at the end of the input."""
    size = max(BATCH_BYTES, len(rest) + RECORD_HEADER_LENGTH)
    buffer = bytearray(size)
    buffer[: len(rest)] = rest
    read_into = getattr(read, "read_into", None)
    if read_into is not None:
        count: int = read_into(memoryview(buffer)[len(rest) :])
    else:
        data = read(size - len(rest))
        count = len(data)
        buffer[len(rest) : len(rest) + count] = data
    del buffer[len(rest) + count :]
    return buffer


def _record_starts(
    buffer: bytearray, position: int, unpack_length: _UnpackLength, max_length: int
) -> tuple[list[int], int]:
    """Return where the whole records in ``buffer`` from ``position`` start,
    and where they end.

    The walk stops at the first record that is cut off by the end of the
    buffer or whose captured length is above ``max_length``, after at most
    MAX_BATCH_PACKETS records. This loop is the one part of reading that
    touches every record from Python, so it does no more than follow lengths.
    """
    starts: list[int] = []
    append = starts.append
    size = len(buffer)
    last_header = size - RECORD_HEADER_LENGTH
    count = 0
    while position <= last_header and count < MAX_BATCH_PACKETS:
        (captured_length,) = unpack_length(buffer, position + _CAPTURED_LENGTH_AT)
        following = position + RECORD_HEADER_LENGTH + captured_length
        if captured_length > max_length or following > size:
            break
        append(position)
        position = following
        count += 1
    return starts, position


def _pcap_batch(
    buffer: bytearray,
    starts: list[int],
    word: np.dtype[np.uint32],
    units_per_second: int,
    source: str,
) -> PacketBatch:
    """Read the record headers at ``starts`` with numpy; numbers come later."""
    positions = np.array(starts, dtype=np.int64)
    raw = np.frombuffer(buffer, dtype=np.uint8)
    columns = positions[:, None] + np.arange(RECORD_HEADER_LENGTH, dtype=np.int64)
    fields = raw[columns].view(word).reshape(len(starts), _RECORD_WORDS)
    seconds = fields[:, 0].astype(np.float64)
    fraction = fields[:, 1].astype(np.float64)
    # The same float operations as the per-packet reader, so timestamps match
    # to the last bit: both operands are exact in float64 before the division.
    timestamps = seconds + fraction / units_per_second
    return PacketBatch(
        source,
        buffer,
        positions + RECORD_HEADER_LENGTH,
        fields[:, 2].astype(np.int64),
        fields[:, 3].astype(np.int64),
        timestamps,
        np.empty(0, dtype=np.int64),
        np.empty(0, dtype=np.int64),
        positions,
    )


def _numbered(batch: PacketBatch, base: int, number: int, linktype: int) -> PacketBatch:
    """Fill in link types, packet numbers and capture offsets of a pcap batch."""
    count = len(batch)
    return PacketBatch(
        batch.source,
        batch.data,
        batch.offsets,
        batch.captured_lengths,
        batch.wire_lengths,
        batch.timestamps,
        np.full(count, linktype, dtype=np.int64),
        np.arange(number + 1, number + 1 + count, dtype=np.int64),
        batch.record_offsets + base,
    )


def read_pcapng_batches(read: Read, magic: bytes, source: str) -> Iterator[PacketBatch]:
    """Yield the packets of a pcapng file whose 4-byte ``magic`` was already read.

    The pcapng reader parses one block at a time. A batch is yielded when it
    is full or when every byte read so far has been parsed, so a pipe written
    one block at a time (``tcpdump -U``) does not hold packets back.

    NOTE: when a read ends inside a block, the packets before that block wait
    in the batch until a later read ends on a block boundary.

    Raises:
        CaptureError: as :func:`~detector.capture.pcapng.read_pcapng`, once
            every packet before the damaged block has been yielded.
    """
    reader = _ReadAhead(read)
    pending: list[PcapngRecord] = []
    pending_bytes = 0
    number = 0
    try:
        for record in read_pcapng_records(reader.read, magic, source):
            pending.append(record)
            pending_bytes += len(record[2])
            if (
                reader.buffered == 0
                or pending_bytes >= BATCH_BYTES
                or len(pending) >= MAX_BATCH_PACKETS
            ):
                yield _record_batch(pending, number, source)
                number += len(pending)
                pending = []
                pending_bytes = 0
    except (CaptureError, OSError) as error:
        if pending:
            yield _record_batch(pending, number, source)
        raise error
    if pending:
        yield _record_batch(pending, number, source)


def _record_batch(records: list[PcapngRecord], number: int, source: str) -> PacketBatch:
    lengths = np.fromiter(
        (len(record[2]) for record in records), dtype=np.int64, count=len(records)
    )
    offsets = np.zeros(len(records), dtype=np.int64)
    np.cumsum(lengths[:-1], out=offsets[1:])
    count = len(records)
    return PacketBatch(
        source,
        b"".join([record[2] for record in records]),
        offsets,
        lengths,
        np.fromiter((r[3] for r in records), dtype=np.int64, count=count),
        np.fromiter((r[0] for r in records), dtype=np.float64, count=count),
        np.fromiter((r[1] for r in records), dtype=np.int64, count=count),
        np.arange(number + 1, number + 1 + count, dtype=np.int64),
        np.fromiter((r[4] for r in records), dtype=np.int64, count=count),
    )


class _ReadAhead:
    """A read function over a chunked source that counts the bytes it buffers.

    Each refill asks the source for BATCH_BYTES, and ``buffered`` is the number
    of bytes read from the source but not yet returned.
    """

    def __init__(self, read: Read) -> None:
        self._source = read
        self._buffer = b""
        self._position = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer) - self._position

    def read(self, size: int) -> bytes:
        if self._position >= len(self._buffer):
            self._buffer = self._source(max(size, BATCH_BYTES))
            self._position = 0
        start = self._position
        data = self._buffer[start : start + size]
        self._position = start + len(data)
        return data
