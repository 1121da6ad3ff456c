"""Undoing source NAT with the kernel's connection-tracking table.

A flow captured on a host's uplink after masquerading shows the host's
address and a translated port as its client. The conntrack entry of that
connection contains both directions::

    tcp 6 431999 ESTABLISHED src=172.18.0.5 dst=203.0.113.7 sport=40112
        dport=3333 src=203.0.113.7 dst=192.0.2.10 sport=3333 dport=61002 ...

The first ``src/dst/sport/dport`` group is the original direction (container
to server), the second the reply direction (server to the translated host
address and port), so a reply destination names the translated client and
the original source the container behind it.
"""

from __future__ import annotations

import ipaddress
import logging
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from detector.attribution.errors import NatError

log = logging.getLogger(__name__)

# Reading the table takes milliseconds even with a few hundred thousand
# entries; a run that takes longer is stuck.
CONNTRACK_TIMEOUT = 30.0

CONNTRACK_COMMAND = ("conntrack", "-L", "-o", "extended")

# Layer 3 names that start an extended line (``ipv4 2 tcp 6 ...``).
_LAYER3_NAMES = ("ipv4", "ipv6")
# Protocols whose entries carry ports, so a flow can be mapped.
_PORT_PROTOCOLS = ("tcp", "udp", "udplite", "sctp", "dccp")
_TUPLE_KEYS = ("src", "dst", "sport", "dport")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The addresses and ports of one direction of a tracked connection."""

    src: str
    dst: str
    sport: int
    dport: int


@dataclass(frozen=True, slots=True)
class ConntrackEntry:
    """One line of ``conntrack -L`` for a protocol with ports.

    ``state`` is the TCP state (None for UDP); ``flags`` contains the bracketed
    words such as ``ASSURED`` and ``UNREPLIED``.
    """

    protocol: str
    original: Endpoints
    reply: Endpoints
    state: str | None = None
    flags: frozenset[str] = frozenset()

    @property
    def source_translated(self) -> bool:
        """Tell whether the client's address or port was rewritten (SNAT)."""
        return (self.reply.dst, self.reply.dport) != (
            self.original.src,
            self.original.sport,
        )


@dataclass(frozen=True, slots=True)
class NatMapping:
    """The container endpoint behind a translated client endpoint."""

    protocol: str
    original_ip: str
    original_port: int
    translated_ip: str
    translated_port: int
    server_ip: str
    server_port: int


def parse_line(line: str) -> ConntrackEntry | None:
    """Parse one line of ``conntrack -L`` output, plain or ``-o extended``.

    Returns None for a line that is not an entry with ports (ICMP entries,
    the summary ``conntrack v1.4.7 ...: N flow entries have been shown.``,
    empty lines). Raises :class:`NatError` for an entry line that cannot be
    read.
    """
    try:
        return _parse_words(line)
    except ValueError as exc:
        raise NatError("conntrack", str(exc)) from exc


def _parse_words(line: str) -> ConntrackEntry | None:
    words = line.split()
    if not words or words[0] == "conntrack":
        return None
    if words[0] in _LAYER3_NAMES:
        words = words[2:]
    if len(words) < 3:
        raise ValueError(f"too few fields in {line!r}")
    protocol = words[0].lower()
    if protocol not in _PORT_PROTOCOLS:
        return None
    state: str | None = None
    flags: set[str] = set()
    groups: list[dict[str, str]] = [{}]
    # words[1] is the protocol number and words[2] the seconds left to live.
    for word in words[3:]:
        if word.startswith("[") and word.endswith("]"):
            flags.add(word[1:-1])
            continue
        name, separator, value = word.partition("=")
        if not separator:
            if state is None and word.isupper():
                state = word
                continue
            raise ValueError(f"unexpected field {word!r} in {line!r}")
        if name not in _TUPLE_KEYS:
            continue
        if name in groups[-1]:
            if len(groups) == 2:
                raise ValueError(f"more than two address groups in {line!r}")
            groups.append({})
        groups[-1][name] = value
    if len(groups) != 2:
        raise ValueError(f"missing the reply direction in {line!r}")
    return ConntrackEntry(
        protocol=protocol,
        original=_endpoints(groups[0], line),
        reply=_endpoints(groups[1], line),
        state=state,
        flags=frozenset(flags),
    )


