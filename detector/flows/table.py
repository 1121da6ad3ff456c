"""The flow table: which flow each segment belongs to, and in which direction.

The table keeps one :class:`Flow` per 5-tuple, oriented from client to server,
in least-recently-seen order. It contains at most ``max_flows`` flows. Flows it
drops are kept for the caller, so the engine can still give its verdict on them:
flows evicted while looking up a segment are returned by
:meth:`FlowTable.drain_evicted`, idle flows by :meth:`FlowTable.expire`, and the
rest by :meth:`FlowTable.flush_all` at the end of a capture.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from detector.flows.reassembly import STREAM_DEPTH, StreamReassembler
from detector.model import (
    ACK,
    FIN,
    RST,
    SYN,
    TCP,
    Direction,
    FlowCounters,
    FlowKey,
    Segment,
)

logger = logging.getLogger(__name__)

# 262144 is the maximum number of connections Linux 5.15 and later track by default
# (nf_conntrack_max defaults to nf_conntrack_buckets, which is capped at 262144),
# so a host at its default limit does not have more flows than this open. A flow
# takes about 0.4 KiB in the table and 0.4 KiB more once its two reassemblers
# exist, without payload or address strings (tracemalloc, CPython 3.11, as in
# tests/flows/test_table.py), so a full table takes about 210 MiB. The batch
# table (flows/batch.py) keeps a flow that carried no payload in about 0.26 KiB
# (tests/flows/test_batch.py), so a table full of those takes about 70 MiB.
MAX_FLOWS = 262_144

# Seconds without a packet after which a flow is expired. XMRig sends a Stratum
# keepalive after 60 s of silence when its pool entry or the pool enables
# keepalive (Pool::kKeepAliveTimeout in xmrig src/base/net/stratum/Pool.h), and a
# Monero pool sends a new job with each block, about every 120 s. 300 s keeps a
# quiet mining flow whole through a missed keepalive or job.
IDLE_TIMEOUT = 300.0

# Ports below this are well-known (system) ports (RFC 6335), normally servers.
WELL_KNOWN_PORTS_END = 1024

# Lowest ephemeral (client) port of the two common ranges: Linux uses
# 32768-60999 (net.ipv4.ip_local_port_range) and IANA 49152-65535 (RFC 6335).
# Their union is 32768-65535.
EPHEMERAL_PORTS_START = 32768

# FIN seen from each side, as bits of Flow._fins.
_FIN_FROM_CLIENT = 1
_FIN_FROM_SERVER = 2
_FIN_FROM_BOTH = _FIN_FROM_CLIENT | _FIN_FROM_SERVER

_TupleKey = tuple[str, str, int, str, int]


class Flow:
    """One bidirectional TCP or UDP conversation, with a client and a server side.

    ``key`` is oriented from client to server. ``first_seen`` and ``last_seen``
    are capture timestamps in seconds. ``state`` is free for the engine to hang
    its per-flow inspector on, and ``pinned`` keeps the flow in a full table
    (see :class:`FlowTable`). ``closed`` becomes True on an RST, or once both
    sides sent a FIN. ``handshake_seen`` is True when the flow was opened by a
    SYN or SYN+ACK, so its roles come from the handshake and not from ports.
    """

    __slots__ = (
        "key",
        "first_seen",
        "last_seen",
        "packets_to_server",
        "packets_to_client",
        "bytes_to_server",
        "bytes_to_client",
        "streams",
        "state",
        "closed",
        "handshake_seen",
        "pinned",
        "stream_depth",
        "_fins",
    )

    def __init__(
        self, key: FlowKey, timestamp: float, stream_depth: int = STREAM_DEPTH
    ) -> None:
        self.key = key
        self.first_seen = timestamp
        self.last_seen = timestamp
        self.packets_to_server = 0
        self.packets_to_client = 0
        self.bytes_to_server = 0
        self.bytes_to_client = 0
        # The to-server and to-client reassemblers, made on first use.
        self.streams: tuple[StreamReassembler, StreamReassembler] | None = None
        self.state: object | None = None
        self.closed = False
        self.handshake_seen = False
        self.pinned = False
        self.stream_depth = stream_depth
        self._fins = 0

    def __repr__(self) -> str:
        return (
            f"<Flow {self.key} packets={self.packets_to_server}"
            f"/{self.packets_to_client} closed={self.closed}>"
        )

    def stream(self, direction: Direction) -> StreamReassembler:
        """Return the reassembler of one direction, making both on first use.

        Raises:
            ValueError: when the flow is not TCP.
        """
        streams = self.streams
        if streams is None:
            if self.key.transport != TCP:
                raise ValueError(
                    f"flow {self.key} is not TCP, so it has no stream to reassemble"
                )
            streams = (
                StreamReassembler(self.stream_depth),
                StreamReassembler(self.stream_depth),
            )
            self.streams = streams
        return streams[0] if direction is Direction.TO_SERVER else streams[1]

    def drop_idle_streams(self) -> None:
        """Drop both reassemblers if neither holds out-of-order bytes.

        Call it once no more segments of the flow will be reassembled: a
        flush of an empty reassembler delivers nothing, so the fresh ones
        :meth:`stream` makes afterwards behave the same, without keeping the
        last bytes each reassembler holds to compare retransmissions.
        """
        streams = self.streams
        if streams is not None and not (
            streams[0].buffered_bytes or streams[1].buffered_bytes
        ):
            self.streams = None

    def _note_close(self, direction: Direction, flags: int) -> None:
        if flags & RST:
            self.closed = True
            return
        if direction is Direction.TO_SERVER:
            self._fins |= _FIN_FROM_CLIENT
        else:
            self._fins |= _FIN_FROM_SERVER
        if self._fins == _FIN_FROM_BOTH:
            self.closed = True

    def counters(self) -> FlowCounters:
        """Return the flow's packet and payload byte counts by direction."""
        return FlowCounters(
            packets_to_server=self.packets_to_server,
            packets_to_client=self.packets_to_client,
            bytes_to_server=self.bytes_to_server,
            bytes_to_client=self.bytes_to_client,
        )


