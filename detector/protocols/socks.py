"""Sans-IO decoders for the SOCKS4, SOCKS4a and SOCKS5 proxy handshakes.

:class:`SocksDecoder` reads the client-to-server direction and returns the
proxy target of a CONNECT request as :class:`SocksConnect`. Miners reach pools
through SOCKS proxies, such as xmrig's ``socks5://`` pool URLs or Tor. With
SOCKS4a, and SOCKS5 by domain name, the pool's host name travels in clear text.
:class:`SocksReplyDecoder` reads the server-to-client direction and returns
whether the proxy granted the request, as :class:`SocksReply`.

Both decoders report where the tunnelled bytes start through
``tunnel_offset``. The first time the bytes cannot be SOCKS they return one
:class:`MalformedSocks` and ignore the rest of the stream. Neither raises on
bad input.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SOCKS4 = 4
SOCKS5 = 5

# Request commands: SOCKS4 CONNECT and BIND; SOCKS5 adds UDP ASSOCIATE
# (RFC 1928 section 4).
COMMAND_CONNECT = 1
COMMAND_BIND = 2
COMMAND_UDP_ASSOCIATE = 3

# SOCKS5 address types (RFC 1928 section 5).
ADDRESS_IPV4 = 1
ADDRESS_DOMAIN = 3
ADDRESS_IPV6 = 4

# SOCKS5 authentication methods (RFC 1928 section 3; RFC 1929).
METHOD_NO_AUTHENTICATION = 0x00
METHOD_USERNAME_PASSWORD = 0x02
METHOD_NO_ACCEPTABLE = 0xFF
# Version byte of the username/password sub-negotiation (RFC 1929 section 2).
_USERPASS_VERSION = 1

# SOCKS4 user ids and SOCKS4a host names end with a NUL and have no length
# field. A host name is a DNS name of at most 253 characters and a user id is
# a login name, so a field still without its NUL after 255 bytes is not SOCKS.
MAX_SOCKS4_FIELD_BYTES = 255

# Enough to show what a stream that is not SOCKS started with.
MAX_EXCERPT_BYTES = 64

# Reasons carried by MalformedSocks.reason, fixed strings so callers can count
# them.
REASON_NOT_SOCKS = "not a SOCKS handshake"
REASON_INVALID_REQUEST = "invalid SOCKS request"
REASON_FIELD_TOO_LONG = "SOCKS4 field without NUL"
REASON_UNSUPPORTED_AUTHENTICATION = "unsupported SOCKS5 authentication"
REASON_TRUNCATED = "stream ended inside the SOCKS handshake"

# SOCKS4 reply codes (the SOCKS4 protocol document by Ying-Da Lee): 90 is
# "request granted", 91 to 93 are failures. A reply starts with version 0.
SOCKS4_REPLY_VERSION = 0
SOCKS4_GRANTED = 90
_SOCKS4_REPLY_CODES = frozenset(range(90, 94))
_SOCKS4_REPLY_BYTES = 8
# SOCKS5 reply code 0 is "succeeded"; 1 to 8 are failures (RFC 1928 section 6).
SOCKS5_SUCCEEDED = 0
_SOCKS5_MAX_REPLY_CODE = 8

# Handshake stages a SocksReply reports on.
STAGE_METHOD = "method selection"
STAGE_AUTHENTICATION = "authentication"
STAGE_REQUEST = "request"

_ADDRESS_LENGTHS = {ADDRESS_IPV4: 4, ADDRESS_IPV6: 16}
_ADDRESS_FAMILIES = {ADDRESS_IPV4: socket.AF_INET, ADDRESS_IPV6: socket.AF_INET6}
_SOCKS4_FIXED_BYTES = 8


@dataclass(frozen=True, slots=True)
class SocksConnect:
    """A CONNECT request: the target the client asked the proxy to reach.

    ``host`` is a lower-case domain name without a trailing dot when
    ``by_name`` is True (SOCKS4a, SOCKS5 address type 3), else the address
    text (dotted quad, or the compressed IPv6 form ``socket.inet_ntop``
    writes).
    """

    version: int
    host: str
    port: int
    by_name: bool


@dataclass(frozen=True, slots=True)
class SocksReply:
    """The proxy's reply at one stage of the handshake.

    ``stage`` is one of the ``STAGE_*`` constants and ``status`` the code the
    proxy sent there: the selected method, the RFC 1929 status or the reply
    code. ``granted`` is True only for a successful reply to the request, and
    False for any refusal at any stage.
    """

    version: int
    stage: str
    status: int
    granted: bool


@dataclass(frozen=True, slots=True)
class MalformedSocks:
    """The point where a stream stopped being a SOCKS handshake.

    ``reason`` is one of the ``REASON_*`` constants of this module and
    ``excerpt`` the first bytes, at most :data:`MAX_EXCERPT_BYTES`, of the part
    that could not be decoded.
    """

    reason: str
    excerpt: bytes


SocksEvent = SocksConnect | MalformedSocks
SocksReplyEvent = SocksReply | MalformedSocks


class _Malformed(Exception):
    """Raised inside a decoder when the stream cannot be SOCKS."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _State(enum.Enum):
    START = "before the first byte"
    SOCKS4_REQUEST = "SOCKS4 request"
    SOCKS5_GREETING = "SOCKS5 greeting"
    SOCKS5_AFTER_GREETING = "SOCKS5 authentication or request"
    SOCKS5_REQUEST = "SOCKS5 request"
    SOCKS5_METHOD_REPLY = "SOCKS5 method selection reply"
    SOCKS5_AUTHENTICATION_REPLY = "SOCKS5 authentication reply"
    SOCKS5_REPLY = "SOCKS5 reply"
    SOCKS4_REPLY = "SOCKS4 reply"
    TUNNEL = "tunnel after the handshake"
    REFUSED = "after a refusal"
    BROKEN = "not SOCKS"
    LOST = "after a gap in the stream"


