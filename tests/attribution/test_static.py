"""The hand-written YAML inventory."""

from __future__ import annotations

import pytest

from detector.attribution import (
    REASON_NOT_HELD,
    InventoryError,
    load_static,
)
from detector.attribution.times import parse_time

STATIC = """\
containers:
  - id: build-runner-7
    name: build-runner
    image: registry.example/ci/runner:2.4
    labels:
      team: platform
    addresses:
      - 10.20.0.7
      - 02:42:0a:14:00:07
  - id: batch-0042
    name: nightly-report
    runtime: vm
    addresses:
      - address: 10.20.0.8
        start: 2024-05-01T10:00:00Z
        end: 2024-05-01T12:00:00Z
        network: batch
      - address: 10.20.0.9
        start: 1714557600
    interfaces:
      - vethbatch42
      - name: vethbatch43
        start: "2024-05-01T10:00:00+02:00"
"""

TEN_UTC = 1714557600.0


def write(tmp_path, text: str):
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    return path


def test_static_file_entries(tmp_path) -> None:
    inventory = load_static(write(tmp_path, STATIC))
    runner = inventory.lookup("10.20.0.7", 0.0).container
    assert runner is not None
    assert runner.name == "build-runner"
    assert runner.image == "registry.example/ci/runner:2.4"
    assert runner.runtime == "static"
    assert runner.labels == {"team": "platform"}
    assert inventory.lookup("02:42:0A:14:00:07", 9e9).container == runner


def test_static_time_ranges(tmp_path) -> None:
    inventory = load_static(write(tmp_path, STATIC))
    inside = inventory.lookup("10.20.0.8", TEN_UTC + 3600)
    assert inside.container is not None
    assert inside.container.runtime == "vm"
    after = inventory.lookup("10.20.0.8", TEN_UTC + 3 * 3600)
    assert after.container is None
    assert after.reason == REASON_NOT_HELD
    assert inventory.lookup("10.20.0.9", TEN_UTC - 1).container is None
    assert inventory.lookup("10.20.0.9", TEN_UTC).container is not None


def test_static_interfaces(tmp_path) -> None:
    inventory = load_static(write(tmp_path, STATIC))
    assert inventory.lookup_interface("vethbatch42", 0.0).container is not None
    # +02:00 makes the start two hours before 10:00 UTC.
    assert inventory.lookup_interface("vethbatch43", TEN_UTC - 7200).container
    assert inventory.lookup_interface("vethbatch43", TEN_UTC - 7201).container is None


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("containers: [{name: x}]", "containers[0].id", "missing value"),
        (
            "containers: [{id: x, addresses: [7]}]",
            "containers[0].addresses[0]",
            "must be an address or a mapping",
        ),
        (
            "containers: [{id: x, addresses: ['300.1.1.1']}]",
            "containers[0].addresses[0].address",
            "invalid IP or MAC address",
        ),
        (
            "containers: [{id: x, addresses: [{address: 1.2.3.4, start: 2024-05-01}]}]",
            "containers[0].addresses[0].start",
            "not the date",
        ),
        (
            "containers: [{id: x, addresses: [{address: 10.0.0.1, "
            "start: '2024-05-01 10:00:00'}]}]",
            "containers[0].addresses[0].start",
            "no UTC offset",
        ),
        (
            "containers: [{id: x, interfaces: ['has space']}]",
            "containers[0].interfaces[0].name",
            "contains / or a space",
        ),
        (
            "containers: [{id: x, image: [a]}]",
            "containers[0].image",
            "must be a string",
        ),
        ("format: other\ncontainers: []", "format", "must be"),
        ("- just a list", "document", "must be a mapping"),
    ],
)
def test_static_errors_name_key(tmp_path, text, key, message) -> None:
    with pytest.raises(InventoryError) as caught:
        load_static(write(tmp_path, text))
    assert caught.value.key == key
    assert message in caught.value.reason


def test_static_invalid_yaml(tmp_path) -> None:
    with pytest.raises(InventoryError, match="invalid YAML at line 3 column 1"):
        load_static(write(tmp_path, "containers:\n  - id: [unclosed\n"))


def test_static_missing_file(tmp_path) -> None:
    with pytest.raises(InventoryError, match="cannot read the file"):
        load_static(tmp_path / "absent.yaml")


def test_parse_time_forms() -> None:
    assert parse_time(None) is None
    assert parse_time(5) == 5.0
    assert parse_time("2024-05-01T10:00:00Z") == TEN_UTC
    assert parse_time("2026-12-04T15:51:24.421482996Z") == pytest.approx(
        1796399484.421482
    )
    assert parse_time("0001-01-01T00:00:00Z") is None
    for bad in (True, "soon", "2024-05-01T10:00:00", [1]):
        with pytest.raises(ValueError):
            parse_time(bad)
