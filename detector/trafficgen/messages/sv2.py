"""Plaintext Stratum V2 frames (sv2-spec 03-Protocol-Overview and
08-Message-Types).

Every frame is a 6-byte header, extension_type U16, msg_type U8 and
msg_length U24, all little-endian, then the payload. Strings are STR0_255:
a length byte and up to 255 bytes.
"""

from __future__ import annotations

import struct

MSG_TYPE_SETUP_CONNECTION = 0x00
MSG_TYPE_SETUP_CONNECTION_SUCCESS = 0x01
PROTOCOL_MINING = 0
# The protocol version the specification defines.
VERSION = 2
# SetupConnection flags of the mining protocol: REQUIRES_STANDARD_JOBS (bit 0)
# and REQUIRES_VERSION_ROLLING (bit 2), as a header-only ASIC sets them.
FLAGS_STANDARD_JOBS_VERSION_ROLLING = 0b101
MAX_STRING_BYTES = 255
# msg_length is a U24.
MAX_PAYLOAD_BYTES = 2**24 - 1


def setup_connection(
    endpoint_host: str,
    endpoint_port: int,
    *,
    vendor: str,
    hardware_version: str,
    firmware: str,
    device_id: str,
    flags: int = FLAGS_STANDARD_JOBS_VERSION_ROLLING,
    protocol: int = PROTOCOL_MINING,
) -> bytes:
    """Build a SetupConnection frame offering version 2 only.

    Raises ValueError when a string is over 255 bytes.
    """
    payload = struct.pack("<BHHI", protocol, VERSION, VERSION, flags)
    payload += _string(endpoint_host.encode("ascii"))
    payload += struct.pack("<H", endpoint_port)
    for text in (vendor, hardware_version, firmware, device_id):
        payload += _string(text.encode("utf-8"))
    return frame(MSG_TYPE_SETUP_CONNECTION, payload)


def setup_connection_success(flags: int = 0, used_version: int = VERSION) -> bytes:
    """Build the pool's SetupConnection.Success: the version it chose and the
    optional features it supports."""
    return frame(
        MSG_TYPE_SETUP_CONNECTION_SUCCESS, struct.pack("<HI", used_version, flags)
    )


def frame(msg_type: int, payload: bytes, extension_type: int = 0) -> bytes:
    """Build one frame. Raises ValueError for a payload over 2**24 - 1 bytes."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"a {len(payload)}-byte payload does not fit a U24 length")
    header = struct.pack("<HB", extension_type, msg_type)
    return header + len(payload).to_bytes(3, "little") + payload


def _string(raw: bytes) -> bytes:
    if len(raw) > MAX_STRING_BYTES:
        raise ValueError(
            f"string of {len(raw)} bytes is too long for a STR0_255 (max 255)"
        )
    return bytes([len(raw)]) + raw
