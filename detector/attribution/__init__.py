"""Attribution: naming the container behind each detection.

Providers fill an :class:`Inventory`, a history of which container held which
address and when: :mod:`~detector.attribution.docker_engine` (Docker Engine
API and its events), :mod:`~detector.attribution.kubernetes` (``kubectl get
pods -o json`` or the API server), :mod:`~detector.attribution.cni`
(host-local IPAM state) and :mod:`~detector.attribution.static` (a YAML
file). A :class:`NatTable` from :mod:`~detector.attribution.conntrack` maps
flows captured after masquerading back to the container's address.
:func:`attribute` applies both to one detection.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from detector.attribution.addresses import Binding
from detector.attribution.cni import DEFAULT_CNI_STATE, load_host_local
from detector.attribution.conntrack import NatMapping, NatTable, read_conntrack
from detector.attribution.errors import InventoryError, NatError
from detector.attribution.inventory import (
    REASON_AMBIGUOUS,
    REASON_ENDS_BEFORE,
    REASON_HOST_ADDRESS,
    REASON_NO_INVENTORY,
    REASON_NOT_HELD,
    REASON_NOT_IN_INVENTORY,
    REASON_STARTS_AFTER,
    Inventory,
)
from detector.attribution.kubernetes import (
    load_pods_file,
    load_pods_live,
    parse_pods,
)
from detector.attribution.static import load_static
from detector.model import Attribution, Detection

__all__ = [
    "DEFAULT_CNI_STATE",
    "REASON_AMBIGUOUS",
    "REASON_ENDS_BEFORE",
    "REASON_HOST_ADDRESS",
    "REASON_NOT_HELD",
    "REASON_NOT_IN_INVENTORY",
    "REASON_NO_INVENTORY",
    "REASON_STARTS_AFTER",
    "Binding",
    "Inventory",
    "InventoryError",
    "NatError",
    "NatMapping",
    "NatTable",
    "attribute",
    "build_docker_inventory",
    "load_host_local",
    "load_pods_file",
    "load_pods_live",
    "load_static",
    "parse_pods",
    "read_conntrack",
]


def attribute(
    detection: Detection, inventory: Inventory | None, nat: NatTable | None
) -> Detection:
    """Return ``detection`` with its ``attribution`` set.

    The flow's client address is first mapped through ``nat`` (when the
    client endpoint is a translated one in the table), then looked up in
    ``inventory`` at the flow's first packet. Without an inventory the
    attribution names no container and gives that as the reason.
    """
    flow = detection.flow
    address = flow.client_ip
    translated = False
    if nat is not None:
        mapping = nat.lookup(
            flow.transport,
            flow.client_ip,
            flow.client_port,
            flow.server_ip,
            flow.server_port,
        )
        if mapping is not None:
            address = mapping.original_ip
            translated = True
    if inventory is None:
        attribution = Attribution(None, address, REASON_NO_INVENTORY, translated)
    else:
        found = inventory.lookup(address, detection.first_seen)
        attribution = replace(found, nat=translated)
    return replace(detection, attribution=attribution)


def build_docker_inventory(
    socket_path: str = "/var/run/docker.sock",
    follow_seconds: float = 0,
    *,
    host_netns: str | None = None,
    stop: threading.Event | None = None,
) -> Inventory:
    """Snapshot a Docker daemon, then follow its events for ``follow_seconds``.

    Events from the start of the snapshot are always read, so a container
    that starts or stops while the containers are listed is recorded either
    way. ``host_netns`` is the namespace file that contains the host ends of
    the veth pairs, needed when the daemon runs outside the caller's
    namespace. Setting ``stop`` ends the following early. Raises
    :class:`InventoryError` when the daemon cannot be reached or read.
    """
    # Imported here so that reading a snapshot file needs no docker package.
    from detector.attribution.docker_engine import DockerProvider, connect

    client = connect(socket_path)
    try:
        provider = DockerProvider(client, host_netns=host_netns)
        since = provider.snapshot()
        provider.follow(
            since=since, until=time.time() + max(follow_seconds, 0), stop=stop
        )
        return provider.inventory
    finally:
        client.close()
