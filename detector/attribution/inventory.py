"""The inventory: which container held which address, and when.

Container addresses are reused as soon as a container stops, so the inventory
keeps a history of :class:`~detector.attribution.addresses.Binding` records,
each an address with the time range it was held. :meth:`Inventory.lookup`
finds the container that held an address when a flow started, or returns the
reason it cannot.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from detector.attribution.addresses import (
    INTERFACE,
    Binding,
    canonical,
    normalize_address,
    normalize_interface,
)
from detector.attribution.document import (
    build_document,
    parse_document,
)
from detector.attribution.errors import InventoryError
from detector.model import Attribution, Container

log = logging.getLogger(__name__)

# Reasons an Attribution names no container. Sinks and tests compare them as
# strings, so they are part of the output format.
REASON_NO_INVENTORY = "no inventory loaded"
REASON_NOT_IN_INVENTORY = "address not in inventory"
REASON_ENDS_BEFORE = "inventory ends before the flow"
REASON_STARTS_AFTER = "inventory starts after the flow"
REASON_NOT_HELD = "address not held by any container at that time"
REASON_AMBIGUOUS = "address held by several containers at that time"
REASON_HOST_ADDRESS = "address is a node address shared by host-network pods"

_Key = tuple[str, str]


class Inventory:
    """A history of containers and the addresses they held.

    ``covered_from`` and ``covered_until`` (Unix seconds, None when unknown)
    bound the time over which the history is complete: a snapshot's
    ``covered_until`` is when it was taken, and following Docker events moves
    it forward. ``warnings`` collects problems a provider skipped past, such
    as an unreadable state file, for the command line to show.
    """

    def __init__(
        self,
        *,
        covered_from: float | None = None,
        covered_until: float | None = None,
        source: str = "inventory",
    ) -> None:
        self.covered_from = covered_from
        self.covered_until = covered_until
        self.source = source
        self.warnings: list[str] = []
        self._containers: dict[str, Container] = {}
        self._bindings: list[Binding] = []
        self._by_address: dict[_Key, list[int]] = {}
        self._by_container: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self._containers)

    @property
    def containers(self) -> Mapping[str, Container]:
        """The containers by id, as last recorded."""
        return MappingProxyType(self._containers)

    def bindings(self, container_id: str | None = None) -> list[Binding]:
        """Return every binding, or those of one container, oldest first."""
        if container_id is None:
            return list(self._bindings)
        return [self._bindings[i] for i in self._by_container.get(container_id, ())]

    def add_container(self, container: Container) -> None:
        """Record a container, replacing its identity if the id is known.

        A replaced identity (a renamed container, a pod with a new member)
        applies to the container's whole history.
        """
        self._containers[container.id] = container

    def bind(
        self,
        container_id: str,
        address: str,
        start: float | None,
        end: float | None = None,
        *,
        kind: str | None = None,
        network: str | None = None,
        interface: str | None = None,
        host_network: bool = False,
    ) -> Binding:
        """Record that a container held ``address`` from ``start`` to ``end``.

        ``kind`` is found from the address unless given; pass ``interface``
        as the kind for a host-side interface name. Binding an address the
        container already holds with no end, on the same network, returns the
        existing binding, so replayed events and a snapshot of the same state
        add nothing.

        Raises KeyError for an unknown container and ValueError for an
        invalid address or an ``end`` before ``start``.
        """
        if container_id not in self._containers:
            raise KeyError(f"unknown container {container_id!r}")
        if kind is None:
            kind, value = normalize_address(address)
        else:
            value = canonical(kind, address)
        if start is not None and end is not None and end < start:
            raise ValueError(f"binding of {value} ends at {end}, before {start}")
        for index in self._by_address.get((kind, value), ()):
            held = self._bindings[index]
            if (
                held.container_id == container_id
                and held.network == network
                and held.end is None
                and held.host_network == host_network
            ):
                if end is not None:
                    held = replace(held, end=end)
                    self._bindings[index] = held
                return held
        binding = Binding(
            container_id=container_id,
            kind=kind,
            address=value,
            start=start,
            end=end,
            network=network,
            interface=interface,
            host_network=host_network,
        )
        self._add_binding(binding)
        return binding

    def _add_binding(self, binding: Binding) -> None:
        index = len(self._bindings)
        self._bindings.append(binding)
        self._by_address.setdefault((binding.kind, binding.address), []).append(index)
        self._by_container.setdefault(binding.container_id, []).append(index)

    def close(
        self, container_id: str, end: float, *, network: str | None = None
    ) -> int:
        """End the open bindings of a container at ``end``; return how many.

        With ``network``, only that network's bindings end (a disconnect).
        Bindings that start after ``end`` stay open: a replayed ``die`` event
        must not end an address taken by a later start of the same container.
        """
        closed = 0
        for index in self._by_container.get(container_id, ()):
            held = self._bindings[index]
            if held.end is not None or (
                network is not None and held.network != network
            ):
                continue
            if held.start is not None and held.start > end:
                continue
            self._bindings[index] = replace(held, end=end)
            closed += 1
        return closed

    def forget_ended(self, before: float) -> int:
        """Drop the bindings that ended before ``before``, and the containers
        left with none; return how many bindings were dropped.

        A live watch calls this so that months of containers coming and
        going do not pile up. The history then starts at ``before``: a
        lookup of an earlier time reports that the inventory starts after it.
        """
        remaining = [
            binding
            for binding in self._bindings
            if binding.end is None or binding.end >= before
        ]
        dropped = len(self._bindings) - len(remaining)
        if not dropped:
            return 0
        self._bindings = []
        self._by_address = {}
        self._by_container = {}
        for binding in remaining:
            self._add_binding(binding)
        self._containers = {
            container_id: container
            for container_id, container in self._containers.items()
            if container_id in self._by_container
        }
        if self.covered_from is None or self.covered_from < before:
            self.covered_from = before
        return dropped

    def mark_covered(self, until: float) -> None:
        """Record that the history is complete up to ``until``."""
        if self.covered_until is None or until > self.covered_until:
            self.covered_until = until

    def lookup(self, address: str, timestamp: float) -> Attribution:
        """Find the container that held an IP or MAC address at ``timestamp``.

        Returns an Attribution whose ``container`` is None and whose
        ``reason`` is one of the ``REASON_*`` texts when no single container
        held the address then. Raises ValueError when ``address`` is neither
        an IP nor a MAC address.
        """
        kind, value = normalize_address(address)
        return self._resolve((kind, value), timestamp)

    def lookup_interface(self, name: str, timestamp: float) -> Attribution:
        """Find the container whose host-side veth was ``name`` at ``timestamp``.

        Raises ValueError when ``name`` is not a valid interface name.
        """
        return self._resolve((INTERFACE, normalize_interface(name)), timestamp)

    def _resolve(self, key: _Key, timestamp: float) -> Attribution:
        address = key[1]
        indices = self._by_address.get(key)
        if not indices:
            reason = self._uncovered_reason(timestamp) or REASON_NOT_IN_INVENTORY
            return Attribution(None, address, reason)
        held = [
            self._bindings[i] for i in indices if self._bindings[i].covers(timestamp)
        ]
        if not held:
            reason = self._uncovered_reason(timestamp) or REASON_NOT_HELD
            return Attribution(None, address, reason)
        owned = [binding for binding in held if not binding.host_network]
        if not owned:
            return Attribution(None, address, REASON_HOST_ADDRESS)
        holders = sorted({binding.container_id for binding in owned})
        if len(holders) > 1:
            log.debug("%s at %.6f held by %s", address, timestamp, holders)
            return Attribution(None, address, REASON_AMBIGUOUS)
        return Attribution(self._containers[holders[0]], address)

    def _uncovered_reason(self, timestamp: float) -> str | None:
        if self.covered_until is not None and timestamp > self.covered_until:
            return REASON_ENDS_BEFORE
        if self.covered_from is not None and timestamp < self.covered_from:
            return REASON_STARTS_AFTER
        return None

    def merge(self, other: Inventory) -> None:
        """Add the containers and bindings of ``other`` to this inventory.

        The merged history is complete only where both were, so coverage
        narrows to the later start and the earlier end. Two providers that
        name the same address under different ids (a CNI sandbox id and a
        Kubernetes pod) make lookups of that address ambiguous.
        """
        for container in other.containers.values():
            self.add_container(container)
        for binding in other.bindings():
            self._add_binding(binding)
        self.warnings.extend(other.warnings)
        self.covered_from = _later(self.covered_from, other.covered_from)
        self.covered_until = _earlier(self.covered_until, other.covered_until)

    def to_document(self) -> dict[str, object]:
        """Build the snapshot document that :meth:`from_document` reads."""
        return build_document(
            self._containers.values(),
            self._bindings,
            self.covered_from,
            self.covered_until,
        )

    @classmethod
    def from_document(
        cls,
        data: object,
        source: str,
        *,
        default_runtime: str = "static",
        require_header: bool = True,
    ) -> Inventory:
        """Build an inventory from a parsed snapshot or static document.

        Raises :class:`InventoryError` naming the first invalid key.
        """
        document = parse_document(
            data, source, default_runtime=default_runtime, require_header=require_header
        )
        inventory = cls(
            covered_from=document.covered_from,
            covered_until=document.covered_until,
            source=source,
        )
        for container in document.containers:
            inventory.add_container(container)
        for binding in document.bindings:
            inventory._add_binding(binding)
        return inventory

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the inventory to ``path`` as a JSON snapshot with its history.

        The file is written beside its final name and renamed into place, so
        a reader never sees half a snapshot. Raises :class:`InventoryError`
        when the file cannot be written.
        """
        target = Path(path)
        text = json.dumps(self.to_document(), indent=2, sort_keys=False) + "\n"
        try:
            descriptor, temporary = tempfile.mkstemp(
                prefix=f".{target.name}.", dir=target.parent or Path(".")
            )
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, target)
        except OSError as exc:
            raise InventoryError(
                str(path), f"cannot write the snapshot: {exc.strerror or exc}"
            ) from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Inventory:
        """Read a JSON snapshot written by :meth:`save`.

        Raises :class:`InventoryError` when the file cannot be read, is not
        JSON, or has an invalid value (the error names its key).
        """
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise InventoryError(source, f"cannot read the snapshot: {reason}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InventoryError(
                source,
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            ) from exc
        return cls.from_document(data, source)


def _later(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return second if first is None else first
    return max(first, second)


def _earlier(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return second if first is None else first
    return min(first, second)
