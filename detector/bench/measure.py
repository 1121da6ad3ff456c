"""Run the detector, ndpiReader and tshark under ``/usr/bin/time -v``.

Each round runs every tool once on the mixed capture, one after another, so
a change in the machine's load during the run hits every tool alike. The
SYN flood runs the detector, ndpiReader and the detector on a capture with no
packets, whose peak memory is the baseline for the memory per flow.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import platform
import pstats
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from detector.bench.generate import (
    EMPTY_NAME,
    EXPECTED_NAME,
    FLOOD_NAME,
    MIXED_NAME,
)
from detector.bench.report import (
    BenchReport,
    CaptureInfo,
    Detections,
    FloodResult,
    Machine,
    Profile,
    ProfileEntry,
    ToolResult,
)
from detector.errors import DetectorError

log = logging.getLogger(__name__)

GNU_TIME = "/usr/bin/time"
# nDPI's protocol id for cryptocurrency mining (ndpiReader -h lists it).
NDPI_MINING_PROTOCOL = "42"
# The flood runs with a flow table large enough for every flow of a
# 1-million-flow flood, so none is evicted and the memory is per flow.
FLOOD_MAX_FLOWS = 1_000_000
# A tool that takes longer than this on a million packets has hung.
TOOL_TIMEOUT_SECONDS = 3600
# Functions listed in each table of the profile.
PROFILE_TOP = 15
# Modules whose functions contain the whole scan, left out of the cumulative
# table of the profile.
WRAPPER_MODULES = ("detector.cli", "detector.__main__")
# detector scan exits 0 when no mining was found and 1 when some was.
DETECTOR_OK_EXITS = (0, 1)

_WALL_CLOCK = re.compile(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)")
_MAX_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
_EVICTED = re.compile(r"(\d+) flows? evicted")


class BenchError(DetectorError):
    """A benchmark step failed: a missing tool or capture, or a tool that
    exited with an error or printed what could not be read."""


@dataclass(frozen=True, slots=True)
class TimedRun:
    """One run of one command under ``/usr/bin/time -v``."""

    wall_seconds: float
    max_rss_kib: int
    exit_code: int


def parse_time_output(text: str) -> tuple[float, int]:
    """Return wall-clock seconds and peak RSS in KiB from ``time -v`` output.

    Raises:
        BenchError: either line is missing.
    """
    wall = _WALL_CLOCK.search(text)
    rss = _MAX_RSS.search(text)
    if wall is None or rss is None:
        raise BenchError(f"no wall-clock time or peak RSS in time output: {text!r}")
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return seconds, int(rss.group(1))


def run_timed(
    command: Sequence[str],
    stdout: Path,
    stderr: Path,
    ok_exits: Sequence[int] = (0,),
) -> TimedRun:
    """Run ``command`` under ``/usr/bin/time -v``, its output to files.

    Raises:
        BenchError: the command timed out or exited with a code not in
            ``ok_exits``.
    """
    time_file = stderr.with_suffix(".time")
    full = [GNU_TIME, "-v", "-o", str(time_file), *command]
    log.info("running %s", shlex.join(command))
    with stdout.open("wb") as out, stderr.open("wb") as err:
        try:
            completed = subprocess.run(
                full, stdout=out, stderr=err, timeout=TOOL_TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired as exc:
            raise BenchError(
                f"{shlex.join(command)} timed out after {TOOL_TIMEOUT_SECONDS} s"
            ) from exc
    if completed.returncode not in ok_exits:
        tail = stderr.read_text(encoding="utf-8", errors="replace")[-500:]
        raise BenchError(
            f"{shlex.join(command)} exited with {completed.returncode}: {tail}"
        )
    seconds, rss = parse_time_output(time_file.read_text(encoding="utf-8"))
    return TimedRun(seconds, rss, completed.returncode)


def _endpoint(ip: str, port: object) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def count_detector_matches(
    jsonl: str, expected: set[tuple[str, str, str]]
) -> tuple[int, int]:
    """Return the detections in ``jsonl`` and how many are expected flows.

    A detection matches when its client, server and dialect are those of an
    expected mining flow.

    Raises:
        BenchError: a line is not a JSON object with the ECS fields.
    """
    lines = 0
    matched = 0
    for number, line in enumerate(jsonl.splitlines(), 1):
        if not line.strip():
            continue
        lines += 1
        try:
            document = json.loads(line)
            key = (
                _endpoint(document["source"]["ip"], document["source"]["port"]),
                _endpoint(
                    document["destination"]["ip"], document["destination"]["port"]
                ),
                document["mining"]["dialect"],
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(
                f"detector output line {number} is invalid: {exc}"
            ) from exc
        if key in expected:
            matched += 1
    return lines, matched


def count_ndpi_mining(csv_text: str, expected: set[tuple[str, str]]) -> tuple[int, int]:
    """Return the flows ndpiReader's CSV labels Mining, and how many of them
    are expected mining flows (``expected`` contains client, server pairs).

    nDPI writes a flow's protocol as ``app`` or ``master.app`` ids, so a
    flow is Mining when either id is 42.

    Raises:
        BenchError: the CSV has no ``ndpi_proto_num`` column.
    """
    lines = csv_text.splitlines()
    if lines and lines[0].startswith("#"):
        lines[0] = lines[0][1:]
    reader = csv.DictReader(lines)
    if reader.fieldnames is None or "ndpi_proto_num" not in reader.fieldnames:
        raise BenchError("ndpiReader's CSV has no ndpi_proto_num column")
    mining = 0
    matched = 0
    for row in reader:
        if NDPI_MINING_PROTOCOL not in row["ndpi_proto_num"].split("."):
            continue
        mining += 1
        source = _endpoint(row["src_ip"], row["src_port"])
        destination = _endpoint(row["dst_ip"], row["dst_port"])
        if (source, destination) in expected or (destination, source) in expected:
            matched += 1
    return mining, matched


def flows_evicted(summary: str) -> int:
    """Return the evicted flows a ``detector scan`` summary line reports."""
    found = _EVICTED.search(summary)
    return int(found.group(1)) if found else 0


class Benchmark:
    """The benchmark run over the captures in ``workdir``.

    ``detector`` is the path of the detector's console script; the default is
    the one beside the running interpreter.
    """

    def __init__(self, workdir: Path, rounds: int, detector: str | None = None) -> None:
        if rounds < 1:
            raise ValueError(f"rounds must be at least 1, not {rounds}")
        self.workdir = workdir
        self.rounds = rounds
        self.detector = detector or str(Path(sys.executable).parent / "detector")
        self.results = workdir / "results"

    def check(self) -> None:
        """Check that the captures and the tools are there.

        Raises:
            BenchError: a capture or a tool is missing.
        """
        for name in (MIXED_NAME, EXPECTED_NAME, FLOOD_NAME, EMPTY_NAME):
            if not (self.workdir / name).is_file():
                raise BenchError(
                    f"{self.workdir / name} not found; run"
                    f" `python -m detector.bench generate {self.workdir}` first"
                )
        missing = [
            tool
            for tool in (GNU_TIME, "ndpiReader", "tshark", self.detector)
            if shutil.which(tool) is None
        ]
        if missing:
            raise BenchError(
                "not found: " + ", ".join(missing) + "; `make bench-tools` installs"
                " tshark, ndpiReader and /usr/bin/time"
            )

    def run(self, profile: bool = True) -> BenchReport:
        """Run every round and the flood, then profile the detector.

        Raises:
            BenchError: a capture or tool is missing, or a tool failed.
        """
        self.check()
        self.results.mkdir(exist_ok=True)
        machine = describe_machine(self.detector)
        expected = json.loads(
            (self.workdir / EXPECTED_NAME).read_text(encoding="utf-8")
        )
        mixed = CaptureInfo(
            name=MIXED_NAME,
            packets=expected["packets"],
            frame_bytes=expected["frame_bytes"],
            packets_by_kind=expected["packets_by_kind"],
        )
        mixed_tools, detections = self._mixed(mixed, expected["mining_flows"])
        flood = self._flood()
        return BenchReport(
            date=datetime.now(UTC).strftime("%Y-%m-%d"),
            machine=machine,
            rounds=self.rounds,
            mixed=mixed,
            mixed_tools=mixed_tools,
            detections=detections,
            flood=flood,
            profile=self._profile() if profile else None,
            generate_command="python -m detector.bench generate $BENCH_DIR",
            run_command=f"python -m detector.bench run --workdir $BENCH_DIR"
            f" --rounds {self.rounds}",
        )

    def _commands(self, capture: str) -> dict[str, list[str]]:
        path = str(self.workdir / capture)
        stem = capture.removesuffix(".pcap")
        return {
            "detector": [self.detector, "scan", "--format", "jsonl", "--quiet", path],
            "ndpiReader": [
                "ndpiReader",
                "-q",
                "-i",
                path,
                "-C",
                str(self.results / f"ndpi-{stem}.csv"),
            ],
            # -n: no name look-ups. frame.protocols lists every layer tshark
            # dissected, so each packet is dissected to its top protocol.
            "tshark": [
                "tshark",
                "-n",
                "-r",
                path,
                "-T",
                "fields",
                "-e",
                "frame.number",
                "-e",
                "frame.protocols",
            ],
        }

    def _mixed(
        self, capture: CaptureInfo, mining_flows: list[dict[str, str]]
    ) -> tuple[tuple[ToolResult, ...], Detections]:
        commands = self._commands(MIXED_NAME)
        runs: dict[str, list[TimedRun]] = {tool: [] for tool in commands}
        for round_number in range(1, self.rounds + 1):
            for tool, command in commands.items():
                stdout = (
                    self.results / "detector-mixed.jsonl"
                    if tool == "detector"
                    else Path(os.devnull)
                )
                stderr = self.results / f"{tool}-mixed-{round_number}.err"
                ok = DETECTOR_OK_EXITS if tool == "detector" else (0,)
                runs[tool].append(run_timed(command, stdout, stderr, ok))
        tools = tuple(
            self._tool_result(tool, commands[tool], capture.packets, runs[tool])
            for tool in commands
        )
        expected = {
            (flow["client"], flow["server"], flow["dialect"]) for flow in mining_flows
        }
        lines, matched = count_detector_matches(
            (self.results / "detector-mixed.jsonl").read_text(encoding="utf-8"),
            expected,
        )
        ndpi_csv = self.results / "ndpi-mixed-1m.csv"
        ndpi_flows, ndpi_matched = count_ndpi_mining(
            ndpi_csv.read_text(encoding="utf-8", errors="replace"),
            {(client, server) for client, server, _ in expected},
        )
        detections = Detections(
            expected=len(expected),
            detector_lines=lines,
            detector_matched=matched,
            ndpi_mining_flows=ndpi_flows,
            ndpi_matched=ndpi_matched,
        )
        return tools, detections

    def _flood(self) -> FloodResult:
        flood_path = str(self.workdir / FLOOD_NAME)
        flows = pcap_packet_count(self.workdir / FLOOD_NAME)
        # Without --quiet the detector's summary on stderr reports evictions.
        detector = [
            self.detector,
            "scan",
            "--format",
            "jsonl",
            "--max-flows",
            str(FLOOD_MAX_FLOWS),
            flood_path,
        ]
        ndpi = self._commands(FLOOD_NAME)["ndpiReader"]
        baseline = self._commands(EMPTY_NAME)["detector"]
        runs: dict[str, list[TimedRun]] = {"detector": [], "ndpi": [], "baseline": []}
        evicted = 0
        for round_number in range(1, self.rounds + 1):
            stderr = self.results / f"detector-flood-{round_number}.err"
            runs["detector"].append(
                run_timed(detector, Path(os.devnull), stderr, DETECTOR_OK_EXITS)
            )
            evicted = max(evicted, flows_evicted(stderr.read_text(encoding="utf-8")))
            runs["ndpi"].append(
                run_timed(
                    ndpi,
                    Path(os.devnull),
                    self.results / f"ndpiReader-flood-{round_number}.err",
                )
            )
            runs["baseline"].append(
                run_timed(
                    baseline,
                    Path(os.devnull),
                    self.results / f"detector-empty-{round_number}.err",
                    DETECTOR_OK_EXITS,
                )
            )
        return FloodResult(
            capture=CaptureInfo(
                name=FLOOD_NAME,
                packets=flows,
                frame_bytes=(self.workdir / FLOOD_NAME).stat().st_size,
            ),
            max_flows=FLOOD_MAX_FLOWS,
            flows_tracked=min(flows, FLOOD_MAX_FLOWS) - evicted,
            detector=self._tool_result("detector", detector, flows, runs["detector"]),
            ndpi=self._tool_result("ndpiReader", ndpi, flows, runs["ndpi"]),
            baseline=self._tool_result(
                "detector (no packets)", baseline, 0, runs["baseline"]
            ),
        )

    def _tool_result(
        self, tool: str, command: list[str], packets: int, runs: list[TimedRun]
    ) -> ToolResult:
        return ToolResult(
            tool=tool,
            command=self._display(command),
            packets=packets,
            wall_seconds=tuple(run.wall_seconds for run in runs),
            max_rss_kib=tuple(run.max_rss_kib for run in runs),
        )

    def _display(self, command: Sequence[str]) -> str:
        # Paths that differ between machines are shown as they are named in
        # the Makefile: $BENCH_DIR and the virtual environment's .venv.
        text = shlex.join(command)
        text = text.replace(str(self.results), "$BENCH_DIR/results")
        text = text.replace(str(self.workdir), "$BENCH_DIR")
        return text.replace(self.detector, "detector")

    def _profile(self) -> Profile:
        output = self.results / "detector-mixed.prof"
        path = str(self.workdir / MIXED_NAME)
        command = [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            str(output),
            "-m",
            "detector",
            "scan",
            "--format",
            "jsonl",
            "--quiet",
            path,
        ]
        started = time.perf_counter()
        log.info("profiling %s", shlex.join(command))
        with open(os.devnull, "wb") as sink:
            completed = subprocess.run(
                command,
                stdout=sink,
                stderr=subprocess.PIPE,
                timeout=TOOL_TIMEOUT_SECONDS,
            )
        wall = time.perf_counter() - started
        if completed.returncode not in DETECTOR_OK_EXITS or not output.is_file():
            raise BenchError(
                f"profiling failed with exit code {completed.returncode}:"
                f" {completed.stderr.decode(errors='replace')[-500:]}"
            )
        display = f"python -m cProfile -m detector scan --format jsonl --quiet {path}"
        return summarize_profile(
            read_profile(output),
            display.replace(str(self.workdir), "$BENCH_DIR"),
            wall,
        )


def summarize_profile(
    entries: Sequence[ProfileEntry], command: str, wall_seconds: float
) -> Profile:
    """Pick the top functions by cumulative and by self time, and add up each
    package's share of the self time."""
    # The command line and the libraries under it wrap the whole scan, so
    # the cumulative table lists only the pipeline's own functions.
    own = [
        entry
        for entry in entries
        if entry.package.startswith("detector.")
        and entry.package not in WRAPPER_MODULES
    ]
    by_cumulative = sorted(own, key=lambda entry: -entry.cumulative_seconds)
    by_self = sorted(entries, key=lambda entry: -entry.self_seconds)

    total_self = sum(entry.self_seconds for entry in entries) or 1.0
    packages: dict[str, float] = {}
    for entry in entries:
        packages[entry.package] = packages.get(entry.package, 0.0) + entry.self_seconds
    shares = sorted(
        ((name, seconds / total_self) for name, seconds in packages.items()),
        key=lambda item: -item[1],
    )
    return Profile(
        command=command,
        wall_seconds=wall_seconds,
        by_cumulative=tuple(by_cumulative[:PROFILE_TOP]),
        by_self=tuple(by_self[:PROFILE_TOP]),
        self_share_by_package=tuple(shares),
    )


