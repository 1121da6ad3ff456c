"""Pool endpoints from ``pools.yaml`` and the domain and address matchers on them.

A listed domain matches itself and every name below it, on label boundaries
only: ``supportxmr.com`` matches ``pool.supportxmr.com`` but neither
``notsupportxmr.com`` nor ``supportxmr.com.example``. When both a domain and
a subdomain of it are listed, the longer one wins, so a pool's regional host
can carry its own coin and ports. Addresses match the listed networks by
longest prefix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

# RFC 1035 section 2.3.4: a name is at most 255 octets on the wire, which is
# 253 characters of text without the trailing dot.
MAX_HOST_NAME_LENGTH = 253
# RFC 1035 section 2.3.4: a label is at most 63 octets.
MAX_LABEL_LENGTH = 63
# A single label such as "com" would match every name under a top-level domain.
MIN_LABELS = 2

# The kinds of entry, in the order pools.yaml lists them.
POOL_KINDS = ("pool", "proxy", "donate", "webminer")

# Coins are lower-case words joined by hyphens (ethereum-classic), so one coin
# cannot appear under two spellings.
COIN_NAME = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")

_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_DIGITS = re.compile(r"[0-9]+")


def normalize_host_name(name: str) -> str:
    """Return ``name`` in lower case without its one trailing dot.

    Lower-casing is applied to every character, so a name that is not ASCII
    keeps its Unicode letters; use the ``xn--`` form to match those.
    """
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    return name


def host_name_problem(name: str) -> str | None:
    """Return why ``name`` is not a host name a pool entry may use, or None.

    ``name`` must already be normalized with :func:`normalize_host_name`.
    A valid name has at least two labels of 1 to 63 letters, digits and
    hyphens, no label starting or ending with a hyphen, at most 253
    characters, and a last label that is not all digits.
    """
    if not name:
        return "empty host name"
    if _is_ip_address(name):
        return f"{name!r} is an IP address, not a domain name"
    if not name.isascii():
        return (
            f"{name!r} is not ASCII; write an internationalised name in its"
            " xn-- (punycode) form"
        )
    if len(name) > MAX_HOST_NAME_LENGTH:
        return f"host name longer than {MAX_HOST_NAME_LENGTH} characters"
    labels = name.split(".")
    for label in labels:
        problem = _label_problem(label)
        if problem is not None:
            return f"{name!r}: {problem}"
    # NOTE: without the Public Suffix List a shared suffix such as co.uk or
    # herokuapp.com passes, and would then match every site registered under it.
    if len(labels) < MIN_LABELS:
        return f"{name!r} is a single label; it would match a whole top-level domain"
    # RFC 3696 section 2: a top-level domain is never all digits, so such a
    # name is most likely a mistyped or partial IP address.
    if _DIGITS.fullmatch(labels[-1]):
        return f"{name!r} ends in an all-digit label; top-level domains never do"
    return None


def _label_problem(label: str) -> str | None:
    if not label:
        return "empty label"
    if len(label) > MAX_LABEL_LENGTH:
        return f"label {label[:20]!r}... longer than {MAX_LABEL_LENGTH} characters"
    if label.startswith("-") or label.endswith("-"):
        return f"label {label!r} starts or ends with a hyphen"
    if not _LABEL.fullmatch(label):
        return f"label {label!r} has characters other than letters, digits, hyphens"
    return None


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class PoolEntry:
    """One entry of ``pools.yaml``: a domain and what is known of it.

    ``ports`` and ``tls_ports`` are the plaintext and TLS ports the source
    names; both are empty when it names none.
    """

    domain: str
    kind: str
    coin: str
    source: str
    ports: tuple[int, ...] = ()
    tls_ports: tuple[int, ...] = ()
    note: str | None = None


@dataclass(frozen=True, slots=True)
class NetworkEntry:
    """One entry of the ``networks`` section of ``pools.yaml``."""

    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    kind: str
    coin: str
    source: str
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PoolMatch:
    """A host name that falls under a listed domain.

    ``domain`` is the name looked up, normalized; ``matched_entry`` is the
    listed domain it falls under, which is ``domain`` itself or a parent.
    """

    domain: str
    matched_entry: str
    kind: str
    coin: str
    ports: tuple[int, ...]
    tls_ports: tuple[int, ...]
    source: str


@dataclass(frozen=True, slots=True)
class NetworkMatch:
    """An address inside a listed network; ``network`` is the longest match."""

    address: str
    network: str
    kind: str
    coin: str
    source: str


class PoolIndex:
    """The pool entries and networks, indexed for lookups per host or address.

    Domains sit in a dict keyed by domain, so a lookup costs one dict probe
    per label of the name asked for, whatever the number of entries.
    Networks sit in one dict per prefix length, probed from the longest
    prefix down.
    """

    __slots__ = ("_domains", "_networks", "_prefixes", "entries", "networks")

    def __init__(
        self,
        entries: Iterable[PoolEntry] = (),
        networks: Iterable[NetworkEntry] = (),
    ) -> None:
        """Index ``entries`` and ``networks``.

        Raises:
            ValueError: two entries have the same domain or the same network,
                or a domain is not normalized. The loader reports these as
                :class:`~detector.errors.SignatureError` before building.
        """
        self.entries: tuple[PoolEntry, ...] = tuple(entries)
        self.networks: tuple[NetworkEntry, ...] = tuple(networks)
        self._domains: dict[str, PoolEntry] = {}
        for entry in self.entries:
            if entry.domain != normalize_host_name(entry.domain):
                raise ValueError(f"domain {entry.domain!r} is not normalized")
            if entry.domain in self._domains:
                raise ValueError(f"domain {entry.domain!r} listed twice")
            self._domains[entry.domain] = entry
        self._networks: dict[tuple[int, int], dict[int, NetworkEntry]] = {}
        for item in self.networks:
            key = (item.network.version, item.network.prefixlen)
            table = self._networks.setdefault(key, {})
            start = int(item.network.network_address)
            if start in table:
                raise ValueError(f"network {item.network} listed twice")
            table[start] = item
        # Longest prefixes first, so the first hit is the longest match.
        self._prefixes: tuple[tuple[int, int], ...] = tuple(
            sorted(self._networks, key=lambda key: key[1], reverse=True)
        )

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, domain: object) -> bool:
        return isinstance(domain, str) and domain in self._domains

    def entry(self, domain: str) -> PoolEntry | None:
        """Return the entry listed for exactly ``domain``, normalized, or None."""
        return self._domains.get(normalize_host_name(domain))

    def covering_entry(self, domain: str) -> PoolEntry | None:
        """Return the entry for ``domain`` or its nearest listed parent, or None."""
        name = normalize_host_name(domain)
        # Names longer than any valid host name are rejected before the walk,
        # which hashes each suffix, so a hostile name cannot cost more than
        # a valid one.
        if not name or len(name) > MAX_HOST_NAME_LENGTH:
            return None
        if name.startswith(".") or name.endswith(".") or ".." in name:
            return None
        start = 0
        while True:
            entry = self._domains.get(name[start:])
            if entry is not None:
                return entry
            dot = name.find(".", start)
            if dot < 0:
                return None
            start = dot + 1

    def match_domain(self, name: str) -> PoolMatch | None:
        """Match a host name, such as a TLS SNI or a DNS question, to an entry.

        The name is compared case-insensitively, without its trailing dot,
        against each of its suffixes that starts at a label boundary, longest
        first. Names with an empty label or longer than 253 characters match
        nothing. Punycode (``xn--``) labels are compared as they are.
        """
        entry = self.covering_entry(name)
        if entry is None:
            return None
        return PoolMatch(
            domain=normalize_host_name(name),
            matched_entry=entry.domain,
            kind=entry.kind,
            coin=entry.coin,
            ports=entry.ports,
            tls_ports=entry.tls_ports,
            source=entry.source,
        )

    def match_address(self, ip: str) -> NetworkMatch | None:
        """Return the longest listed network that contains ``ip``, or None.

        ``ip`` is an IPv4 or IPv6 address in text form. An IPv4-mapped IPv6
        address (``::ffff:192.0.2.1``) is looked up as its IPv4 address. Text
        that is not an address matches nothing.
        """
        if not self._prefixes:
            return None
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        value = int(address)
        bits = address.max_prefixlen
        for version, prefix in self._prefixes:
            if version != address.version:
                continue
            start = value >> (bits - prefix) << (bits - prefix)
            item = self._networks[(version, prefix)].get(start)
            if item is not None:
                return NetworkMatch(
                    address=str(address),
                    network=str(item.network),
                    kind=item.kind,
                    coin=item.coin,
                    source=item.source,
                )
        return None
