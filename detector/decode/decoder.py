"""Decoding of captured packets into TCP segments and UDP datagrams.

The decoder walks link layer, IPv4 or IPv6 (with extension headers, fragments
and IP-in-IP tunnels) and TCP or UDP, using ``struct`` and slicing on the
captured bytes. Checksums are not verified: on the sending host, captures see
packets before the network card fills in offloaded checksums.

A capture cut by its snap length is not malformed. The decoder uses the bytes
it has, so the payload of a cut packet is shorter than the IP header declares.
Only a header that does not fit in the captured bytes, or that contradicts the
lengths around it, raises :class:`~detector.errors.DecodeError`.

NOTE: MPLS, PPPoE, GRE, VXLAN and Geneve are not decoded, so traffic inside
them returns None as if it were not IP.
"""

from __future__ import annotations

import socket
import struct

from detector.decode.fragments import FragmentReassembler
from detector.decode.link import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    LINK_DECODERS,
    LINKTYPE_ETHERNET,
    UnsupportedLinkType,
)
from detector.errors import DecodeError
from detector.model import TCP, UDP, Packet, Segment

IPPROTO_HOPOPTS = 0
IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60

# IPv6 extension headers whose length field counts 8-octet units after the
# first 8 octets (RFC 8200 and, for Mobility, HIP, Shim6 and the experimental
# values, RFC 7045).
_IPV6_EXTENSION_HEADERS = {
    IPPROTO_HOPOPTS: "hop-by-hop options",
    IPPROTO_ROUTING: "routing",
    IPPROTO_DSTOPTS: "destination options",
    135: "mobility",
    139: "HIP",
    140: "Shim6",
    253: "experimental",
    254: "experimental",
}

IPV6_WALKED_HEADERS = frozenset(
    {*_IPV6_EXTENSION_HEADERS, IPPROTO_AH, IPPROTO_FRAGMENT}
)

# RFC 8200 section 4.1 recommends each extension header at most once and
# Destination Options at most twice, so a conforming packet carries no more
# than 8. A longer chain is malformed or built to slow the decoder down.
MAX_IPV6_EXTENSION_HEADERS = 8

# IP-in-IP and IPv6-in-IPv4 tunnels nest once, and a tunnel inside a tunnel is
# already unusual. The limit bounds the recursion on crafted packets.
MAX_TUNNEL_DEPTH = 4

_IPV4_MIN_HEADER = 20
_IPV6_HEADER = 40
_TCP_MIN_HEADER = 20
_UDP_HEADER = 8
_IPV6_FRAGMENT_HEADER = 8
# IPv4 flags and fragment offset field: "more fragments" bit and the offset in
# 8-byte units. A packet is a fragment when either is set.
_IPV4_MORE_FRAGMENTS = 0x2000
_IPV4_OFFSET_MASK = 0x1FFF
_IPV6_OFFSET_MASK = 0xFFF8
_IPV6_MORE_FRAGMENTS = 0x0001

# The fast path takes Ethernet frames that start with the IPv4 EtherType and
# a version 4 header of 20 bytes (first byte 0x45), carry TCP and are not
# fragments: the "more fragments" bit and the high offset bits are in byte 20,
# the low offset bits in byte 21.
_ETHERNET_IPV4_PLAIN = b"\x08\x00\x45"
_FRAGMENT_BITS_HIGH = 0x3F
_FAST_MIN_LENGTH = 14 + 20 + 20

_unpack_ipv4 = struct.Struct("!2xHHHxB").unpack_from
_unpack_ipv6 = struct.Struct("!4xHB").unpack_from
_unpack_tcp = struct.Struct("!HHIIBB").unpack_from
_unpack_udp = struct.Struct("!HHH").unpack_from
_unpack_ipv6_fragment = struct.Struct("!BxHI").unpack_from
_inet_ntoa = socket.inet_ntoa


def _inet6_ntoa(address: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, address)


