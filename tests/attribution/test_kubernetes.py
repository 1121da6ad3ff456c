"""Pod lists as ``kubectl get pods -A -o json`` writes them."""

from __future__ import annotations

import copy
import json
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.attribution import (
    REASON_ENDS_BEFORE,
    REASON_HOST_ADDRESS,
    REASON_NOT_HELD,
    InventoryError,
    load_pods_file,
    parse_pods,
)
from detector.attribution.kubernetes import container_id
from detector.attribution.times import parse_time
from detector.errors import DetectorError

NODE_IP = "192.168.49.2"
STARTED = "2024-05-01T10:00:00Z"
T0 = parse_time(STARTED)
assert T0 is not None


def running(name: str, image: str, cid: str, started: str = STARTED) -> dict:
    return {
        "containerID": f"containerd://{cid}",
        "image": image,
        "imageID": f"{image.split(':')[0]}@sha256:{'0' * 64}",
        "lastState": {},
        "name": name,
        "ready": True,
        "restartCount": 0,
        "started": True,
        "state": {"running": {"startedAt": started}},
    }


def pod(
    name: str,
    namespace: str,
    uid: str,
    containers: list[dict],
    statuses: list[dict],
    *,
    phase: str = "Running",
    ips: list[str] | None = None,
    host_network: bool = False,
    init: tuple[list[dict], list[dict]] | None = None,
    start: str | None = STARTED,
) -> dict:
    spec: dict = {
        "containers": containers,
        "dnsPolicy": "ClusterFirst",
        "nodeName": "worker-1",
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
    }
    status: dict = {
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": statuses,
        "hostIP": NODE_IP,
        "hostIPs": [{"ip": NODE_IP}],
        "phase": phase,
        "qosClass": "BestEffort",
    }
    if start is not None:
        status["startTime"] = start
    if host_network:
        spec["hostNetwork"] = True
    if init is not None:
        spec["initContainers"], status["initContainerStatuses"] = init
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "creationTimestamp": STARTED,
            "labels": {"app": name.split("-")[0]},
            "name": name,
            "namespace": namespace,
            "resourceVersion": "81234",
            "uid": uid,
        },
        "spec": spec,
        "status": status,
    }


def spec_container(name: str, image: str) -> dict:
    return {"image": image, "imagePullPolicy": "IfNotPresent", "name": name}


