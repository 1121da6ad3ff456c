"""Live capture with libpcap, read in batches, and the discovery of bridges.

:class:`LiveCapture` opens one interface through pcapy-ng, which carries its
own libpcap, with a kernel BPF filter and promiscuous mode. It hands the
packets over as :class:`~detector.capture.batch.PacketBatch` values. One call
into the binding returns every packet libpcap has ready, so a busy interface
costs one Python call per batch rather than per packet.
:func:`container_bridges` finds the bridges container engines create.
"""

from __future__ import annotations

import fnmatch
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pcapy

from detector.capture.batch import PacketBatch
from detector.errors import CaptureError

# Names of the bridges container engines create: Docker's default network,
# Docker's user-defined networks (br- and 12 hex digits of the network id),
# the CNI bridge plugin's default (cni0), kubenet's (cbr0), and podman's
# (podman0, podman1, ...).
CONTAINER_BRIDGES = ("docker0", "br-*", "cni0", "cbr0", "podman*")

# IPv4 and IPv6, with or without one 802.1Q tag. ARP, STP and LLDP frames on
# a bridge carry no flow, so the kernel drops them before they are copied.
DEFAULT_FILTER = "ip or ip6 or (vlan and (ip or ip6))"

# The default filter on links without VLAN tags (raw IP such as tun and
# WireGuard devices, Linux cooked capture), where libpcap rejects "vlan".
PLAIN_IP_FILTER = "ip or ip6"

# libpcap's pseudo-interface that captures on every interface at once, in the
# Linux cooked capture format. It is never listed among the interfaces.
ANY_INTERFACE = "any"

# Whole packets: a Stratum login or a TLS ClientHello may fill a full frame,
# and libpcap's default snapshot length is this value.
DEFAULT_SNAPLEN = 262_144

# Milliseconds libpcap waits before handing over a partly filled buffer. The
# capture is read when the buffer fills or this time passes, so it bounds the
# delay between a packet and its inspection, well inside one second.
READ_TIMEOUT_MS = 100

# Bytes of the kernel's ring buffer per interface. At 150,000 packets/s of
# 200 bytes (the rate pcapy-ng keeps up with on one core) this stores about
# half a second of traffic, time for a batch of inspection to finish.
DEFAULT_BUFFER_BYTES = 16 * 1024 * 1024

# Packets taken from libpcap in one call: a batch big enough to amortise the
# per-batch numpy work, small enough that alerts are not held back.
MAX_BATCH_PACKETS = 8192

# pcap_activate()'s error codes (pcap/pcap.h) and what they mean here.
_NO_SUCH_DEVICE = -5
_ACTIVATE_ERRORS = {
    -1: "libpcap could not open it",
    _NO_SUCH_DEVICE: "no such interface",
    -7: "it does not support promiscuous mode",
    -8: "permission denied",
    -9: "the interface is down",
    -11: "promiscuous mode is not permitted",
}

_PERMISSION_HINT = (
    "capturing needs root, or the capabilities CAP_NET_RAW and CAP_NET_ADMIN"
    " (see docs/live.md)"
)


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """libpcap's running totals for one open interface."""

    received: int
    dropped: int
    interface_dropped: int


def check_filter(bpf: str, snaplen: int = DEFAULT_SNAPLEN) -> None:
    """Compile ``bpf`` for Ethernet, to refuse a bad filter before capturing.

    Raises:
        CaptureError: the filter does not compile.
    """
    try:
        pcapy.compile(pcapy.DLT_EN10MB, snaplen, bpf, 1, 0)
    except pcapy.PcapError as exc:
        raise CaptureError(
            "--filter",
            f"{bpf!r} does not compile: {exc}; see pcap-filter(7) for the syntax",
        ) from exc


def _filter_for(bpf: str, linktype: int) -> str:
    """Return the filter to set on a link: the default filter loses its VLAN
    part on links that cannot carry tags."""
    if bpf == DEFAULT_FILTER and linktype != pcapy.DLT_EN10MB:
        return PLAIN_IP_FILTER
    return bpf


def interface_names() -> dict[str, int]:
    """Return the interfaces of this network namespace: name to ifindex.

    Read through the kernel (if_nameindex), not /sys, which may show another
    namespace's interfaces after a namespace switch that did not remount it.
    """
    return {name: index for index, name in socket.if_nameindex()}


