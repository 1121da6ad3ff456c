"""Byte-stream helpers shared by the capture readers.

The readers never seek, so every helper here works on pipes: the first bytes of
a stream are peeked by reading them and handing them back through
:class:`PrefixedStream`, and gzip input is decompressed as it is read.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from detector.errors import CaptureError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

Read = Callable[[int], bytes]


def read_rest(read: Read, data: bytes, size: int) -> bytes:
    """Complete a short read of ``size`` bytes that returned only ``data``.

    A raw stream such as a pipe may return fewer bytes than requested before its
    end, so this keeps reading until ``size`` bytes arrive or the stream ends.
    The result is shorter than ``size`` only at the end of the stream.
    """
    parts = [data]
    missing = size - len(data)
    while missing > 0:
        chunk = read(missing)
        if not chunk:
            break
        parts.append(chunk)
        missing -= len(chunk)
    return b"".join(parts)


def read_exact(read: Read, size: int) -> bytes:
    """Read ``size`` bytes, or fewer only at the end of the stream."""
    data = read(size)
    if len(data) != size:
        data = read_rest(read, data, size)
    return data


class ChunkReader:
    """A read function that returns the bytes a stream has ready, up to the size
    requested, and can also read them straight into a buffer.

    A buffered stream is read with ``read1``, because its ``readinto1`` loses
    the bytes it had buffered when the read after them fails (a corrupt gzip
    stream). A raw stream (a file opened unbuffered, a pipe) is read with
    ``readinto``, which saves a copy of every chunk.
    """

    def __init__(self, stream: BinaryIO | io.BufferedIOBase | io.RawIOBase) -> None:
        read1: Read | None = getattr(stream, "read1", None)
        self._read: Read = read1 if read1 is not None else stream.read
        self._readinto: Callable[[memoryview], int | None] | None = None
        if read1 is None:
            self._readinto = getattr(stream, "readinto", None)

    def __call__(self, size: int) -> bytes:
        return self._read(size)

    def read_into(self, buffer: memoryview) -> int:
        """Fill the start of ``buffer`` and return the byte count, 0 at the end."""
        if self._readinto is None:
            data = self._read(len(buffer))
            buffer[: len(data)] = data
            return len(data)
        count = self._readinto(buffer)
        # A raw stream returns None when a non-blocking read has nothing
        # ready; capture streams block, so None is treated as no bytes.
        return count or 0


class PrefixedStream:
    """A read-only stream that returns ``prefix`` and then the rest of ``stream``.

    It puts back the bytes that were read to recognise the format, so that
    the gzip decompressor reads the stream from its first byte.
    """

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size < 0 or size >= len(self._prefix):
                data = self._prefix
                self._prefix = b""
            else:
                data = self._prefix[:size]
                self._prefix = self._prefix[size:]
        else:
            data = self._stream.read(size)
        self.bytes_read += len(data)
        return data


class GzipInput(io.RawIOBase):
    """The decompressed content of a gzip stream, as a forward-only raw stream.

    Wrap it in :class:`io.BufferedReader`, so that reading a record costs one
    C call instead of a pass through GzipFile for every read. A corrupt or
    truncated gzip stream raises :class:`~detector.errors.CaptureError` whose
    offset is the number of bytes decompressed before the damage.

    NOTE: bytes that were decompressed in the same call as the damage are lost,
    so a packet just before corrupt deflate data may be missing. A stream that
    is only cut short loses no complete packet.
    """

    def __init__(self, compressed: PrefixedStream, source: str) -> None:
        self._compressed = compressed
        self._source = source
        # The type stubs require seek(), which GzipFile calls only when it is
        # itself seeked. Reading forward calls read() alone.
        self._file = gzip.GzipFile(
            fileobj=compressed,  # type: ignore[call-overload]
            mode="rb",
        )
        self.offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Decompress up to ``len(buffer)`` bytes into ``buffer``.

        It returns what one read of compressed input yields, so that a pipe
        fed slowly delivers packets without waiting for a full buffer.

        Raises:
            CaptureError: the gzip stream is corrupt or ends before its trailer.
        """
        view = memoryview(buffer).cast("B")
        try:
            data = self._file.read1(len(view))
        except (gzip.BadGzipFile, zlib.error, EOFError) as exc:
            raise self._error(exc) from exc
        view[: len(data)] = data
        self.offset += len(data)
        return len(data)

    def _error(self, exc: Exception) -> CaptureError:
        if isinstance(exc, EOFError):
            problem = "the gzip stream ends before its end-of-stream marker"
            advice = "the file was probably cut short while being written or copied"
        else:
            problem = f"the gzip stream is corrupt ({exc})"
            advice = "check the file with 'gzip -t'"
        message = (
            f"{problem} after {self.offset} decompressed bytes"
            f" (compressed bytes read: {self._compressed.bytes_read}); {advice}."
            " The offset of this error is in the decompressed stream"
        )
        return CaptureError(self._source, message, self.offset)

    def close(self) -> None:
        self._file.close()
        super().close()
