"""A TLS 1.3 ClientHello record (RFC 8446) with a server name (RFC 6066)."""

from __future__ import annotations

import struct

RECORD_HANDSHAKE = 0x16
HANDSHAKE_CLIENT_HELLO = 0x01
# Record layer and legacy_version values a TLS 1.3 client sends.
RECORD_VERSION = 0x0301
LEGACY_VERSION = 0x0303

CIPHER_SUITES = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030)
GROUP_X25519 = 0x001D
GROUP_SECP256R1 = 0x0017
SIGNATURE_SCHEMES = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501)
ALPN_PROTOCOLS = (b"h2", b"http/1.1")

EXTENSION_SERVER_NAME = 0
EXTENSION_SUPPORTED_GROUPS = 10
EXTENSION_SIGNATURE_ALGORITHMS = 13
EXTENSION_ALPN = 16
EXTENSION_SUPPORTED_VERSIONS = 43
EXTENSION_PSK_MODES = 45
EXTENSION_KEY_SHARE = 51


def client_hello(
    server_name: str, client_random: bytes, session_id: bytes, x25519_key: bytes
) -> bytes:
    """Build one TLS record carrying a ClientHello for ``server_name``.

    ``client_random`` and ``x25519_key`` are 32 bytes and ``session_id`` is
    0 to 32 bytes, all chosen by the caller so the output is reproducible.
    """
    if len(client_random) != 32 or len(x25519_key) != 32:
        raise ValueError("client_random and x25519_key must be 32 bytes each")
    if len(session_id) > 32:
        raise ValueError("session_id must be at most 32 bytes")
    suites = b"".join(struct.pack(">H", suite) for suite in CIPHER_SUITES)
    body = struct.pack(">H", LEGACY_VERSION) + client_random
    body += bytes([len(session_id)]) + session_id
    body += struct.pack(">H", len(suites)) + suites
    body += b"\x01\x00"  # one compression method: null
    extensions = _extensions(server_name, x25519_key)
    body += struct.pack(">H", len(extensions)) + extensions
    handshake = bytes([HANDSHAKE_CLIENT_HELLO]) + len(body).to_bytes(3, "big") + body
    record_header = struct.pack(
        ">BHH", RECORD_HANDSHAKE, RECORD_VERSION, len(handshake)
    )
    return record_header + handshake


def _extensions(server_name: str, x25519_key: bytes) -> bytes:
    name = server_name.encode("ascii")
    server_name_list = b"\x00" + struct.pack(">H", len(name)) + name
    groups = struct.pack(">HH", GROUP_X25519, GROUP_SECP256R1)
    schemes = b"".join(struct.pack(">H", scheme) for scheme in SIGNATURE_SCHEMES)
    alpn = b"".join(bytes([len(protocol)]) + protocol for protocol in ALPN_PROTOCOLS)
    versions = struct.pack(">HH", 0x0304, 0x0303)
    key_share = struct.pack(">HH", GROUP_X25519, len(x25519_key)) + x25519_key
    return b"".join(
        [
            _extension(EXTENSION_SERVER_NAME, _vector16(server_name_list)),
            _extension(EXTENSION_SUPPORTED_GROUPS, _vector16(groups)),
            _extension(EXTENSION_SIGNATURE_ALGORITHMS, _vector16(schemes)),
            _extension(EXTENSION_ALPN, _vector16(alpn)),
            _extension(EXTENSION_SUPPORTED_VERSIONS, bytes([len(versions)]) + versions),
            _extension(EXTENSION_PSK_MODES, b"\x01\x01"),  # psk_dhe_ke
            _extension(EXTENSION_KEY_SHARE, _vector16(key_share)),
        ]
    )


def _extension(extension_type: int, data: bytes) -> bytes:
    return struct.pack(">HH", extension_type, len(data)) + data


def _vector16(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data
