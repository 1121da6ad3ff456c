"""Tests for the link layers, decoded through PacketDecoder."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.l2 import ARP, LLC, SNAP, Dot1AD, Dot1Q, Dot3, Ether

from detector.decode import (
    MAX_VLAN_TAGS,
    SUPPORTED_LINKTYPES,
    PacketDecoder,
    UnsupportedLinkType,
)
from detector.errors import DecodeError
from detector.model import TCP, Segment
from tests.decode.samples import (
    CLIENT_V4,
    CLIENT_V6,
    PAYLOAD,
    SERVER_V4,
    SERVER_V6,
    ethernet,
    packet,
    sll,
    sll2,
    tcp_v4,
    tcp_v6,
)

IPV4 = 0x0800
IPV6 = 0x86DD


def decode(data: bytes, linktype: int = 1) -> Segment | None:
    return PacketDecoder().decode(packet(data, linktype))


def assert_v4_segment(segment: Segment | None) -> None:
    assert segment is not None
    assert segment.transport == TCP
    assert segment.src_ip == CLIENT_V4
    assert segment.dst_ip == SERVER_V4
    assert segment.src_port == 40000
    assert segment.dst_port == 3333
    assert segment.payload == PAYLOAD


def assert_v6_segment(segment: Segment | None) -> None:
    assert segment is not None
    assert segment.src_ip == CLIENT_V6
    assert segment.dst_ip == SERVER_V6
    assert segment.payload == PAYLOAD


def test_ethernet_ipv4() -> None:
    assert_v4_segment(decode(ethernet(tcp_v4())))


def test_ethernet_ipv6() -> None:
    assert_v6_segment(decode(ethernet(tcp_v6())))


def test_vlan_tag() -> None:
    frame = bytes(Ether() / Dot1Q(vlan=42) / tcp_v4())

    assert_v4_segment(decode(frame))


@pytest.mark.parametrize("outer_tpid", [0x88A8, 0x9100, 0x8100])
def test_qinq_tags(outer_tpid: int) -> None:
    frame = bytearray(bytes(Ether() / Dot1AD(vlan=100) / Dot1Q(vlan=42) / tcp_v6()))
    frame[12:14] = outer_tpid.to_bytes(2, "big")

    assert_v6_segment(decode(bytes(frame)))


def tagged_frame(tags: int) -> bytes:
    header = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02"))[:12]
    for index in range(tags):
        header += struct.pack("!HH", 0x8100, index + 1)
    return header + struct.pack("!H", IPV4) + bytes(tcp_v4())


def test_vlan_stack_at_maximum() -> None:
    assert_v4_segment(decode(tagged_frame(MAX_VLAN_TAGS)))


def test_vlan_stack_beyond_maximum() -> None:
    with pytest.raises(DecodeError, match="802.1Q tag stack"):
        decode(tagged_frame(MAX_VLAN_TAGS + 1))


def test_vlan_tag_truncated() -> None:
    frame = bytes(Ether() / Dot1Q(vlan=42) / tcp_v4())[:16]

    with pytest.raises(DecodeError, match="802.1Q tag 1 truncated"):
        decode(frame)


def test_llc_snap_ipv4() -> None:
    frame = bytes(
        Dot3() / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(code=IPV4) / tcp_v4()
    )

    assert_v4_segment(decode(frame))


def test_llc_without_snap_is_not_ip() -> None:
    frame = bytes(Dot3() / LLC(dsap=0x42, ssap=0x42, ctrl=3) / (b"\0" * 40))

    assert decode(frame) is None


def test_arp_is_not_ip() -> None:
    assert decode(bytes(Ether() / ARP())) is None


def test_ethernet_header_truncated() -> None:
    with pytest.raises(DecodeError, match="Ethernet header truncated"):
        decode(b"\0" * 13)


def test_linux_sll() -> None:
    assert_v4_segment(decode(sll(bytes(tcp_v4()), IPV4), 113))


def test_linux_sll_vlan() -> None:
    tagged = struct.pack("!HH", 42, IPV6) + bytes(tcp_v6())

    assert_v6_segment(decode(sll(tagged, 0x8100), 113))


def test_linux_sll_netlink_is_not_ip() -> None:
    header = struct.pack("!HHH8sH", 4, 824, 0, bytes(8), IPV4)

    assert decode(header + bytes(tcp_v4()), 113) is None


def test_linux_sll2() -> None:
    assert_v6_segment(decode(sll2(bytes(tcp_v6()), IPV6), 276))


@pytest.mark.parametrize("linktype", [113, 276])
def test_cooked_header_truncated(linktype: int) -> None:
    with pytest.raises(DecodeError, match="Linux SLL"):
        decode(b"\0" * 15, linktype)


@pytest.mark.parametrize("linktype", [101, 12, 14])
def test_raw_ip_both_versions(linktype: int) -> None:
    assert_v4_segment(decode(bytes(tcp_v4()), linktype))
    assert_v6_segment(decode(bytes(tcp_v6()), linktype))


def test_raw_ip_bad_version() -> None:
    with pytest.raises(DecodeError, match="raw IP version field is 5"):
        decode(b"\x50" + bytes(39), 101)


def test_raw_ip_empty() -> None:
    with pytest.raises(DecodeError, match="raw IP packet is empty"):
        decode(b"", 101)


def test_raw_ipv4_and_ipv6_linktypes() -> None:
    assert_v4_segment(decode(bytes(tcp_v4()), 228))
    assert_v6_segment(decode(bytes(tcp_v6()), 229))


def test_raw_ipv4_linktype_rejects_ipv6() -> None:
    with pytest.raises(DecodeError, match="IPv4 version field is 6"):
        decode(bytes(tcp_v6()), 228)


@pytest.mark.parametrize("byte_order", ["little", "big"])
@pytest.mark.parametrize("family", [24, 28, 30])
def test_bsd_loopback_ipv6(byte_order: str, family: int) -> None:
    header = family.to_bytes(4, byte_order)  # type: ignore[arg-type]

    assert_v6_segment(decode(header + bytes(tcp_v6()), 0))


@pytest.mark.parametrize("byte_order", ["little", "big"])
def test_bsd_loopback_ipv4(byte_order: str) -> None:
    header = (2).to_bytes(4, byte_order)  # type: ignore[arg-type]

    assert_v4_segment(decode(header + bytes(tcp_v4()), 0))


def test_bsd_loopback_other_family() -> None:
    assert decode((7).to_bytes(4, "little") + bytes(tcp_v4()), 0) is None


def test_openbsd_loopback() -> None:
    assert_v4_segment(decode((2).to_bytes(4, "big") + bytes(tcp_v4()), 108))
    assert_v6_segment(decode((24).to_bytes(4, "big") + bytes(tcp_v6()), 108))


def test_loopback_header_truncated() -> None:
    with pytest.raises(DecodeError, match="loopback header truncated"):
        decode(b"\x02\x00", 0)


def test_unsupported_linktype() -> None:
    with pytest.raises(UnsupportedLinkType) as caught:
        decode(bytes(tcp_v4()), 147)

    assert caught.value.linktype == 147
    assert isinstance(caught.value, DecodeError)
    assert "link type 147 is not supported" in str(caught.value)
    assert "1 (ETHERNET)" in str(caught.value)


def test_supported_linktypes_all_decode() -> None:
    expected = {0, 1, 12, 14, 101, 108, 113, 228, 229, 276}

    assert set(SUPPORTED_LINKTYPES) == expected
    for linktype in SUPPORTED_LINKTYPES:
        try:
            PacketDecoder().decode(packet(b"", linktype))
        except UnsupportedLinkType:
            pytest.fail(f"link type {linktype} is listed but has no decoder")
        except DecodeError:
            pass
