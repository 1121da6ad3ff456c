"""detector watch on the odd interfaces and outputs of a real host: libpcap's
"any", raw-IP devices, names that do not exist, a reader that goes away."""

from __future__ import annotations

import subprocess

from tests.live.lab import EVENT_TIMEOUT, PYTHON, Lab, start_watch_process
from tests.live.test_watch_lab import mine, start_pool

# Seconds watch gets to notice its closed output and exit.
EXIT_TIMEOUT = 20.0


def pool_and_miner(lab: Lab):
    bridge = lab.add_bridge()
    pool = lab.add_node("pool", bridge, 2)
    miner = lab.add_node("miner", bridge, 10)
    start_pool(lab, pool)
    return bridge, pool, miner


def test_any_interface_captures(lab: Lab) -> None:
    _, pool, miner = pool_and_miner(lab)
    watch = lab.watch("-i", "any")
    watch.wait_until_capturing("any")
    mine(lab, miner, pool, seed=31)
    _, alert = watch.wait_for_alert(
        lambda record: record["source"]["ip"] == miner.address,
        EVENT_TIMEOUT,
        "an alert on the miner from the any interface",
    )
    assert alert["observer"]["ingress"]["interface"]["name"] == "any"
    assert alert["mining"]["dialect"] == "monero"
    assert watch.terminate() == 0


def test_missing_interface_logged_once(lab: Lab) -> None:
    bridge = lab.add_bridge()
    watch = lab.watch("-i", "nosuch0", "-i", bridge.name, "--rescan-interval", "0.2")
    watch.wait_until_capturing(bridge.name)
    watch.wait_for_log("interface nosuch0 not found")
    assert watch.terminate() == 0
    lines = [line for line in watch.log_lines() if "nosuch0 not found" in line]
    assert len(lines) == 1
    assert not any("no interface matches" in line for line in watch.log_lines())


def test_raw_ip_device_opens(lab: Lab) -> None:
    device = f"tun{lab.tag}"
    lab.host_run("ip", "tuntap", "add", "dev", device, "mode", "tun")
    lab.host_run("ip", "link", "set", device, "up")
    watch = lab.watch("-i", device)
    _, line = watch.wait_until_capturing(device)
    assert "link type 12" in line
    assert watch.terminate() == 0
    assert not any("does not compile" in line for line in watch.log_lines())


def test_closed_output_stops_watch(lab: Lab) -> None:
    bridge, pool, miner = pool_and_miner(lab)
    process = start_watch_process(
        lab.host, [PYTHON, "-m", "detector", "watch", "-i", bridge.name]
    )
    lab._processes.append(process)
    assert process.stdout is not None and process.stderr is not None
    # The reader goes away before the first alert.
    process.stdout.close()
    mine(lab, miner, pool, seed=32)
    try:
        status = process.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError("watch kept running after its output closed") from None
    errors = process.stderr.read()
    assert status == 2, errors
    assert "closed by its reader" in errors


def test_closed_output_stops_idle_watch(lab: Lab) -> None:
    bridge = lab.add_bridge()
    process = start_watch_process(
        lab.host, [PYTHON, "-m", "detector", "watch", "-i", bridge.name]
    )
    lab._processes.append(process)
    assert process.stdout is not None and process.stderr is not None
    # No traffic at all: the watch has nothing to write, yet must notice.
    process.stdout.close()
    try:
        status = process.wait(EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            "an idle watch kept running after its output closed"
        ) from None
    errors = process.stderr.read()
    assert status == 2, errors
    assert "closed by its reader" in errors


def _catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for ``signum`` (/proc SigCgt)."""
    from pathlib import Path

    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def _start_and_signal_early(lab: Lab, signum: int):
    """Start a watch and send ``signum`` as soon as it catches signals, while
    it is still importing; return the process and the bridge it watches."""
    import signal as signals
    import time

    bridge = lab.add_bridge()
    process = start_watch_process(
        lab.host, [PYTHON, "-m", "detector", "watch", "-i", bridge.name]
    )
    lab._processes.append(process)
    deadline = time.monotonic() + EVENT_TIMEOUT
    while not _catches(process.pid, signals.SIGTERM):
        assert time.monotonic() < deadline, "watch never installed its handlers"
        time.sleep(0.005)
    process.send_signal(signum)
    return process, bridge


def test_early_sigterm_ends_cleanly(lab: Lab) -> None:
    import signal as signals

    process, _ = _start_and_signal_early(lab, signals.SIGTERM)
    status = process.wait(EXIT_TIMEOUT)
    assert process.stderr is not None
    errors = process.stderr.read()
    assert status == 0, errors
    assert "watch stopped" in errors


def test_early_sighup_keeps_running(lab: Lab) -> None:
    import signal as signals

    process, bridge = _start_and_signal_early(lab, signals.SIGHUP)
    assert process.stderr is not None
    line = ""
    while f"watching {bridge.name}" not in line:
        line = process.stderr.readline()
        assert line, "watch ended after an early SIGHUP"
    assert process.poll() is None
    process.send_signal(signals.SIGTERM)
    assert process.wait(EXIT_TIMEOUT) == 0
