"""Sans-IO decoder for HTTP/1.x messages, as getwork and getblocktemplate use.

One :class:`HttpDecoder` reads one direction of a TCP stream and returns
:class:`HttpRequest` and :class:`HttpResponse` messages, framed by
Content-Length, chunked transfer coding or (for a response) the end of the
stream (RFC 9112 section 6). The first time the bytes cannot be HTTP it returns
one :class:`MalformedHttp` and ignores the rest of the stream. It never raises
on bad input.

A response's framing depends on the request it answers (HEAD, CONNECT), which
travels in the other direction; :meth:`HttpDecoder.expect_response_to` passes
that method in.
"""

from __future__ import annotations

import collections
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

# Mining clients send a few hundred bytes of headers (cpuminer and cgminer:
# Host, User-Agent, Content-Type, Content-Length, X-Mining-*). 16 KiB is also
# h11's default limit for an incomplete head (DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
# in h11/_connection.py). The chunk-size line and the trailer section count
# against the same limit.
MAX_HEADER_BYTES = 16 * 1024

# getwork and getblocktemplate requests are a few hundred bytes, and getwork
# responses and Monero daemon templates a few KiB. Longer bodies keep their
# first MAX_BODY_BYTES and report their full length in ``body_length``. The
# limit is per flow direction, so it also bounds what thousands of unfinished
# requests can hold at once.
# NOTE: a Bitcoin getblocktemplate response carries every transaction of the
# next block in hex and can exceed this, so its kept body is not whole JSON.
MAX_BODY_BYTES = 64 * 1024

# Enough to show what a non-HTTP stream started with.
MAX_EXCERPT_BYTES = 64

REASON_NOT_HTTP = "not an HTTP message"
REASON_INVALID_START_LINE = "invalid start line"
REASON_INVALID_HEADER = "invalid header line"
REASON_HEADER_TOO_LONG = "header section too long"
REASON_INVALID_CONTENT_LENGTH = "invalid Content-Length"
REASON_UNSUPPORTED_CODING = "unsupported transfer coding"
REASON_INVALID_CHUNK = "invalid chunk framing"
REASON_TRUNCATED = "stream ended inside a message"

Headers = tuple[tuple[str, str], ...]

# tchar of RFC 9110 section 5.6.2: the bytes a method or header name is made of.
_TCHAR = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]"
_TOKEN = re.compile(_TCHAR + rb"+")
_VERSION = rb"(HTTP/\d\.\d)"
# method SP request-target SP version, then version SP status SP reason
# (RFC 9112 sections 3 and 4); the reason may be absent.
_REQUEST_LINE = re.compile(rb"(" + _TCHAR + rb"+) ([^ \x00-\x1f]+) " + _VERSION)
_STATUS_LINE = re.compile(_VERSION + rb" (\d{3})(?: ([^\x00-\x08\x0a-\x1f]*))?")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
# A length below 10**19 bytes; a longer number is no real body length.
_CONTENT_LENGTH = re.compile(rb"[0-9]{1,19}")
# Chunk sizes up to 2**64 - 1, as 16 hex digits.
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_RESPONSE_PREFIX = b"HTTP/"
# Status codes whose responses never have a body (RFC 9110 section 6.4.1).
_NO_BODY_STATUS = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request.

    Header names are lower-case and values keep their order and repeats.
    ``body`` contains at most :data:`MAX_BODY_BYTES` of the body and
    ``body_length`` its full decoded length.
    """

    method: str
    target: str
    version: str
    headers: Headers
    body: bytes
    body_length: int


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP response; fields as in :class:`HttpRequest`."""

    status: int
    reason: str
    version: str
    headers: Headers
    body: bytes
    body_length: int


@dataclass(frozen=True, slots=True)
class MalformedHttp:
    """The point where a stream stopped being HTTP.

    ``reason`` is one of the ``REASON_*`` constants of this module and
    ``excerpt`` the first bytes, at most :data:`MAX_EXCERPT_BYTES`, of the part
    that could not be decoded.
    """

    reason: str
    excerpt: bytes


HttpEvent = HttpRequest | HttpResponse | MalformedHttp


class _State(enum.Enum):
    HEAD = "head"
    BODY_LENGTH = "body with Content-Length"
    CHUNK_SIZE = "chunk-size line"
    CHUNK_DATA = "chunk data"
    CHUNK_END = "line end after chunk data"
    TRAILERS = "trailer section"
    BODY_UNTIL_CLOSE = "body until end of stream"
    RESYNC = "looking for a start line after a gap"
    TUNNEL = "tunnel after CONNECT or protocol switch"
    BROKEN = "not HTTP"


