"""Decoding of whole batches of packets with numpy.

:class:`BatchDecoder` decodes the common layouts of a batch at once. The link
layer is Ethernet, Linux cooked capture (SLL or SLL2) or raw IP, with at most
one 802.1Q tag. The network layer is IPv4 that is not a fragment (any header
length) or IPv6 without extension headers, and the transport TCP or UDP. Every
other packet (QinQ, LLC/SNAP, fragments, extension
headers, tunnels, loopback headers, anything truncated or inconsistent) goes
through the per-packet :class:`~detector.decode.decoder.PacketDecoder`, so the
batch gives exactly the segments, errors and fragment state that decoding each
packet would.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from detector.decode.decoder import (
    IPPROTO_IPIP,
    IPPROTO_IPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV6_WALKED_HEADERS,
    PacketDecoder,
)
from detector.decode.link import (
    ARPHRD_NETLINK,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    LINK_DECODERS,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    LINKTYPE_RAW_BSD,
    LINKTYPE_RAW_OPENBSD,
    MAX_8023_LENGTH,
    VLAN_TPIDS,
)
from detector.errors import DecodeError
from detector.model import TCP, Packet, Segment

# Packet kinds, as the batch decoder classifies each packet.
PER_PACKET = 0  # left to PacketDecoder
SEGMENT = 1  # a TCP segment or UDP datagram, decoded here
NO_SEGMENT = 2  # PacketDecoder would return None: not IP, or not TCP or UDP
UNSUPPORTED = 3  # PacketDecoder would raise UnsupportedLinkType

# Addresses are 16-byte rows, and an IPv4 address fills the first 4 bytes.
ADDRESS_BYTES = 16

_TRANSPORTS = {IPPROTO_TCP: TCP, IPPROTO_UDP: "udp"}
_TRANSPORT_NUMBERS = {name: number for number, name in _TRANSPORTS.items()}
_IP_TUNNEL_NUMBERS = (IPPROTO_IPIP, IPPROTO_IPV6)


def _member_table(members: object, size: int) -> NDArray[np.bool_]:
    """Return a lookup table, True at each of ``members``, for values below
    ``size``; np.isin costs far more per call on arrays of a batch's size."""
    table = np.zeros(size + 1, dtype=np.bool_)
    table[sorted(members)] = True  # type: ignore[call-overload]
    return table


# Lookup tables over 16-bit fields (link types, EtherTypes) and 8-bit ones (IP
# protocols). Link types are 16 bits in pcap and pcapng; a larger value is
# clipped to the last entry, which is False.
_UINT16_VALUES = 1 << 16
_UINT8_VALUES = 1 << 8
_SUPPORTED_LINKTYPES = _member_table(LINK_DECODERS, _UINT16_VALUES)
_RAW_LINKTYPES = _member_table(
    (LINKTYPE_RAW, LINKTYPE_RAW_BSD, LINKTYPE_RAW_OPENBSD), _UINT16_VALUES
)
_VLAN_TPIDS = _member_table(VLAN_TPIDS, _UINT16_VALUES)
_IP_TUNNELS = _member_table(_IP_TUNNEL_NUMBERS, _UINT8_VALUES)
_IPV6_NOT_FINAL = _member_table(
    {*IPV6_WALKED_HEADERS, *_IP_TUNNEL_NUMBERS}, _UINT8_VALUES
)

# Header sizes and field offsets, as in the per-packet decoder.
_ETHERNET_HEADER = 14
_SLL_HEADER = 16
_SLL2_HEADER = 20
_VLAN_TAG = 4
_IPV4_MIN_HEADER = 20
_IPV6_HEADER = 40
_TCP_MIN_HEADER = 20
_UDP_HEADER = 8
# IPv4 flags and fragment offset: "more fragments" and the 13-bit offset.
_IPV4_FRAGMENT_BITS = 0x3FFF
# Bytes read from the start of a TCP header: ports, sequence and
# acknowledgement numbers, data offset and flags.
_TCP_FIELDS = 14

Int64Array = NDArray[np.int64]


class PacketColumns(Protocol):
    """The packets of a batch as the batch decoder reads them.

    :class:`detector.capture.batch.PacketBatch` is one.
    """

    @property
    def data(self) -> bytes | bytearray: ...

    @property
    def offsets(self) -> Int64Array: ...

    @property
    def captured_lengths(self) -> Int64Array: ...

    @property
    def timestamps(self) -> NDArray[np.float64]: ...

    @property
    def linktypes(self) -> Int64Array: ...

    @property
    def numbers(self) -> Int64Array: ...

    def __len__(self) -> int: ...

    def packet(self, index: int) -> Packet: ...


