"""The benchmark's results and the Markdown page written from them.

:func:`render` turns a :class:`BenchReport` into the text of
docs/benchmarks.md. It takes numbers and returns text, so it can be tested on
canned numbers without running any tool.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from detector.bench.background import BULK_BYTES
from detector.bench.generate import CLIENT_HOSTS, IPV6_SHARE, VLAN_SHARE

KIB = 1024
MIB = 1024 * 1024

# The targets the detector is measured against, on the mixed capture and on
# the SYN flood.
TARGET_NDPI_THROUGHPUT_RATIO = 1.0
TARGET_TSHARK_THROUGHPUT_RATIO = 10.0
TARGET_NDPI_MEMORY_RATIO = 1.0
TARGET_BYTES_PER_FLOW = 400
# Packages with a smaller share of the profile's self time are left out of
# the summary line.
MIN_PACKAGE_SHARE = 0.01


MIXED_DESCRIPTION = (
    f"Clients are {CLIENT_HOSTS} containers on 172.17.0.0/16 (and, for"
    f" {IPV6_SHARE:.0%} of DNS and TLS, 2001:db8:ac11::/64); {VLAN_SHARE:.0%} of"
    " background conversations and every tenth mining flow carry an 802.1Q"
    " tag. Background traffic: DNS lookups to 192.0.2.53, TLS 1.3 sessions"
    " (ClientHello with SNI, then records of random bytes) to 10.20.0.0/16,"
    " plain HTTP GETs to 192.0.2.0/24, and scp-style SSH copies of"
    f" {BULK_BYTES[0] // KIB} KiB to {BULK_BYTES[1] // MIB} MiB to 10.30.0.0/24."
    " Mining flows, spread through the file, each a whole TCP conversation with"
    " handshake and close: xmrig login/job/submit (monero), cgminer"
    " subscribe/authorize/notify/submit (stratum-v1) and Claymore"
    " eth_submitLogin/eth_getWork/work packages (ethproxy), to pools in"
    " 203.0.113.0/24, 198.51.100.0/24 and 192.0.2.0/24. Every checksum is"
    " valid, and no 5-tuple is used by two flows."
)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The rounds of one tool on one capture.

    ``wall_seconds`` and ``max_rss_kib`` hold one value per round, as
    ``/usr/bin/time -v`` reported them.
    """

    tool: str
    command: str
    packets: int
    wall_seconds: tuple[float, ...]
    max_rss_kib: tuple[int, ...]

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.wall_seconds)

    @property
    def packets_per_second(self) -> float:
        """Median over rounds of packets divided by wall-clock seconds."""
        rates = [self.packets / max(seconds, 1e-9) for seconds in self.wall_seconds]
        return statistics.median(rates)

    @property
    def peak_rss_kib(self) -> int:
        """The largest maximum resident set size of any round."""
        return max(self.max_rss_kib)


@dataclass(frozen=True, slots=True)
class Detections:
    """Mining flows found by the detector and ndpiReader in the mixed capture."""

    expected: int
    detector_lines: int
    detector_matched: int
    ndpi_mining_flows: int
    ndpi_matched: int

    @property
    def detector_unexpected(self) -> int:
        return self.detector_lines - self.detector_matched


@dataclass(frozen=True, slots=True)
class CaptureInfo:
    """The make-up of a generated capture."""

    name: str
    packets: int
    frame_bytes: int
    packets_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def mean_frame_bytes(self) -> float:
        return self.frame_bytes / self.packets if self.packets else 0.0


@dataclass(frozen=True, slots=True)
class FloodResult:
    """The SYN flood: the detector, ndpiReader, and the detector's baseline
    memory on a capture with no packets."""

    capture: CaptureInfo
    max_flows: int
    flows_tracked: int
    detector: ToolResult
    ndpi: ToolResult
    baseline: ToolResult

    @property
    def bytes_per_flow(self) -> float:
        grown = (self.detector.peak_rss_kib - self.baseline.peak_rss_kib) * KIB
        return grown / self.flows_tracked if self.flows_tracked else 0.0


@dataclass(frozen=True, slots=True)
class ProfileEntry:
    """One function's line of a profile."""

    function: str
    calls: int
    self_seconds: float
    cumulative_seconds: float
    package: str = ""


@dataclass(frozen=True, slots=True)
class Profile:
    """The top functions of a cProfile run of the detector."""

    command: str
    wall_seconds: float
    by_cumulative: tuple[ProfileEntry, ...]
    by_self: tuple[ProfileEntry, ...]
    # Each package's share of all self time, largest first.
    self_share_by_package: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Machine:
    """The machine the benchmark ran on."""

    cpu: str
    cores: int
    memory_gib: float
    os: str
    python: str
    tool_versions: dict[str, str]
    # The 1-minute load average when the run started: other work on the
    # machine slows every tool alike, but shows here.
    load_average: float = 0.0


