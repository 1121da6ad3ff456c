"""Link layers decode with scapy to the IP packet they wrap."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether

from detector.model import Direction
from detector.trafficgen.conversation import Endpoint, tcp_conversation, to_server
from detector.trafficgen.links import (
    GATEWAY_MAC,
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    PACKET_HOST,
    PACKET_OUTGOING,
    Ethernet,
    LinuxCooked,
    LinuxCookedV2,
    RawIP,
    host_mac,
)

CLIENT = Endpoint("172.17.0.2", 40000)
SERVER = Endpoint("203.0.113.10", 3333)
PACKETS = tcp_conversation(CLIENT, SERVER, [to_server(b"x")], start_ns=0)
SYN = PACKETS[0]
SYN_ACK = PACKETS[1]


def test_host_mac_follows_docker_scheme() -> None:
    assert host_mac("172.17.0.2") == "02:42:ac:11:00:02"


def test_ethernet_macs_by_direction() -> None:
    outgoing = Ether(Ethernet().frame(SYN))
    incoming = Ether(Ethernet().frame(SYN_ACK))
    assert outgoing.src == "02:42:ac:11:00:02"
    assert outgoing.dst == GATEWAY_MAC
    assert incoming.src == GATEWAY_MAC
    assert incoming.dst == "02:42:ac:11:00:02"
    assert outgoing[IP].dst == SERVER.ip
    assert Ethernet().linktype == LINKTYPE_ETHERNET


def test_vlan_tag() -> None:
    frame = Ether(Ethernet(vlan_ids=(100,)).frame(SYN))
    assert frame.type == 0x8100
    assert frame[Dot1Q].vlan == 100
    assert frame[TCP].dport == SERVER.port


def test_qinq_tags() -> None:
    frame = Ether(Ethernet(vlan_ids=(200, 100)).frame(SYN))
    assert frame.type == 0x88A8
    assert frame[Dot1AD].vlan == 200
    assert frame[Dot1Q].vlan == 100
    assert IP in frame


@pytest.mark.parametrize("vlan_ids", [(0,), (4095,), (1, 2, 3)])
def test_invalid_vlan_ids(vlan_ids: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        Ethernet(vlan_ids=vlan_ids)


def test_linux_cooked_v1() -> None:
    raw = LinuxCooked().frame(SYN)
    packet_type, hardware_type, address_length = struct.unpack_from(">HHH", raw)
    assert packet_type == PACKET_OUTGOING
    assert hardware_type == 1
    assert address_length == 6
    assert raw[6:12] == bytes.fromhex("0242ac110002")
    assert struct.unpack_from(">H", raw, 14)[0] == 0x0800
    assert CookedLinux(LinuxCooked().frame(SYN_ACK)).pkttype == PACKET_HOST
    assert IP in CookedLinux(raw)
    assert LinuxCooked().linktype == LINKTYPE_LINUX_SLL


def test_linux_cooked_v2() -> None:
    raw = LinuxCookedV2(interface_index=7).frame(SYN)
    protocol, _, interface_index = struct.unpack_from(">HHI", raw)
    assert protocol == 0x0800
    assert interface_index == 7
    decoded = CookedLinuxV2(raw)
    assert decoded.pkttype == PACKET_OUTGOING
    assert decoded[IP].src == CLIENT.ip
    assert len(raw) - len(bytes(SYN.packet)) == 20
    assert LinuxCookedV2().linktype == LINKTYPE_LINUX_SLL2


def test_raw_ip() -> None:
    assert RawIP().frame(SYN) == bytes(SYN.packet)
    assert RawIP().linktype == LINKTYPE_RAW


def test_ipv6_ethertype() -> None:
    client = Endpoint("2001:db8:1::2", 40000)
    server = Endpoint("2001:db8:2::10", 3333)
    packet = tcp_conversation(client, server, [to_server(b"x")], start_ns=0)[0]
    assert packet.direction is Direction.TO_SERVER
    frame = Ether(Ethernet().frame(packet))
    assert frame.type == 0x86DD
    assert frame[IPv6].dst == server.ip
    cooked = LinuxCooked().frame(packet)
    assert struct.unpack_from(">H", cooked, 14)[0] == 0x86DD
