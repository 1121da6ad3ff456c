"""Reassembly of IPv4 and IPv6 fragments.

Fragments of one datagram form a fragment set, keyed by the caller: source,
destination, protocol and identification for IPv4 (RFC 791), source,
destination and identification for IPv6 (RFC 8200). Offsets count payload bytes
after the IP header (IPv4) or after the fragment header (IPv6).

Overlap policy, as in Linux since 4.19 and as RFC 5722 requires for IPv6: a
fragment that repeats an earlier one byte for byte is ignored, and any other
overlap discards the whole set. Overlapping fragments are a known way to show a
monitor different bytes than the receiving host reassembles, so the detector
refuses to pick either version.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Hashable
from dataclasses import dataclass, field

from detector.errors import DecodeError

# Seconds from the first fragment of a set until the set is dropped, measured
# in packet timestamps. Linux uses 30 s (net.ipv4.ipfrag_time default).
FRAGMENT_TIMEOUT = 30.0

# Bytes of fragment payload kept at once. Linux keeps at most 4 MiB per network
# namespace (net.ipv4.ipfrag_high_thresh default), so a Linux receiver cannot
# have reassembled more than this either.
MAX_FRAGMENT_BYTES = 4 * 1024 * 1024

# Fragment sets held at once. The byte limit does not count the bookkeeping of
# each set, so a flood of one-byte fragments with distinct identifications
# would otherwise grow without bound.
MAX_FRAGMENT_SETS = 4096

# The IPv4 total length and IPv6 payload length fields are 16 bits, so no
# reassembled payload can end beyond this offset.
MAX_DATAGRAM_LENGTH = 65535


@dataclass(slots=True)
class _FragmentSet:
    first_seen: float
    offsets: list[int] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    size: int = 0
    total: int | None = None
    protocol: int = -1


class FragmentReassembler:
    """Pending fragment sets, completed into whole datagram payloads.

    ``expired`` counts the sets dropped because they timed out or because a
    limit made room for newer ones. ``next_expiry`` is a packet timestamp no
    later than the oldest set's timeout, or infinity when no set is pending,
    so the caller can skip :meth:`expire` until a packet reaches it.
    """

    def __init__(self) -> None:
        self._sets: dict[Hashable, _FragmentSet] = {}
        self._bytes = 0
        self.expired = 0
        self.next_expiry = math.inf

    @property
    def pending(self) -> int:
        """Number of fragment sets waiting for more fragments."""
        return len(self._sets)

    def expire(self, now: float) -> None:
        """Drop the sets whose first fragment is FRAGMENT_TIMEOUT older than ``now``.

        Sets are checked in the order they were created, so with timestamps
        that go backwards a later set may outlive its timeout until the sets
        created before it are gone.
        """
        while self._sets:
            key, fragment_set = next(iter(self._sets.items()))
            if fragment_set.first_seen + FRAGMENT_TIMEOUT > now:
                self.next_expiry = fragment_set.first_seen + FRAGMENT_TIMEOUT
                return
            self._drop(key)
            self.expired += 1
        self.next_expiry = math.inf

    def add(
        self,
        key: Hashable,
        now: float,
        offset: int,
        more: bool,
        data: bytes,
        declared_length: int,
        protocol: int,
    ) -> tuple[int, bytes] | None:
        """Add one fragment and return ``(protocol, payload)`` once the set is whole.

        ``data`` is the captured fragment payload and ``declared_length`` its
        length by the IP header. The declared length is larger when the snap
        length cut the packet, and then the gap makes the set time out. ``protocol``
        is the next protocol the fragment names. The one in the fragment at
        offset 0 is returned, as RFC 8200 requires for IPv6.

        Raises:
            DecodeError: the fragment ends beyond 65535 bytes, overlaps an
                earlier fragment of its set with different bytes, or
                contradicts the set's length. The set is discarded.
        """
        end = offset + declared_length
        if end > MAX_DATAGRAM_LENGTH:
            self._discard(key)
            raise DecodeError(
                f"IP fragment at offset {offset} ends at {end}, beyond the maximum"
                f" datagram length {MAX_DATAGRAM_LENGTH}"
            )
        self._make_room(key, len(data))
        fragment_set = self._sets.get(key)
        if fragment_set is None:
            fragment_set = _FragmentSet(now)
            self._sets[key] = fragment_set
            if len(self._sets) == 1:
                self.next_expiry = now + FRAGMENT_TIMEOUT
        if offset == 0 or fragment_set.protocol < 0:
            fragment_set.protocol = protocol
        if not more:
            self._set_total(key, fragment_set, end)
        elif fragment_set.total is not None and end > fragment_set.total:
            self._discard(key)
            raise DecodeError(
                f"IP fragment at offset {offset} ends at {end}, beyond the end"
                f" {fragment_set.total} set by the last fragment"
            )
        if data and not self._insert(key, fragment_set, offset, data):
            return None
        if fragment_set.total is None or fragment_set.size != fragment_set.total:
            return None
        # The pieces are disjoint and lie within [0, total), so a size equal to
        # the total means they cover the whole payload.
        self._drop(key)
        return fragment_set.protocol, b"".join(fragment_set.pieces)

    def _set_total(self, key: Hashable, fragment_set: _FragmentSet, end: int) -> None:
        if fragment_set.total is not None and fragment_set.total != end:
            total = fragment_set.total
            self._discard(key)
            raise DecodeError(
                f"IP last fragment ends at {end}, but an earlier last fragment"
                f" of the same datagram ended at {total}"
            )
        if fragment_set.offsets:
            last_end = fragment_set.offsets[-1] + len(fragment_set.pieces[-1])
            if last_end > end:
                self._discard(key)
                raise DecodeError(
                    f"IP last fragment ends at {end}, before the end {last_end} of"
                    " an earlier fragment of the same datagram"
                )
        fragment_set.total = end

    def _insert(
        self, key: Hashable, fragment_set: _FragmentSet, offset: int, data: bytes
    ) -> bool:
        """Insert a piece and return False if it repeats an earlier one."""
        offsets = fragment_set.offsets
        pieces = fragment_set.pieces
        index = bisect.bisect_left(offsets, offset)
        if index < len(offsets) and offsets[index] == offset and pieces[index] == data:
            return False
        end = offset + len(data)
        overlaps = (
            index > 0 and offsets[index - 1] + len(pieces[index - 1]) > offset
        ) or (index < len(offsets) and offsets[index] < end)
        if overlaps:
            self._discard(key)
            raise DecodeError(
                f"IP fragment at offset {offset} (length {len(data)}) overlaps an"
                " earlier fragment of the same datagram with different bytes;"
                " the datagram is discarded"
            )
        offsets.insert(index, offset)
        pieces.insert(index, data)
        fragment_set.size += len(data)
        self._bytes += len(data)
        return True

    def _make_room(self, key: Hashable, size: int) -> None:
        """Drop the oldest sets until ``size`` more bytes and one more set fit."""
        while self._sets and (
            self._bytes + size > MAX_FRAGMENT_BYTES
            or (key not in self._sets and len(self._sets) >= MAX_FRAGMENT_SETS)
        ):
            self._drop(next(iter(self._sets)))
            self.expired += 1
        if not self._sets:
            self.next_expiry = math.inf

    def _discard(self, key: Hashable) -> None:
        if key in self._sets:
            self._drop(key)

    def _drop(self, key: Hashable) -> None:
        fragment_set = self._sets.pop(key)
        self._bytes -= fragment_set.size
        if not self._sets:
            self.next_expiry = math.inf
