"""Conversations turned into the timed IP packets of one TCP or UDP flow.

A conversation is a list of :class:`Step`: one write by one side. For TCP the
builder adds the three-way handshake and cuts each write into segments of at
most one MSS, or into the sizes a step gives. A step may send its segments out
of order or twice. The receiver acknowledges each write, and the flow closes
with FIN. For UDP each step is one datagram.

Times are integer nanoseconds since the Unix epoch, so the output does not
depend on float rounding and writers can keep nanosecond resolution.
"""

from __future__ import annotations

import ipaddress
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Raw

from detector.model import ACK, FIN, PSH, SYN, Direction

NS_PER_SECOND = 1_000_000_000

# Ethernet MTU of 1500 bytes minus the IP header (20 for IPv4, 40 for IPv6)
# and the 20-byte TCP header.
IPV4_MSS = 1460
IPV6_MSS = 1440
# Linux's initial receive window for a 1460-byte MSS.
TCP_WINDOW = 64240
HOP_LIMIT = 64
# Gap between back-to-back packets of one write, about the time a 1 Gbit/s
# link takes to send a full-size frame.
BACK_TO_BACK_NS = 12_000
# Delay before a receiver's pure ACK. Linux may delay an ACK by up to 40 ms,
# but a short fixed delay keeps the packet order obvious in the samples.
ACK_DELAY_NS = 200_000
# Round trip used for the handshake: a pool some distance away.
HANDSHAKE_RTT_NS = 30_000_000
# Default pause before a step, in seconds: a request/response round trip.
DEFAULT_STEP_DELAY = 0.03


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a flow: an IP address and a port."""

    ip: str
    port: int

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.ip)
        if not 0 < self.port < 65536:
            raise ValueError(f"invalid port {self.port} for {self.ip}")

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.ip).version

    def __str__(self) -> str:
        return (
            f"[{self.ip}]:{self.port}"
            if self.version == 6
            else f"{self.ip}:{self.port}"
        )


@dataclass(frozen=True, slots=True)
class Step:
    """One write by one side of a flow.

    ``data`` may contain several messages, which share a segment when they fit
    in one MSS. ``delay`` is the pause in seconds before the write.
    ``segment_sizes`` gives the payload sizes of the first segments, and the
    rest is cut at the MSS. ``send_order`` is a permutation of the segment
    indexes, the order in which they go on the wire. ``retransmit`` lists
    indexes of segments sent a second time, with the same bytes and sequence
    number, after the others.
    """

    direction: Direction
    data: bytes
    delay: float = DEFAULT_STEP_DELAY
    segment_sizes: tuple[int, ...] = ()
    send_order: tuple[int, ...] = ()
    retransmit: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("a step must carry at least one byte")
        if self.delay < 0:
            raise ValueError(f"step delay {self.delay} is negative")
        if any(size <= 0 for size in self.segment_sizes):
            raise ValueError(f"segment sizes {self.segment_sizes} must be positive")
        if sum(self.segment_sizes) > len(self.data):
            raise ValueError(
                f"segment sizes add up to {sum(self.segment_sizes)} bytes,"
                f" more than the step's {len(self.data)}"
            )


def to_server(data: bytes, **options: Any) -> Step:
    """Return a step written by the client, with :class:`Step` fields as options."""
    return Step(Direction.TO_SERVER, data, **options)


def to_client(data: bytes, **options: Any) -> Step:
    """Return a step written by the server, with :class:`Step` fields as options."""
    return Step(Direction.TO_CLIENT, data, **options)


def coalesce(steps: Sequence[Step]) -> Step:
    """Merge consecutive writes of one side into a single write.

    The merged step keeps the first step's delay and no segment options, so
    the messages share segments. Raises ValueError when ``steps`` is empty or
    mixes directions.
    """
    if not steps:
        raise ValueError("nothing to coalesce")
    direction = steps[0].direction
    if any(step.direction is not direction for step in steps):
        raise ValueError("coalesced steps must all go the same direction")
    return Step(direction, b"".join(step.data for step in steps), steps[0].delay)


@dataclass(frozen=True, slots=True)
class TimedPacket:
    """One IP packet of a flow with its capture time.

    ``packet`` is a scapy ``IP`` or ``IPv6`` layer carrying the transport
    header and payload. ``client`` names the flow's client, so a link layer
    can tell the local host's side from the remote one.
    """

    timestamp_ns: int
    direction: Direction
    client: Endpoint
    packet: Any


def default_isn(source: Endpoint, destination: Endpoint) -> int:
    """Return a fixed initial sequence number derived from the two endpoints."""
    return zlib.crc32(f"{source}>{destination}".encode())


def tcp_conversation(
    client: Endpoint,
    server: Endpoint,
    steps: Sequence[Step],
    *,
    start_ns: int,
    handshake: bool = True,
    close_by: Direction | None = Direction.TO_SERVER,
    mss: int | None = None,
    client_isn: int | None = None,
    server_isn: int | None = None,
) -> list[TimedPacket]:
    """Build the packets of one TCP flow carrying ``steps``.

    Without ``handshake`` the flow starts mid-session, as in a capture begun
    after the connection opened. ``close_by`` names the side that sends the
    first FIN, or None to leave the flow open. ``mss`` defaults to the largest
    segment an Ethernet link carries. Raises ValueError when the endpoints'
    IP versions differ or a step's segment options do not fit its data.
    """
    if client.version != server.version:
        raise ValueError(f"{client} and {server} are not the same IP version")
    if mss is not None and mss <= 0:
        raise ValueError(f"invalid MSS {mss}")
    segment_limit = mss or (IPV6_MSS if client.version == 6 else IPV4_MSS)
    writer = _TcpWriter(
        client,
        server,
        default_isn(client, server) if client_isn is None else client_isn,
        default_isn(server, client) if server_isn is None else server_isn,
        start_ns,
    )
    if handshake:
        writer.handshake(segment_limit)
    for index, step in enumerate(steps):
        writer.write(step, segment_limit)
        receiver = step.direction.reverse()
        following = steps[index + 1] if index + 1 < len(steps) else None
        # The receiver's next write, or its FIN, carries the ACK. Otherwise the
        # receiver sends a pure ACK.
        if following is not None and following.direction is receiver:
            continue
        if following is None and close_by is receiver:
            continue
        writer.acknowledge(receiver)
    if close_by is not None:
        writer.close(close_by)
    return writer.packets


def udp_conversation(
    client: Endpoint, server: Endpoint, steps: Sequence[Step], *, start_ns: int
) -> list[TimedPacket]:
    """Build one datagram per step. Raises ValueError when a step has segment
    options, which UDP cannot honour."""
    if client.version != server.version:
        raise ValueError(f"{client} and {server} are not the same IP version")
    packets: list[TimedPacket] = []
    now = start_ns
    identifications = _initial_ip_ids(client, server)
    for step in steps:
        if step.segment_sizes or step.send_order or step.retransmit:
            raise ValueError("UDP steps cannot be segmented, reordered or resent")
        now += _seconds_to_ns(step.delay) if packets else 0
        source, destination = (
            (client, server)
            if step.direction is Direction.TO_SERVER
            else (server, client)
        )
        ip_layer = _ip_layer(source, destination, identifications[step.direction])
        identifications[step.direction] += 1
        datagram = UDP(sport=source.port, dport=destination.port) / Raw(step.data)
        packets.append(TimedPacket(now, step.direction, client, ip_layer / datagram))
    return packets


def merge(conversations: Iterable[Sequence[TimedPacket]]) -> list[TimedPacket]:
    """Interleave the packets of several flows by time. Ties keep input order."""
    combined = [packet for conversation in conversations for packet in conversation]
    return sorted(combined, key=lambda packet: packet.timestamp_ns)


class _TcpWriter:
    """Sequence numbers, IP ids and the clock of one TCP flow being built."""

    def __init__(
        self,
        client: Endpoint,
        server: Endpoint,
        client_isn: int,
        server_isn: int,
        start_ns: int,
    ) -> None:
        self.client = client
        self.server = server
        self.isn = {Direction.TO_SERVER: client_isn, Direction.TO_CLIENT: server_isn}
        # Without a handshake the flow starts as if the SYNs were already sent.
        self.next_seq = {direction: isn + 1 for direction, isn in self.isn.items()}
        self.ip_ids = _initial_ip_ids(client, server)
        self.now = start_ns
        self.packets: list[TimedPacket] = []

    def handshake(self, mss: int) -> None:
        # No window scaling, so the window field means the same in every packet.
        options = [("MSS", mss), ("SAckOK", b"")]
        self._emit(
            Direction.TO_SERVER, SYN, self.isn[Direction.TO_SERVER], options=options
        )
        self.now += HANDSHAKE_RTT_NS
        self._emit(
            Direction.TO_CLIENT,
            SYN | ACK,
            self.isn[Direction.TO_CLIENT],
            options=options,
        )
        self.now += ACK_DELAY_NS
        self._emit(Direction.TO_SERVER, ACK, self.next_seq[Direction.TO_SERVER])

    def write(self, step: Step, mss: int) -> None:
        segments = _split(step.data, step.segment_sizes, mss)
        order = step.send_order or tuple(range(len(segments)))
        if sorted(order) != list(range(len(segments))):
            raise ValueError(
                f"send order {order} is not a permutation of {len(segments)} segments"
            )
        for index in step.retransmit:
            if not 0 <= index < len(segments):
                raise ValueError(
                    f"retransmit index {index} is outside {len(segments)} segments"
                )
        base = self.next_seq[step.direction]
        self.now += _seconds_to_ns(step.delay) if self.packets else 0
        sent = list(order) + list(step.retransmit)
        for position, index in enumerate(sent):
            offset, payload = segments[index]
            if position:
                self.now += BACK_TO_BACK_NS
            # PSH marks the end of the write, as Linux sets it.
            is_last = offset + len(payload) == len(step.data)
            flags = ACK | PSH if is_last else ACK
            self._emit(step.direction, flags, base + offset, payload)
        self.next_seq[step.direction] = base + len(step.data)

    def acknowledge(self, direction: Direction) -> None:
        self.now += ACK_DELAY_NS
        self._emit(direction, ACK, self.next_seq[direction])

    def close(self, closer: Direction) -> None:
        other = closer.reverse()
        for direction in (closer, other):
            self.now += ACK_DELAY_NS
            self._emit(direction, FIN | ACK, self.next_seq[direction])
            self.next_seq[direction] += 1
        self.now += ACK_DELAY_NS
        self._emit(closer, ACK, self.next_seq[closer])

    def _emit(
        self,
        direction: Direction,
        flags: int,
        seq: int,
        payload: bytes = b"",
        options: list[tuple[str, Any]] | None = None,
    ) -> None:
        if direction is Direction.TO_SERVER:
            source, destination = self.client, self.server
        else:
            source, destination = self.server, self.client
        ack = self.next_seq[direction.reverse()] if flags & ACK else 0
        segment = TCP(
            sport=source.port,
            dport=destination.port,
            seq=seq % 2**32,
            ack=ack % 2**32,
            flags=flags,
            window=TCP_WINDOW,
            options=options or [],
        )
        ip_layer = _ip_layer(source, destination, self.ip_ids[direction])
        self.ip_ids[direction] += 1
        packet = ip_layer / segment
        if payload:
            packet = packet / Raw(payload)
        self.packets.append(TimedPacket(self.now, direction, self.client, packet))


def _split(data: bytes, sizes: Sequence[int], mss: int) -> list[tuple[int, bytes]]:
    segments: list[tuple[int, bytes]] = []
    offset = 0
    for size in sizes:
        if size > mss:
            raise ValueError(f"segment size {size} is larger than the MSS {mss}")
        segments.append((offset, data[offset : offset + size]))
        offset += size
    while offset < len(data):
        segments.append((offset, data[offset : offset + mss]))
        offset += mss
    return segments


def _initial_ip_ids(client: Endpoint, server: Endpoint) -> dict[Direction, int]:
    return {
        Direction.TO_SERVER: default_isn(client, server) & 0xFFFF,
        Direction.TO_CLIENT: default_isn(server, client) & 0xFFFF,
    }


def _ip_layer(source: Endpoint, destination: Endpoint, identification: int) -> Any:
    if source.version == 6:
        return IPv6(src=source.ip, dst=destination.ip, hlim=HOP_LIMIT)
    return IP(
        src=source.ip,
        dst=destination.ip,
        ttl=HOP_LIMIT,
        id=identification & 0xFFFF,
        flags="DF",
    )


def _seconds_to_ns(seconds: float) -> int:
    return round(seconds * NS_PER_SECOND)