def _endpoints(group: dict[str, str], line: str) -> Endpoints:
    missing = [key for key in _TUPLE_KEYS if key not in group]
    if missing:
        raise ValueError(f"missing {', '.join(missing)} in {line!r}")
    sport = int(group["sport"])
    dport = int(group["dport"])
    if not (0 <= sport <= 65535 and 0 <= dport <= 65535):
        raise ValueError(f"port out of range in {line!r}")
    return Endpoints(
        src=str(ipaddress.ip_address(group["src"])),
        dst=str(ipaddress.ip_address(group["dst"])),
        sport=sport,
        dport=dport,
    )


class NatTable:
    """Translated connections, found by the endpoints seen after NAT.

    ``taken_at`` is when the table was read: entries leave the kernel's table
    when their connection times out (two minutes after a TCP close with
    Linux defaults), so the table maps flows seen shortly before that time.
    ``malformed_lines`` counts lines that could not be read.
    """

    def __init__(
        self, entries: Iterable[ConntrackEntry] = (), *, taken_at: float | None = None
    ) -> None:
        self.taken_at = taken_at
        self.malformed_lines = 0
        self._by_translated: dict[tuple[str, str, int, str, int], NatMapping] = {}
        for entry in entries:
            self.add(entry)

    def __len__(self) -> int:
        return len(self._by_translated)

    def add(self, entry: ConntrackEntry) -> None:
        """Index ``entry`` if its client side was translated; skip it if not."""
        if not entry.source_translated:
            return
        mapping = NatMapping(
            protocol=entry.protocol,
            original_ip=entry.original.src,
            original_port=entry.original.sport,
            translated_ip=entry.reply.dst,
            translated_port=entry.reply.dport,
            server_ip=entry.reply.src,
            server_port=entry.reply.sport,
        )
        key = (
            entry.protocol,
            entry.reply.dst,
            entry.reply.dport,
            entry.reply.src,
            entry.reply.sport,
        )
        self._by_translated[key] = mapping

    def lookup(
        self,
        protocol: str,
        client_ip: str,
        client_port: int,
        server_ip: str,
        server_port: int,
    ) -> NatMapping | None:
        """Find the original client of a flow seen after NAT, or None.

        ``client_ip`` and ``client_port`` are the translated endpoint as
        captured; ``server_ip`` and ``server_port`` the real server's.
        """
        key = (
            protocol.lower(),
            str(ipaddress.ip_address(client_ip)),
            client_port,
            str(ipaddress.ip_address(server_ip)),
            server_port,
        )
        return self._by_translated.get(key)

    @classmethod
    def from_text(
        cls, text: str, *, source: str = "conntrack", taken_at: float | None = None
    ) -> NatTable:
        """Build a table from ``conntrack -L`` output (plain or extended).

        Lines that cannot be read are counted in ``malformed_lines`` and
        logged, not raised, so one odd entry does not lose the rest.
        """
        table = cls(taken_at=taken_at)
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                entry = parse_line(line)
            except NatError as exc:
                table.malformed_lines += 1
                log.warning("%s line %d skipped: %s", source, number, exc.reason)
                continue
            if entry is not None:
                table.add(entry)
        return table


def read_conntrack(
    *, netns: str | None = None, command: Sequence[str] = CONNTRACK_COMMAND
) -> NatTable:
    """Run ``conntrack -L -o extended`` and build a table from its output.

    ``netns`` is a network namespace file (``/run/netns/NAME``) to read the
    table of, through ``nsenter``. Needs root (CAP_NET_ADMIN). Raises
    :class:`NatError` when the command is missing, fails or times out.
    """
    full = list(command)
    if netns is not None:
        full = ["nsenter", f"--net={netns}", *full]
    source = " ".join(full)
    taken_at = time.time()
    try:
        completed = subprocess.run(
            full,
            capture_output=True,
            text=True,
            timeout=CONNTRACK_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as exc:
        raise NatError(
            source, f"{full[0]} not found; install the conntrack package"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise NatError(source, f"timed out after {CONNTRACK_TIMEOUT:g} s") from exc
    if completed.returncode != 0:
        message = completed.stderr.strip() or f"exit status {completed.returncode}"
        raise NatError(source, f"failed: {message}")
    return NatTable.from_text(completed.stdout, source=source, taken_at=taken_at)
