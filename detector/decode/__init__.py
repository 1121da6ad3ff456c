"""Link and network decoding, from captured packets to TCP and UDP segments.

:class:`PacketDecoder` turns each :class:`detector.model.Packet` into a
:class:`detector.model.Segment`, or None for traffic that is not TCP or UDP
over IP, and raises :class:`detector.errors.DecodeError` for malformed packets.
:class:`BatchDecoder` does the same for a whole batch of packets at once.
"""

from __future__ import annotations

from detector.decode.batch import BatchDecoder, DecodedBatch, SegmentBatch
from detector.decode.decoder import (
    MAX_IPV6_EXTENSION_HEADERS,
    MAX_TUNNEL_DEPTH,
    PacketDecoder,
)
from detector.decode.fragments import (
    FRAGMENT_TIMEOUT,
    MAX_DATAGRAM_LENGTH,
    MAX_FRAGMENT_BYTES,
    MAX_FRAGMENT_SETS,
)
from detector.decode.link import MAX_VLAN_TAGS, SUPPORTED_LINKTYPES, UnsupportedLinkType

__all__ = [
    "BatchDecoder",
    "DecodedBatch",
    "SegmentBatch",
    "FRAGMENT_TIMEOUT",
    "MAX_DATAGRAM_LENGTH",
    "MAX_FRAGMENT_BYTES",
    "MAX_FRAGMENT_SETS",
    "MAX_IPV6_EXTENSION_HEADERS",
    "MAX_TUNNEL_DEPTH",
    "MAX_VLAN_TAGS",
    "SUPPORTED_LINKTYPES",
    "PacketDecoder",
    "UnsupportedLinkType",
]
