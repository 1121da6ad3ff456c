"""Builders for pcap and pcapng bytes, written with struct field by field."""

from __future__ import annotations

import struct

PCAP_MICROSECONDS = 0xA1B2C3D4
PCAP_NANOSECONDS = 0xA1B23C4D

SHB = 0x0A0D0D0A
IDB = 1
PB = 2
SPB = 3
EPB = 6
NAME_RESOLUTION = 4
INTERFACE_STATISTICS = 5


def pcap_header(
    order: str = "<",
    magic: int = PCAP_MICROSECONDS,
    snaplen: int = 65535,
    linktype: int = 1,
    version: tuple[int, int] = (2, 4),
) -> bytes:
    return struct.pack(order + "IHHiIII", magic, *version, 0, 0, snaplen, linktype)


def pcap_record(
    seconds: int,
    fraction: int,
    data: bytes,
    order: str = "<",
    wire_length: int | None = None,
    captured_length: int | None = None,
) -> bytes:
    if wire_length is None:
        wire_length = len(data)
    if captured_length is None:
        captured_length = len(data)
    header = struct.pack(
        order + "IIII", seconds, fraction, captured_length, wire_length
    )
    return header + data


def pcap_file(
    packets: list[bytes],
    order: str = "<",
    magic: int = PCAP_MICROSECONDS,
    linktype: int = 1,
    snaplen: int = 65535,
) -> bytes:
    """Return a pcap file whose packet i has timestamp 1000 + i seconds + i units."""
    parts = [pcap_header(order, magic, snaplen, linktype)]
    for index, data in enumerate(packets):
        parts.append(pcap_record(1000 + index, index, data, order))
    return b"".join(parts)


def pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def block(block_type: int, body: bytes, order: str = "<") -> bytes:
    body = pad4(body)
    length = 12 + len(body)
    return (
        struct.pack(order + "II", block_type, length)
        + body
        + struct.pack(order + "I", length)
    )


def option(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + pad4(value)


def end_of_options(order: str = "<") -> bytes:
    return struct.pack(order + "HH", 0, 0)


def section_header(
    order: str = "<", version: tuple[int, int] = (1, 0), options: bytes = b""
) -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, *version, -1) + options
    return block(SHB, body, order)


def interface_description(
    linktype: int,
    order: str = "<",
    snaplen: int = 0,
    tsresol: int | None = None,
    tsoffset: int | None = None,
) -> bytes:
    options = b""
    if tsresol is not None:
        options += option(9, bytes([tsresol]), order)
    if tsoffset is not None:
        options += option(14, struct.pack(order + "q", tsoffset), order)
    if options:
        options += end_of_options(order)
    body = struct.pack(order + "HHI", linktype, 0, snaplen) + options
    return block(IDB, body, order)


def enhanced_packet(
    interface: int,
    timestamp: int,
    data: bytes,
    order: str = "<",
    wire_length: int | None = None,
    captured_length: int | None = None,
) -> bytes:
    if wire_length is None:
        wire_length = len(data)
    if captured_length is None:
        captured_length = len(data)
    fields = struct.pack(
        order + "IIIII",
        interface,
        timestamp >> 32,
        timestamp & 0xFFFFFFFF,
        captured_length,
        wire_length,
    )
    return block(EPB, fields + pad4(data), order)


def simple_packet(
    data: bytes, order: str = "<", wire_length: int | None = None
) -> bytes:
    if wire_length is None:
        wire_length = len(data)
    return block(SPB, struct.pack(order + "I", wire_length) + pad4(data), order)


def packet_block(
    interface: int, timestamp: int, data: bytes, order: str = "<"
) -> bytes:
    fields = struct.pack(
        order + "HHIIII",
        interface,
        0,
        timestamp >> 32,
        timestamp & 0xFFFFFFFF,
        len(data),
        len(data),
    )
    return block(PB, fields + pad4(data), order)


class ChunkedStream:
    """A non-seekable binary stream that returns at most ``chunk`` bytes per read."""

    def __init__(self, data: bytes, chunk: int = 1) -> None:
        self._data = data
        self._position = 0
        self._chunk = chunk

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = len(self._data) - self._position
        size = min(size, self._chunk)
        data = self._data[self._position : self._position + size]
        self._position += len(data)
        return data

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = 0) -> int:
        raise OSError("stream is not seekable")
