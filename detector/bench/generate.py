"""Write the benchmark captures: mixed traffic with mining flows, and a SYN flood.

Both captures are the same, byte for byte, on every run: every random choice
comes from a generator seeded with a fixed string, and every timestamp from a
fixed base time. Frames are built with struct (see :mod:`detector.bench.frames`)
because scapy would take minutes for a million packets.
"""

from __future__ import annotations

import heapq
import json
import random
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from detector.bench import background, mining
from detector.bench.conversation import TimedFrame, tcp_flow, udp_exchange
from detector.bench.frames import (
    GATEWAY_MAC,
    Endpoint,
    container_mac,
    finish_checksum,
    ones_complement_sum,
)
from detector.model import SYN

MIXED_NAME = "mixed-1m.pcap"
FLOOD_NAME = "synflood-1m.pcap"
EXPECTED_NAME = "mixed-1m.expected.json"
# A capture with no packets: the detector's memory with nothing to track.
EMPTY_NAME = "empty.pcap"

DEFAULT_PACKETS = 1_000_000
DEFAULT_FLOOD_FLOWS = 1_000_000
DEFAULT_MINING_FLOWS = 300

# Every capture starts at 2026-01-01T00:00:00Z.
BASE_TIME_NS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
NS_PER_SECOND = 1_000_000_000

# Packets per second of capture time: a busy container host. The mixed
# capture of 1 million packets spans 100 s plus the tail of its last flows.
MIXED_PACKETS_PER_SECOND = 10_000
# A SYN flood of 100 thousand packets per second, so a million flows arrive
# within 10 s, well inside any idle timeout of a flow table.
FLOOD_PACKETS_PER_SECOND = 100_000

# pcap: microsecond timestamps, Ethernet, tcpdump's default snapshot length.
PCAP_MAGIC = 0xA1B2C3D4
PCAP_VERSION = (2, 4)
PCAP_SNAPLEN = 262144
LINKTYPE_ETHERNET = 1
# Frames are written to the file in batches of this many.
WRITE_BATCH = 8192

# Containers that open connections: 172.17.0.2 upwards, Docker's default
# bridge, and the same hosts on an IPv6 documentation prefix.
CLIENT_HOSTS = 500
CLIENT_IPV4_BASE = (172 << 24) | (17 << 16) | 2
CLIENT_IPV6_PREFIX = "2001:db8:ac11::"
# Linux's default ephemeral port range (net.ipv4.ip_local_port_range).
EPHEMERAL_PORTS = (32768, 60999)

DNS_SERVER = Endpoint("192.0.2.53", 53)
DNS_SERVER_IPV6 = Endpoint("2001:db8::53", 53)
HTTP_SERVER_PREFIX = "192.0.2."
HTTP_SERVER_FIRST_HOST = 80
TLS_SERVER_PREFIX = "10.20."
TLS_SERVER_IPV6_PREFIX = "2001:db8:443::"
SSH_SERVER_PREFIX = "10.30.0."
SSH_SERVERS = 20

# Pools in documentation ranges, on the ports these dialects' pools use. One
# Monero pool listens on 443, as pools do to pass egress filters.
POOLS = {
    mining.MONERO: (
        Endpoint("203.0.113.10", 3333),
        Endpoint("203.0.113.11", 5555),
        Endpoint("203.0.113.12", 443),
        Endpoint("203.0.113.13", 14444),
    ),
    mining.STRATUM_V1: (
        Endpoint("198.51.100.20", 3333),
        Endpoint("198.51.100.21", 3334),
        Endpoint("198.51.100.22", 8888),
    ),
    mining.ETHPROXY: (
        Endpoint("192.0.2.200", 4444),
        Endpoint("192.0.2.201", 8008),
        Endpoint("192.0.2.202", 9999),
    ),
}