class _Malformed(Exception):
    """Raised inside the decoder when the stream cannot be HTTP."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.position = position


@dataclass(slots=True)
class _Head:
    """The parsed start line and headers of the message being read."""

    is_request: bool
    method: str
    target: str
    status: int
    reason: str
    version: str
    headers: Headers


def _header_values(headers: Headers, name: str) -> list[str]:
    return [value for key, value in headers if key == name]


class HttpDecoder:
    """Decoder for one direction of an HTTP/1.x stream.

    Several messages in one call (pipelining) are fine. After a gap the decoder
    drops the message in progress and resumes at the next line that is a
    request line or a status line.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0
        # Offset of self._buffer[0] in all the bytes fed so far.
        self._buffer_offset = 0
        self._state = _State.HEAD
        self._head: _Head | None = None
        self._head_scanned = 0
        # True once the message start was seen to be a method and a space, or
        # "HTTP/", so a long head is not re-checked on every feed.
        self._start_plausible = False
        self._body = bytearray()
        self._body_length = 0
        self._remaining = 0
        self._trailer_bytes = 0
        self._resync_mid_line = False
        self._switch_if_not_http = False
        self._expected_methods: collections.deque[str] = collections.deque()
        self._discarded_bytes = 0
        self._tunnel_offset: int | None = None
        self._handlers: dict[_State, Callable[[list[HttpEvent]], bool]] = {
            _State.HEAD: self._read_head,
            _State.BODY_LENGTH: self._read_body_length,
            _State.CHUNK_SIZE: self._read_chunk_size,
            _State.CHUNK_DATA: self._read_chunk_data,
            _State.CHUNK_END: self._read_chunk_end,
            _State.TRAILERS: self._read_trailers,
            _State.BODY_UNTIL_CLOSE: self._read_until_close,
            _State.RESYNC: self._resync,
        }

    @property
    def discarded_bytes(self) -> int:
        """Stream bytes skipped without a message: after a gap or non-HTTP."""
        return self._discarded_bytes

    @property
    def tunnel_offset(self) -> int | None:
        """Offset where a CONNECT tunnel or a switched protocol starts.

        The offset counts all bytes passed to :meth:`feed`, and is None while
        the stream is HTTP. The decoder ignores the bytes from there on, so the
        caller can hand them to another decoder.
        """
        return self._tunnel_offset

    def expect_response_to(self, method: str) -> None:
        """Record the method of a request sent in the other direction.

        Responses are matched to these methods in order. A response to HEAD has
        no body, and a 2xx response to CONNECT starts a tunnel (RFC 9110
        sections 9.3.2 and 9.3.6). Without this call, a response is framed as
        if it answered a GET.
        """
        self._expected_methods.append(method.upper())

    def feed(self, data: bytes) -> list[HttpEvent]:
        """Decode the complete messages in ``data`` and keep the rest.

        Never raises on bad input.
        """
        events: list[HttpEvent] = []
        if self._state is _State.BROKEN:
            self._discarded_bytes += len(data)
            return events
        if self._state is _State.TUNNEL:
            return events
        self._buffer += data
        try:
            while self._state in self._handlers:
                if not self._handlers[self._state](events):
                    break
        except _Malformed as error:
            self._break(events, error.reason, error.position)
        self._compact()
        return events

    def gap(self) -> None:
        """Drop the message in progress because the stream lost bytes."""
        if self._state in (_State.BROKEN, _State.TUNNEL):
            return
        self._discarded_bytes += len(self._buffer) - self._position + len(self._body)
        self._buffer_offset += len(self._buffer)
        self._buffer.clear()
        self._position = 0
        self._reset_message()
        # Responses after the gap cannot be matched to their requests.
        self._expected_methods.clear()
        self._resync_mid_line = True
        self._state = _State.RESYNC

    def finish(self) -> list[HttpEvent]:
        """Return what the end of the stream completes or leaves cut off."""
        events: list[HttpEvent] = []
        state = self._state
        if state is _State.BODY_UNTIL_CLOSE:
            self._emit(events)
        elif state is _State.HEAD:
            rest = bytes(self._buffer[self._position :])
            if rest.strip(b"\r\n"):
                events.append(MalformedHttp(REASON_TRUNCATED, rest[:MAX_EXCERPT_BYTES]))
        elif state not in (_State.RESYNC, _State.BROKEN, _State.TUNNEL):
            excerpt = bytes(self._body[:MAX_EXCERPT_BYTES])
            events.append(MalformedHttp(REASON_TRUNCATED, excerpt))
        self._buffer_offset += len(self._buffer)
        self._buffer.clear()
        self._position = 0
        self._reset_message()
        if self._state not in (_State.BROKEN, _State.TUNNEL):
            self._state = _State.HEAD
        return events

    # Handlers: each returns True after progress, False when it needs more data.

    def _read_head(self, events: list[HttpEvent]) -> bool:
        buffer = self._buffer
        start = self._skip_empty_lines(self._position)
        self._position = start
        if start == len(buffer) or not self._check_message_start(start):
            return False

        # A blank line ends the head. The search resumes where the previous
        # one stopped, so a head that arrives byte by byte is scanned once.
        search_from = max(start, self._head_scanned - 3)
        match = _HEAD_END.search(buffer, search_from)
        if match is None:
            self._head_scanned = len(buffer)
            if len(buffer) - start > MAX_HEADER_BYTES:
                raise _Malformed(REASON_HEADER_TOO_LONG, start)
            return False
        end = match.end()
        if end - start > MAX_HEADER_BYTES:
            raise _Malformed(REASON_HEADER_TOO_LONG, start)

        self._head = self._parse_head(bytes(buffer[start : match.start()]), start)
        self._position = end
        self._head_scanned = 0
        self._start_plausible = False
        self._switch_if_not_http = False
        self._choose_framing(events)
        return True

    def _check_message_start(self, start: int) -> bool:
        """Return True once the bytes at ``start`` can open an HTTP message.

        Returns False while too few bytes have arrived, or after switching to a
        tunnel. Raises _Malformed when the bytes cannot be HTTP.
        """
        if self._start_plausible:
            return True
        plausible = self._could_be_start_line(start)
        if plausible is None:
            if len(self._buffer) - start > MAX_HEADER_BYTES:
                raise _Malformed(REASON_HEADER_TOO_LONG, start)
            return False
        if not plausible:
            if self._switch_if_not_http:
                self._switch_to_tunnel(start)
                return False
            raise _Malformed(REASON_NOT_HTTP, start)
        self._start_plausible = True
        return True

    def _read_body_length(self, events: list[HttpEvent]) -> bool:
        available = len(self._buffer) - self._position
        if available == 0:
            return False
        count = min(available, self._remaining)
        self._take_body(count)
        self._remaining -= count
        if self._remaining == 0:
            self._emit(events)
        return True

    def _read_chunk_size(self, events: list[HttpEvent]) -> bool:
        line = self._take_line()
        if line is None:
            return False
        size_text = line.split(b";", 1)[0].strip(b" \t")
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise _Malformed(REASON_INVALID_CHUNK, self._position - len(line) - 1)
        size = int(size_text, 16)
        if size == 0:
            self._state = _State.TRAILERS
        else:
            self._remaining = size
            self._state = _State.CHUNK_DATA
        return True

    def _read_chunk_data(self, events: list[HttpEvent]) -> bool:
        available = len(self._buffer) - self._position
        if available == 0:
            return False
        count = min(available, self._remaining)
        self._take_body(count)
        self._remaining -= count
        if self._remaining == 0:
            self._state = _State.CHUNK_END
        return True

    def _read_chunk_end(self, events: list[HttpEvent]) -> bool:
        buffer, position = self._buffer, self._position
        if buffer.startswith(b"\r\n", position):
            self._position += 2
        elif buffer.startswith(b"\n", position):
            self._position += 1
        elif len(buffer) - position < 2 and buffer.startswith(b"\r", position):
            return False
        elif position == len(buffer):
            return False
        else:
            raise _Malformed(REASON_INVALID_CHUNK, position)
        self._state = _State.CHUNK_SIZE
        return True

    def _read_trailers(self, events: list[HttpEvent]) -> bool:
        line = self._take_line()
        if line is None:
            return False
        if line:
            self._trailer_bytes += len(line) + 1
            if self._trailer_bytes > MAX_HEADER_BYTES:
                raise _Malformed(REASON_HEADER_TOO_LONG, self._position)
            return True
        self._emit(events)
        return True

    def _read_until_close(self, events: list[HttpEvent]) -> bool:
        available = len(self._buffer) - self._position
        if available == 0:
            return False
        self._take_body(available)
        return True

    def _resync(self, events: list[HttpEvent]) -> bool:
        buffer = self._buffer
        newline = buffer.find(b"\n", self._position)
        if newline < 0:
            if len(buffer) - self._position > MAX_HEADER_BYTES:
                self._discarded_bytes += len(buffer) - self._position
                self._position = len(buffer)
                self._resync_mid_line = True
            return False
        line = bytes(buffer[self._position : newline]).rstrip(b"\r")
        if not self._resync_mid_line and _is_start_line(line):
            self._state = _State.HEAD
            return True
        self._discarded_bytes += newline + 1 - self._position
        self._position = newline + 1
        self._resync_mid_line = False
        return True

    # Helpers.

    def _skip_empty_lines(self, position: int) -> int:
        # RFC 9112 section 2.2: a recipient should ignore empty lines before a
        # request line; some clients send an extra CRLF after a POST body.
        buffer = self._buffer
        while True:
            if buffer.startswith(b"\r\n", position):
                position += 2
            elif buffer.startswith(b"\n", position):
                position += 1
            else:
                return position

    def _could_be_start_line(self, start: int) -> bool | None:
        """Tell whether the bytes at ``start`` can begin a start line.

        Returns None while too few bytes have arrived to tell.
        """
        buffer = self._buffer
        prefix = bytes(buffer[start : start + len(_RESPONSE_PREFIX)])
        if prefix == _RESPONSE_PREFIX:
            return True
        if _RESPONSE_PREFIX.startswith(prefix) or prefix == b"\r":
            # A lone CR may be the first half of an empty line's CRLF.
            return None
        match = _TOKEN.match(buffer, start)
        if match is None:
            return False
        end = match.end()
        if end == len(buffer):
            return None
        return buffer[end] == 0x20

    def _parse_head(self, head: bytes, start: int) -> _Head:
        lines = [line.rstrip(b"\r") for line in head.split(b"\n")]
        start_line = lines[0]
        response = _STATUS_LINE.fullmatch(start_line)
        request = None if response else _REQUEST_LINE.fullmatch(start_line)
        if response is None and request is None:
            raise _Malformed(REASON_INVALID_START_LINE, start)
        headers = _parse_headers(lines[1:], start)
        if response is not None:
            return _Head(
                is_request=False,
                method="",
                target="",
                status=int(response.group(2)),
                reason=(response.group(3) or b"").decode("latin-1"),
                version=response.group(1).decode("ascii"),
                headers=headers,
            )
        assert request is not None
        return _Head(
            is_request=True,
            method=request.group(1).decode("ascii"),
            target=request.group(2).decode("latin-1"),
            status=0,
            reason="",
            version=request.group(3).decode("ascii"),
            headers=headers,
        )

    def _choose_framing(self, events: list[HttpEvent]) -> None:
        """Pick the body framing of the message whose head was just read."""
        head = self._head
        assert head is not None
        if not head.is_request and self._response_has_no_body(head):
            self._emit(events)
            return
        codings = _transfer_codings(head.headers)
        if codings:
            if codings[-1] == "chunked":
                self._state = _State.CHUNK_SIZE
            elif head.is_request:
                # RFC 9112 section 6.3: a request body without a final chunked
                # coding has no length the recipient can know.
                raise _Malformed(REASON_UNSUPPORTED_CODING, self._position)
            else:
                self._state = _State.BODY_UNTIL_CLOSE
            return
        lengths = _header_values(head.headers, "content-length")
        if lengths:
            self._remaining = _content_length(lengths, self._position)
            if self._remaining == 0:
                self._emit(events)
            else:
                self._state = _State.BODY_LENGTH
            return
        if head.is_request:
            self._emit(events)
        else:
            self._state = _State.BODY_UNTIL_CLOSE

    def _response_has_no_body(self, head: _Head) -> bool:
        status = head.status
        if 100 <= status < 200:
            # An interim response answers no request of its own, except 101,
            # after which the connection carries another protocol.
            return True
        method = self._expected_methods[0] if self._expected_methods else ""
        if method == "HEAD":
            return True
        if method == "CONNECT" and 200 <= status < 300:
            return True
        return status in _NO_BODY_STATUS

    def _take_line(self) -> bytes | None:
        """Consume one line of a chunked body, without its line end."""
        buffer = self._buffer
        newline = buffer.find(b"\n", self._position)
        if newline < 0:
            if len(buffer) - self._position > MAX_HEADER_BYTES:
                raise _Malformed(REASON_HEADER_TOO_LONG, self._position)
            return None
        line = bytes(buffer[self._position : newline]).rstrip(b"\r")
        self._position = newline + 1
        return line

    def _take_body(self, count: int) -> None:
        room = MAX_BODY_BYTES - len(self._body)
        if room > 0:
            end = self._position + min(count, room)
            self._body += self._buffer[self._position : end]
        self._body_length += count
        self._position += count

    def _emit(self, events: list[HttpEvent]) -> None:
        head = self._head
        assert head is not None
        body = bytes(self._body)
        if head.is_request:
            events.append(
                HttpRequest(
                    head.method,
                    head.target,
                    head.version,
                    head.headers,
                    body,
                    self._body_length,
                )
            )
            method = head.method.upper()
            # After CONNECT or an upgrade request the client may start another
            # protocol; if the next bytes are not HTTP, that is what happened.
            upgrade = bool(_header_values(head.headers, "upgrade"))
            self._switch_if_not_http = method == "CONNECT" or upgrade
        else:
            events.append(
                HttpResponse(
                    head.status,
                    head.reason,
                    head.version,
                    head.headers,
                    body,
                    self._body_length,
                )
            )
            switched = self._response_switches(head.status)
            if head.status >= 200 and self._expected_methods:
                self._expected_methods.popleft()
            if switched:
                self._reset_message()
                self._switch_to_tunnel(self._position)
                return
        self._reset_message()
        self._state = _State.HEAD

    def _response_switches(self, status: int) -> bool:
        if status == 101:
            return True
        method = self._expected_methods[0] if self._expected_methods else ""
        return method == "CONNECT" and 200 <= status < 300

    def _switch_to_tunnel(self, position: int) -> None:
        self._tunnel_offset = self._buffer_offset + position
        self._state = _State.TUNNEL
        self._position = len(self._buffer)

    def _break(self, events: list[HttpEvent], reason: str, position: int) -> None:
        excerpt = bytes(self._buffer[position : position + MAX_EXCERPT_BYTES])
        events.append(MalformedHttp(reason, excerpt))
        self._discarded_bytes += len(self._buffer) - position
        self._position = len(self._buffer)
        self._reset_message()
        self._state = _State.BROKEN

    def _reset_message(self) -> None:
        self._head = None
        self._head_scanned = 0
        self._start_plausible = False
        self._body = bytearray()
        self._body_length = 0
        self._remaining = 0
        self._trailer_bytes = 0

    def _compact(self) -> None:
        if self._position:
            del self._buffer[: self._position]
            self._buffer_offset += self._position
            self._head_scanned = max(0, self._head_scanned - self._position)
            self._position = 0


