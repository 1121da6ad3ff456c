"""Open a capture file or stream and yield its packets, whatever its format.

The format is recognised by the magic number in the first bytes, never by the
file name. Reading only goes forward, so standard input and other pipes work.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO, TypeVar

from detector.capture.limits import READ_BUFFER_SIZE
from detector.capture.pcap import PCAP_MAGICS, read_pcap
from detector.capture.pcapng import SHB_MAGIC, read_pcapng
from detector.capture.stream import (
    ChunkReader,
    GzipInput,
    PrefixedStream,
    Read,
    read_exact,
)
from detector.errors import CaptureError
from detector.model import Packet

STDIN_PATH = "-"
GZIP_MAGIC = b"\x1f\x8b"
_MAGIC_LENGTH = 4

T = TypeVar("T")
# A format reader takes the read function, the 4-byte magic already read and
# the source name, and yields packets or batches.
FormatReader = Callable[[Read, bytes, str], Iterator[T]]

FORMATS_UNDERSTOOD = (
    "pcap (microsecond or nanosecond timestamps, either byte order), pcapng,"
    " and either of them compressed with gzip"
)

_MODIFIED_PCAP = "a modified (Kuznetzov) pcap; convert it with 'editcap -F pcap'"

# First bytes of formats that are not captures, or that must be unpacked first,
# so that the error message can name the file's real format.
_OTHER_FORMATS = {
    b"\x28\xb5\x2f\xfd": "a zstd-compressed file; decompress it with 'zstd -d'",
    b"BZh": "a bzip2-compressed file; decompress it with 'bunzip2'",
    b"\xfd7zX": "an xz-compressed file; decompress it with 'unxz'",
    b"PK\x03\x04": "a zip archive; extract the capture from it",
    b"snoo": "a Solaris snoop capture; convert it with 'editcap -F pcap'",
    b"\xa1\xb2\xcd\x34": _MODIFIED_PCAP,
    b"\x34\xcd\xb2\xa1": _MODIFIED_PCAP,
}


def open_capture(path: str | os.PathLike[str]) -> Iterator[Packet]:
    """Yield the packets of the capture file at ``path``; ``-`` reads standard input.

    The file is opened when the first packet is requested and closed when the
    iterator is exhausted or closed. Each packet's ``source`` is ``path`` as
    given.

    Raises:
        CaptureError: the file cannot be opened or read, is empty, is not a
            capture, or is damaged. See :func:`read_capture`.
    """
    return open_stream(path, read_capture)


def read_capture(stream: BinaryIO, source: str) -> Iterator[Packet]:
    """Yield the packets of the capture read from the binary ``stream``.

    The stream is read forward only and never seeked, so pipes work. A gzip
    stream is decompressed as it is read. ``source`` names the capture in each
    packet and in errors.

    Raises:
        CaptureError: the stream is empty, is not a capture, or is damaged (a
            truncated or oversized record, an inconsistent pcapng block, a
            corrupt gzip stream), or reading fails. Every packet before the
            damage is yielded first. The error's ``offset`` is a byte offset in
            the decompressed capture.
    """
    return read_stream(stream, source, read_pcap, read_pcapng, chunked=False)


def open_stream(
    path: str | os.PathLike[str],
    read: Callable[[BinaryIO, str], Iterator[T]],
    buffering: int = READ_BUFFER_SIZE,
) -> Iterator[T]:
    """Open ``path`` (``-`` is standard input) and yield what ``read`` yields.

    ``buffering`` is passed to :func:`open`: 0 for a reader that makes large
    reads of its own.

    Raises:
        CaptureError: the file cannot be opened, or ``read`` raises it.
    """
    source = os.fspath(path)
    if source == STDIN_PATH:
        yield from read(sys.stdin.buffer, source)
        return
    try:
        stream = open(source, "rb", buffering=buffering)
    except OSError as exc:
        raise CaptureError(
            source, f"cannot open the capture: {exc.strerror or exc}"
        ) from exc
    with stream:
        yield from read(stream, source)


def read_stream(
    stream: BinaryIO,
    source: str,
    pcap: FormatReader[T],
    pcapng: FormatReader[T],
    chunked: bool,
) -> Iterator[T]:
    """Recognise the format of ``stream`` and yield what its format reader yields.

    ``pcap`` and ``pcapng`` read the bytes after the 4-byte magic. With
    ``chunked``, they are given a read function that returns the bytes already
    available (``read1``) instead of waiting for the full size requested.

    Raises:
        CaptureError: as :func:`read_capture`.
    """
    try:
        magic = read_exact(stream.read, _MAGIC_LENGTH)
        if magic[:2] == GZIP_MAGIC:
            yield from _read_gzip(stream, magic, source, pcap, pcapng, chunked)
        else:
            read = _chunk_reader(stream) if chunked else stream.read
            yield from _read_format(read, magic, source, "", pcap, pcapng)
    except OSError as exc:
        raise CaptureError(
            source, f"reading the capture failed: {exc.strerror or exc}"
        ) from exc


def _chunk_reader(stream: BinaryIO | io.BufferedReader) -> ChunkReader:
    return ChunkReader(stream)


def _read_gzip(
    stream: BinaryIO,
    magic: bytes,
    source: str,
    pcap: FormatReader[T],
    pcapng: FormatReader[T],
    chunked: bool,
) -> Iterator[T]:
    compressed = PrefixedStream(magic, stream)
    content = io.BufferedReader(GzipInput(compressed, source), READ_BUFFER_SIZE)
    try:
        inner_magic = read_exact(content.read, _MAGIC_LENGTH)
        where = " after gzip decompression"
        if inner_magic[:2] == GZIP_MAGIC:
            raise CaptureError(
                source,
                "the gzip stream contains another gzip stream; decompress the"
                " file once with 'gunzip' and read the result",
                0,
            )
        read = ChunkReader(content) if chunked else content.read
        yield from _read_format(read, inner_magic, source, where, pcap, pcapng)
    finally:
        content.close()


def _read_format(
    read: Read,
    magic: bytes,
    source: str,
    where: str,
    pcap: FormatReader[T],
    pcapng: FormatReader[T],
) -> Iterator[T]:
    if magic in PCAP_MAGICS:
        return pcap(read, magic, source)
    if magic == SHB_MAGIC:
        return pcapng(read, magic, source)
    if not magic:
        if source == STDIN_PATH:
            message = (
                f"standard input was empty{where}; pipe a capture into it, as in"
                " 'tcpdump -w - | detector scan -'"
            )
        else:
            message = (
                f"empty file, no capture header{where}; the capture was never"
                " written, or was cut to nothing"
            )
        raise CaptureError(source, message, 0)
    if len(magic) < _MAGIC_LENGTH:
        raise CaptureError(
            source,
            f"file of {len(magic)} bytes ({magic.hex(' ')}){where} is too short"
            f" for a capture header; the formats understood are {FORMATS_UNDERSTOOD}",
            0,
        )
    known = _OTHER_FORMATS.get(magic) or _OTHER_FORMATS.get(magic[:3])
    if known is not None:
        raise CaptureError(source, f"not a capture file{where}: it is {known}", 0)
    raise CaptureError(
        source,
        f"not a capture file{where}: it starts with {magic.hex(' ')}; the formats"
        f" understood are {FORMATS_UNDERSTOOD}. Convert other capture formats"
        " with 'editcap -F pcapng'",
        0,
    )