# Shares of background conversations (not packets). An SSH copy has hundreds
# of packets and a DNS lookup two, so by packets the mix is about a third
# bulk, a third TLS, and HTTP and DNS the rest (see the expected file).
KIND_WEIGHTS = {"dns": 90.0, "tls": 6.0, "http": 3.8, "ssh": 0.2}
# Shares of conversations sent over IPv6 (DNS and TLS only) or with an
# 802.1Q tag.
IPV6_SHARE = 0.04
VLAN_SHARE = 0.03
VLAN_ID = 100
# Every this many mining flows, one is sent with an 802.1Q tag.
MINING_VLAN_EVERY = 10
# Near the end only conversations this short are started, so the capture ends
# on exactly the requested packet count without cutting a flow.
SHORT_CONVERSATION_PACKETS = 400
TAIL_PACKETS = 4000

# Round-trip times in milliseconds, from the bridge to each kind of server.
RTT_MS = {
    "dns": (0.3, 20.0),
    "tls": (1.0, 40.0),
    "http": (1.0, 30.0),
    "ssh": (0.2, 2.0),
    "mining": (20.0, 120.0),
}
# Time between back-to-back segments of one write. 12 µs is a full frame at
# 1 Gbit/s. The SSH copy gets 12 to 120 µs, a link of 100 Mbit/s to 1 Gbit/s.
SEGMENT_GAP_NS = 12_000
SSH_SEGMENT_GAP_NS = (12_000, 120_000)

# SYN flood: spoofed sources counting up from 10.64.0.0, so every flow has its
# own source address, towards a web container's usual ports.
FLOOD_SOURCE_BASE = (10 << 24) | (64 << 16)
FLOOD_MAX_FLOWS = 1 << 22
FLOOD_TARGET = "172.17.0.10"
FLOOD_PORTS = (80, 443, 8443)
FLOOD_WINDOW = 64240


@dataclass(frozen=True, slots=True)
class MiningFlow:
    """A mining flow in the mixed capture, which the detector must report."""

    client: Endpoint
    server: Endpoint
    dialect: str

    def to_json(self) -> dict[str, str]:
        return {
            "client": str(self.client),
            "server": str(self.server),
            "dialect": self.dialect,
        }


@dataclass(slots=True)
class CaptureSummary:
    """Counts and mining flows of one written capture."""

    name: str
    packets: int = 0
    frame_bytes: int = 0
    packets_by_kind: Counter[str] = field(default_factory=Counter)
    mining_flows: list[MiningFlow] = field(default_factory=list)

    @property
    def mean_frame_bytes(self) -> float:
        return self.frame_bytes / self.packets if self.packets else 0.0


class PcapWriter:
    """Writes a classic little-endian pcap with microsecond timestamps."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._batch: list[bytes] = []
        self.packets = 0
        self.frame_bytes = 0
        stream.write(
            struct.pack(
                "<IHHiIII",
                PCAP_MAGIC,
                *PCAP_VERSION,
                0,
                0,
                PCAP_SNAPLEN,
                LINKTYPE_ETHERNET,
            )
        )

    def write(self, timestamp_ns: int, frame: bytes) -> None:
        seconds, nanoseconds = divmod(timestamp_ns, NS_PER_SECOND)
        size = len(frame)
        self._batch.append(
            struct.pack("<IIII", seconds, nanoseconds // 1000, size, size)
        )
        self._batch.append(frame)
        self.packets += 1
        self.frame_bytes += size
        if len(self._batch) >= 2 * WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        self._stream.write(b"".join(self._batch))
        self._batch.clear()


class _Clients:
    """Hands out client endpoints whose 5-tuples never repeat in a capture."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        low, high = EPHEMERAL_PORTS
        self._next_port = [rng.randint(low, high) for _ in range(CLIENT_HOSTS)]

    def take(self, ipv6: bool = False) -> Endpoint:
        host = self._rng.randrange(CLIENT_HOSTS)
        port = self._next_port[host]
        low, high = EPHEMERAL_PORTS
        self._next_port[host] = low if port >= high else port + 1
        number = CLIENT_IPV4_BASE + host
        if ipv6:
            return Endpoint(f"{CLIENT_IPV6_PREFIX}{number & 0xFFFF:x}", port)
        return Endpoint(_ipv4_text(number), port)


def _ipv4_text(number: int) -> str:
    return ".".join(str(byte) for byte in number.to_bytes(4, "big"))


