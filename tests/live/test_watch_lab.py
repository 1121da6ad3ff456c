"""detector watch on lab bridges: real miners, pools and ordinary clients.

Everything runs inside the namespaces of :mod:`tests.live.lab`. Watch runs in
the host namespace and captures on the bridges, as it would on a Docker
host. The peers are the real-socket ones of ``detector.trafficgen live``.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPOSITORY
from tests.live.lab import EVENT_TIMEOUT, Lab, Node, Watch, write_static_inventory

POOL_PORT = 3333
BENIGN_PORT = 80
# Port of watch's metrics server inside the host namespace; a namespace the
# lab just made has no other listener.
METRICS_PORT = 9100
# Seconds between the miner's login and its alert that the tests wait for.
# Watch writes "mining-detected" within a second of the evidence, and the
# other second is margin for a loaded host. The tests record the delay and
# never assert speed beyond this bound.
ALERT_BOUND_SECONDS = 2.0
# Seconds a miner keeps its connection open after its shares, so that its
# first alert comes while the flow is open.
MINER_HOLD_SECONDS = 3.0
# Seconds between the rescans of interfaces in the hot-plug test.
RESCAN_SECONDS = 0.5
# A pool domain under the reserved .example top-level domain, named in an
# HTTP Host header to turn ordinary requests into medium-confidence evidence.
LAB_POOL_DOMAIN = "lab-pool.example"
LAB_POOL_HOST = f"stratum.{LAB_POOL_DOMAIN}"


def alert_from(alert: dict[str, Any], node: Node) -> bool:
    return alert.get("source", {}).get("ip") in (node.address, node.address6)


def names_node(alert: dict[str, Any], node: Node) -> bool:
    addresses = (node.address, node.address6)
    return (
        alert.get("source", {}).get("ip") in addresses
        or alert.get("destination", {}).get("ip") in addresses
    )


def action(alert: dict[str, Any]) -> str | None:
    return alert.get("event", {}).get("action")


def interface_of(alert: dict[str, Any]) -> str | None:
    return alert.get("observer", {}).get("ingress", {}).get("interface", {}).get("name")


def detected_from(node: Node) -> Any:
    return lambda alert: action(alert) == "mining-detected" and alert_from(alert, node)


def wait_after_login(
    watch: Watch, login_time: float, node: Node
) -> tuple[float, dict[str, Any]] | None:
    """Wait for the node's mining-detected alert until ALERT_BOUND_SECONDS
    after its login; return the arrival time and alert, or None."""
    remaining = login_time + ALERT_BOUND_SECONDS - time.time()
    try:
        return watch.wait_for_alert(
            detected_from(node), max(remaining, 0.0), f"an alert from {node.role}"
        )
    except AssertionError:
        return None


def start_pool(lab: Lab, node: Node, *, address6: bool = False) -> None:
    host = f"[{node.address6}]" if address6 else node.address
    pool = lab.peer(
        node, "serve-pool", "--listen", f"{host}:{POOL_PORT}", "--job-interval", "1"
    )
    pool.wait_for("listening")


def mine(
    lab: Lab, miner: Node, pool: Node, *, seed: int, address6: bool = False
) -> Any:
    host = f"[{pool.address6}]" if address6 else pool.address
    return lab.peer(
        miner,
        "mine",
        "--pool",
        f"{host}:{POOL_PORT}",
        "--shares",
        "3",
        "--interval",
        "0.3",
        "--hold",
        str(MINER_HOLD_SECONDS),
        "--seed",
        str(seed),
    )


def browse(lab: Lab, client: Node, server: Node, *extra: str) -> None:
    peer = lab.peer(
        client, "browse", "--server", f"{server.address}:{BENIGN_PORT}", *extra
    )
    status = peer.wait()
    assert status == 0, peer.stderr()


# -- one watch on one bridge: alerts, metrics, evidence, SIGTERM ------------------


@dataclass
class Watched:
    """What one watch on one bridge wrote while a miner, an IPv6 miner and
    ordinary clients ran, and after SIGTERM."""

    lab: Lab
    bridge: str
    pool: Node
    miner: Node
    miner6: Node
    server: Node
    client: Node
    container_ids: dict[str, str]
    evidence_dir: Path
    login: dict[str, Any]
    miner_closed: dict[str, Any]
    detected: tuple[float, dict[str, Any]] | None
    detected6: tuple[float, dict[str, Any]] | None
    metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    healthz: tuple[int, str]
    alerts_before_stop: list[dict[str, Any]]
    stop_sent: float
    exit_status: int
    alerts: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def watched(module_lab: Lab, tmp_path_factory) -> Watched:
    lab = module_lab
    folder = tmp_path_factory.mktemp("watched")
    bridge = lab.add_bridge()
    pool = lab.add_node("pool", bridge, 2)
    miner = lab.add_node("miner", bridge, 10)
    miner6 = lab.add_node("miner6", bridge, 11)
    server = lab.add_node("web", bridge, 20)
    client = lab.add_node("client", bridge, 21)
    inventory = folder / "inventory.yaml"
    container_ids = write_static_inventory(
        inventory,
        [
            ("pool-lab", pool),
            ("miner-lab", miner),
            ("miner6-lab", miner6),
            ("web-lab", server),
            ("client-lab", client),
        ],
    )
    start_pool(lab, pool)
    start_pool(lab, pool, address6=True)
    web = lab.peer(server, "serve-benign", "--listen", f"0.0.0.0:{BENIGN_PORT}")
    web.wait_for("listening")

    evidence_dir = folder / "evidence"
    watch = lab.watch(
        "--interface",
        bridge.name,
        "--inventory",
        str(inventory),
        "--evidence-dir",
        str(evidence_dir),
        metrics_port=METRICS_PORT,
    )
    watch.wait_until_capturing(bridge.name)

    browse(lab, client, server, "--count", "2")
    # The two miners run at once to keep the module short.
    miner_peer = mine(lab, miner, pool, seed=1)
    miner6_peer = mine(lab, miner6, pool, seed=2, address6=True)
    login = miner_peer.wait_for("logged-in")
    detected = wait_after_login(watch, login["time"], miner)
    login6 = miner6_peer.wait_for("logged-in")
    detected6 = wait_after_login(watch, login6["time"], miner6)
    miner_closed = miner_peer.wait_for("closed")
    assert miner_peer.wait() == 0, miner_peer.stderr()
    assert miner6_peer.wait() == 0, miner6_peer.stderr()

    metrics = watch.metrics()
    healthz = watch.http_get("/healthz")
    alerts_before_stop = watch.alert_records()
    stop_sent = time.time()
    exit_status = watch.terminate()
    return Watched(
        lab=lab,
        bridge=bridge.name,
        pool=pool,
        miner=miner,
        miner6=miner6,
        server=server,
        client=client,
        container_ids=container_ids,
        evidence_dir=evidence_dir,
        login=login,
        miner_closed=miner_closed,
        detected=detected,
        detected6=detected6,
        metrics=metrics,
        healthz=healthz,
        alerts_before_stop=alerts_before_stop,
        stop_sent=stop_sent,
        exit_status=exit_status,
        alerts=list(watch.alerts.lines),
        logs=watch.log_lines(),
    )


def test_alert_within_bound_of_login(watched, record_property) -> None:
    assert watched.detected is not None, (
        f"no mining-detected alert from {watched.miner.address} within"
        f" {ALERT_BOUND_SECONDS} s of its login; alerts: {watched.alerts}"
    )
    arrived, _ = watched.detected
    record_property("alert_delay_seconds", round(arrived - watched.login["time"], 3))
    # The alert came while the miner's connection was still open.
    assert arrived < watched.miner_closed["time"]


def test_alert_names_miner(watched) -> None:
    assert watched.detected is not None
    _, alert = watched.detected
    assert alert["source"]["ip"] == watched.miner.address
    assert alert["destination"]["ip"] == watched.pool.address
    assert alert["destination"]["port"] == POOL_PORT
    assert alert["mining"]["dialect"] == "monero"
    assert alert["mining"]["confidence"] == "high"
    assert interface_of(alert) == watched.bridge
    assert alert["container"]["name"] == "miner-lab"
    assert alert["container"]["id"] == watched.container_ids["miner-lab"]


def test_alert_names_ipv6_miner(watched) -> None:
    assert watched.detected6 is not None, "no alert from the IPv6 miner"
    _, alert = watched.detected6
    assert alert["source"]["ip"] == watched.miner6.address6
    assert alert["destination"]["ip"] == watched.pool.address6
    assert alert["network"]["type"] == "ipv6"
    assert alert["container"]["name"] == "miner6-lab"


def test_benign_traffic_not_alerted(watched) -> None:
    for _, alert in watched.alerts:
        assert not names_node(alert, watched.client), alert
        assert not names_node(alert, watched.server), alert
    sources = {alert["source"]["ip"] for _, alert in watched.alerts}
    assert sources == {watched.miner.address, watched.miner6.address6}


def test_watching_log_names_bridge(watched) -> None:
    assert any(f"watching {watched.bridge}" in line for line in watched.logs), (
        "no 'watching <interface>' line:\n" + "\n".join(watched.logs)
    )


def test_sigterm_exits_zero(watched) -> None:
    assert watched.exit_status == 0, "\n".join(watched.logs[-20:])


def test_sigterm_flushes_pending_update(watched) -> None:
    def miner_update(alert: dict[str, Any]) -> bool:
        return action(alert) == "mining-updated" and alert_from(alert, watched.miner)

    # The default update interval is minutes, so the update of the ended
    # flow was pending when SIGTERM came.
    assert not any(miner_update(alert) for alert in watched.alerts_before_stop)
    updates = [
        (arrived, alert) for arrived, alert in watched.alerts if miner_update(alert)
    ]
    assert len(updates) == 1, watched.alerts
    arrived, update = updates[0]
    assert arrived >= watched.stop_sent
    # The update carries the final counters of the ended flow.
    assert update["mining"]["shares"]["submitted"] == 3
    assert update["mining"]["shares"]["accepted"] == 3
    assert update["container"]["name"] == "miner-lab"


def metric(watched: Watched, name: str, **labels: str) -> float | None:
    return watched.metrics.get((name, tuple(sorted(labels.items()))))


def test_metrics_count_bridge_traffic(watched) -> None:
    packets = metric(watched, "detector_packets_total", interface=watched.bridge)
    assert packets is not None and packets > 0
    assert metric(watched, "detector_bytes_total", interface=watched.bridge)
    assert metric(watched, "detector_interfaces") == 1
    assert metric(watched, "detector_flows_tracked") is not None
    assert metric(watched, "detector_detections_total", confidence="high") == 2
    detected = metric(watched, "detector_alerts_total", action="mining-detected")
    assert detected == 2
    assert metric(watched, "detector_flows_inspected_total")
    assert metric(watched, "detector_kernel_drops_total", interface=watched.bridge) == 0


def test_healthz_ok(watched) -> None:
    status, body = watched.healthz
    assert status == 200
    assert body.strip() == "ok"


def test_evidence_rescans_to_same_detection(watched) -> None:
    assert watched.detected is not None
    _, alert = watched.detected
    files = sorted(watched.evidence_dir.glob("*.pcap"))
    session = alert["mining"]["session"]["id"]
    matching = [path for path in files if path.name.startswith(f"{session}-")]
    assert len(matching) == 1, files
    completed = subprocess.run(
        [sys.executable, "-m", "detector", "scan", "--format", "jsonl"]
        + [str(matching[0])],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=EVENT_TIMEOUT * 4,
    )
    # Exit status 1 means mining was found.
    assert completed.returncode == 1, completed.stderr
    [scanned] = [json.loads(line) for line in completed.stdout.splitlines()]
    for key in ("ip", "port"):
        assert scanned["source"][key] == alert["source"][key]
        assert scanned["destination"][key] == alert["destination"][key]
    assert scanned["network"]["community_id"] == alert["network"]["community_id"]
    for key in ("dialect", "confidence", "agent", "wallet"):
        assert scanned["mining"][key] == alert["mining"][key]


# -- default discovery ------------------------------------------------------------


def test_default_discovery_finds_bridge(lab: Lab, record_property) -> None:
    bridge = lab.add_bridge()
    pool = lab.add_node("pool", bridge, 2)
    miner = lab.add_node("miner", bridge, 10)
    start_pool(lab, pool)
    watch = lab.watch()
    watch.wait_until_capturing(bridge.name)

    miner_peer = mine(lab, miner, pool, seed=3)
    login = miner_peer.wait_for("logged-in")
    detected = wait_after_login(watch, login["time"], miner)
    assert detected is not None, f"no alert within {ALERT_BOUND_SECONDS} s of login"
    arrived, alert = detected
    record_property("alert_delay_seconds", round(arrived - login["time"], 3))
    assert interface_of(alert) == bridge.name
    assert watch.terminate() == 0
    # Only container bridges are captured by default, never the veths or lo.
    opened = [
        line for line in watch.log_lines() if "watching " in line or " added" in line
    ]
    assert opened
    assert all(bridge.name in line for line in opened), opened


# -- bridges that come and go -----------------------------------------------------


def test_bridges_come_and_go(lab: Lab) -> None:
    first = lab.add_bridge()
    lab.add_node("pool1", first, 2)
    watch = lab.watch(
        "--rescan-interval", str(RESCAN_SECONDS), metrics_port=METRICS_PORT
    )
    watch.wait_until_capturing(first.name)

    second = lab.add_bridge()
    pool = lab.add_node("pool2", second, 2)
    miner = lab.add_node("miner2", second, 10)
    later_miner = lab.add_node("miner3", second, 11)
    watch.wait_for_log(f"interface {second.name} added")
    start_pool(lab, pool)
    miner_peer = mine(lab, miner, pool, seed=4)
    miner_peer.wait_for("logged-in")
    _, alert = watch.wait_for_alert(
        detected_from(miner), EVENT_TIMEOUT, "an alert on the new bridge"
    )
    assert interface_of(alert) == second.name

    lab.delete_bridge(first)
    watch.wait_for_log(f"interface {first.name} removed")
    assert watch.process.poll() is None
    later_peer = mine(lab, later_miner, pool, seed=5)
    later_peer.wait_for("logged-in")
    _, later = watch.wait_for_alert(
        detected_from(later_miner), EVENT_TIMEOUT, "an alert after the removal"
    )
    assert interface_of(later) == second.name
    status, body = watch.http_get("/healthz")
    assert status == 200
    assert body.strip() == "ok"
    # The gauge follows the interfaces at each rescan.
    deadline = time.monotonic() + EVENT_TIMEOUT
    while watch.metrics()[("detector_interfaces", ())] != 1:
        assert time.monotonic() < deadline, "detector_interfaces stayed above 1"
        time.sleep(RESCAN_SECONDS)
    assert watch.terminate() == 0


# -- SIGHUP -----------------------------------------------------------------------


def add_lab_pool_domain(signatures: Path) -> None:
    path = signatures / "pools.yaml"
    document = yaml.safe_load(path.read_text())
    document["pools"].append(
        {
            "domain": LAB_POOL_DOMAIN,
            "kind": "pool",
            "coin": "monero",
            "source": "live lab test",
        }
    )
    path.write_text(yaml.safe_dump(document, sort_keys=False))


@pytest.fixture
def reload_lab(lab: Lab, tmp_path) -> tuple[Lab, Path, dict[str, Node]]:
    """A bridge with a pool, a miner, a web server and two clients, and a
    copy of the bundled signatures that watch will load."""
    signatures = tmp_path / "signatures"
    shutil.copytree(REPOSITORY / "signatures", signatures)
    bridge = lab.add_bridge()
    nodes = {
        "pool": lab.add_node("pool", bridge, 2),
        "miner": lab.add_node("miner", bridge, 10),
        "web": lab.add_node("web", bridge, 20),
        "client": lab.add_node("client", bridge, 21),
        "client2": lab.add_node("client2", bridge, 22),
    }
    start_pool(lab, nodes["pool"])
    web = lab.peer(nodes["web"], "serve-benign", "--listen", f"0.0.0.0:{BENIGN_PORT}")
    web.wait_for("listening")
    return lab, signatures, nodes


def start_reload_watch(lab: Lab, signatures: Path) -> Watch:
    [bridge] = lab.bridges
    watch = lab.watch(
        "--interface",
        bridge.name,
        "--signatures",
        str(signatures),
        metrics_port=METRICS_PORT,
    )
    watch.wait_until_capturing(bridge.name)
    return watch


def host_alert_from(node: Node) -> Any:
    def matches(alert: dict[str, Any]) -> bool:
        evidence = alert.get("mining", {}).get("evidence", [])
        return alert_from(alert, node) and any(
            item.get("kind") == "http.host" for item in evidence
        )

    return matches


def test_sighup_reload_changes_verdict(reload_lab) -> None:
    lab, signatures, nodes = reload_lab
    watch = start_reload_watch(lab, signatures)

    browse(lab, nodes["client"], nodes["web"], "--host", LAB_POOL_HOST)
    # Watch reads one interface in order, so once the miner's later alert is
    # out, the earlier requests were inspected too.
    mine(lab, nodes["miner"], nodes["pool"], seed=6).wait_for("logged-in")
    watch.wait_for_alert(detected_from(nodes["miner"]), EVENT_TIMEOUT, "the miner")
    assert not any(
        alert_from(alert, nodes["client"]) for alert in watch.alert_records()
    )

    add_lab_pool_domain(signatures)
    watch.send_signal(signal.SIGHUP)
    watch.wait_for_log("signatures reloaded")
    browse(lab, nodes["client"], nodes["web"], "--host", LAB_POOL_HOST)
    _, alert = watch.wait_for_alert(
        host_alert_from(nodes["client"]), EVENT_TIMEOUT, "an alert on the Host"
    )
    assert alert["mining"]["confidence"] == "medium"
    assert watch.metrics()[("detector_reloads_total", (("result", "ok"),))] == 1
    assert watch.terminate() == 0


def test_sighup_broken_file_keeps_signatures(reload_lab) -> None:
    lab, signatures, nodes = reload_lab
    add_lab_pool_domain(signatures)
    watch = start_reload_watch(lab, signatures)

    (signatures / "pools.yaml").write_text("pools: [unclosed\n")
    watch.send_signal(signal.SIGHUP)
    _, line = watch.wait_for_log("reload failed")
    assert "pools.yaml" in line
    assert watch.process.poll() is None

    # The signatures loaded at start still name the lab's pool domain.
    browse(lab, nodes["client2"], nodes["web"], "--host", LAB_POOL_HOST)
    _, alert = watch.wait_for_alert(
        host_alert_from(nodes["client2"]), EVENT_TIMEOUT, "an alert on the Host"
    )
    assert alert["mining"]["confidence"] == "medium"
    metrics = watch.metrics()
    assert metrics[("detector_reloads_total", (("result", "failed"),))] == 1
    assert metrics[("detector_reloads_total", (("result", "ok"),))] == 0
    assert watch.terminate() == 0
