"""The results page, written from canned numbers."""

from __future__ import annotations

import dataclasses

import pytest

from detector.bench.report import (
    BenchReport,
    CaptureInfo,
    Detections,
    FloodResult,
    Machine,
    Profile,
    ProfileEntry,
    ToolResult,
    evaluate_targets,
    render,
)

MIXED_PACKETS = 1_000_000


def tool(name: str, seconds: tuple[float, ...], rss_kib: tuple[int, ...]) -> ToolResult:
    return ToolResult(
        tool=name,
        command=f"{name} $BENCH_DIR/mixed-1m.pcap",
        packets=MIXED_PACKETS,
        wall_seconds=seconds,
        max_rss_kib=rss_kib,
    )


def make_report(
    detector_seconds: tuple[float, ...] = (20.0, 10.0, 25.0),
    detector_rss: int = 300 * 1024,
    flood_rss: int = 1_100_000,
) -> BenchReport:
    flood_packets = 1_000_000
    return BenchReport(
        date="2026-01-02",
        machine=Machine(
            cpu="Example CPU",
            cores=2,
            memory_gib=23.5,
            os="Debian GNU/Linux 12 (bookworm)",
            python="3.11.7",
            tool_versions={"ndpiReader": "nDPI 4.2.0", "tshark": "TShark 4.0.17"},
        ),
        rounds=3,
        mixed=CaptureInfo(
            name="mixed-1m.pcap",
            packets=MIXED_PACKETS,
            frame_bytes=570_000_000,
            packets_by_kind={"tls": 400_000, "dns": 250_000, "mining": 10_000},
        ),
        mixed_tools=(
            tool("detector", detector_seconds, (detector_rss,) * 3),
            tool("ndpiReader", (5.0, 5.0, 6.0), (400 * 1024,) * 3),
            tool("tshark", (40.0, 50.0, 45.0), (1200 * 1024,) * 3),
        ),
        detections=Detections(
            expected=300,
            detector_lines=302,
            detector_matched=299,
            ndpi_mining_flows=300,
            ndpi_matched=300,
        ),
        flood=FloodResult(
            capture=CaptureInfo("synflood-1m.pcap", flood_packets, 70_000_000),
            max_flows=1_000_000,
            flows_tracked=flood_packets,
            detector=ToolResult(
                "detector", "detector flood", flood_packets, (25.0,), (flood_rss,)
            ),
            ndpi=ToolResult(
                "ndpiReader", "ndpiReader flood", flood_packets, (4.0,), (300_000,)
            ),
            baseline=ToolResult(
                "detector (no packets)", "detector empty", 0, (0.5,), (100_000,)
            ),
        ),
        profile=Profile(
            command="python -m cProfile -m detector scan mixed-1m.pcap",
            wall_seconds=40.0,
            by_cumulative=(
                ProfileEntry("detector/scan.py:129 run", 1, 1.5, 38.0, "detector.scan"),
            ),
            by_self=(
                ProfileEntry(
                    "detector/flows/table.py:211 lookup",
                    1_000_000,
                    3.25,
                    5.0,
                    "detector.flows",
                ),
            ),
            self_share_by_package=(("detector.flows", 0.4), ("yaml", 0.001)),
        ),
        generate_command="python -m detector.bench generate $BENCH_DIR",
        run_command="python -m detector.bench run --workdir $BENCH_DIR --rounds 3",
    )


def test_throughput_is_median_of_rounds() -> None:
    detector = make_report().tool("detector")
    # 1 M packets in 20 s, 10 s and 25 s: rates 50 k, 100 k and 40 k.
    assert detector.packets_per_second == pytest.approx(50_000)
    assert detector.median_seconds == 20.0
    assert detector.peak_rss_kib == 300 * 1024


def test_bytes_per_flow() -> None:
    flood = make_report(flood_rss=1_100_000).flood
    # (1,100,000 - 100,000) KiB over 1,000,000 flows.
    assert flood.bytes_per_flow == pytest.approx(1024.0)


def test_targets_missed() -> None:
    targets = {target.name: target for target in evaluate_targets(make_report())}
    ndpi = targets["throughput vs ndpiReader (mixed)"]
    assert not ndpi.met
    # 50 k/s against ndpiReader's 200 k/s.
    assert ndpi.measured == "0.25x"
    assert ndpi.margin == "missed: needs 4.0x the throughput"
    tshark = targets["throughput vs tshark (mixed)"]
    # 50 k/s against tshark's median of 22.2 k/s.
    assert tshark.measured == "2.25x"
    assert not tshark.met
    memory = targets["peak memory vs ndpiReader (mixed)"]
    assert memory.met
    assert memory.measured == "0.75x (300 MiB vs 400 MiB)"
    flood = targets["memory per tracked flow (SYN flood)"]
    assert not flood.met
    assert flood.margin == "missed by 624 bytes (2.6x the target)"


def test_targets_met() -> None:
    report = make_report(
        detector_seconds=(0.4, 0.4, 0.4),
        detector_rss=100 * 1024,
        flood_rss=400_000,
    )
    targets = evaluate_targets(report)
    assert all(target.met for target in targets)
    assert {target.margin for target in targets} == {"met"}


def test_unknown_tool_raises_key_error() -> None:
    with pytest.raises(KeyError):
        make_report().tool("zeek")


def test_page_contents() -> None:
    page = render(make_report())
    assert page.startswith("# Benchmarks\n")
    assert "Date: 2026-01-02. Rounds: 3." in page
    assert "| CPU | Example CPU |" in page
    assert "| ndpiReader | nDPI 4.2.0 |" in page
    assert "| detector | 50.0 k | 20.00 | 20.00, 10.00, 25.00 | 300 MiB | 1 |" in page
    assert "| ndpiReader | 200.0 k | 5.00 | 5.00, 5.00, 6.00 | 400 MiB | 0.25 |" in page
    assert "570 bytes per frame on average" in page
    assert "tls 40.0%, dns 25.0%, mining 1.0%" in page
    assert "The detector wrote 302 detections: 299 of the expected" in page
    assert "and 3 others" in page
    assert "ndpiReader labelled 300 flows Mining" in page
    assert "`--max-flows 1000000`" in page
    assert "= 1,024 bytes." in page
    assert "python -m detector.bench run --workdir $BENCH_DIR --rounds 3" in page
    assert "| `detector/flows/table.py:211 lookup` | 1,000,000 | 3.25 | 5.00 |" in page
    assert "Self time by package: detector.flows 40%." in page
    assert page.endswith("\n")


def test_page_without_profile() -> None:
    report = dataclasses.replace(make_report(), profile=None)
    page = render(report)
    assert "No profile was taken in this run." in page
    assert "Top functions" not in page
