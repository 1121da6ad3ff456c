"""Sans-IO decoders for the cleartext part of a TLS handshake.

:class:`TlsClientHelloDecoder` reads the client-to-server direction of a TCP
stream and returns one :class:`ClientHello` per hello, with its server name
(SNI), ALPN list and JA3 and JA4 fingerprints. :class:`TlsServerDecoder` reads
the server-to-client direction and returns the :class:`ServerHello` and, for
TLS 1.2 and older, the names in the leaf certificate as
:class:`ServerCertificate`.

Both reassemble handshake messages across TLS records and TCP segments, stop at
the end of the cleartext handshake (a ChangeCipherSpec, alert or application
data record, or the last message of interest) and ignore the rest of the
stream. The first time the bytes cannot be a TLS handshake they return one
:class:`MalformedTls` and ignore the rest of the stream. Neither raises on bad
input.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from detector.errors import DecodeError

# Record content types (RFC 8446 section 5.1; heartbeat from RFC 6520).
CONTENT_CHANGE_CIPHER_SPEC = 20
CONTENT_ALERT = 21
CONTENT_HANDSHAKE = 22
CONTENT_APPLICATION_DATA = 23
CONTENT_HEARTBEAT = 24
_CONTENT_TYPES = frozenset(range(CONTENT_CHANGE_CIPHER_SPEC, CONTENT_HEARTBEAT + 1))

# Handshake message types (RFC 8446 section 4; RFC 5246 section 7.4).
HANDSHAKE_CLIENT_HELLO = 1
HANDSHAKE_SERVER_HELLO = 2
HANDSHAKE_CERTIFICATE = 11
HANDSHAKE_SERVER_HELLO_DONE = 14

# Extension types (IANA TLS ExtensionType Values registry).
EXTENSION_SERVER_NAME = 0x0000
EXTENSION_SUPPORTED_GROUPS = 0x000A
EXTENSION_EC_POINT_FORMATS = 0x000B
EXTENSION_SIGNATURE_ALGORITHMS = 0x000D
EXTENSION_ALPN = 0x0010
EXTENSION_SUPPORTED_VERSIONS = 0x002B

TLS_1_3 = 0x0304

# The largest record any TLS version allows: 2**14 bytes of plaintext plus
# 2048 bytes of expansion (TLSCiphertext, RFC 5246 section 6.2.3). A longer
# length field means the stream is not TLS.
MAX_RECORD_LENGTH = 2**14 + 2048

# ClientHellos take a few hundred bytes, about 1.8 KB with a post-quantum key
# share. A server's Certificate message carries the whole chain, commonly 3 to
# 6 KB. A handshake message announcing more than 64 KiB is rejected, so a peer
# cannot make the decoder buffer up to the 16 MiB the 24-bit length allows.
MAX_HANDSHAKE_BYTES = 64 * 1024

# Enough to show what a stream that is not TLS started with.
MAX_EXCERPT_BYTES = 64

# Reasons carried by MalformedTls.reason, fixed strings so callers can count
# them.
REASON_NOT_TLS = "not a TLS handshake"
REASON_INVALID_RECORD = "invalid TLS record header"
REASON_UNEXPECTED_MESSAGE = "unexpected handshake message"
REASON_INVALID_HELLO = "invalid hello message"
REASON_INVALID_CERTIFICATE = "invalid certificate message"
REASON_HANDSHAKE_TOO_LONG = "handshake message too long"
REASON_TRUNCATED = "stream ended inside the handshake"

# The ServerHello.random of a HelloRetryRequest: SHA-256 of
# "HelloRetryRequest" (RFC 8446 section 4.1.3).
HELLO_RETRY_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()

# JA4's two-character version labels (FoxIO JA4 specification, "TLS and DTLS
# Version"); any other version is "00".
_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
# JA4 prints this for a hash over an empty list.
_JA4_EMPTY_HASH = "000000000000"
_JA4_HASH_LENGTH = 12
# JA4 caps the cipher and extension counts at two digits.
_JA4_MAX_COUNT = 99

# SSL 2.0 CLIENT-HELLO (RFC 6101 appendix E.2): message type 1, version, then
# the lengths of the cipher specs (3 bytes each), session id and challenge.
_SSL2_CLIENT_HELLO = 1
_SSL2_CIPHER_SPEC_BYTES = 3
_SSL2_SESSION_ID_LENGTHS = frozenset({0, 16})
_SSL2_MIN_CHALLENGE = 16
_SSL2_MAX_CHALLENGE = 32

_RECORD_HEADER_BYTES = 5
_HANDSHAKE_HEADER_BYTES = 4
_RANDOM_BYTES = 32
_MAX_SESSION_ID_BYTES = 32


def is_grease(value: int) -> bool:
    """Tell whether ``value`` is a GREASE code point (RFC 8701): 0x0A0A, 0x1A1A ..."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