def read_profile(path: Path) -> list[ProfileEntry]:
    """Return one entry per function of a cProfile output file."""
    stats = pstats.Stats(str(path))
    entries = []
    # pstats keeps (file, line, function) -> (primitive calls, calls, self
    # time, cumulative time, callers); it exposes the dict only as an
    # attribute.
    for (filename, line, function), values in stats.stats.items():  # type: ignore[attr-defined]
        _, calls, self_seconds, cumulative, _ = values
        entries.append(
            ProfileEntry(
                function=_function_label(filename, line, function),
                calls=calls,
                self_seconds=self_seconds,
                cumulative_seconds=cumulative,
                package=package_of(filename),
            )
        )
    return entries


def package_of(filename: str) -> str:
    # The part of the program a function belongs to: a detector package, a
    # third-party package, the standard library, or a built-in.
    if filename == "~":
        return "built-ins"
    parts = Path(filename).parts
    if "detector" in parts:
        index = len(parts) - 1 - parts[::-1].index("detector")
        rest = parts[index + 1 :]
        if len(rest) > 1:
            return f"detector.{rest[0]}"
        return "detector." + Path(rest[0]).stem if rest else "detector"
    if "site-packages" in parts:
        index = parts.index("site-packages")
        if index + 1 < len(parts):
            return Path(parts[index + 1]).stem
    return "standard library"


