"""Inventory provider for the state of CNI's host-local IPAM plugin.

host-local records each address it hands out as a file named by the address
in ``/var/lib/cni/networks/<network>/``. The first line of the file is the
container id the runtime passed to CNI. For Kubernetes that is the pod
sandbox id, not an app container's id. Newer releases of the CNI plugins
add the interface name as a second line. ``last_reserved_ip.<range>`` and
``lock`` are the plugin's own bookkeeping.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from detector.attribution.addresses import normalize_address
from detector.attribution.errors import InventoryError
from detector.attribution.inventory import Inventory
from detector.model import Container

log = logging.getLogger(__name__)

DEFAULT_CNI_STATE = "/var/lib/cni/networks"

# Short ids name a record the way `docker ps` and `crictl ps` show them.
SHORT_ID_LENGTH = 12

_BOOKKEEPING_PREFIX = "last_reserved_ip."
_LOCK_FILE = "lock"


def load_host_local(
    path: str | os.PathLike[str] = DEFAULT_CNI_STATE,
    *,
    taken_at: float | None = None,
) -> Inventory:
    """Read host-local state: one network's folder, or a folder of networks.

    Each address is bound from its file's modification time (when it was
    reserved) with no end, since a released address's file is deleted.
    ``taken_at`` (default: now) becomes ``covered_until``. Files that are
    neither addresses nor bookkeeping, and empty files, are skipped with a
    warning in ``inventory.warnings``. Raises :class:`InventoryError` when
    ``path`` cannot be listed.
    """
    root = Path(path)
    inventory = Inventory(
        covered_until=time.time() if taken_at is None else taken_at,
        source=str(root),
    )
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise InventoryError(
            str(root), f"cannot list the CNI state folder: {exc.strerror}"
        ) from exc
    subfolders = [entry for entry in entries if entry.is_dir()]
    files = [entry for entry in entries if not entry.is_dir()]
    if files or not subfolders:
        _read_network(inventory, root.name, files)
    for folder in subfolders:
        try:
            _read_network(inventory, folder.name, sorted(folder.iterdir()))
        except OSError as exc:
            _warn(inventory, f"{folder}: cannot list the folder: {exc.strerror}")
    return inventory


def _read_network(inventory: Inventory, network: str, files: list[Path]) -> None:
    for path in files:
        name = path.name
        if name == _LOCK_FILE or name.startswith(_BOOKKEEPING_PREFIX):
            continue
        try:
            normalize_address(name)
        except ValueError:
            _warn(inventory, f"{path}: not an address file; skipped")
            continue
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
            reserved = path.stat().st_mtime
        except (OSError, UnicodeDecodeError) as exc:
            _warn(inventory, f"{path}: cannot read: {exc}")
            continue
        owner = lines[0].strip() if lines else ""
        if not owner:
            _warn(inventory, f"{path}: empty file; skipped")
            continue
        interface = lines[1].strip() if len(lines) > 1 else None
        if owner not in inventory.containers:
            inventory.add_container(
                Container(id=owner, name=owner[:SHORT_ID_LENGTH], runtime="cni")
            )
        inventory.bind(
            owner, name, reserved, network=network, interface=interface or None
        )


def _warn(inventory: Inventory, message: str) -> None:
    log.warning("%s", message)
    inventory.warnings.append(message)