@dataclass(frozen=True, slots=True, eq=False)
class SegmentBatch:
    """The TCP segments and UDP datagrams of a batch, in packet order, as arrays.

    Row ``i`` is one segment. ``transports`` contains IP protocol numbers (6 for
    TCP, 17 for UDP), ``ip_versions`` 4 or 6, and the address rows the
    addresses in network byte order (an IPv4 address in the first 4 bytes,
    the rest zero). ``flags``, ``seqs`` and ``acks`` are 0 for UDP. The payload
    of row ``i`` is ``data[payload_offsets[i] : + payload_lengths[i]]``, except
    for rows in ``payloads`` (reassembled fragments and other packets decoded
    one by one), whose payload is kept there. ``packet_indices`` are positions
    in the packet batch and ``numbers`` the packet numbers in the capture.
    """

    data: bytes | bytearray
    packet_indices: Int64Array
    numbers: Int64Array
    timestamps: NDArray[np.float64]
    transports: Int64Array
    ip_versions: Int64Array
    source_addresses: NDArray[np.uint8]
    destination_addresses: NDArray[np.uint8]
    source_ports: Int64Array
    destination_ports: Int64Array
    flags: Int64Array
    seqs: Int64Array
    acks: Int64Array
    payload_offsets: Int64Array
    payload_lengths: Int64Array
    payloads: dict[int, bytes] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.packet_indices)

    def payload(self, index: int) -> bytes:
        """Return the transport payload of row ``index``."""
        kept = self.payloads.get(index)
        if kept is not None:
            return kept
        start = int(self.payload_offsets[index])
        end = start + int(self.payload_lengths[index])
        return bytes(memoryview(self.data)[start:end])

    def segment(self, index: int) -> Segment:
        """Return row ``index`` as the :class:`Segment` PacketDecoder would make."""
        return Segment(
            float(self.timestamps[index]),
            _TRANSPORTS[int(self.transports[index])],
            address_text(self.source_addresses[index], int(self.ip_versions[index])),
            int(self.source_ports[index]),
            address_text(
                self.destination_addresses[index], int(self.ip_versions[index])
            ),
            int(self.destination_ports[index]),
            self.payload(index),
            int(self.seqs[index]),
            int(self.acks[index]),
            int(self.flags[index]),
            int(self.numbers[index]),
        )


def address_text(row: NDArray[np.uint8], version: int) -> str:
    """Return an address row as text, as PacketDecoder writes it."""
    if version == 4:
        return socket.inet_ntoa(row[:4].tobytes())
    return socket.inet_ntop(socket.AF_INET6, row.tobytes())


@dataclass(frozen=True, slots=True, eq=False)
class DecodedBatch:
    """The result of decoding a batch: its segments and the packets that failed.

    ``malformed`` lists the packet number and error of every malformed packet,
    in order. ``unsupported`` counts packets by link type, for link types with
    no decoder, in the order each type was first seen.
    """

    segments: SegmentBatch
    malformed: list[tuple[int, DecodeError]]
    unsupported: dict[int, int]


class BatchDecoder:
    """Stateful decoder from batches of packets to batches of segments.

    Like :class:`PacketDecoder`, whose fragment state it shares, one decoder
    serves one capture from start to end. ``packet_decoder`` decodes the
    packets the batch path leaves aside.
    """

    def __init__(self) -> None:
        self.packet_decoder = PacketDecoder()
        # The latest packet timestamp seen: PacketDecoder expires fragments
        # by the timestamp of every packet, including those decoded here.
        self._clock = -np.inf

    @property
    def fragments_expired(self) -> int:
        """Number of fragment sets dropped for timeout or for the memory limits."""
        return self.packet_decoder.fragments_expired

    def decode(self, batch: PacketColumns) -> DecodedBatch:
        """Decode every packet of ``batch``; errors are returned, not raised."""
        count = len(batch)
        layout = _Layout(batch)
        malformed: list[tuple[int, DecodeError]] = []
        unsupported: dict[int, int] = {}
        kinds = layout.kinds
        for linktype in _first_seen(batch.linktypes[kinds == UNSUPPORTED]):
            unsupported[linktype] = int(np.count_nonzero(batch.linktypes == linktype))
        odd = np.flatnonzero(kinds == PER_PACKET)
        payloads: dict[int, bytes] = {}
        if len(odd):
            clock = np.maximum.accumulate(batch.timestamps)
            for index in odd.tolist():
                if index:
                    self._advance(float(clock[index - 1]))
                packet = batch.packet(index)
                try:
                    segment = self.packet_decoder.decode(packet)
                except DecodeError as error:
                    malformed.append((packet.number, error))
                    continue
                if segment is not None:
                    layout.put(index, segment)
                    payloads[index] = segment.payload
        if count:
            self._advance(float(np.max(batch.timestamps)))
        return DecodedBatch(layout.segments(payloads), malformed, unsupported)

    def _advance(self, now: float) -> None:
        if now > self._clock:
            self._clock = now
            self.packet_decoder.expire_fragments(now)


