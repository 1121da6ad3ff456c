"""Reader for the pcapng format (draft-ietf-opsawg-pcapng).

A file is a sequence of blocks, each framed by its type and total length at the
start and the same total length at the end. A Section Header Block (SHB) starts
each section and sets the byte order of the blocks that follow. Interface
Description Blocks (IDB) in a section are numbered from 0 and give each
interface its link type, snap length and timestamp resolution. Packets arrive
in Enhanced Packet Blocks (EPB), Simple Packet Blocks (SPB) or the obsolete
Packet Blocks (PB). Every other block type is skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from detector.capture.limits import (
    MAX_BLOCK_LENGTH,
    MAX_RECORD_LENGTH,
    SNAPLEN_OVERRUN_FACTOR,
)
from detector.capture.stream import Read, read_exact, read_rest
from detector.errors import CaptureError
from detector.model import Packet

# The SHB block type reads the same in both byte orders, so it is recognised
# before the section's byte order is known.
SHB_MAGIC = b"\x0a\x0d\x0d\x0a"
_BYTE_ORDER_MAGICS = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}

_IDB = 0x00000001
_PB = 0x00000002
_SPB = 0x00000003
_EPB = 0x00000006

_BLOCK_HEADER_LENGTH = 8
_TRAILER_LENGTH = 4
# Smallest total lengths: the block framing (12 bytes) plus the fixed fields.
_MIN_BLOCK_LENGTH = 12
_MIN_SHB_LENGTH = 28
# Block type, block length and byte-order magic, read before the SHB body.
_SHB_PREFIX_LENGTH = 12
_MIN_LENGTH = {_IDB: 20, _PB: 32, _SPB: 16, _EPB: 32}
_BLOCK_NAMES = {
    _IDB: "interface description block",
    _PB: "packet block",
    _SPB: "simple packet block",
    _EPB: "enhanced packet block",
}

_OPTION_END = 0
_OPTION_TSRESOL = 9
_OPTION_TSOFFSET = 14
# if_tsresol: the high bit selects a negative power of 2, else of 10.
_TSRESOL_POWER_OF_TWO = 0x80
_DEFAULT_UNITS_PER_SECOND = 1_000_000

_CUT_SHORT = (
    "the file ends inside this block, probably because it was cut short while"
    " being written or copied; the packets before it were read"
)
_CORRUPT = "the file is corrupt from this block on; the packets before it were read"


@dataclass(frozen=True, slots=True)
class _Interface:
    linktype: int
    snaplen: int
    units_per_second: int
    timestamp_offset: int
    max_length: int


class _Section:
    """Byte order and interfaces of the current section."""

    __slots__ = ("order", "unpack_head", "unpack_epb", "unpack_pb", "interfaces")

    def __init__(self, order: str) -> None:
        self.order = order
        self.unpack_head = struct.Struct(order + "II").unpack
        self.unpack_epb = struct.Struct(order + "IIIII").unpack_from
        self.unpack_pb = struct.Struct(order + "HHIIII").unpack_from
        self.interfaces: list[_Interface] = []


# One packet as read from its block: timestamp, link type, captured bytes, wire
# length and the offset of its block.
PcapngRecord = tuple[float, int, bytes, int, int]


def read_pcapng(read: Read, magic: bytes, source: str) -> Iterator[Packet]:
    """Yield the packets of a pcapng file whose 4-byte ``magic`` was already read.

    ``read`` returns the bytes that follow the magic. A packet's offset is the
    offset of its block. A Simple Packet Block has no timestamp, so its packet
    gets the timestamp of the packet before it, or 0.0 if it is the first.

    Raises:
        CaptureError: a block is truncated or its length is invalid (not a
            multiple of 4, too small, too large, or different at its end). Also
            raised when a packet names an interface that has no IDB, or when a
            section has an unsupported version. Every packet before the damaged
            block is yielded first.
    """
    number = 0
    for timestamp, linktype, data, wire_length, offset in read_pcapng_records(
        read, magic, source
    ):
        number += 1
        yield Packet(timestamp, linktype, data, wire_length, source, offset, number)


def read_pcapng_records(
    read: Read, magic: bytes, source: str
) -> Iterator[PcapngRecord]:
    """Yield the packets of a pcapng file as :data:`PcapngRecord` tuples.

    It is :func:`read_pcapng` without the :class:`Packet` objects, for readers
    that gather packets into batches.

    Raises:
        CaptureError: as :func:`read_pcapng`, after yielding every packet
            before the damaged block.
    """
    offset = 0
    last_timestamp = 0.0
    head = _read_block_header(read, magic, source, offset)
    section = _Section("<")
    while head:
        if head[:4] == SHB_MAGIC:
            section, length = _read_section_header(read, head, source, offset)
            offset += length
            head = _read_block_header(read, b"", source, offset)
            continue

        block_type, length = section.unpack_head(head)
        _check_block_length(source, offset, block_type, length)
        body = read(length - _BLOCK_HEADER_LENGTH)
        if len(body) != length - _BLOCK_HEADER_LENGTH:
            body = _read_body(read, body, length, source, offset)
        if body[-_TRAILER_LENGTH:] != head[4:]:
            raise _trailer_error(section, body, length, source, offset)

        if block_type == _EPB:
            interface_id, high, low, captured_length, wire_length = section.unpack_epb(
                body
            )
            interface = _interface(section, interface_id, source, offset)
            data = _packet_data(body, 20, captured_length, interface, source, offset)
            last_timestamp = (
                (high << 32) | low
            ) / interface.units_per_second + interface.timestamp_offset
        elif block_type == _SPB:
            interface = _interface(section, 0, source, offset)
            (wire_length,) = struct.unpack_from(section.order + "I", body)
            data = _simple_packet_data(body, wire_length, interface, source, offset)
        elif block_type == _PB:
            interface_id, _drops, high, low, captured_length, wire_length = (
                section.unpack_pb(body)
            )
            interface = _interface(section, interface_id, source, offset)
            data = _packet_data(body, 20, captured_length, interface, source, offset)
            last_timestamp = (
                (high << 32) | low
            ) / interface.units_per_second + interface.timestamp_offset
        else:
            if block_type == _IDB:
                interface = _parse_interface(section, body, source, offset)
                section.interfaces.append(interface)
            offset += length
            head = _read_block_header(read, b"", source, offset)
            continue

        yield last_timestamp, interface.linktype, data, wire_length, offset
        offset += length
        head = _read_block_header(read, b"", source, offset)


def _read_block_header(read: Read, start: bytes, source: str, offset: int) -> bytes:
    """Read the type and length of the next block, or b"" at the end of the file."""
    missing = _BLOCK_HEADER_LENGTH - len(start)
    head = start + read(missing)
    if len(head) != _BLOCK_HEADER_LENGTH:
        head = read_rest(read, head, _BLOCK_HEADER_LENGTH)
        if not head:
            return head
        if len(head) != _BLOCK_HEADER_LENGTH:
            raise CaptureError(
                source,
                f"truncated block header: expected {_BLOCK_HEADER_LENGTH} bytes,"
                f" found {len(head)}; {_CUT_SHORT}",
                offset,
            )
    return head


def _read_body(read: Read, body: bytes, length: int, source: str, offset: int) -> bytes:
    expected = length - _BLOCK_HEADER_LENGTH
    body = read_rest(read, body, expected)
    if len(body) != expected:
        raise CaptureError(
            source,
            f"truncated block: its header declares {length} bytes, found"
            f" {_BLOCK_HEADER_LENGTH + len(body)}; {_CUT_SHORT}",
            offset,
        )
    return body


def _read_section_header(
    read: Read, head: bytes, source: str, offset: int
) -> tuple[_Section, int]:
    """Read the rest of an SHB and return the new section and the block length."""
    magic = read_exact(read, 4)
    if len(magic) != 4:
        raise CaptureError(
            source,
            f"truncated section header block: expected at least {_MIN_SHB_LENGTH}"
            f" bytes, found {len(head) + len(magic)}; {_CUT_SHORT}",
            offset,
        )
    order = _BYTE_ORDER_MAGICS.get(magic)
    if order is None:
        raise CaptureError(
            source,
            f"section header block has an invalid byte-order magic {magic.hex(' ')}"
            f" (expected 1a 2b 3c 4d in either byte order); {_CORRUPT}",
            offset,
        )
    section = _Section(order)

    (length,) = struct.unpack(order + "I", head[4:])
    if length % 4 or length < _MIN_SHB_LENGTH or length > MAX_BLOCK_LENGTH:
        raise CaptureError(
            source,
            f"section header block length {length} is invalid: it must be a"
            f" multiple of 4 between {_MIN_SHB_LENGTH} and {MAX_BLOCK_LENGTH};"
            f" {_CORRUPT}",
            offset,
        )
    body = read_exact(read, length - _SHB_PREFIX_LENGTH)
    if len(body) != length - _SHB_PREFIX_LENGTH:
        raise CaptureError(
            source,
            f"truncated section header block: its header declares {length} bytes,"
            f" found {_SHB_PREFIX_LENGTH + len(body)}; {_CUT_SHORT}",
            offset,
        )
    if body[-_TRAILER_LENGTH:] != head[4:]:
        raise _trailer_error(section, body, length, source, offset)

    major, minor = struct.unpack_from(order + "HH", body)
    if major != 1:
        raise CaptureError(
            source,
            f"unsupported pcapng version {major}.{minor}: only version 1.x is"
            " defined; convert the file with 'editcap -F pcapng'",
            offset,
        )
    return section, length


def _check_block_length(source: str, offset: int, block_type: int, length: int) -> None:
    minimum = _MIN_LENGTH.get(block_type, _MIN_BLOCK_LENGTH)
    if length % 4 == 0 and minimum <= length <= MAX_BLOCK_LENGTH:
        return
    name = _BLOCK_NAMES.get(block_type, f"block of type {block_type:#x}")
    if length % 4:
        problem = f"{name} length {length} is not a multiple of 4"
    elif length < minimum:
        problem = f"{name} length {length} is smaller than the minimum {minimum}"
    else:
        problem = (
            f"{name} length {length} is larger than the maximum {MAX_BLOCK_LENGTH}"
        )
    raise CaptureError(source, f"{problem}; {_CORRUPT}", offset)


def _trailer_error(
    section: _Section, body: bytes, length: int, source: str, offset: int
) -> CaptureError:
    (trailer,) = struct.unpack(section.order + "I", body[-_TRAILER_LENGTH:])
    return CaptureError(
        source,
        f"block length {length} at the start of the block differs from the"
        f" length {trailer} at its end; {_CORRUPT}",
        offset,
    )


def _interface(
    section: _Section, interface_id: int, source: str, offset: int
) -> _Interface:
    if interface_id < len(section.interfaces):
        return section.interfaces[interface_id]
    count = len(section.interfaces)
    raise CaptureError(
        source,
        f"packet names interface {interface_id}, but its section describes"
        f" {count} interface{'' if count == 1 else 's'} before it; {_CORRUPT}",
        offset,
    )


def _packet_data(
    body: bytes,
    start: int,
    captured_length: int,
    interface: _Interface,
    source: str,
    offset: int,
) -> bytes:
    end = start + captured_length
    if captured_length <= interface.max_length and end <= len(body) - _TRAILER_LENGTH:
        return body[start:end]
    if end > len(body) - _TRAILER_LENGTH:
        problem = (
            f"captured length {captured_length} does not fit in its block of"
            f" {len(body) + _BLOCK_HEADER_LENGTH} bytes"
        )
    else:
        problem = _length_problem(captured_length, interface)
    raise CaptureError(source, f"{problem}; {_CORRUPT}", offset)


def _simple_packet_data(
    body: bytes, wire_length: int, interface: _Interface, source: str, offset: int
) -> bytes:
    # An SPB stores no captured length: the data is the original packet cut to
    # the snap length of interface 0, then padded to 32 bits.
    captured_length = wire_length
    if interface.snaplen:
        captured_length = min(captured_length, interface.snaplen)
    return _packet_data(body, 4, captured_length, interface, source, offset)


def _length_problem(captured_length: int, interface: _Interface) -> str:
    if captured_length > MAX_RECORD_LENGTH:
        return (
            f"captured length {captured_length} is larger than the maximum"
            f" {MAX_RECORD_LENGTH} of any link type"
        )
    return (
        f"captured length {captured_length} is more than {SNAPLEN_OVERRUN_FACTOR}"
        f" times the snap length {interface.snaplen} of its interface"
    )


def _parse_interface(
    section: _Section, body: bytes, source: str, offset: int
) -> _Interface:
    linktype, _reserved, snaplen = struct.unpack_from(section.order + "HHI", body)
    units_per_second = _DEFAULT_UNITS_PER_SECOND
    timestamp_offset = 0
    for code, value in _options(section, body, 8, source, offset):
        if code == _OPTION_TSRESOL:
            if len(value) != 1:
                raise _option_error("if_tsresol", value, 1, source, offset)
            exponent = value[0] & ~_TSRESOL_POWER_OF_TWO
            base = 2 if value[0] & _TSRESOL_POWER_OF_TWO else 10
            units_per_second = base**exponent
        elif code == _OPTION_TSOFFSET:
            if len(value) != 8:
                raise _option_error("if_tsoffset", value, 8, source, offset)
            (timestamp_offset,) = struct.unpack(section.order + "q", value)
    max_length = MAX_RECORD_LENGTH
    if snaplen:
        max_length = min(max_length, snaplen * SNAPLEN_OVERRUN_FACTOR)
    return _Interface(linktype, snaplen, units_per_second, timestamp_offset, max_length)


def _options(
    section: _Section, body: bytes, start: int, source: str, offset: int
) -> Iterator[tuple[int, bytes]]:
    """Yield the (code, value) options that fill ``body`` from ``start`` on."""
    end = len(body) - _TRAILER_LENGTH
    unpack_option = struct.Struct(section.order + "HH").unpack_from
    position = start
    while position + 4 <= end:
        code, length = unpack_option(body, position)
        if code == _OPTION_END:
            return
        value_end = position + 4 + length
        if value_end > end:
            raise CaptureError(
                source,
                f"option {code} of length {length} runs past the end of its"
                f" block; {_CORRUPT}",
                offset,
            )
        yield code, body[position + 4 : value_end]
        # Values are padded to 32 bits.
        position = value_end + (-length % 4)


def _option_error(
    name: str, value: bytes, expected: int, source: str, offset: int
) -> CaptureError:
    return CaptureError(
        source,
        f"interface option {name} has {len(value)} bytes, expected {expected};"
        f" {_CORRUPT}",
        offset,
    )
