"""Sample packets for the decoder tests, built with scapy and struct."""

from __future__ import annotations

import struct

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from detector.model import Packet

PAYLOAD = b'{"id":1,"method":"login","params":{}}\n'
CLIENT_V4 = "10.1.2.3"
SERVER_V4 = "198.51.100.7"
CLIENT_V6 = "2001:db8::10"
SERVER_V6 = "2001:db8:0:1::7"


def packet(
    data: bytes,
    linktype: int = 1,
    timestamp: float = 1.0,
    number: int = 1,
    wire_length: int | None = None,
) -> Packet:
    if wire_length is None:
        wire_length = len(data)
    return Packet(timestamp, linktype, data, wire_length, "test", 0, number)


def tcp_v4(payload: bytes = PAYLOAD) -> ScapyPacket:
    return (
        IP(src=CLIENT_V4, dst=SERVER_V4, id=7)
        / TCP(sport=40000, dport=3333, seq=1000, ack=2000, flags="PA")
        / Raw(payload)
    )


def udp_v4(payload: bytes = PAYLOAD) -> ScapyPacket:
    return IP(src=CLIENT_V4, dst=SERVER_V4) / UDP(sport=5353, dport=53) / Raw(payload)


def tcp_v6(payload: bytes = PAYLOAD) -> ScapyPacket:
    return (
        IPv6(src=CLIENT_V6, dst=SERVER_V6)
        / TCP(sport=40000, dport=3333, seq=1000, ack=2000, flags="PA")
        / Raw(payload)
    )


def ethernet(network: ScapyPacket) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / network)


def sll(network: bytes, ethertype: int) -> bytes:
    """Prefix a Linux cooked-mode (SLL) header: outgoing, ARPHRD_ETHER."""
    address = b"\x02\x00\x00\x00\x00\x01\x00\x00"
    return struct.pack("!HHH8sH", 4, 1, 6, address, ethertype) + network


def sll2(network: bytes, ethertype: int) -> bytes:
    """Prefix a Linux cooked-mode version 2 (SLL2) header on interface 3."""
    address = b"\x02\x00\x00\x00\x00\x01\x00\x00"
    return struct.pack("!HHIHBB8s", ethertype, 0, 3, 1, 4, 6, address) + network
