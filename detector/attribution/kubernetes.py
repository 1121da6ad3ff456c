"""Inventory provider for Kubernetes pods.

Reads the pod list that ``kubectl get pods -A -o json`` writes, or the same
JSON from the API server. A pod is one record, since its containers share one
network namespace and so one address: a pod with a single container is named
by that container (id, name, image), a pod with several by the pod itself
(id = pod UID) with ``members`` listing every container, init and ephemeral
ones included, because any of them may have opened the flow.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from detector.attribution.errors import InventoryError
from detector.attribution.inventory import Inventory
from detector.attribution.times import parse_time
from detector.model import Container

log = logging.getLogger(__name__)

# Phases after which a pod's containers have all stopped and its address has
# been returned to the network plugin for reuse.
FINISHED_PHASES = ("Succeeded", "Failed")

# Container lists of a pod spec and the status lists that describe them.
_CONTAINER_LISTS = (
    ("initContainers", "initContainerStatuses"),
    ("containers", "containerStatuses"),
    ("ephemeralContainers", "ephemeralContainerStatuses"),
)


def parse_pods(
    document: object, source: str, *, taken_at: float | None = None
) -> Inventory:
    """Build an inventory from a pod list (``kind: List`` or ``PodList``) or
    one Pod.

    ``taken_at`` is when the list was read. It becomes the inventory's
    ``covered_until``, and the end of the address of a finished pod whose
    containers have no finish time. Raises :class:`InventoryError` naming the
    first invalid key.
    """
    if not isinstance(document, Mapping):
        raise InventoryError(source, "expected a JSON object with an items list")
    if document.get("kind") == "Pod":
        pods: Sequence[Any] = [document]
    else:
        items = document.get("items")
        if not isinstance(items, list):
            raise InventoryError(source, "expected a list of pods", "items")
        pods = items
    inventory = Inventory(covered_until=taken_at, source=source)
    for index, pod in enumerate(pods):
        _add_pod(inventory, pod, source, f"items[{index}]", taken_at)
    return inventory


def load_pods_file(
    path: str | os.PathLike[str], *, taken_at: float | None = None
) -> Inventory:
    """Read a ``kubectl get pods -A -o json`` file.

    ``taken_at`` defaults to the file's modification time, the best record of
    when kubectl wrote it. Raises :class:`InventoryError` when the file
    cannot be read or is not a pod list.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        if taken_at is None:
            taken_at = Path(path).stat().st_mtime
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise InventoryError(source, f"cannot read the pod list: {reason}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryError(
            source, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    return parse_pods(document, source, taken_at=taken_at)


def load_pods_live(
    *, kubeconfig: str | None = None, context: str | None = None
) -> Inventory:
    """Read every pod from the API server and build an inventory.

    Uses the in-cluster service account when running in a pod, else
    ``kubeconfig`` (default ``~/.kube/config``) and ``context``. Raises
    :class:`InventoryError` when no configuration is found or the API call
    fails.
    """
    # NOTE: untested here: no cluster is reachable from the test machines, so
    # only parse_pods, which this returns through, is covered by tests.
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    source = "kubernetes API"
    try:
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except ConfigException:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context
            )
        api = client.CoreV1Api()
        # The raw response is the JSON kubectl prints, so one parser serves both.
        response: Any = api.list_pod_for_all_namespaces(_preload_content=False)
        document = json.loads(response.data)
    except (ConfigException, ApiException, OSError, ValueError) as exc:
        raise InventoryError(source, f"cannot list pods: {exc}") from exc
    return parse_pods(document, source, taken_at=time.time())


def container_id(status_id: str) -> str:
    """Strip the runtime scheme from a status ``containerID``
    (``containerd://3f2a...`` becomes ``3f2a...``)."""
    return status_id.split("://", 1)[-1]


def _add_pod(
    inventory: Inventory,
    pod: object,
    source: str,
    key: str,
    taken_at: float | None,
) -> None:
    if not isinstance(pod, Mapping):
        raise InventoryError(source, "must be a pod object", key)
    metadata = _mapping(pod.get("metadata"), source, f"{key}.metadata")
    spec = _mapping(pod.get("spec"), source, f"{key}.spec")
    status = _mapping(pod.get("status") or {}, source, f"{key}.status")
    containers = _containers(spec, status, source, key)
    if not containers:
        raise InventoryError(source, "pod has no containers", f"{key}.spec.containers")
    record = _pod_record(metadata, spec, containers, source, key)
    if record.id in inventory.containers:
        raise InventoryError(
            source, f"duplicate pod or container id {record.id!r}", key
        )
    inventory.add_container(record)

    addresses = _pod_addresses(status, source, key)
    if not addresses:
        log.debug(
            "pod %s/%s has no address (phase %s)",
            record.namespace,
            record.pod,
            status.get("phase"),
        )
        return
    start, end = _pod_lifetime(metadata, status, containers, source, key, taken_at)
    host_network = spec.get("hostNetwork") is True
    for address in addresses:
        try:
            inventory.bind(record.id, address, start, end, host_network=host_network)
        except ValueError as exc:
            raise InventoryError(source, str(exc), f"{key}.status.podIPs") from exc


