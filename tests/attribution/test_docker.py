"""Attribution against a real Docker engine on an internal network.

A "pool" container listens with busybox nc. A "miner" container sends a
Monero login and a share to it and is then killed. A second miner takes the
same address and does the same. The traffic is captured on the network's
bridge, scanned, and each detection must name the miner that held the
address at the time, from a snapshot plus the events stream.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from detector.attribution import (
    REASON_STARTS_AFTER,
    Inventory,
    InventoryError,
    attribute,
    build_docker_inventory,
)
from detector.attribution.docker_engine import DockerProvider, connect
from detector.model import Detection
from detector.scan import scan_file
from detector.trafficgen.messages import monero
from detector.trafficgen.wallets import monero as monero_wallet
from tests.attribution.netns import Capture, run
from tests.docker_lab import busybox_pool_command, wait_for

SUBNET = "198.18.10.0/24"
POOL_IP = "198.18.10.2"
MINER_IP = "198.18.10.10"
POOL_PORT = 3333
AGENT = "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0"

# Seconds to wait for the pool to log a miner's lines, and for a container
# to reach a state. busybox responds in milliseconds, so this is margin for
# a loaded host.
TRAFFIC_TIMEOUT = 30.0
# Seconds of quiet after the last packet before the capture stops.
CAPTURE_SETTLE = 0.5

POOL_COMMAND = busybox_pool_command(POOL_PORT)
# nc exits non-zero when the connection is refused, so the miner retries
# until the pool listens. Once nc has closed the connection the miner logs
# "sent" and idles until the test stops it, so that killing it cannot cut
# the connection short and leave the pool's nc waiting on it.
MINER_COMMAND = [
    "sh",
    "-c",
    f'until printf "%s\\n%s\\n" "$LOGIN" "$SUBMIT" | nc {POOL_IP} {POOL_PORT}; '
    "do sleep 0.2; done; echo sent; sleep 3600",
]
# /proc/net/tcp writes a listening socket's state as 0A and its port in hex.
TCP_LISTEN_STATE = "0A"


@dataclass
class Scenario:
    pcap: Path
    inventory: Inventory
    snapshot_only: Inventory
    pool_id: str
    miner_ids: tuple[str, str]
    sidecar_id: str
    miner_two_mac: str
    miner_two_veth: str
    killed_at: float


def stratum_lines(seed: int) -> dict[str, str]:
    wallet = monero_wallet(random.Random(seed))
    login = monero.xmrig_login(wallet, AGENT)
    share = monero.submit(f"session-{seed}", "1", "0a1b2c3d", "ab" * 32, request_id=2)
    return {"LOGIN": login.decode().rstrip("\n"), "SUBMIT": share.decode().rstrip("\n")}


def create_container(
    client,
    name: str,
    command: list[str],
    network: str,
    *,
    ip: str | None = None,
    environment: dict[str, str] | None = None,
    network_mode: str | None = None,
) -> str:
    api = client.api
    networking = None
    if network_mode is None:
        networking = api.create_networking_config(
            {network: api.create_endpoint_config(ipv4_address=ip)}
        )
    created = api.create_container(
        "detector-busybox:test",
        command,
        name=name,
        environment=environment,
        host_config=api.create_host_config(network_mode=network_mode or network),
        networking_config=networking,
    )
    api.start(created["Id"])
    return str(created["Id"])


def listening(pid: int, port: int) -> bool:
    """Tell whether a process's network namespace has a TCP socket listening
    on ``port``; /proc/PID/net/tcp and tcp6 show that process's namespace.
    busybox nc listens on the IPv6 wildcard when the kernel has IPv6."""
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == TCP_LISTEN_STATE:
                return True
    return False


def container_log(client, container_id: str) -> str:
    return client.api.logs(container_id).decode(errors="replace")


def bridge_port_of(engine, bridge: str, mac: str) -> str:
    """Find the bridge port a MAC was learned on, from the bridge's own FDB."""
    entries = json.loads(
        run(*engine.prefix(), "bridge", "-j", "fdb", "show", "br", bridge)
    )
    ports = {entry["ifname"] for entry in entries if entry.get("mac") == mac}
    assert len(ports) == 1, f"{mac} learned on {ports}"
    return ports.pop()


