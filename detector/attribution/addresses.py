"""Addresses a container can hold, in one canonical text form, with a time range.

An IP address is written as :mod:`ipaddress` prints it (IPv6 compressed, an
IPv4-mapped IPv6 address as plain IPv4), a MAC address as six lowercase
colon-separated octets, so the same address always looks up the same key.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

IPV4 = "ipv4"
IPV6 = "ipv6"
MAC = "mac"
# The name of the host-side end of a container's veth pair, such as vethb2c1f0e.
INTERFACE = "interface"
ADDRESS_KINDS = (IPV4, IPV6, MAC, INTERFACE)

# Linux rejects interface names of 16 bytes or more (IFNAMSIZ counts the NUL).
MAX_INTERFACE_NAME = 15

_MAC_PATTERN = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


def normalize_mac(text: str) -> str:
    """Return ``text`` as six lowercase colon-separated octets.

    Raises ValueError unless ``text`` is six hex octets separated by colons or
    by hyphens.
    """
    lowered = text.strip().lower()
    if not _MAC_PATTERN.match(lowered):
        raise ValueError(f"invalid MAC address {text!r}")
    return lowered.replace("-", ":")


def normalize_address(text: str) -> tuple[str, str]:
    """Return the kind (``ipv4``, ``ipv6`` or ``mac``) and canonical form of
    an address.

    Raises ValueError when ``text`` is neither an IP nor a MAC address.
    """
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        pass
    else:
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.ipv4_mapped is not None:
                return IPV4, str(ip.ipv4_mapped)
            return IPV6, ip.compressed
        return IPV4, str(ip)
    try:
        return MAC, normalize_mac(text)
    except ValueError:
        raise ValueError(f"invalid IP or MAC address {text!r}") from None


def normalize_interface(name: str) -> str:
    """Return an interface name unchanged after checking it.

    Raises ValueError when ``name`` is empty, longer than Linux allows, or
    contains a slash or whitespace, which Linux rejects in interface names.
    """
    if not name or len(name.encode()) > MAX_INTERFACE_NAME:
        raise ValueError(
            f"invalid interface name {name!r}: must be 1 to {MAX_INTERFACE_NAME} bytes"
        )
    if "/" in name or any(character.isspace() for character in name):
        raise ValueError(f"invalid interface name {name!r}: contains / or a space")
    return name


def canonical(kind: str, address: str) -> str:
    """Return ``address`` in the canonical form of ``kind``.

    Raises ValueError when ``kind`` is unknown or ``address`` is not of that
    kind.
    """
    if kind == INTERFACE:
        return normalize_interface(address)
    if kind not in ADDRESS_KINDS:
        raise ValueError(f"unknown address kind {kind!r}; expected {ADDRESS_KINDS}")
    found, value = normalize_address(address)
    if found != kind:
        raise ValueError(f"{address!r} is of kind {found}, not {kind}")
    return value


@dataclass(frozen=True, slots=True)
class Binding:
    """One address held by one container over a time range.

    ``start`` and ``end`` are Unix seconds; a None ``start`` means the time
    the address was taken is unknown (valid from any earlier time), a None
    ``end`` that the address was still held when the inventory was last
    updated. Both ends are inclusive. ``network`` names the Docker network or
    CNI network; ``interface`` is the container-side interface that holds the
    address, where known. ``host_network`` marks a node address that a
    host-network pod shares with the node, so it identifies no container.
    """

    container_id: str
    kind: str
    address: str
    start: float | None = None
    end: float | None = None
    network: str | None = None
    interface: str | None = None
    host_network: bool = False

    def covers(self, timestamp: float) -> bool:
        """Tell whether the address was held at ``timestamp``."""
        if self.start is not None and timestamp < self.start:
            return False
        return self.end is None or timestamp <= self.end