def _pod_record(
    metadata: Mapping[str, Any],
    spec: Mapping[str, Any],
    containers: list[dict[str, Any]],
    source: str,
    key: str,
) -> Container:
    """Name a single-container pod by its container, any other by the pod."""
    name = _text(metadata.get("name"), source, f"{key}.metadata.name")
    uid = _text(metadata.get("uid"), source, f"{key}.metadata.uid")
    namespace = _optional_text(
        metadata.get("namespace"), source, f"{key}.metadata.namespace"
    )
    labels = _mapping(metadata.get("labels") or {}, source, f"{key}.metadata.labels")
    if len(containers) == 1:
        only = containers[0]
        record_id, record_name, image = only["id"] or uid, only["name"], only["image"]
    else:
        record_id, record_name, image = uid, name, None
    return Container(
        id=record_id,
        name=record_name,
        image=image,
        runtime="kubernetes",
        labels={str(label): str(value) for label, value in labels.items()},
        pod=name,
        namespace=namespace or "default",
        node=_optional_text(spec.get("nodeName"), source, f"{key}.spec.nodeName"),
        pod_uid=uid,
        members=tuple(entry["name"] for entry in containers),
    )


def _containers(
    spec: Mapping[str, Any], status: Mapping[str, Any], source: str, key: str
) -> list[dict[str, Any]]:
    """List a pod's containers in spec order with their id, image and times."""
    found = []
    for spec_list, status_list in _CONTAINER_LISTS:
        status_entries = _list(status.get(status_list), source, f"{key}.status")
        statuses = {
            entry.get("name"): entry
            for entry in status_entries
            if isinstance(entry, Mapping)
        }
        containers = _list(spec.get(spec_list), source, f"{key}.spec.{spec_list}")
        for position, entry in enumerate(containers):
            where = f"{key}.spec.{spec_list}[{position}]"
            if not isinstance(entry, Mapping):
                raise InventoryError(source, "must be a container object", where)
            name = _text(entry.get("name"), source, f"{where}.name")
            current = statuses.get(name) or {}
            raw_id = current.get("containerID")
            image = current.get("image") or entry.get("image")
            state = _mapping(current.get("state") or {}, source, f"{where}.state")
            found.append(
                {
                    "name": name,
                    "id": container_id(raw_id) if isinstance(raw_id, str) else None,
                    "image": image if isinstance(image, str) else None,
                    "state": state,
                }
            )
    return found


def _pod_addresses(status: Mapping[str, Any], source: str, key: str) -> list[str]:
    addresses: list[str] = []
    primary = status.get("podIP")
    if isinstance(primary, str) and primary:
        addresses.append(primary)
    pod_ips = _list(status.get("podIPs"), source, f"{key}.status.podIPs")
    for position, entry in enumerate(pod_ips):
        ip = entry.get("ip") if isinstance(entry, Mapping) else None
        if not isinstance(ip, str):
            raise InventoryError(
                source,
                "must be an object with an ip",
                f"{key}.status.podIPs[{position}]",
            )
        if ip not in addresses:
            addresses.append(ip)
    return addresses


def _pod_lifetime(
    metadata: Mapping[str, Any],
    status: Mapping[str, Any],
    containers: list[dict[str, Any]],
    source: str,
    key: str,
    taken_at: float | None,
) -> tuple[float | None, float | None]:
    """Return when the pod got its address and when it gave it back."""
    try:
        start = parse_time(status.get("startTime") or metadata.get("creationTimestamp"))
        if status.get("phase") not in FINISHED_PHASES:
            return start, None
        finished = []
        for entry in containers:
            terminated = entry["state"].get("terminated") or {}
            if not isinstance(terminated, Mapping):
                raise ValueError("state.terminated must be an object")
            finished.append(parse_time(terminated.get("finishedAt")))
    except ValueError as exc:
        raise InventoryError(source, str(exc), f"{key}.status") from exc
    known = [moment for moment in finished if moment is not None]
    end = max(known) if known else taken_at
    if start is not None and end is not None and end < start:
        end = start
    return start, end


def _mapping(value: object, source: str, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InventoryError(source, "must be an object", key)
    return value


def _list(value: object, source: str, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InventoryError(source, "must be a list", key)
    return value


def _optional_text(value: object, source: str, key: str) -> str | None:
    if value is None or value == "":
        return None
    return _text(value, source, key)


def _text(value: object, source: str, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise InventoryError(source, "must be a non-empty string", key)
    return value