@dataclass(frozen=True, slots=True)
class ClientHello:
    """One ClientHello.

    The tuples list code points in the order sent, GREASE values included;
    the fingerprints drop GREASE as their specifications say. ``version`` is
    the hello's legacy version field (0x0303 for TLS 1.3) and
    ``supported_versions`` the content of that extension. ALPN protocol names
    are decoded as Latin-1, one character per byte. ``server_name`` is
    lower-case without a trailing dot.

    ``ja3`` is the JA3 string (Salesforce JA3) and ``ja3_hash`` its MD5;
    ``ja4`` is the JA4 fingerprint for TLS over TCP (FoxIO JA4). For a hello
    in the SSL 2.0 format (``ssl2_format``), ``ciphers`` contains the 3-byte SSL
    2.0 cipher kinds and the fingerprints are empty, because neither
    specification defines them for that format.
    """

    server_name: str | None
    alpn: tuple[str, ...]
    version: int
    ciphers: tuple[int, ...]
    extensions: tuple[int, ...]
    groups: tuple[int, ...]
    point_formats: tuple[int, ...]
    sig_algs: tuple[int, ...]
    ja3: str
    ja3_hash: str
    ja4: str
    supported_versions: tuple[int, ...] = ()
    ssl2_format: bool = False


@dataclass(frozen=True, slots=True)
class ServerHello:
    """One ServerHello.

    ``version`` is the negotiated version: the supported_versions extension's
    value when present (TLS 1.3), else the legacy version field. ``alpn`` is
    the protocol the server selected, decoded as Latin-1. ``hello_retry`` is
    True for a HelloRetryRequest, after which the client sends a new hello.
    """

    version: int
    cipher: int
    alpn: str | None
    extensions: tuple[int, ...]
    hello_retry: bool = False


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """The names of the leaf certificate a server sent (TLS 1.2 and older).

    ``names`` contains the subject's common names, then the subjectAltName DNS
    names, lower-case, without a trailing dot and without repeats.
    """

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MalformedTls:
    """The point where a stream stopped being a TLS handshake.

    ``reason`` is one of the ``REASON_*`` constants of this module and
    ``excerpt`` the first bytes, at most :data:`MAX_EXCERPT_BYTES`, of the
    record or handshake message that could not be decoded.
    """

    reason: str
    excerpt: bytes


TlsClientMessage = ClientHello | MalformedTls
TlsServerMessage = ServerHello | ServerCertificate | MalformedTls


class _Malformed(Exception):
    """Raised inside a decoder when the stream cannot be a TLS handshake."""

    def __init__(self, reason: str, excerpt: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.excerpt = excerpt[:MAX_EXCERPT_BYTES]


class _Invalid(Exception):
    """Raised while parsing a message whose fields are invalid or run past its end."""


class _Reader:
    """Bounds-checked big-endian reads from one handshake message."""

    __slots__ = ("data", "position", "end")

    def __init__(self, data: bytes, position: int = 0, end: int | None = None) -> None:
        self.data = data
        self.position = position
        self.end = len(data) if end is None else end

    def remaining(self) -> int:
        return self.end - self.position

    def take(self, count: int) -> bytes:
        if count > self.end - self.position:
            raise _Invalid
        start = self.position
        self.position += count
        return self.data[start : self.position]

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.uint(length_size))


def _uint16_values(body: bytes) -> tuple[int, ...]:
    if len(body) % 2:
        raise _Invalid
    return tuple(
        int.from_bytes(body[index : index + 2], "big")
        for index in range(0, len(body), 2)
    )


def _uint16_list(data: bytes, length_size: int) -> tuple[int, ...]:
    """Parse a vector of 16-bit values with a ``length_size``-byte length."""
    reader = _Reader(data)
    body = reader.vector(length_size)
    if reader.remaining():
        raise _Invalid
    return _uint16_values(body)


def _uint8_list(data: bytes) -> tuple[int, ...]:
    reader = _Reader(data)
    body = reader.vector(1)
    if reader.remaining():
        raise _Invalid
    return tuple(body)


