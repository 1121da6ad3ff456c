"""Mapping a container's interfaces to the host-side ends of its veth pairs.

A container's ``eth0`` is one end of a veth pair whose other end sits on the
host, attached to a bridge. Each end's ``iflink`` is the ifindex of its peer,
so the host-side name is the host link whose ifindex equals the container
``eth0``'s iflink (and whose own iflink is ``eth0``'s ifindex). The iflink
must be read through netlink from inside the container's network namespace,
because ``nsenter -n`` does not remount /sys and /sys/class/net would show the
host's links. ``ip -j link`` run under ``nsenter`` does that without a
netlink library; pyroute2 would avoid the subprocess but is not a dependency.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from detector.attribution.addresses import normalize_mac
from detector.attribution.errors import InventoryError

# `ip link` returns in milliseconds, so a slower run means a stuck namespace.
IP_COMMAND_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Link:
    """One network interface as ``ip -j link`` reports it.

    ``peer_index`` is the iflink, the ifindex of a veth's other end, or None
    for links without a peer. ``master`` is the bridge the link is attached to.
    """

    index: int
    name: str
    mac: str | None
    peer_index: int | None
    master: str | None


def parse_links(text: str, source: str = "ip -j link") -> list[Link]:
    """Parse the JSON that ``ip -j link show`` prints.

    Raises :class:`InventoryError` when the text is not that JSON.
    """
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryError(source, f"invalid JSON output: {exc.msg}") from exc
    if not isinstance(entries, list):
        raise InventoryError(source, "expected a JSON list of links")
    links = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise InventoryError(source, "expected a JSON object per link")
        index = entry.get("ifindex")
        name = entry.get("ifname")
        if not isinstance(index, int) or not isinstance(name, str):
            raise InventoryError(source, f"link without ifindex or ifname: {entry!r}")
        mac = entry.get("address")
        try:
            mac = normalize_mac(mac) if isinstance(mac, str) else None
        except ValueError:
            # Tunnels and loopback carry addresses that are not Ethernet MACs.
            mac = None
        peer = entry.get("link_index")
        master = entry.get("master")
        links.append(
            Link(
                index=index,
                name=name,
                mac=mac,
                peer_index=peer if isinstance(peer, int) else None,
                master=master if isinstance(master, str) else None,
            )
        )
    return links


def list_links(*, pid: int | None = None, netns: str | None = None) -> list[Link]:
    """List the links of a network namespace.

    ``pid`` selects the namespace of that process (``nsenter -t PID -n``),
    ``netns`` a namespace file such as ``/run/netns/NAME`` or
    ``/proc/PID/ns/net``; with neither, the caller's own namespace. Entering
    another namespace needs root. Raises :class:`InventoryError` when ``ip``
    or ``nsenter`` is missing, fails or times out.
    """
    command: list[str] = []
    if pid is not None:
        command += ["nsenter", "-t", str(pid), "-n"]
    elif netns is not None:
        command += ["nsenter", f"--net={netns}"]
    command += ["ip", "-j", "link", "show"]
    return parse_links(_run(command), " ".join(command))


def host_veth_names(container_pid: int, host_links: Sequence[Link]) -> dict[str, str]:
    """Map the MAC of each veth inside a container to its host-side name.

    ``host_links`` are the links of the namespace holding the host ends
    (normally the host's own, from :func:`list_links`). A container link
    counts only when both ends point at each other, since ifindex numbers
    repeat across namespaces. Raises :class:`InventoryError` when the
    container's links cannot be listed.
    """
    by_index = {link.index: link for link in host_links}
    names = {}
    for link in list_links(pid=container_pid):
        if link.peer_index is None or link.mac is None:
            continue
        peer = by_index.get(link.peer_index)
        if peer is not None and peer.peer_index == link.index:
            names[link.mac] = peer.name
    return names


def _run(command: list[str]) -> str:
    source = " ".join(command)
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=IP_COMMAND_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as exc:
        raise InventoryError(
            source, f"{command[0]} not found; install iproute2 and util-linux"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise InventoryError(
            source, f"timed out after {IP_COMMAND_TIMEOUT:g} s"
        ) from exc
    if completed.returncode != 0:
        message = completed.stderr.strip() or f"exit status {completed.returncode}"
        raise InventoryError(source, f"failed: {message}")
    return completed.stdout
