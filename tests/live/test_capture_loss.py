"""Packets detector watch captures against packets replayed, at several rates.

tcpreplay sends a capture from the benchmark generator into one end of a veth
pair in the lab's host namespace, and watch captures the other end. The test
prints a table of packets sent, seen and dropped at each rate (``pytest -s``
shows it) and records the figures as test properties. It asserts only that
packets were seen, and that at the lowest rate watch reports the same mining
flows as ``detector scan`` on the same file. The loss at higher rates depends
on the machine, so it is reported, not asserted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPOSITORY
from tests.live.conftest import skip_or_fail
from tests.live.lab import EVENT_TIMEOUT, Lab, Watch

# A small mixed capture: ordinary flows and a dozen mining flows of several
# dialects, generated in well under a second.
PACKETS = 3000
MINING_FLOWS = 12
# Packets per second; the lowest rate is the one compared with scan. The
# sweep takes about 3.1 s of replay.
RATES = (1000, 10000, 100000)
METRICS_PORT = 9100
# Seconds between two reads of the packet counter while it still grows.
SETTLE_POLL_SECONDS = 0.3
SUCCESSFUL_PACKETS = re.compile(r"Successful packets:\s+(\d+)")


@dataclass(frozen=True)
class Replay:
    """Figures of one replay at one rate."""

    rate: int
    sent: int
    seen: int
    kernel_drops: int
    interface_drops: int
    # The verdict of each flow's last alert, which carries its final state.
    mining_flows: frozenset[tuple[Any, ...]]
    # The verdict of each flow's first alert, written while it was open.
    first_alerts: frozenset[tuple[Any, ...]]


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    if shutil.which("tcpreplay") is None:
        skip_or_fail("tcpreplay not installed; 'make test-tools' installs it")
    folder = tmp_path_factory.mktemp("replay")
    subprocess.run(
        [sys.executable, "-m", "detector.bench", "generate", str(folder)]
        + ["--packets", str(PACKETS), "--flood-flows", "1"]
        + ["--mining-flows", str(MINING_FLOWS)],
        cwd=REPOSITORY,
        check=True,
        capture_output=True,
        timeout=EVENT_TIMEOUT * 4,
    )
    return folder / "mixed-1m.pcap"


def flow_of(document: dict[str, Any]) -> tuple[Any, ...]:
    return (
        document["source"]["ip"],
        document["source"]["port"],
        document["destination"]["ip"],
        document["destination"]["port"],
        document["mining"]["dialect"],
        document["mining"]["confidence"],
    )


@pytest.fixture(scope="module")
def scanned(capture) -> frozenset[tuple[Any, ...]]:
    completed = subprocess.run(
        [sys.executable, "-m", "detector", "scan", "--format", "jsonl", str(capture)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=EVENT_TIMEOUT * 4,
    )
    # Exit status 1 means mining was found.
    assert completed.returncode == 1, completed.stderr
    return frozenset(
        flow_of(json.loads(line)) for line in completed.stdout.splitlines()
    )


def packets_seen(watch: Watch, interface: str) -> tuple[int, int, int]:
    samples = watch.metrics()
    label = (("interface", interface),)
    return (
        int(samples.get(("detector_packets_total", label), 0)),
        int(samples.get(("detector_kernel_drops_total", label), 0)),
        int(samples.get(("detector_interface_drops_total", label), 0)),
    )


def replay_at(lab: Lab, capture: Path, rate: int) -> Replay:
    sender, receiver = lab.add_veth_pair()
    watch = lab.watch("--interface", receiver, metrics_port=METRICS_PORT)
    watch.wait_until_capturing(receiver)
    output = lab.host_run(
        "tcpreplay",
        f"--intf1={sender}",
        f"--pps={rate}",
        "--preload-pcap",
        str(capture),
    )
    match = SUCCESSFUL_PACKETS.search(output)
    assert match is not None, output
    sent = int(match.group(1))

    # The counter is read until it stops growing: the last batch may still
    # be in the kernel's buffer when tcpreplay returns.
    seen, kernel_drops, interface_drops = packets_seen(watch, receiver)
    deadline = time.monotonic() + EVENT_TIMEOUT
    while seen < sent and time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_SECONDS)
        latest = packets_seen(watch, receiver)
        if latest[0] == seen:
            break
        seen, kernel_drops, interface_drops = latest
    assert watch.terminate() == 0, "\n".join(watch.log_lines()[-20:])
    first: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    last: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for alert in watch.alert_records():
        verdict = flow_of(alert)
        first.setdefault(verdict[:4], verdict)
        last[verdict[:4]] = verdict
    return Replay(
        rate,
        sent,
        seen,
        kernel_drops,
        interface_drops,
        frozenset(last.values()),
        frozenset(first.values()),
    )


@pytest.fixture(scope="module")
def replays(module_lab, capture) -> list[Replay]:
    return [replay_at(module_lab, capture, rate) for rate in RATES]


def test_replay_table(replays, scanned, record_property) -> None:
    header = (
        f"{'pps':>7} {'sent':>6} {'seen':>6} {'lost':>6} {'kernel drops':>13}"
        f" {'if drops':>9} {'mining flows':>13}"
    )
    rows = [header]
    for replay in replays:
        rows.append(
            f"{replay.rate:>7} {replay.sent:>6} {replay.seen:>6}"
            f" {replay.sent - replay.seen:>6} {replay.kernel_drops:>13}"
            f" {replay.interface_drops:>9}"
            f" {len(replay.mining_flows):>6} of {len(scanned):<3}"
        )
        record_property(f"sent_at_{replay.rate}_pps", replay.sent)
        record_property(f"seen_at_{replay.rate}_pps", replay.seen)
        record_property(f"kernel_drops_at_{replay.rate}_pps", replay.kernel_drops)
        record_property(f"mining_flows_at_{replay.rate}_pps", len(replay.mining_flows))
    print("\n" + "\n".join(rows))
    for replay in replays:
        assert replay.sent == PACKETS
        assert replay.seen > 0, f"watch saw no packets at {replay.rate} pps"


def test_lowest_rate_matches_scan(replays, scanned) -> None:
    lowest = min(replays, key=lambda replay: replay.rate)
    assert len(scanned) == MINING_FLOWS
    missing = scanned - lowest.mining_flows
    extra = lowest.mining_flows - scanned
    assert missing == set(), f"scan found, watch did not: {sorted(missing)}"
    assert extra == set(), f"watch found, scan did not: {sorted(extra)}"


def test_first_alerts_match_scan(replays, scanned) -> None:
    # An alert written while its flow is open must not name another dialect
    # than the flow turns out to have.
    lowest = min(replays, key=lambda replay: replay.rate)
    differing = sorted(lowest.first_alerts - scanned)
    assert differing == [], f"first alerts that scan does not confirm: {differing}"
