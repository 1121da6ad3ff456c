"""The batch path and the per-packet path give the same detections and counts.

Every bundled sample and every third-party capture is scanned both ways, and
so are generated captures that cross batch boundaries, fill the flow table
and let flows expire.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from detector.capture import MAX_BATCH_PACKETS
from detector.cli import EXIT_ERROR, EXIT_INTERRUPTED
from detector.flows.table import IDLE_TIMEOUT
from detector.model import Detection, Direction
from detector.scan import EXPIRE_EVERY_PACKETS, FileResult, scan_file, scan_paths
from detector.trafficgen.conversation import Endpoint, Step, tcp_conversation
from detector.trafficgen.links import Ethernet
from detector.trafficgen.writers import Record, encode_pcap
from tests.conftest import SAMPLES

SAMPLE_PATHS = sorted(p for p in SAMPLES.iterdir() if p.name != "manifest.yaml")
CLIENT = Endpoint("172.17.0.9", 45000)
POOL = Endpoint("203.0.113.77", 3333)
START_NS = 1_767_225_600 * 10**9


def scan_both(
    path: Path, signatures: object, max_flows: int | None = None
) -> tuple[FileResult, FileResult, list[Detection], list[Detection]]:
    options = {} if max_flows is None else {"max_flows": max_flows}
    fast_emitted: list[Detection] = []
    slow_emitted: list[Detection] = []
    fast = scan_file(
        str(path),
        signatures,  # type: ignore[arg-type]
        on_detection=fast_emitted.append,
        fast_path=True,
        **options,
    )
    slow = scan_file(
        str(path),
        signatures,  # type: ignore[arg-type]
        on_detection=slow_emitted.append,
        fast_path=False,
        **options,
    )
    return fast, slow, fast_emitted, slow_emitted


def assert_same(
    path: Path, signatures: object, max_flows: int | None = None
) -> FileResult:
    fast, slow, fast_emitted, slow_emitted = scan_both(path, signatures, max_flows)
    assert fast.detections == slow.detections
    assert fast_emitted == slow_emitted
    assert dataclasses.replace(fast.stats, seconds=0.0) == dataclasses.replace(
        slow.stats, seconds=0.0
    )
    assert fast.error == slow.error
    assert fast.warnings == slow.warnings
    assert fast.interrupted == slow.interrupted
    return fast


@pytest.mark.parametrize("path", SAMPLE_PATHS, ids=[p.name for p in SAMPLE_PATHS])
def test_samples_same_both_ways(path: Path, signatures) -> None:
    assert_same(path, signatures)


@pytest.mark.parametrize("max_flows", [1, 2, 5])
def test_samples_same_with_small_table(max_flows: int, signatures) -> None:
    for path in SAMPLE_PATHS:
        assert_same(path, signatures, max_flows)


@pytest.mark.realpcap
def test_real_captures_same_both_ways(real_pcaps: Path, signatures) -> None:
    paths = [
        path
        for path in sorted(real_pcaps.rglob("*"))
        if path.is_file() and path.suffix in (".pcap", ".pcapng", ".cap", ".gz")
    ]
    assert paths
    for path in paths:
        assert_same(path, signatures)


@pytest.mark.realpcap
def test_real_captures_same_with_small_table(real_pcaps: Path, signatures) -> None:
    paths = [
        path
        for path in sorted(real_pcaps.rglob("*"))
        if path.is_file() and path.suffix in (".pcap", ".pcapng", ".cap", ".gz")
    ]
    for path in paths:
        assert_same(path, signatures, max_flows=3)


# Generated captures.


def line(message: str) -> bytes:
    return message.encode() + b"\n"


def stratum_steps() -> list[Step]:
    notify = (
        '{"id": null, "method": "mining.notify", "params": ["j1", "'
        + "00" * 32
        + '", "01", "02", [], "20000000", "1d00ffff", "5a0b0c0d", true]}'
    )
    return [
        Step(
            Direction.TO_SERVER,
            line(
                '{"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.10.0"]}'
            ),
        ),
        Step(Direction.TO_CLIENT, line(notify)),
        Step(
            Direction.TO_SERVER,
            line(
                '{"id": 4, "method": "mining.submit",'
                ' "params": ["w.1", "j1", "00", "5a0b", "1a2b"]}'
            ),
        ),
    ]


def frame(
    source: int, port: int, flags: int, payload: bytes = b"", seq: int = 1
) -> bytes:
    """An Ethernet, IPv4 and TCP frame from 10.x.y.z:port to the pool."""
    tcp = struct.pack("!HHIIBBHHH", port, 3333, seq, 0, 0x50, flags, 64240, 0, 0)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        40 + len(payload),
        source & 0xFFFF,
        0,
        64,
        6,
        0,
        struct.pack("!I", 0x0A000000 + source),
        bytes([203, 0, 113, 77]),
    )
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp + payload


def mixed_capture(path: Path, count: int, gap_at: int | None = None) -> Path:
    """Write SYNs, short payload flows and a mining conversation spread
    through them; with ``gap_at``, time jumps past the idle timeout there."""
    link = Ethernet()
    records: list[Record] = []
    time_ns = START_NS
    for index in range(count):
        time_ns += 1000
        if gap_at is not None and index == gap_at:
            time_ns += int((IDLE_TIMEOUT + 10) * 10**9)
        kind = index % 7
        source = index // 7 % 5000
        if kind == 0:
            data = frame(source, 20000 + source % 30000, 0x02)
        elif kind in (1, 2):
            data = frame(source, 20000 + source % 30000, 0x18, b"GET / HTTP/1.1\r\n", 1)
        elif kind == 3:
            data = frame(source, 20000 + source % 30000, 0x11, b"", 17)
        else:
            data = frame(source % 50, 1024 + index % 64, 0x10, b"x" * (index % 3))
        records.append(Record(time_ns, data))
    mining = tcp_conversation(CLIENT, POOL, stratum_steps(), start_ns=START_NS)
    spacing = max(1, count // len(mining))
    for number, packet in enumerate(mining):
        position = min(number * (spacing + 1), len(records))
        records.insert(
            position,
            Record(
                records[position - 1].timestamp_ns if position else START_NS,
                link.frame(packet),
            ),
        )
    path.write_bytes(encode_pcap(records, link.linktype))
    return path


def test_many_batches_same_both_ways(tmp_path: Path, signatures) -> None:
    count = EXPIRE_EVERY_PACKETS + MAX_BATCH_PACKETS // 2
    path = mixed_capture(tmp_path / "many.pcap", count)

    result = assert_same(path, signatures)

    assert result.stats.packets > EXPIRE_EVERY_PACKETS
    assert len(result.detections) == 1


def test_expiry_same_both_ways(tmp_path: Path, signatures) -> None:
    count = EXPIRE_EVERY_PACKETS + 2000
    path = mixed_capture(tmp_path / "idle.pcap", count, gap_at=EXPIRE_EVERY_PACKETS - 5)

    assert_same(path, signatures)


@pytest.mark.parametrize("max_flows", [10, 1000, 5000])
def test_full_table_same_both_ways(tmp_path: Path, signatures, max_flows: int) -> None:
    path = mixed_capture(tmp_path / "full.pcap", 40_000)

    result = assert_same(path, signatures, max_flows)

    assert result.stats.flows_evicted > 0


# Scanning in worker processes.


def detector_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "detector", *arguments]


def summary_without_time(errors: bytes) -> str:
    return re.sub(r" in [0-9.]+ s$", "", errors.decode().strip(), flags=re.MULTILINE)


def test_jobs_output_same_as_one_job() -> None:
    runs = [
        subprocess.run(
            detector_command("scan", "--format", "jsonl", "--jobs", jobs, str(SAMPLES)),
            capture_output=True,
            timeout=600,
        )
        for jobs in ("1", "2")
    ]

    assert runs[1].returncode == runs[0].returncode
    assert runs[1].stdout == runs[0].stdout
    assert summary_without_time(runs[1].stderr) == summary_without_time(runs[0].stderr)
    assert runs[0].stdout.count(b"\n") > 10


def test_jobs_report_same_as_one_job(signatures) -> None:
    one_emitted: list[Detection] = []
    two_emitted: list[Detection] = []

    one = scan_paths([str(SAMPLES)], signatures, on_detection=one_emitted.append)
    two = scan_paths(
        [str(SAMPLES)], signatures, on_detection=two_emitted.append, jobs=2
    )

    assert two_emitted == one_emitted
    assert [result.source for result in two.files] == [r.source for r in one.files]
    assert two.detections == one.detections
    assert dataclasses.replace(two.stats, seconds=0.0) == dataclasses.replace(
        one.stats, seconds=0.0
    )
    assert not two.interrupted


def test_jobs_below_one_rejected(signatures) -> None:
    with pytest.raises(ValueError, match="invalid jobs 0"):
        scan_paths([str(SAMPLES)], signatures, jobs=0)


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def worker_pids(pid: int) -> list[int]:
    """The scan's worker processes: its children other than multiprocessing's
    resource tracker."""
    workers = []
    for child in children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"resource_tracker" not in command:
            workers.append(child)
    return workers


def blocked_reading_pipe(pid: int) -> bool:
    try:
        return "pipe" in Path(f"/proc/{pid}/wchan").read_text()
    except FileNotFoundError:
        return False


def wait_for(condition: Callable[[], bool], what: str) -> None:
    # A guard against a hang, not a timing check: the condition holds as soon
    # as the workers have read what they were given.
    for _ in range(1200):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux /proc")
def test_jobs_interrupt_judges_flows_and_stops_workers(tmp_path: Path) -> None:
    fifos = [tmp_path / "first.pcap", tmp_path / "second.pcap"]
    for fifo in fifos:
        os.mkfifo(fifo)
    scan = subprocess.Popen(
        detector_command("scan", "--format", "jsonl", "--jobs", "2", *map(str, fifos)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Opening a FIFO for writing waits for its reader, a worker.
    writers = [fifo.open("wb") for fifo in fifos]
    try:
        writers[0].write((SAMPLES / "monero-xmrig.pcap").read_bytes())
        writers[0].flush()
        writers[1].write((SAMPLES / "negative-dns.pcap").read_bytes())
        writers[1].flush()
        wait_for(lambda: len(worker_pids(scan.pid)) == 2, "two worker processes")
        workers = worker_pids(scan.pid)
        wait_for(
            lambda: all(blocked_reading_pipe(pid) for pid in workers),
            "the workers to read all they were sent",
        )

        # Only the parent gets the signal; it forwards it to the workers.
        scan.send_signal(signal.SIGINT)
        output, errors = scan.communicate(timeout=120)
    finally:
        for writer in writers:
            writer.close()

    assert scan.returncode == EXIT_INTERRUPTED, errors
    assert b"interrupted" in errors
    documents = [json.loads(line) for line in output.splitlines()]
    assert [document["mining"]["dialect"] for document in documents] == ["monero"]
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists()


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux /proc")
def test_jobs_worker_killed_reported(tmp_path: Path) -> None:
    fifos = [tmp_path / "first.pcap", tmp_path / "second.pcap"]
    for fifo in fifos:
        os.mkfifo(fifo)
    scan = subprocess.Popen(
        detector_command("scan", "--format", "jsonl", "--jobs", "2", *map(str, fifos)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    writers = [fifo.open("wb") for fifo in fifos]
    try:
        for writer in writers:
            writer.write((SAMPLES / "monero-xmrig.pcap").read_bytes())
            writer.flush()
        wait_for(lambda: len(worker_pids(scan.pid)) == 2, "two worker processes")
        victim = worker_pids(scan.pid)[0]
        wait_for(lambda: blocked_reading_pipe(victim), "the worker to read its file")

        os.kill(victim, signal.SIGKILL)
    finally:
        for writer in writers:
            writer.close()
    output, errors = scan.communicate(timeout=120)

    assert scan.returncode == EXIT_ERROR, errors
    assert b"exited with code -9 before it finished" in errors
    assert len(output.splitlines()) == 1


def test_jobs_read_standard_input_in_one_process() -> None:
    scan = subprocess.run(
        detector_command("scan", "--format", "jsonl", "--jobs", "2", "-"),
        input=(SAMPLES / "monero-xmrig.pcap").read_bytes(),
        capture_output=True,
        timeout=120,
    )

    assert scan.returncode == 1, scan.stderr
    assert json.loads(scan.stdout)["mining"]["dialect"] == "monero"
    assert b"--jobs 2 ignored" in scan.stderr