def _start_ns(position: int) -> int:
    # Conversations start at a steady packet rate, by how many packets of the
    # capture were planned before them.
    return BASE_TIME_NS + position * NS_PER_SECOND // MIXED_PACKETS_PER_SECOND


def _rtt_ns(rng: random.Random, kind: str) -> int:
    low, high = RTT_MS[kind]
    return int(rng.uniform(low, high) * 1_000_000)


class _MixedPlanner:
    """Builds the conversations of the mixed capture in order of start time."""

    def __init__(self, packets: int, mining_flows: int) -> None:
        self.packets = packets
        self.rng = random.Random("detector.bench:mixed")
        self.clients = _Clients(self.rng)
        self.payloads = background.PayloadPool(self.rng)
        self.summary = CaptureSummary(MIXED_NAME)
        self._mining = [self._mining_flow(index) for index in range(mining_flows)]
        mining_packets = sum(len(frames) for _, frames in self._mining)
        if mining_packets >= packets:
            raise ValueError(
                f"{packets} packets leave no room for background traffic beside"
                f" {mining_flows} mining flows of {mining_packets} packets; ask for"
                f" more than {mining_packets} packets or fewer mining flows"
            )
        self._background_budget = packets - mining_packets
        spacing = packets / max(mining_flows, 1)
        self._mining_positions = [int((i + 0.5) * spacing) for i in range(mining_flows)]

    def conversations(self) -> Iterator[list[TimedFrame]]:
        """Yield each conversation's frames, in order of their first frame."""
        position = 0
        background_used = 0
        next_mining = 0
        while background_used < self._background_budget or next_mining < len(
            self._mining
        ):
            start = _start_ns(position)
            due = next_mining < len(self._mining) and (
                self._mining_positions[next_mining] <= position
                or background_used >= self._background_budget
            )
            if due:
                flow, relative = self._mining[next_mining]
                next_mining += 1
                self.summary.mining_flows.append(flow)
                frames = [(start + offset, frame) for offset, frame in relative]
                kind = "mining"
            else:
                remaining = self._background_budget - background_used
                kind, frames = self._background(start, remaining)
                background_used += len(frames)
            position += len(frames)
            self.summary.packets_by_kind[kind] += len(frames)
            yield frames

    def _mining_flow(self, index: int) -> tuple[MiningFlow, list[TimedFrame]]:
        rng = self.rng
        dialect = mining.DIALECTS[index % len(mining.DIALECTS)]
        server = rng.choice(POOLS[dialect])
        client = self.clients.take()
        writes = mining.session(dialect, rng, BASE_TIME_NS // NS_PER_SECOND)
        frames = tcp_flow(
            client,
            server,
            writes,
            0,
            rng,
            rtt_ns=_rtt_ns(rng, "mining"),
            segment_gap_ns=SEGMENT_GAP_NS,
            vlan=VLAN_ID
            if index % MINING_VLAN_EVERY == MINING_VLAN_EVERY - 1
            else None,
        )
        return MiningFlow(client, server, dialect), frames

    def _background(self, start: int, remaining: int) -> tuple[str, list[TimedFrame]]:
        rng = self.rng
        if remaining <= 2:
            return "dns", self._dns(start, answered=remaining == 2)
        kinds = list(KIND_WEIGHTS)
        if remaining < TAIL_PACKETS:
            kinds.remove("ssh")
        kind = rng.choices(kinds, [KIND_WEIGHTS[k] for k in kinds])[0]
        if remaining < SHORT_CONVERSATION_PACKETS:
            kind = "dns"
        if kind == "dns":
            return kind, self._dns(start, answered=True)
        frames = self._tcp(kind, start)
        if len(frames) > remaining:
            return "dns", self._dns(start, answered=True)
        return kind, frames

    def _dns(self, start: int, answered: bool) -> list[TimedFrame]:
        rng = self.rng
        ipv6 = rng.random() < IPV6_SHARE
        vlan = VLAN_ID if rng.random() < VLAN_SHARE else None
        index = rng.randrange(len(background.SERVICE_NAMES))
        name = background.SERVICE_NAMES[index]
        addresses = [_tls_server(index, ipv6=False).ip]
        if rng.random() < 0.5:
            addresses.append(_http_server(index).ip)
        query, answer = background.dns_exchange(rng, name, addresses)
        return udp_exchange(
            self.clients.take(ipv6),
            DNS_SERVER_IPV6 if ipv6 else DNS_SERVER,
            start,
            rng,
            query,
            answer if answered else None,
            rtt_ns=_rtt_ns(rng, "dns"),
            vlan=vlan,
        )

    def _tcp(self, kind: str, start: int) -> list[TimedFrame]:
        rng = self.rng
        vlan = VLAN_ID if rng.random() < VLAN_SHARE else None
        gap = SEGMENT_GAP_NS
        index = rng.randrange(len(background.SERVICE_NAMES))
        name = background.SERVICE_NAMES[index]
        if kind == "tls":
            ipv6 = rng.random() < IPV6_SHARE
            client = self.clients.take(ipv6)
            server = _tls_server(index, ipv6)
            writes = background.tls_session(rng, self.payloads, name)
        elif kind == "http":
            client = self.clients.take()
            server = _http_server(index)
            writes = background.http_session(rng, self.payloads, name)
        else:
            client = self.clients.take()
            server = Endpoint(f"{SSH_SERVER_PREFIX}{rng.randint(1, SSH_SERVERS)}", 22)
            writes = background.ssh_copy(rng, self.payloads)
            gap = rng.randint(*SSH_SEGMENT_GAP_NS)
        return tcp_flow(
            client,
            server,
            writes,
            start,
            rng,
            rtt_ns=_rtt_ns(rng, kind),
            segment_gap_ns=gap,
            vlan=vlan,
        )


def _tls_server(index: int, ipv6: bool) -> Endpoint:
    if ipv6:
        return Endpoint(f"{TLS_SERVER_IPV6_PREFIX}{index + 1:x}", 443)
    return Endpoint(f"{TLS_SERVER_PREFIX}{index}.10", 443)


def _http_server(index: int) -> Endpoint:
    return Endpoint(f"{HTTP_SERVER_PREFIX}{HTTP_SERVER_FIRST_HOST + index}", 80)


def merge_conversations(
    conversations: Iterator[list[TimedFrame]],
) -> Iterator[TimedFrame]:
    """Interleave conversations into one capture ordered by time.

    ``conversations`` must come in order of their first frame, and each must
    be in time order. Frames with equal times keep conversation order.
    """
    heap: list[tuple[int, int, int, list[TimedFrame]]] = []
    order = 0
    nonempty = (frames for frames in conversations if frames)
    pending = next(nonempty, None)
    while heap or pending is not None:
        if pending is not None and (not heap or pending[0][0] <= heap[0][0]):
            heapq.heappush(heap, (pending[0][0], order, 0, pending))
            order += 1
            pending = next(nonempty, None)
            continue
        _, rank, index, frames = heap[0]
        yield frames[index]
        index += 1
        if index < len(frames):
            heapq.heapreplace(heap, (frames[index][0], rank, index, frames))
        else:
            heapq.heappop(heap)


def write_mixed(
    path: Path,
    packets: int = DEFAULT_PACKETS,
    mining_flows: int = DEFAULT_MINING_FLOWS,
) -> CaptureSummary:
    """Write the mixed capture of exactly ``packets`` packets to ``path``.

    Raises:
        ValueError: ``packets`` leaves too little room for the mining flows.
        OSError: ``path`` cannot be written.
    """
    planner = _MixedPlanner(packets, mining_flows)
    with path.open("wb") as stream:
        writer = PcapWriter(stream)
        for timestamp, frame in merge_conversations(planner.conversations()):
            writer.write(timestamp, frame)
        writer.flush()
    summary = planner.summary
    summary.packets = writer.packets
    summary.frame_bytes = writer.frame_bytes
    return summary


def write_flood(path: Path, flows: int = DEFAULT_FLOOD_FLOWS) -> CaptureSummary:
    """Write ``flows`` TCP SYNs to ``path``, each from its own source address.

    Raises:
        ValueError: ``flows`` is more than the source range holds.
        OSError: ``path`` cannot be written.
    """
    if not 0 < flows <= FLOOD_MAX_FLOWS:
        raise ValueError(f"flood flows must be 1 to {FLOOD_MAX_FLOWS}, not {flows}")
    rng = random.Random("detector.bench:synflood")
    target = bytes(int(part) for part in FLOOD_TARGET.split("."))
    link = container_mac(FLOOD_TARGET) + GATEWAY_MAC + b"\x08\x00"
    summary = CaptureSummary(FLOOD_NAME)
    with path.open("wb") as stream:
        writer = PcapWriter(stream)
        for number in range(flows):
            source = (FLOOD_SOURCE_BASE + number).to_bytes(4, "big")
            port = rng.choice(FLOOD_PORTS)
            frame = link + _syn_packet(
                source,
                target,
                rng.randint(1024, 65535),
                port,
                rng.getrandbits(32),
                rng.getrandbits(16),
                rng.randint(40, 128),
            )
            offset = number * NS_PER_SECOND // FLOOD_PACKETS_PER_SECOND
            writer.write(BASE_TIME_NS + offset, frame)
        writer.flush()
    summary.packets = writer.packets
    summary.frame_bytes = writer.frame_bytes
    summary.packets_by_kind["syn"] = writer.packets
    return summary


def _syn_packet(
    source: bytes,
    destination: bytes,
    source_port: int,
    destination_port: int,
    seq: int,
    ip_id: int,
    ttl: int,
) -> bytes:
    # A bare SYN with no options, as flooding tools send it.
    tcp = struct.pack(
        ">HHIIBBHHH",
        source_port,
        destination_port,
        seq,
        0,
        5 << 4,
        SYN,
        FLOOD_WINDOW,
        0,
        0,
    )
    pseudo = ones_complement_sum(source + destination) + 6 + len(tcp)
    checksum = finish_checksum(pseudo, ones_complement_sum(tcp))
    tcp = tcp[:16] + struct.pack(">H", checksum) + tcp[18:]
    ip = struct.pack(
        ">BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(tcp),
        ip_id,
        0,
        ttl,
        6,
        0,
        source,
        destination,
    )
    ip = ip[:10] + struct.pack(">H", finish_checksum(ones_complement_sum(ip))) + ip[12:]
    return ip + tcp


def write_empty(path: Path) -> None:
    """Write a pcap file header with no packets.

    Raises:
        OSError: ``path`` cannot be written.
    """
    with path.open("wb") as stream:
        PcapWriter(stream).flush()


def expected_document(summary: CaptureSummary) -> dict[str, object]:
    """Return the contents of the expected file for the mixed capture."""
    return {
        "capture": summary.name,
        "packets": summary.packets,
        "frame_bytes": summary.frame_bytes,
        "mean_frame_bytes": round(summary.mean_frame_bytes, 1),
        "packets_by_kind": dict(sorted(summary.packets_by_kind.items())),
        "mining_flows": [flow.to_json() for flow in summary.mining_flows],
    }


def generate(
    outdir: Path,
    packets: int = DEFAULT_PACKETS,
    flood_flows: int = DEFAULT_FLOOD_FLOWS,
    mining_flows: int = DEFAULT_MINING_FLOWS,
) -> tuple[CaptureSummary, CaptureSummary]:
    """Write the mixed capture, its expected file, the flood and the empty
    capture into ``outdir``, creating it if needed.

    Raises:
        ValueError: a size is out of range.
        OSError: ``outdir`` cannot be written.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    mixed = write_mixed(outdir / MIXED_NAME, packets, mining_flows)
    document = expected_document(mixed)
    text = json.dumps(document, indent=1) + "\n"
    (outdir / EXPECTED_NAME).write_text(text, encoding="utf-8")
    flood = write_flood(outdir / FLOOD_NAME, flood_flows)
    write_empty(outdir / EMPTY_NAME)
    return mixed, flood
