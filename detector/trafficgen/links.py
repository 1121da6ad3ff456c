"""Link layers that wrap the IP packets of a conversation into captured frames.

The capture host is the client's side: a container host capturing on its
bridge. Frames the client sends are outgoing, frames from the server arrive
through the host's gateway.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Protocol

from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether

from detector.model import Direction
from detector.trafficgen.conversation import TimedPacket

# pcap LINKTYPE_ values (tcpdump.org/linktypes.html).
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ARPHRD_ETHER = 1
# Linux packet types (linux/if_packet.h).
PACKET_HOST = 0
PACKET_OUTGOING = 4
# An IEEE 802.1Q tag carries a 12-bit VLAN id, of which 0 and 4095 are reserved.
MAX_VLAN_ID = 4094

# A fixed MAC address for the bridge gateway (172.17.0.1). Frames to and from
# every remote address pass through it.
GATEWAY_MAC = "02:42:ac:11:00:01"


class LinkLayer(Protocol):
    """A link layer: its pcap link type and how it frames one packet."""

    @property
    def linktype(self) -> int: ...

    def frame(self, packet: TimedPacket) -> bytes: ...


def host_mac(ip: str) -> str:
    """Return the MAC address Docker gives a container: ``02:42`` and the last
    four bytes of its address."""
    packed = ipaddress.ip_address(ip).packed[-4:]
    return "02:42:" + ":".join(f"{byte:02x}" for byte in packed)


def _macs(packet: TimedPacket) -> tuple[str, str]:
    local = host_mac(packet.client.ip)
    if packet.direction is Direction.TO_SERVER:
        return local, GATEWAY_MAC
    return GATEWAY_MAC, local


def _ethertype(packet: TimedPacket) -> int:
    return ETHERTYPE_IPV6 if packet.client.version == 6 else ETHERTYPE_IPV4


@dataclass(frozen=True, slots=True)
class Ethernet:
    """Ethernet II, optionally VLAN-tagged.

    One VLAN id gives an 802.1Q tag (TPID 0x8100). Two ids give QinQ: the
    first is the 802.1ad service tag (TPID 0x88a8), the second the customer
    tag (TPID 0x8100).
    """

    vlan_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.vlan_ids) > 2:
            raise ValueError("at most two VLAN tags (QinQ) are supported")
        for vlan_id in self.vlan_ids:
            if not 0 < vlan_id <= MAX_VLAN_ID:
                raise ValueError(f"invalid VLAN id {vlan_id}")

    @property
    def linktype(self) -> int:
        return LINKTYPE_ETHERNET

    def frame(self, packet: TimedPacket) -> bytes:
        source, destination = _macs(packet)
        header = Ether(src=source, dst=destination)
        if len(self.vlan_ids) == 2:
            header = (
                header / Dot1AD(vlan=self.vlan_ids[0]) / Dot1Q(vlan=self.vlan_ids[1])
            )
        elif self.vlan_ids:
            header = header / Dot1Q(vlan=self.vlan_ids[0])
        return bytes(header / packet.packet)


@dataclass(frozen=True, slots=True)
class LinuxCooked:
    """Linux cooked capture v1 (SLL), the header of captures on Linux's ``any``
    device."""

    @property
    def linktype(self) -> int:
        return LINKTYPE_LINUX_SLL

    def frame(self, packet: TimedPacket) -> bytes:
        source, _ = _macs(packet)
        header = CookedLinux(
            pkttype=_packet_type(packet),
            lladdrtype=ARPHRD_ETHER,
            lladdrlen=6,
            src=_mac_bytes(source).ljust(8, b"\0"),
            proto=_ethertype(packet),
        )
        return bytes(header / packet.packet)


@dataclass(frozen=True, slots=True)
class LinuxCookedV2:
    """Linux cooked capture v2 (SLL2), which adds the interface index."""

    interface_index: int = 3

    @property
    def linktype(self) -> int:
        return LINKTYPE_LINUX_SLL2

    def frame(self, packet: TimedPacket) -> bytes:
        source, _ = _macs(packet)
        header = CookedLinuxV2(
            proto=_ethertype(packet),
            reserved=0,
            ifindex=self.interface_index,
            lladdrtype=ARPHRD_ETHER,
            pkttype=_packet_type(packet),
            lladdrlen=6,
            src=_mac_bytes(source).ljust(8, b"\0"),
        )
        return bytes(header / packet.packet)


@dataclass(frozen=True, slots=True)
class RawIP:
    """No link header: the frame starts with the IPv4 or IPv6 header, as on a
    tun interface."""

    @property
    def linktype(self) -> int:
        return LINKTYPE_RAW

    def frame(self, packet: TimedPacket) -> bytes:
        return bytes(packet.packet)


def _packet_type(packet: TimedPacket) -> int:
    return PACKET_OUTGOING if packet.direction is Direction.TO_SERVER else PACKET_HOST


def _mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))