def _parse_extensions(reader: _Reader) -> list[tuple[int, bytes]]:
    """Parse the optional extensions block that ends a hello message."""
    if reader.remaining() == 0:
        return []
    block = reader.vector(2)
    if reader.remaining():
        raise _Invalid
    inner = _Reader(block)
    extensions = []
    while inner.remaining():
        extension_type = inner.uint(2)
        extensions.append((extension_type, inner.vector(2)))
    return extensions


def _parse_server_name(data: bytes) -> str | None:
    """Return the first host_name of a server_name extension (RFC 6066 section 3)."""
    reader = _Reader(data)
    names = _Reader(reader.vector(2))
    if reader.remaining():
        raise _Invalid
    while names.remaining():
        name_type = names.uint(1)
        name = names.vector(2)
        if name_type == 0:
            return _host_name(name)
    return None


def _host_name(raw: bytes) -> str:
    # RFC 6066 section 3: a HostName is an ASCII DNS name, A-labels for
    # internationalised names.
    if not raw.isascii():
        raise _Invalid
    name = raw.decode("ascii").rstrip(".").lower()
    if not name:
        raise _Invalid
    return name


def _parse_alpn(data: bytes) -> tuple[str, ...]:
    """Return the protocol names of an ALPN extension (RFC 7301 section 3.1)."""
    reader = _Reader(data)
    names = _Reader(reader.vector(2))
    if reader.remaining():
        raise _Invalid
    protocols = []
    while names.remaining():
        protocols.append(names.vector(1).decode("latin-1"))
    return tuple(protocols)


def _without_grease(values: tuple[int, ...]) -> list[int]:
    return [value for value in values if not is_grease(value)]


def _ja3_string(
    version: int,
    ciphers: tuple[int, ...],
    extensions: tuple[int, ...],
    groups: tuple[int, ...],
    point_formats: tuple[int, ...],
) -> str:
    """Build the JA3 string: five fields of decimal values joined by '-'."""
    fields = (
        [version],
        _without_grease(ciphers),
        _without_grease(extensions),
        _without_grease(groups),
        list(point_formats),
    )
    return ",".join("-".join(str(value) for value in field) for field in fields)


def _ja4_alpn(alpn: tuple[str, ...]) -> str:
    if not alpn or not alpn[0]:
        return "00"
    first = alpn[0].encode("latin-1")
    head, tail = chr(first[0]), chr(first[-1])
    if head.isascii() and head.isalnum() and tail.isascii() and tail.isalnum():
        return head + tail
    # A non-alphanumeric first or last byte is printed as the first and last
    # characters of the protocol name in hex.
    text = first.hex()
    return text[0] + text[-1]


def _ja4_hash(text: str) -> str:
    if not text:
        return _JA4_EMPTY_HASH
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:_JA4_HASH_LENGTH]


def _ja4(
    version: int,
    supported_versions: tuple[int, ...],
    ciphers: tuple[int, ...],
    extensions: tuple[int, ...],
    alpn: tuple[str, ...],
    sig_algs: tuple[int, ...],
) -> str:
    """Build the JA4 fingerprint of a hello sent over TCP."""
    offered = _without_grease(supported_versions)
    label = _JA4_VERSIONS.get(max(offered) if offered else version, "00")
    sni = "d" if EXTENSION_SERVER_NAME in extensions else "i"
    cipher_list = _without_grease(ciphers)
    extension_list = _without_grease(extensions)
    part_a = (
        f"t{label}{sni}{min(len(cipher_list), _JA4_MAX_COUNT):02d}"
        f"{min(len(extension_list), _JA4_MAX_COUNT):02d}{_ja4_alpn(alpn)}"
    )
    part_b = _ja4_hash(",".join(sorted(f"{value:04x}" for value in cipher_list)))
    hashed_extensions = sorted(
        f"{value:04x}"
        for value in extension_list
        if value not in (EXTENSION_SERVER_NAME, EXTENSION_ALPN)
    )
    extension_text = ",".join(hashed_extensions)
    algorithms = _without_grease(sig_algs)
    if hashed_extensions and algorithms:
        extension_text += "_" + ",".join(f"{value:04x}" for value in algorithms)
    return f"{part_a}_{part_b}_{_ja4_hash(extension_text)}"


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse the body of a TLS ClientHello handshake message, header excluded.

    Raises:
        DecodeError: the body is truncated, has bytes left over, or carries a
            malformed server_name, ALPN or list extension.
    """
    try:
        return _parse_client_hello(body)
    except _Invalid:
        raise DecodeError("invalid TLS ClientHello") from None


@dataclass(slots=True)
class _HelloExtensions:
    """The extension contents a ClientHello's fields and fingerprints need."""

    server_name: str | None = None
    alpn: tuple[str, ...] = ()
    groups: tuple[int, ...] = ()
    point_formats: tuple[int, ...] = ()
    sig_algs: tuple[int, ...] = ()
    supported_versions: tuple[int, ...] = ()