class _SocksStream:
    """Buffering, tunnel offset and failure handling shared by both directions."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        # Offset of self._buffer[0] in all the bytes fed so far.
        self._buffer_offset = 0
        self._state = _State.START
        self._tunnel_offset: int | None = None
        self._discarded_bytes = 0
        self._handlers: dict[_State, Callable[[list[Any]], bool]] = {}

    @property
    def tunnel_offset(self) -> int | None:
        """Offset, in all the bytes fed so far, where the tunnelled bytes start.

        None until the handshake is over. The decoder ignores the bytes from
        there on, so the caller can hand them to another decoder.
        """
        return self._tunnel_offset

    @property
    def discarded_bytes(self) -> int:
        """Stream bytes ignored after a gap or after the stream proved not SOCKS."""
        return self._discarded_bytes

    def gap(self) -> None:
        """Stop decoding, because the handshake's fields are lost with the bytes."""
        if self._state in (_State.TUNNEL, _State.REFUSED, _State.BROKEN, _State.LOST):
            return
        self._discarded_bytes += len(self._buffer)
        self._buffer.clear()
        self._state = _State.LOST

    def _feed(self, data: bytes, events: list[Any]) -> None:
        state = self._state
        if state in (_State.BROKEN, _State.LOST):
            self._discarded_bytes += len(data)
            return
        if state in (_State.TUNNEL, _State.REFUSED):
            return
        self._buffer += data
        try:
            while self._state in self._handlers:
                if not self._handlers[self._state](events):
                    break
        except _Malformed as error:
            excerpt = bytes(self._buffer[:MAX_EXCERPT_BYTES])
            events.append(MalformedSocks(error.reason, excerpt))
            self._discarded_bytes += len(self._buffer)
            self._buffer.clear()
            self._state = _State.BROKEN

    def _finish(self, events: list[Any]) -> None:
        if self._state in self._handlers and self._buffer:
            excerpt = bytes(self._buffer[:MAX_EXCERPT_BYTES])
            events.append(MalformedSocks(REASON_TRUNCATED, excerpt))
            self._buffer.clear()

    def _consume(self, count: int) -> None:
        del self._buffer[:count]
        self._buffer_offset += count

    def _enter_tunnel(self) -> None:
        self._tunnel_offset = self._buffer_offset
        self._buffer_offset += len(self._buffer)
        self._buffer.clear()
        self._state = _State.TUNNEL


