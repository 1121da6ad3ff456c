"""Timed frames of one TCP or UDP flow, as captured beside the client.

The capture point is the container bridge, so a client's packet is seen at
once and the server's reply one round trip later. Times are integer
nanoseconds since the Unix epoch. Every conversation keeps its frames in time
order, which the merge in :mod:`detector.bench.generate` relies on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from detector.bench.frames import GATEWAY_MAC, Endpoint, FramePath, container_mac
from detector.model import ACK, FIN, PSH, SYN

TimedFrame = tuple[int, bytes]

# Ethernet's 1500-byte MTU less the IP header (20 for IPv4, 40 for IPv6) and
# the 20-byte TCP header.
IPV4_MSS = 1460
IPV6_MSS = 1440
# The options Linux puts on a SYN: MSS, SACK permitted, two NOPs and window
# scale 7, padded to 12 bytes (no timestamps, to keep data segments at 20
# bytes of header).
SYN_OPTIONS_TEMPLATE = b"\x02\x04%s\x04\x02\x01\x01\x03\x03\x07\x00"
# Linux's initial window for a 1460-byte MSS, and a scaled window after it.
SYN_WINDOW = 64240
DATA_WINDOW = 502
# TTL seen at the bridge: 64 from a container, fewer from a remote server.
CLIENT_TTL = 64
SERVER_TTL = 52
# A receiver acknowledges every second full-size segment (RFC 9293 delayed
# ACK), after this many nanoseconds.
ACK_EVERY_SEGMENTS = 2
LOCAL_ACK_DELAY_NS = 40_000
# Time a server takes to process a request, on top of the round trip.
SERVER_THINK_NS = 150_000


@dataclass(frozen=True, slots=True)
class Write:
    """One write by one side of a TCP flow; ``delay_ns`` is the pause before it."""

    from_client: bool
    data: bytes
    delay_ns: int = 0


def tcp_flow(
    client: Endpoint,
    server: Endpoint,
    writes: Sequence[Write],
    start_ns: int,
    rng: random.Random,
    *,
    rtt_ns: int,
    segment_gap_ns: int,
    vlan: int | None = None,
) -> list[TimedFrame]:
    """Return the frames of a whole TCP flow: handshake, ``writes`` and close."""
    conversation = TcpConversation(
        client,
        server,
        start_ns,
        rng,
        rtt_ns=rtt_ns,
        segment_gap_ns=segment_gap_ns,
        vlan=vlan,
    )
    conversation.handshake()
    for write in writes:
        conversation.send(write.from_client, write.data, write.delay_ns)
    conversation.close()
    return conversation.frames


class TcpConversation:
    """Frames of one TCP flow: handshake, writes by either side, and close.

    ``rtt_ns`` is the round trip between the bridge and the server and
    ``segment_gap_ns`` the time between back-to-back segments of one write.
    """

    def __init__(
        self,
        client: Endpoint,
        server: Endpoint,
        start_ns: int,
        rng: random.Random,
        *,
        rtt_ns: int,
        segment_gap_ns: int,
        vlan: int | None = None,
    ) -> None:
        self.client = client
        self.server = server
        self.frames: list[TimedFrame] = []
        self.now = start_ns
        self.rtt_ns = rtt_ns
        self.segment_gap_ns = segment_gap_ns
        ipv6 = ":" in client.ip
        self.mss = IPV6_MSS if ipv6 else IPV4_MSS
        client_mac = container_mac(client.ip)
        label = rng.getrandbits(20) if ipv6 else 0
        self._to_server = FramePath(
            client,
            server,
            client_mac,
            GATEWAY_MAC,
            ttl=CLIENT_TTL,
            ip_id=rng.getrandbits(16),
            vlan=vlan,
            flow_label=label,
        )
        self._to_client = FramePath(
            server,
            client,
            GATEWAY_MAC,
            client_mac,
            ttl=SERVER_TTL,
            ip_id=rng.getrandbits(16),
            vlan=vlan,
            flow_label=label,
        )
        self._client_seq = rng.getrandbits(32)
        self._server_seq = rng.getrandbits(32)

    def handshake(self) -> None:
        """Add SYN, SYN+ACK and ACK."""
        options = SYN_OPTIONS_TEMPLATE % self.mss.to_bytes(2, "big")
        self._emit(
            self._to_server.tcp(
                self._client_seq, 0, SYN, window=SYN_WINDOW, options=options
            )
        )
        self._client_seq += 1
        self.now += self.rtt_ns
        self._emit(
            self._to_client.tcp(
                self._server_seq,
                self._client_seq,
                SYN | ACK,
                window=SYN_WINDOW,
                options=options,
            ),
        )
        self._server_seq += 1
        self.now += LOCAL_ACK_DELAY_NS
        self._emit(self._ack(from_client=True))

    def send(self, from_client: bool, data: bytes, delay_ns: int = 0) -> None:
        """Add one write of ``data``, cut into MSS-sized segments, and the
        receiver's ACKs.

        ``delay_ns`` is the pause before the write. A server's write waits at
        least one round trip after the client's last packet.
        """
        if not from_client:
            delay_ns = max(delay_ns, self.rtt_ns + SERVER_THINK_NS)
        self.now += delay_ns
        path = self._to_server if from_client else self._to_client
        mss = self.mss
        count = 0
        for offset in range(0, len(data), mss):
            chunk = data[offset : offset + mss]
            last = offset + mss >= len(data)
            flags = ACK | PSH if last else ACK
            if from_client:
                frame = path.tcp(
                    self._client_seq,
                    self._server_seq,
                    flags,
                    chunk,
                    window=DATA_WINDOW,
                )
                self._client_seq += len(chunk)
            else:
                frame = path.tcp(
                    self._server_seq,
                    self._client_seq,
                    flags,
                    chunk,
                    window=DATA_WINDOW,
                )
                self._server_seq += len(chunk)
            if count:
                self.now += self.segment_gap_ns
            self._emit(frame)
            count += 1
            if last or count % ACK_EVERY_SEGMENTS == 0:
                self._receiver_ack(from_client)

    def close(self) -> None:
        """Add the client's FIN, the server's FIN+ACK and the last ACK."""
        self.now += LOCAL_ACK_DELAY_NS
        self._emit(
            self._to_server.tcp(
                self._client_seq, self._server_seq, FIN | ACK, window=DATA_WINDOW
            ),
        )
        self._client_seq += 1
        self.now += self.rtt_ns
        self._emit(
            self._to_client.tcp(
                self._server_seq, self._client_seq, FIN | ACK, window=DATA_WINDOW
            ),
        )
        self._server_seq += 1
        self.now += LOCAL_ACK_DELAY_NS
        self._emit(self._ack(from_client=True))

    def _receiver_ack(self, sender_is_client: bool) -> None:
        # The server's ACK of client data comes back after a round trip; the
        # client's ACK of server data leaves at once.
        self.now += self.rtt_ns if sender_is_client else LOCAL_ACK_DELAY_NS
        self._emit(self._ack(from_client=not sender_is_client))

    def _ack(self, from_client: bool) -> bytes:
        if from_client:
            return self._to_server.tcp(
                self._client_seq, self._server_seq, ACK, window=DATA_WINDOW
            )
        return self._to_client.tcp(
            self._server_seq, self._client_seq, ACK, window=DATA_WINDOW
        )

    def _emit(self, frame: bytes) -> None:
        self.frames.append((self.now, frame))


def udp_exchange(
    client: Endpoint,
    server: Endpoint,
    start_ns: int,
    rng: random.Random,
    request: bytes,
    reply: bytes | None,
    *,
    rtt_ns: int,
    vlan: int | None = None,
) -> list[TimedFrame]:
    """Return a request datagram and, unless ``reply`` is None, its reply."""
    ipv6 = ":" in client.ip
    client_mac = container_mac(client.ip)
    label = rng.getrandbits(20) if ipv6 else 0
    outbound = FramePath(
        client,
        server,
        client_mac,
        GATEWAY_MAC,
        ttl=CLIENT_TTL,
        ip_id=rng.getrandbits(16),
        vlan=vlan,
        flow_label=label,
    )
    frames = [(start_ns, outbound.udp(request))]
    if reply is not None:
        inbound = FramePath(
            server,
            client,
            GATEWAY_MAC,
            client_mac,
            ttl=SERVER_TTL,
            ip_id=rng.getrandbits(16),
            vlan=vlan,
            flow_label=label,
        )
        frames.append((start_ns + rtt_ns, inbound.udp(reply)))
    return frames
