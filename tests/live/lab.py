"""A namespace lab for live-capture tests: containers on Linux bridges.

The lab builds, with names unique to one run:

- a "host" namespace, where ``detector watch`` runs. It contains Linux
  bridges named as Docker names a network's bridge (``br-`` and 12 hex
  digits), in promiscuous mode, with the first address of their subnet;
- one namespace per container (pool, miner, benign server or client), joined
  to a bridge by a veth pair whose host end (``veth...``) is in the host
  namespace and whose container end is ``eth0``.

Watch runs in the host namespace, so it captures neither on the machine's own
interfaces nor on a docker0 outside. Addresses come from the benchmarking range
198.18.0.0/15 and the documentation prefix 2001:db8::/32, and nothing routes
out of the lab. Every process starts through the lab and is stopped by its
PID. Deleting the namespaces removes every veth and bridge made here.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.attribution.netns import netns_exec, run, stop_process, unique_tag
from tests.conftest import REPOSITORY

PYTHON = sys.executable
# Bridge n of a lab gets 198.18.(FIRST_SUBNET + n).0/24 and
# 2001:db8:(FIRST_SUBNET + n)::/64; the bridge itself has host number 1.
FIRST_SUBNET = 20
GATEWAY_HOST = 1
PREFIX_LENGTH = 24
PREFIX_LENGTH_IPV6 = 64
# Seconds a test waits for a peer or watch to log an event. Peers on veth
# pairs take milliseconds; the rest is margin for a loaded host.
EVENT_TIMEOUT = 15.0
# Seconds watch gets to flush and exit after SIGTERM.
WATCH_STOP_TIMEOUT = 20.0
# Seconds a metrics request may take.
HTTP_TIMEOUT = 5.0

# Runs in the host namespace: prints the HTTP status, a newline, the body.
HTTP_GET_SCRIPT = """
import sys, urllib.error, urllib.request
try:
    response = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))
except urllib.error.HTTPError as error:
    response = error
