"""Inventory provider for the Docker Engine API, over its unix socket.

:meth:`DockerProvider.snapshot` records every container with the addresses
it holds now (IP, MAC and host-side veth per network). :meth:`DockerProvider.
follow` then reads the events stream and keeps the history current: a
``start`` or network ``connect`` opens address ranges at the event's time, a
``die``, ``destroy`` or network ``disconnect`` closes them. Containers that
share another container's network namespace (``--network container:X``) are
recorded as members of X, the way a pod's containers share one address.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import docker
import docker.errors
import requests

from detector.attribution.addresses import INTERFACE, MAC
from detector.attribution.errors import InventoryError
from detector.attribution.interfaces import Link, host_veth_names, list_links
from detector.attribution.inventory import Inventory
from detector.attribution.times import parse_time
from detector.model import Container

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/run/docker.sock"

# Seconds one Engine API call may take. A local daemon responds in
# milliseconds, so only a stuck daemon reaches this.
API_TIMEOUT = 30.0

# Docker records State.StartedAt only after the container's process has
# started, so the process's first packets can carry earlier timestamps. A
# snapshot dates an address this many seconds before StartedAt, but never
# before the container was created. The test containers' first packets came
# up to 3 ms before StartedAt (Docker 20.10, 2 cores); the margin is for
# loaded hosts.
STARTED_AT_SLACK = 1.0

# How often the events reader checks its stop flag, in seconds.
STOP_POLL_INTERVAL = 0.1

# Network modes whose container owns no address of its own.
_SHARED_MODE_PREFIX = "container:"
_NO_ADDRESS_MODES = ("host", "none")

# Docker sets these labels on containers it runs for Kubernetes (dockershim).
POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
POD_UID_LABEL = "io.kubernetes.pod.uid"

_DockerErrors = (docker.errors.DockerException, requests.exceptions.RequestException)
# Closing the events response from the watcher thread ends the iteration
# (docker 7.2, urllib3 2.x). A close that races a read can make the read fail
# instead, with an error of these types that means nothing when stop is set.
_StreamErrors = (*_DockerErrors, OSError)


def connect(socket_path: str = DEFAULT_SOCKET) -> docker.DockerClient:
    """Open a client on the Docker Engine API at ``socket_path``.

    ``socket_path`` is a file path or a ``unix://`` URL. Raises
    :class:`InventoryError` when the daemon does not respond.
    """
    base_url = socket_path if "://" in socket_path else f"unix://{socket_path}"
    try:
        client = docker.DockerClient(base_url=base_url, timeout=int(API_TIMEOUT))
        client.ping()
    except _DockerErrors as exc:
        raise InventoryError(
            base_url, f"cannot reach the Docker daemon: {exc}; is dockerd running?"
        ) from exc
    return client


class DockerProvider:
    """Fill an inventory from one Docker daemon.

    ``host_netns`` is the network namespace file holding the host ends of the
    containers' veth pairs (the daemon's namespace); None means the caller's
    own. ``resolve_veths`` False skips the veth lookup, which needs root and
    two ``ip`` commands per container.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        inventory: Inventory | None = None,
        *,
        host_netns: str | None = None,
        resolve_veths: bool = True,
    ) -> None:
        self.client = client
        self.source = str(client.api.base_url)
        self.inventory = (
            inventory if inventory is not None else Inventory(source=self.source)
        )
        self.host_netns = host_netns
        self.resolve_veths = resolve_veths
        self.events_applied = 0
        self._host: str | None = None
        self._members: dict[str, list[str]] = {}
        self._veth_warned = False

    def snapshot(self) -> float:
        """Record every container and the addresses running ones hold now.

        Returns the time the listing began, from which :meth:`follow` should
        read events so that nothing that changed during the listing is lost.
        Raises :class:`InventoryError` when the daemon cannot be read.
        """
        started = time.time()
        api = self.client.api
        try:
            self._host = str(api.info().get("Name") or "") or None
            summaries = api.containers(all=True)
        except _DockerErrors as exc:
            raise self._error("cannot list containers", exc) from exc
        host_links = self._host_links()
        for summary in summaries:
            attributes = self._inspect(str(summary["Id"]))
            if attributes is not None:
                self._record(attributes, None, host_links)
        if self.inventory.covered_from is None:
            self.inventory.covered_from = started
        self.inventory.mark_covered(time.time())
        return started

    def follow(
        self,
        *,
        since: float,
        until: float | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Apply the daemon's events from ``since`` until ``until`` or ``stop``.

        The daemon replays the events after ``since`` that it still keeps in
        memory (a bounded number of recent ones), then streams new ones; with
        ``until`` it closes the stream at that time. The API takes whole
        seconds, so up to a second of events before ``since`` is replayed,
        which leaves the history as it was: binding is idempotent and a
        ``die`` never ends a range that began after it. Setting ``stop`` ends
        the reading from another thread. Returns the number of events applied.
        Raises :class:`InventoryError` when the stream fails.
        """
        try:
            stream = self.client.api.events(
                since=math.floor(since),
                until=None if until is None else math.ceil(until),
                filters={"type": ["container", "network"]},
                decode=True,
            )
        except _DockerErrors as exc:
            raise self._error("cannot read the events stream", exc) from exc
        finished = threading.Event()
        closed_by_stop = threading.Event()

        def close_on_stop() -> None:
            while not finished.wait(STOP_POLL_INTERVAL):
                if stop is not None and stop.is_set():
                    closed_by_stop.set()
                    stream.close()
                    return

        watcher = threading.Thread(target=close_on_stop, daemon=True)
        watcher.start()
        applied = 0
        log.info("reading Docker events from %s since %.3f", self.source, since)
        events = iter(stream)
        try:
            while True:
                try:
                    event = next(events)
                except StopIteration:
                    break
                except _StreamErrors as exc:
                    if closed_by_stop.is_set():
                        break
                    raise self._error("the events stream failed", exc) from exc
                if self.apply_event(event):
                    applied += 1
                when = _event_time(event)
                if when is not None:
                    self.inventory.mark_covered(when)
        finally:
            finished.set()
            watcher.join()
            stream.close()
        ended = time.time() if until is None else min(until, time.time())
        self.inventory.mark_covered(ended)
        log.info("stopped reading Docker events: %d applied", applied)
        self.events_applied += applied
        return applied

    def apply_event(self, event: Mapping[str, Any]) -> bool:
        """Update the inventory from one Engine API event; tell whether it
        changed anything the inventory tracks."""
        kind = event.get("Type")
        action = str(event.get("Action", ""))
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        when = _event_time(event)
        if when is None:
            log.warning("Docker event without a time skipped: %r", event)
            return False
        if kind == "container":
            container_id = str(actor.get("ID", ""))
            if action == "start":
                self._on_start(container_id, attributes, when)
            elif action in ("die", "destroy"):
                self.inventory.close(container_id, when)
            elif action == "rename":
                attributes_now = self._inspect(container_id)
                if attributes_now is not None:
                    self._record_identity(attributes_now)
            else:
                return False
            log.debug("Docker %s of %s at %.6f", action, container_id[:12], when)
            return True
        if kind == "network" and action in ("connect", "disconnect"):
            container_id = str(attributes.get("container", ""))
            network = str(attributes.get("name", ""))
            if action == "connect":
                self._on_connect(container_id, network, when)
            else:
                self.inventory.close(container_id, when, network=network)
            log.debug("Docker %s of %s to %s", action, container_id[:12], network)
            return True
        return False

    def _on_start(
        self, container_id: str, event_attributes: Mapping[str, Any], when: float
    ) -> None:
        attributes = self._inspect(container_id)
        if attributes is None:
            # Removed before it could be inspected: keep what the event names.
            name = str(event_attributes.get("name", container_id[:12]))
            image = event_attributes.get("image")
            self.inventory.add_container(
                Container(
                    id=container_id,
                    name=name,
                    image=str(image) if image else None,
                    host=self._host,
                )
            )
            self._warn(
                f"container {name} ({container_id[:12]}) was removed before its "
                "addresses could be read"
            )
            return
        self._record(attributes, when, self._host_links())

    def _on_connect(self, container_id: str, network: str, when: float) -> None:
        attributes = self._inspect(container_id)
        if attributes is None:
            self._warn(
                f"container {container_id[:12]} was removed before its address "
                f"on {network} could be read"
            )
            return
        self._record(attributes, when, self._host_links(), only_network=network)

    def _record(
        self,
        attributes: Mapping[str, Any],
        since: float | None,
        host_links: list[Link] | None,
        only_network: str | None = None,
    ) -> None:
        container = self._record_identity(attributes)
        state = attributes.get("State") or {}
        mode = str((attributes.get("HostConfig") or {}).get("NetworkMode") or "")
        if mode.startswith(_SHARED_MODE_PREFIX):
            self._add_member(mode[len(_SHARED_MODE_PREFIX) :], container)
            return
        if mode in _NO_ADDRESS_MODES:
            return
        running = bool(state.get("Running"))
        if not running and since is None:
            return
        start = since if since is not None else _snapshot_start(attributes)
        veths: dict[str, str] = {}
        pid = state.get("Pid")
        if running and host_links is not None and isinstance(pid, int) and pid > 0:
            veths = self._veths(pid, host_links, container.name)
        networks = (attributes.get("NetworkSettings") or {}).get("Networks") or {}
        for network, endpoint in networks.items():
            if only_network is not None and network != only_network:
                continue
            self._bind_endpoint(container, network, endpoint or {}, start, veths)

    def _bind_endpoint(
        self,
        container: Container,
        network: str,
        endpoint: Mapping[str, Any],
        start: float | None,
        veths: Mapping[str, str],
    ) -> None:
        # A container that stopped before its inspection shows empty
        # addresses; a static address (--ip) is still in its IPAM config.
        static = endpoint.get("IPAMConfig") or {}
        ipv4 = endpoint.get("IPAddress") or static.get("IPv4Address")
        ipv6 = endpoint.get("GlobalIPv6Address") or static.get("IPv6Address")
        mac = endpoint.get("MacAddress")
        for address in (ipv4, ipv6):
            if address:
                self.inventory.bind(container.id, address, start, network=network)
        if mac:
            self.inventory.bind(container.id, mac, start, kind=MAC, network=network)
            veth = veths.get(mac.lower())
            if veth is not None:
                self.inventory.bind(
                    container.id, veth, start, kind=INTERFACE, network=network
                )
        if not (ipv4 or ipv6 or mac):
            self._warn(f"container {container.name} has no address on {network}")

    def _record_identity(self, attributes: Mapping[str, Any]) -> Container:
        config = attributes.get("Config") or {}
        labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
        container_id = str(attributes["Id"])
        name = str(attributes.get("Name") or container_id[:12]).lstrip("/")
        members = tuple(self._members.get(container_id, ()))
        container = Container(
            id=container_id,
            name=name,
            image=config.get("Image") or attributes.get("Image"),
            runtime="docker",
            labels=labels,
            pod=labels.get(POD_NAME_LABEL),
            namespace=labels.get(POD_NAMESPACE_LABEL),
            pod_uid=labels.get(POD_UID_LABEL),
            host=self._host,
            members=members,
        )
        self.inventory.add_container(container)
        return container

    def _add_member(self, leader_id: str, member: Container) -> None:
        # NOTE: members are never removed, so a record lists every container
        # that shared the namespace while it was recorded, including ones
        # that have stopped since.
        if leader_id not in self.inventory.containers:
            attributes = self._inspect(leader_id)
            if attributes is None:
                self._warn(
                    f"container {member.name} shares the network of "
                    f"{leader_id[:12]}, which no longer exists"
                )
                return
            self._record(attributes, None, self._host_links())
        leader = self.inventory.containers[leader_id]
        names = self._members.setdefault(leader_id, [leader.name])
        if member.name not in names:
            names.append(member.name)
        self.inventory.add_container(replace(leader, members=tuple(names)))

    def _inspect(self, container_id: str) -> dict[str, Any] | None:
        try:
            attributes = self.client.api.inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        except _DockerErrors as exc:
            raise self._error(f"cannot inspect container {container_id}", exc) from exc
        return dict(attributes)

    def _host_links(self) -> list[Link] | None:
        if not self.resolve_veths:
            return None
        try:
            return list_links(netns=self.host_netns)
        except InventoryError as exc:
            self._warn_veth(exc)
            return None

    def _veths(self, pid: int, host_links: list[Link], name: str) -> dict[str, str]:
        try:
            return host_veth_names(pid, host_links)
        except InventoryError as exc:
            # The process may have exited since the inspection.
            log.debug("veth of container %s not found: %s", name, exc)
            return {}

    def _warn_veth(self, exc: InventoryError) -> None:
        if not self._veth_warned:
            self._veth_warned = True
            self._warn(f"host-side veth names not recorded: {exc}")

    def _warn(self, message: str) -> None:
        log.warning("%s: %s", self.source, message)
        self.inventory.warnings.append(message)

    def _error(self, action: str, exc: BaseException) -> InventoryError:
        return InventoryError(self.source, f"{action}: {exc}")


def _snapshot_start(attributes: Mapping[str, Any]) -> float | None:
    started = parse_time((attributes.get("State") or {}).get("StartedAt"))
    if started is None:
        return None
    created = parse_time(attributes.get("Created"))
    earliest = started - STARTED_AT_SLACK
    return earliest if created is None else max(earliest, created)


def _event_time(event: Mapping[str, Any]) -> float | None:
    nanoseconds = event.get("timeNano")
    if isinstance(nanoseconds, int):
        return nanoseconds / 1e9
    seconds = event.get("time")
    if isinstance(seconds, int | float):
        return float(seconds)
    return None