def _read_hello_extensions(extensions: list[tuple[int, bytes]]) -> _HelloExtensions:
    found = _HelloExtensions()
    seen: set[int] = set()
    for extension_type, data in extensions:
        if extension_type in seen:
            # RFC 8446 section 4.2 allows one extension of each type; of
            # repeats, only the first is decoded.
            continue
        seen.add(extension_type)
        if extension_type == EXTENSION_SERVER_NAME:
            found.server_name = _parse_server_name(data)
        elif extension_type == EXTENSION_ALPN:
            found.alpn = _parse_alpn(data)
        elif extension_type == EXTENSION_SUPPORTED_GROUPS:
            found.groups = _uint16_list(data, 2)
        elif extension_type == EXTENSION_EC_POINT_FORMATS:
            found.point_formats = _uint8_list(data)
        elif extension_type == EXTENSION_SIGNATURE_ALGORITHMS:
            found.sig_algs = _uint16_list(data, 2)
        elif extension_type == EXTENSION_SUPPORTED_VERSIONS:
            found.supported_versions = _uint16_list(data, 1)
    return found


def _parse_client_hello(body: bytes) -> ClientHello:
    reader = _Reader(body)
    version = reader.uint(2)
    if version >> 8 != 3:
        raise _Invalid
    reader.take(_RANDOM_BYTES)
    if len(reader.vector(1)) > _MAX_SESSION_ID_BYTES:
        raise _Invalid
    ciphers = _uint16_values(reader.vector(2))
    compression_methods = reader.vector(1)
    if not ciphers or not compression_methods:
        raise _Invalid

    extensions = _parse_extensions(reader)
    found = _read_hello_extensions(extensions)
    extension_types = tuple(extension_type for extension_type, _ in extensions)

    ja3 = _ja3_string(
        version, ciphers, extension_types, found.groups, found.point_formats
    )
    ja4 = _ja4(
        version,
        found.supported_versions,
        ciphers,
        extension_types,
        found.alpn,
        found.sig_algs,
    )
    return ClientHello(
        server_name=found.server_name,
        alpn=found.alpn,
        version=version,
        ciphers=ciphers,
        extensions=extension_types,
        groups=found.groups,
        point_formats=found.point_formats,
        sig_algs=found.sig_algs,
        ja3=ja3,
        ja3_hash=hashlib.md5(ja3.encode("ascii"), usedforsecurity=False).hexdigest(),
        ja4=ja4,
        supported_versions=found.supported_versions,
    )


def _parse_ssl2_client_hello(body: bytes) -> ClientHello:
    """Parse an SSL 2.0 CLIENT-HELLO body, record header excluded."""
    reader = _Reader(body)
    if reader.uint(1) != _SSL2_CLIENT_HELLO:
        raise _Invalid
    version = reader.uint(2)
    if version != 0x0002 and version >> 8 != 3:
        raise _Invalid
    cipher_length = reader.uint(2)
    session_id_length = reader.uint(2)
    challenge_length = reader.uint(2)
    if (
        cipher_length == 0
        or cipher_length % _SSL2_CIPHER_SPEC_BYTES
        or session_id_length not in _SSL2_SESSION_ID_LENGTHS
        or not _SSL2_MIN_CHALLENGE <= challenge_length <= _SSL2_MAX_CHALLENGE
        or reader.remaining() != cipher_length + session_id_length + challenge_length
    ):
        raise _Invalid
    specs = reader.take(cipher_length)
    ciphers = tuple(
        int.from_bytes(specs[index : index + _SSL2_CIPHER_SPEC_BYTES], "big")
        for index in range(0, cipher_length, _SSL2_CIPHER_SPEC_BYTES)
    )
    return ClientHello(
        server_name=None,
        alpn=(),
        version=version,
        ciphers=ciphers,
        extensions=(),
        groups=(),
        point_formats=(),
        sig_algs=(),
        ja3="",
        ja3_hash="",
        ja4="",
        ssl2_format=True,
    )


