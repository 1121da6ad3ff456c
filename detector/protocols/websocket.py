"""Sans-IO decoder for WebSocket frames (RFC 6455), and browser-miner messages.

:class:`WebSocketDecoder` reads one direction of a connection after its HTTP
Upgrade and returns each complete text or binary message, joined from its
fragments, unmasked and, with permessage-deflate (RFC 7692), decompressed.
Control frames are consumed and not returned. The first time the bytes break
the framing rules it returns one :class:`MalformedWebSocket` and ignores the
rest of the stream. It never raises on bad input.

:func:`parse_webminer` recognises the JSON messages of browser miners built on
the coin-hive protocol, which a proxy relays to a Monero pool.
"""

from __future__ import annotations

import enum
import json
import zlib
from dataclasses import dataclass
from typing import Any

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA
_DATA_OPCODES = frozenset({OPCODE_TEXT, OPCODE_BINARY})
_CONTROL_OPCODES = frozenset({OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG})

# Browser-miner messages are under 1 KiB (a job carries a blob of at most 407
# bytes in hex), and JSON Stratum lines are capped at 64 KiB by xmrig's own
# line buffer. Data messages longer than this are skipped without buffering
# and counted in ``skipped_messages``; the same limit caps a message after
# decompression.
MAX_MESSAGE_BYTES = 64 * 1024

# RFC 6455 section 5.5: control frames carry at most 125 bytes and are never
# fragmented.
MAX_CONTROL_PAYLOAD = 125

# Enough to show what a stream that is not WebSocket started with.
MAX_EXCERPT_BYTES = 64

# Reasons carried by MalformedWebSocket.reason, fixed strings so callers can
# count them.
REASON_RESERVED_BITS = "reserved bits set"
REASON_RESERVED_OPCODE = "reserved opcode"
REASON_MASK_MISMATCH = "frame masking does not match its direction"
REASON_INVALID_CONTROL_FRAME = "invalid control frame"
REASON_INVALID_LENGTH = "invalid payload length"
REASON_UNEXPECTED_CONTINUATION = "continuation frame outside a message"
REASON_UNFINISHED_MESSAGE = "data frame inside an unfinished message"
REASON_TRUNCATED = "stream ended inside a frame or message"

_FIN = 0x80
_RSV1 = 0x40
_RSV2_RSV3 = 0x30
_OPCODE_MASK = 0x0F
_MASK_BIT = 0x80
_LENGTH_MASK = 0x7F
_LENGTH_16 = 126
_LENGTH_64 = 127
_MASK_KEY_BYTES = 4
_MAX_LENGTH_64 = 2**63 - 1
# RFC 7692 section 7.2.2: the sender strips the final 00 00 FF FF of each
# deflated message; the receiver appends it before inflating.
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
# Raw deflate, without zlib header or checksum (RFC 7692 section 7.2).
_RAW_DEFLATE_WINDOW_BITS = -15


@dataclass(frozen=True, slots=True)
class WebSocketText:
    """One complete text message."""

    text: str


@dataclass(frozen=True, slots=True)
class WebSocketBinary:
    """One complete binary message."""

    data: bytes


@dataclass(frozen=True, slots=True)
class MalformedWebSocket:
    """The point where a stream stopped following the WebSocket framing rules.

    ``reason`` is one of the ``REASON_*`` constants of this module and
    ``excerpt`` the first bytes, at most :data:`MAX_EXCERPT_BYTES`, of the
    frame that broke them.
    """

    reason: str
    excerpt: bytes


WebSocketEvent = WebSocketText | WebSocketBinary | MalformedWebSocket


