"""Values passed between the stages of the pipeline.

capture yields :class:`Packet`, decode turns each into a :class:`Segment`, flows
group segments under a :class:`FlowKey`, the engine emits :class:`Evidence` and
:class:`Detection`. Everything here is a frozen, slotted dataclass so a stage
cannot change what an earlier stage produced.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

TCP = "tcp"
UDP = "udp"

# TCP flag bits, as in the TCP header's flags byte (RFC 9293).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10


class Direction(enum.Enum):
    """The direction a segment or message travels within its flow."""

    TO_SERVER = "to_server"
    TO_CLIENT = "to_client"

    def reverse(self) -> Direction:
        if self is Direction.TO_SERVER:
            return Direction.TO_CLIENT
        return Direction.TO_SERVER


class Confidence(enum.IntEnum):
    """The strength with which evidence or a detection points to mining."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Packet:
    """One captured frame.

    ``timestamp`` is in seconds since the Unix epoch. ``offset`` is the byte
    offset of the packet's record in the (decompressed) capture, and ``number``
    its 1-based position, so an error or an alert can point back to it.
    """

    timestamp: float
    linktype: int
    data: bytes
    wire_length: int
    source: str
    offset: int
    number: int


@dataclass(frozen=True, slots=True)
class Segment:
    """The transport layer of one packet: a TCP segment or a UDP datagram.

    IPv4 fragments are reassembled before a segment is made, so ``payload`` is
    the whole transport payload. ``seq``, ``ack`` and ``flags`` are 0 for UDP.
    """

    timestamp: float
    transport: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    payload: bytes
    seq: int = 0
    ack: int = 0
    flags: int = 0
    packet_number: int = 0


@dataclass(frozen=True, slots=True)
class FlowKey:
    """The 5-tuple of a flow, oriented from client to server."""

    transport: str
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int

    def __str__(self) -> str:
        return (
            f"{self.transport} {_endpoint(self.client_ip, self.client_port)}"
            f" -> {_endpoint(self.server_ip, self.server_port)}"
        )


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One fact that points to mining, with its weight.

    ``kind`` is a dotted identifier such as ``stratum.login`` or ``miner.agent``;
    ``detail`` contains the values behind it (method name, agent string, port).
    """

    kind: str
    confidence: Confidence
    description: str
    timestamp: float
    direction: Direction | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MiningFields:
    """The fields read out of a mining flow's messages."""

    dialect: str
    agent: str | None = None
    miner_family: str | None = None
    login: str | None = None
    worker: str | None = None
    wallet: str | None = None
    wallet_coin: str | None = None
    algorithm: str | None = None
    pool_host: str | None = None
    methods_to_server: dict[str, int] = field(default_factory=dict)
    methods_to_client: dict[str, int] = field(default_factory=dict)
    jobs: int = 0
    shares_submitted: int = 0
    shares_accepted: int = 0
    shares_rejected: int = 0
    tls_server_name: str | None = None
    ja3: str | None = None
    ja4: str | None = None
    proxy_target: str | None = None
    dns_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FlowCounters:
    """Packets and payload bytes of a flow, by direction."""

    packets_to_server: int = 0
    packets_to_client: int = 0
    bytes_to_server: int = 0
    bytes_to_client: int = 0


@dataclass(frozen=True, slots=True)
class Container:
    """The identity of a container, or of a pod when several share a network.

    ``runtime`` names where the record came from (``docker``, ``kubernetes``,
    ``cni``, ``static``). Kubernetes fields are None outside Kubernetes.
    ``members`` lists the names of the containers of a pod that share one
    network namespace, so a flow from the pod's address names them all.
    """

    id: str
    name: str
    image: str | None = None
    runtime: str = "docker"
    labels: dict[str, str] = field(default_factory=dict)
    pod: str | None = None
    namespace: str | None = None
    node: str | None = None
    pod_uid: str | None = None
    host: str | None = None
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attribution:
    """Which container a flow's client was, or why that is unknown.

    ``container`` is None when no inventory record matched; ``reason`` then
    says why (no inventory loaded, address not in inventory, inventory older
    than the flow, ...). ``address`` is the client address that was looked
    up, after any NAT mapping; ``nat`` says whether a mapping was applied.
    """

    container: Container | None
    address: str
    reason: str | None = None
    nat: bool = False


@dataclass(frozen=True, slots=True)
class Detection:
    """The verdict that one flow carries mining traffic, with all its evidence."""

    source: str
    flow: FlowKey
    first_seen: float
    last_seen: float
    confidence: Confidence
    evidence: tuple[Evidence, ...]
    mining: MiningFields
    counters: FlowCounters
    stream_gaps: int = 0
    attribution: Attribution | None = None
    session_id: str | None = None
