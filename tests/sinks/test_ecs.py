"""ECS conversion: time formatting, Community ID, wallet redaction."""

from __future__ import annotations

from detector.model import (
    Confidence,
    Detection,
    Direction,
    Evidence,
    FlowCounters,
    FlowKey,
    MiningFields,
)
from detector.sinks.ecs import community_id, isoformat, to_ecs

WALLET = "4A" + "B" * 93


def test_isoformat_microseconds():
    assert isoformat(1767225600.25) == "2026-01-01T00:00:00.250000Z"


def test_isoformat_clamps_out_of_range():
    assert isoformat(1e18).startswith("9999-12-31")
    assert isoformat(-1e18).startswith("0001-01-01")


def test_community_id_published_vector():
    # The example flow of the Community ID specification (corelight).
    flow = FlowKey("tcp", "128.232.110.120", 34855, "66.35.250.204", 80)
    assert community_id(flow) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="


def test_community_id_same_both_ways():
    forward = FlowKey("tcp", "172.17.0.2", 40000, "192.0.2.1", 3333)
    backward = FlowKey("tcp", "192.0.2.1", 3333, "172.17.0.2", 40000)
    assert community_id(forward) == community_id(backward)


def detection() -> Detection:
    error = Evidence(
        kind="stratum.error",
        confidence=Confidence.MEDIUM,
        description=f"pool rejected login: unknown wallet {WALLET}",
        timestamp=1767225600.0,
        direction=Direction.TO_CLIENT,
    )
    return Detection(
        source="x.pcap",
        flow=FlowKey("tcp", "172.17.0.2", 40000, "192.0.2.1", 3333),
        first_seen=1767225600.0,
        last_seen=1767225660.0,
        confidence=Confidence.HIGH,
        evidence=(error,),
        mining=MiningFields(dialect="monero", login=WALLET + ".rig", wallet=WALLET),
        counters=FlowCounters(),
    )


def test_redaction_covers_login_and_evidence():
    document = to_ecs(detection(), redact_wallets=True)
    text = repr(document)
    assert WALLET not in text
    assert document["mining"]["wallet"] == "4ABB...BBBB"
    assert document["mining"]["login"] == "4ABB...BBBB.rig"


def test_without_redaction_wallet_kept():
    document = to_ecs(detection())
    assert document["mining"]["wallet"] == WALLET
    assert document["event"]["duration"] == 60 * 10**9


def test_container_fields():
    from dataclasses import replace

    from detector.model import Attribution, Container

    pod = Container(
        id="c0ffee",
        name="miner",
        image="busybox:latest",
        runtime="kubernetes",
        labels={"app": "web"},
        pod="web-7f9c",
        namespace="tenant-a",
        node="node-3",
        pod_uid="1234-uid",
        members=("miner", "sidecar"),
    )
    attributed = replace(
        detection(), attribution=Attribution(container=pod, address="172.17.0.2")
    )
    document = to_ecs(attributed)
    assert document["container"]["id"] == "c0ffee"
    assert document["container"]["image"]["name"] == "busybox:latest"
    assert document["orchestrator"]["namespace"] == "tenant-a"
    assert document["orchestrator"]["resource"] == {
        "type": "pod",
        "name": "web-7f9c",
        "id": "1234-uid",
    }
    assert document["host"]["name"] == "node-3"
    assert document["mining"]["attribution"]["status"] == "attributed"


def test_unattributed_reason():
    from dataclasses import replace

    from detector.model import Attribution

    unknown = replace(
        detection(),
        attribution=Attribution(
            container=None, address="172.17.0.2", reason="address not in inventory"
        ),
    )
    document = to_ecs(unknown)
    assert "container" not in document
    assert document["mining"]["attribution"] == {
        "status": "unattributed",
        "address": "172.17.0.2",
        "nat": False,
        "reason": "address not in inventory",
    }
