"""Helpers for tests that build network namespaces, capture and clean up.

Every namespace, interface and process made here is recorded so that the
fixtures can remove exactly what they added, by name and by PID.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

# Seconds a helper command may take; namespace set-up takes milliseconds.
COMMAND_TIMEOUT = 30.0
# Seconds tcpdump gets to open its interface before traffic starts.
CAPTURE_START_TIMEOUT = 10.0
# Seconds a process gets to exit after SIGTERM before it gets SIGKILL.
STOP_TIMEOUT = 10.0

NETNS_DIR = Path("/run/netns")


def run(*command: str, check: bool = True, input: str | None = None) -> str:
    """Run a command and return its standard output; raise on failure."""
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
        input=input,
    )
    if check and completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed with status {completed.returncode}: "
            f"{completed.stderr.strip()}"
        )
    return completed.stdout


def missing_requirements(*programs: str) -> str | None:
    """Return why namespace tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    absent = [program for program in programs if shutil.which(program) is None]
    if absent:
        return f"{', '.join(absent)} not installed"
    return None


def unique_tag() -> str:
    """Return a short tag that keeps names of parallel runs apart.

    Interface names must stay within 15 bytes, so tags are 6 hex digits.
    """
    return secrets.token_hex(3)


def netns_exec(namespace: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *command]


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """End a process this test started: SIGTERM, wait, then SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


class Capture:
    """tcpdump writing one interface's packets to a pcap file.

    Immediate mode hands each packet over as it arrives. Without it, the
    packets still buffered (up to one second's worth) are lost when tcpdump
    is stopped right after the traffic.

    ``prefix`` is the command that enters the interface's namespace
    (``ip netns exec NAME`` or ``nsenter --net=FILE``).
    """

    def __init__(self, prefix: list[str], interface: str, path: Path) -> None:
        self.path = path
        self.process = subprocess.Popen(
            [*prefix, "tcpdump", "--immediate-mode", "-U", "-n", "-i", interface]
            + ["-w", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + CAPTURE_START_TIMEOUT
        assert self.process.stderr is not None
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if "listening on" in line:
                return
            if not line and self.process.poll() is not None:
                break
        stop_process(self.process)
        raise RuntimeError(f"tcpdump did not start capturing on {self.path.name}")

    def stop(self) -> Path:
        """Stop tcpdump (it flushes the file on SIGTERM) and return the file."""
        stop_process(self.process)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return self.path
