"""DNS queries and answers for A records (RFC 1035), built by hand."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

TYPE_A = 1
CLASS_IN = 1
FLAGS_QUERY = 0x0100  # recursion desired
FLAGS_RESPONSE = 0x8180  # response, recursion desired and available, no error
# Pointer to the question name, which always starts right after the header.
NAME_POINTER = 0xC00C


def query(transaction_id: int, name: str) -> bytes:
    """Build a recursive query for the A records of ``name``."""
    header = struct.pack(">HHHHHH", transaction_id, FLAGS_QUERY, 1, 0, 0, 0)
    return header + _question(name)


def response(
    transaction_id: int, name: str, addresses: Sequence[str], ttl: int = 300
) -> bytes:
    """Build the answer to :func:`query` with one A record per address."""
    return response_records(
        transaction_id, name, [(name, address) for address in addresses], ttl
    )


def response_records(
    transaction_id: int,
    name: str,
    records: Sequence[tuple[str, str]],
    ttl: int = 300,
) -> bytes:
    """Build the answer to a query for ``name`` with one A record per
    ``(owner name, address)`` pair.

    An owner name other than ``name`` is written in full: an answer that
    names hosts the question did not ask for. Raises ValueError for an
    invalid label or address.
    """
    header = struct.pack(
        ">HHHHHH", transaction_id, FLAGS_RESPONSE, 1, len(records), 0, 0
    )
    answers = b""
    for owner, address in records:
        packed = ipaddress.IPv4Address(address).packed
        owner_field = struct.pack(">H", NAME_POINTER) if owner == name else _name(owner)
        answers += owner_field + struct.pack(">HHIH", TYPE_A, CLASS_IN, ttl, 4)
        answers += packed
    return header + _question(name) + answers


def _question(name: str) -> bytes:
    return _name(name) + struct.pack(">HH", TYPE_A, CLASS_IN)


def _name(name: str) -> bytes:
    encoded = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"invalid DNS label {label!r} in {name!r}")
        encoded += bytes([len(raw)]) + raw
    return encoded + b"\0"