def parse_server_hello(body: bytes) -> ServerHello:
    """Parse the body of a TLS ServerHello handshake message, header excluded.

    Raises:
        DecodeError: the body is truncated, has bytes left over, or carries a
            malformed supported_versions or ALPN extension.
    """
    try:
        return _parse_server_hello(body)
    except _Invalid:
        raise DecodeError("invalid TLS ServerHello") from None


def _parse_server_hello(body: bytes) -> ServerHello:
    reader = _Reader(body)
    version = reader.uint(2)
    if version >> 8 != 3:
        raise _Invalid
    random = reader.take(_RANDOM_BYTES)
    if len(reader.vector(1)) > _MAX_SESSION_ID_BYTES:
        raise _Invalid
    cipher = reader.uint(2)
    reader.take(1)
    extensions = _parse_extensions(reader)
    alpn: str | None = None
    for extension_type, data in extensions:
        if extension_type == EXTENSION_SUPPORTED_VERSIONS:
            # RFC 8446 section 4.2.1: the server sends the one version it
            # selected.
            if len(data) != 2:
                raise _Invalid
            version = int.from_bytes(data, "big")
        elif extension_type == EXTENSION_ALPN:
            protocols = _parse_alpn(data)
            if len(protocols) != 1:
                raise _Invalid
            alpn = protocols[0]
    return ServerHello(
        version=version,
        cipher=cipher,
        alpn=alpn,
        extensions=tuple(extension_type for extension_type, _ in extensions),
        hello_retry=random == HELLO_RETRY_RANDOM,
    )


# DER (ITU-T X.690) parts needed to read names out of an X.509 certificate
# (RFC 5280 section 4.1).
_DER_SEQUENCE = 0x30
_DER_SET = 0x31
_DER_OID = 0x06
_DER_OCTET_STRING = 0x04
_DER_VERSION_TAG = 0xA0
_DER_EXTENSIONS_TAG = 0xA3
# GeneralName dNSName, [2] IMPLICIT IA5String (RFC 5280 section 4.2.1.6).
_DER_DNS_NAME = 0x82
_DER_MAX_LENGTH_BYTES = 4
# id-at-commonName 2.5.4.3 and id-ce-subjectAltName 2.5.29.17, as DER contents.
_OID_COMMON_NAME = bytes([0x55, 0x04, 0x03])
_OID_SUBJECT_ALT_NAME = bytes([0x55, 0x1D, 0x11])
# The string types an X.501 DirectoryString or IA5String may use.
_DER_STRING_CODECS = {
    0x0C: "utf-8",  # UTF8String
    0x13: "ascii",  # PrintableString
    0x16: "ascii",  # IA5String
    0x14: "latin-1",  # TeletexString, read as Latin-1 as most software does
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}
# tbsCertificate fields after the optional version: serialNumber, signature,
# issuer, validity, subject, subjectPublicKeyInfo.
_TBS_SUBJECT_INDEX = 4
_TBS_REQUIRED_FIELDS = 6


class _DerError(Exception):
    """Raised when certificate bytes are not the DER structure expected."""


