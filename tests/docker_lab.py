"""A real Docker engine for tests, confined to its own namespace.

dockerd runs inside a network namespace the fixture creates. Its bridges,
iptables chains, MASQUERADE rules, FORWARD policy and ip_forward therefore
change that namespace only, and the host's network stays as it was. The
fixture still removes everything dockerd added there and checks that the
namespace is back to the state recorded before dockerd started. Then it
deletes the namespace and checks that the host's own network state is what
it was.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.attribution.netns import missing_requirements, run, unique_tag

REQUIRE_DOCKER = "DETECTOR_REQUIRE_DOCKER"
IMAGE = "detector-busybox:test"
BUSYBOX = Path("/bin/busybox")
# The busybox applets the test containers run.
APPLETS = ("sh", "nc", "sleep", "printf", "echo", "mkfifo")

# dockerd starts within a second on an idle host; the margin is for CI.
DOCKERD_START_TIMEOUT = 30.0
# Seconds dockerd gets to stop its containers and containerd after SIGTERM.
DOCKERD_STOP_TIMEOUT = 20.0


# Seconds a test waits for a container to reach a state or for the pool to
# read a miner's lines. busybox responds in milliseconds, so this is margin
# for a loaded host.
CONTAINER_TIMEOUT = 30.0


def busybox_pool_command(port: int) -> list[str]:
    """Return the command of a "pool" container: busybox nc listening on
    ``port`` again after each connection.

    busybox nc can close a connection before reading it once its stdin ends,
    and a container's stdin is /dev/null. The pool's nc therefore reads from a
    FIFO that the shell keeps open for writing, so its stdin never ends.
    """
    return [
        "sh",
        "-c",
        f"mkfifo /idle && exec 3<>/idle && while true; do nc -l -p {port} <&3; done",
    ]


def wait_for(condition: Callable[[], object], description: str) -> None:
    """Poll ``condition`` until it is true; fail after CONTAINER_TIMEOUT."""
    deadline = time.monotonic() + CONTAINER_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {description}")
        time.sleep(0.1)


@dataclass
class DockerEngine:
    """A running dockerd: its socket, namespace and client."""

    socket: str
    netns: str
    netns_path: str
    pid: int
    client: object
    image: str = IMAGE

    def prefix(self) -> list[str]:
        """Return the command prefix that enters the daemon's namespace."""
        return ["nsenter", f"--net={self.netns_path}"]


def network_state(prefix: list[str]) -> dict[str, object]:
    """Record what dockerd changes: its bridges, iptables rules, ip_forward.

    Only bridges named as Docker names them are listed, because other tests
    may add and remove their own links in the host's namespace meanwhile.
    """
    links = json.loads(run(*prefix, "ip", "-j", "link", "show"))
    return {
        "links": sorted(
            link["ifname"]
            for link in links
            if link["ifname"] == "docker0" or link["ifname"].startswith("br-")
        ),
        "filter": run(*prefix, "iptables", "-t", "filter", "-S").splitlines(),
        "nat": run(*prefix, "iptables", "-t", "nat", "-S").splitlines(),
        "ip_forward": run(*prefix, "cat", "/proc/sys/net/ipv4/ip_forward").strip(),
    }


def undo_docker_changes(prefix: list[str], before: dict[str, object]) -> None:
    """Remove the links, rules and chains dockerd added; restore policies."""
    links = json.loads(run(*prefix, "ip", "-j", "link", "show"))
    for link in links:
        name = link["ifname"]
        if name == "docker0" or name.startswith("br-"):
            run(*prefix, "ip", "link", "delete", name, check=False)
    for table in ("filter", "nat"):
        before_rules = set(before[table])  # type: ignore[call-overload]
        rules = run(*prefix, "iptables", "-t", table, "-S").splitlines()
        for rule in reversed(rules):
            if rule.startswith("-A ") and rule not in before_rules:
                # iptables -S prints rules in the syntax that -D accepts.
                words = ["-D", *rule.split()[1:]]
                run(*prefix, "iptables", "-t", table, *words, check=False)
        for rule in rules:
            if rule.startswith("-N ") and rule not in before_rules:
                chain = rule.split()[1]
                run(*prefix, "iptables", "-t", table, "-F", chain, check=False)
                run(*prefix, "iptables", "-t", table, "-X", chain, check=False)
        for rule in before[table]:  # type: ignore[attr-defined]
            if rule.startswith("-P "):
                _, chain, policy = rule.split()
                run(*prefix, "iptables", "-t", table, "-P", chain, policy)
    value = str(before["ip_forward"])
    run(*prefix, "sysctl", "-qw", f"net.ipv4.ip_forward={value}")


