"""Live capture through libpcap on the loopback interface."""

from __future__ import annotations

import os
import select
import socket

import pytest

from detector.errors import CaptureError
from detector.live.capture import (
    LiveCapture,
    container_bridges,
    interface_names,
    select_interfaces,
)

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="capturing needs root or CAP_NET_RAW"
)


def test_container_bridges_found_by_name() -> None:
    names = [
        "lo",
        "eth0",
        "docker0",
        "br-0123456789ab",
        "cni0",
        "cbr0",
        "podman1",
        "veth12ab",
        "bridge0",
    ]
    assert container_bridges(names) == [
        "br-0123456789ab",
        "cbr0",
        "cni0",
        "docker0",
        "podman1",
    ]


def test_patterns_select_interfaces() -> None:
    names = ["veth1", "veth2", "eth0", "lo"]
    assert select_interfaces(["veth*", "lo"], names) == ["lo", "veth1", "veth2"]
    assert select_interfaces(["nothing*"], names) == []


def test_interface_names_include_loopback() -> None:
    assert "lo" in interface_names()


@needs_root
def test_loopback_packets_arrive_in_one_batch() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    port = receiver.getsockname()[1]
    capture = LiveCapture("lo", bpf=f"udp and dst port {port}")
    try:
        assert capture.read() is None
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        payloads = [bytes([65 + i]) * (i + 1) for i in range(25)]
        for payload in payloads:
            sender.sendto(payload, ("127.0.0.1", port))
        sender.close()
        received = []
        while len(received) < len(payloads):
            ready, _, _ = select.select([capture], [], [], 5.0)
            assert ready, "no packet captured within 5 s"
            batch = capture.read()
            if batch is not None:
                received.extend(batch.packets())
        assert [
            packet.data[-len(p) :] for packet, p in zip(received, payloads, strict=True)
        ] == (payloads)
        assert [packet.number for packet in received] == list(range(1, 26))
        assert all(packet.linktype == capture.linktype == 1 for packet in received)
        stats = capture.stats()
        assert stats.received >= len(payloads)
        assert stats.dropped == 0
    finally:
        capture.close()
        receiver.close()


@needs_root
def test_missing_interface_is_a_capture_error() -> None:
    with pytest.raises(CaptureError, match="no such interface") as raised:
        LiveCapture("nosuchif0")
    assert raised.value.source == "nosuchif0"


@needs_root
def test_bad_filter_names_filter() -> None:
    with pytest.raises(CaptureError, match="'port banana'"):
        LiveCapture("lo", bpf="port banana")


def _as_nobody(*capabilities: str) -> list[str]:
    """A setpriv prefix running a command as user nobody with only the named
    capabilities (ambient, so the Python interpreter keeps them)."""
    command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if capabilities:
        listed = ",".join(f"+{name}" for name in capabilities)
        command += [f"--inh-caps={listed}", f"--ambient-caps={listed}"]
    return command


OPEN_LOOPBACK = (
    "from detector.live.capture import LiveCapture\n"
    "LiveCapture('lo').close()\n"
    "print('opened')\n"
)


@needs_root
def test_capabilities_suffice_to_capture() -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    root = str(Path(__file__).resolve().parents[2])
    probe = subprocess.run(
        [*_as_nobody(), sys.executable, "-c", "import detector"],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(
            "user nobody cannot read the project or its interpreter here:"
            f" {probe.stderr.strip()[-200:]}"
        )
    allowed = subprocess.run(
        [*_as_nobody("net_raw", "net_admin"), sys.executable, "-c", OPEN_LOOPBACK],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    assert allowed.stdout.strip() == "opened", allowed.stderr
    rejected = subprocess.run(
        [*_as_nobody(), sys.executable, "-c", OPEN_LOOPBACK],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    assert rejected.returncode != 0
    assert "CAP_NET_RAW and CAP_NET_ADMIN" in rejected.stderr
