"""The state folder of CNI's host-local IPAM plugin."""

from __future__ import annotations

import os

import pytest

from detector.attribution import (
    REASON_NOT_HELD,
    InventoryError,
    load_host_local,
)

SANDBOX = "8f3c2b1a" * 8
OTHER = "1d2e3f4a" * 8
RESERVED_AT = 1714557600.0


def write_network(folder, entries: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    for name, content in entries.items():
        path = folder / name
        path.write_text(content)
        os.utime(path, (RESERVED_AT, RESERVED_AT))


def test_single_network_folder(tmp_path) -> None:
    network = tmp_path / "cbr0"
    write_network(
        network,
        {
            "10.85.0.12": f"{SANDBOX}\neth0",
            "10.85.0.13": OTHER,
            "fd00:85::c": f"{SANDBOX}\r\neth0\r\n",
            "last_reserved_ip.0": "10.85.0.13",
            "lock": "",
        },
    )
    inventory = load_host_local(network, taken_at=RESERVED_AT + 60)
    found = inventory.lookup("10.85.0.12", RESERVED_AT + 1).container
    assert found is not None
    assert found.id == SANDBOX
    assert found.name == SANDBOX[:12]
    assert found.runtime == "cni"
    assert inventory.lookup("fd00:85::c", RESERVED_AT + 1).container == found
    assert inventory.lookup("10.85.0.13", RESERVED_AT + 1).container.id == OTHER
    assert inventory.warnings == []
    assert inventory.covered_until == RESERVED_AT + 60
    interfaces = {
        binding.address: binding.interface for binding in inventory.bindings()
    }
    assert interfaces == {
        "10.85.0.12": "eth0",
        "10.85.0.13": None,
        "fd00:85::c": "eth0",
    }
    assert {binding.network for binding in inventory.bindings()} == {"cbr0"}


def test_address_starts_at_reservation(tmp_path) -> None:
    network = tmp_path / "cbr0"
    write_network(network, {"10.85.0.12": f"{SANDBOX}\neth0"})
    attribution = load_host_local(network).lookup("10.85.0.12", RESERVED_AT - 1)
    assert attribution.container is None
    assert attribution.reason == REASON_NOT_HELD


def test_folder_of_networks(tmp_path) -> None:
    write_network(tmp_path / "cbr0", {"10.85.0.12": f"{SANDBOX}\neth0"})
    write_network(tmp_path / "mynet", {"10.88.0.2": f"{OTHER}\neth1"})
    inventory = load_host_local(tmp_path)
    networks = {binding.address: binding.network for binding in inventory.bindings()}
    assert networks == {"10.85.0.12": "cbr0", "10.88.0.2": "mynet"}


def test_unexpected_files_warn(tmp_path) -> None:
    network = tmp_path / "cbr0"
    write_network(
        network,
        {"10.85.0.12": "", "notes.txt": "hello", "10.85.0.14": f"{SANDBOX}\neth0"},
    )
    inventory = load_host_local(network)
    assert len(inventory.warnings) == 2
    assert any("empty file" in warning for warning in inventory.warnings)
    assert any("not an address file" in warning for warning in inventory.warnings)
    assert [binding.address for binding in inventory.bindings()] == ["10.85.0.14"]


def test_missing_folder_raises(tmp_path) -> None:
    with pytest.raises(InventoryError, match="cannot list the CNI state folder"):
        load_host_local(tmp_path / "absent")
