"""Time-aware lookups, the unattributed reasons, and the snapshot file."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.attribution import (
    REASON_AMBIGUOUS,
    REASON_ENDS_BEFORE,
    REASON_HOST_ADDRESS,
    REASON_NOT_HELD,
    REASON_NOT_IN_INVENTORY,
    REASON_STARTS_AFTER,
    Inventory,
    InventoryError,
)
from detector.attribution.addresses import (
    INTERFACE,
    MAC,
    canonical,
    normalize_address,
)
from detector.errors import DetectorError
from detector.model import Container

FIRST = Container(id="a" * 64, name="miner-1", image="busybox:test")
SECOND = Container(id="b" * 64, name="miner-2", image="busybox:test")
POD = Container(
    id="c" * 64,
    name="web",
    image="nginx:1.25",
    runtime="kubernetes",
    pod="web-7d9c",
    namespace="shop",
    members=("web", "sidecar"),
)


def reused_address() -> Inventory:
    """10.0.0.5 held by FIRST from 100 to 200, then by SECOND from 210 on."""
    inventory = Inventory(covered_from=50.0, covered_until=500.0)
    inventory.add_container(FIRST)
    inventory.add_container(SECOND)
    inventory.bind(FIRST.id, "10.0.0.5", 100.0, 200.0, network="n")
    inventory.bind(FIRST.id, "02:42:0A:00:00:05", 100.0, 200.0, network="n")
    inventory.bind(SECOND.id, "10.0.0.5", 210.0, network="n")
    inventory.bind(SECOND.id, "02:42:0a:00:00:05", 210.0, network="n")
    inventory.bind(SECOND.id, "veth1a2b3c4", 210.0, kind=INTERFACE, network="n")
    return inventory


def test_lookup_picks_holder_at_time() -> None:
    inventory = reused_address()
    assert inventory.lookup("10.0.0.5", 150.0).container == FIRST
    assert inventory.lookup("10.0.0.5", 300.0).container == SECOND


def test_lookup_range_ends_are_inclusive() -> None:
    inventory = reused_address()
    assert inventory.lookup("10.0.0.5", 100.0).container == FIRST
    assert inventory.lookup("10.0.0.5", 200.0).container == FIRST
    assert inventory.lookup("10.0.0.5", 210.0).container == SECOND


def test_lookup_gap_between_holders() -> None:
    attribution = reused_address().lookup("10.0.0.5", 205.0)
    assert attribution.container is None
    assert attribution.reason == REASON_NOT_HELD
    assert attribution.address == "10.0.0.5"


def test_lookup_by_mac_follows_history() -> None:
    inventory = reused_address()
    assert inventory.lookup("02:42:0a:00:00:05", 150.0).container == FIRST
    assert inventory.lookup("02-42-0A-00-00-05", 250.0).container == SECOND


def test_lookup_interface() -> None:
    inventory = reused_address()
    assert inventory.lookup_interface("veth1a2b3c4", 250.0).container == SECOND
    early = inventory.lookup_interface("veth1a2b3c4", 150.0)
    assert early.container is None
    assert early.reason == REASON_NOT_HELD


def test_unknown_address_reason() -> None:
    attribution = reused_address().lookup("10.0.0.99", 150.0)
    assert attribution.container is None
    assert attribution.reason == REASON_NOT_IN_INVENTORY


def test_flow_after_inventory_end() -> None:
    inventory = reused_address()
    unknown = inventory.lookup("10.0.0.99", 600.0)
    assert unknown.reason == REASON_ENDS_BEFORE
    # The address was still held when the inventory ended, so it is kept.
    assert inventory.lookup("10.0.0.5", 600.0).container == SECOND


def test_flow_before_inventory_start() -> None:
    attribution = reused_address().lookup("10.0.0.5", 10.0)
    assert attribution.container is None
    assert attribution.reason == REASON_STARTS_AFTER


def test_overlapping_holders_are_ambiguous() -> None:
    inventory = reused_address()
    intruder = Container(id="d" * 64, name="other")
    inventory.add_container(intruder)
    inventory.bind(intruder.id, "10.0.0.5", 140.0, 160.0)
    attribution = inventory.lookup("10.0.0.5", 150.0)
    assert attribution.container is None
    assert attribution.reason == REASON_AMBIGUOUS
    assert inventory.lookup("10.0.0.5", 170.0).container == FIRST


def test_pod_members_share_one_record() -> None:
    inventory = Inventory()
    inventory.add_container(POD)
    inventory.bind(POD.id, "fd00::7", 0.0)
    found = inventory.lookup("fd00:0:0::7", 5.0).container
    assert found is not None
    assert found.members == ("web", "sidecar")
    assert found.pod == "web-7d9c"


def test_host_network_address_names_nobody() -> None:
    inventory = Inventory()
    inventory.add_container(POD)
    inventory.bind(POD.id, "192.0.2.10", 0.0, host_network=True)
    attribution = inventory.lookup("192.0.2.10", 5.0)
    assert attribution.container is None
    assert attribution.reason == REASON_HOST_ADDRESS


def test_bind_is_idempotent_while_open() -> None:
    inventory = Inventory()
    inventory.add_container(FIRST)
    first = inventory.bind(FIRST.id, "10.0.0.5", 100.0, network="n")
    again = inventory.bind(FIRST.id, "10.0.0.5", 105.0, network="n")
    assert again == first
    assert len(inventory.bindings()) == 1


def test_close_ends_open_ranges() -> None:
    inventory = Inventory()
    inventory.add_container(FIRST)
    inventory.bind(FIRST.id, "10.0.0.5", 100.0, network="front")
    inventory.bind(FIRST.id, "10.1.0.5", 100.0, network="back")
    assert inventory.close(FIRST.id, 150.0, network="front") == 1
    ends = {binding.network: binding.end for binding in inventory.bindings()}
    assert ends == {"front": 150.0, "back": None}
    assert inventory.close(FIRST.id, 160.0) == 1
    assert inventory.bindings(FIRST.id)[1].end == 160.0


def test_close_keeps_later_ranges_open() -> None:
    inventory = Inventory()
    inventory.add_container(FIRST)
    inventory.bind(FIRST.id, "10.0.0.5", 100.0)
    # A die event replayed from before the current start must not end it.
    assert inventory.close(FIRST.id, 90.0) == 0
    assert inventory.bindings()[0].end is None


def test_bind_rejects_bad_input() -> None:
    inventory = Inventory()
    inventory.add_container(FIRST)
    with pytest.raises(KeyError):
        inventory.bind("nobody", "10.0.0.5", 0.0)
    with pytest.raises(ValueError):
        inventory.bind(FIRST.id, "10.0.0.500", 0.0)
    with pytest.raises(ValueError):
        inventory.bind(FIRST.id, "10.0.0.5", 10.0, 5.0)
    with pytest.raises(ValueError):
        inventory.bind(FIRST.id, "10.0.0.5", 0.0, kind=MAC)


def test_lookup_rejects_non_address() -> None:
    with pytest.raises(ValueError):
        reused_address().lookup("not-an-address", 0.0)


def test_address_forms_are_canonical() -> None:
    assert normalize_address("::ffff:10.0.0.1") == ("ipv4", "10.0.0.1")
    assert normalize_address("FD00:0::1") == ("ipv6", "fd00::1")
    assert normalize_address("02-42-AC-11-00-02") == ("mac", "02:42:ac:11:00:02")
    assert canonical(INTERFACE, "veth0") == "veth0"
    with pytest.raises(ValueError):
        canonical(INTERFACE, "a-name-longer-than-15")
    with pytest.raises(ValueError):
        canonical("ipx", "10.0.0.1")


def test_merge_narrows_coverage() -> None:
    inventory = reused_address()
    other = Inventory(covered_from=80.0, covered_until=400.0)
    other.add_container(POD)
    other.bind(POD.id, "10.9.0.1", 90.0)
    other.warnings.append("skipped one file")
    inventory.merge(other)
    assert inventory.covered_from == 80.0
    assert inventory.covered_until == 400.0
    assert inventory.lookup("10.9.0.1", 95.0).container == POD
    assert inventory.warnings == ["skipped one file"]


def test_snapshot_round_trip(tmp_path) -> None:
    inventory = reused_address()
    inventory.add_container(POD)
    inventory.bind(POD.id, "fd00::7", 0.5, host_network=False, interface="eth0")
    path = tmp_path / "inventory.json"
    inventory.save(path)
    loaded = Inventory.load(path)
    assert dict(loaded.containers) == dict(inventory.containers)
    assert loaded.bindings() == inventory.bindings()
    assert loaded.covered_from == inventory.covered_from
    assert loaded.covered_until == inventory.covered_until
    for timestamp in (10.0, 150.0, 205.0, 300.0, 600.0):
        assert loaded.lookup("10.0.0.5", timestamp) == inventory.lookup(
            "10.0.0.5", timestamp
        )


def test_snapshot_leaves_no_temporary_file(tmp_path) -> None:
    reused_address().save(tmp_path / "inventory.json")
    assert [path.name for path in tmp_path.iterdir()] == ["inventory.json"]


def test_save_to_missing_folder_raises(tmp_path) -> None:
    with pytest.raises(InventoryError, match="cannot write"):
        reused_address().save(tmp_path / "missing" / "inventory.json")


def snapshot_with(tmp_path, change) -> str:
    document = reused_address().to_document()
    change(document)
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(document))
    return str(path)


INVALID_SNAPSHOTS = [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d.update(version=2), "version"),
    (lambda d: d.update(covered_until="yesterday"), "covered_until"),
    (lambda d: d.update(containers={}), "containers"),
    (lambda d: d["containers"][0].pop("id"), "containers[0].id"),
    (lambda d: d["containers"][0].update(id=""), "containers[0].id"),
    (lambda d: d["containers"][1].update(id="a" * 64), "containers[1].id"),
    (lambda d: d["containers"][0].update(labels={"a": 1}), "containers[0].labels"),
    (lambda d: d["containers"][0].update(adresses=[]), "containers[0]"),
    (
        lambda d: d["containers"][0]["addresses"][0].update(address="10.0.0.300"),
        "containers[0].addresses[0].address",
    ),
    (
        lambda d: d["containers"][0]["addresses"][0].update(kind="ipv6"),
        "containers[0].addresses[0].address",
    ),
    (
        lambda d: d["containers"][0]["addresses"][0].update(end=1.0),
        "containers[0].addresses[0].end",
    ),
    (
        lambda d: d["containers"][0]["addresses"][0].update(start="2024-05-01T10:00"),
        "containers[0].addresses[0].start",
    ),
    (
        lambda d: d["containers"][0]["addresses"][0].update(host_network="yes"),
        "containers[0].addresses[0].host_network",
    ),
]


@pytest.mark.parametrize(("change", "key"), INVALID_SNAPSHOTS)
def test_load_names_invalid_key(tmp_path, change, key) -> None:
    path = snapshot_with(tmp_path, change)
    with pytest.raises(InventoryError) as caught:
        Inventory.load(path)
    assert caught.value.key == key
    assert caught.value.source == path


def test_load_rejects_broken_json(tmp_path) -> None:
    path = tmp_path / "inventory.json"
    path.write_text('{"format": ')
    with pytest.raises(InventoryError, match="invalid JSON at line 1"):
        Inventory.load(path)


def test_load_missing_file(tmp_path) -> None:
    with pytest.raises(InventoryError, match="cannot read the snapshot"):
        Inventory.load(tmp_path / "absent.json")


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    json_values,
    st.sampled_from(["containers", "addresses", "start", "labels", "members"]),
)
def test_document_parser_only_raises_inventory_error(value, field) -> None:
    documents = [
        value,
        {"format": "detector-inventory", "version": 1, "containers": value},
        {
            "format": "detector-inventory",
            "version": 1,
            "containers": [{"id": "x", field: value}],
        },
        {
            "format": "detector-inventory",
            "version": 1,
            "containers": [
                {"id": "x", "addresses": [{"address": "10.0.0.1", field: value}]}
            ],
        },
    ]
    for document in documents:
        try:
            Inventory.from_document(document, "generated")
        except DetectorError:
            pass


def test_forget_ended_drops_old_history() -> None:
    inventory = reused_address()
    assert inventory.forget_ended(150.0) == 0
    assert inventory.lookup("10.0.0.5", 150.0).container == FIRST
    assert inventory.forget_ended(205.0) == 2
    assert FIRST.id not in inventory.containers
    assert inventory.lookup("10.0.0.5", 300.0).container == SECOND
    assert inventory.lookup_interface("veth1a2b3c4", 300.0).container == SECOND
    earlier = inventory.lookup("10.0.0.5", 150.0)
    assert earlier.container is None
    assert earlier.reason == REASON_STARTS_AFTER
    assert inventory.covered_from == 205.0
