"""Sans-IO protocol decoders: stream bytes in, messages out.

No decoder here opens a socket or a file or reads the clock, so the same code
serves pcap replay, live capture and tests. :func:`identify` tells from the
first bytes of a stream direction which decoder it needs.
"""

from __future__ import annotations

from collections.abc import Sequence

from detector.protocols.dns import (
    DnsMessage,
    DnsQuestion,
    DnsRecord,
    DnsTcpDecoder,
    MalformedDns,
    parse_dns,
    resolve_chain,
)
from detector.protocols.http import (
    HttpDecoder,
    HttpEvent,
    HttpRequest,
    HttpResponse,
    MalformedHttp,
)
from detector.protocols.jsonlines import (
    JsonLineDecoder,
    JsonMessage,
    MalformedLine,
    decode_line,
)
from detector.protocols.socks import (
    MalformedSocks,
    SocksConnect,
    SocksDecoder,
    SocksReply,
    SocksReplyDecoder,
)
from detector.protocols.sv2 import (
    SetupConnection,
    looks_like_noise_act1,
    parse_setup_connection,
)
from detector.protocols.tls import (
    ClientHello,
    MalformedTls,
    ServerCertificate,
    ServerHello,
    TlsClientHelloDecoder,
    TlsServerDecoder,
)
from detector.protocols.websocket import (
    MalformedWebSocket,
    WebMinerMessage,
    WebSocketBinary,
    WebSocketDecoder,
    WebSocketText,
    parse_webminer,
)

__all__ = [
    "HttpDecoder",
    "HttpEvent",
    "HttpRequest",
    "HttpResponse",
    "JsonLineDecoder",
    "JsonMessage",
    "MalformedHttp",
    "MalformedLine",
    "KIND_HTTP",
    "KIND_INCOMPLETE",
    "KIND_JSON",
    "KIND_TLS",
    "KIND_UNKNOWN",
    "MIN_IDENTIFY_BYTES",
    "decode_line",
    "identify",
    "ClientHello",
    "DnsMessage",
    "DnsQuestion",
    "DnsRecord",
    "DnsTcpDecoder",
    "MalformedDns",
    "MalformedSocks",
    "MalformedTls",
    "MalformedWebSocket",
    "ServerCertificate",
    "ServerHello",
    "SetupConnection",
    "SocksConnect",
    "SocksDecoder",
    "SocksReply",
    "SocksReplyDecoder",
    "TlsClientHelloDecoder",
    "TlsServerDecoder",
    "WebMinerMessage",
    "WebSocketBinary",
    "WebSocketDecoder",
    "WebSocketText",
    "looks_like_noise_act1",
    "parse_dns",
    "parse_setup_connection",
    "parse_webminer",
    "resolve_chain",
]

KIND_JSON = "json"
KIND_HTTP = "http"
KIND_TLS = "tls"
KIND_INCOMPLETE = "incomplete"
KIND_UNKNOWN = "unknown"

# Each pattern lists, per position, the byte values allowed there; None allows
# any byte. A stream matches a pattern when its first bytes match every
# position.
_Pattern = tuple[frozenset[int] | None, ...]


def _literal(text: bytes) -> _Pattern:
    return tuple(frozenset({byte}) for byte in text)


# RFC 9110 section 9 methods plus PATCH (RFC 5789); a request starts with the
# method and one space.
_HTTP_METHODS = (
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
)

_PATTERNS: tuple[tuple[str, _Pattern], ...] = (
    (KIND_JSON, _literal(b"{")),
    (KIND_JSON, _literal(b"[")),
    *((KIND_HTTP, _literal(method + b" ")) for method in _HTTP_METHODS),
    (KIND_HTTP, _literal(b"HTTP/1.")),
    # A TLS record of type handshake (22) with a 3.x record version: SSL 3.0,
    # TLS 1.0 to 1.2, and TLS 1.3, whose records also say 3.1 to 3.3 (RFC 8446
    # section 5.1).
    (KIND_TLS, (frozenset({0x16}), frozenset({0x03}), frozenset(range(0x00, 0x05)))),
    # An SSL 2.0-compatible ClientHello: a 2-byte record header with the high
    # bit set, then message type 1 (RFC 6101 appendix E.2).
    # NOTE: only records shorter than 256 bytes (first byte 0x80) are
    # recognised; a longer SSL 2.0 hello is reported as unknown.
    (KIND_TLS, (frozenset({0x80}), None, frozenset({0x01}))),
)

# The longest pattern: with this many bytes, "incomplete" is never returned.
MIN_IDENTIFY_BYTES = max(len(pattern) for _, pattern in _PATTERNS)


def _index_by_first_byte(
    patterns: Sequence[tuple[str, _Pattern]],
) -> dict[int, tuple[tuple[str, _Pattern], ...]]:
    index: dict[int, list[tuple[str, _Pattern]]] = {}
    for kind, pattern in patterns:
        first = pattern[0]
        assert first is not None, "a pattern must fix its first byte"
        for byte in first:
            index.setdefault(byte, []).append((kind, pattern))
    return {byte: tuple(entries) for byte, entries in index.items()}


_PATTERNS_BY_FIRST_BYTE = _index_by_first_byte(_PATTERNS)

# JSON text may start with whitespace (RFC 8259 section 2); so may a Stratum
# stream whose first line is blank.
_JSON_WHITESPACE = b" \t\r\n"
_JSON_OPENERS = frozenset(b"{[")


def identify(data: bytes) -> str:
    """Classify a stream direction from its first bytes.

    Returns ``"json"``, ``"http"``, ``"tls"``, ``"unknown"``, or
    ``"incomplete"`` when ``data`` is too short to tell: a strict prefix of a
    known pattern, or only whitespace. With :data:`MIN_IDENTIFY_BYTES` bytes or
    more, only all-whitespace data is ``"incomplete"``.
    """
    if not data:
        return KIND_INCOMPLETE
    if data[0] in _JSON_WHITESPACE:
        stripped = data.lstrip(_JSON_WHITESPACE)
        if not stripped:
            return KIND_INCOMPLETE
        return KIND_JSON if stripped[0] in _JSON_OPENERS else KIND_UNKNOWN
    incomplete = False
    for kind, pattern in _PATTERNS_BY_FIRST_BYTE.get(data[0], ()):
        matched = all(
            allowed is None or byte in allowed
            for byte, allowed in zip(data, pattern, strict=False)
        )
        if not matched:
            continue
        if len(data) >= len(pattern):
            return kind
        incomplete = True
    return KIND_INCOMPLETE if incomplete else KIND_UNKNOWN