class PacketDecoder:
    """Stateful decoder from :class:`Packet` to :class:`Segment`.

    The state is the pending IP fragments, so one decoder serves one capture
    (or one live source) from start to end. Addresses are text as glibc's
    ``inet_ntop`` writes them: dotted quads for IPv4 and the compressed form
    of RFC 5952 for IPv6. IPv4-mapped IPv6 addresses keep the dotted form
    (``::ffff:192.0.2.1``), which ``str(ipaddress.IPv6Address)`` in Python 3.11
    does not.
    """

    def __init__(self) -> None:
        self._fragments = FragmentReassembler()

    @property
    def fragments_pending(self) -> int:
        """Number of IP fragment sets waiting for more fragments."""
        return self._fragments.pending

    @property
    def fragments_expired(self) -> int:
        """Number of fragment sets dropped for timeout or for the memory limits."""
        return self._fragments.expired

    def expire_fragments(self, now: float) -> None:
        """Drop the fragment sets that timed out by ``now``, a capture timestamp.

        :meth:`decode` does this for each packet it is given. A caller that
        decodes some packets without it calls this with the latest timestamp
        of those packets before the next :meth:`decode`, which leaves the same
        fragment sets as decoding every packet would.
        """
        if now >= self._fragments.next_expiry:
            self._fragments.expire(now)

    def decode(self, packet: Packet) -> Segment | None:
        """Return the TCP segment or UDP datagram carried by ``packet``.

        Returns None for a packet that is not TCP or UDP over IP (ARP, ICMP,
        IPv6 neighbour discovery, ESP, ...) and for a fragment whose datagram
        is not yet complete. A packet that completes a datagram returns the
        reassembled segment with this packet's timestamp and number.

        Raises:
            UnsupportedLinkType: the packet's link type has no decoder.
            DecodeError: a header is truncated or inconsistent. The message
                names the layer and the field.
        """
        if packet.timestamp >= self._fragments.next_expiry:
            self._fragments.expire(packet.timestamp)
        data = packet.data
        if (
            packet.linktype == LINKTYPE_ETHERNET
            and len(data) >= _FAST_MIN_LENGTH
            and data[12:15] == _ETHERNET_IPV4_PLAIN
            and data[23] == IPPROTO_TCP
            and not (data[20] & _FRAGMENT_BITS_HIGH or data[21])
        ):
            segment = _fast_tcp(packet, data)
            if segment is not None:
                return segment
        link_decoder = LINK_DECODERS.get(packet.linktype)
        if link_decoder is None:
            raise UnsupportedLinkType(packet.linktype)
        ethertype, offset = link_decoder(data)
        if ethertype == ETHERTYPE_IPV4:
            return self._ipv4(packet, data, offset, 0)
        if ethertype == ETHERTYPE_IPV6:
            return self._ipv6(packet, data, offset, 0)
        return None

    def _ipv4(
        self, packet: Packet, data: bytes, offset: int, depth: int
    ) -> Segment | None:
        captured = len(data) - offset
        if captured < _IPV4_MIN_HEADER:
            raise DecodeError(
                f"IPv4 header truncated: {captured} bytes captured, the minimum"
                f" header is {_IPV4_MIN_HEADER}"
            )
        version = data[offset] >> 4
        if version != 4:
            raise DecodeError(f"IPv4 version field is {version}, expected 4")
        words = data[offset] & 0x0F
        if words < 5:
            raise DecodeError(
                f"IPv4 header length {words} words is below the minimum 5"
            )
        header_length = words * 4
        if header_length > captured:
            raise DecodeError(
                f"IPv4 header length {header_length} bytes is beyond the"
                f" {captured} bytes captured"
            )
        total_length, identification, fragment_field, protocol = _unpack_ipv4(
            data, offset
        )
        if total_length == 0:
            # Linux writes 0 for GSO packets above 64 KiB (BIG TCP), so the
            # captured bytes are the only measure of their length.
            total_length = captured
        elif total_length < header_length:
            raise DecodeError(
                f"IPv4 total length {total_length} is below the header length"
                f" {header_length}"
            )
        start = offset + header_length
        declared_end = offset + total_length
        end = min(declared_end, len(data))
        addresses = data[offset + 12 : offset + 20]

        if fragment_field & (_IPV4_MORE_FRAGMENTS | _IPV4_OFFSET_MASK):
            completed = self._fragments.add(
                (addresses, protocol, identification),
                packet.timestamp,
                (fragment_field & _IPV4_OFFSET_MASK) * 8,
                bool(fragment_field & _IPV4_MORE_FRAGMENTS),
                data[start:end],
                declared_end - start,
                protocol,
            )
            if completed is None:
                return None
            data = completed[1]
            start = 0
            end = declared_end = len(data)

        if protocol == IPPROTO_TCP:
            return _tcp(
                packet,
                _inet_ntoa(addresses[:4]),
                _inet_ntoa(addresses[4:]),
                data,
                start,
                end,
                declared_end,
            )
        if protocol == IPPROTO_UDP:
            return _udp(
                packet,
                _inet_ntoa(addresses[:4]),
                _inet_ntoa(addresses[4:]),
                data,
                start,
                end,
                declared_end,
            )
        if protocol == IPPROTO_IPIP or protocol == IPPROTO_IPV6:
            return self._tunnel(packet, protocol, data[start:end], depth)
        return None

    def _ipv6(
        self, packet: Packet, data: bytes, offset: int, depth: int
    ) -> Segment | None:
        captured = len(data) - offset
        if captured < _IPV6_HEADER:
            raise DecodeError(
                f"IPv6 header truncated: {captured} bytes captured, the header"
                f" is {_IPV6_HEADER}"
            )
        version = data[offset] >> 4
        if version != 6:
            raise DecodeError(f"IPv6 version field is {version}, expected 6")
        payload_length, next_header = _unpack_ipv6(data, offset)
        source = data[offset + 8 : offset + 24]
        destination = data[offset + 24 : offset + 40]
        start = offset + _IPV6_HEADER
        if payload_length == 0:
            # A jumbogram (RFC 2675) or a GSO packet above 64 KiB: the length
            # is in a hop-by-hop option or only in the capture.
            declared_end = len(data)
        else:
            declared_end = start + payload_length
        end = min(declared_end, len(data))

        extension_headers = 0
        while True:
            if next_header == IPPROTO_TCP:
                return _tcp(
                    packet,
                    _inet6_ntoa(source),
                    _inet6_ntoa(destination),
                    data,
                    start,
                    end,
                    declared_end,
                )
            if next_header == IPPROTO_UDP:
                return _udp(
                    packet,
                    _inet6_ntoa(source),
                    _inet6_ntoa(destination),
                    data,
                    start,
                    end,
                    declared_end,
                )
            if next_header == IPPROTO_IPIP or next_header == IPPROTO_IPV6:
                return self._tunnel(packet, next_header, data[start:end], depth)
            if next_header not in IPV6_WALKED_HEADERS:
                # ESP, no next header, ICMPv6 and any other upper layer.
                return None
            extension_headers += 1
            if extension_headers > MAX_IPV6_EXTENSION_HEADERS:
                raise DecodeError(
                    f"IPv6 extension header chain is longer than the maximum"
                    f" {MAX_IPV6_EXTENSION_HEADERS} headers"
                )
            if next_header != IPPROTO_FRAGMENT:
                length = _extension_header_length(data, start, end, next_header)
                next_header = data[start]
                start += length
                continue

            _need(end - start, _IPV6_FRAGMENT_HEADER, "IPv6 fragment header")
            fragment_next, fragment_field, identification = _unpack_ipv6_fragment(
                data, start
            )
            start += _IPV6_FRAGMENT_HEADER
            fragment_offset = fragment_field & _IPV6_OFFSET_MASK
            more = bool(fragment_field & _IPV6_MORE_FRAGMENTS)
            if fragment_offset == 0 and not more:
                # An atomic fragment (RFC 6946) is a whole datagram.
                next_header = fragment_next
                continue
            completed = self._fragments.add(
                (source, destination, identification),
                packet.timestamp,
                fragment_offset,
                more,
                data[start:end],
                declared_end - start,
                fragment_next,
            )
            if completed is None:
                return None
            next_header, data = completed
            start = 0
            end = declared_end = len(data)

    def _tunnel(
        self, packet: Packet, protocol: int, inner: bytes, depth: int
    ) -> Segment | None:
        if depth >= MAX_TUNNEL_DEPTH:
            raise DecodeError(
                f"IP tunnel nesting is deeper than the maximum {MAX_TUNNEL_DEPTH}"
            )
        if protocol == IPPROTO_IPIP:
            return self._ipv4(packet, inner, 0, depth + 1)
        return self._ipv6(packet, inner, 0, depth + 1)


