"""detector watch on the bridge of a real Docker network, naming containers.

The same set-up as ``tests/attribution/test_docker.py``, but live: dockerd
runs in its own namespace (the ``docker_engine`` fixture), a busybox "pool"
listens on an ``--internal`` network, and watch runs in dockerd's namespace
on that network's ``br-*`` bridge, following the daemon with ``--docker``.
A miner container started after watch must be alerted on by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.attribution.netns import run, stop_process
from tests.attribution.test_docker import create_container, listening, stratum_lines
from tests.docker_lab import busybox_pool_command, wait_for
from tests.live.lab import (
    EVENT_TIMEOUT,
    Watch,
    start_watch_process,
    watch_command,
)

SUBNET = "198.18.30.0/24"
POOL_IP = "198.18.30.2"
MINER_IP = "198.18.30.10"
POOL_PORT = 3333
NETWORK = "detector-live"

POOL_COMMAND = busybox_pool_command(POOL_PORT)
# The miner retries until the pool listens, then idles until removed.
MINER_COMMAND = [
    "sh",
    "-c",
    f'until printf "%s\\n%s\\n" "$LOGIN" "$SUBMIT" | nc {POOL_IP} {POOL_PORT}; '
    "do sleep 0.2; done; echo sent; sleep 3600",
]


@dataclass
class DockerWatch:
    """What watch wrote while a miner container ran on a Docker network."""

    bridge: str
    pool_id: str
    miner_id: str
    alert: dict[str, Any] | None
    exit_status: int
    alerts: list[dict[str, Any]]
    logs: list[str]


@pytest.fixture(scope="module")
def docker_watch(docker_engine) -> Iterator[DockerWatch]:
    import docker.types

    client = docker_engine.client
    network = client.networks.create(
        NETWORK,
        driver="bridge",
        internal=True,
        ipam=docker.types.IPAMConfig(
            pool_configs=[docker.types.IPAMPool(subnet=SUBNET)]
        ),
    )
    bridge = f"br-{network.id[:12]}"
    links = json.loads(run(*docker_engine.prefix(), "ip", "-j", "link", "show", bridge))
    assert links[0]["ifname"] == bridge
    containers: list[str] = []
    process = None
    try:
        pool_id = create_container(
            client, "live-pool", POOL_COMMAND, network.name, ip=POOL_IP
        )
        containers.append(pool_id)
        pool_pid = client.api.inspect_container(pool_id)["State"]["Pid"]
        wait_for(lambda: listening(pool_pid, POOL_PORT), "the pool to listen")

        command = watch_command(
            ["--interface", bridge, "--docker", docker_engine.socket], None
        )
        process = start_watch_process(docker_engine.netns, command)
        watch = Watch(docker_engine.netns, process, None)
        watch.wait_until_capturing(bridge)
        watch.wait_for_log("following Docker")

        miner_id = create_container(
            client,
            "live-miner",
            MINER_COMMAND,
            network.name,
            ip=MINER_IP,
            environment=stratum_lines(7),
        )
        containers.append(miner_id)
        try:
            _, alert = watch.wait_for_alert(
                lambda alert: alert.get("source", {}).get("ip") == MINER_IP,
                EVENT_TIMEOUT,
                "an alert from the miner container",
            )
        except AssertionError:
            alert = None
        exit_status = watch.terminate()
        yield DockerWatch(
            bridge=bridge,
            pool_id=pool_id,
            miner_id=miner_id,
            alert=alert,
            exit_status=exit_status,
            alerts=watch.alert_records(),
            logs=watch.log_lines(),
        )
    finally:
        if process is not None:
            stop_process(process)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        for container_id in containers:
            client.api.remove_container(container_id, force=True)
        network.remove()


def test_alert_names_miner_container(docker_watch) -> None:
    alert = docker_watch.alert
    assert alert is not None, "no alert from the miner:\n" + "\n".join(
        docker_watch.logs
    )
    assert alert["event"]["action"] == "mining-detected"
    assert alert["destination"]["ip"] == POOL_IP
    assert alert["mining"]["dialect"] == "monero"
    assert alert["observer"]["ingress"]["interface"]["name"] == docker_watch.bridge
    assert alert.get("container", {}).get("name") == "live-miner", alert.get(
        "mining", {}
    ).get("attribution")
    assert alert["container"]["id"] == docker_watch.miner_id
    assert alert["container"]["image"]["name"] == "detector-busybox:test"


def test_pool_container_not_alerted(docker_watch) -> None:
    for alert in docker_watch.alerts:
        assert alert.get("source", {}).get("ip") != POOL_IP
        assert alert.get("container", {}).get("id") != docker_watch.pool_id


def test_docker_watch_exits_zero(docker_watch) -> None:
    assert docker_watch.exit_status == 0, "\n".join(docker_watch.logs[-20:])
