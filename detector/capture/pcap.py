"""Reader for the classic pcap format written by libpcap and tcpdump.

A file is a 24-byte file header followed by packet records, each a 16-byte
record header (seconds, fraction, captured length, original length) and the
captured bytes. The magic number gives both the byte order of every field and
the unit of the fraction: microseconds or nanoseconds.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from detector.capture.limits import MAX_RECORD_LENGTH, SNAPLEN_OVERRUN_FACTOR
from detector.capture.stream import Read, read_exact, read_rest
from detector.errors import CaptureError
from detector.model import Packet

# The magic number as it appears in the file's first four bytes, mapped to the
# struct byte order of the file and the number of fraction units per second.
PCAP_MAGICS: dict[bytes, tuple[str, int]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}

FILE_HEADER_LENGTH = 24
RECORD_HEADER_LENGTH = 16
# The link type is the low 16 bits of the file header's last field. The high
# bits may describe the frame check sequence, which the decoder does not need.
_LINKTYPE_MASK = 0xFFFF

_CUT_SHORT = (
    "the file ends inside this record, probably because it was cut short while"
    " being written or copied; the packets before it were read"
)
_CORRUPT = "the file is corrupt from this record on; the packets before it were read"


@dataclass(frozen=True, slots=True)
class PcapHeader:
    """What the file header of a pcap file sets for every record after it.

    ``byte_order`` is a struct prefix, ``units_per_second`` the unit of the
    timestamp fraction, and ``max_length`` the largest valid captured length.
    """

    byte_order: str
    units_per_second: int
    snaplen: int
    linktype: int
    max_length: int


def read_pcap_header(read: Read, magic: bytes, source: str) -> PcapHeader:
    """Read the rest of the 24-byte file header whose ``magic`` was already read.

    Raises:
        CaptureError: the header is truncated or has an unknown version.
    """
    byte_order, units_per_second = PCAP_MAGICS[magic]
    header_rest = FILE_HEADER_LENGTH - len(magic)
    header = read_exact(read, header_rest)
    if len(header) != header_rest:
        found = len(magic) + len(header)
        raise CaptureError(
            source,
            f"truncated pcap file header: expected {FILE_HEADER_LENGTH} bytes,"
            f" found {found}; the file was probably cut short",
            0,
        )
    major, minor, _zone, _sigfigs, snaplen, linktype_field = struct.unpack(
        byte_order + "HHiIII", header
    )
    if major != 2:
        raise CaptureError(
            source,
            f"unsupported pcap version {major}.{minor}: only version 2.x is"
            " defined; convert the file with 'editcap -F pcap'",
            0,
        )
    max_length = MAX_RECORD_LENGTH
    if snaplen:
        max_length = min(max_length, snaplen * SNAPLEN_OVERRUN_FACTOR)
    return PcapHeader(
        byte_order,
        units_per_second,
        snaplen,
        linktype_field & _LINKTYPE_MASK,
        max_length,
    )


def read_pcap(read: Read, magic: bytes, source: str) -> Iterator[Packet]:
    """Yield the packets of a pcap file whose 4-byte ``magic`` was already read.

    ``read`` returns the bytes that follow the magic.

    Raises:
        CaptureError: the file header is truncated or has an unknown version, or
            a record is truncated or longer than the limits allow. Every packet
            before the damaged record is yielded first.
    """
    header = read_pcap_header(read, magic, source)
    linktype = header.linktype
    units_per_second = header.units_per_second
    max_length = header.max_length
    unpack_record = struct.Struct(header.byte_order + "IIII").unpack
    offset = FILE_HEADER_LENGTH
    number = 0
    while True:
        record = read(RECORD_HEADER_LENGTH)
        if len(record) != RECORD_HEADER_LENGTH:
            record = read_rest(read, record, RECORD_HEADER_LENGTH)
            if not record:
                return
            if len(record) != RECORD_HEADER_LENGTH:
                raise truncated_header_error(source, offset, len(record))
        seconds, fraction, captured_length, wire_length = unpack_record(record)
        if captured_length > max_length:
            raise length_error(source, offset, captured_length, header.snaplen)
        data = read(captured_length)
        if len(data) != captured_length:
            data = read_rest(read, data, captured_length)
            if len(data) != captured_length:
                raise truncated_data_error(source, offset, captured_length, len(data))
        number += 1
        yield Packet(
            seconds + fraction / units_per_second,
            linktype,
            data,
            wire_length,
            source,
            offset,
            number,
        )
        offset += RECORD_HEADER_LENGTH + captured_length


def truncated_header_error(source: str, offset: int, found: int) -> CaptureError:
    """Return the error for a record header cut short after ``found`` bytes."""
    return CaptureError(
        source,
        f"truncated packet record header: expected {RECORD_HEADER_LENGTH} bytes,"
        f" found {found}; {_CUT_SHORT}",
        offset,
    )


def truncated_data_error(
    source: str, offset: int, captured_length: int, found: int
) -> CaptureError:
    """Return the error for packet data cut short after ``found`` bytes."""
    return CaptureError(
        source,
        f"truncated packet data: the record header declares {captured_length}"
        f" bytes, found {found}; {_CUT_SHORT}",
        offset,
    )


def length_error(
    source: str, offset: int, captured_length: int, snaplen: int
) -> CaptureError:
    """Return the error for a captured length beyond the limits."""
    if captured_length > MAX_RECORD_LENGTH:
        problem = (
            f"packet record length {captured_length} is larger than the maximum"
            f" {MAX_RECORD_LENGTH} of any link type"
        )
    else:
        problem = (
            f"packet record length {captured_length} is more than"
            f" {SNAPLEN_OVERRUN_FACTOR} times the snap length {snaplen}"
            " of the file header"
        )
    return CaptureError(source, f"{problem}; {_CORRUPT}", offset)
