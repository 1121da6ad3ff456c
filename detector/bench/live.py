"""Live capture loss: ``detector watch`` and tcpdump on a replayed capture.

A network namespace made for the run contains a veth pair. tcpreplay sends the
first packets of the benchmark capture into one end at each rate in turn;
the capturing tool listens on the other end. For each rate and tool the run
records packets sent, packets the tool saw and the drops the kernel counted,
and writes them as a Markdown page. Nothing leaves the namespace, which is
deleted at the end.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from detector.bench.measure import BenchError, describe_machine

# Packets replayed at each rate: enough for a few seconds at the lowest rate.
DEFAULT_PACKETS = 200_000

# Replay rates in packets per second; 0 means as fast as tcpreplay can send.
DEFAULT_RATES = (25_000, 50_000, 100_000, 200_000, 0)

# Seconds a capturing tool gets to open its interface, and the capture gets
# to drain after the replay ends.
START_TIMEOUT = 20.0
DRAIN_SECONDS = 2.0
STOP_TIMEOUT = 30.0

# The watch's metrics port inside the namespace, which has only this process.
METRICS_PORT = 9109

_TCPREPLAY_SENT = re.compile(r"Actual: (\d+) packets .*? in ([\d.]+) seconds")
_TCPDUMP_CAPTURED = re.compile(r"(\d+) packets captured")
_TCPDUMP_DROPPED = re.compile(r"(\d+) packets dropped by kernel")


@dataclass(frozen=True, slots=True)
class LiveRound:
    """One replay at one rate, captured by one tool."""

    tool: str
    requested_pps: int
    sent: int
    replay_seconds: float
    seen: int
    kernel_drops: int

    @property
    def achieved_pps(self) -> float:
        return self.sent / self.replay_seconds if self.replay_seconds else 0.0

    @property
    def seen_share(self) -> float:
        return self.seen / self.sent if self.sent else 0.0


def _run(*command: str, timeout: float = 60.0) -> str:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise BenchError(
            f"{' '.join(command)} failed with status {done.returncode}:"
            f" {done.stderr.strip()}"
        )
    return done.stdout + done.stderr


class Namespace:
    """A network namespace with a veth pair: ``sender`` and ``receiver``."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"detector-bench-{tag}"
        self.sender = f"vsend{tag}"
        self.receiver = f"vrecv{tag}"

    def __enter__(self) -> Namespace:
        _run("ip", "netns", "add", self.name)
        try:
            self.ip("link", "set", "lo", "up")
            self.ip(
                "link",
                "add",
                self.sender,
                "type",
                "veth",
                "peer",
                "name",
                self.receiver,
            )
            self.ip("link", "set", self.sender, "up")
            self.ip("link", "set", self.receiver, "up")
        except BenchError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False, timeout=30)

    def ip(self, *arguments: str) -> str:
        return _run("ip", "-n", self.name, *arguments)

    def command(self, *arguments: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *arguments]