def _fast_tcp(packet: Packet, data: bytes) -> Segment | None:
    """Decode Ethernet, a 20-byte IPv4 header and TCP without a call per layer.

    The caller has checked the EtherType, IPv4 version and header length, the
    protocol and that the packet is not a fragment. Returns None for anything
    else unusual, which the general path then decodes or reports.
    """
    total_length = (data[16] << 8) | data[17]
    header_length = (data[46] >> 4) * 4
    end = min(14 + total_length, len(data))
    if total_length < 40 or header_length < 20 or 34 + header_length > end:
        return None
    source_port, destination_port, seq, ack, _, flags = _unpack_tcp(data, 34)
    return Segment(
        packet.timestamp,
        TCP,
        _inet_ntoa(data[26:30]),
        source_port,
        _inet_ntoa(data[30:34]),
        destination_port,
        data[34 + header_length : end],
        seq,
        ack,
        flags,
        packet.number,
    )


def _extension_header_length(
    data: bytes, start: int, end: int, next_header: int
) -> int:
    """Return the length of the IPv6 extension header (not a fragment header).

    Raises:
        DecodeError: the header is truncated or runs past the packet.
    """
    if next_header == IPPROTO_AH:
        name = "authentication"
        _need(end - start, 2, "IPv6 authentication header")
        # RFC 4302: the AH length counts 32-bit words, minus 2.
        length = (data[start + 1] + 2) * 4
    else:
        name = _IPV6_EXTENSION_HEADERS[next_header]
        _need(end - start, 2, f"IPv6 {name} header")
        length = (data[start + 1] + 1) * 8
    if start + length > end:
        raise DecodeError(
            f"IPv6 {name} header length {length} is beyond the"
            f" {end - start} bytes left in the packet"
        )
    return length


