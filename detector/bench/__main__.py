"""The benchmark's command line.

Usage::

    python -m detector.bench generate OUTDIR [--packets N] [--flood-flows N]
                                             [--mining-flows N]
    python -m detector.bench run --workdir DIR [--rounds N] [--output FILE]
                                 [--no-profile]
    python -m detector.bench live --workdir DIR [--packets N] [--rates R,R,...]
                                  [--output FILE]

Exit status: 0 on success, 2 for a usage error, a folder that cannot be
written, a missing capture or tool, or a tool that failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

from detector.bench.generate import (
    DEFAULT_FLOOD_FLOWS,
    DEFAULT_MINING_FLOWS,
    DEFAULT_PACKETS,
    MIXED_NAME,
    generate,
)
from detector.bench.live import DEFAULT_PACKETS as LIVE_PACKETS
from detector.bench.live import DEFAULT_RATES as LIVE_RATES
from detector.bench.live import measure as measure_live
from detector.bench.live import render as render_live
from detector.bench.measure import BenchError, Benchmark
from detector.bench.report import render

EXIT_OK = 0
EXIT_FAILURE = 2
RESULTS_JSON = "results.json"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detector.bench",
        description="Generate the benchmark captures, or time the detector"
        " against ndpiReader and tshark on them.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    make = commands.add_parser(
        "generate",
        help="write the captures; the same bytes on every run",
        description="Write mixed-1m.pcap, its expected mining flows,"
        " synflood-1m.pcap and empty.pcap to OUTDIR.",
    )
    make.add_argument("outdir", type=Path, help="folder to write (created if missing)")
    make.add_argument(
        "--packets",
        type=_positive,
        default=DEFAULT_PACKETS,
        help=f"packets in the mixed capture (default {DEFAULT_PACKETS})",
    )
    make.add_argument(
        "--flood-flows",
        type=_positive,
        default=DEFAULT_FLOOD_FLOWS,
        help="SYN packets in the flood, each its own flow"
        f" (default {DEFAULT_FLOOD_FLOWS})",
    )
    make.add_argument(
        "--mining-flows",
        type=_positive,
        default=DEFAULT_MINING_FLOWS,
        help=f"mining flows in the mixed capture (default {DEFAULT_MINING_FLOWS})",
    )

    run = commands.add_parser(
        "run",
        help="time the tools and write the results page",
        description="Run the detector, ndpiReader and tshark on the captures"
        " in --workdir, each round in turn, and write the results page.",
    )
    run.add_argument(
        "--workdir", type=Path, required=True, help="folder written by generate"
    )
    run.add_argument(
        "--rounds", type=_positive, default=3, help="rounds per tool (default 3)"
    )
    run.add_argument(
        "--output",
        type=Path,
        default=Path("docs/benchmarks.md"),
        help="results page to write (default docs/benchmarks.md)",
    )
    run.add_argument(
        "--no-profile",
        action="store_true",
        help="skip the cProfile run of the detector",
    )
    live = commands.add_parser(
        "live",
        help="measure live capture loss against tcpdump",
        description="Replay the mixed capture into a veth pair in a namespace at"
        " each rate, capture it with detector watch and with tcpdump, and write"
        " the packets each saw. Needs root, tcpreplay and tcpdump.",
    )
    live.add_argument(
        "--workdir", type=Path, required=True, help="folder holding mixed-1m.pcap"
    )
    live.add_argument(
        "--packets",
        type=_positive,
        default=LIVE_PACKETS,
        help=f"packets replayed at each rate (default {LIVE_PACKETS})",
    )
    live.add_argument(
        "--rates",
        type=_rates,
        default=LIVE_RATES,
        help="comma-separated packets per second; 0 is top speed (default"
        f" {','.join(map(str, LIVE_RATES))})",
    )
    live.add_argument(
        "--output",
        type=Path,
        default=Path("docs/benchmarks-live.md"),
        help="page to write (default docs/benchmarks-live.md)",
    )
    return parser


def _rates(text: str) -> tuple[int, ...]:
    try:
        rates = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, not {text!r}"
        ) from None
    if any(rate < 0 for rate in rates):
        raise argparse.ArgumentTypeError("rates must be 0 (top speed) or more")
    return rates


def _live(arguments: argparse.Namespace) -> int:
    capture = arguments.workdir / MIXED_NAME
    rounds = measure_live(capture, arguments.rates, arguments.packets)
    output: Path = arguments.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_live(rounds, capture, arguments.packets), encoding="utf-8")
    print(f"wrote {output}")
    return EXIT_OK


def _generate(arguments: argparse.Namespace) -> int:
    started = time.perf_counter()
    mixed, flood = generate(
        arguments.outdir,
        packets=arguments.packets,
        flood_flows=arguments.flood_flows,
        mining_flows=arguments.mining_flows,
    )
    seconds = time.perf_counter() - started
    print(
        f"wrote {mixed.packets} packets ({mixed.mean_frame_bytes:.0f} bytes per"
        f" frame on average, {len(mixed.mining_flows)} mining flows) and a flood"
        f" of {flood.packets} SYNs to {arguments.outdir} in {seconds:.1f} s"
    )
    return EXIT_OK


def _run(arguments: argparse.Namespace) -> int:
    benchmark = Benchmark(arguments.workdir, arguments.rounds)
    report = benchmark.run(profile=not arguments.no_profile)
    results = benchmark.results / RESULTS_JSON
    results.write_text(
        json.dumps(dataclasses.asdict(report), indent=1) + "\n", encoding="utf-8"
    )
    output: Path = arguments.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(report), encoding="utf-8")
    print(f"wrote {output}; raw figures in {results}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return the exit status."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if arguments.command == "generate":
            return _generate(arguments)
        if arguments.command == "live":
            return _live(arguments)
        return _run(arguments)
    except (BenchError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as error:
        print(f"error: cannot read or write a file: {error}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