class _Malformed(Exception):
    """Raised inside the decoder when the bytes break the framing rules."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _State(enum.Enum):
    FRAMES = "reading frames"
    CLOSED = "after a close frame"
    BROKEN = "framing broken"
    LOST = "after a gap in the stream"


@dataclass(slots=True)
class _Header:
    fin: bool
    compressed: bool
    opcode: int
    mask: bytes | None
    length: int
    size: int


def _unmask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the repeated 4-byte masking key (RFC 6455 section 5.3)."""
    count = len(payload)
    if count == 0:
        return b""
    repeated = (key * (count // _MASK_KEY_BYTES + 1))[:count]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return value.to_bytes(count, "big")


class WebSocketDecoder:
    """Decoder for one direction of a WebSocket connection.

    ``masked_expected`` is True for the client-to-server direction, whose
    frames must be masked, and False for the other, whose frames must not be
    (RFC 6455 section 5.1). After a close frame, a gap or a framing error the
    decoder ignores the rest of the stream.

    Messages it cannot return are counted: ``skipped_messages`` and
    ``undecodable_messages``.
    """

    def __init__(self, masked_expected: bool) -> None:
        self._masked_expected = masked_expected
        self._state = _State.FRAMES
        self._buffer = bytearray()
        # The data message in progress: its opcode (None between messages),
        # its payload so far, and whether it is compressed or being skipped.
        self._opcode: int | None = None
        self._message = bytearray()
        self._compressed = False
        self._skipping = False
        # Payload bytes of the current frame still to skip, and whether that
        # frame ends its message.
        self._skip_remaining = 0
        self._skip_fin = False
        # The inflate context kept across messages, because permessage-deflate
        # shares the LZ77 window between messages unless the peers negotiated
        # no_context_takeover. None means: start a fresh one.
        self._inflater: zlib._Decompress | None = None
        self._skipped_messages = 0
        self._undecodable_messages = 0
        self._discarded_bytes = 0

    @property
    def skipped_messages(self) -> int:
        """Data messages skipped for exceeding :data:`MAX_MESSAGE_BYTES`."""
        return self._skipped_messages

    @property
    def undecodable_messages(self) -> int:
        """Compressed messages that failed to inflate, and text that is not UTF-8."""
        return self._undecodable_messages

    @property
    def discarded_bytes(self) -> int:
        """Stream bytes ignored after a gap or a framing error."""
        return self._discarded_bytes

    def feed(self, data: bytes) -> list[WebSocketEvent]:
        """Decode the messages that ``data`` completes and keep the rest.

        Never raises on bad input.
        """
        if self._state is not _State.FRAMES:
            if self._state is not _State.CLOSED:
                self._discarded_bytes += len(data)
            return []
        events: list[WebSocketEvent] = []
        self._buffer += data
        try:
            while self._state is _State.FRAMES and self._read_frame(events):
                pass
        except _Malformed as error:
            excerpt = bytes(self._buffer[:MAX_EXCERPT_BYTES])
            events.append(MalformedWebSocket(error.reason, excerpt))
            self._discarded_bytes += len(self._buffer)
            self._stop(_State.BROKEN)
        return events

    def gap(self) -> None:
        """Stop decoding, because frame boundaries are lost with the bytes."""
        if self._state is _State.FRAMES:
            self._discarded_bytes += len(self._buffer) + len(self._message)
            self._stop(_State.LOST)

    def finish(self) -> list[WebSocketEvent]:
        """Report a frame or message cut off by the end of the stream."""
        events: list[WebSocketEvent] = []
        if self._state is _State.FRAMES and (
            self._buffer or self._opcode is not None or self._skip_remaining
        ):
            excerpt = bytes((self._buffer or self._message)[:MAX_EXCERPT_BYTES])
            events.append(MalformedWebSocket(REASON_TRUNCATED, excerpt))
        self._stop(_State.CLOSED)
        return events

    def _stop(self, state: _State) -> None:
        self._state = state
        self._buffer.clear()
        self._message.clear()
        self._opcode = None
        self._skip_remaining = 0

    def _read_frame(self, events: list[WebSocketEvent]) -> bool:
        """Consume one frame, or part of a skipped one; False when out of bytes."""
        buffer = self._buffer
        if self._skip_remaining:
            count = min(len(buffer), self._skip_remaining)
            del buffer[:count]
            self._skip_remaining -= count
            if self._skip_remaining:
                return False
            if self._skip_fin:
                self._end_message(events)
            return True
        header = self._read_header()
        if header is None:
            return False
        if header.opcode in _CONTROL_OPCODES:
            end = header.size + header.length
            if len(buffer) < end:
                return False
            del buffer[:end]
            if header.opcode == OPCODE_CLOSE:
                self._stop(_State.CLOSED)
                return False
            return True
        if self._skipping or len(self._message) + header.length > MAX_MESSAGE_BYTES:
            del buffer[: header.size]
            self._start_message(header)
            self._skipping = True
            self._message.clear()
            self._skip_remaining = header.length
            self._skip_fin = header.fin
            if header.length == 0 and header.fin:
                self._end_message(events)
            return True
        end = header.size + header.length
        if len(buffer) < end:
            return False
        payload = bytes(buffer[header.size : end])
        del buffer[:end]
        self._start_message(header)
        if header.mask is not None:
            payload = _unmask(payload, header.mask)
        self._message += payload
        if header.fin:
            self._end_message(events)
        return True

    def _start_message(self, header: _Header) -> None:
        """Record the opcode of a data message whose first frame was consumed."""
        if header.opcode != OPCODE_CONTINUATION:
            self._opcode = header.opcode
            self._compressed = header.compressed

    def _read_header(self) -> _Header | None:
        """Parse and check the header at the buffer start; None when incomplete."""
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        opcode = first & _OPCODE_MASK
        fin = bool(first & _FIN)
        compressed = bool(first & _RSV1)
        masked = bool(second & _MASK_BIT)
        length = second & _LENGTH_MASK
        self._check_header(first, opcode, fin, compressed, masked, length)
        size = 2
        if length == _LENGTH_16:
            size += 2
        elif length == _LENGTH_64:
            size += 8
        if masked:
            size += _MASK_KEY_BYTES
        if len(buffer) < size:
            return None
        if length == _LENGTH_16:
            length = int.from_bytes(buffer[2:4], "big")
        elif length == _LENGTH_64:
            length = int.from_bytes(buffer[2:10], "big")
            if length > _MAX_LENGTH_64:
                # RFC 6455 section 5.2: the most significant bit must be 0.
                raise _Malformed(REASON_INVALID_LENGTH)
        mask = bytes(buffer[size - _MASK_KEY_BYTES : size]) if masked else None
        return _Header(fin, compressed, opcode, mask, length, size)

    def _check_header(
        self,
        first: int,
        opcode: int,
        fin: bool,
        compressed: bool,
        masked: bool,
        length: int,
    ) -> None:
        if first & _RSV2_RSV3:
            # No extension that uses RSV2 or RSV3 is registered.
            raise _Malformed(REASON_RESERVED_BITS)
        if masked != self._masked_expected:
            raise _Malformed(REASON_MASK_MISMATCH)
        if opcode in _CONTROL_OPCODES:
            if not fin or length > MAX_CONTROL_PAYLOAD or compressed:
                raise _Malformed(REASON_INVALID_CONTROL_FRAME)
            return
        if opcode == OPCODE_CONTINUATION:
            if self._opcode is None:
                raise _Malformed(REASON_UNEXPECTED_CONTINUATION)
            if compressed:
                # RFC 7692 section 6.1: RSV1 is set on the first frame only.
                raise _Malformed(REASON_RESERVED_BITS)
            return
        if opcode not in _DATA_OPCODES:
            raise _Malformed(REASON_RESERVED_OPCODE)
        if self._opcode is not None:
            raise _Malformed(REASON_UNFINISHED_MESSAGE)

    def _end_message(self, events: list[WebSocketEvent]) -> None:
        opcode, payload = self._opcode, bytes(self._message)
        compressed, skipped = self._compressed, self._skipping
        self._opcode = None
        self._message.clear()
        self._skipping = False
        if skipped:
            self._skipped_messages += 1
            if compressed:
                # The skipped message fed the shared window; later messages
                # can only be inflated if they do not refer back to it.
                self._inflater = None
            return
        if compressed:
            inflated = self._inflate(payload)
            if inflated is None:
                return
            payload = inflated
        if opcode == OPCODE_BINARY:
            events.append(WebSocketBinary(payload))
            return
        try:
            events.append(WebSocketText(payload.decode("utf-8")))
        except UnicodeDecodeError:
            self._undecodable_messages += 1

    def _inflate(self, payload: bytes) -> bytes | None:
        inflater = self._inflater
        if inflater is None:
            inflater = zlib.decompressobj(_RAW_DEFLATE_WINDOW_BITS)
        try:
            output = inflater.decompress(payload + _DEFLATE_TAIL, MAX_MESSAGE_BYTES + 1)
        except zlib.error:
            self._undecodable_messages += 1
            self._inflater = None
            return None
        if len(output) > MAX_MESSAGE_BYTES or inflater.unconsumed_tail:
            self._skipped_messages += 1
            self._inflater = None
            return None
        self._inflater = inflater
        return output


# Browser-miner message types (coin-hive-stratum src/types.ts): auth and
# submit from the browser, the others from the proxy.
WEBMINER_AUTH = "auth"
WEBMINER_AUTHED = "authed"
WEBMINER_JOB = "job"
WEBMINER_SUBMIT = "submit"
WEBMINER_HASH_ACCEPTED = "hash_accepted"
WEBMINER_ERROR = "error"

# The auth types coin-hive's browser library sends: an anonymous miner, one
# credited to a user name, or one working towards a link token.
_AUTH_TYPES = frozenset({"anonymous", "user", "token"})
# A Monero job blob is 43 to 407 bytes (xmrig Job::setBlob), in hex.
_MIN_BLOB_HEX = 2 * 43
_MAX_BLOB_HEX = 2 * 407
# Targets are 4 bytes, or 8 for larger difficulties, in hex.
_TARGET_HEX_LENGTHS = frozenset({8, 16})
# A nonce is 4 bytes and a result a 32-byte hash, in hex.
_NONCE_HEX_LENGTH = 8
_RESULT_HEX_LENGTH = 64
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class WebMinerMessage:
    """One browser-miner message.

    ``kind`` is one of the ``WEBMINER_*`` constants and ``params`` contains the
    fields checked for that kind, by their protocol names: ``site_key``,
    ``type`` and ``user`` for auth; ``token`` and ``hashes`` for authed;
    ``job_id``, ``blob`` and ``target`` for job; ``job_id``, ``nonce`` and
    ``result`` for submit; ``hashes`` for hash_accepted; ``error`` for error.
    """

    kind: str
    params: dict[str, str | int | None]


def _is_hex(value: object, lengths: frozenset[int] | range) -> bool:
    return (
        isinstance(value, str) and len(value) in lengths and set(value) <= _HEX_DIGITS
    )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _check_auth(params: dict[str, Any]) -> bool:
    user = params.get("user")
    return (
        _is_text(params.get("site_key"))
        and isinstance(params.get("type"), str)
        and params.get("type") in _AUTH_TYPES
        and (user is None or isinstance(user, str))
    )


def _check_authed(params: dict[str, Any]) -> bool:
    return isinstance(params.get("token"), str) and _is_count(params.get("hashes"))


def _check_job(params: dict[str, Any]) -> bool:
    blob = params.get("blob")
    return (
        _is_text(params.get("job_id"))
        and _is_hex(blob, range(_MIN_BLOB_HEX, _MAX_BLOB_HEX + 1, 2))
        and _is_hex(params.get("target"), _TARGET_HEX_LENGTHS)
    )


def _check_submit(params: dict[str, Any]) -> bool:
    return (
        _is_text(params.get("job_id"))
        and _is_hex(params.get("nonce"), frozenset({_NONCE_HEX_LENGTH}))
        and _is_hex(params.get("result"), frozenset({_RESULT_HEX_LENGTH}))
    )


def _check_hash_accepted(params: dict[str, Any]) -> bool:
    return _is_count(params.get("hashes"))


def _check_error(params: dict[str, Any]) -> bool:
    return _is_text(params.get("error"))


# Each kind's shape check and the fields a match keeps.
_WEBMINER_SHAPES = {
    WEBMINER_AUTH: (_check_auth, ("site_key", "type", "user")),
    WEBMINER_AUTHED: (_check_authed, ("token", "hashes")),
    WEBMINER_JOB: (_check_job, ("job_id", "blob", "target")),
    WEBMINER_SUBMIT: (_check_submit, ("job_id", "nonce", "result")),
    WEBMINER_HASH_ACCEPTED: (_check_hash_accepted, ("hashes",)),
    WEBMINER_ERROR: (_check_error, ("error",)),
}


def parse_webminer(text: str) -> WebMinerMessage | None:
    """Recognise a coin-hive style ``{"type": ..., "params": {...}}`` message.

    Returns None unless ``text`` is a JSON object whose ``type`` names a known
    kind and whose ``params`` have that kind's shape: hex blob, target, nonce
    and result of the right lengths, non-negative integer hash counts, a known
    auth type. Raises nothing.
    """
    stripped = text.strip()
    if not stripped.startswith("{") or len(stripped) > MAX_MESSAGE_BYTES:
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    kind, params = value.get("type"), value.get("params")
    if not isinstance(kind, str) or not isinstance(params, dict):
        return None
    shape = _WEBMINER_SHAPES.get(kind)
    if shape is None:
        return None
    check, fields = shape
    if not check(params):
        return None
    return WebMinerMessage(kind, {field: params.get(field) for field in fields})