def _function_label(filename: str, line: int, function: str) -> str:
    if filename == "~":
        return function  # a built-in, such as {method 'decode' of 'bytes'}
    marker = "/detector/"
    if marker in filename:
        module = "detector/" + filename.rsplit(marker, 1)[1]
    else:
        # The folder too, since many modules are called __init__.py.
        module = "/".join(Path(filename).parts[-2:])
    return f"{module}:{line} {function}"


def pcap_packet_count(path: Path) -> int:
    # Each classic pcap record is a 16-byte header and the frame, whose
    # captured length is at byte 8 of the header.
    count = 0
    size = path.stat().st_size
    with path.open("rb") as stream:
        stream.seek(24)
        while header := stream.read(16):
            if len(header) < 16:
                raise BenchError(f"{path} ends inside a record header")
            end = stream.seek(int.from_bytes(header[8:12], "little"), os.SEEK_CUR)
            if end > size:
                raise BenchError(f"{path} ends inside record {count + 1}")
            count += 1
    return count


def describe_machine(detector: str) -> Machine:
    """Describe the CPU, memory, OS, Python and the tools' versions."""
    return Machine(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 0,
        memory_gib=_memory_gib(),
        os=_os_name(),
        python=platform.python_version(),
        load_average=os.getloadavg()[0],
        tool_versions={
            "detector": _first_line([detector, "--version"]),
            "ndpiReader": _ndpi_version(),
            "tshark": _first_line(["tshark", "--version"]),
        },
    )


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        text = Path("/proc/meminfo").read_text(encoding="utf-8")
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / (1024 * 1024)
    return 0.0


def _os_name() -> str:
    try:
        text = Path("/etc/os-release").read_text(encoding="utf-8")
    except OSError:
        return platform.platform()
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            name = line.split("=", 1)[1].strip().strip('"')
            return f"{name}, Linux {platform.release()}"
    return platform.platform()


def _run_text(command: list[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (completed.stdout + completed.stderr).decode("utf-8", errors="replace")


def _first_line(command: list[str]) -> str:
    text = _run_text(command).strip()
    return text.splitlines()[0] if text else "unknown"


def _ndpi_version() -> str:
    # ndpiReader has no version option; its help text starts with
    # "Welcome to nDPI <version>".
    found = re.search(r"nDPI (\S+)", _run_text(["ndpiReader", "-h"]))
    return f"nDPI {found.group(1)}" if found else "unknown"