def _first_seen(values: Int64Array) -> list[int]:
    unique, first = np.unique(values, return_index=True)
    return [int(value) for value in unique[np.argsort(first)]]


class _Layout:
    """The fields of every packet of a batch, decoded with numpy.

    Rows whose ``kinds`` is SEGMENT contain a decoded segment. The other rows
    contain whatever the arithmetic gave and are never read.
    """

    def __init__(self, batch: PacketColumns) -> None:
        count = len(batch)
        self.data = batch.data
        self.batch = batch
        self.kinds = np.full(count, PER_PACKET, dtype=np.int64)
        self.transports = np.zeros(count, dtype=np.int64)
        self.ip_versions = np.zeros(count, dtype=np.int64)
        self.sources = np.zeros((count, ADDRESS_BYTES), dtype=np.uint8)
        self.destinations = np.zeros((count, ADDRESS_BYTES), dtype=np.uint8)
        self.source_ports = np.zeros(count, dtype=np.int64)
        self.destination_ports = np.zeros(count, dtype=np.int64)
        self.flags = np.zeros(count, dtype=np.int64)
        self.seqs = np.zeros(count, dtype=np.int64)
        self.acks = np.zeros(count, dtype=np.int64)
        self.payload_offsets = np.zeros(count, dtype=np.int64)
        self.payload_lengths = np.zeros(count, dtype=np.int64)
        supported = _SUPPORTED_LINKTYPES[np.clip(batch.linktypes, 0, _UINT16_VALUES)]
        self.kinds[~supported] = UNSUPPORTED
        if count and batch.data:
            self._decode()

    # -- reading bytes -------------------------------------------------------

    def _bytes(self, rows: Int64Array, positions: Int64Array) -> Int64Array:
        """Return the byte at ``positions`` (from each packet's start) of ``rows``.

        Positions past the buffer read its last byte, so callers must mask
        rows whose packets are too short.
        """
        raw = np.frombuffer(self.data, dtype=np.uint8)
        index = self.batch.offsets[rows] + positions
        return raw.take(index, mode="clip").astype(np.int64)

    def _u16(self, rows: Int64Array, positions: Int64Array) -> Int64Array:
        return (self._bytes(rows, positions) << 8) | self._bytes(rows, positions + 1)

    def _block(
        self, rows: Int64Array, positions: Int64Array, width: int
    ) -> NDArray[np.uint8]:
        """Return ``width`` bytes from ``positions`` of each row, one row each."""
        raw = np.frombuffer(self.data, dtype=np.uint8)
        start = self.batch.offsets[rows] + positions
        index = start[:, None] + np.arange(width, dtype=np.int64)
        return raw.take(index, mode="clip")

    # -- layers ----------------------------------------------------------------

    def _decode(self) -> None:
        linktypes = self.batch.linktypes
        lengths = self.batch.captured_lengths
        rows = np.flatnonzero(self.kinds == PER_PACKET)
        linktype = linktypes[rows]
        ethernet = linktype == LINKTYPE_ETHERNET
        sll = linktype == LINKTYPE_LINUX_SLL
        sll2 = linktype == LINKTYPE_LINUX_SLL2
        framed = ethernet | sll | sll2
        header = np.select(
            [ethernet, sll, sll2], [_ETHERNET_HEADER, _SLL_HEADER, _SLL2_HEADER], 0
        )
        captured = lengths[rows]
        complete = captured >= header
        ethertype = self._u16(rows, np.select([ethernet, sll], [12, 14], 0))
        arphrd = self._u16(rows, np.where(sll, 2, 8))
        netlink = (sll | sll2) & (arphrd == ARPHRD_NETLINK) & complete
        tagged = framed & _VLAN_TPIDS[ethertype]
        inner = self._u16(rows, header + 2)
        ethertype = np.where(tagged, inner, ethertype)
        network = header + _VLAN_TAG * tagged
        usable = framed & complete & ~netlink & (captured >= network)
        usable &= ~(tagged & _VLAN_TPIDS[inner])
        usable &= ethertype > MAX_8023_LENGTH
        ipv4 = usable & (ethertype == ETHERTYPE_IPV4)
        ipv6 = usable & (ethertype == ETHERTYPE_IPV6)
        not_ip = usable & ~ipv4 & ~ipv6

        raw = _RAW_LINKTYPES[np.clip(linktype, 0, _UINT16_VALUES)] & (captured > 0)
        version = self._bytes(rows, np.zeros(len(rows), dtype=np.int64)) >> 4
        ipv4 |= (raw & (version == 4)) | (linktype == LINKTYPE_IPV4)
        ipv6 |= (raw & (version == 6)) | (linktype == LINKTYPE_IPV6)
        network = np.where(framed, network, 0)

        self.kinds[rows[netlink | not_ip]] = NO_SEGMENT
        self._ipv4(rows[ipv4], network[ipv4])
        self._ipv6(rows[ipv6], network[ipv6])

    def _ipv4(self, rows: Int64Array, start: Int64Array) -> None:
        captured = self.batch.captured_lengths[rows] - start
        first = self._bytes(rows, start)
        header = (first & 0x0F) * 4
        total = self._u16(rows, start + 2)
        total = np.where(total == 0, captured, total)
        fragment = self._u16(rows, start + 6) & _IPV4_FRAGMENT_BITS
        protocol = self._bytes(rows, start + 9)

        valid = (
            (captured >= _IPV4_MIN_HEADER)
            & (first >> 4 == 4)
            & (header >= _IPV4_MIN_HEADER)
            & (header <= captured)
            & (total >= header)
            & (fragment == 0)
        )
        transport = valid & ((protocol == IPPROTO_TCP) | (protocol == IPPROTO_UDP))
        other = valid & ~transport & ~_IP_TUNNELS[protocol]
        self.kinds[rows[other]] = NO_SEGMENT

        keep = np.flatnonzero(transport)
        rows = rows[keep]
        start = start[keep]
        addresses = self._block(rows, start + 12, 8)
        self.sources[rows, :4] = addresses[:, :4]
        self.destinations[rows, :4] = addresses[:, 4:]
        self.ip_versions[rows] = 4
        self._transport(
            rows,
            protocol[keep],
            start + header[keep],
            start + total[keep],
        )

    def _ipv6(self, rows: Int64Array, start: Int64Array) -> None:
        lengths = self.batch.captured_lengths[rows]
        captured = lengths - start
        version = self._bytes(rows, start) >> 4
        payload_length = self._u16(rows, start + 4)
        next_header = self._bytes(rows, start + 6)
        valid = (captured >= _IPV6_HEADER) & (version == 6)
        transport = valid & (
            (next_header == IPPROTO_TCP) | (next_header == IPPROTO_UDP)
        )
        other = valid & ~transport & ~_IPV6_NOT_FINAL[next_header]
        self.kinds[rows[other]] = NO_SEGMENT
        keep = np.flatnonzero(transport)
        rows = rows[keep]
        start = start[keep]
        payload_length = payload_length[keep]
        addresses = self._block(rows, start + 8, 2 * ADDRESS_BYTES)
        self.sources[rows] = addresses[:, :ADDRESS_BYTES]
        self.destinations[rows] = addresses[:, ADDRESS_BYTES:]
        self.ip_versions[rows] = 6
        # A payload length of 0 is a jumbogram or a GSO packet: the IP payload
        # runs to the end of the captured bytes.
        declared_end = np.where(
            payload_length == 0,
            self.batch.captured_lengths[rows],
            start + _IPV6_HEADER + payload_length,
        )
        self._transport(rows, next_header[keep], start + _IPV6_HEADER, declared_end)

    def _transport(
        self,
        rows: Int64Array,
        protocol: Int64Array,
        start: Int64Array,
        declared_end: Int64Array,
    ) -> None:
        """Decode TCP or UDP from ``start``; the IP payload ends at ``declared_end``."""
        end = np.minimum(declared_end, self.batch.captured_lengths[rows])
        available = end - start
        fields = self._block(rows, start, _TCP_FIELDS).astype(np.int64)
        source_port = (fields[:, 0] << 8) | fields[:, 1]
        destination_port = (fields[:, 2] << 8) | fields[:, 3]
        tcp = protocol == IPPROTO_TCP

        header = (fields[:, 12] >> 4) * 4
        payload_start = start + header
        tcp_valid = (
            tcp
            & (available >= _TCP_MIN_HEADER)
            & (header >= _TCP_MIN_HEADER)
            & (payload_start <= declared_end)
        )

        udp_length = (fields[:, 4] << 8) | fields[:, 5]
        udp_end = np.where(udp_length == 0, end, np.minimum(end, start + udp_length))
        udp_valid = (
            ~tcp
            & (available >= _UDP_HEADER)
            & (
                (udp_length == 0)
                | ((udp_length >= _UDP_HEADER) & (start + udp_length <= declared_end))
            )
        )
        valid = tcp_valid | udp_valid
        keep = np.flatnonzero(valid)
        rows = rows[keep]
        tcp = tcp[keep]
        self.kinds[rows] = SEGMENT
        self.transports[rows] = protocol[keep]
        self.source_ports[rows] = source_port[keep]
        self.destination_ports[rows] = destination_port[keep]
        word = fields[keep]
        self.seqs[rows] = np.where(
            tcp,
            (word[:, 4] << 24) | (word[:, 5] << 16) | (word[:, 6] << 8) | word[:, 7],
            0,
        )
        self.acks[rows] = np.where(
            tcp,
            (word[:, 8] << 24) | (word[:, 9] << 16) | (word[:, 10] << 8) | word[:, 11],
            0,
        )
        self.flags[rows] = np.where(tcp, word[:, 13], 0)
        first = np.where(tcp, payload_start[keep], start[keep] + _UDP_HEADER)
        # When the snap length cut the TCP options, no payload was captured.
        tcp_last = np.maximum(end[keep], payload_start[keep])
        last = np.where(tcp, tcp_last, udp_end[keep])
        self.payload_offsets[rows] = self.batch.offsets[rows] + first
        self.payload_lengths[rows] = last - first

    # -- results ---------------------------------------------------------------

    def put(self, index: int, segment: Segment) -> None:
        """Store a segment that PacketDecoder decoded from packet ``index``."""
        self.kinds[index] = SEGMENT
        self.transports[index] = _TRANSPORT_NUMBERS[segment.transport]
        for row, text in (
            (self.sources, segment.src_ip),
            (self.destinations, segment.dst_ip),
        ):
            packed = _pack_address(text)
            row[index] = 0
            row[index, : len(packed)] = np.frombuffer(packed, dtype=np.uint8)
        self.ip_versions[index] = 6 if ":" in segment.src_ip else 4
        self.source_ports[index] = segment.src_port
        self.destination_ports[index] = segment.dst_port
        self.flags[index] = segment.flags
        self.seqs[index] = segment.seq
        self.acks[index] = segment.ack
        self.payload_offsets[index] = 0
        self.payload_lengths[index] = len(segment.payload)

    def segments(self, payloads: dict[int, bytes]) -> SegmentBatch:
        rows = np.flatnonzero(self.kinds == SEGMENT)
        indices = list(payloads)
        positions = np.searchsorted(rows, np.array(indices, dtype=np.int64)).tolist()
        return SegmentBatch(
            self.data,
            rows,
            self.batch.numbers[rows],
            self.batch.timestamps[rows],
            self.transports[rows],
            self.ip_versions[rows],
            self.sources[rows],
            self.destinations[rows],
            self.source_ports[rows],
            self.destination_ports[rows],
            self.flags[rows],
            self.seqs[rows],
            self.acks[rows],
            self.payload_offsets[rows],
            self.payload_lengths[rows],
            {
                row: payloads[index]
                for row, index in zip(positions, indices, strict=True)
            },
        )


def _pack_address(text: str) -> bytes:
    if ":" in text:
        return socket.inet_pton(socket.AF_INET6, text)
    return socket.inet_aton(text)
