"""TCP stream reassembly for one direction of a flow.

A :class:`StreamReassembler` takes the segments of one direction in capture order
and returns the bytes that became contiguous, in stream order. It is sans-IO: it
keeps no clock and reads no packets, so the caller decides when a flow ends and
calls :meth:`StreamReassembler.flush`.

Policy, in the order it is applied to each segment:

* A SYN sets the initial sequence number, and data starts at ``seq + 1``. A
  stream whose SYN was not seen starts at its first data segment.
* Sequence numbers are compared with serial-number arithmetic (RFC 1982) over
  32 bits, so a stream can run across ``2**32``. Each segment is placed within
  ``2**31`` bytes of the next expected byte, before or after it.
* Bytes before the next expected byte were already delivered or skipped, so they
  are dropped (retransmissions).
* Where a segment overlaps bytes already received, the first bytes received win,
  as in BSD-derived and Linux stacks. A segment whose overlapping bytes differ
  from the bytes already received increments ``conflicting_overlaps``, because
  rewriting stream bytes is a known way to make a monitor see something other
  than what the receiver reads.
* Bytes after a FIN's sequence number are dropped, because a sender cannot send
  data after its FIN.
* Segments after a hole are buffered until the hole fills. When the buffer
  exceeds :data:`MAX_BUFFERED_BYTES` or :data:`MAX_BUFFERED_SEGMENTS`, or on
  :meth:`~StreamReassembler.flush`, the first hole is skipped and counted, and
  the data after it is delivered with ``gap_before`` set.
* After ``depth`` bytes are delivered, the stream stops: further segments are
  dropped and ``depth_reached`` is set.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

SEQUENCE_MODULUS = 1 << 32
_SEQUENCE_MASK = SEQUENCE_MODULUS - 1
_HALF_MODULUS = 1 << 31

# A hole that 32 KiB of later data has not filled is taken as lost (capture loss,
# most often) and skipped. 32 KiB is dozens of Stratum logins or jobs (under 1 KiB
# each) or about ten Equihash submits (2.8 KB each), and about 22 full-size
# Ethernet segments (MSS 1460), more than a retransmission needs to arrive.
# Waiting longer holds back the verdict and costs up to this much memory per
# direction of every flow with a hole.
# NOTE: captures taken on the sending host or on a container bridge can show one
# GSO segment of up to 64 KiB. Such a segment arriving after a hole exceeds this
# limit by itself, so the hole before it is skipped at once.
MAX_BUFFERED_BYTES = 32 * 1024

# Bounds the per-segment bookkeeping when a peer sends many tiny segments out of
# order. 64 covers the 22 full-size segments above with room for small ones.
MAX_BUFFERED_SEGMENTS = 64

# Stream bytes delivered per direction before the stream stops. A flow is judged
# within its first few dozen messages. Stratum logins and jobs are under 1 KiB
# each, but an Equihash (Zcash) submit carries a 1344-byte solution in hex and
# takes about 2.8 KB, so a few dozen submits need about 100 KiB. 256 KiB covers
# that twice over, with room for a TLS handshake or HTTP proxy exchange in front.
# Only the last COMPARED_TAIL_BYTES of delivered bytes are kept, so the depth
# bounds the work spent per flow, not memory.
STREAM_DEPTH = 256 * 1024

# Delivered bytes kept to compare retransmissions against, so that rewriting
# bytes already delivered also counts as a conflicting overlap. A retransmission
# repeats recent segments of at most one MSS (1460 bytes on Ethernet) each, and
# Stratum messages are under 1 KiB, so 2 KiB covers the last segment or two.
COMPARED_TAIL_BYTES = 2048


@dataclass(frozen=True, slots=True)
class StreamData:
    """Bytes that became contiguous in one direction of a TCP flow.

    ``gap_before`` is the number of stream bytes that were skipped just before
    ``data``, because they were never received. When it is above zero, a line
    decoder must drop its partial line and resynchronise.
    """

    data: bytes
    gap_before: int = 0


def sequence_difference(a: int, b: int) -> int:
    """Return ``a - b`` in 32-bit serial-number arithmetic (RFC 1982).

    The result is in ``[-2**31, 2**31)``: positive when ``a`` comes after ``b``.
    """
    return ((a - b + _HALF_MODULUS) & _SEQUENCE_MASK) - _HALF_MODULUS


class StreamReassembler:
    """Reassemble one direction of a TCP flow by sequence number.

    Counters, all for this direction: ``delivered`` (bytes returned), ``gaps``
    and ``gap_bytes`` (holes skipped and their total size),
    ``conflicting_overlaps`` (segments whose bytes differed from bytes already
    received) and ``depth_reached`` (True once ``depth`` bytes were delivered).

    Raises:
        ValueError: from the constructor, when ``depth`` is negative.
    """

    __slots__ = (
        "depth",
        "delivered",
        "gaps",
        "gap_bytes",
        "conflicting_overlaps",
        "depth_reached",
        "_next_seq",
        "_offset",
        "_pending",
        "_buffered",
        "_tail",
        "_fin_offset",
    )

    def __init__(self, depth: int = STREAM_DEPTH) -> None:
        if depth < 0:
            raise ValueError(f"invalid stream depth {depth}: must be 0 or more")
        self.depth = depth
        self.delivered = 0
        self.gaps = 0
        self.gap_bytes = 0
        self.conflicting_overlaps = 0
        self.depth_reached = False
        # Sequence number of the next expected byte, None until the stream starts.
        self._next_seq: int | None = None
        # Stream offset of the next expected byte: delivered plus skipped bytes.
        # Offsets are unbounded integers, so buffered segments need no wrap-around.
        self._offset = 0
        # Out-of-order pieces as (stream offset, bytes), sorted, non-overlapping,
        # each starting after self._offset.
        self._pending: list[tuple[int, bytes]] = []
        self._buffered = 0
        # The last delivered bytes, ending at self._offset.
        self._tail = b""
        self._fin_offset: int | None = None

    @property
    def started(self) -> bool:
        """Whether the stream has a start, from a SYN or a first data segment."""
        return self._next_seq is not None

    @property
    def finished(self) -> bool:
        """Whether a FIN was seen and every byte before it delivered or skipped."""
        return self._fin_offset is not None and self._offset >= self._fin_offset

    @property
    def buffered_bytes(self) -> int:
        """Out-of-order bytes held until the hole before them fills."""
        return self._buffered

    @property
    def next_seq(self) -> int | None:
        """Sequence number of the next expected byte, or None before the start."""
        return self._next_seq

    def add(
        self, seq: int, payload: bytes, syn: bool = False, fin: bool = False
    ) -> list[StreamData]:
        """Take one segment and return the bytes it made contiguous, in order.

        ``seq`` is the segment's 32-bit sequence number. ``syn`` and ``fin`` are
        its SYN and FIN flags. The list is empty when the segment was a
        retransmission, was buffered, carried no data, or came after the depth
        limit. Raises nothing.
        """
        if (
            seq == self._next_seq
            and not syn
            and not fin
            and not self._pending
            and self._fin_offset is None
        ):
            # The common case: the next bytes in order, with nothing buffered.
            size = len(payload)
            if size == 0 or self.depth_reached:
                return []
            if self.delivered + size < self.depth:
                self._next_seq = (seq + size) & _SEQUENCE_MASK
                self._offset += size
                self.delivered += size
                self._tail = (
                    payload
                    if size <= COMPARED_TAIL_BYTES
                    else payload[-COMPARED_TAIL_BYTES:]
                )
                return [StreamData(payload)]
        return self._add_slow(seq & _SEQUENCE_MASK, payload, syn, fin)

    def flush(self) -> list[StreamData]:
        """Deliver everything buffered, skipping the holes between, and return it.

        Call it when the direction ends (FIN or RST) or the flow is removed. The
        reassembler stays usable, and later bytes before the new position are
        dropped as retransmissions. Raises nothing.
        """
        delivered: list[StreamData] = []
        while self._pending and not self.depth_reached:
            delivered.extend(self._skip_hole())
        return delivered

    def _add_slow(
        self, seq: int, payload: bytes, syn: bool, fin: bool
    ) -> list[StreamData]:
        if self.depth_reached:
            return []
        start = self._stream_offset(seq, payload, syn)
        if start is None:
            return []
        end = start + len(payload)
        if fin and self._fin_offset is None:
            self._fin_offset = end
        if self._fin_offset is not None and end > self._fin_offset:
            end = max(start, self._fin_offset)
            payload = payload[: end - start]

        conflict = self._differs_from_tail(start, payload)
        if end <= self._offset or start >= end:
            if conflict:
                self.conflicting_overlaps += 1
            return []
        if start < self._offset:
            payload = payload[self._offset - start :]
            start = self._offset
        if self._insert(start, payload) or conflict:
            self.conflicting_overlaps += 1

        delivered = self._drain(0)
        while self._pending and (
            self._buffered > MAX_BUFFERED_BYTES
            or len(self._pending) > MAX_BUFFERED_SEGMENTS
        ):
            delivered.extend(self._skip_hole())
        return delivered

    def _stream_offset(self, seq: int, payload: bytes, syn: bool) -> int | None:
        """Return the stream offset of the segment's first data byte.

        Starts the stream when this is its SYN or its first data segment, and
        returns None when the stream has not started and nothing starts it.
        """
        if syn:
            seq = (seq + 1) & _SEQUENCE_MASK
            if self._next_seq is None:
                self._next_seq = seq
        if self._next_seq is None:
            if not payload:
                return None
            # NOTE: a stream without a SYN starts at the first data segment seen,
            # so data from before it that arrives later is dropped as old.
            self._next_seq = seq
        return self._offset + sequence_difference(seq, self._next_seq)

    def _differs_from_tail(self, start: int, payload: bytes) -> bool:
        """Return whether ``payload`` rewrites delivered bytes still in the tail."""
        tail_start = self._offset - len(self._tail)
        low = max(start, tail_start)
        high = min(start + len(payload), self._offset)
        if low >= high:
            return False
        return (
            payload[low - start : high - start]
            != self._tail[low - tail_start : high - tail_start]
        )

    def _insert(self, start: int, payload: bytes) -> bool:
        """Buffer the parts of ``payload`` that no buffered piece covers yet.

        Returns whether ``payload`` differs from a buffered piece it overlaps.
        """
        end = start + len(payload)
        pending = self._pending
        index = bisect.bisect_left(pending, start, key=_piece_start)
        if index > 0:
            # The piece before may reach into this segment.
            index -= 1
        pieces: list[tuple[int, bytes]] = []
        cursor = start
        conflict = False
        for piece_start, piece in pending[index:]:
            piece_end = piece_start + len(piece)
            if piece_end <= cursor:
                continue
            if piece_start >= end:
                break
            if piece_start > cursor:
                pieces.append((cursor, payload[cursor - start : piece_start - start]))
                cursor = piece_start
            high = min(piece_end, end)
            if (
                payload[cursor - start : high - start]
                != piece[cursor - piece_start : high - piece_start]
            ):
                conflict = True
            cursor = high
            if cursor >= end:
                break
        if cursor < end:
            pieces.append((cursor, payload[cursor - start :]))
        for piece_start, piece in pieces:
            bisect.insort(pending, (piece_start, piece), key=_piece_start)
            self._buffered += len(piece)
        return conflict

    def _drain(self, gap_before: int) -> list[StreamData]:
        """Deliver the buffered pieces that start at the next expected byte."""
        pending = self._pending
        if not pending or pending[0][0] != self._offset:
            return []
        chunks: list[bytes] = []
        offset = self._offset
        while pending and pending[0][0] == offset:
            piece = pending.pop(0)[1]
            chunks.append(piece)
            offset += len(piece)
            self._buffered -= len(piece)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self._deliver(data, gap_before)

    def _skip_hole(self) -> list[StreamData]:
        """Skip the hole before the first buffered piece and deliver what follows."""
        gap = self._pending[0][0] - self._offset
        self.gaps += 1
        self.gap_bytes += gap
        self._advance(gap)
        self._tail = b""
        return self._drain(gap)

    def _deliver(self, data: bytes, gap_before: int) -> list[StreamData]:
        room = self.depth - self.delivered
        if len(data) >= room:
            data = data[:room]
            self.depth_reached = True
            self._pending.clear()
            self._buffered = 0
        self._advance(len(data))
        self.delivered += len(data)
        self._tail = (
            data if len(data) <= COMPARED_TAIL_BYTES else data[-COMPARED_TAIL_BYTES:]
        )
        if not data:
            return []
        return [StreamData(data, gap_before)]

    def _advance(self, size: int) -> None:
        assert self._next_seq is not None
        self._next_seq = (self._next_seq + size) & _SEQUENCE_MASK
        self._offset += size


def _piece_start(piece: tuple[int, bytes]) -> int:
    return piece[0]