def build_rootfs_tar() -> bytes:
    """Pack busybox and its applet links as the image's root file system."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo("bin")
        folder.type = tarfile.DIRTYPE
        folder.mode = 0o755
        archive.addfile(folder)
        archive.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            archive.addfile(link)
    return buffer.getvalue()


def _skip_or_fail(reason: str) -> None:
    if os.environ.get(REQUIRE_DOCKER) == "1":
        pytest.fail(f"{REQUIRE_DOCKER}=1 but {reason}")
    pytest.skip(reason)


def _stop_pid(pid: int, timeout: float) -> None:
    """SIGTERM a process this fixture started, then SIGKILL if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _our_containerd(exec_root: Path) -> int | None:
    """Return the PID of the containerd that our dockerd started, if running."""
    pidfile = exec_root / "containerd" / "containerd.pid"
    try:
        pid = int(pidfile.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(exec_root).encode() in command else None


def _unmount_below(folder: Path) -> None:
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    points = [line.split()[1] for line in mounts if len(line.split()) > 1]
    for point in sorted(points, key=len, reverse=True):
        if point.startswith(str(folder)):
            run("umount", "-l", point, check=False)


@contextlib.contextmanager
def _start_docker_engine(tmp_path_factory) -> Iterator[DockerEngine]:
    reason = missing_requirements(
        "dockerd", "containerd", "ip", "iptables", "nsenter", "tcpdump", "sysctl"
    )
    if reason is None and not BUSYBOX.is_file():
        reason = f"{BUSYBOX} not found; install busybox-static"
    if reason is None:
        try:
            import docker  # noqa: F401
        except ImportError:
            reason = "the docker Python package is not installed"
    if reason is not None:
        _skip_or_fail(f"Docker tests: {reason}")
    import docker
    import docker.errors

    root = tmp_path_factory.mktemp("dockerd")
    netns = f"detdock{unique_tag()}"
    netns_path = f"/run/netns/{netns}"
    prefix = ["nsenter", f"--net={netns_path}"]
    host_before = network_state([])
    run("ip", "netns", "add", netns)
    process: subprocess.Popen[bytes] | None = None
    client = None
    log_file = open(root / "dockerd.log", "wb")  # noqa: SIM115
    try:
        run(*prefix, "ip", "link", "set", "lo", "up")
        namespace_before = network_state(prefix)
        socket = root / "docker.sock"
        # nsenter enters only the network namespace and then executes
        # dockerd, so the PID is dockerd's and the host's cgroup and mount
        # views stay as dockerd expects them.
        process = subprocess.Popen(
            [
                *prefix,
                "dockerd",
                "--data-root",
                str(root / "data"),
                "--exec-root",
                str(root / "exec"),
                "-H",
                f"unix://{socket}",
                "--pidfile",
                str(root / "dockerd.pid"),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + DOCKERD_START_TIMEOUT
        while client is None:
            if process.poll() is not None:
                log = (root / "dockerd.log").read_text(errors="replace")
                pytest.fail(f"dockerd exited with {process.returncode}: {log[-2000:]}")
            try:
                # The client asks for the API version as it is made, so it
                # fails until dockerd listens.
                client = docker.DockerClient(base_url=f"unix://{socket}", timeout=60)
            except docker.errors.DockerException:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"dockerd did not answer within {DOCKERD_START_TIMEOUT} s"
                    )
                time.sleep(0.2)
        client.api.import_image_from_data(
            build_rootfs_tar(),
            repository=IMAGE.split(":")[0],
            tag=IMAGE.split(":")[1],
            changes=["ENV PATH=/bin"],
        )
        yield DockerEngine(
            socket=str(socket),
            netns=netns,
            netns_path=netns_path,
            pid=process.pid,
            client=client,
        )
    finally:
        exec_root = root / "exec"
        containerd = _our_containerd(exec_root)
        if client is not None:
            try:
                for container in client.containers.list(all=True):
                    container.remove(force=True)
                for network in client.networks.list():
                    if network.name not in ("bridge", "host", "none"):
                        network.remove()
            except Exception as exc:  # noqa: BLE001 - teardown goes on
                warnings.warn(f"docker cleanup failed: {exc}", stacklevel=1)
            client.close()
        if process is not None:
            _stop_pid(process.pid, DOCKERD_STOP_TIMEOUT)
            process.wait(timeout=DOCKERD_STOP_TIMEOUT)
        if containerd is not None:
            _stop_pid(containerd, DOCKERD_STOP_TIMEOUT)
        log_file.close()
        _unmount_below(root)
        namespace_after = None
        if Path(netns_path).exists():
            if process is not None:
                undo_docker_changes(prefix, namespace_before)
                namespace_after = network_state(prefix)
            run("ip", "netns", "del", netns)
        shutil.rmtree(root, ignore_errors=True)
        host_after = network_state([])
        assert host_after == host_before, "the host's network state changed"
        if namespace_after is not None:
            assert namespace_after == namespace_before, (
                "dockerd's changes to its namespace were not all undone"
            )


# One engine serves every test directory that requests it in a session: the
# first request starts it and the last release stops it.
_shared_engine: DockerEngine | None = None
_shared_users = 0
_shared_stack = contextlib.ExitStack()


@contextlib.contextmanager
def shared_docker_engine(tmp_path_factory) -> Iterator[DockerEngine]:
    """Start dockerd on first use, or reuse the running one; stop it after
    its last user. Skips (or fails, with DETECTOR_REQUIRE_DOCKER=1) when
    Docker is missing."""
    global _shared_engine, _shared_users
    if _shared_engine is None:
        _shared_engine = _shared_stack.enter_context(
            _start_docker_engine(tmp_path_factory)
        )
    _shared_users += 1
    try:
        yield _shared_engine
    finally:
        _shared_users -= 1
        if _shared_users == 0:
            _shared_engine = None
            _shared_stack.close()