def _replay(
    namespace: Namespace, capture: Path, rate: int, packets: int
) -> tuple[int, float]:
    speed = ["--topspeed"] if rate == 0 else [f"--pps={rate}"]
    output = _run(
        *namespace.command(
            "tcpreplay",
            f"--intf1={namespace.sender}",
            f"--limit={packets}",
            *speed,
            str(capture),
        ),
        timeout=600.0,
    )
    found = _TCPREPLAY_SENT.search(output)
    if found is None:
        raise BenchError(f"cannot read tcpreplay's summary: {output[-300:]}")
    return int(found.group(1)), float(found.group(2))


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        _, errors = process.communicate(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        _, errors = process.communicate(timeout=STOP_TIMEOUT)
    return errors or ""


def _metric(text: str, name: str) -> int:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _watch_round(
    namespace: Namespace, capture: Path, rate: int, packets: int
) -> LiveRound:
    process = subprocess.Popen(
        namespace.command(
            sys.executable,
            "-m",
            "detector",
            "watch",
            "--interface",
            namespace.receiver,
            "--filter",
            "",
            "--metrics-port",
            str(METRICS_PORT),
            "--quiet",
            "--output",
            os.devnull,
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        metrics = _wait_for_watch(namespace, process)
        sent, seconds = _replay(namespace, capture, rate, packets)
        time.sleep(DRAIN_SECONDS)
        metrics = _scrape(namespace)
    finally:
        errors = _stop(process)
    if process.returncode != 0:
        raise BenchError(f"detector watch exited with {process.returncode}: {errors}")
    return LiveRound(
        "detector watch",
        rate,
        sent,
        seconds,
        _metric(metrics, "detector_packets_total"),
        _metric(metrics, "detector_kernel_drops_total"),
    )


def _scrape(namespace: Namespace) -> str:
    return _run(
        *namespace.command(
            sys.executable,
            "-c",
            "import sys, urllib.request;"
            f"sys.stdout.write(urllib.request.urlopen("
            f"'http://127.0.0.1:{METRICS_PORT}/metrics', timeout=5).read().decode())",
        )
    )


def _wait_for_watch(namespace: Namespace, process: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"detector watch ended early: {_stop(process)}")
        try:
            text = _scrape(namespace)
        except BenchError:
            time.sleep(0.2)
            continue
        if "detector_interfaces 1.0" in text:
            return text
        time.sleep(0.2)
    raise BenchError("detector watch did not open the interface in time")


def _tcpdump_round(
    namespace: Namespace, capture: Path, rate: int, packets: int
) -> LiveRound:
    process = subprocess.Popen(
        namespace.command("tcpdump", "-i", namespace.receiver, "-n", "-w", os.devnull),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        if "listening on" not in line:
            raise BenchError(f"tcpdump did not start: {line.strip()}")
        sent, seconds = _replay(namespace, capture, rate, packets)
        time.sleep(DRAIN_SECONDS)
    finally:
        errors = _stop(process)
    captured = _TCPDUMP_CAPTURED.search(errors)
    dropped = _TCPDUMP_DROPPED.search(errors)
    if captured is None or dropped is None:
        raise BenchError(f"cannot read tcpdump's summary: {errors[-300:]}")
    return LiveRound(
        "tcpdump", rate, sent, seconds, int(captured.group(1)), int(dropped.group(1))
    )


def measure(
    capture: Path, rates: Sequence[int] = DEFAULT_RATES, packets: int = DEFAULT_PACKETS
) -> list[LiveRound]:
    """Replay ``packets`` packets of ``capture`` at each rate to each tool.

    Raises:
        BenchError: not root, a tool missing, or a tool that failed.
    """
    if os.geteuid() != 0:
        raise BenchError("the live benchmark needs root to create a namespace")
    for tool in ("ip", "tcpreplay", "tcpdump"):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed; run 'make bench-tools'")
    if not capture.is_file():
        raise BenchError(f"{capture} not found; run 'make bench' or generate it")
    rounds: list[LiveRound] = []
    with Namespace() as namespace:
        for rate in rates:
            rounds.append(_tcpdump_round(namespace, capture, rate, packets))
            rounds.append(_watch_round(namespace, capture, rate, packets))
    return rounds


def render(rounds: Sequence[LiveRound], capture: Path, packets: int) -> str:
    """Return the Markdown page of a live benchmark run."""
    machine = describe_machine(str(Path(sys.executable).with_name("detector")))
    tcpdump = subprocess.run(
        ["tcpdump", "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    tools = ", ".join(
        [
            machine.tool_versions.get("detector", "detector"),
            tcpdump[0] if tcpdump else "tcpdump",
        ]
    )
    machine_text = (
        f"{machine.cpu}, {machine.cores} cores, {machine.memory_gib:.1f} GiB,"
        f" {machine.os}, Python {machine.python}, load average"
        f" {machine.load_average:.2f} at start; {tools}"
    )
    lines = [
        "# Live capture benchmark",
        "",
        "Written by `make bench-live` (`python -m detector.bench live`); rerun it to"
        " refresh this page.",
        "",
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {machine_text}.",
        "",
        f"tcpreplay sends the first {packets:,} packets of `{capture.name}` (the mixed"
        " capture of [benchmarks.md](benchmarks.md)) into one end of a veth pair in a"
        " network namespace made for the run; the tool captures on the other end."
        " `detector watch` runs with no capture filter, so it counts every packet as"
        " tcpdump does, and inspects them as in production; tcpdump only writes them"
        ' to /dev/null. "Seen" is what the tool counted (`detector_packets_total`,'
        ' or tcpdump\'s "packets captured"); "kernel drops" is what libpcap reported'
        " lost because the capture buffer was full. Rate 0 is tcpreplay's top speed."
        " A tool can see a few more packets than were sent: the kernel's own IPv6"
        " neighbour discovery on the new veth pair.",
        "",
        "| requested packets/s | tool | sent | achieved packets/s | seen | seen share |"
        " kernel drops |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for item in rounds:
        requested = (
            "top speed" if item.requested_pps == 0 else f"{item.requested_pps:,}"
        )
        lines.append(
            f"| {requested} | {item.tool} | {item.sent:,} | {item.achieved_pps:,.0f} |"
            f" {item.seen:,} | {item.seen_share:.1%} | {item.kernel_drops:,} |"
        )
    lines += [
        "",
        "Both tools share the machine's cores with tcpreplay, so the highest rates"
        " measure the machine as much as the tool. The rates are reported, not"
        " required: the watch's tests check what it finds, never how fast.",
        "",
    ]
    return "\n".join(lines)
