"""The live benchmark's page and the figures it reads from the tools."""

from __future__ import annotations

from pathlib import Path

from detector.bench.live import LiveRound, _metric, render


def test_metric_sums_every_labelled_series() -> None:
    text = (
        "# TYPE detector_packets_total counter\n"
        'detector_packets_total{interface="a"} 10.0\n'
        'detector_packets_total{interface="b"} 5.0\n'
        'detector_packets_created{interface="a"} 1.7e9\n'
        "detector_interfaces 2.0\n"
    )
    assert _metric(text, "detector_packets_total") == 15
    assert _metric(text, "detector_interfaces") == 2
    assert _metric(text, "detector_kernel_drops_total") == 0


def test_round_shares_and_rates() -> None:
    item = LiveRound("tcpdump", 0, 1000, 0.5, 900, 100)
    assert item.achieved_pps == 2000
    assert item.seen_share == 0.9
    assert LiveRound("tcpdump", 0, 0, 0.0, 0, 0).seen_share == 0.0


def test_page_lists_each_round() -> None:
    rounds = [
        LiveRound("tcpdump", 50_000, 200_000, 4.0, 200_003, 0),
        LiveRound("detector watch", 0, 200_000, 0.5, 150_000, 50_000),
    ]
    page = render(rounds, Path("/tmp/mixed-1m.pcap"), 200_000)
    assert "| 50,000 | tcpdump | 200,000 | 50,000 | 200,003 | 100.0% | 0 |" in page
    assert (
        "| top speed | detector watch | 200,000 | 400,000 | 150,000 | 75.0% | 50,000 |"
        in page
    )
    assert "first 200,000 packets of `mixed-1m.pcap`" in page