def _der_element(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """Return the tag, content start and content end of the element at ``offset``."""
    if end - offset < 2:
        raise _DerError
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        # Tag numbers above 30 appear nowhere in the parts read here.
        raise _DerError
    first = data[offset + 1]
    offset += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > _DER_MAX_LENGTH_BYTES or end - offset < count:
            # Count 0 is BER's indefinite length, which DER forbids.
            raise _DerError
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    if length > end - offset:
        raise _DerError
    return tag, offset, offset + length


def _der_children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    while start < end:
        element = _der_element(data, start, end)
        yield element
        start = element[2]


def _der_expect(element: tuple[int, int, int], tag: int) -> None:
    if element[0] != tag:
        raise _DerError


def _der_string(data: bytes, element: tuple[int, int, int]) -> str | None:
    tag, start, end = element
    codec = _DER_STRING_CODECS.get(tag)
    if codec is None:
        return None
    try:
        return data[start:end].decode(codec)
    except UnicodeDecodeError:
        raise _DerError from None


def certificate_names(der: bytes) -> tuple[str, ...]:
    """Return the subject common names and DNS subjectAltNames of a certificate.

    Names are lower-case without a trailing dot, common names first, without
    repeats. The signature is not checked.

    Raises:
        DecodeError: ``der`` is not a DER X.509 certificate as far as the
            walk to these fields goes.
    """
    try:
        return _certificate_names(der)
    except _DerError:
        raise DecodeError("invalid DER certificate") from None


def _certificate_names(der: bytes) -> tuple[str, ...]:
    certificate = _der_element(der, 0, len(der))
    _der_expect(certificate, _DER_SEQUENCE)
    tbs = _der_element(der, certificate[1], certificate[2])
    _der_expect(tbs, _DER_SEQUENCE)
    fields = list(_der_children(der, tbs[1], tbs[2]))
    first = 1 if fields and fields[0][0] == _DER_VERSION_TAG else 0
    if len(fields) < first + _TBS_REQUIRED_FIELDS:
        raise _DerError
    subject = fields[first + _TBS_SUBJECT_INDEX]
    _der_expect(subject, _DER_SEQUENCE)
    names = _common_names(der, subject)
    for field in fields[first + _TBS_REQUIRED_FIELDS :]:
        if field[0] == _DER_EXTENSIONS_TAG:
            names.extend(_dns_alt_names(der, field))
    unique: dict[str, None] = {}
    for name in names:
        normalised = name.rstrip(".").lower()
        if normalised:
            unique.setdefault(normalised, None)
    return tuple(unique)


def _common_names(der: bytes, subject: tuple[int, int, int]) -> list[str]:
    names = []
    for rdn in _der_children(der, subject[1], subject[2]):
        _der_expect(rdn, _DER_SET)
        for attribute in _der_children(der, rdn[1], rdn[2]):
            _der_expect(attribute, _DER_SEQUENCE)
            parts = list(_der_children(der, attribute[1], attribute[2]))
            if len(parts) != 2:
                raise _DerError
            oid, value = parts
            _der_expect(oid, _DER_OID)
            if der[oid[1] : oid[2]] == _OID_COMMON_NAME:
                text = _der_string(der, value)
                if text is not None:
                    names.append(text)
    return names


def _dns_alt_names(der: bytes, wrapper: tuple[int, int, int]) -> list[str]:
    extensions = _der_element(der, wrapper[1], wrapper[2])
    _der_expect(extensions, _DER_SEQUENCE)
    names = []
    for extension in _der_children(der, extensions[1], extensions[2]):
        _der_expect(extension, _DER_SEQUENCE)
        parts = list(_der_children(der, extension[1], extension[2]))
        if len(parts) < 2:
            raise _DerError
        oid, value = parts[0], parts[-1]
        _der_expect(oid, _DER_OID)
        if der[oid[1] : oid[2]] != _OID_SUBJECT_ALT_NAME:
            continue
        _der_expect(value, _DER_OCTET_STRING)
        general_names = _der_element(der, value[1], value[2])
        _der_expect(general_names, _DER_SEQUENCE)
        for general_name in _der_children(der, general_names[1], general_names[2]):
            if general_name[0] == _DER_DNS_NAME:
                raw = der[general_name[1] : general_name[2]]
                if not raw.isascii():
                    raise _DerError
                names.append(raw.decode("ascii"))
    return names


def _leaf_certificate_names(body: bytes) -> tuple[str, ...] | None:
    """Return the names in the first certificate of a TLS 1.2 Certificate message.

    Returns None for an empty certificate list.
    """
    reader = _Reader(body)
    chain = reader.vector(3)
    if reader.remaining():
        raise _Invalid
    if not chain:
        return None
    leaf = _Reader(chain).vector(3)
    return _certificate_names(leaf)


class _State(enum.Enum):
    START = "before the first byte"
    RECORDS = "reading TLS records"
    SSL2 = "reading an SSL 2.0 record"
    DONE = "after the cleartext handshake"
    BROKEN = "not a TLS handshake"
    LOST = "after a gap in the stream"


class _HandshakeDecoder:
    """Record and handshake-message reassembly shared by both directions."""

    def __init__(self) -> None:
        self._state = _State.START
        # Record bytes not yet parsed: at most one partial record between calls.
        self._records = bytearray()
        # Handshake-layer bytes not yet parsed: at most one partial message.
        self._handshake = bytearray()
        self._discarded_bytes = 0

    @property
    def discarded_bytes(self) -> int:
        """Stream bytes ignored after a gap or after the stream proved not TLS."""
        return self._discarded_bytes

    @property
    def stopped(self) -> bool:
        """Whether the decoder ignores further bytes."""
        return self._state in (_State.DONE, _State.BROKEN, _State.LOST)

    def _feed(self, data: bytes, messages: list[Any]) -> None:
        state = self._state
        if state in (_State.BROKEN, _State.LOST):
            self._discarded_bytes += len(data)
            return
        if state is _State.DONE or not data:
            return
        self._records += data
        try:
            if self._state is _State.START:
                self._state = self._start_state(self._records[0])
            if self._state is _State.SSL2:
                self._read_ssl2(messages)
            while self._state is _State.RECORDS and self._read_record(messages):
                pass
        except _Malformed as error:
            messages.append(MalformedTls(error.reason, error.excerpt))
            self._discarded_bytes += len(self._records) + len(self._handshake)
            self._stop(_State.BROKEN)
        if self._state is _State.DONE:
            self._stop(_State.DONE)

    def gap(self) -> None:
        """Stop decoding, because record boundaries are lost with the bytes."""
        if self.stopped:
            return
        self._discarded_bytes += len(self._records) + len(self._handshake)
        self._stop(_State.LOST)

    def _finish(self, messages: list[Any]) -> None:
        if not self.stopped and (self._records or self._handshake):
            excerpt = bytes(self._handshake or self._records)[:MAX_EXCERPT_BYTES]
            messages.append(MalformedTls(REASON_TRUNCATED, excerpt))
        if not self.stopped:
            self._stop(_State.DONE)

    def _stop(self, state: _State) -> None:
        self._state = state
        self._records.clear()
        self._handshake.clear()

    def _start_state(self, first_byte: int) -> _State:
        raise NotImplementedError

    def _read_ssl2(self, messages: list[Any]) -> None:
        raise _Malformed(REASON_NOT_TLS, bytes(self._records[:MAX_EXCERPT_BYTES]))

    def _on_handshake(
        self, message_type: int, body: bytes, messages: list[Any]
    ) -> None:
        raise NotImplementedError

    def _on_other_record(self, content_type: int) -> None:
        """Handle a record that is not a handshake record: the handshake is over."""
        self._state = _State.DONE

    def _read_record(self, messages: list[Any]) -> bool:
        """Consume one whole record; return False when more bytes are needed."""
        records = self._records
        if len(records) < _RECORD_HEADER_BYTES:
            return False
        content_type = records[0]
        length = int.from_bytes(records[3:5], "big")
        if (
            content_type not in _CONTENT_TYPES
            or records[1] != 3
            or records[2] > 4
            or length > MAX_RECORD_LENGTH
        ):
            raise _Malformed(REASON_INVALID_RECORD, bytes(records[:MAX_EXCERPT_BYTES]))
        end = _RECORD_HEADER_BYTES + length
        if len(records) < end:
            return False
        if content_type != CONTENT_HANDSHAKE:
            del records[:end]
            self._on_other_record(content_type)
            return True
        self._handshake += records[_RECORD_HEADER_BYTES:end]
        del records[:end]
        self._read_handshake_messages(messages)
        return True

    def _read_handshake_messages(self, messages: list[Any]) -> None:
        handshake = self._handshake
        while (
            self._state is _State.RECORDS and len(handshake) >= _HANDSHAKE_HEADER_BYTES
        ):
            length = int.from_bytes(handshake[1:4], "big")
            if length > MAX_HANDSHAKE_BYTES:
                raise _Malformed(
                    REASON_HANDSHAKE_TOO_LONG, bytes(handshake[:MAX_EXCERPT_BYTES])
                )
            end = _HANDSHAKE_HEADER_BYTES + length
            if len(handshake) < end:
                return
            message_type = handshake[0]
            body = bytes(handshake[_HANDSHAKE_HEADER_BYTES:end])
            excerpt = bytes(handshake[:MAX_EXCERPT_BYTES])
            del handshake[:end]
            try:
                self._on_handshake(message_type, body, messages)
            except _Malformed as error:
                if not error.excerpt:
                    error.excerpt = excerpt
                raise
            except _Invalid:
                raise _Malformed(self._invalid_reason(message_type), excerpt) from None
            except _DerError:
                raise _Malformed(REASON_INVALID_CERTIFICATE, excerpt) from None

    def _invalid_reason(self, message_type: int) -> str:
        if message_type == HANDSHAKE_CERTIFICATE:
            return REASON_INVALID_CERTIFICATE
        return REASON_INVALID_HELLO


class TlsClientHelloDecoder(_HandshakeDecoder):
    """Decoder for the client-to-server direction of a TLS stream.

    Returns a :class:`ClientHello` for each hello (a second one follows a
    HelloRetryRequest) and stops at the first record that is not a handshake
    record. A stream may also open with an SSL 2.0-format hello (RFC 6101
    appendix E.2), after which the decoder stops. After a gap the decoder
    stops, because TLS records carry no marker to resynchronise on.

    NOTE: in TLS 1.3 middlebox compatibility mode a client may send
    ChangeCipherSpec before its second hello (RFC 8446 appendix D.4), and that
    second hello is not returned. Its server name must match the first one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._hello_seen = False

    def feed(self, data: bytes) -> list[TlsClientMessage]:
        """Decode the handshake messages completed by ``data``.

        Never raises on bad input.
        """
        messages: list[Any] = []
        self._feed(data, messages)
        return messages

    def finish(self) -> list[TlsClientMessage]:
        """Report a handshake message cut off by the end of the stream."""
        messages: list[Any] = []
        self._finish(messages)
        return messages

    def _start_state(self, first_byte: int) -> _State:
        if first_byte == CONTENT_HANDSHAKE:
            return _State.RECORDS
        if first_byte & 0x80:
            return _State.SSL2
        raise _Malformed(REASON_NOT_TLS, bytes(self._records[:MAX_EXCERPT_BYTES]))

    def _read_ssl2(self, messages: list[Any]) -> None:
        records = self._records
        if len(records) < 2:
            return
        # A 2-byte SSL 2.0 record header: the high bit set, then 15 bits of
        # length.
        length = (records[0] & 0x7F) << 8 | records[1]
        if len(records) < 2 + length:
            return
        body = bytes(records[2 : 2 + length])
        try:
            messages.append(_parse_ssl2_client_hello(body))
        except _Invalid:
            raise _Malformed(
                REASON_NOT_TLS, bytes(records[:MAX_EXCERPT_BYTES])
            ) from None
        self._state = _State.DONE

    def _on_handshake(
        self, message_type: int, body: bytes, messages: list[Any]
    ) -> None:
        if message_type == HANDSHAKE_CLIENT_HELLO:
            messages.append(_parse_client_hello(body))
            self._hello_seen = True
        elif not self._hello_seen:
            raise _Malformed(REASON_UNEXPECTED_MESSAGE, b"")


class TlsServerDecoder(_HandshakeDecoder):
    """Decoder for the server-to-client direction of a TLS stream.

    Returns the :class:`ServerHello` and, when the server negotiated TLS 1.2
    or older, a :class:`ServerCertificate` for the leaf certificate. Stops
    after the certificate, after ServerHelloDone, after a TLS 1.3 ServerHello
    (everything after it is encrypted) or at the first record that is not a
    handshake record. A stream that opens with an alert record ends without a
    message.
    """

    def __init__(self) -> None:
        super().__init__()
        self._hello: ServerHello | None = None

    def feed(self, data: bytes) -> list[TlsServerMessage]:
        """Decode the handshake messages completed by ``data``.

        Never raises on bad input.
        """
        messages: list[Any] = []
        self._feed(data, messages)
        return messages

    def finish(self) -> list[TlsServerMessage]:
        """Report a handshake message cut off by the end of the stream."""
        messages: list[Any] = []
        self._finish(messages)
        return messages

    def _start_state(self, first_byte: int) -> _State:
        if first_byte in (CONTENT_HANDSHAKE, CONTENT_ALERT):
            return _State.RECORDS
        raise _Malformed(REASON_NOT_TLS, bytes(self._records[:MAX_EXCERPT_BYTES]))

    def _on_other_record(self, content_type: int) -> None:
        hello = self._hello
        if (
            content_type == CONTENT_CHANGE_CIPHER_SPEC
            and hello is not None
            and hello.hello_retry
        ):
            # RFC 8446 appendix D.4: in middlebox compatibility mode a
            # server sends ChangeCipherSpec right after a HelloRetryRequest,
            # and the real ServerHello follows in cleartext.
            return
        self._state = _State.DONE

    def _on_handshake(
        self, message_type: int, body: bytes, messages: list[Any]
    ) -> None:
        hello = self._hello
        if message_type == HANDSHAKE_SERVER_HELLO:
            hello = _parse_server_hello(body)
            self._hello = hello
            messages.append(hello)
            if hello.version >= TLS_1_3 and not hello.hello_retry:
                self._state = _State.DONE
            return
        if hello is None:
            raise _Malformed(REASON_UNEXPECTED_MESSAGE, b"")
        if message_type == HANDSHAKE_CERTIFICATE:
            names = _leaf_certificate_names(body)
            if names is not None:
                messages.append(ServerCertificate(names))
            self._state = _State.DONE
        elif message_type == HANDSHAKE_SERVER_HELLO_DONE:
            self._state = _State.DONE