def _need(available: int, needed: int, what: str) -> None:
    if available < needed:
        raise DecodeError(
            f"{what} truncated: {available} bytes left in the packet, the header"
            f" needs at least {needed}"
        )


def _tcp(
    packet: Packet,
    source: str,
    destination: str,
    data: bytes,
    start: int,
    end: int,
    declared_end: int,
) -> Segment:
    available = end - start
    if available < _TCP_MIN_HEADER:
        raise DecodeError(
            f"TCP header truncated: {available} bytes captured, the minimum"
            f" header is {_TCP_MIN_HEADER}"
        )
    source_port, destination_port, seq, ack, data_offset, flags = _unpack_tcp(
        data, start
    )
    header_length = (data_offset >> 4) * 4
    if header_length < _TCP_MIN_HEADER:
        raise DecodeError(
            f"TCP data offset {data_offset >> 4} words is below the minimum 5"
        )
    payload_start = start + header_length
    if payload_start <= end:
        payload = data[payload_start:end]
    elif payload_start <= declared_end:
        # The snap length cut the TCP options, so no payload was captured.
        payload = b""
    else:
        raise DecodeError(
            f"TCP data offset {header_length} bytes is beyond the"
            f" {declared_end - start} bytes of the IP payload"
        )
    return Segment(
        packet.timestamp,
        TCP,
        source,
        source_port,
        destination,
        destination_port,
        payload,
        seq,
        ack,
        flags,
        packet.number,
    )


def _udp(
    packet: Packet,
    source: str,
    destination: str,
    data: bytes,
    start: int,
    end: int,
    declared_end: int,
) -> Segment:
    available = end - start
    if available < _UDP_HEADER:
        raise DecodeError(
            f"UDP header truncated: {available} bytes captured, the header is"
            f" {_UDP_HEADER}"
        )
    source_port, destination_port, length = _unpack_udp(data, start)
    if length:
        if length < _UDP_HEADER:
            raise DecodeError(
                f"UDP length {length} is below the header length {_UDP_HEADER}"
            )
        if start + length > declared_end:
            raise DecodeError(
                f"UDP length {length} is beyond the {declared_end - start} bytes"
                " of the IP payload"
            )
        end = min(end, start + length)
    # A UDP length of 0 marks a jumbogram (RFC 2675) or a GSO packet, whose
    # payload runs to the end of the IP payload.
    return Segment(
        packet.timestamp,
        UDP,
        source,
        source_port,
        destination,
        destination_port,
        data[start + _UDP_HEADER : end],
        0,
        0,
        0,
        packet.number,
    )