@pytest.fixture(scope="module")
def scenario(docker_engine, tmp_path_factory) -> Scenario:
    client = docker_engine.client
    import docker.types

    network = client.networks.create(
        "detector-test",
        driver="bridge",
        internal=True,
        ipam=docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=SUBNET)]
        ),
    )
    bridge = f"br-{network.id[:12]}"
    links = json.loads(run(*docker_engine.prefix(), "ip", "-j", "link", "show", bridge))
    assert links[0]["ifname"] == bridge

    pool_id = create_container(client, "pool", POOL_COMMAND, network.name, ip=POOL_IP)
    pool_pid = client.api.inspect_container(pool_id)["State"]["Pid"]
    wait_for(lambda: listening(pool_pid, POOL_PORT), "the pool to listen")
    provider = DockerProvider(client, host_netns=docker_engine.netns_path)
    since = provider.snapshot()
    stop = threading.Event()
    follower = threading.Thread(
        target=provider.follow, kwargs={"since": since, "stop": stop}, daemon=True
    )
    follower.start()
    capture = Capture(
        docker_engine.prefix(),
        bridge,
        tmp_path_factory.mktemp("docker") / "bridge.pcap",
    )
    try:
        first = create_container(
            client,
            "miner-1",
            MINER_COMMAND,
            network.name,
            ip=MINER_IP,
            environment=stratum_lines(1),
        )
        wait_for(
            lambda: container_log(client, pool_id).count('"submit"') == 1, "share 1"
        )
        wait_for(lambda: "sent" in container_log(client, first), "miner-1 to close")
        killed_at = time.time()
        client.api.kill(first)
        wait_for(
            lambda: not client.api.inspect_container(first)["State"]["Running"],
            "miner-1 to stop",
        )
        second = create_container(
            client,
            "miner-2",
            MINER_COMMAND,
            network.name,
            ip=MINER_IP,
            environment=stratum_lines(2),
        )
        wait_for(
            lambda: container_log(client, pool_id).count('"submit"') == 2, "share 2"
        )
        wait_for(lambda: "sent" in container_log(client, second), "miner-2 to close")
        sidecar = create_container(
            client,
            "sidecar",
            ["sleep", "3600"],
            network.name,
            network_mode=f"container:{second}",
        )
        time.sleep(CAPTURE_SETTLE)
    finally:
        pcap = capture.stop()
        stop.set()
        follower.join(timeout=TRAFFIC_TIMEOUT)
    assert not follower.is_alive()

    mac = client.api.inspect_container(second)["NetworkSettings"]["Networks"][
        network.name
    ]["MacAddress"]
    veth = bridge_port_of(docker_engine, bridge, mac)
    alone = DockerProvider(client, host_netns=docker_engine.netns_path)
    alone.snapshot()
    return Scenario(
        pcap=pcap,
        inventory=provider.inventory,
        snapshot_only=alone.inventory,
        pool_id=pool_id,
        miner_ids=(first, second),
        sidecar_id=sidecar,
        miner_two_mac=mac,
        miner_two_veth=veth,
        killed_at=killed_at,
    )


@pytest.fixture(scope="module")
def detections(scenario, signatures) -> list[Detection]:
    result = scan_file(str(scenario.pcap), signatures)
    assert result.error is None
    found = sorted(result.detections, key=lambda detection: detection.first_seen)
    assert [d.flow.client_ip for d in found] == [MINER_IP, MINER_IP]
    assert {d.flow.server_ip for d in found} == {POOL_IP}
    return found


def test_detections_name_each_miner(scenario, detections) -> None:
    first, second = (
        attribute(detection, scenario.inventory, None).attribution
        for detection in detections
    )
    assert first is not None
    assert second is not None
    assert first.container is not None
    assert second.container is not None
    assert first.container.id == scenario.miner_ids[0]
    assert first.container.name == "miner-1"
    assert first.container.image == "detector-busybox:test"
    assert second.container.id == scenario.miner_ids[1]
    assert second.container.name == "miner-2"
    assert scenario.pool_id not in (first.container.id, second.container.id)
    assert first.nat is False


def test_first_range_closed_at_kill(scenario) -> None:
    ranges = [
        binding
        for binding in scenario.inventory.bindings(scenario.miner_ids[0])
        if binding.address == MINER_IP
    ]
    assert len(ranges) == 1
    assert ranges[0].end is not None
    assert ranges[0].end >= scenario.killed_at
    [later] = [
        binding
        for binding in scenario.inventory.bindings(scenario.miner_ids[1])
        if binding.address == MINER_IP
    ]
    assert later.start is not None
    assert later.start >= ranges[0].end


def test_snapshot_alone_misses_earlier_flow(scenario, detections) -> None:
    first, second = (
        attribute(detection, scenario.snapshot_only, None).attribution
        for detection in detections
    )
    assert first is not None
    assert first.container is None
    assert first.reason == REASON_STARTS_AFTER
    assert second is not None
    assert second.container is not None
    assert second.container.id == scenario.miner_ids[1]


def test_saved_inventory_attributes_alike(scenario, detections, tmp_path) -> None:
    path = tmp_path / "inventory.json"
    scenario.inventory.save(path)
    loaded = Inventory.load(path)
    for detection in detections:
        assert attribute(detection, loaded, None) == attribute(
            detection, scenario.inventory, None
        )


def test_mac_and_veth_name_running_miner(scenario) -> None:
    now = time.time()
    by_mac = scenario.inventory.lookup(scenario.miner_two_mac, now).container
    assert by_mac is not None
    assert by_mac.id == scenario.miner_ids[1]
    by_veth = scenario.inventory.lookup_interface(scenario.miner_two_veth, now)
    assert by_veth.container is not None
    assert by_veth.container.id == scenario.miner_ids[1]
    snapshot_veth = scenario.snapshot_only.lookup_interface(
        scenario.miner_two_veth, now
    )
    assert snapshot_veth.container == by_veth.container


def test_shared_namespace_lists_members(scenario) -> None:
    for inventory in (scenario.inventory, scenario.snapshot_only):
        record = inventory.containers[scenario.miner_ids[1]]
        assert record.members == ("miner-2", "sidecar")
        assert inventory.bindings(scenario.sidecar_id) == []


def test_build_docker_inventory(docker_engine, scenario) -> None:
    inventory = build_docker_inventory(
        docker_engine.socket, follow_seconds=0.2, host_netns=docker_engine.netns_path
    )
    pool = inventory.lookup(POOL_IP, time.time()).container
    assert pool is not None
    assert pool.id == scenario.pool_id
    assert pool.name == "pool"
    assert pool.runtime == "docker"
    assert inventory.covered_until is not None
    assert inventory.warnings == []


def test_connect_to_missing_socket(tmp_path) -> None:
    with pytest.raises(InventoryError, match="cannot reach the Docker daemon"):
        connect(str(tmp_path / "absent.sock"))