SINGLE = pod(
    "api-5d8f7c9b4-x2k8p",
    "shop",
    "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    [spec_container("api", "registry.example/shop/api:1.4")],
    [running("api", "registry.example/shop/api:1.4", "a1" * 32)],
    ips=["10.244.1.17"],
)
MULTI = pod(
    "web-7d9c6b5f4-qv7lm",
    "shop",
    "6fa459ea-ee8a-3ca4-894e-db77e160355e",
    [
        spec_container("nginx", "nginx:1.25"),
        spec_container("log-shipper", "fluent/fluent-bit:2.2"),
    ],
    [
        running("log-shipper", "fluent/fluent-bit:2.2", "b2" * 32),
        running("nginx", "nginx:1.25", "c3" * 32),
    ],
    ips=["10.244.1.18"],
    init=(
        [spec_container("migrate", "registry.example/shop/migrate:1.4")],
        [
            {
                "containerID": "containerd://" + "d4" * 32,
                "image": "registry.example/shop/migrate:1.4",
                "name": "migrate",
                "ready": True,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "finishedAt": "2024-05-01T10:00:05Z",
                        "reason": "Completed",
                        "startedAt": STARTED,
                    }
                },
            }
        ],
    ),
)
HOST_NETWORK = pod(
    "kube-proxy-8xq2w",
    "kube-system",
    "9d7a1c3e-0b4f-4a8e-9c61-3f0f5b7d2e11",
    [spec_container("kube-proxy", "registry.k8s.io/kube-proxy:v1.29.2")],
    [running("kube-proxy", "registry.k8s.io/kube-proxy:v1.29.2", "e5" * 32)],
    ips=[NODE_IP],
    host_network=True,
)
PENDING = pod(
    "batch-28561230-kq9zd",
    "jobs",
    "3e1f8a52-7c4d-4b5e-8f2a-6d9c0b1e7a44",
    [spec_container("batch", "registry.example/jobs/batch:7")],
    [
        {
            "image": "registry.example/jobs/batch:7",
            "imageID": "",
            "lastState": {},
            "name": "batch",
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {"waiting": {"reason": "ContainerCreating"}},
        }
    ],
    phase="Pending",
    start=None,
)
DUAL_STACK = pod(
    "edge-6c7b8d9f5-m4n5p",
    "edge",
    "c0a80101-1d2e-4f3a-9b8c-7d6e5f4a3b2c",
    [spec_container("edge", "registry.example/edge/proxy:3.0")],
    [running("edge", "registry.example/edge/proxy:3.0", "f6" * 32)],
    ips=["10.244.1.19", "fd00:10:244:1::13"],
)
# A finished job whose address was handed to a later pod.
FINISHED = pod(
    "report-28561200-abcde",
    "jobs",
    "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
    [spec_container("report", "registry.example/jobs/report:2")],
    [
        {
            "containerID": "containerd://" + "a7" * 32,
            "image": "registry.example/jobs/report:2",
            "name": "report",
            "ready": False,
            "restartCount": 0,
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "finishedAt": "2024-05-01T09:30:00Z",
                    "reason": "Completed",
                    "startedAt": "2024-05-01T09:00:00Z",
                }
            },
        }
    ],
    phase="Succeeded",
    ips=["10.244.1.20"],
    start="2024-05-01T09:00:00Z",
)
REUSER = pod(
    "cache-0",
    "shop",
    "7e8f9a0b-1c2d-4e3f-8a4b-5c6d7e8f9a0b",
    [spec_container("redis", "redis:7.2")],
    [running("redis", "redis:7.2", "b8" * 32)],
    ips=["10.244.1.20"],
)
POD_LIST = {
    "apiVersion": "v1",
    "items": [SINGLE, MULTI, HOST_NETWORK, PENDING, DUAL_STACK, FINISHED, REUSER],
    "kind": "List",
    "metadata": {"resourceVersion": ""},
}
TAKEN_AT = T0 + 3600


@pytest.fixture
def inventory():
    return parse_pods(copy.deepcopy(POD_LIST), "pods.json", taken_at=TAKEN_AT)


def test_single_container_pod(inventory) -> None:
    found = inventory.lookup("10.244.1.17", T0 + 60).container
    assert found is not None
    assert found.id == "a1" * 32
    assert found.name == "api"
    assert found.image == "registry.example/shop/api:1.4"
    assert found.runtime == "kubernetes"
    assert found.pod == "api-5d8f7c9b4-x2k8p"
    assert found.namespace == "shop"
    assert found.node == "worker-1"
    assert found.pod_uid == "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    assert found.labels == {"app": "api"}
    assert found.members == ("api",)


def test_multi_container_pod_names_pod(inventory) -> None:
    found = inventory.lookup("10.244.1.18", T0 + 60).container
    assert found is not None
    assert found.id == "6fa459ea-ee8a-3ca4-894e-db77e160355e"
    assert found.name == "web-7d9c6b5f4-qv7lm"
    assert found.image is None
    assert found.members == ("migrate", "nginx", "log-shipper")


def test_host_network_pod_names_nobody(inventory) -> None:
    attribution = inventory.lookup(NODE_IP, T0 + 60)
    assert attribution.container is None
    assert attribution.reason == REASON_HOST_ADDRESS
    assert "e5" * 32 in inventory.containers


def test_pending_pod_has_no_address(inventory) -> None:
    pending = inventory.containers["3e1f8a52-7c4d-4b5e-8f2a-6d9c0b1e7a44"]
    assert pending.name == "batch"
    assert inventory.bindings(pending.id) == []