def _domain_name(raw: bytes) -> str:
    if not raw.isascii():
        raise _Malformed(REASON_INVALID_REQUEST)
    text = raw.decode("ascii")
    name = text.rstrip(".").lower()
    if not name or not text.isprintable() or " " in text:
        raise _Malformed(REASON_INVALID_REQUEST)
    return name


class SocksDecoder(_SocksStream):
    """Decoder for the client-to-server direction of a SOCKS handshake.

    SOCKS4 and SOCKS4a send one request. SOCKS5 sends a greeting listing
    authentication methods, an RFC 1929 username and password when the proxy
    selected that method, then the request. Returns one :class:`SocksConnect`
    for a CONNECT request and nothing for BIND or UDP ASSOCIATE; either way
    the handshake ends there. The username and password are skipped, not
    kept.
    """

    def __init__(self) -> None:
        super().__init__()
        self._methods = b""
        self._handlers = {
            _State.START: self._read_version,
            _State.SOCKS4_REQUEST: self._read_socks4_request,
            _State.SOCKS5_GREETING: self._read_greeting,
            _State.SOCKS5_AFTER_GREETING: self._read_after_greeting,
            _State.SOCKS5_REQUEST: self._read_socks5_request,
        }

    def feed(self, data: bytes) -> list[SocksEvent]:
        """Decode the handshake messages that ``data`` completes.

        Never raises on bad input.
        """
        events: list[Any] = []
        self._feed(data, events)
        return events

    def finish(self) -> list[SocksEvent]:
        """Report a handshake message cut off by the end of the stream."""
        events: list[Any] = []
        self._finish(events)
        return events

    def _read_version(self, events: list[Any]) -> bool:
        if not self._buffer:
            return False
        version = self._buffer[0]
        if version == SOCKS4:
            self._state = _State.SOCKS4_REQUEST
        elif version == SOCKS5:
            self._state = _State.SOCKS5_GREETING
        else:
            raise _Malformed(REASON_NOT_SOCKS)
        return True

    def _read_socks4_request(self, events: list[Any]) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        command = buffer[1]
        if command not in (COMMAND_CONNECT, COMMAND_BIND):
            raise _Malformed(REASON_NOT_SOCKS)
        if len(buffer) < _SOCKS4_FIXED_BYTES:
            return False
        port = int.from_bytes(buffer[2:4], "big")
        address = bytes(buffer[4:8])
        if port == 0 or address == bytes(4):
            raise _Malformed(REASON_INVALID_REQUEST)
        user_end = self._find_nul(_SOCKS4_FIXED_BYTES)
        if user_end is None:
            return False
        # SOCKS4a: an address of 0.0.0.x with x nonzero means that a host
        # name follows the user id.
        by_name = address[:3] == bytes(3)
        end = user_end + 1
        if by_name:
            name_end = self._find_nul(end)
            if name_end is None:
                return False
            host = _domain_name(bytes(buffer[end:name_end]))
            end = name_end + 1
        else:
            host = socket.inet_ntop(socket.AF_INET, address)
        if command == COMMAND_CONNECT:
            events.append(SocksConnect(SOCKS4, host, port, by_name))
        self._consume(end)
        self._enter_tunnel()
        return False

    def _find_nul(self, start: int) -> int | None:
        buffer = self._buffer
        limit = start + MAX_SOCKS4_FIELD_BYTES + 1
        position = buffer.find(0, start, limit)
        if position >= 0:
            return position
        if len(buffer) >= limit:
            raise _Malformed(REASON_FIELD_TOO_LONG)
        return None

    def _read_greeting(self, events: list[Any]) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        count = buffer[1]
        if count == 0:
            raise _Malformed(REASON_NOT_SOCKS)
        if len(buffer) < 2 + count:
            return False
        methods = bytes(buffer[2 : 2 + count])
        if METHOD_NO_ACCEPTABLE in methods:
            # RFC 1928 section 3: 0xFF is the proxy's refusal, never a method
            # a client offers.
            raise _Malformed(REASON_NOT_SOCKS)
        self._methods = methods
        self._consume(2 + count)
        self._state = _State.SOCKS5_AFTER_GREETING
        return True

    def _read_after_greeting(self, events: list[Any]) -> bool:
        buffer = self._buffer
        if not buffer:
            return False
        if buffer[0] == SOCKS5:
            self._state = _State.SOCKS5_REQUEST
            return True
        if buffer[0] != _USERPASS_VERSION or METHOD_USERNAME_PASSWORD not in (
            self._methods
        ):
            # NOTE: GSSAPI (RFC 1961) and private methods wrap the request in
            # messages of their own, which are not decoded.
            raise _Malformed(REASON_UNSUPPORTED_AUTHENTICATION)
        # RFC 1929 section 2: version, then username and password, each
        # behind a length byte.
        if len(buffer) < 2:
            return False
        password_at = 2 + buffer[1]
        if len(buffer) < password_at + 1:
            return False
        end = password_at + 1 + buffer[password_at]
        if len(buffer) < end:
            return False
        self._consume(end)
        self._state = _State.SOCKS5_REQUEST
        return True

    def _read_socks5_request(self, events: list[Any]) -> bool:
        buffer = self._buffer
        if len(buffer) < 5:
            return False
        command, reserved, address_type = buffer[1], buffer[2], buffer[3]
        if (
            buffer[0] != SOCKS5
            or command not in (COMMAND_CONNECT, COMMAND_BIND, COMMAND_UDP_ASSOCIATE)
            or reserved != 0
        ):
            raise _Malformed(REASON_INVALID_REQUEST)
        if address_type == ADDRESS_DOMAIN:
            start = 5
            end = start + buffer[4]
        elif address_type in _ADDRESS_LENGTHS:
            start = 4
            end = start + _ADDRESS_LENGTHS[address_type]
        else:
            raise _Malformed(REASON_INVALID_REQUEST)
        if len(buffer) < end + 2:
            return False
        raw = bytes(buffer[start:end])
        port = int.from_bytes(buffer[end : end + 2], "big")
        if address_type == ADDRESS_DOMAIN:
            host = _domain_name(raw)
        else:
            host = socket.inet_ntop(_ADDRESS_FAMILIES[address_type], raw)
        if command == COMMAND_CONNECT:
            if port == 0:
                raise _Malformed(REASON_INVALID_REQUEST)
            events.append(
                SocksConnect(SOCKS5, host, port, address_type == ADDRESS_DOMAIN)
            )
        self._consume(end + 2)
        self._enter_tunnel()
        return False


