"""DNS message parsing (RFC 1035), for UDP datagrams and DNS over TCP.

:func:`parse_dns` turns one DNS message into a :class:`DnsMessage` and raises
:class:`detector.errors.DecodeError` when the message is malformed.
:class:`DnsTcpDecoder` frames DNS over TCP (RFC 1035 section 4.2.2: each
message behind a 2-byte length) and never raises on bad input.
:func:`resolve_chain` maps each address in a response to the names that led
to it, which is what passive DNS needs to name the pool behind an address.
"""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass

from detector.errors import DecodeError

TYPE_A = 1
TYPE_CNAME = 5
TYPE_AAAA = 28
OPCODE_QUERY = 0

# RFC 1035 section 2.3.4: a name takes at most 255 octets in wire form. Labels
# are at most 63 octets because the top two bits of a length byte select the
# label type.
MAX_NAME_OCTETS = 255

# Compression pointers followed while reading one name. Encoders point each
# name at a suffix written before it, so a chain is as long as the nesting of
# names that share suffixes, a handful in real messages. Pointers must also
# point before the labels that lead to them, so the reader cannot loop. This
# bound caps the work on a hostile message that chains pointers one label at a
# time.
MAX_POINTER_JUMPS = 32

# CNAME records followed from one name in resolve_chain. Real alias chains are
# a few links long (a CDN adds two or three), so 16 is an estimate with room to
# spare that still bounds the work on a hostile response.
MAX_CNAME_CHAIN = 16

# Enough of a message to show what it started with.
MAX_EXCERPT_BYTES = 64

# Reasons carried by MalformedDns.reason, fixed strings so callers can count
# them.
REASON_INVALID_MESSAGE = "invalid DNS message"
REASON_TRUNCATED = "stream ended inside a DNS message"

_HEADER_BYTES = 12
_LENGTH_PREFIX_BYTES = 2
_POINTER_BITS = 0xC0
_ADDRESS_LENGTHS = {TYPE_A: 4, TYPE_AAAA: 16}
_ADDRESS_FAMILIES = {TYPE_A: socket.AF_INET, TYPE_AAAA: socket.AF_INET6}
# Label bytes printed as they are; any other byte, and the dot and backslash
# inside a label, are printed as \DDD (RFC 4343 section 2.1).
_PLAIN_LABEL_BYTES = frozenset(range(0x21, 0x7F)) - frozenset(b".\\")
# The same set as bytes, so bytes.translate can drop them in one C call: a
# label is plain when nothing is left.
_PLAIN_LABEL_DELETE = bytes(sorted(_PLAIN_LABEL_BYTES))


