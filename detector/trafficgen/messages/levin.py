"""Monero peer-to-peer handshake over the levin protocol (node to node).

A levin packet is a 33-byte little-endian header (signature, body size,
expect-response flag, command, return code, flags, protocol version) followed
by a body in epee's portable-storage format (monero ``contrib/epee``).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

LEVIN_SIGNATURE = 0x0101010101012101
LEVIN_PROTOCOL_VERSION = 1
PACKET_REQUEST = 1
PACKET_RESPONSE = 2
COMMAND_HANDSHAKE = 1001

STORAGE_SIGNATURE_A = 0x01011101
STORAGE_SIGNATURE_B = 0x01020101
STORAGE_FORMAT_VERSION = 1

# Monero mainnet NETWORK_ID from cryptonote_config.h.
MAINNET_NETWORK_ID = bytes.fromhex("1230f171610441611731008216a1a110")
MAINNET_P2P_PORT = 18080

# Portable-storage type tags.
TYPE_UINT64 = 5
TYPE_UINT32 = 6
TYPE_UINT16 = 7
TYPE_UINT8 = 8
TYPE_STRING = 10
TYPE_OBJECT = 12
ARRAY_FLAG = 0x80


@dataclass(frozen=True, slots=True)
class Typed:
    """A portable-storage integer with its explicit width."""

    tag: int
    value: int


StorageValue = (
    Typed
    | bytes
    | Mapping[str, "StorageValue"]
    | Sequence[Mapping[str, "StorageValue"]]
)

_INTEGER_FORMATS = {
    TYPE_UINT64: "<Q",
    TYPE_UINT32: "<I",
    TYPE_UINT16: "<H",
    TYPE_UINT8: "<B",
}


def packet(body: bytes, command: int, *, is_response: bool) -> bytes:
    """Frame ``body`` with a levin header."""
    header = struct.pack(
        "<QQ?IiII",
        LEVIN_SIGNATURE,
        len(body),
        not is_response,
        command,
        0,
        PACKET_RESPONSE if is_response else PACKET_REQUEST,
        LEVIN_PROTOCOL_VERSION,
    )
    return header + body


def handshake(
    *,
    peer_id: int,
    height: int,
    top_id: bytes,
    cumulative_difficulty: int,
    is_response: bool,
    my_port: int = MAINNET_P2P_PORT,
) -> bytes:
    """Build a COMMAND_HANDSHAKE request or response packet."""
    node_data: dict[str, StorageValue] = {
        "my_port": Typed(TYPE_UINT32, my_port),
        "network_id": MAINNET_NETWORK_ID,
        "peer_id": Typed(TYPE_UINT64, peer_id),
        "rpc_port": Typed(TYPE_UINT16, 0),
        "support_flags": Typed(TYPE_UINT32, 1),
    }
    payload_data: dict[str, StorageValue] = {
        "cumulative_difficulty": Typed(TYPE_UINT64, cumulative_difficulty),
        "cumulative_difficulty_top64": Typed(TYPE_UINT64, 0),
        "current_height": Typed(TYPE_UINT64, height),
        "pruning_seed": Typed(TYPE_UINT32, 0),
        "top_id": top_id,
        "top_version": Typed(TYPE_UINT8, 16),
    }
    root: dict[str, StorageValue] = {
        "node_data": node_data,
        "payload_data": payload_data,
    }
    if is_response:
        root["local_peerlist_new"] = []
    return packet(encode_storage(root), COMMAND_HANDSHAKE, is_response=is_response)


def encode_storage(root: Mapping[str, StorageValue]) -> bytes:
    """Encode ``root`` as a portable-storage document."""
    header = struct.pack(
        "<IIB", STORAGE_SIGNATURE_A, STORAGE_SIGNATURE_B, STORAGE_FORMAT_VERSION
    )
    return header + _section(root)


def _section(entries: Mapping[str, StorageValue]) -> bytes:
    out = bytearray(_varint(len(entries)))
    for name, value in entries.items():
        encoded_name = name.encode("ascii")
        out += bytes([len(encoded_name)]) + encoded_name
        out += _value(value)
    return bytes(out)


def _value(value: StorageValue) -> bytes:
    if isinstance(value, Typed):
        return bytes([value.tag]) + struct.pack(
            _INTEGER_FORMATS[value.tag], value.value
        )
    if isinstance(value, bytes):
        return bytes([TYPE_STRING]) + _varint(len(value)) + value
    if isinstance(value, Mapping):
        return bytes([TYPE_OBJECT]) + _section(value)
    # A sequence of objects: one type tag for the whole array.
    out = bytearray([TYPE_OBJECT | ARRAY_FLAG]) + _varint(len(value))
    for item in value:
        out += _section(item)
    return bytes(out)


def _varint(value: int) -> bytes:
    # epee stores the width in the two low bits: 1, 2, 4 or 8 bytes.
    if value <= 0x3F:
        return struct.pack("<B", value << 2)
    if value <= 0x3FFF:
        return struct.pack("<H", value << 2 | 1)
    if value <= 0x3FFFFFFF:
        return struct.pack("<I", value << 2 | 2)
    return struct.pack("<Q", value << 2 | 3)