def check_table_limits(max_flows: int, idle_timeout: float) -> None:
    """Raise ValueError unless ``max_flows`` is 1 or more and ``idle_timeout``
    is a positive number of seconds; both flow tables take these limits."""
    if max_flows < 1:
        raise ValueError(f"invalid max_flows {max_flows}: must be 1 or more")
    if not idle_timeout > 0:
        raise ValueError(
            f"invalid idle_timeout {idle_timeout}: must be a positive number of seconds"
        )


class FlowTable:
    """Flows by 5-tuple, in least-recently-seen order, at most ``max_flows``.

    Client and server roles are set when a flow's first segment is seen, and
    never change afterwards:

    1. The sender of a SYN without ACK is the client.
    2. The sender of a SYN+ACK is the server.
    3. Otherwise (TCP joined mid-session, UDP), when exactly one port is in
       ``server_ports``, that side is the server.
    4. Else, a port below 1024 facing one at or above 1024 is the server.
    5. Else, a port in an ephemeral range (32768-60999 on Linux, 49152-65535 by
       IANA, so 32768-65535 together) facing one outside it is the client.
    6. Else, the lower port is the server. With equal ports, the sender of the
       first segment seen is the client.

    A SYN without ACK on a closed flow starts a new flow on the same 5-tuple,
    and the old one is evicted.

    When a new flow would exceed ``max_flows``, the least recently seen flow
    whose ``pinned`` attribute is False is evicted. Only when every flow is
    pinned is the least recently seen pinned flow evicted.

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
        # Number of flows evicted to stay within max_flows, and how many of
        # those were pinned.
        self.evictions = 0
        self.pinned_evictions = 0
        self._flows: OrderedDict[_TupleKey, Flow] = OrderedDict()
        self._evicted: list[Flow] = []

    def __len__(self) -> int:
        return len(self._flows)

    def lookup(self, segment: Segment) -> tuple[Flow, Direction]:
        """Find or create the segment's flow and count the segment in it.

        Returns the flow and the direction the segment travels in. Creating a
        flow can evict another one; call :meth:`drain_evicted` to collect it.
        Raises nothing.
        """
        flows = self._flows
        forward = (
            segment.transport,
            segment.src_ip,
            segment.src_port,
            segment.dst_ip,
            segment.dst_port,
        )
        key = forward
        direction = Direction.TO_SERVER
        flow = flows.get(forward)
        if flow is None:
            key = (
                segment.transport,
                segment.dst_ip,
                segment.dst_port,
                segment.src_ip,
                segment.src_port,
            )
            direction = Direction.TO_CLIENT
            flow = flows.get(key)
        flags = segment.flags if segment.transport == TCP else 0
        if flow is not None and flow.closed and flags & (SYN | ACK) == SYN:
            # The 5-tuple is reused by a new connection once the old one closed.
            del flows[key]
            self._evicted.append(flow)
            flow = None
        if flow is None:
            flow, direction = self._create(segment, forward, flags)
        else:
            flows.move_to_end(key)

        timestamp = segment.timestamp
        if timestamp > flow.last_seen:
            flow.last_seen = timestamp
        elif timestamp < flow.first_seen:
            flow.first_seen = timestamp
        if direction is Direction.TO_SERVER:
            flow.packets_to_server += 1
            flow.bytes_to_server += len(segment.payload)
        else:
            flow.packets_to_client += 1
            flow.bytes_to_client += len(segment.payload)
        if flags & (FIN | RST):
            flow._note_close(direction, flags)
        return flow, direction

    def expire(self, now: float) -> list[Flow]:
        """Remove and return the flows idle for longer than ``idle_timeout``.

        ``now`` is a capture timestamp in seconds. Pinned flows expire too,
        because an idle flow has ended whatever its verdict. Raises nothing.
        """
        # NOTE: the table is ordered by arrival, so a flow whose timestamps run
        # backwards against other flows' can sit behind a younger flow and
        # expire on a later call rather than this one.
        cutoff = now - self.idle_timeout
        flows = self._flows
        expired: list[Flow] = []
        while flows:
            oldest = next(iter(flows.values()))
            if oldest.last_seen >= cutoff:
                break
            flows.popitem(last=False)
            expired.append(oldest)
        return expired

    def drain_evicted(self) -> list[Flow]:
        """Return the flows evicted since the last call, oldest first, and forget them.

        The table keeps evicted flows, with their reassembly buffers, until this
        is called, so call it after each segment or batch. Raises nothing.
        """
        evicted = self._evicted
        self._evicted = []
        return evicted

    def flush_all(self) -> list[Flow]:
        """Remove and return every flow: undrained evicted ones, then the table's.

        The table's flows come least recently seen first. Call it at the end of
        a capture. Raises nothing.
        """
        flows = self._evicted
        flows.extend(self._flows.values())
        self._evicted = []
        self._flows.clear()
        return flows

    def _create(
        self, segment: Segment, forward: _TupleKey, flags: int
    ) -> tuple[Flow, Direction]:
        if flags & SYN:
            source_is_client = not flags & ACK
        else:
            source_is_client = self._source_is_client(
                segment.src_port, segment.dst_port
            )
        if source_is_client:
            key = forward
            flow_key = FlowKey(*forward)
            direction = Direction.TO_SERVER
        else:
            key = (
                segment.transport,
                segment.dst_ip,
                segment.dst_port,
                segment.src_ip,
                segment.src_port,
            )
            flow_key = FlowKey(*key)
            direction = Direction.TO_CLIENT
        if len(self._flows) >= self.max_flows:
            self._evict_one()
        flow = Flow(flow_key, segment.timestamp, self.stream_depth)
        flow.handshake_seen = bool(flags & SYN)
        self._flows[key] = flow
        return flow, direction

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
        victim = self._oldest_unpinned()
        if victim is None:
            # Every flow is pinned. The memory bound matters more than keeping a
            # judged flow open, and the evicted flow still reaches the engine
            # through drain_evicted, so its verdict is not lost.
            victim = next(iter(self._flows.items()))
            if self.pinned_evictions == 0:
                logger.warning(
                    "flow table full of pinned flows (max_flows=%d): evicting the"
                    " least recently seen one, %s; raise max_flows to keep them",
                    self.max_flows,
                    victim[1].key,
                )
            self.pinned_evictions += 1
        key, flow = victim
        del self._flows[key]
        self._evicted.append(flow)
        self.evictions += 1
        logger.debug(
            "evicted flow %s to stay within %d flows", flow.key, self.max_flows
        )

    def _oldest_unpinned(self) -> tuple[_TupleKey, Flow] | None:
        # NOTE: this walks past every pinned flow seen before the oldest unpinned
        # one. Pinned flows are mining flows that send a keepalive at least every
        # few minutes, so few of them drift to the old end before they expire.
        for item in self._flows.items():
            if not item[1].pinned:
                return item
        return None
