"""Capture file encoders: pcap (both resolutions, both byte orders), pcapng
and gzip.

The encoders return bytes and never touch the file system. The headers are
written here rather than by scapy so that byte order, timestamp resolution and
pcapng interface options are under the caller's control.
"""

from __future__ import annotations

import gzip
import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass

NS_PER_SECOND = 1_000_000_000
PCAP_MAGIC_MICROSECONDS = 0xA1B2C3D4
PCAP_MAGIC_NANOSECONDS = 0xA1B23C4D
PCAP_VERSION = (2, 4)
# tcpdump's default snapshot length, in bytes.
DEFAULT_SNAPLEN = 262144

PCAPNG_SECTION_HEADER = 0x0A0D0D0A
PCAPNG_INTERFACE_DESCRIPTION = 0x00000001
PCAPNG_ENHANCED_PACKET = 0x00000006
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAPNG_VERSION = (1, 0)
# Section length -1: not given, readers walk the blocks.
PCAPNG_UNKNOWN_SECTION_LENGTH = 0xFFFFFFFFFFFFFFFF
OPTION_END = 0
OPTION_SHB_USERAPPL = 4
OPTION_IF_NAME = 2
OPTION_IF_TSRESOL = 9
# pcapng's default interface resolution is 10^-6 s, so an if_tsresol option is
# written only for other resolutions.
DEFAULT_TIMESTAMP_EXPONENT = 6


@dataclass(frozen=True, slots=True)
class Record:
    """One captured frame: capture time, bytes and the pcapng interface index."""

    timestamp_ns: int
    data: bytes
    interface: int = 0


@dataclass(frozen=True, slots=True)
class Interface:
    """A pcapng interface. ``timestamp_exponent`` is n in a resolution of
    10^-n seconds (6 for microseconds, 9 for nanoseconds)."""

    linktype: int
    name: str
    timestamp_exponent: int = DEFAULT_TIMESTAMP_EXPONENT
    snaplen: int = DEFAULT_SNAPLEN


def encode_pcap(
    records: Sequence[Record],
    linktype: int,
    *,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = DEFAULT_SNAPLEN,
) -> bytes:
    """Encode a classic pcap file.

    Microsecond files truncate the nanosecond timestamps. Frames longer than
    ``snaplen`` are cut, and their original length is kept.
    """
    order = ">" if big_endian else "<"
    magic = PCAP_MAGIC_NANOSECONDS if nanosecond else PCAP_MAGIC_MICROSECONDS
    out = bytearray(
        struct.pack(order + "IHHiIII", magic, *PCAP_VERSION, 0, 0, snaplen, linktype)
    )
    divisor = 1 if nanosecond else 1000
    for record in records:
        seconds, fraction = divmod(record.timestamp_ns, NS_PER_SECOND)
        captured = record.data[:snaplen]
        out += struct.pack(
            order + "IIII",
            seconds,
            fraction // divisor,
            len(captured),
            len(record.data),
        )
        out += captured
    return bytes(out)


def encode_pcapng(
    interfaces: Sequence[Interface],
    records: Sequence[Record],
    *,
    application: str = "detector.trafficgen",
) -> bytes:
    """Encode a little-endian pcapng file with one section.

    Raises ValueError when a record names an interface that is not defined.
    """
    section = struct.pack(
        "<IHHQ", PCAPNG_BYTE_ORDER_MAGIC, *PCAPNG_VERSION, PCAPNG_UNKNOWN_SECTION_LENGTH
    )
    section += _options([(OPTION_SHB_USERAPPL, application.encode())])
    out = bytearray(_block(PCAPNG_SECTION_HEADER, section))
    for interface in interfaces:
        options = [(OPTION_IF_NAME, interface.name.encode())]
        if interface.timestamp_exponent != DEFAULT_TIMESTAMP_EXPONENT:
            options.append((OPTION_IF_TSRESOL, bytes([interface.timestamp_exponent])))
        body = struct.pack("<HHI", interface.linktype, 0, interface.snaplen)
        out += _block(PCAPNG_INTERFACE_DESCRIPTION, body + _options(options))
    for record in records:
        if not 0 <= record.interface < len(interfaces):
            raise ValueError(f"record names undefined interface {record.interface}")
        interface = interfaces[record.interface]
        ticks = record.timestamp_ns * 10**interface.timestamp_exponent // NS_PER_SECOND
        captured = record.data[: interface.snaplen]
        body = struct.pack(
            "<IIIII",
            record.interface,
            ticks >> 32,
            ticks & 0xFFFFFFFF,
            len(captured),
            len(record.data),
        )
        out += _block(PCAPNG_ENHANCED_PACKET, body + _pad32(captured))
    return bytes(out)


def gzip_compress(data: bytes) -> bytes:
    """Compress ``data`` with a gzip header that contains no file name and a zero
    modification time, so equal input gives equal output with the same zlib."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as stream:
        stream.write(data)
    return buffer.getvalue()


def _block(block_type: int, body: bytes) -> bytes:
    # A block is its type, total length, body and total length again. Bodies
    # are padded to 32 bits.
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def _options(options: Sequence[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    for code, value in options:
        out += struct.pack("<HH", code, len(value)) + _pad32(value)
    out += struct.pack("<HH", OPTION_END, 0)
    return bytes(out)


def _pad32(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)
