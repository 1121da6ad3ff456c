"""The flow table for batches of segments: counters from arrays, then triage.

:class:`BatchFlowTable` keeps the same flows as
:class:`~detector.flows.table.FlowTable` fed the same segments one by one: the
same roles, counters, times, evictions and expiries. It differs in how it
stores them and in what it requires of its caller:

* Every flow has a slot in numpy arrays that hold its counters, times and
  state bits, and an entry in one ordered dict from its key (bytes) to the
  slot, least recently seen first. A flow that has carried no payload (a SYN
  flood, a port scan) has nothing more, a few hundred bytes in all. It gets a
  full :class:`~detector.flows.table.Flow` only when
  :meth:`BatchFlowTable.promote` is called, on its first payload.
* :meth:`BatchFlowTable.process` counts a whole batch with numpy and then
  calls back only for the segments that still need inspection: payload, and
  the SYN, FIN and RST that reassembly needs, of flows that are not judged.
  Pure ACKs, and every packet of a judged flow, are never handled one by one.

Segments are handled one by one, in order, only where order decides the
outcome: a 5-tuple reused after its flow closed, a flow whose two endpoints
are the same, or a batch whose new flows would push out flows that the batch
itself touches.
"""

from __future__ import annotations

import functools
import itertools
import logging
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# np.unique imports numpy.ma the first time it runs. Importing it here keeps
# that one-off cost out of the first batch of a scan.
import numpy.ma  # noqa: F401
from numpy.typing import NDArray

from detector.decode.batch import SegmentBatch
from detector.decode.decoder import IPPROTO_TCP, IPPROTO_UDP
from detector.flows.reassembly import STREAM_DEPTH
from detector.flows.table import (
    EPHEMERAL_PORTS_START,
    IDLE_TIMEOUT,
    MAX_FLOWS,
    WELL_KNOWN_PORTS_END,
    Flow,
    check_table_limits,
)
from detector.model import ACK, FIN, RST, SYN, TCP, UDP, Direction, FlowKey

logger = logging.getLogger(__name__)

# State bits of a slot.
CLIENT_IS_LOW = 1 << 0  # the client is the lower endpoint of the key
HANDSHAKE_SEEN = 1 << 1  # opened by a SYN or SYN+ACK
FIN_FROM_CLIENT = 1 << 2
FIN_FROM_SERVER = 1 << 3
CLOSED = 1 << 4  # an RST, or a FIN from each side
SYN_TO_SERVER = 1 << 5  # the sequence number of a SYN to the server is kept
SYN_TO_CLIENT = 1 << 6
PROMOTED = 1 << 7  # the flow has a Flow object
JUDGED = 1 << 8  # nothing of the flow needs inspection any more
DONE_TO_SERVER = 1 << 9  # the stream to the server reached its depth
DONE_TO_CLIENT = 1 << 10
_FIN_FROM_BOTH = FIN_FROM_CLIENT | FIN_FROM_SERVER

# Addresses whose text is cached. Flows share their hosts (a pool, a DNS
# server, a container), so caching saves the conversion and makes their keys
# share one string; 65536 entries take about 8 MiB at most.
ADDRESS_TEXT_CACHE = 65536

# Slots the arrays start with. When full they grow by half, up to max_flows:
# doubling would leave up to half of a large table's slots unused, and a copy
# of the arrays costs little next to making the flows that filled them.
INITIAL_SLOTS = 1024

# Flows whose counters flush_all copies at once: enough that the copy costs
# a few array reads per thousand flows, few enough that the lists it makes
# stay within a megabyte.
FILL_CHUNK = 4096

# TCP and UDP ports are 16-bit.
_PORT_VALUES = 1 << 16

# Columns of the per-direction arrays.
_TO_SERVER = 0
_TO_CLIENT = 1

# Called with a segment's row in the batch, its flow's slot, and whether it
# travels to the server.
InspectCallback = Callable[[int, int, bool], None]
# Called with flows that left the table and must be judged.
FinishCallback = Callable[[list[Flow]], None]

BoolArray = NDArray[np.bool_]
Int64Array = NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class FlowKeys:
    """The flow keys of a batch's segments.

    A key is the protocol number, then the lower endpoint, then the higher one,
    each endpoint the address and the port in network byte order, so both
    directions of a flow share it. ``keys`` lists each distinct key once, and
    segment ``i`` has key ``keys[key_ids[i]]``; ``first_rows`` gives the first
    segment of each distinct key. ``source_is_low`` is True where a segment
    was sent by the lower endpoint, and ``same_endpoints`` where a segment was
    sent to its own address and port.
    """

    keys: list[bytes]
    key_ids: Int64Array
    first_rows: Int64Array
    source_is_low: BoolArray
    same_endpoints: BoolArray

    def key(self, index: int) -> bytes:
        """Return the key of segment ``index``."""
        return self.keys[int(self.key_ids[index])]


