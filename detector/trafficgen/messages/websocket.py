"""WebSocket opening handshake and frames (RFC 6455)."""

from __future__ import annotations

import base64
import hashlib
import struct

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
FIN = 0x80
MASK_BIT = 0x80
MASK_KEY_BYTES = 4
# Payload lengths up to 125 fit in the second header byte; 126 and 127 mean
# that a 16-bit or 64-bit length follows (RFC 6455 section 5.2).
MAX_SHORT_LENGTH = 125
LENGTH_16 = 126
LENGTH_64 = 127
# The GUID a server appends to the client's key (RFC 6455 section 1.3).
ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(client_key: str) -> str:
    """Return the Sec-WebSocket-Accept value for ``client_key``."""
    digest = hashlib.sha1(client_key.encode("ascii") + ACCEPT_GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def frame(opcode: int, payload: bytes, mask_key: bytes | None = None) -> bytes:
    """Build one final frame. Clients mask every frame with a 4-byte
    ``mask_key`` and servers send none. Raises ValueError for a key of
    another size."""
    if mask_key is not None and len(mask_key) != MASK_KEY_BYTES:
        raise ValueError(f"a masking key is {MASK_KEY_BYTES} bytes")
    mask_flag = MASK_BIT if mask_key is not None else 0
    length = len(payload)
    header = bytes([FIN | opcode])
    if length <= MAX_SHORT_LENGTH:
        header += bytes([mask_flag | length])
    elif length < 2**16:
        header += bytes([mask_flag | LENGTH_16]) + struct.pack(">H", length)
    else:
        header += bytes([mask_flag | LENGTH_64]) + struct.pack(">Q", length)
    if mask_key is None:
        return header + payload
    masked = bytes(byte ^ mask_key[index % 4] for index, byte in enumerate(payload))
    return header + mask_key + masked


def text_frame(text: str, mask_key: bytes | None = None) -> bytes:
    """Build one final text frame carrying ``text`` as UTF-8."""
    return frame(OPCODE_TEXT, text.encode("utf-8"), mask_key)
