"""Packets of alerted flows, kept in memory and written as pcap files.

The capture loop hands :class:`EvidenceRecorder` the packets it inspects, keyed
by flow. When a flow is alerted, :meth:`EvidenceRecorder.write` saves that
flow's packets so far as a classic pcap file, which a person can open in
Wireshark to check the alert. Memory is bounded per flow, in flows and in
bytes, so a flood of flows cannot exhaust it.
"""

from __future__ import annotations

import logging
import math
import os
import re
import struct
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from detector.capture.limits import MAX_RECORD_LENGTH
from detector.errors import DetectorError

logger = logging.getLogger(__name__)

# The inspector judges a flow within its first few messages, such as a Stratum
# login and its reply or a TLS ClientHello. With the TCP handshake and the
# acknowledgements, those fit in far fewer than 64 packets.
MAX_PACKETS_PER_FLOW = 64
# Record bytes (pcap record header and captured bytes) kept per flow. 256 KiB
# contains the first messages even when a capture on a bridge shows them as
# segmentation-offload packets of up to 64 KiB each.
MAX_BYTES_PER_FLOW = 256 * 1024
# Flows kept at once. Only flows still being inspected need their packets,
# because alerts come within seconds of a flow's start. 4096 of those at once
# is an estimate for a busy host. Beyond it the least recently added flow is
# dropped first.
MAX_FLOWS = 4096
# Record bytes kept over all flows. MAX_FLOWS flows of MAX_BYTES_PER_FLOW each
# would be 1 GiB, so this cap keeps the worst case at 64 MiB. Typical flows
# (a handshake and a few KiB of Stratum) take a few KiB each, so MAX_FLOWS of
# them fit.
MAX_BYTES = 64 * 1024 * 1024

# Classic pcap, microsecond timestamps, written in little-endian byte order
# (magic 0xa1b2c3d4, version 2.4).
PCAP_MAGIC = 0xA1B2C3D4
PCAP_VERSION = (2, 4)
FILE_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")
# The file's snap length: the longest record that readers, including this
# project's, accept (libpcap's MAXIMUM_SNAPLEN).
SNAPLEN = MAX_RECORD_LENGTH
MAX_UINT32 = 0xFFFFFFFF

# Characters of a sanitised name kept, so "<name>.pcap" and the temporary
# name beside it stay within the 255-byte file name limit of Linux file
# systems.
MAX_NAME_CHARS = 200
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(slots=True)
class _KeptFlow:
    # (timestamp, link type, captured bytes, wire length) per packet.
    packets: list[tuple[float, int, bytes, int]] = field(default_factory=list)
    size: int = 0
    packets_not_kept: int = 0


