"""Stratum V2 recognition: the plaintext SetupConnection and the Noise act 1 shape.

Stratum V2 (sv2-spec, stratumprotocol.org) frames every message behind a
6-byte header: extension_type U16, msg_type U8, msg_length U24, all
little-endian. A connection normally starts with a Noise handshake, whose
first client message is 64 pseudo-random bytes, and carries only encrypted
frames after it. The spec allows plaintext connections on local networks;
their first message is SetupConnection, which names the pool endpoint and the
device. :func:`parse_setup_connection` decodes that message and
:func:`looks_like_noise_act1` tests the shape of an encrypted start.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADER_BYTES = 6
MSG_TYPE_SETUP_CONNECTION = 0x00

# SetupConnection.protocol values: Mining, Job Declaration and Template
# Distribution (sv2-spec section 3.6.1).
PROTOCOL_MINING = 0
PROTOCOL_JOB_DECLARATION = 1
PROTOCOL_TEMPLATE_DISTRIBUTION = 2
_KNOWN_PROTOCOLS = frozenset(
    {PROTOCOL_MINING, PROTOCOL_JOB_DECLARATION, PROTOCOL_TEMPLATE_DISTRIBUTION}
)

# Act 1 of Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256 is the client's
# ephemeral public key in ElligatorSwift encoding, 64 bytes, sent unframed
# (sv2-spec section 4, Protocol Security).
NOISE_ACT1_BYTES = 64

# Bounds for the shape test. An ElligatorSwift encoding is indistinguishable
# from 64 uniformly random bytes, so each bound sits far outside what random
# bytes produce. By the binomial and occupancy distributions, each rejects 64
# random bytes with a probability below one in a billion:
# - printable ASCII bytes (0x20 to 0x7E): mean 23.75, standard deviation 3.9.
#   Text is nearly all printable.
MAX_PRINTABLE_BYTES = 47
# - zero bytes: mean 0.25. Binary headers and padding are full of them.
MAX_ZERO_BYTES = 7
# - distinct byte values: mean 56.7, standard deviation 2.3. Repeated patterns
#   and small alphabets (hex, base64) have far fewer.
MIN_DISTINCT_BYTES = 40

# Openings of other protocols that a first client payload of 64 bytes may
# have: JSON Stratum, a TLS handshake record, HTTP, SSH. Random bytes start
# with one of them with a probability of about 1 in 128, mostly the one-byte
# JSON openers, and such a payload is then not reported as act 1.
_STRUCTURED_PREFIXES = (
    b"{",
    b"[",
    b"\x16\x03",
    b"GET ",
    b"POST ",
    b"HTTP/",
    b"CONNECT ",
    b"SSH-",
)
_PRINTABLE = frozenset(range(0x20, 0x7F))


@dataclass(frozen=True, slots=True)
class SetupConnection:
    """A plaintext SetupConnection message (sv2-spec section 3.6.1).

    ``frame_length`` is the number of bytes the frame occupies, header
    included, so the caller knows where the next frame starts.
    ``endpoint_host`` is the pool host name or address the device connects to,
    as the device wrote it.
    """

    protocol: int
    min_version: int
    max_version: int
    flags: int
    endpoint_host: str
    endpoint_port: int
    vendor: str
    hardware_version: str
    firmware: str
    device_id: str
    frame_length: int


class _Invalid(Exception):
    """Raised while parsing when the bytes are not a SetupConnection."""


class _Reader:
    """Bounds-checked little-endian reads from one message payload."""

    __slots__ = ("data", "position")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, count: int) -> bytes:
        end = self.position + count
        if end > len(self.data):
            raise _Invalid
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "little")

    def string(self, encoding: str) -> str:
        """Read a STR0_255: a length byte, then that many bytes."""
        raw = self.take(self.uint(1))
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            raise _Invalid from None


def parse_setup_connection(data: bytes) -> SetupConnection | None:
    """Decode the SetupConnection frame at the start of ``data``.

    Returns None unless the frame header has extension_type 0 (which also
    rules out the channel_msg bit), msg_type 0x00 and a msg_length that the
    fields fill exactly, the protocol is one of the three the spec defines
    and 1 <= min_version <= max_version. The endpoint host must be ASCII, as
    the spec requires, and the other strings UTF-8. Bytes after the frame are
    ignored. Raises nothing.
    """
    if len(data) < HEADER_BYTES:
        return None
    extension_type = int.from_bytes(data[0:2], "little")
    msg_type = data[2]
    msg_length = int.from_bytes(data[3:6], "little")
    end = HEADER_BYTES + msg_length
    if extension_type != 0 or msg_type != MSG_TYPE_SETUP_CONNECTION or len(data) < end:
        return None
    reader = _Reader(data[HEADER_BYTES:end])
    try:
        protocol = reader.uint(1)
        min_version = reader.uint(2)
        max_version = reader.uint(2)
        flags = reader.uint(4)
        endpoint_host = reader.string("ascii")
        endpoint_port = reader.uint(2)
        vendor = reader.string("utf-8")
        hardware_version = reader.string("utf-8")
        firmware = reader.string("utf-8")
        device_id = reader.string("utf-8")
    except _Invalid:
        return None
    if (
        reader.position != msg_length
        or protocol not in _KNOWN_PROTOCOLS
        or not 1 <= min_version <= max_version
    ):
        return None
    return SetupConnection(
        protocol=protocol,
        min_version=min_version,
        max_version=max_version,
        flags=flags,
        endpoint_host=endpoint_host,
        endpoint_port=endpoint_port,
        vendor=vendor,
        hardware_version=hardware_version,
        firmware=firmware,
        device_id=device_id,
        frame_length=end,
    )


def looks_like_noise_act1(first_client_payload: bytes) -> bool:
    """Tell whether a stream's first client bytes have the shape of Noise act 1.

    True when the payload is exactly :data:`NOISE_ACT1_BYTES` long, does not
    open like JSON, TLS, HTTP, SSH or a plaintext Stratum V2 frame, and looks
    random by its counts of printable, zero and distinct bytes.

    NOTE: this is a shape heuristic, not a decoder. The key is built to be
    indistinguishable from random bytes, so any 64 random-looking bytes pass,
    such as the start of another encrypted protocol cut at 64 bytes. Use it
    with the port, the size of the server's reply and endpoint intelligence.
    Raises nothing.
    """
    payload = first_client_payload
    if len(payload) != NOISE_ACT1_BYTES:
        return False
    if payload.startswith(_STRUCTURED_PREFIXES):
        return False
    if parse_setup_connection(payload) is not None:
        return False
    printable = sum(1 for byte in payload if byte in _PRINTABLE)
    return (
        printable <= MAX_PRINTABLE_BYTES
        and payload.count(0) <= MAX_ZERO_BYTES
        and len(set(payload)) >= MIN_DISTINCT_BYTES
    )