@dataclass(frozen=True, slots=True)
class BenchReport:
    """Everything the results page shows."""

    date: str
    machine: Machine
    rounds: int
    mixed: CaptureInfo
    mixed_tools: tuple[ToolResult, ...]
    detections: Detections
    flood: FloodResult
    profile: Profile | None
    generate_command: str
    run_command: str

    def tool(self, name: str) -> ToolResult:
        """Return the mixed-capture result of the tool called ``name``.

        Raises:
            KeyError: no tool of that name ran.
        """
        for result in self.mixed_tools:
            if result.tool == name:
                return result
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class Target:
    """One target, what was measured, and whether it was met."""

    name: str
    goal: str
    measured: str
    met: bool
    margin: str


def evaluate_targets(report: BenchReport) -> list[Target]:
    """Compare the measured figures with the targets."""
    detector = report.tool("detector")
    ndpi = report.tool("ndpiReader")
    tshark = report.tool("tshark")
    targets = []

    ratio = detector.packets_per_second / ndpi.packets_per_second
    targets.append(
        _at_least(
            "throughput vs ndpiReader (mixed)",
            f">= {TARGET_NDPI_THROUGHPUT_RATIO:g}x ndpiReader",
            ratio,
            TARGET_NDPI_THROUGHPUT_RATIO,
        )
    )
    ratio = detector.packets_per_second / tshark.packets_per_second
    targets.append(
        _at_least(
            "throughput vs tshark (mixed)",
            f">= {TARGET_TSHARK_THROUGHPUT_RATIO:g}x tshark",
            ratio,
            TARGET_TSHARK_THROUGHPUT_RATIO,
        )
    )
    ratio = detector.peak_rss_kib / ndpi.peak_rss_kib
    sizes = f"{_mib(detector.peak_rss_kib)} vs {_mib(ndpi.peak_rss_kib)}"
    met = ratio <= TARGET_NDPI_MEMORY_RATIO
    targets.append(
        Target(
            "peak memory vs ndpiReader (mixed)",
            f"<= {TARGET_NDPI_MEMORY_RATIO:g}x ndpiReader",
            f"{ratio:.2f}x ({sizes})",
            met,
            "met" if met else f"missed: needs {ratio:.1f}x less memory",
        )
    )
    per_flow = report.flood.bytes_per_flow
    met = per_flow <= TARGET_BYTES_PER_FLOW
    targets.append(
        Target(
            "memory per tracked flow (SYN flood)",
            f"<= {TARGET_BYTES_PER_FLOW} bytes",
            f"{per_flow:,.0f} bytes",
            met,
            "met"
            if met
            else f"missed by {per_flow - TARGET_BYTES_PER_FLOW:,.0f} bytes"
            f" ({per_flow / TARGET_BYTES_PER_FLOW:.1f}x the target)",
        )
    )
    return targets


def _at_least(name: str, goal: str, ratio: float, target: float) -> Target:
    met = ratio >= target
    margin = "met" if met else f"missed: needs {target / ratio:.1f}x the throughput"
    return Target(name, goal, f"{ratio:.2f}x", met, margin)


def _mib(kib: int) -> str:
    return f"{kib * KIB / MIB:,.0f} MiB"


def _rate(packets_per_second: float) -> str:
    return f"{packets_per_second / 1000:,.1f} k"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _tool_rows(tools: Sequence[ToolResult], detector: ToolResult) -> list[list[str]]:
    rows = []
    for tool in tools:
        ratio = detector.packets_per_second / tool.packets_per_second
        rounds = ", ".join(f"{seconds:.2f}" for seconds in tool.wall_seconds)
        rows.append(
            [
                tool.tool,
                _rate(tool.packets_per_second),
                f"{tool.median_seconds:.2f}",
                rounds,
                _mib(tool.peak_rss_kib),
                "1" if tool is detector else f"{ratio:.2f}",
            ]
        )
    return rows


def render(report: BenchReport) -> str:
    """Return the results page as Markdown."""
    lines = [
        "# Benchmarks",
        "",
        "The detector (`detector scan`) timed against nDPI's ndpiReader and"
        " Wireshark's tshark on the same generated captures, in one run: each"
        " round runs every tool once, one after another. Written by `make bench`"
        " (`python -m detector.bench`); rerun it to refresh this page.",
        "",
        f"Date: {report.date}. Rounds: {report.rounds}.",
        "",
    ]
    lines += _machine_section(report.machine)
    lines += _targets_section(report)
    lines += _commands_section(report)
    lines += _mixed_section(report, report.tool("detector"))
    lines += _flood_section(report.flood)
    lines += _profile_section(report.profile)
    return "\n".join(lines) + "\n"


def _machine_section(machine: Machine) -> list[str]:
    lines = ["## Machine", ""]
    lines += _table(
        ["what", "value"],
        [
            ["CPU", machine.cpu],
            ["cores", str(machine.cores)],
            ["memory", f"{machine.memory_gib:.1f} GiB"],
            ["OS", machine.os],
            ["Python", machine.python],
            ["load average at start", f"{machine.load_average:.2f}"],
            *([name, version] for name, version in machine.tool_versions.items()),
        ],
    )
    return lines + [""]


