"""A passive DNS cache: which names pointed at an address, and when.

DNS answers seen on the wire are remembered so that a later flow to one of the
answered addresses can be named: a TLS session to 203.0.113.7 becomes a session
to pool.example once a DNS answer mapped that name to that address. The cache
holds no clock of its own; every call carries the packet time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

# Addresses remembered at once. A host resolves a few thousand distinct names
# an hour; beyond this the least recently answered address is forgotten.
MAX_ADDRESSES = 65536

# Names kept per address. CDN addresses serve many names; the most recent
# ones are the likely targets of the next flow.
MAX_NAMES_PER_ADDRESS = 8

# Applications keep using an answer after its TTL runs out (connection pools,
# stratum reconnects to a cached address), so a name stays valid this long
# past its TTL.
TTL_GRACE_SECONDS = 3600.0

# A TTL above this is treated as this: a week-long TTL would keep a stale name
# attached to an address long after it moved.
MAX_TTL_SECONDS = 86400.0


@dataclass(slots=True)
class NameRecord:
    """One name answered for an address, with the time window it is valid."""

    name: str
    first_seen: float
    last_seen: float
    expires: float


class PassiveDnsCache:
    """Map addresses to the names DNS answers gave them, with TTL and time."""

    def __init__(self, max_addresses: int = MAX_ADDRESSES) -> None:
        self.max_addresses = max_addresses
        self._records: OrderedDict[str, list[NameRecord]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def add(self, address: str, names: list[str], ttl: float, timestamp: float) -> None:
        """Remember that ``names`` (query name first, then CNAMEs) resolved to
        ``address`` at ``timestamp`` with ``ttl`` seconds to live."""
        expires = timestamp + min(max(ttl, 0.0), MAX_TTL_SECONDS) + TTL_GRACE_SECONDS
        records = self._records.pop(address, None)
        if records is None:
            records = []
            if len(self._records) >= self.max_addresses:
                self._records.popitem(last=False)
        for name in names:
            for record in records:
                if record.name == name:
                    record.last_seen = timestamp
                    record.expires = max(record.expires, expires)
                    break
            else:
                records.append(NameRecord(name, timestamp, timestamp, expires))
        records.sort(key=lambda record: record.last_seen, reverse=True)
        del records[MAX_NAMES_PER_ADDRESS:]
        self._records[address] = records

    def names(self, address: str, timestamp: float) -> list[str]:
        """Return the names valid for ``address`` at ``timestamp``, newest first.

        An answer counts from when it was seen until its TTL plus a grace
        period has passed; an answer seen after ``timestamp`` does not count.
        """
        records = self._records.get(address)
        if not records:
            return []
        return [
            record.name
            for record in records
            if record.first_seen <= timestamp <= record.expires
        ]