def flow_keys(segments: SegmentBatch) -> FlowKeys:
    """Return the keys of the segments of ``segments``.

    Only distinct keys become bytes objects: most segments of a batch belong
    to a flow seen earlier in it, and one object per segment would leave the
    flow table's long-lived keys scattered among freed ones.
    """
    count = len(segments)
    keys: list[bytes] = []
    key_ids = np.zeros(count, dtype=np.int64)
    first_rows: list[Int64Array] = []
    source_is_low = np.zeros(count, dtype=np.bool_)
    same = np.zeros(count, dtype=np.bool_)
    for version, width in ((4, 4), (6, 16)):
        rows = np.flatnonzero(segments.ip_versions == version)
        if not len(rows):
            continue
        source = _endpoints(
            segments.source_addresses[rows, :width], segments.source_ports[rows]
        )
        destination = _endpoints(
            segments.destination_addresses[rows, :width],
            segments.destination_ports[rows],
        )
        differ = source != destination
        first = differ.argmax(axis=1)
        picked = np.arange(len(rows))
        equal = ~differ.any(axis=1)
        low = equal | (source[picked, first] < destination[picked, first])
        lower = np.where(low[:, None], source, destination)
        higher = np.where(low[:, None], destination, source)
        protocol = segments.transports[rows].astype(np.uint8)[:, None]
        packed = np.ascontiguousarray(np.hstack([protocol, lower, higher]))
        distinct, first_found, inverse = np.unique(
            packed.view(f"V{packed.shape[1]}").ravel(),
            return_index=True,
            return_inverse=True,
        )
        key_ids[rows] = len(keys) + inverse.ravel()
        keys.extend(distinct.tolist())
        first_rows.append(rows[first_found])
        source_is_low[rows] = low
        same[rows] = equal
    firsts = np.concatenate(first_rows) if first_rows else np.zeros(0, np.int64)
    return FlowKeys(keys, key_ids, firsts, source_is_low, same)


def _endpoints(addresses: NDArray[np.uint8], ports: Int64Array) -> NDArray[np.uint8]:
    port_bytes = np.stack([ports >> 8, ports & 0xFF], axis=1).astype(np.uint8)
    return np.hstack([addresses, port_bytes])


def key_text(key: bytes, client_is_low: bool) -> FlowKey:
    """Return the :class:`FlowKey` of ``key``, oriented from client to server."""
    width = (len(key) - 1) // 2
    low = key[1 : 1 + width]
    high = key[1 + width :]
    client, server = (low, high) if client_is_low else (high, low)
    transport = TCP if key[0] == IPPROTO_TCP else UDP
    return FlowKey(
        transport,
        _address_text(client[:-2]),
        int.from_bytes(client[-2:], "big"),
        _address_text(server[:-2]),
        int.from_bytes(server[-2:], "big"),
    )


def key_bytes(flow: FlowKey) -> bytes:
    """Return the key :func:`flow_keys` gives the segments of ``flow``: the
    inverse of :func:`key_text`."""
    protocol = IPPROTO_TCP if flow.transport == TCP else IPPROTO_UDP
    client = _packed_address(flow.client_ip) + flow.client_port.to_bytes(2, "big")
    server = _packed_address(flow.server_ip) + flow.server_port.to_bytes(2, "big")
    low, high = (client, server) if client <= server else (server, client)
    return bytes([protocol]) + low + high


def _packed_address(text: str) -> bytes:
    if ":" in text:
        return socket.inet_pton(socket.AF_INET6, text)
    return socket.inet_aton(text)


@functools.lru_cache(maxsize=ADDRESS_TEXT_CACHE)
def _address_text(packed: bytes) -> str:
    if len(packed) == 4:
        return socket.inet_ntoa(packed)
    return socket.inet_ntop(socket.AF_INET6, packed)


