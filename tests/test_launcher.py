"""Signals that reach `detector watch` while it is still being imported."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPOSITORY

# A watch on an interface that does not exist, sent a signal after the
# launcher starts keeping signals and before the command line is imported.
EARLY_SIGNAL = """
import os, signal, sys
sys.argv = ["detector", "watch", "-i", "nosuchif0", "--rescan-interval", "0.2"]
from detector import launcher
launcher.hold_signals()
os.kill(os.getpid(), signal.{name})
launcher.run()
"""

TIMEOUT = 60.0


def run_with_early(
    name: str, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", EARLY_SIGNAL.format(name=name)],
        capture_output=True,
        text=True,
        cwd=REPOSITORY,
        timeout=timeout,
        check=False,
    )


def test_early_sigterm_stops_watch() -> None:
    done = run_with_early("SIGTERM")
    assert done.returncode == 0, done.stderr
    assert "watch stopped" in done.stderr


def test_early_sigint_stops_watch() -> None:
    done = run_with_early("SIGINT")
    assert done.returncode == 0, done.stderr
    assert "watch stopped" in done.stderr


def test_early_sighup_keeps_watch() -> None:
    try:
        done = run_with_early("SIGHUP", timeout=3.0)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError(f"watch ended after an early SIGHUP: {done.stderr}")
