"""Link-layer decoding: find the network protocol and where its header starts.

Each link decoder takes the captured bytes of one packet and returns an
``(ethertype, offset)`` pair: the EtherType of the network layer (0x0800 for
IPv4, 0x86DD for IPv6, anything else is not IP) and the offset of its header.
Link types without an EtherType of their own (raw IP, BSD loopback) are mapped
to the EtherType of the protocol they carry.
"""

from __future__ import annotations

from collections.abc import Callable

from detector.errors import DecodeError

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
NOT_IP = 0

# 802.1Q customer tags (0x8100), 802.1ad service tags (0x88a8) and the
# pre-standard QinQ tag that some switches still send (0x9100).
VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100})

# QinQ stacks two tags and carrier networks rarely more than three. Eight is
# well past any real network, so a longer stack is a malformed frame.
MAX_VLAN_TAGS = 8

# Values up to 1500 in the EtherType position are IEEE 802.3 lengths, and an
# LLC/SNAP header with this prefix then carries the EtherType (RFC 1042).
MAX_8023_LENGTH = 1500
_SNAP_PREFIX = b"\xaa\xaa\x03\x00\x00\x00"

_ETHERNET_HEADER_LENGTH = 14
_SLL_HEADER_LENGTH = 16
_SLL2_HEADER_LENGTH = 20
_LOOPBACK_HEADER_LENGTH = 4
# Linux ARPHRD_NETLINK: the SLL protocol field contains a netlink family
# instead of an EtherType.
ARPHRD_NETLINK = 824

# Address families in BSD loopback headers. AF_INET6 differs between systems:
# 24 on NetBSD and OpenBSD, 28 on FreeBSD and 30 on macOS.
_AF_INET = 2
_AF_INET6 = frozenset({24, 28, 30})

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
# DLT_RAW is 12 on most BSDs and 14 on OpenBSD. libpcap writes 101 to files,
# but older writers stored the platform value, so both are read as raw IP.
LINKTYPE_RAW_BSD = 12
LINKTYPE_RAW_OPENBSD = 14

SUPPORTED_LINKTYPES: dict[int, str] = {
    LINKTYPE_NULL: "NULL",
    LINKTYPE_ETHERNET: "ETHERNET",
    LINKTYPE_RAW_BSD: "RAW",
    LINKTYPE_RAW_OPENBSD: "RAW",
    LINKTYPE_RAW: "RAW",
    LINKTYPE_LOOP: "LOOP",
    LINKTYPE_LINUX_SLL: "LINUX_SLL",
    LINKTYPE_IPV4: "IPV4",
    LINKTYPE_IPV6: "IPV6",
    LINKTYPE_LINUX_SLL2: "LINUX_SLL2",
}


class UnsupportedLinkType(DecodeError):
    """The packet's link type has no decoder; ``linktype`` is its number."""

    def __init__(self, linktype: int) -> None:
        self.linktype = linktype
        supported = ", ".join(
            f"{number} ({name})" for number, name in SUPPORTED_LINKTYPES.items()
        )
        super().__init__(
            f"link type {linktype} is not supported; the decoder reads link"
            f" types {supported}"
        )


LinkDecoder = Callable[[bytes], tuple[int, int]]


def decode_ethernet(data: bytes) -> tuple[int, int]:
    """Return the EtherType and network-header offset of an Ethernet frame.

    VLAN tags are skipped, and an 802.3 frame with an LLC/SNAP header gives the
    EtherType in its SNAP header.

    Raises:
        DecodeError: the Ethernet header or a VLAN tag is truncated, or the
            frame has more than MAX_VLAN_TAGS tags.
    """
    if len(data) < _ETHERNET_HEADER_LENGTH:
        raise DecodeError(
            f"Ethernet header truncated: {len(data)} bytes captured, the header"
            f" is {_ETHERNET_HEADER_LENGTH}"
        )
    ethertype = (data[12] << 8) | data[13]
    return skip_vlan_tags(data, ethertype, _ETHERNET_HEADER_LENGTH)


def skip_vlan_tags(data: bytes, ethertype: int, offset: int) -> tuple[int, int]:
    """Skip the VLAN tags and LLC/SNAP header that start at ``offset``.

    Raises:
        DecodeError: a tag or the SNAP header is truncated, or there are more
            than MAX_VLAN_TAGS tags.
    """
    tags = 0
    while ethertype in VLAN_TPIDS:
        tags += 1
        if tags > MAX_VLAN_TAGS:
            raise DecodeError(
                f"802.1Q tag stack is deeper than the maximum {MAX_VLAN_TAGS} tags"
            )
        if offset + 4 > len(data):
            raise DecodeError(
                f"802.1Q tag {tags} truncated: {len(data) - offset} bytes"
                " captured, the tag is 4"
            )
        ethertype = (data[offset + 2] << 8) | data[offset + 3]
        offset += 4
    if ethertype <= MAX_8023_LENGTH:
        if data[offset : offset + 6] != _SNAP_PREFIX:
            return NOT_IP, offset
        if offset + 8 > len(data):
            raise DecodeError(
                f"LLC/SNAP header truncated: {len(data) - offset} bytes captured,"
                " the header is 8"
            )
        ethertype = (data[offset + 6] << 8) | data[offset + 7]
        offset += 8
    return ethertype, offset


