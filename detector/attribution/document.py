"""The inventory as a document: the JSON snapshot file and the static YAML file.

Both files share one layout, so a snapshot can be edited by hand and a static
file can be loaded like a snapshot::

    format: detector-inventory      # required in a snapshot, optional in YAML
    version: 1
    covered_from: 1714557600.0      # first and last time the history is known
    covered_until: 1714561200.0     # complete (Unix seconds or RFC 3339)
    containers:
      - id: 3f2a...                 # required
        name: web                   # defaults to the id
        image: nginx:1.25
        runtime: docker
        labels: {team: shop}
        pod: web-7d9c / namespace / node / pod_uid / host / members: [...]
        addresses:
          - 10.0.0.5                # an IP or MAC address, valid at any time
          - address: 10.0.0.6
            start: 2024-05-01T10:00:00Z
            end: null               # still held
            network: shop
        interfaces:
          - vethb2c1f0e             # host-side veth name
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from detector.attribution.addresses import (
    ADDRESS_KINDS,
    INTERFACE,
    Binding,
    canonical,
    normalize_address,
    normalize_interface,
)
from detector.attribution.errors import InventoryError
from detector.attribution.times import parse_time
from detector.model import Container

FORMAT_NAME = "detector-inventory"
FORMAT_VERSION = 1

_TOP_KEYS = ("format", "version", "covered_from", "covered_until", "containers")
_CONTAINER_KEYS = (
    "id",
    "name",
    "image",
    "runtime",
    "labels",
    "pod",
    "namespace",
    "node",
    "pod_uid",
    "host",
    "members",
    "addresses",
    "interfaces",
)
_ADDRESS_KEYS = (
    "address",
    "kind",
    "start",
    "end",
    "network",
    "interface",
    "host_network",
)
_INTERFACE_KEYS = ("name", "start", "end", "network")


@dataclass(frozen=True, slots=True)
class InventoryDocument:
    """The validated content of an inventory file."""

    containers: tuple[Container, ...]
    bindings: tuple[Binding, ...]
    covered_from: float | None
    covered_until: float | None


def build_document(
    containers: Iterable[Container],
    bindings: Iterable[Binding],
    covered_from: float | None,
    covered_until: float | None,
) -> dict[str, Any]:
    """Build the snapshot document that :func:`parse_document` reads back."""
    by_container: dict[str, list[dict[str, Any]]] = {}
    for binding in bindings:
        by_container.setdefault(binding.container_id, []).append(
            {
                "kind": binding.kind,
                "address": binding.address,
                "start": binding.start,
                "end": binding.end,
                "network": binding.network,
                "interface": binding.interface,
                "host_network": binding.host_network,
            }
        )
    entries = []
    for container in containers:
        entries.append(
            {
                "id": container.id,
                "name": container.name,
                "image": container.image,
                "runtime": container.runtime,
                "labels": dict(container.labels),
                "pod": container.pod,
                "namespace": container.namespace,
                "node": container.node,
                "pod_uid": container.pod_uid,
                "host": container.host,
                "members": list(container.members),
                "addresses": by_container.get(container.id, []),
            }
        )
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "covered_from": covered_from,
        "covered_until": covered_until,
        "containers": entries,
    }


def parse_document(
    data: object, source: str, *, default_runtime: str, require_header: bool
) -> InventoryDocument:
    """Validate an inventory document read from JSON or YAML.

    ``require_header`` demands ``format`` and ``version``, as a snapshot file
    has them. Raises :class:`InventoryError` naming the first invalid key.
    """
    reader = _Reader(source)
    top = reader.mapping(data, "document", _TOP_KEYS)
    if require_header or "format" in top:
        if top.get("format") != FORMAT_NAME:
            reader.fail("format", f"must be {FORMAT_NAME!r}")
        if top.get("version") != FORMAT_VERSION:
            reader.fail(
                "version",
                f"unsupported version {top.get('version')!r}; "
                f"this detector reads version {FORMAT_VERSION}",
            )
    covered_from = reader.time(top.get("covered_from"), "covered_from")
    covered_until = reader.time(top.get("covered_until"), "covered_until")
    containers: list[Container] = []
    bindings: list[Binding] = []
    seen: set[str] = set()
    for index, item in enumerate(reader.sequence(top.get("containers"), "containers")):
        key = f"containers[{index}]"
        container, found = _parse_container(reader, item, key, default_runtime)
        if container.id in seen:
            reader.fail(f"{key}.id", f"duplicate container id {container.id!r}")
        seen.add(container.id)
        containers.append(container)
        bindings.extend(found)
    return InventoryDocument(
        tuple(containers), tuple(bindings), covered_from, covered_until
    )


def _parse_container(
    reader: _Reader, item: object, key: str, default_runtime: str
) -> tuple[Container, list[Binding]]:
    entry = reader.mapping(item, key, _CONTAINER_KEYS)
    container_id = reader.required_text(entry.get("id"), f"{key}.id")
    labels = reader.mapping(entry.get("labels") or {}, f"{key}.labels", None)
    for name, value in labels.items():
        if not isinstance(name, str) or not isinstance(value, str):
            reader.fail(
                f"{key}.labels", f"label {name!r} must map a string to a string"
            )
    members = reader.sequence(entry.get("members"), f"{key}.members")
    for position, member in enumerate(members):
        reader.required_text(member, f"{key}.members[{position}]")
    container = Container(
        id=container_id,
        name=reader.text(entry.get("name"), f"{key}.name") or container_id,
        image=reader.text(entry.get("image"), f"{key}.image"),
        runtime=reader.text(entry.get("runtime"), f"{key}.runtime") or default_runtime,
        labels=dict(labels),
        pod=reader.text(entry.get("pod"), f"{key}.pod"),
        namespace=reader.text(entry.get("namespace"), f"{key}.namespace"),
        node=reader.text(entry.get("node"), f"{key}.node"),
        pod_uid=reader.text(entry.get("pod_uid"), f"{key}.pod_uid"),
        host=reader.text(entry.get("host"), f"{key}.host"),
        members=tuple(members),
    )
    bindings = []
    addresses = reader.sequence(entry.get("addresses"), f"{key}.addresses")
    for position, address in enumerate(addresses):
        where = f"{key}.addresses[{position}]"
        bindings.append(_parse_address(reader, address, where, container_id))
    interfaces = reader.sequence(entry.get("interfaces"), f"{key}.interfaces")
    for position, interface in enumerate(interfaces):
        where = f"{key}.interfaces[{position}]"
        bindings.append(_parse_interface(reader, interface, where, container_id))
    return container, bindings


def _parse_address(
    reader: _Reader, item: object, key: str, container_id: str
) -> Binding:
    if isinstance(item, str):
        item = {"address": item}
    elif not isinstance(item, Mapping):
        reader.fail(key, f"must be an address or a mapping, not {item!r}")
    entry = reader.mapping(item, key, _ADDRESS_KEYS)
    text = reader.required_text(entry.get("address"), f"{key}.address")
    given_kind = reader.text(entry.get("kind"), f"{key}.kind")
    try:
        if given_kind is None:
            kind, address = normalize_address(text)
        else:
            kind, address = given_kind, canonical(given_kind, text)
    except ValueError as exc:
        hint = f"; kinds: {', '.join(ADDRESS_KINDS)}" if given_kind else ""
        reader.fail(f"{key}.address", f"{exc}{hint}")
    host_network = entry.get("host_network", False)
    if not isinstance(host_network, bool):
        reader.fail(f"{key}.host_network", "must be true or false")
    start, end = reader.time_range(entry, key)
    return Binding(
        container_id=container_id,
        kind=kind,
        address=address,
        start=start,
        end=end,
        network=reader.text(entry.get("network"), f"{key}.network"),
        interface=reader.text(entry.get("interface"), f"{key}.interface"),
        host_network=host_network,
    )


def _parse_interface(
    reader: _Reader, item: object, key: str, container_id: str
) -> Binding:
    if isinstance(item, str):
        item = {"name": item}
    elif not isinstance(item, Mapping):
        reader.fail(key, f"must be an interface name or a mapping, not {item!r}")
    entry = reader.mapping(item, key, _INTERFACE_KEYS)
    name = reader.required_text(entry.get("name"), f"{key}.name")
    try:
        name = normalize_interface(name)
    except ValueError as exc:
        reader.fail(f"{key}.name", str(exc))
    start, end = reader.time_range(entry, key)
    return Binding(
        container_id=container_id,
        kind=INTERFACE,
        address=name,
        start=start,
        end=end,
        network=reader.text(entry.get("network"), f"{key}.network"),
    )


class _Reader:
    """Typed access to a parsed document that raises InventoryError on a bad value."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> NoReturn:
        raise InventoryError(self.source, message, key)

    def mapping(
        self, value: object, key: str, allowed: Sequence[str] | None
    ) -> Mapping[Any, Any]:
        if not isinstance(value, Mapping):
            self.fail(key, f"must be a mapping, not {type(value).__name__}")
        if allowed is not None:
            unknown = [name for name in value if name not in allowed]
            if unknown:
                self.fail(
                    key, f"unknown key {unknown[0]!r}; expected {', '.join(allowed)}"
                )
        return value

    def sequence(self, value: object, key: str) -> Sequence[Any]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(key, f"must be a list, not {type(value).__name__}")
        return value

    def text(self, value: object, key: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(key, f"must be a string, not {value!r}")
        return value

    def required_text(self, value: object, key: str) -> str:
        if value is None:
            self.fail(key, "missing value")
        if not isinstance(value, str) or not value:
            self.fail(key, f"must be a non-empty string, not {value!r}")
        return value

    def time(self, value: object, key: str) -> float | None:
        try:
            return parse_time(value)
        except ValueError as exc:
            self.fail(key, f"{exc}; use Unix seconds or RFC 3339")

    def time_range(
        self, entry: Mapping[Any, Any], key: str
    ) -> tuple[float | None, float | None]:
        start = self.time(entry.get("start"), f"{key}.start")
        end = self.time(entry.get("end"), f"{key}.end")
        if start is not None and end is not None and end < start:
            self.fail(f"{key}.end", "ends before its start")
        return start, end
