"""Bitcoin peer-to-peer messages (node to node, not mining).

Every message has a 24-byte header: network magic, a 12-byte NUL-padded
command, the payload length and the first 4 bytes of the payload's double
SHA-256. Integers are little-endian except ports, which are big-endian.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct

MAINNET_MAGIC = bytes.fromhex("f9beb4d9")
PROTOCOL_VERSION = 70016
# NODE_NETWORK | NODE_WITNESS | NODE_NETWORK_LIMITED
NODE_SERVICES = 0x01 | 0x08 | 0x400
COMMAND_LENGTH = 12


def message(command: str, payload: bytes, magic: bytes = MAINNET_MAGIC) -> bytes:
    """Frame ``payload`` with the message header."""
    name = command.encode("ascii")
    if len(name) > COMMAND_LENGTH:
        raise ValueError(f"command {command!r} is longer than {COMMAND_LENGTH} bytes")
    checksum = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    header = magic + name.ljust(COMMAND_LENGTH, b"\0")
    return header + struct.pack("<I", len(payload)) + checksum + payload


def version(
    *,
    timestamp: int,
    receiver: tuple[str, int],
    sender: tuple[str, int],
    nonce: int,
    user_agent: str,
    start_height: int,
    services: int = NODE_SERVICES,
) -> bytes:
    """Build a ``version`` message announcing a node to its peer."""
    agent = user_agent.encode("ascii")
    if len(agent) >= 0xFD:
        raise ValueError("user agent needs a multi-byte length prefix")
    payload = struct.pack("<iQq", PROTOCOL_VERSION, services, timestamp)
    payload += _network_address(services, *receiver)
    payload += _network_address(services, *sender)
    payload += struct.pack("<Q", nonce)
    payload += bytes([len(agent)]) + agent
    payload += struct.pack("<i?", start_height, True)
    return message("version", payload)


def verack() -> bytes:
    """Build ``verack``, the empty acknowledgement of a ``version``."""
    return message("verack", b"")


def _network_address(services: int, ip: str, port: int) -> bytes:
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv4Address):
        packed = ipaddress.IPv6Address(f"::ffff:{address}").packed
    else:
        packed = address.packed
    return struct.pack("<Q", services) + packed + struct.pack(">H", port)