def select_interfaces(patterns: Iterable[str], names: Iterable[str]) -> list[str]:
    """Return the ``names`` that match any of the shell-style ``patterns``."""
    chosen = list(patterns)
    return sorted(
        name
        for name in names
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in chosen)
    )


def container_bridges(names: Iterable[str]) -> list[str]:
    """Return the container bridges among ``names``."""
    return select_interfaces(CONTAINER_BRIDGES, names)


class LiveCapture:
    """One interface captured through libpcap, read without blocking.

    Raises:
        CaptureError: from the constructor, when the interface cannot be
            opened (it does not exist, or the process lacks the
            capabilities) or the filter does not compile.
    """

    def __init__(
        self,
        interface: str,
        *,
        bpf: str = DEFAULT_FILTER,
        snaplen: int = DEFAULT_SNAPLEN,
        promiscuous: bool = True,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    ) -> None:
        self.interface = interface
        self._packets = 0
        try:
            handle = pcapy.create(interface)
            handle.set_snaplen(snaplen)
            handle.set_promisc(1 if promiscuous else 0)
            handle.set_timeout(READ_TIMEOUT_MS)
            handle.set_buffer_size(buffer_bytes)
            status = handle.activate()
        except pcapy.PcapError as exc:
            raise CaptureError(
                interface, f"cannot open the interface: {exc}; {_PERMISSION_HINT}"
            ) from exc
        if status is not None and status < 0:
            reason = _ACTIVATE_ERRORS.get(status, f"libpcap error {status}")
            if status == _NO_SUCH_DEVICE:
                reason += "; check the name with 'ip link'"
            if status in (-1, -8, -11):
                reason += f"; {_PERMISSION_HINT}"
            handle.close()
            raise CaptureError(interface, f"cannot open the interface: {reason}")
        try:
            handle.setfilter(_filter_for(bpf, int(handle.datalink())))
        except (pcapy.PcapError, pcapy.BPFError) as exc:
            handle.close()
            raise CaptureError(
                interface,
                f"the filter {bpf!r} does not compile for this link: {exc};"
                " see pcap-filter(7) for the syntax",
            ) from exc
        handle.setnonblock(1)
        self.linktype = int(handle.datalink())
        self._handle = handle
        self._fd = int(handle.getfd())

    def fileno(self) -> int:
        """Return the descriptor select() reports readable when packets wait."""
        return self._fd

    def read(self, max_packets: int = MAX_BATCH_PACKETS) -> PacketBatch | None:
        """Return the packets waiting, up to ``max_packets``, or None.

        Raises:
            CaptureError: when the interface went away or failed.
        """
        try:
            data, meta = self._handle.next_batch(max_packets)
        except pcapy.PcapError as exc:
            raise CaptureError(self.interface, f"capture failed: {exc}") from exc
        if not meta:
            return None
        # Four native-endian 32-bit words per packet: seconds, microseconds,
        # offset in ``data`` and captured length.
        fields = np.frombuffer(meta, dtype=np.uint32).reshape(-1, 4).astype(np.int64)
        count = len(fields)
        first = self._packets + 1
        self._packets += count
        lengths = fields[:, 3]
        return PacketBatch(
            source=self.interface,
            data=data,
            offsets=fields[:, 2],
            captured_lengths=lengths,
            # libpcap's batch read gives no original length; the captured one
            # is the same unless the snapshot length cut the packet.
            wire_lengths=lengths,
            timestamps=fields[:, 0] + fields[:, 1] / 1e6,
            linktypes=np.full(count, self.linktype, dtype=np.int64),
            numbers=np.arange(first, first + count, dtype=np.int64),
            record_offsets=np.zeros(count, dtype=np.int64),
        )

    def stats(self) -> CaptureStats:
        """Return libpcap's totals: packets received, dropped by the kernel
        (buffer full), dropped by the interface."""
        try:
            received, dropped, interface_dropped = self._handle.stats()
        except pcapy.PcapError:
            return CaptureStats(self._packets, 0, 0)
        return CaptureStats(int(received), int(dropped), int(interface_dropped))

    @property
    def packets(self) -> int:
        """Packets read from this capture so far."""
        return self._packets

    def close(self) -> None:
        self._handle.close()
