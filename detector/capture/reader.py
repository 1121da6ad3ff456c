"""Open a capture file or stream and yield its packets, whatever its format.

The format is recognised by the magic number in the first bytes, never by the
file name. Reading only goes forward, so standard input and other pipes work.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from typing import BinaryIO

from detector.capture.limits import READ_BUFFER_SIZE
from detector.capture.pcap import PCAP_MAGICS, read_pcap
from detector.capture.pcapng import SHB_MAGIC, read_pcapng
from detector.capture.stream import GzipInput, PrefixedStream, Read, read_exact
from detector.errors import CaptureError
from detector.model import Packet

STDIN_PATH = "-"
GZIP_MAGIC = b"\x1f\x8b"
_MAGIC_LENGTH = 4

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
    source = os.fspath(path)
    if source == STDIN_PATH:
        yield from read_capture(sys.stdin.buffer, source)
        return
    try:
        stream = open(source, "rb", buffering=READ_BUFFER_SIZE)
    except OSError as exc:
        raise CaptureError(
            source, f"cannot open the capture: {exc.strerror or exc}"
        ) from exc
    with stream:
        yield from read_capture(stream, source)


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
    try:
        magic = read_exact(stream.read, _MAGIC_LENGTH)
        if magic[:2] == GZIP_MAGIC:
            yield from _read_gzip(stream, magic, source)
        else:
            yield from _read_format(stream.read, magic, source, "")
    except OSError as exc:
        raise CaptureError(
            source, f"reading the capture failed: {exc.strerror or exc}"
        ) from exc


def _read_gzip(stream: BinaryIO, magic: bytes, source: str) -> Iterator[Packet]:
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
        yield from _read_format(content.read, inner_magic, source, where)
    finally:
        content.close()


def _read_format(read: Read, magic: bytes, source: str, where: str) -> Iterator[Packet]:
    if magic in PCAP_MAGICS:
        return read_pcap(read, magic, source)
    if magic == SHB_MAGIC:
        return read_pcapng(read, magic, source)
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