def _targets_section(report: BenchReport) -> list[str]:
    lines = [
        "## Targets",
        "",
        "Throughput is packets per second of wall-clock time, process start to"
        " exit, median over rounds. Memory is the peak resident set size that"
        " `/usr/bin/time -v` reports, the largest of any round.",
        "",
    ]
    rows = [
        [target.name, target.goal, target.measured, target.margin]
        for target in evaluate_targets(report)
    ]
    lines += _table(["target", "goal", "measured", "result"], rows)
    return lines + [""]


def _commands_section(report: BenchReport) -> list[str]:
    flood = report.flood
    commands = [report.generate_command, report.run_command]
    commands += [tool.command for tool in report.mixed_tools]
    commands += [flood.detector.command, flood.ndpi.command, flood.baseline.command]
    return ["## Commands", "", "```sh", *commands, "```", ""]


def _mixed_section(report: BenchReport, detector: ToolResult) -> list[str]:
    mixed = report.mixed
    kinds = ", ".join(
        f"{kind} {count / mixed.packets:.1%}"
        for kind, count in sorted(
            mixed.packets_by_kind.items(), key=lambda item: -item[1]
        )
    )
    lines = [
        f"## Mixed traffic: {mixed.name}",
        "",
        f"{mixed.packets:,} packets, {mixed.frame_bytes / MIB:,.0f} MiB of frames,"
        f" {mixed.mean_frame_bytes:.0f} bytes per frame on average. Packets by"
        f" kind of conversation: {kinds}.",
        "",
        MIXED_DESCRIPTION,
        "",
    ]
    lines += _table(
        [
            "tool",
            "packets/s",
            "median s",
            "seconds per round",
            "peak RSS",
            "detector / tool",
        ],
        _tool_rows(report.mixed_tools, detector),
    )
    found = report.detections
    lines += [
        "",
        f"The capture holds {found.expected} mining flows. The detector wrote"
        f" {found.detector_lines} detections: {found.detector_matched} of the"
        f" expected flows with the expected dialect, and"
        f" {found.detector_unexpected} others. ndpiReader labelled"
        f" {found.ndpi_mining_flows} flows Mining (nDPI protocol 42), of which"
        f" {found.ndpi_matched} are expected mining flows.",
        "",
    ]
    return lines


def _flood_section(flood: FloodResult) -> list[str]:
    lines = [
        f"## SYN flood: {flood.capture.name}",
        "",
        f"{flood.capture.packets:,} TCP SYNs, each from its own source address."
        f" The detector runs with `--max-flows {flood.max_flows}` so that every"
        " flow stays in its flow table (the default is 262144); it tracked"
        f" {flood.flows_tracked:,} flows.",
        "",
    ]
    lines += _table(
        ["tool", "packets/s", "median s", "peak RSS"],
        [
            [
                tool.tool,
                _rate(tool.packets_per_second),
                f"{tool.median_seconds:.2f}",
                _mib(tool.peak_rss_kib),
            ]
            for tool in (flood.detector, flood.ndpi)
        ],
    )
    lines += [
        "",
        "Memory per tracked flow: (peak RSS on the flood"
        f" {_mib(flood.detector.peak_rss_kib)} - peak RSS on a capture with no"
        f" packets {_mib(flood.baseline.peak_rss_kib)}) /"
        f" {flood.flows_tracked:,} flows = {flood.bytes_per_flow:,.0f} bytes.",
        "",
    ]
    return lines


def _profile_section(profile: Profile | None) -> list[str]:
    lines = ["## What limits it", ""]
    if profile is None:
        return lines + ["No profile was taken in this run.", ""]
    lines += [
        f"cProfile of `{profile.command}`: {profile.wall_seconds:.1f} s under the"
        " profiler. cProfile adds a fixed cost to every Python call, so functions"
        " called once per packet look heavier than they are; the order is"
        " still a fair guide.",
        "",
    ]
    if profile.self_share_by_package:
        shares = ", ".join(
            f"{name} {share:.0%}"
            for name, share in profile.self_share_by_package
            if share >= MIN_PACKAGE_SHARE
        )
        lines += [f"Self time by package: {shares}.", ""]
    lines += [
        "Top functions by cumulative time (the function and what it calls):",
        "",
    ]
    lines += _profile_table(profile.by_cumulative)
    lines += ["", "Top functions by self time (the function's own code):", ""]
    lines += _profile_table(profile.by_self)
    lines.append("")
    return lines


def _profile_table(entries: Sequence[ProfileEntry]) -> list[str]:
    return _table(
        ["function", "calls", "self s", "cumulative s"],
        [
            [
                f"`{entry.function}`",
                f"{entry.calls:,}",
                f"{entry.self_seconds:.2f}",
                f"{entry.cumulative_seconds:.2f}",
            ]
            for entry in entries
        ],
    )
