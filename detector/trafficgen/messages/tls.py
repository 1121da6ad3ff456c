"""TLS 1.3 records (RFC 8446): ClientHello with an optional server name
(RFC 6066), ServerHello, ChangeCipherSpec and opaque application data.

A :class:`HelloProfile` contains what tells TLS libraries apart in a ClientHello:
cipher suites, groups, signature schemes, ALPN and the extension order.
Everything after the ServerHello is encrypted, so callers stand in for it with
random bytes of a realistic length.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

RECORD_CHANGE_CIPHER_SPEC = 0x14
RECORD_HANDSHAKE = 0x16
RECORD_APPLICATION_DATA = 0x17
HANDSHAKE_CLIENT_HELLO = 0x01
HANDSHAKE_SERVER_HELLO = 0x02
# Record layer and legacy_version values a TLS 1.3 client sends. Records after
# the first ClientHello carry 0x0303.
RECORD_VERSION = 0x0301
LEGACY_VERSION = 0x0303
TLS_1_3 = 0x0304
# A record carries at most 2**14 bytes of plaintext, and an encrypted record
# at most 256 bytes more (RFC 8446 section 5.2).
MAX_PLAINTEXT_BYTES = 2**14
MAX_CIPHERTEXT_BYTES = MAX_PLAINTEXT_BYTES + 256
# A TLS 1.3 record adds the inner content type byte and a 16-byte AEAD tag
# (AES-GCM, ChaCha20-Poly1305) to its plaintext.
AEAD_OVERHEAD = 1 + 16

CIPHER_SUITES = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030)
GROUP_X25519 = 0x001D
GROUP_SECP256R1 = 0x0017
SIGNATURE_SCHEMES = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501)
ALPN_PROTOCOLS = (b"h2", b"http/1.1")
TLS_AES_256_GCM_SHA384 = 0x1302

EXTENSION_SERVER_NAME = 0
EXTENSION_SUPPORTED_GROUPS = 10
EXTENSION_EC_POINT_FORMATS = 11
EXTENSION_SIGNATURE_ALGORITHMS = 13
EXTENSION_ALPN = 16
EXTENSION_ENCRYPT_THEN_MAC = 22
EXTENSION_EXTENDED_MASTER_SECRET = 23
EXTENSION_SESSION_TICKET = 35
EXTENSION_SUPPORTED_VERSIONS = 43
EXTENSION_PSK_MODES = 45
EXTENSION_KEY_SHARE = 51


@dataclass(frozen=True, slots=True)
class HelloProfile:
    """The ClientHello choices of one TLS library: what JA3 and JA4 read.

    ``extensions`` gives the extension types in the order sent. The server
    name extension is left out when a hello has no server name.
    """

    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...]
    groups: tuple[int, ...]
    signature_schemes: tuple[int, ...]
    supported_versions: tuple[int, ...]
    alpn_protocols: tuple[bytes, ...] = ()
    point_formats: tuple[int, ...] = ()


# A browser-like TLS 1.3 hello that offers HTTP/2.
BROWSER = HelloProfile(
    cipher_suites=CIPHER_SUITES,
    extensions=(
        EXTENSION_SERVER_NAME,
        EXTENSION_SUPPORTED_GROUPS,
        EXTENSION_SIGNATURE_ALGORITHMS,
        EXTENSION_ALPN,
        EXTENSION_SUPPORTED_VERSIONS,
        EXTENSION_PSK_MODES,
        EXTENSION_KEY_SHARE,
    ),
    groups=(GROUP_X25519, GROUP_SECP256R1),
    signature_schemes=SIGNATURE_SCHEMES,
    supported_versions=(0x0304, 0x0303),
    alpn_protocols=ALPN_PROTOCOLS,
)

# OpenSSL 1.1.1's default hello. xmrig sends it unchanged, because it only
# disables SSLv2 and SSLv3 and sets no ALPN (src/base/net/stratum/Tls.cpp),
# and it adds the server name only when its pool option sni is on. Suites,
# extension order, groups and point formats give the JA3 string that
# fingerprint lists record for OpenSSL 1.1.1 clients without ALPN:
# 771,4866-4867-4865-49196-...-53-47-255,0-11-10-35-22-23-13-43-45-51,
# 29-23-30-25-24,0-1-2. The signature schemes are those of a Wireshark
# dissection of an OpenSSL client hello (its JA4_r string).
# fmt: off
OPENSSL_1_1_1 = HelloProfile(
    cipher_suites=(
        0x1302, 0x1303, 0x1301, 0xC02C, 0xC030, 0x009F, 0xCCA9, 0xCCA8,
        0xCCAA, 0xC02B, 0xC02F, 0x009E, 0xC024, 0xC028, 0x006B, 0xC023,
        0xC027, 0x0067, 0xC00A, 0xC014, 0x0039, 0xC009, 0xC013, 0x0033,
        0x009D, 0x009C, 0x003D, 0x003C, 0x0035, 0x002F, 0x00FF,
    ),
    extensions=(
        EXTENSION_SERVER_NAME,
        EXTENSION_EC_POINT_FORMATS,
        EXTENSION_SUPPORTED_GROUPS,
        EXTENSION_SESSION_TICKET,
        EXTENSION_ENCRYPT_THEN_MAC,
        EXTENSION_EXTENDED_MASTER_SECRET,
        EXTENSION_SIGNATURE_ALGORITHMS,
        EXTENSION_SUPPORTED_VERSIONS,
        EXTENSION_PSK_MODES,
        EXTENSION_KEY_SHARE,
    ),
    # x25519, secp256r1, x448, secp521r1, secp384r1
    groups=(GROUP_X25519, GROUP_SECP256R1, 0x001E, 0x0019, 0x0018),
    signature_schemes=(
        0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0809, 0x080A, 0x080B,
        0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601,
    ),
    # With TLS 1.0 to 1.3 enabled, OpenSSL lists every version it may use.
    supported_versions=(0x0304, 0x0303, 0x0302, 0x0301),
    # uncompressed, ansiX962_compressed_prime, ansiX962_compressed_char2
    point_formats=(0, 1, 2),
)
# fmt: on


def client_hello(
    server_name: str | None,
    client_random: bytes,
    session_id: bytes,
    x25519_key: bytes,
    *,
    profile: HelloProfile = BROWSER,
) -> bytes:
    """Build one TLS record carrying a ClientHello for ``server_name``.

    ``server_name=None`` sends no server name extension, as a client that
    connects to an address does. ``client_random`` and ``x25519_key`` are 32
    bytes and ``session_id`` is 0 to 32 bytes, all chosen by the caller so
    the output is reproducible. Raises ValueError for other sizes.
    """
    message = client_hello_message(
        server_name, client_random, session_id, x25519_key, profile=profile
    )
    return record(RECORD_HANDSHAKE, message, version=RECORD_VERSION)


def client_hello_message(
    server_name: str | None,
    client_random: bytes,
    session_id: bytes,
    x25519_key: bytes,
    *,
    profile: HelloProfile = BROWSER,
) -> bytes:
    """Build the ClientHello handshake message without a record header, for
    callers that split it across records. Raises ValueError as
    :func:`client_hello` does."""
    if len(client_random) != 32 or len(x25519_key) != 32:
        raise ValueError("client_random and x25519_key must be 32 bytes each")
    if len(session_id) > 32:
        raise ValueError("session_id must be at most 32 bytes")
    suites = b"".join(struct.pack(">H", suite) for suite in profile.cipher_suites)
    body = struct.pack(">H", LEGACY_VERSION) + client_random
    body += bytes([len(session_id)]) + session_id
    body += struct.pack(">H", len(suites)) + suites
    body += b"\x01\x00"  # one compression method: null
    extensions = _client_extensions(profile, server_name, x25519_key)
    body += struct.pack(">H", len(extensions)) + extensions
    return _handshake(HANDSHAKE_CLIENT_HELLO, body)


def server_hello(
    server_random: bytes,
    session_id: bytes,
    x25519_key: bytes,
    *,
    cipher_suite: int = TLS_AES_256_GCM_SHA384,
) -> bytes:
    """Build one record carrying a TLS 1.3 ServerHello.

    ``session_id`` echoes the client's, as RFC 8446 section 4.1.3 requires.
    Raises ValueError when ``server_random`` or ``x25519_key`` is not 32
    bytes or ``session_id`` is over 32.
    """
    if len(server_random) != 32 or len(x25519_key) != 32:
        raise ValueError("server_random and x25519_key must be 32 bytes each")
    if len(session_id) > 32:
        raise ValueError("session_id must be at most 32 bytes")
    body = struct.pack(">H", LEGACY_VERSION) + server_random
    body += bytes([len(session_id)]) + session_id
    body += struct.pack(">HB", cipher_suite, 0)
    key_share = struct.pack(">HH", GROUP_X25519, len(x25519_key)) + x25519_key
    extensions = _extension(
        EXTENSION_SUPPORTED_VERSIONS, struct.pack(">H", TLS_1_3)
    ) + _extension(EXTENSION_KEY_SHARE, key_share)
    body += struct.pack(">H", len(extensions)) + extensions
    return record(RECORD_HANDSHAKE, _handshake(HANDSHAKE_SERVER_HELLO, body))


def change_cipher_spec() -> bytes:
    """Build the ChangeCipherSpec record TLS 1.3 peers send for middlebox
    compatibility (RFC 8446 appendix D.4)."""
    return record(RECORD_CHANGE_CIPHER_SPEC, b"\x01")


def application_data(ciphertext: bytes) -> bytes:
    """Wrap ``ciphertext`` in an application data record. Raises ValueError
    when it exceeds the largest record TLS 1.3 allows."""
    if len(ciphertext) > MAX_CIPHERTEXT_BYTES:
        raise ValueError(f"{len(ciphertext)} bytes do not fit in one TLS record")
    return record(RECORD_APPLICATION_DATA, ciphertext)


def record(
    content_type: int, fragment: bytes, *, version: int = LEGACY_VERSION
) -> bytes:
    """Build one record: type, version, length and ``fragment``."""
    return struct.pack(">BHH", content_type, version, len(fragment)) + fragment


def split_records(
    content_type: int,
    payload: bytes,
    sizes: Sequence[int],
    *,
    version: int = RECORD_VERSION,
) -> bytes:
    """Fragment ``payload`` into records of the given sizes, then one record
    with the rest. RFC 8446 section 5.1 lets handshake messages span records.
    Raises ValueError when the sizes are not positive or leave nothing for
    the last record."""
    if any(size <= 0 for size in sizes) or sum(sizes) >= len(payload):
        raise ValueError(f"record sizes {tuple(sizes)} do not fit {len(payload)} bytes")
    out = b""
    offset = 0
    for size in (*sizes, len(payload) - sum(sizes)):
        out += record(content_type, payload[offset : offset + size], version=version)
        offset += size
    return out


def _handshake(message_type: int, body: bytes) -> bytes:
    return bytes([message_type]) + len(body).to_bytes(3, "big") + body


def _client_extensions(
    profile: HelloProfile, server_name: str | None, x25519_key: bytes
) -> bytes:
    versions = b"".join(
        struct.pack(">H", version) for version in profile.supported_versions
    )
    key_share = struct.pack(">HH", GROUP_X25519, len(x25519_key)) + x25519_key
    data = {
        EXTENSION_SUPPORTED_GROUPS: _vector16(
            b"".join(struct.pack(">H", group) for group in profile.groups)
        ),
        EXTENSION_EC_POINT_FORMATS: _vector8(bytes(profile.point_formats)),
        EXTENSION_SIGNATURE_ALGORITHMS: _vector16(
            b"".join(struct.pack(">H", scheme) for scheme in profile.signature_schemes)
        ),
        EXTENSION_ALPN: _vector16(
            b"".join(_vector8(protocol) for protocol in profile.alpn_protocols)
        ),
        EXTENSION_ENCRYPT_THEN_MAC: b"",
        EXTENSION_EXTENDED_MASTER_SECRET: b"",
        EXTENSION_SESSION_TICKET: b"",
        EXTENSION_SUPPORTED_VERSIONS: _vector8(versions),
        EXTENSION_PSK_MODES: b"\x01\x01",  # psk_dhe_ke
        EXTENSION_KEY_SHARE: _vector16(key_share),
    }
    if server_name is not None:
        name = server_name.encode("ascii")
        server_name_list = b"\x00" + struct.pack(">H", len(name)) + name
        data[EXTENSION_SERVER_NAME] = _vector16(server_name_list)
    out = b""
    for extension_type in profile.extensions:
        if extension_type == EXTENSION_SERVER_NAME and server_name is None:
            continue
        if extension_type not in data:
            raise ValueError(f"no builder for TLS extension {extension_type}")
        out += _extension(extension_type, data[extension_type])
    return out


def _extension(extension_type: int, data: bytes) -> bytes:
    return struct.pack(">HH", extension_type, len(data)) + data


def _vector8(data: bytes) -> bytes:
    return bytes([len(data)]) + data


def _vector16(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data