class EvidenceRecorder:
    """Keep the first packets of each flow and write them as pcap on request.

    A flow keeps at most ``max_packets_per_flow`` packets and
    ``max_bytes_per_flow`` record bytes (pcap record header and captured
    bytes). Its later packets are counted but not kept. At most ``max_flows``
    flows and ``max_bytes`` record bytes are kept overall, and the least
    recently added flow is dropped first. ``evicted_flows`` counts the flows
    dropped that way.

    The folder is created if missing. Methods are called from one thread.

    Raises:
        DetectorError: from the constructor when the folder cannot be created
            or written to, and from :meth:`write` when writing the file fails.
        ValueError: a bound is less than 1, or ``max_bytes`` is smaller than
            ``max_bytes_per_flow``.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        max_packets_per_flow: int = MAX_PACKETS_PER_FLOW,
        max_bytes_per_flow: int = MAX_BYTES_PER_FLOW,
        max_flows: int = MAX_FLOWS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        bounds = {
            "max_packets_per_flow": max_packets_per_flow,
            "max_bytes_per_flow": max_bytes_per_flow,
            "max_flows": max_flows,
            "max_bytes": max_bytes,
        }
        for name, bound in bounds.items():
            if bound < 1:
                raise ValueError(f"{name} must be 1 or more, not {bound}")
        if max_bytes < max_bytes_per_flow:
            raise ValueError(
                f"max_bytes ({max_bytes}) must be at least max_bytes_per_flow"
                f" ({max_bytes_per_flow})"
            )
        self.folder = Path(folder)
        self.max_packets_per_flow = max_packets_per_flow
        self.max_bytes_per_flow = max_bytes_per_flow
        self.max_flows = max_flows
        self.max_bytes = max_bytes
        self.evicted_flows = 0
        self._flows: OrderedDict[bytes, _KeptFlow] = OrderedDict()
        self._size = 0
        _prepare_folder(self.folder)

    @property
    def flows(self) -> int:
        """The number of flows with packets kept."""
        return len(self._flows)

    @property
    def kept_bytes(self) -> int:
        """The record bytes kept over all flows."""
        return self._size

    def add(
        self,
        key: bytes,
        timestamp: float,
        linktype: int,
        data: bytes,
        wire_length: int,
    ) -> None:
        """Keep a packet of the flow ``key`` unless the flow's bounds are full.

        ``timestamp`` is in seconds since the epoch and ``wire_length`` is the
        packet's length on the wire, ``data`` its captured bytes.
        """
        flow = self._flows.get(key)
        if flow is None:
            flow = _KeptFlow()
            self._flows[key] = flow
        else:
            self._flows.move_to_end(key)
        record_size = RECORD_HEADER.size + len(data)
        if (
            len(flow.packets) >= self.max_packets_per_flow
            or flow.size + record_size > self.max_bytes_per_flow
        ):
            flow.packets_not_kept += 1
        else:
            flow.packets.append((timestamp, linktype, bytes(data), wire_length))
            flow.size += record_size
            self._size += record_size
        # The flow just added is the most recent, so it is evicted last, and
        # the bounds checked in the constructor let it stay.
        self._evict()

    def forget(self, key: bytes) -> None:
        """Drop the packets kept for ``key``, as when its flow ends."""
        flow = self._flows.pop(key, None)
        if flow is not None:
            self._size -= flow.size

    def write(self, key: bytes, name: str) -> Path | None:
        """Write the packets kept for ``key`` to ``folder/<name>.pcap``.

        ``name`` is sanitised first (see :func:`safe_file_name`). The file is
        written under a temporary name and renamed, so a reader never sees
        half a file, and an earlier file of the same name is replaced. The
        link type is that of the flow's first packet, and packets of another
        link type are left out and logged. Returns the path, or None when
        nothing is kept for ``key``.

        Raises:
            DetectorError: writing or renaming the file failed.
            ValueError: ``name`` is empty after sanitising.
        """
        flow = self._flows.get(key)
        if flow is None or not flow.packets:
            return None
        path = self.folder / f"{safe_file_name(name)}.pcap"
        linktype = flow.packets[0][1]
        content, other_linktypes = _pcap_bytes(flow.packets, linktype)
        _write_atomically(path, content)
        if other_linktypes:
            logger.warning(
                "evidence %s: %d packets with a link type other than %d were left out",
                path,
                other_linktypes,
                linktype,
            )
        if flow.packets_not_kept:
            logger.info(
                "evidence %s contains only the first %d packets of the flow:"
                " %d later packets exceeded the per-flow bounds",
                path,
                len(flow.packets),
                flow.packets_not_kept,
            )
        return path

    def _evict(self) -> None:
        while len(self._flows) > self.max_flows or self._size > self.max_bytes:
            _, flow = self._flows.popitem(last=False)
            self._size -= flow.size
            self.evicted_flows += 1
            if self.evicted_flows == 1:
                logger.warning(
                    "evidence recorder full (%d flows or %d bytes): the packets"
                    " of the least recently added flows are dropped from now on",
                    self.max_flows,
                    self.max_bytes,
                )


def safe_file_name(name: str) -> str:
    """Make ``name`` a file name of ``[A-Za-z0-9._-]`` only.

    Other characters become ``_``, as does a leading ``.``, so the name can
    be neither hidden nor ``.`` or ``..``. The result is cut to
    :data:`MAX_NAME_CHARS` characters.

    Raises:
        ValueError: ``name`` is empty.
    """
    if not name:
        raise ValueError("an evidence file name must not be empty")
    safe = _UNSAFE_NAME_CHARACTERS.sub("_", name)
    if safe.startswith("."):
        safe = "_" + safe[1:]
    return safe[:MAX_NAME_CHARS]


def _prepare_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Creating a file tests writability for real. Permission bits miss a
        # read-only mount, and root passes every permission check.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise DetectorError(
            f"creating or writing to the evidence folder {folder} failed:"
            f" {error}; choose another folder or fix its permissions"
        ) from error


def _pcap_bytes(
    packets: list[tuple[float, int, bytes, int]], linktype: int
) -> tuple[bytes, int]:
    """Return a pcap file of the packets with ``linktype``, and the number left out."""
    major, minor = PCAP_VERSION
    parts = [FILE_HEADER.pack(PCAP_MAGIC, major, minor, 0, 0, SNAPLEN, linktype)]
    other_linktypes = 0
    for timestamp, packet_linktype, data, wire_length in packets:
        if packet_linktype != linktype:
            other_linktypes += 1
            continue
        seconds, microseconds = _pcap_time(timestamp)
        wire_length = min(max(wire_length, len(data)), MAX_UINT32)
        parts.append(RECORD_HEADER.pack(seconds, microseconds, len(data), wire_length))
        parts.append(data)
    return b"".join(parts), other_linktypes


def _pcap_time(timestamp: float) -> tuple[int, int]:
    # pcap stores unsigned 32-bit seconds. A time outside that range comes only
    # from a broken clock and is written as the nearest end of the range.
    if not math.isfinite(timestamp):
        timestamp = 0.0
    total = round(timestamp * 1_000_000)
    total = min(max(total, 0), MAX_UINT32 * 1_000_000 + 999_999)
    seconds, microseconds = divmod(total, 1_000_000)
    return seconds, microseconds


def _write_atomically(path: Path, content: bytes) -> None:
    temporary = ""
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
        with open(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
        raise DetectorError(f"writing evidence {path} failed: {error}") from error