def decode_linux_sll(data: bytes) -> tuple[int, int]:
    """Decode a Linux cooked-mode header (SLL, link type 113).

    Raises:
        DecodeError: the header or a VLAN tag after it is truncated.
    """
    if len(data) < _SLL_HEADER_LENGTH:
        raise DecodeError(
            f"Linux SLL header truncated: {len(data)} bytes captured, the header"
            f" is {_SLL_HEADER_LENGTH}"
        )
    if ((data[2] << 8) | data[3]) == ARPHRD_NETLINK:
        return NOT_IP, _SLL_HEADER_LENGTH
    protocol = (data[14] << 8) | data[15]
    return skip_vlan_tags(data, protocol, _SLL_HEADER_LENGTH)


def decode_linux_sll2(data: bytes) -> tuple[int, int]:
    """Decode a Linux cooked-mode version 2 header (SLL2, link type 276).

    Raises:
        DecodeError: the header or a VLAN tag after it is truncated.
    """
    if len(data) < _SLL2_HEADER_LENGTH:
        raise DecodeError(
            f"Linux SLL2 header truncated: {len(data)} bytes captured, the header"
            f" is {_SLL2_HEADER_LENGTH}"
        )
    if ((data[8] << 8) | data[9]) == ARPHRD_NETLINK:
        return NOT_IP, _SLL2_HEADER_LENGTH
    protocol = (data[0] << 8) | data[1]
    return skip_vlan_tags(data, protocol, _SLL2_HEADER_LENGTH)


def decode_raw_ip(data: bytes) -> tuple[int, int]:
    """Tell IPv4 from IPv6 by the version field of a raw IP packet.

    Raises:
        DecodeError: the packet is empty or its version is neither 4 nor 6.
    """
    if not data:
        raise DecodeError("raw IP packet is empty: 0 bytes captured")
    version = data[0] >> 4
    if version == 4:
        return ETHERTYPE_IPV4, 0
    if version == 6:
        return ETHERTYPE_IPV6, 0
    raise DecodeError(f"raw IP version field is {version}, expected 4 or 6")


def decode_raw_ipv4(data: bytes) -> tuple[int, int]:
    """Return the IPv4 EtherType: the IPv4 decoder checks the version itself."""
    return ETHERTYPE_IPV4, 0


def decode_raw_ipv6(data: bytes) -> tuple[int, int]:
    """Return the IPv6 EtherType: the IPv6 decoder checks the version itself."""
    return ETHERTYPE_IPV6, 0


def decode_null(data: bytes) -> tuple[int, int]:
    """Decode a BSD loopback header (link type 0).

    The address family is in the byte order of the capturing host, which the
    file does not record. Families are small numbers, so a value that does not
    fit in 16 bits when read little-endian was written big-endian.

    Raises:
        DecodeError: the 4-byte header is truncated.
    """
    header = _loopback_header(data)
    family = int.from_bytes(header, "little")
    if family > 0xFFFF:
        family = int.from_bytes(header, "big")
    return _loopback_ethertype(family), _LOOPBACK_HEADER_LENGTH


def decode_loop(data: bytes) -> tuple[int, int]:
    """Decode an OpenBSD loopback header (link type 108, network byte order).

    Raises:
        DecodeError: the 4-byte header is truncated.
    """
    family = int.from_bytes(_loopback_header(data), "big")
    return _loopback_ethertype(family), _LOOPBACK_HEADER_LENGTH


def _loopback_header(data: bytes) -> bytes:
    if len(data) < _LOOPBACK_HEADER_LENGTH:
        raise DecodeError(
            f"loopback header truncated: {len(data)} bytes captured, the header"
            f" is {_LOOPBACK_HEADER_LENGTH}"
        )
    return data[:_LOOPBACK_HEADER_LENGTH]


def _loopback_ethertype(family: int) -> int:
    if family == _AF_INET:
        return ETHERTYPE_IPV4
    if family in _AF_INET6:
        return ETHERTYPE_IPV6
    return NOT_IP


LINK_DECODERS: dict[int, LinkDecoder] = {
    LINKTYPE_NULL: decode_null,
    LINKTYPE_ETHERNET: decode_ethernet,
    LINKTYPE_RAW_BSD: decode_raw_ip,
    LINKTYPE_RAW_OPENBSD: decode_raw_ip,
    LINKTYPE_RAW: decode_raw_ip,
    LINKTYPE_LOOP: decode_loop,
    LINKTYPE_LINUX_SLL: decode_linux_sll,
    LINKTYPE_IPV4: decode_raw_ipv4,
    LINKTYPE_IPV6: decode_raw_ipv6,
    LINKTYPE_LINUX_SLL2: decode_linux_sll2,
}