def test_dual_stack_pod_both_addresses(inventory) -> None:
    v4 = inventory.lookup("10.244.1.19", T0 + 60).container
    v6 = inventory.lookup("fd00:10:244:1:0:0:0:13", T0 + 60).container
    assert v4 is not None
    assert v6 == v4
    assert v4.name == "edge"


def test_reused_address_follows_pods(inventory) -> None:
    before = inventory.lookup("10.244.1.20", T0 - 45 * 60).container
    assert before is not None
    assert before.name == "report"
    gap = inventory.lookup("10.244.1.20", T0 - 10 * 60)
    assert gap.container is None
    assert gap.reason == REASON_NOT_HELD
    after = inventory.lookup("10.244.1.20", T0 + 60).container
    assert after is not None
    assert after.name == "redis"


def test_flow_after_list_time(inventory) -> None:
    attribution = inventory.lookup("10.244.9.9", TAKEN_AT + 1)
    assert attribution.reason == REASON_ENDS_BEFORE


def test_unfinished_time_ends_at_list_time() -> None:
    finished = copy.deepcopy(FINISHED)
    finished["status"]["containerStatuses"][0]["state"] = {}
    inventory = parse_pods(
        {"kind": "List", "items": [finished]}, "pods.json", taken_at=TAKEN_AT
    )
    [binding] = inventory.bindings()
    assert binding.end == TAKEN_AT


def test_single_pod_document() -> None:
    inventory = parse_pods(copy.deepcopy(SINGLE), "pod.json")
    assert len(inventory) == 1


def test_load_pods_file_uses_mtime(tmp_path) -> None:
    path = tmp_path / "pods.json"
    path.write_text(json.dumps(POD_LIST, indent=4))
    os.utime(path, (TAKEN_AT, TAKEN_AT))
    inventory = load_pods_file(path)
    assert inventory.covered_until == TAKEN_AT
    assert len(inventory) == 7


def test_load_pods_file_errors(tmp_path) -> None:
    with pytest.raises(InventoryError, match="cannot read the pod list"):
        load_pods_file(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{\n  items: []\n}")
    with pytest.raises(InventoryError, match="invalid JSON at line 2"):
        load_pods_file(broken)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda p: p.pop("items"), "items"),
        (lambda p: p["items"][1]["metadata"].pop("uid"), "items[1].metadata.uid"),
        (lambda p: p["items"][0].update(spec=[]), "items[0].spec"),
        (
            lambda p: p["items"][0]["spec"]["containers"][0].pop("name"),
            "items[0].spec.containers[0].name",
        ),
        (
            lambda p: p["items"][0]["status"].update(podIPs=["10.0.0.1"]),
            "items[0].status.podIPs[0]",
        ),
        (
            lambda p: p["items"][0]["status"].update(podIP="10.0.0.300"),
            "items[0].status.podIPs",
        ),
        (
            lambda p: p["items"][0]["status"].update(startTime="yesterday"),
            "items[0].status",
        ),
        (
            lambda p: p["items"][0]["spec"].update(containers=[]),
            "items[0].spec.containers",
        ),
    ],
)
def test_invalid_pod_list_names_key(change, key) -> None:
    document = copy.deepcopy(POD_LIST)
    change(document)
    with pytest.raises(InventoryError) as caught:
        parse_pods(document, "pods.json")
    assert caught.value.key == key


def test_container_id_strips_runtime() -> None:
    assert container_id("containerd://abc") == "abc"
    assert container_id("cri-o://abc") == "abc"
    assert container_id("docker://abc") == "abc"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


@given(
    st.sampled_from(["metadata", "spec", "status", "containers", "podIPs", "state"]),
    json_values,
)
def test_pod_parser_only_raises_inventory_error(field, value) -> None:
    document = copy.deepcopy(POD_LIST)
    target = document["items"][1]
    if field in ("metadata", "spec", "status"):
        target[field] = value
    elif field == "containers":
        target["spec"]["containers"] = value
    elif field == "podIPs":
        target["status"]["podIPs"] = value
    else:
        target["status"]["containerStatuses"][0]["state"] = value
    try:
        parse_pods(document, "generated")
    except DetectorError:
        pass