def _is_start_line(line: bytes) -> bool:
    return bool(_REQUEST_LINE.fullmatch(line) or _STATUS_LINE.fullmatch(line))


def _parse_headers(lines: list[bytes], start: int) -> Headers:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            # Obsolete line folding (RFC 9112 section 5.2): join with a space.
            if not headers:
                raise _Malformed(REASON_INVALID_HEADER, start)
            name, value = headers[-1]
            folded = line.strip(b" \t").decode("latin-1")
            headers[-1] = (name, f"{value} {folded}".strip())
            continue
        raw_name, separator, raw_value = line.partition(b":")
        if not separator or not _TOKEN.fullmatch(raw_name):
            raise _Malformed(REASON_INVALID_HEADER, start)
        name = raw_name.decode("ascii").lower()
        headers.append((name, raw_value.strip(b" \t").decode("latin-1")))
    return tuple(headers)


def _transfer_codings(headers: Headers) -> list[str]:
    codings: list[str] = []
    for value in _header_values(headers, "transfer-encoding"):
        codings.extend(
            coding.strip().lower() for coding in value.split(",") if coding.strip()
        )
    return codings


def _content_length(values: list[str], position: int) -> int:
    # RFC 9110 section 8.6: repeated identical values are allowed, differing
    # values make the framing unknowable.
    lengths = {item.strip() for value in values for item in value.split(",")}
    if len(lengths) != 1:
        raise _Malformed(REASON_INVALID_CONTENT_LENGTH, position)
    text = lengths.pop().encode("latin-1")
    if not _CONTENT_LENGTH.fullmatch(text):
        raise _Malformed(REASON_INVALID_CONTENT_LENGTH, position)
    return int(text)