class SocksReplyDecoder(_SocksStream):
    """Decoder for the server-to-client direction of a SOCKS handshake.

    Returns a :class:`SocksReply` for the final reply to the request, or for
    the first refusal at an earlier stage (no acceptable method, failed
    authentication), after which the proxy closes the connection. The version
    is recognised from the first byte: 0 opens a SOCKS4 reply, 5 a SOCKS5 method
    selection.
    """

    def __init__(self) -> None:
        super().__init__()
        self._handlers = {
            _State.START: self._read_version,
            _State.SOCKS4_REPLY: self._read_socks4_reply,
            _State.SOCKS5_METHOD_REPLY: self._read_method_reply,
            _State.SOCKS5_AUTHENTICATION_REPLY: self._read_authentication_reply,
            _State.SOCKS5_REPLY: self._read_socks5_reply,
        }

    def feed(self, data: bytes) -> list[SocksReplyEvent]:
        """Decode the replies that ``data`` completes.

        Never raises on bad input.
        """
        events: list[Any] = []
        self._feed(data, events)
        return events

    def finish(self) -> list[SocksReplyEvent]:
        """Report a reply cut off by the end of the stream."""
        events: list[Any] = []
        self._finish(events)
        return events

    def _read_version(self, events: list[Any]) -> bool:
        if not self._buffer:
            return False
        version = self._buffer[0]
        if version == SOCKS4_REPLY_VERSION:
            self._state = _State.SOCKS4_REPLY
        elif version == SOCKS5:
            self._state = _State.SOCKS5_METHOD_REPLY
        else:
            raise _Malformed(REASON_NOT_SOCKS)
        return True

    def _read_socks4_reply(self, events: list[Any]) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        code = buffer[1]
        if code not in _SOCKS4_REPLY_CODES:
            raise _Malformed(REASON_NOT_SOCKS)
        if len(buffer) < _SOCKS4_REPLY_BYTES:
            return False
        granted = code == SOCKS4_GRANTED
        events.append(SocksReply(SOCKS4, STAGE_REQUEST, code, granted))
        self._consume(_SOCKS4_REPLY_BYTES)
        self._end(granted)
        return False

    def _read_method_reply(self, events: list[Any]) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        method = buffer[1]
        self._consume(2)
        if method == METHOD_NO_ACCEPTABLE:
            events.append(SocksReply(SOCKS5, STAGE_METHOD, method, False))
            self._end(False)
            return False
        if method == METHOD_USERNAME_PASSWORD:
            self._state = _State.SOCKS5_AUTHENTICATION_REPLY
        elif method == METHOD_NO_AUTHENTICATION:
            self._state = _State.SOCKS5_REPLY
        else:
            raise _Malformed(REASON_UNSUPPORTED_AUTHENTICATION)
        return True

    def _read_authentication_reply(self, events: list[Any]) -> bool:
        buffer = self._buffer
        if len(buffer) < 2:
            return False
        if buffer[0] != _USERPASS_VERSION:
            raise _Malformed(REASON_NOT_SOCKS)
        status = buffer[1]
        self._consume(2)
        if status != 0:
            events.append(SocksReply(SOCKS5, STAGE_AUTHENTICATION, status, False))
            self._end(False)
            return False
        self._state = _State.SOCKS5_REPLY
        return True

    def _read_socks5_reply(self, events: list[Any]) -> bool:
        buffer = self._buffer
        if len(buffer) < 5:
            return False
        code, reserved, address_type = buffer[1], buffer[2], buffer[3]
        if buffer[0] != SOCKS5 or code > _SOCKS5_MAX_REPLY_CODE or reserved != 0:
            raise _Malformed(REASON_NOT_SOCKS)
        if address_type == ADDRESS_DOMAIN:
            end = 5 + buffer[4]
        elif address_type in _ADDRESS_LENGTHS:
            end = 4 + _ADDRESS_LENGTHS[address_type]
        else:
            raise _Malformed(REASON_NOT_SOCKS)
        if len(buffer) < end + 2:
            return False
        granted = code == SOCKS5_SUCCEEDED
        events.append(SocksReply(SOCKS5, STAGE_REQUEST, code, granted))
        self._consume(end + 2)
        self._end(granted)
        return False

    def _end(self, granted: bool) -> None:
        if granted:
            self._enter_tunnel()
        else:
            # After a refusal the proxy closes the connection; anything more
            # is not part of a tunnel.
            self._buffer_offset += len(self._buffer)
            self._buffer.clear()
            self._state = _State.REFUSED