class BatchFlowTable:
    """Flows by key, least recently seen first, at most ``max_flows``.

    Roles, counters, closing, reuse of a closed 5-tuple, eviction and expiry
    follow :class:`~detector.flows.table.FlowTable` exactly (see its
    docstring). A flow is pinned when its Flow object's ``pinned`` is set.

    A promoted flow's counters live in the table's arrays while it is in the
    table. They are copied to its :class:`Flow` when the table gives it back
    through ``finish``, :meth:`expire` or :meth:`flush_all`.

    Raises:
        ValueError: from the constructor, when ``max_flows`` is below 1 or
            ``idle_timeout`` is not positive.
    """

    def __init__(
        self,
        max_flows: int = MAX_FLOWS,
        idle_timeout: float = IDLE_TIMEOUT,
        server_ports: frozenset[int] = frozenset(),
        stream_depth: int = STREAM_DEPTH,
    ) -> None:
        check_table_limits(max_flows, idle_timeout)
        self.max_flows = max_flows
        self.idle_timeout = idle_timeout
        self.server_ports = server_ports
        self.stream_depth = stream_depth
        self.evictions = 0
        self.pinned_evictions = 0
        self._server_port_table = np.zeros(_PORT_VALUES, dtype=np.bool_)
        self.set_server_ports(server_ports)
        self._index: OrderedDict[bytes, int] = OrderedDict()
        self._flows: dict[int, Flow] = {}
        self._evicted: list[Flow] = []
        self._free: list[int] = []
        self._used = 0
        # Slots, and directions as 2 * slot + column, whose inspection
        # stopped during the batch being processed.
        self._stopped: set[int] = set()
        self._stopped_directions: set[int] = set()
        self._allocate_arrays(min(INITIAL_SLOTS, max_flows))

    def __len__(self) -> int:
        return len(self._index)

    def set_server_ports(self, server_ports: frozenset[int]) -> None:
        """Use ``server_ports`` for the roles of flows created from now on
        (signatures reloaded while a live capture runs)."""
        self.server_ports = server_ports
        self._server_port_table[:] = False
        self._server_port_table[sorted(server_ports)] = True

    # -- slots ---------------------------------------------------------------

    def _allocate_arrays(self, capacity: int) -> None:
        # 56 bytes a slot: times, counters of a flow that may run for days,
        # 32-bit sequence numbers and the state bits.
        self._first_seen = np.zeros(capacity, dtype=np.float64)
        self._last_seen = np.zeros(capacity, dtype=np.float64)
        self._packets = np.zeros((capacity, 2), dtype=np.int64)
        self._bytes = np.zeros((capacity, 2), dtype=np.int64)
        self._syn_seqs = np.zeros((capacity, 2), dtype=np.uint32)
        self._state = np.zeros(capacity, dtype=np.int32)

    def _grow(self, needed: int) -> None:
        capacity = len(self._state)
        if needed <= capacity:
            return
        new_capacity = max(needed, min(capacity + capacity // 2, self.max_flows))
        for name in (
            "_first_seen",
            "_last_seen",
            "_packets",
            "_bytes",
            "_syn_seqs",
            "_state",
        ):
            old = getattr(self, name)
            new = np.zeros((new_capacity, *old.shape[1:]), dtype=old.dtype)
            new[:capacity] = old
            setattr(self, name, new)

    def _take_slots(self, count: int) -> Int64Array:
        reused = min(count, len(self._free))
        slots = np.empty(count, dtype=np.int64)
        if reused:
            slots[:reused] = self._free[-reused:]
            del self._free[-reused:]
        fresh = count - reused
        if fresh:
            self._grow(self._used + fresh)
            slots[reused:] = np.arange(self._used, self._used + fresh)
            self._used += fresh
        return slots

    def _release(self, slot: int) -> Flow | None:
        """Free ``slot`` and return its Flow, its counters filled in, if any."""
        self._stopped.discard(slot)
        self._stopped_directions.discard(2 * slot + _TO_SERVER)
        self._stopped_directions.discard(2 * slot + _TO_CLIENT)
        flow = self._flows.pop(slot, None)
        if flow is not None:
            self._fill(slot, flow)
        self._state[slot] = 0
        self._free.append(slot)
        return flow

    def _fill(self, slot: int, flow: Flow) -> None:
        state = int(self._state[slot])
        flow.first_seen = float(self._first_seen[slot])
        flow.last_seen = float(self._last_seen[slot])
        packets = self._packets[slot].tolist()
        sizes = self._bytes[slot].tolist()
        flow.packets_to_server = packets[_TO_SERVER]
        flow.packets_to_client = packets[_TO_CLIENT]
        flow.bytes_to_server = sizes[_TO_SERVER]
        flow.bytes_to_client = sizes[_TO_CLIENT]
        flow.closed = bool(state & CLOSED)
        flow.handshake_seen = bool(state & HANDSHAKE_SEEN)

    def _fill_many(self, slots: list[int], flows: list[Flow]) -> None:
        """Fill in the counters of many Flows at once, as _fill does."""
        index = np.array(slots, dtype=np.int64)
        columns = zip(
            flows,
            self._first_seen[index].tolist(),
            self._last_seen[index].tolist(),
            self._packets[index].tolist(),
            self._bytes[index].tolist(),
            self._state[index].tolist(),
            strict=True,
        )
        for flow, first_seen, last_seen, packets, sizes, state in columns:
            flow.first_seen = first_seen
            flow.last_seen = last_seen
            flow.packets_to_server = packets[_TO_SERVER]
            flow.packets_to_client = packets[_TO_CLIENT]
            flow.bytes_to_server = sizes[_TO_SERVER]
            flow.bytes_to_client = sizes[_TO_CLIENT]
            flow.closed = bool(state & CLOSED)
            flow.handshake_seen = bool(state & HANDSHAKE_SEEN)

    def _pinned(self, slot: int) -> bool:
        flow = self._flows.get(slot)
        return flow is not None and flow.pinned

    # -- the caller's side of triage ---------------------------------------------

    def flow(self, slot: int) -> Flow | None:
        """Return the Flow of a promoted flow, or None for a flow without one."""
        return self._flows.get(slot)

    def refresh(self, slot: int) -> Flow | None:
        """Copy the counters of the flow in ``slot`` to its Flow, while it is
        still in the table, and return the Flow (None for a flow without one)."""
        flow = self._flows.get(slot)
        if flow is not None:
            self._fill(slot, flow)
        return flow

    def promote(self, slot: int, key: bytes) -> Flow:
        """Give the flow in ``slot``, whose key is ``key``, a :class:`Flow`.

        The SYNs seen so far set the initial sequence numbers of its streams,
        as they would have if the Flow had existed from the start.
        """
        state = int(self._state[slot])
        flow = Flow(
            key_text(key, bool(state & CLIENT_IS_LOW)),
            float(self._first_seen[slot]),
            self.stream_depth,
        )
        flow.handshake_seen = bool(state & HANDSHAKE_SEEN)
        syn_seqs = self._syn_seqs[slot].tolist()
        if state & SYN_TO_SERVER:
            flow.stream(Direction.TO_SERVER).add(syn_seqs[_TO_SERVER], b"", syn=True)
        if state & SYN_TO_CLIENT:
            flow.stream(Direction.TO_CLIENT).add(syn_seqs[_TO_CLIENT], b"", syn=True)
        self._flows[slot] = flow
        self._state[slot] = state | PROMOTED
        return flow

    def note_syn(self, slot: int, to_server: bool, seq: int) -> None:
        """Keep the sequence number of a SYN without payload of a flow without
        a Flow, unless one was kept for its direction already."""
        bit = SYN_TO_SERVER if to_server else SYN_TO_CLIENT
        state = int(self._state[slot])
        if not state & bit:
            self._syn_seqs[slot, _TO_SERVER if to_server else _TO_CLIENT] = seq
            self._state[slot] = state | bit

    def mark_judged(self, slot: int) -> None:
        """Stop calling back for the flow's segments: it needs no inspection."""
        self._stopped.add(slot)

    def mark_done(self, slot: int, to_server: bool) -> None:
        """Stop calling back for one direction of a TCP flow: its stream
        reached its depth, so its segments change nothing."""
        self._stopped_directions.add(
            2 * slot + (_TO_SERVER if to_server else _TO_CLIENT)
        )

    def _apply_stops(self) -> None:
        """Write the stops marked during a batch into the state bits."""
        if self._stopped:
            self._state[list(self._stopped)] |= JUDGED
            self._stopped.clear()
        if self._stopped_directions:
            codes = np.array(sorted(self._stopped_directions), dtype=np.int64)
            bits = np.where(codes % 2 == _TO_SERVER, DONE_TO_SERVER, DONE_TO_CLIENT)
            np.bitwise_or.at(self._state, codes // 2, bits)
            self._stopped_directions.clear()

    # -- batches -------------------------------------------------------------

    def process(
        self,
        segments: SegmentBatch,
        keys: FlowKeys,
        inspect: InspectCallback,
        finish: FinishCallback,
    ) -> None:
        """Count every segment of ``segments`` in its flow and triage them.

        ``inspect`` is called, in segment order, for each segment whose flow
        may still need it: payload of any flow not judged, SYN, FIN and RST of
        TCP flows, and every datagram of a promoted UDP flow. ``finish`` is
        called with flows that leave the table (evicted, or closed and reused)
        at the point in the batch where they leave it.
        """
        if not len(segments):
            return
        plan = _Plan(self, segments, keys)
        try:
            if plan.sequential:
                self._process_sequential(plan, inspect, finish)
            else:
                self._process_vectorised(plan, inspect, finish)
        finally:
            self._apply_stops()

    def _process_sequential(
        self, plan: _Plan, inspect: InspectCallback, finish: FinishCallback
    ) -> None:
        for index in range(plan.count):
            slot, to_server = self._lookup_one(plan, index)
            if self._evicted:
                finish(self.drain_evicted())
            if self._needs_inspection(plan, index, slot, to_server):
                inspect(index, slot, to_server)

    def _needs_inspection(
        self, plan: _Plan, index: int, slot: int, to_server: bool
    ) -> bool:
        """Whether one segment counted in order needs the inspect callback."""
        if slot in self._stopped:
            return False
        code = 2 * slot + (_TO_SERVER if to_server else _TO_CLIENT)
        if plan.tcp[index] and code in self._stopped_directions:
            return False
        return plan.needs_inspection(index, int(self._state[slot]), to_server)

    def _process_vectorised(
        self, plan: _Plan, inspect: InspectCallback, finish: FinishCallback
    ) -> None:
        evicted = self._evict_candidates(plan)
        plan.create_flows()
        plan.count_segments()
        plan.keep_syns()
        candidates = plan.candidates()
        slots = plan.slots.tolist()
        to_server = plan.to_server.tolist()
        ordered = plan.ordered.tolist()
        # Flows evicted by the batch's new flows leave at the segment that
        # made each of those new flows, as they would one segment at a time.
        pending = list(zip(plan.eviction_points, evicted, strict=True))
        pending.reverse()
        # Flows and directions stopped during this batch: their remaining
        # candidates are skipped without a callback.
        stopped = self._stopped
        stopped_directions = self._stopped_directions
        for index in candidates:
            while pending and pending[-1][0] <= index:
                self._finish_evicted(pending.pop()[1], finish)
            if ordered[index]:
                slot, direction = self._lookup_one(plan, index)
                if self._evicted:
                    finish(self.drain_evicted())
                if self._needs_inspection(plan, index, slot, direction):
                    inspect(index, slot, direction)
                continue
            slot = slots[index]
            if slot in stopped:
                continue
            direction = to_server[index]
            if stopped_directions and (
                2 * slot + (_TO_SERVER if direction else _TO_CLIENT)
                in stopped_directions
            ):
                continue
            inspect(index, slot, direction)
        while pending:
            self._finish_evicted(pending.pop()[1], finish)
        plan.reorder()

    def _finish_evicted(self, flow: Flow | None, finish: FinishCallback) -> None:
        if flow is not None:
            finish([flow])

    def _evict_candidates(self, plan: _Plan) -> list[Flow | None]:
        """Evict the flows that _Plan._plan_evictions chose as victims."""
        flows: list[Flow | None] = []
        for key, slot in plan.eviction_victims:
            del self._index[key]
            flows.append(self._release(slot))
        self.evictions += len(plan.eviction_victims)
        return flows

    # -- one segment at a time -------------------------------------------------

    def _lookup_one(self, plan: _Plan, index: int) -> tuple[int, bool]:
        """Find or create the flow of one segment and count the segment.

        This is FlowTable.lookup on the table's arrays: evicted and reused
        flows go to the evicted list.
        """
        key = plan.keys.keys[plan.key_ids[index]]
        source_is_low = plan.source_is_low[index]
        same = plan.same_endpoints[index]
        flags = plan.flags[index] if plan.tcp[index] else 0
        slot = self._index.get(key)
        to_server = True
        if slot is not None:
            state = int(self._state[slot])
            if not same:
                to_server = source_is_low == bool(state & CLIENT_IS_LOW)
            if state & CLOSED and flags & (SYN | ACK) == SYN:
                # The 5-tuple is reused by a new connection once the old one closed.
                del self._index[key]
                flow = self._release(slot)
                if flow is not None:
                    self._evicted.append(flow)
                slot = None
        if slot is None:
            slot, to_server = self._create_one(plan, index, key, flags)
        else:
            self._index.move_to_end(key)
        timestamp = plan.timestamps[index]
        if timestamp > self._last_seen[slot]:
            self._last_seen[slot] = timestamp
        elif timestamp < self._first_seen[slot]:
            self._first_seen[slot] = timestamp
        column = _TO_SERVER if to_server else _TO_CLIENT
        self._packets[slot, column] += 1
        self._bytes[slot, column] += plan.payload_lengths[index]
        if flags & (FIN | RST):
            state = int(self._state[slot])
            if flags & RST:
                state |= CLOSED
            else:
                state |= FIN_FROM_CLIENT if to_server else FIN_FROM_SERVER
                if state & _FIN_FROM_BOTH == _FIN_FROM_BOTH:
                    state |= CLOSED
            self._state[slot] = state
        return slot, to_server

    def _create_one(
        self, plan: _Plan, index: int, key: bytes, flags: int
    ) -> tuple[int, bool]:
        if flags & SYN:
            source_is_client = not flags & ACK
        else:
            source_is_client = self._source_is_client(
                plan.source_ports[index], plan.destination_ports[index]
            )
        if len(self._index) >= self.max_flows:
            self._evict_one()
        (slot,) = self._take_slots(1).tolist()
        client_is_low = plan.source_is_low[index] == source_is_client
        state = (CLIENT_IS_LOW if client_is_low else 0) | (
            HANDSHAKE_SEEN if flags & SYN else 0
        )
        self._state[slot] = state
        self._first_seen[slot] = self._last_seen[slot] = plan.timestamps[index]
        self._packets[slot] = 0
        self._bytes[slot] = 0
        self._syn_seqs[slot] = 0
        self._index[key] = slot
        return slot, source_is_client

    def _source_is_client(self, source_port: int, destination_port: int) -> bool:
        server_ports = self.server_ports
        if (source_port in server_ports) != (destination_port in server_ports):
            return destination_port in server_ports
        if (source_port < WELL_KNOWN_PORTS_END) != (
            destination_port < WELL_KNOWN_PORTS_END
        ):
            return destination_port < WELL_KNOWN_PORTS_END
        if (source_port >= EPHEMERAL_PORTS_START) != (
            destination_port >= EPHEMERAL_PORTS_START
        ):
            return source_port >= EPHEMERAL_PORTS_START
        return destination_port <= source_port

    def _evict_one(self) -> None:
        victim = next(
            (
                (key, slot)
                for key, slot in self._index.items()
                if not self._pinned(slot)
            ),
            None,
        )
        if victim is None:
            # Every flow is pinned. The memory bound matters more than keeping
            # a judged flow open, and the evicted flow is still judged.
            victim = next(iter(self._index.items()))
            if self.pinned_evictions == 0:
                logger.warning(
                    "flow table full of pinned flows (max_flows=%d): evicting the"
                    " least recently seen one; raise max_flows to keep them",
                    self.max_flows,
                )
            self.pinned_evictions += 1
        key, slot = victim
        del self._index[key]
        flow = self._release(slot)
        if flow is not None:
            self._evicted.append(flow)
        self.evictions += 1

    # -- leaving the table ---------------------------------------------------

    def drain_evicted(self) -> list[Flow]:
        """Return the Flows evicted since the last call, oldest first, and
        forget them. Flows without a Flow object are not returned."""
        evicted = self._evicted
        self._evicted = []
        return evicted

    def expire(self, now: float) -> list[Flow]:
        """Remove the flows idle for longer than ``idle_timeout`` and return
        the Flows among them, in table order.

        ``now`` is a capture timestamp in seconds. As in FlowTable, the walk
        stops at the first flow, in least-recently-seen order, that is not idle.
        """
        cutoff = now - self.idle_timeout
        index = self._index
        last_seen = self._last_seen
        expired: list[Flow] = []
        while index:
            key, slot = next(iter(index.items()))
            if last_seen[slot] >= cutoff:
                break
            index.popitem(last=False)
            flow = self._release(slot)
            if flow is not None:
                expired.append(flow)
        return expired

    def expire_ended(
        self, now: float, lifetime: float, closed_linger: float
    ) -> list[Flow]:
        """Remove old flows and closed ones, and return their Flows in table order.

        Old flows began more than ``lifetime`` seconds before ``now``. Closed
        flows (RST, or FIN both ways) have been quiet for ``closed_linger``
        seconds. A live watch ends flows this way, so a closed flow is
        reported soon after it closes rather than at its idle timeout. A
        mining session open for days is reported with fresh counters, and its
        next packets start a new flow. The walk covers the whole table, so
        call it rarely.
        """
        if not self._index:
            return []
        keys = list(self._index)
        slots = np.fromiter(self._index.values(), dtype=np.int64, count=len(keys))
        old = self._first_seen[slots] < now - lifetime
        closed = (self._state[slots] & CLOSED).astype(np.bool_) & (
            self._last_seen[slots] < now - closed_linger
        )
        expired: list[Flow] = []
        for position in np.flatnonzero(old | closed).tolist():
            del self._index[keys[position]]
            flow = self._release(int(slots[position]))
            if flow is not None:
                expired.append(flow)
        return expired

    def flush_all(self) -> list[Flow]:
        """Remove every flow and return the Flows: undrained evicted ones,
        then the table's, least recently seen first."""
        flows = self._evicted
        self._evicted = []
        full = self._flows
        slots = [slot for slot in self._index.values() if slot in full]
        # In chunks, so the lists made to copy counters stay small.
        for start in range(0, len(slots), FILL_CHUNK):
            chunk = slots[start : start + FILL_CHUNK]
            self._fill_many(chunk, [full[slot] for slot in chunk])
        flows.extend(full[slot] for slot in slots)
        self._index.clear()
        self._flows.clear()
        self._free.clear()
        self._used = 0
        self._state[:] = 0
        return flows


class _Plan:
    """The counting plan of one batch: the segments' slots, directions and order.

    Building the plan changes nothing in the table. It decides whether the
    batch can be counted with numpy (``sequential`` False) and finds the
    segments that must still be handled in order (``ordered``).
    """

    def __init__(
        self, table: BatchFlowTable, segments: SegmentBatch, keys: FlowKeys
    ) -> None:
        self.table = table
        self.segments = segments
        self.keys = keys
        self.count = count = len(segments)
        self.timestamps: list[float] = segments.timestamps.tolist()
        self.flags: list[int] = segments.flags.tolist()
        self.tcp_array = segments.transports == IPPROTO_TCP
        self.tcp: list[bool] = self.tcp_array.tolist()
        self.payload_lengths: list[int] = segments.payload_lengths.tolist()
        self.source_ports: list[int] = segments.source_ports.tolist()
        self.destination_ports: list[int] = segments.destination_ports.tolist()
        self.source_is_low: list[bool] = keys.source_is_low.tolist()
        self.same_endpoints: list[bool] = keys.same_endpoints.tolist()
        self.key_ids: list[int] = keys.key_ids.tolist()
        index = table._index
        # The slot of each distinct key, -1 for keys new to the table.
        self.key_slots = np.fromiter(
            map(index.get, keys.keys, itertools.repeat(-1, len(keys.keys))),
            dtype=np.int64,
            count=len(keys.keys),
        )
        self.slots = self.key_slots[keys.key_ids]
        self.to_server = np.zeros(count, dtype=np.bool_)
        self.ordered = np.zeros(count, dtype=np.bool_)
        self.eviction_points: list[int] = []
        self.eviction_victims: list[tuple[bytes, int]] = []
        self.sequential = False
        # The distinct keys new to the table, by first segment.
        new_ids = np.flatnonzero(self.key_slots < 0)
        self.new_ids = new_ids[np.argsort(keys.first_rows[new_ids])]
        self.new_firsts = keys.first_rows[self.new_ids]
        self._find_ordered()
        self._plan_evictions()

    # -- planning --------------------------------------------------------------

    def _find_ordered(self) -> None:
        """Mark the segments of flows whose outcome depends on segment order."""
        flags = self.segments.flags
        tcp = self.tcp_array
        pure_syn = tcp & ((flags & (SYN | ACK)) == SYN)
        closing = tcp & ((flags & (FIN | RST)) != 0)
        first_of_new = np.zeros(self.count, dtype=np.bool_)
        first_of_new[self.new_firsts] = True
        # A SYN may reuse the 5-tuple of a closed flow unless it opened the
        # flow: such a flow is counted one segment at a time.
        reusing = pure_syn & ~first_of_new
        key_ids = self.keys.key_ids
        risky = np.zeros(len(self.keys.keys), dtype=np.bool_)
        if reusing.any():
            syn_keys = np.zeros(len(risky), dtype=np.bool_)
            syn_keys[key_ids[reusing]] = True
            ending = np.zeros(len(risky), dtype=np.bool_)
            ending[key_ids[closing]] = True
            known = self.key_slots >= 0
            state = self.table._state[np.where(known, self.key_slots, 0)]
            ending |= known & ((state & CLOSED) != 0)
            risky |= syn_keys & ending
        if self.keys.same_endpoints.any():
            risky[key_ids[self.keys.same_endpoints]] = True
        if risky.any():
            self.ordered = risky[key_ids]

    def _plan_evictions(self) -> None:
        """Find the flows that the batch's new flows evict, or give up on numpy.

        Counting a batch at once is exact when each eviction takes a flow the
        batch does not touch: then the victims are the least recently seen
        flows that are not pinned, whatever the order of the batch.
        """
        table = self.table
        new_flows = len(self.new_ids)
        excess = len(table._index) + new_flows - table.max_flows
        if excess <= 0:
            return
        if self.ordered.any():
            self.sequential = True
            return
        touched = set(self.slots[self.slots >= 0].tolist())
        victims: list[tuple[bytes, int]] = []
        for key, slot in table._index.items():
            if table._pinned(slot):
                continue
            if slot in touched:
                self.sequential = True
                return
            victims.append((key, slot))
            if len(victims) == excess:
                break
        if len(victims) < excess:
            self.sequential = True
            return
        self.eviction_victims = victims
        # The new flow number ``room + i`` (from 0) evicts victim i.
        room = new_flows - excess
        self.eviction_points = self.new_firsts[room:].tolist()

    # -- counting --------------------------------------------------------------

    def create_flows(self) -> None:
        """Make the flows of new keys (not those counted in order) and set the
        slots and directions of every segment not counted in order."""
        table = self.table
        segments = self.segments
        keep = ~self.ordered[self.new_firsts]
        firsts = self.new_firsts[keep]
        new_ids = self.new_ids[keep]
        if len(firsts):
            slots = table._take_slots(len(firsts))
            flags = np.where(self.tcp_array[firsts], segments.flags[firsts], 0)
            source_is_client = np.where(
                (flags & SYN) != 0,
                (flags & ACK) == 0,
                self._source_is_client(
                    segments.source_ports[firsts], segments.destination_ports[firsts]
                ),
            )
            client_is_low = self.keys.source_is_low[firsts] == source_is_client
            table._state[slots] = np.where(client_is_low, CLIENT_IS_LOW, 0) | np.where(
                (flags & SYN) != 0, HANDSHAKE_SEEN, 0
            )
            timestamps = segments.timestamps[firsts]
            table._first_seen[slots] = timestamps
            table._last_seen[slots] = timestamps
            table._packets[slots] = 0
            table._bytes[slots] = 0
            table._syn_seqs[slots] = 0
            keys = self.keys.keys
            table._index.update(
                zip([keys[i] for i in new_ids.tolist()], slots.tolist(), strict=True)
            )
            self.key_slots[new_ids] = slots
            self.slots = self.key_slots[self.keys.key_ids]

        counted = ~self.ordered
        rows = np.flatnonzero(counted)
        slots = self.slots[rows]
        state = table._state[slots]
        # Whether each counted segment's flow carries payload in this batch.
        marks = np.zeros(len(table._state), dtype=np.bool_)
        marks[slots[self.segments.payload_lengths[rows] > 0]] = True
        self.carrying = np.zeros(self.count, dtype=np.bool_)
        self.carrying[rows] = marks[slots]
        self.to_server[rows] = self.keys.source_is_low[rows] == (
            (state & CLIENT_IS_LOW) != 0
        )

    def _source_is_client(
        self, source: Int64Array, destination: Int64Array
    ) -> BoolArray:
        server_ports = self.table._server_port_table
        source_server = server_ports[source]
        destination_server = server_ports[destination]
        source_known = source < WELL_KNOWN_PORTS_END
        destination_known = destination < WELL_KNOWN_PORTS_END
        source_ephemeral = source >= EPHEMERAL_PORTS_START
        destination_ephemeral = destination >= EPHEMERAL_PORTS_START
        result: BoolArray = np.select(
            [
                source_server != destination_server,
                source_known != destination_known,
                source_ephemeral != destination_ephemeral,
            ],
            [destination_server, destination_known, source_ephemeral],
            destination <= source,
        )
        return result

    def count_segments(self) -> None:
        """Add the counters, times and close state of every segment not
        counted in order."""
        table = self.table
        rows = np.flatnonzero(~self.ordered)
        if not len(rows):
            return
        slots = self.slots[rows]
        to_server = self.to_server[rows]
        lengths = self.segments.payload_lengths[rows]
        unique, inverse = np.unique(slots, return_inverse=True)
        to_client = ~to_server
        table._packets[unique, _TO_SERVER] += np.bincount(
            inverse, weights=to_server, minlength=len(unique)
        ).astype(np.int64)
        table._packets[unique, _TO_CLIENT] += np.bincount(
            inverse, weights=to_client, minlength=len(unique)
        ).astype(np.int64)
        table._bytes[unique, _TO_SERVER] += _sum_by(
            inverse, np.where(to_server, lengths, 0), len(unique)
        )
        table._bytes[unique, _TO_CLIENT] += _sum_by(
            inverse, np.where(to_server, 0, lengths), len(unique)
        )

        timestamps = self.segments.timestamps[rows]
        np.maximum.at(table._last_seen, slots, timestamps)
        np.minimum.at(table._first_seen, slots, timestamps)

        flags = np.where(self.tcp_array[rows], self.segments.flags[rows], 0)
        closing = (flags & (FIN | RST)) != 0
        if closing.any():
            bits = np.where((flags & RST) != 0, CLOSED, 0) | np.where(
                (flags & FIN) != 0,
                np.where(to_server, FIN_FROM_CLIENT, FIN_FROM_SERVER),
                0,
            )
            np.bitwise_or.at(table._state, slots[closing], bits[closing])
            touched = np.unique(slots[closing])
            both = (table._state[touched] & _FIN_FROM_BOTH) == _FIN_FROM_BOTH
            table._state[touched[both]] |= CLOSED

    def keep_syns(self) -> None:
        """Keep the sequence number of the first SYN per direction of flows
        without a Flow that carry no payload in this batch.

        The SYNs of a flow promoted in this batch go through the inspect
        callback instead, because a SYN after its first payload must not set
        the stream's start.
        """
        table = self.table
        flags = self.segments.flags
        rows = np.flatnonzero(~self.ordered & self.tcp_array & ((flags & SYN) != 0))
        if not len(rows):
            return
        slots = self.slots[rows]
        state = table._state[slots]
        unpromoted = (state & PROMOTED) == 0
        keep = unpromoted & ~self.carrying[rows]
        rows = rows[keep]
        if not len(rows):
            return

        slots = slots[keep]
        to_server = self.to_server[rows]
        pairs = slots * 2 + np.where(to_server, _TO_SERVER, _TO_CLIENT)
        _, first = np.unique(pairs, return_index=True)
        rows = rows[first]
        slots = slots[first]
        to_server = to_server[first]
        bits = np.where(to_server, SYN_TO_SERVER, SYN_TO_CLIENT)
        fresh = (table._state[slots] & bits) == 0
        slots = slots[fresh]
        columns = np.where(to_server[fresh], _TO_SERVER, _TO_CLIENT)
        table._syn_seqs[slots, columns] = self.segments.seqs[rows[fresh]]
        np.bitwise_or.at(table._state, slots, bits[fresh])

    def candidates(self) -> list[int]:
        """Return, in order, the rows that need the inspect callback or must be
        counted in order."""
        table = self.table
        counted = ~self.ordered
        slots = self.slots
        state = table._state[np.where(counted, slots, 0)]
        flags = self.segments.flags
        tcp = self.tcp_array
        payload = self.segments.payload_lengths > 0
        signal = payload | (tcp & ((flags & (SYN | FIN | RST)) != 0))
        promoted = (state & PROMOTED) != 0
        done = np.where(
            self.to_server, (state & DONE_TO_SERVER) != 0, (state & DONE_TO_CLIENT) != 0
        )
        active = promoted & ((state & JUDGED) == 0) & ~(tcp & done)
        # Every datagram of a promoted UDP flow is fed, payload or not.
        active_needed = active & (signal | ~tcp)
        promoting = ~promoted & self.carrying & (signal | ~tcp)
        needed = counted & (active_needed | promoting)
        rows: list[int] = np.flatnonzero(needed | self.ordered).tolist()
        return rows

    def needs_inspection(self, index: int, state: int, to_server: bool) -> bool:
        """Whether one segment counted in order needs the inspect callback."""
        tcp = self.tcp[index]
        payload = self.payload_lengths[index] > 0
        if not state & PROMOTED:
            return payload or (tcp and bool(self.flags[index] & SYN))
        if state & JUDGED:
            return False
        if not tcp:
            return True
        if state & (DONE_TO_SERVER if to_server else DONE_TO_CLIENT):
            return False
        return payload or bool(self.flags[index] & (SYN | FIN | RST))

    def reorder(self) -> None:
        """Move the flows the batch touched to the recent end, in the order
        of their last segments."""
        last_rows = np.full(len(self.keys.keys), -1, dtype=np.int64)
        np.maximum.at(last_rows, self.keys.key_ids, np.arange(self.count))
        keys = self.keys.keys
        move = self.table._index.move_to_end
        for position in np.argsort(last_rows).tolist():
            move(keys[position])


def _sum_by(groups: Int64Array, values: Int64Array, size: int) -> Int64Array:
    """Return the sum of ``values`` per group, in exact integers."""
    sums = np.zeros(size, dtype=np.int64)
    np.add.at(sums, groups, values)
    return sums