sys.stdout.write(f"{response.status}\\n{response.read().decode()}")
"""


@dataclass(frozen=True)
class Bridge:
    """A Linux bridge in the host namespace and its subnet."""

    name: str
    subnet: int

    def address(self, host: int) -> str:
        return f"198.18.{self.subnet}.{host}"

    def address6(self, host: int) -> str:
        return f"2001:db8:{self.subnet}::{host:x}"

    @property
    def gateway(self) -> str:
        return self.address(GATEWAY_HOST)


@dataclass(frozen=True)
class Node:
    """A container namespace on a bridge: its addresses and host-side veth."""

    role: str
    namespace: str
    bridge: Bridge
    address: str
    address6: str
    veth: str
    mac: str


class EventReader:
    """Collects the lines a process writes to one pipe, each with the time
    it arrived, on a thread, so a test can wait for a line."""

    def __init__(self, stream: TextIO, parse: Callable[[str], Any]) -> None:
        self.lines: list[tuple[float, Any]] = []
        self._parse = parse
        self._condition = threading.Condition()
        self._stream = stream
        self.finished = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._stream:
                record = self._parse(line.rstrip("\n"))
                with self._condition:
                    self.lines.append((time.time(), record))
                    self._condition.notify_all()
        except (OSError, ValueError):
            # Teardown closed the pipe under this thread; nothing more comes.
            pass
        with self._condition:
            self.finished = True
            self._condition.notify_all()

    def wait_for(
        self, predicate: Callable[[Any], bool], timeout: float, description: str
    ) -> tuple[float, Any]:
        """Return the first line matching ``predicate`` and its arrival time.

        Raises AssertionError, listing what arrived, when none matches
        within ``timeout`` seconds or the pipe closes first.
        """
        deadline = time.monotonic() + timeout
        checked = 0
        with self._condition:
            while True:
                for arrived, record in self.lines[checked:]:
                    if predicate(record):
                        return arrived, record
                checked = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.finished:
                    break
                self._condition.wait(remaining)
        seen = "\n".join(str(record) for _, record in self.lines[-20:])
        raise AssertionError(
            f"timed out waiting for {description}; last lines:\n{seen}"
        )

    def records(self) -> list[Any]:
        with self._condition:
            return [record for _, record in self.lines]

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


def parse_json(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return {"unparsed": line}


class Peer:
    """A ``python -m detector.trafficgen live`` process in a namespace."""

    def __init__(self, process: subprocess.Popen[str], name: str) -> None:
        self.process = process
        self.name = name
        assert process.stdout is not None
        self.events = EventReader(process.stdout, parse_json)

    def wait_for(self, event: str, timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
        _, record = self.events.wait_for(
            lambda record: record.get("event") == event,
            timeout,
            f"{self.name} to log {event!r}",
        )
        return dict(record)

    def wait(self, timeout: float = EVENT_TIMEOUT) -> int:
        """Wait for the peer to exit and return its status."""
        status = self.process.wait(timeout)
        self.events.join(timeout)
        return status

    def stderr(self) -> str:
        if self.process.stderr is None or self.process.poll() is None:
            return ""
        return self.process.stderr.read()


def watch_command(arguments: Iterable[str], metrics_port: int | None) -> list[str]:
    """Return the ``python -m detector watch`` command line.

    ``metrics_port`` adds ``--metrics-port`` so that :meth:`Watch.metrics`
    can read it.
    """
    command = [PYTHON, "-m", "detector", "watch", *arguments]
    if metrics_port is not None:
        command += ["--metrics-port", str(metrics_port)]
    return command


def start_watch_process(
    namespace: str, command: list[str], **popen: Any
) -> subprocess.Popen[str]:
    """Start watch in a namespace with its pipes open and its output
    unbuffered, so each line arrives as it is written."""
    return subprocess.Popen(
        netns_exec(namespace, *command),
        cwd=REPOSITORY,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        **popen,
    )


class Watch:
    """A ``detector watch`` process in a namespace: its alerts (JSON lines on
    standard output) and logs (standard error), each line with its arrival
    time."""

    def __init__(
        self,
        namespace: str,
        process: subprocess.Popen[str],
        metrics_port: int | None,
    ) -> None:
        self.namespace = namespace
        self.process = process
        self.metrics_port = metrics_port
        assert process.stdout is not None
        assert process.stderr is not None
        self.alerts = EventReader(process.stdout, parse_json)
        self.logs = EventReader(process.stderr, str)

    def wait_for_log(
        self, text: str, timeout: float = EVENT_TIMEOUT
    ) -> tuple[float, str]:
        return self.logs.wait_for(
            lambda line: text in line, timeout, f"watch to log {text!r}"
        )

    def wait_until_capturing(
        self, interface: str, timeout: float = EVENT_TIMEOUT
    ) -> tuple[float, str]:
        """Wait until watch logs that it captures on ``interface``.

        Watch logs "watching IFACE" for an interface found at start and
        "interface IFACE added" for one that appears later. Either line means
        the capture is open; a separate test checks the wording.
        """
        return self.logs.wait_for(
            lambda line: (
                f"watching {interface}" in line
                or f"interface {interface} added" in line
            ),
            timeout,
            f"watch to capture on {interface}",
        )

    def wait_for_alert(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float,
        description: str,
    ) -> tuple[float, dict[str, Any]]:
        return self.alerts.wait_for(predicate, timeout, description)

    def alert_records(self) -> list[dict[str, Any]]:
        return list(self.alerts.records())

    def log_lines(self) -> list[str]:
        return list(self.logs.records())

    def send_signal(self, signum: int) -> float:
        """Send a signal to watch and return the time it was sent."""
        sent = time.time()
        self.process.send_signal(signum)
        return sent

    def terminate(self, timeout: float = WATCH_STOP_TIMEOUT) -> int:
        """Send SIGTERM, wait for watch to exit and its pipes to close, and
        return its exit status."""
        self.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout)
        self.alerts.join(timeout)
        self.logs.join(timeout)
        return status

    def http_get(self, path: str) -> tuple[int, str]:
        """GET a path of the metrics server from inside watch's namespace."""
        assert self.metrics_port is not None, "watch runs without --metrics-port"
        output = run(
            *netns_exec(
                self.namespace,
                PYTHON,
                "-c",
                HTTP_GET_SCRIPT,
                f"http://127.0.0.1:{self.metrics_port}{path}",
                str(HTTP_TIMEOUT),
            )
        )
        status, _, body = output.partition("\n")
        return int(status), body

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Return every sample of /metrics, keyed by name and sorted labels."""
        status, body = self.http_get("/metrics")
        assert status == 200, f"/metrics returned {status}: {body[:200]}"
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = sample.value
        return samples


class Lab:
    """The host namespace, its bridges, the container namespaces and the
    processes started in them; :meth:`close` removes all of them."""

    def __init__(self) -> None:
        self.tag = unique_tag()
        self.host = f"dlive{self.tag}-host"
        self.bridges: list[Bridge] = []
        self.nodes: list[Node] = []
        self._namespaces: list[str] = []
        self._processes: list[subprocess.Popen[str]] = []
        self._veths = 0
        self._add_namespace(self.host)

    def _add_namespace(self, name: str) -> None:
        run("ip", "netns", "add", name)
        self._namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def add_bridge(self) -> Bridge:
        """Create a bridge named like a Docker network's, up and promiscuous."""
        # br- and 12 hex digits is 15 bytes, the longest interface name Linux
        # allows.
        bridge = Bridge(
            name=f"br-{self.tag}{secrets.token_hex(3)}",
            subnet=FIRST_SUBNET + len(self.bridges),
        )
        host = ["ip", "-n", self.host]
        run(*host, "link", "add", bridge.name, "type", "bridge")
        gateway = f"{bridge.gateway}/{PREFIX_LENGTH}"
        run(*host, "addr", "add", gateway, "dev", bridge.name)
        gateway6 = f"{bridge.address6(GATEWAY_HOST)}/{PREFIX_LENGTH_IPV6}"
        run(*host, "-6", "addr", "add", gateway6, "dev", bridge.name, "nodad")
        run(*host, "link", "set", bridge.name, "promisc", "on", "up")
        self.bridges.append(bridge)
        return bridge

    def delete_bridge(self, bridge: Bridge) -> None:
        """Delete a bridge; the veths of its containers stay, unattached."""
        run("ip", "-n", self.host, "link", "delete", bridge.name)

    def add_node(self, role: str, bridge: Bridge, host_number: int) -> Node:
        """Create a container namespace with ``eth0`` on ``bridge``."""
        namespace = f"dlive{self.tag}-{role}"
        self._add_namespace(namespace)
        self._veths += 1
        veth = f"veth{self.tag}{self._veths:x}"

        host = ["ip", "-n", self.host]
        inside = ["ip", "-n", namespace]
        # The pair is made in the host namespace with its peer created
        # directly in the container's, so no end passes through the machine's
        # own namespace.
        run(
            *host,
            "link",
            "add",
            veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            namespace,
        )
        run(*host, "link", "set", veth, "master", bridge.name, "up")

        address = bridge.address(host_number)
        address6 = bridge.address6(host_number)
        run(*inside, "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", "eth0")
        run(
            *inside,
            "-6",
            "addr",
            "add",
            f"{address6}/{PREFIX_LENGTH_IPV6}",
            "dev",
            "eth0",
            "nodad",
        )
        run(*inside, "link", "set", "eth0", "up")

        link = json.loads(run(*inside, "-j", "link", "show", "eth0"))[0]
        node = Node(
            role=role,
            namespace=namespace,
            bridge=bridge,
            address=address,
            address6=address6,
            veth=veth,
            mac=link["address"],
        )
        self.nodes.append(node)
        return node

    def add_veth_pair(self) -> tuple[str, str]:
        """Create a veth pair in the host namespace, both ends up, IPv6 off.

        Frames sent into the first end arrive on the second. Without IPv6
        the kernel sends no router or neighbour solicitations of its own, so
        the second end receives only what a test sends.
        """
        self._veths += 1
        sender = f"veth{self.tag}{self._veths:x}"
        self._veths += 1
        receiver = f"veth{self.tag}{self._veths:x}"
        host = ["ip", "-n", self.host]
        run(*host, "link", "add", sender, "type", "veth", "peer", "name", receiver)
        for name in (sender, receiver):
            self.host_run("sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1")
            run(*host, "link", "set", name, "up")
        return sender, receiver

    def start(
        self, namespace: str, command: Iterable[str], **popen: Any
    ) -> subprocess.Popen[str]:
        """Start a command in a namespace; :meth:`close` stops it by PID."""
        process: subprocess.Popen[str] = subprocess.Popen(
            netns_exec(namespace, *command),
            cwd=REPOSITORY,
            text=True,
            **popen,
        )
        self._processes.append(process)
        return process

    def peer(self, node: Node, *arguments: str) -> Peer:
        """Start ``python -m detector.trafficgen live ARGUMENTS`` in a node."""
        process = self.start(
            node.namespace,
            [PYTHON, "-m", "detector.trafficgen", "live", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        return Peer(process, f"{node.role} ({' '.join(arguments[:1])})")

    def watch(self, *arguments: str, metrics_port: int | None = None) -> Watch:
        """Start ``python -m detector watch ARGUMENTS`` in the host namespace;
        :meth:`close` stops it by PID."""
        process = start_watch_process(self.host, watch_command(arguments, metrics_port))
        self._processes.append(process)
        return Watch(self.host, process, metrics_port)

    def host_run(self, *command: str) -> str:
        """Run a command in the host namespace and return its output."""
        return run(*netns_exec(self.host, *command))

    def close(self) -> None:
        """Stop every process by PID, then delete every namespace.

        Raises AssertionError when a namespace of this lab is still listed
        afterwards.
        """
        for process in reversed(self._processes):
            stop_process(process)
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
        for namespace in reversed(self._namespaces):
            run("ip", "netns", "delete", namespace, check=False)
        left = [
            name
            for name in run("ip", "netns", "list").split()
            if name.startswith(f"dlive{self.tag}")
        ]
        assert left == [], f"namespaces left behind: {left}"


def write_static_inventory(
    path: Path, containers: Iterable[tuple[str, Node]]
) -> dict[str, str]:
    """Write a static inventory YAML file naming each node as a container.

    Returns the container id given to each name.
    """
    records = []
    ids: dict[str, str] = {}
    for name, node in containers:
        ids[name] = secrets.token_hex(32)
        records.append(
            {
                "id": ids[name],
                "name": name,
                "image": "detector-lab:test",
                "addresses": [node.address, node.address6, node.mac],
                "interfaces": [node.veth],
            }
        )
    path.write_text(yaml.safe_dump({"containers": records}, sort_keys=False))
    return ids