@dataclass(frozen=True, slots=True)
class DnsQuestion:
    """One entry of the question section."""

    name: str
    type: int


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One resource record of the answer section.

    ``value`` is the address text for A and AAAA records (dotted quad, or the
    compressed IPv6 form that ``socket.inet_ntop`` writes), the target name for
    CNAME records, and the raw RDATA bytes for every other type.
    """

    name: str
    type: int
    ttl: int
    value: str | bytes


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """One DNS message: header fields, questions and answers.

    Names are lower-case (ASCII letters only) without a trailing dot; the root
    is the empty string. The authority and additional sections are not
    decoded.
    """

    id: int
    is_response: bool
    rcode: int
    questions: tuple[DnsQuestion, ...]
    answers: tuple[DnsRecord, ...]
    opcode: int = OPCODE_QUERY
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class MalformedDns:
    """A DNS-over-TCP message that failed to parse, after which decoding stops.

    ``reason`` is one of the ``REASON_*`` constants of this module, ``detail``
    the parser's error message and ``excerpt`` the first bytes of the message,
    at most :data:`MAX_EXCERPT_BYTES`.
    """

    reason: str
    detail: str
    excerpt: bytes


DnsEvent = DnsMessage | MalformedDns


def _format_label(label: bytes) -> str:
    if not label.translate(None, _PLAIN_LABEL_DELETE):
        return label.decode("ascii")
    return "".join(
        chr(byte) if byte in _PLAIN_LABEL_BYTES else f"\\{byte:03d}" for byte in label
    )


def _read_name(data: bytes, offset: int, where: str) -> tuple[str, int]:
    """Read the name at ``offset``; return it and the offset just after it.

    ``where`` is the name's place in the message, such as "question 0", for
    error messages.

    Raises:
        DecodeError: the name runs past the message, uses a reserved label
            type, is too long, or has a compression pointer that does not
            point before the labels leading to it, or one pointer too many.
    """
    labels: list[str] = []
    octets = 1
    jumps = 0
    end: int | None = None
    position = offset
    # Where the labels being read begin: the name's own offset, then each
    # pointer's target. Every pointer must point before it, so the reader
    # always moves backwards and cannot loop.
    segment_start = offset
    while True:
        if position >= len(data):
            raise DecodeError(
                f"DNS name of {where} at byte {offset} runs past the message"
            )
        length = data[position]
        if length & _POINTER_BITS == _POINTER_BITS:
            if position + 2 > len(data):
                raise DecodeError(
                    f"DNS name of {where} at byte {offset} runs past the message"
                )
            target = (length & ~_POINTER_BITS) << 8 | data[position + 1]
            if target >= segment_start:
                raise DecodeError(
                    f"DNS compression pointer in {where} at byte {position} points"
                    f" to byte {target}, not before the labels at byte {segment_start}"
                )
            jumps += 1
            if jumps > MAX_POINTER_JUMPS:
                raise DecodeError(
                    f"DNS name of {where} at byte {offset} follows more than"
                    f" {MAX_POINTER_JUMPS} compression pointers"
                )
            if end is None:
                end = position + 2
            position = segment_start = target
            continue
        if length & _POINTER_BITS:
            raise DecodeError(
                f"DNS label in {where} at byte {position} uses reserved label type"
                f" 0x{length & _POINTER_BITS:02x}"
            )
        if length == 0:
            break
        octets += length + 1
        if octets > MAX_NAME_OCTETS:
            raise DecodeError(
                f"DNS name of {where} at byte {offset} is longer than"
                f" {MAX_NAME_OCTETS} octets"
            )
        label = data[position + 1 : position + 1 + length]
        if len(label) < length:
            raise DecodeError(
                f"DNS name of {where} at byte {offset} runs past the message"
            )
        labels.append(_format_label(label.lower()))
        position += 1 + length
    if end is None:
        end = position + 1
    return ".".join(labels), end


def _read_uint(data: bytes, offset: int, size: int, what: str) -> int:
    if offset + size > len(data):
        raise DecodeError(f"DNS message ends inside the {what} at byte {offset}")
    return int.from_bytes(data[offset : offset + size], "big")


def _read_record(data: bytes, offset: int, index: int) -> tuple[DnsRecord, int]:
    name, offset = _read_name(data, offset, f"answer {index}")
    record_type = _read_uint(data, offset, 2, f"type of answer {index}")
    ttl = _read_uint(data, offset + 4, 4, f"TTL of answer {index}")
    length = _read_uint(data, offset + 8, 2, f"RDLENGTH of answer {index}")
    start = offset + 10
    end = start + length
    if end > len(data):
        raise DecodeError(f"DNS answer {index} at byte {offset} runs past the message")
    value: str | bytes
    if record_type in _ADDRESS_LENGTHS:
        if length != _ADDRESS_LENGTHS[record_type]:
            raise DecodeError(
                f"DNS answer {index} of type {record_type} has RDLENGTH {length},"
                f" expected {_ADDRESS_LENGTHS[record_type]}"
            )
        value = socket.inet_ntop(_ADDRESS_FAMILIES[record_type], data[start:end])
    elif record_type == TYPE_CNAME:
        value, name_end = _read_name(data, start, f"CNAME target of answer {index}")
        if name_end != end:
            raise DecodeError(
                f"DNS answer {index} CNAME target does not fill its RDLENGTH {length}"
            )
    else:
        value = data[start:end]
    return DnsRecord(name, record_type, ttl, value), end


def parse_dns(data: bytes) -> DnsMessage:
    """Parse one DNS message: its header, questions and answers.

    Bytes after the answer section (authority and additional records) are not
    read.

    Raises:
        DecodeError: the message is shorter than its header or its counts
            say, or a name or record in the question or answer section is
            malformed. The message names the section and byte offset.
    """
    if len(data) < _HEADER_BYTES:
        raise DecodeError(
            f"DNS message of {len(data)} bytes is shorter than the"
            f" {_HEADER_BYTES}-byte header"
        )
    message_id = int.from_bytes(data[0:2], "big")
    flags = int.from_bytes(data[2:4], "big")
    question_count = int.from_bytes(data[4:6], "big")
    answer_count = int.from_bytes(data[6:8], "big")
    offset = _HEADER_BYTES
    questions = []
    for index in range(question_count):
        name, offset = _read_name(data, offset, f"question {index}")
        question_type = _read_uint(data, offset, 2, f"type of question {index}")
        _read_uint(data, offset + 2, 2, f"class of question {index}")
        questions.append(DnsQuestion(name, question_type))
        offset += 4
    answers = []
    for index in range(answer_count):
        record, offset = _read_record(data, offset, index)
        answers.append(record)
    return DnsMessage(
        id=message_id,
        is_response=bool(flags & 0x8000),
        rcode=flags & 0x000F,
        questions=tuple(questions),
        answers=tuple(answers),
        opcode=(flags >> 11) & 0x0F,
        truncated=bool(flags & 0x0200),
    )


def resolve_chain(message: DnsMessage) -> dict[str, list[str]]:
    """Map each A and AAAA address in the answers to the names that led to it.

    Each list starts with the name asked for and follows the CNAME records to
    the name that owns the address, in order and without repeats. An address
    reached from no question (a multicast DNS announcement, say) starts from
    the first name in the answers whose CNAME chain reaches it, or from its
    owner name. CNAME chains longer than :data:`MAX_CNAME_CHAIN` are cut
    there. Raises nothing.
    """
    aliases: dict[str, str] = {}
    for record in message.answers:
        if record.type == TYPE_CNAME and isinstance(record.value, str):
            aliases.setdefault(record.name, record.value)
    starts = [question.name for question in message.questions]
    starts += [record.name for record in message.answers]
    chains: dict[str, list[str]] = {}
    for start in starts:
        if start not in chains:
            chains[start] = _follow_aliases(start, aliases)
    result: dict[str, list[str]] = {}
    for record in message.answers:
        if record.type not in _ADDRESS_LENGTHS or not isinstance(record.value, str):
            continue
        names = result.setdefault(record.value, [])
        for chain in chains.values():
            if record.name in chain:
                for name in chain[: chain.index(record.name) + 1]:
                    if name not in names:
                        names.append(name)
                break
    return result


def _follow_aliases(start: str, aliases: dict[str, str]) -> list[str]:
    chain = [start]
    name = start
    while name in aliases and len(chain) <= MAX_CNAME_CHAIN:
        name = aliases[name]
        if name in chain:
            break
        chain.append(name)
    return chain


class _State(enum.Enum):
    READING = "reading messages"
    BROKEN = "after a malformed message"
    LOST = "after a gap in the stream"


class DnsTcpDecoder:
    """Decoder for one direction of a DNS-over-TCP stream.

    Returns a :class:`DnsMessage` per message, however the messages fall into
    segments. The first message that fails to parse is returned as a
    :class:`MalformedDns`, and the rest of the stream is ignored, because a
    stream whose content is not DNS gives no reason to trust its framing. After
    a gap the decoder stops too, because the length prefixes can no longer be
    found.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._state = _State.READING
        self._discarded_bytes = 0

    @property
    def discarded_bytes(self) -> int:
        """Stream bytes ignored after a malformed message or a gap."""
        return self._discarded_bytes

    def feed(self, data: bytes) -> list[DnsEvent]:
        """Decode the messages that ``data`` completes and keep the rest.

        Never raises on bad input.
        """
        if self._state is not _State.READING:
            self._discarded_bytes += len(data)
            return []
        buffer = self._buffer
        buffer += data
        events: list[DnsEvent] = []
        start = 0
        while len(buffer) - start >= _LENGTH_PREFIX_BYTES:
            length = int.from_bytes(buffer[start : start + 2], "big")
            end = start + _LENGTH_PREFIX_BYTES + length
            if len(buffer) < end:
                break
            raw = bytes(buffer[start + _LENGTH_PREFIX_BYTES : end])
            start = end
            try:
                events.append(parse_dns(raw))
            except DecodeError as error:
                events.append(
                    MalformedDns(
                        REASON_INVALID_MESSAGE, str(error), raw[:MAX_EXCERPT_BYTES]
                    )
                )
                self._discarded_bytes += len(buffer) - start
                buffer.clear()
                self._state = _State.BROKEN
                return events
        del buffer[:start]
        return events

    def gap(self) -> None:
        """Stop decoding, because the stream lost bytes."""
        if self._state is _State.READING:
            self._discarded_bytes += len(self._buffer)
            self._buffer.clear()
            self._state = _State.LOST

    def finish(self) -> list[DnsEvent]:
        """Report a message cut off by the end of the stream."""
        events: list[DnsEvent] = []
        if self._state is _State.READING and self._buffer:
            excerpt = bytes(self._buffer[_LENGTH_PREFIX_BYTES:])[:MAX_EXCERPT_BYTES]
            detail = f"{len(self._buffer)} bytes left at the end of the stream"
            events.append(MalformedDns(REASON_TRUNCATED, detail, excerpt))
            self._buffer.clear()
        return events
