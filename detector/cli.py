"""The ``detector`` command line. The only module that prints for people.

``detector watch`` runs until SIGTERM or SIGINT and then exits 0; it exits 2
when it cannot start (bad options, signatures or inventory, an output it
cannot open).

Exit codes of ``detector scan``:

- 0: every file was read and no mining was found;
- 1: mining was found and every file was read;
- 2: a file could not be read to its end, or the command was wrong. Detections
  from the other files, and from a damaged file up to the damage, are still
  written, as ``grep`` does when it meets an unreadable file;
- 130: interrupted (Ctrl-C). The flows read until then are judged and written.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from detector import __version__
from detector.attribution import (
    Inventory,
    NatTable,
    attribute,
    build_docker_inventory,
    load_host_local,
    load_pods_file,
    load_pods_live,
    load_static,
)
from detector.engine.sessions import ALERT_INTERVAL_SECONDS
from detector.errors import DetectorError
from detector.flows.table import IDLE_TIMEOUT, MAX_FLOWS
from detector.launcher import early_signals
from detector.live.alerts import (
    DEFAULT_ROTATE_BYTES,
    DEFAULT_ROTATE_KEEP,
    AlertOutput,
    BackgroundOutput,
    JsonLinesOutput,
    SyslogOutput,
)
from detector.live.capture import (
    DEFAULT_BUFFER_BYTES,
    DEFAULT_FILTER,
    DEFAULT_SNAPLEN,
    check_filter,
)
from detector.live.metrics import MetricsServer, WatchMetrics
from detector.live.watch import (
    ABSOLUTE_TIMEOUT,
    RESCAN_SECONDS,
    Controls,
    Watcher,
    WatchOptions,
    signal_handlers,
)
from detector.model import Confidence, Detection
from detector.scan import ScanReport, ScanStats, scan_paths
from detector.signatures import Signatures, default_directory, load_signatures
from detector.signatures.importers import IMPORT_FORMATS, import_list, merge_pools
from detector.sinks import (
    FORMATS,
    AlertWriter,
    CsvWriter,
    JsonlWriter,
    OutputClosed,
    TableWriter,
)
from detector.sinks.rotating import RotatingFile
from detector.sinks.summary import write_container_summary
from detector.sinks.syslog import SyslogSender

EXIT_CLEAN = 0
EXIT_MINING = 1
EXIT_ERROR = 2
# 128 + SIGINT, as shells report a process ended by Ctrl-C.
EXIT_INTERRUPTED = 130

CONFIDENCE_NAMES = {level.label: level for level in Confidence}

# Skipped lines of an imported list printed one by one; the rest are counted.
IMPORT_SKIPPED_SHOWN = 20

# The longest Ethernet frame with one 802.1Q tag: a smaller snapshot length
# cuts ordinary packets, and the mining messages in them.
FULL_FRAME_SNAPLEN = 1518

# Width of a table written to a file, where no terminal sets one.
FILE_TABLE_WIDTH = 160

app = typer.Typer(
    name="detector",
    help="Detect cryptocurrency-mining traffic in packet captures.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
signatures_app = typer.Typer(help="Inspect and validate signature files.")
app.add_typer(signatures_app, name="signatures")

log = logging.getLogger("detector")


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, markup=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"detector {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Detect cryptocurrency-mining traffic in packet captures."""


def _load(directory: Path | None) -> Signatures:
    try:
        return load_signatures(directory)
    except DetectorError as exc:
        _stderr().print(f"error: {exc}")
        raise typer.Exit(EXIT_ERROR) from exc


def _choose_format(requested: str | None, output: Path | None) -> str:
    if requested is not None:
        return requested
    if output is not None:
        return "csv" if output.suffix.lower() == ".csv" else "jsonl"
    return "table" if sys.stdout.isatty() else "jsonl"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _summary(stats: ScanStats, reported: int) -> str:
    hidden = stats.detections - reported
    parts = [
        _count(stats.files, "file"),
        _count(stats.packets, "packet"),
        _count(stats.flows, "flow") + " with payload",
        _count(reported, "mining detection")
        + (f" ({hidden} weaker hidden by --min-confidence)" if hidden else ""),
        _count(stats.malformed_packets, "malformed packet") + " skipped",
        _count(stats.malformed_messages, "malformed message") + " skipped",
    ]
    if stats.unsupported_packets:
        parts.append(
            _count(stats.unsupported_packets, "packet") + " of unsupported link types"
        )
    if stats.stream_gaps:
        parts.append(_count(stats.stream_gaps, "stream gap"))
    if stats.flows_evicted:
        parts.append(
            _count(stats.flows_evicted, "flow") + " evicted from a full flow table"
        )
    if stats.files_failed:
        parts.append(f"{stats.files_failed} failed")
    return "scanned " + ", ".join(parts) + f" in {stats.seconds:.2f} s"


def _open_writer(
    fmt: str, stream: TextIO, redact_wallets: bool, is_terminal: bool
) -> AlertWriter:
    if fmt == "jsonl":
        return JsonlWriter(stream, redact_wallets)
    if fmt == "csv":
        return CsvWriter(stream, redact_wallets)
    console = Console(
        file=stream,
        highlight=False,
        markup=False,
        force_terminal=is_terminal or None,
        width=None if is_terminal else FILE_TABLE_WIDTH,
    )
    return TableWriter(console, redact_wallets)


def _same_file(output: Path, paths: list[str]) -> str | None:
    """Return the input that ``output`` would overwrite, if any."""
    if not output.exists():
        return None
    for path in paths:
        if path != "-" and os.path.exists(path) and os.path.samefile(output, path):
            return path
    return None


@app.command()
def scan(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH",
            help="Capture files (pcap, pcapng, optionally gzip-compressed),"
            " directories to search for them, or - for standard input.",
        ),
    ],
    output_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="Output format: table, jsonl or csv. Default: table on a"
            " terminal, otherwise jsonl (csv for an --output ending in .csv).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write detections to this file instead of standard output.",
        ),
    ] = None,
    redact_wallets: Annotated[
        bool,
        typer.Option(
            "--redact-wallets",
            help="Mask wallet addresses in the output,"
            " keeping 4 characters at each end.",
        ),
    ] = False,
    signatures_dir: Annotated[
        Path | None,
        typer.Option(
            "--signatures",
            help="Folder of signature YAML files. Default:"
            " $DETECTOR_SIGNATURES, else the bundled signatures.",
        ),
    ] = None,
    max_flows: Annotated[
        int,
        typer.Option(
            "--max-flows",
            min=1,
            help="Flows tracked at once per file; when full, the least recently"
            " seen flow that is not mining is evicted.",
        ),
    ] = MAX_FLOWS,
    inventory_file: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            help="Container inventory to attribute flows with: a snapshot from"
            " 'detector inventory', or a static YAML file (.yaml).",
        ),
    ] = None,
    conntrack_file: Annotated[
        Path | None,
        typer.Option(
            "--conntrack",
            help="Saved 'conntrack -L' output, to map flows captured after NAT"
            " back to the container's address.",
        ),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            help="Summarise instead of listing flows: 'container' gives one row"
            " per container with its pools, dialects, first and last seen and"
            " shares.",
        ),
    ] = None,
    min_confidence: Annotated[
        str,
        typer.Option(
            "--min-confidence",
            help="Report detections of at least this confidence: high, medium or"
            " low. Low findings (a behavioural score or a pool-list address"
            " alone) are weak evidence and hidden by default.",
        ),
    ] = "medium",
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Scan this many files at once, each in its own process."
            " Detections are still written file by file in input order. Files"
            " are then scanned independently: a DNS answer in one file does not"
            " name the servers of another.",
        ),
    ] = 1,
    fast_path: Annotated[
        bool,
        typer.Option(
            "--fast-path/--no-fast-path",
            help="Read, decode and count packets in batches (the default), or one"
            " at a time. Both give the same output; one at a time is slower and"
            " is kept to check the batch path against.",
        ),
    ] = True,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print no summary and no progress.")
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            help="Log more: -v for each mining flow, -vv for each skipped packet.",
        ),
    ] = 0,
) -> None:
    """Scan capture files for mining traffic and report each mining flow."""
    err = _stderr()
    if output_format is not None and output_format not in FORMATS:
        err.print(
            f"error: unknown format {output_format!r}; choose one of "
            + ", ".join(FORMATS)
        )
        raise typer.Exit(EXIT_ERROR)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    threshold = CONFIDENCE_NAMES.get(min_confidence)
    if threshold is None:
        err.print(
            f"error: unknown confidence {min_confidence!r}; choose one of "
            + ", ".join(CONFIDENCE_NAMES)
        )
        raise typer.Exit(EXIT_ERROR)
    if by not in (None, "container"):
        err.print(f"error: unknown grouping {by!r}; the one grouping is container")
        raise typer.Exit(EXIT_ERROR)
    signatures = _load(signatures_dir)
    attribution = _load_attribution(inventory_file, conntrack_file)
    fmt = _choose_format(output_format, output)
    if output is not None and (overwritten := _same_file(output, paths)) is not None:
        err.print(
            f"error: --output {output} is the input {overwritten}; choose another file"
        )
        raise typer.Exit(EXIT_ERROR)
    try:
        stream: TextIO = (
            output.open("w", encoding="utf-8", newline="")
            if output is not None
            else sys.stdout
        )
    except OSError as exc:
        err.print(f"error: cannot write {output}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_ERROR) from exc
    is_terminal = output is None and sys.stdout.isatty()
    try:
        report, reported = _run_scan(
            paths,
            signatures,
            fmt,
            stream,
            redact_wallets,
            is_terminal,
            max_flows,
            show_progress=not quiet and sys.stderr.isatty(),
            min_confidence=threshold,
            attribution=attribution,
            by_container=by == "container",
            jobs=jobs,
            fast_path=fast_path,
        )
        if by == "container":
            write_container_summary(reported, fmt, stream, is_terminal)
    except OutputClosed as closed:
        # The reader of standard output went away (``| head``): stop quietly,
        # and keep the interpreter from failing again on its final flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(EXIT_MINING if closed.written else EXIT_CLEAN) from None
    except OSError as exc:
        err.print(
            f"error: cannot write {output or 'standard output'}: {exc.strerror or exc}"
        )
        raise typer.Exit(EXIT_ERROR) from exc
    finally:
        if output is not None:
            _close_quietly(stream)
    for result in report.files:
        for warning in result.warnings:
            err.print(f"warning: {warning}")
        if result.error is not None:
            err.print(f"error: {result.error}")
    if not report.files:
        err.print("error: no capture files found in the given paths")
        raise typer.Exit(EXIT_ERROR)
    if not quiet:
        err.print(_summary(report.stats, len(reported)))
    if report.interrupted:
        err.print("interrupted: the flows read so far were judged and written")
        raise typer.Exit(EXIT_INTERRUPTED)
    if report.errors:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_MINING if reported else EXIT_CLEAN)


def _close_quietly(stream: TextIO) -> None:
    # A write error was already reported; a full disk fails the close too.
    try:
        stream.close()
    except OSError:
        pass


def _run_scan(
    paths: list[str],
    signatures: Signatures,
    fmt: str,
    stream: TextIO,
    redact_wallets: bool,
    is_terminal: bool,
    max_flows: int,
    show_progress: bool,
    min_confidence: Confidence,
    attribution: AttributionSources,
    by_container: bool,
    jobs: int = 1,
    fast_path: bool = True,
) -> tuple[ScanReport, list[Detection]]:
    writer: AlertWriter = (
        _Collector()
        if by_container
        else _open_writer(fmt, stream, redact_wallets, is_terminal)
    )
    reported: list[Detection] = []

    def on_detection(detection: Detection) -> None:
        if detection.confidence < min_confidence:
            return
        detection = attribute(detection, attribution.inventory, attribution.nat)
        reported.append(detection)
        writer.write(detection)

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[packets]} packets"),
        TimeElapsedColumn(),
        console=_stderr(),
        transient=True,
        disable=not show_progress,
    )
    task = progress.add_task("scanning", packets=0)

    def on_progress(source: str, packets: int) -> None:
        # The scan reports progress every few thousand packets, so only a
        # long scan ever shows the bar.
        if not progress.live.is_started:
            progress.start()
        progress.update(task, description=source, packets=packets)

    try:
        report = scan_paths(
            paths,
            signatures,
            progress=on_progress,
            max_flows=max_flows,
            on_detection=on_detection,
            fast_path=fast_path,
            jobs=jobs,
        )
    finally:
        progress.stop()
    writer.close()
    return report, reported


class _Collector:
    """A sink that keeps detections for a summary instead of writing them."""

    def write(self, detection: Detection) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(slots=True)
class AttributionSources:
    """The inventory and NAT table a scan attributes its detections with."""

    inventory: Inventory | None = None
    nat: NatTable | None = None


def _load_attribution(
    inventory_path: Path | None, conntrack_path: Path | None
) -> AttributionSources:
    sources = AttributionSources()
    try:
        if inventory_path is not None:
            if inventory_path.suffix.lower() in (".yaml", ".yml"):
                sources.inventory = load_static(inventory_path)
            else:
                sources.inventory = Inventory.load(inventory_path)
        if conntrack_path is not None:
            text = conntrack_path.read_text(encoding="utf-8", errors="replace")
            sources.nat = NatTable.from_text(text, source=str(conntrack_path))
    except OSError as exc:
        _stderr().print(f"error: cannot read {exc.filename}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_ERROR) from exc
    except DetectorError as exc:
        _stderr().print(f"error: {exc}")
        raise typer.Exit(EXIT_ERROR) from exc
    return sources


@signatures_app.command("check")
def signatures_check(
    directory: Annotated[
        Path | None,
        typer.Argument(
            metavar="[DIR]",
            help="Folder of signature YAML files. Default:"
            " $DETECTOR_SIGNATURES, else the bundled signatures.",
        ),
    ] = None,
) -> None:
    """Validate signature files without scanning anything."""
    signatures = _load(directory)
    typer.echo(
        f"{len(signatures.files)} signature files valid: " + ", ".join(signatures.files)
    )


def main() -> None:
    """Run the command line; the console script's entry point."""
    app()


@signatures_app.command("import")
def signatures_import(
    list_file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE", help="The public list to import; - for standard input."
        ),
    ],
    list_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="The list's format: domains (one per line), hosts (hosts-file"
            " lines), adblock (||domain^ rules) or falco (a Falco rules YAML).",
        ),
    ],
    into: Annotated[
        Path | None,
        typer.Option(
            "--into",
            help="The pools file to merge into, rewritten in place. Default:"
            " pools.yaml in the signature folder.",
        ),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            "--kind", help="Kind of the new entries: pool, proxy, donate or webminer."
        ),
    ] = "pool",
    coin: Annotated[
        str, typer.Option("--coin", help="Coin of the new entries, e.g. monero.")
    ] = "unknown",
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Provenance recorded on each new entry. Default: the list's"
            " file name.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Report what would change; write nothing."),
    ] = False,
) -> None:
    """Merge a public list of mining domains into a pools file."""
    err = _stderr()
    if list_format not in IMPORT_FORMATS:
        err.print(
            f"error: unknown list format {list_format!r}; choose one of "
            + ", ".join(IMPORT_FORMATS)
        )
        raise typer.Exit(EXIT_ERROR)
    target = into or default_directory() / "pools.yaml"
    try:
        if str(list_file) == "-":
            text = sys.stdin.read()
        else:
            text = list_file.read_text(encoding="utf-8", errors="replace")
        existing = target.read_text(encoding="utf-8") if target.exists() else ""
    except OSError as exc:
        err.print(f"error: cannot read {exc.filename}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_ERROR) from exc
    result = import_list(text, list_format, source or list_file.name)
    try:
        merge = merge_pools(existing, result, kind, coin, source, path=str(target))
    except DetectorError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(EXIT_ERROR) from exc
    for line, reason in result.skipped[:IMPORT_SKIPPED_SHOWN]:
        err.print(f"skipped line {line}: {reason}")
    if len(result.skipped) > IMPORT_SKIPPED_SHOWN:
        err.print(f"... and {len(result.skipped) - IMPORT_SKIPPED_SHOWN} more")
    dropped = ", ".join(f"{count} {reason}" for reason, count in merge.counts().items())
    typer.echo(
        f"{len(result.entries)} domains read, {len(merge.added)} added to {target}"
        + (f"; dropped: {dropped}" if dropped else "")
        + f"; {len(result.skipped)} lines skipped"
        + (" (dry run, nothing written)" if dry_run else "")
    )
    if dry_run or not merge.added:
        return
    try:
        target.write_text(merge.text, encoding="utf-8")
    except OSError as exc:
        err.print(f"error: cannot write {target}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_ERROR) from exc


@app.command()
def watch(
    interfaces: Annotated[
        list[str] | None,
        typer.Option(
            "--interface",
            "-i",
            help="Interface to capture on; repeat for more; shell patterns such as"
            " 'br-*' allowed. Default: every container bridge (docker0, br-*,"
            " cni0, cbr0, podman*), including those created later.",
        ),
    ] = None,
    bpf: Annotated[
        str,
        typer.Option("--filter", help="Kernel capture filter (BPF syntax)."),
    ] = DEFAULT_FILTER,
    snaplen: Annotated[
        int,
        typer.Option(
            "--snaplen", min=64, help="Bytes kept of each packet (snapshot length)."
        ),
    ] = DEFAULT_SNAPLEN,
    buffer_mib: Annotated[
        int,
        typer.Option(
            "--buffer-size",
            min=1,
            help="MiB of kernel capture buffer per interface; more rides out"
            " longer bursts.",
        ),
    ] = DEFAULT_BUFFER_BYTES // (1024 * 1024),
    promiscuous: Annotated[
        bool,
        typer.Option(
            "--promisc/--no-promisc",
            help="Promiscuous mode, needed to see traffic between two containers"
            " of one bridge.",
        ),
    ] = True,
    signatures_dir: Annotated[
        Path | None,
        typer.Option(
            "--signatures",
            help="Folder of signature YAML files, reloaded on SIGHUP. Default:"
            " $DETECTOR_SIGNATURES, else the bundled signatures.",
        ),
    ] = None,
    inventory_file: Annotated[
        Path | None,
        typer.Option(
            "--inventory",
            help="Container inventory to attribute flows with (a snapshot from"
            " 'detector inventory' or a static YAML file), reloaded on SIGHUP.",
        ),
    ] = None,
    docker_socket: Annotated[
        str | None,
        typer.Option(
            "--docker",
            help="Name containers from the Docker Engine at this socket, for"
            " example /var/run/docker.sock, followed live through its events.",
        ),
    ] = None,
    min_confidence: Annotated[
        str,
        typer.Option(
            "--min-confidence",
            help="Alert on detections of at least this confidence: high, medium"
            " or low.",
        ),
    ] = "medium",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Append alerts as JSON lines to this file instead of standard output.",
        ),
    ] = None,
    rotate_bytes: Annotated[
        int,
        typer.Option(
            "--rotate-bytes",
            min=0,
            help="Rotate --output when it would grow past this size (0: never).",
        ),
    ] = DEFAULT_ROTATE_BYTES,
    rotate_keep: Annotated[
        int,
        typer.Option("--rotate-keep", min=1, help="Rotated files kept."),
    ] = DEFAULT_ROTATE_KEEP,
    syslog: Annotated[
        str | None,
        typer.Option(
            "--syslog",
            help="Also send alerts as RFC 5424 syslog messages to udp://HOST:PORT,"
            " tcp://HOST:PORT or a unix socket path such as /dev/log.",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve Prometheus metrics at /metrics and a health check at"
            " /healthz on this port (0 picks a free one and logs it).",
        ),
    ] = None,
    metrics_address: Annotated[
        str,
        typer.Option("--metrics-address", help="Address the metrics server binds."),
    ] = "127.0.0.1",
    evidence_dir: Annotated[
        Path | None,
        typer.Option(
            "--evidence-dir",
            help="Write, for each alerted flow, the packets inspected so far as a"
            " pcap file in this folder.",
        ),
    ] = None,
    idle_timeout: Annotated[
        float,
        typer.Option(
            "--idle-timeout", min=1, help="Seconds without packets that end a flow."
        ),
    ] = IDLE_TIMEOUT,
    absolute_timeout: Annotated[
        float,
        typer.Option(
            "--absolute-timeout",
            min=1,
            help="Seconds after which a flow still open is reported and started"
            " afresh.",
        ),
    ] = ABSOLUTE_TIMEOUT,
    max_flows: Annotated[
        int,
        typer.Option(
            "--max-flows",
            min=1,
            help="Flows tracked at once per interface; when full, the least"
            " recently seen flow that is not mining is evicted.",
        ),
    ] = MAX_FLOWS,
    update_interval: Annotated[
        float,
        typer.Option(
            "--update-interval",
            min=0,
            help="Seconds between two updates of one mining session.",
        ),
    ] = ALERT_INTERVAL_SECONDS,
    rescan_interval: Annotated[
        float,
        typer.Option(
            "--rescan-interval",
            min=0.1,
            help="Seconds between two looks for interfaces that came or went.",
        ),
    ] = RESCAN_SECONDS,
    redact_wallets: Annotated[
        bool,
        typer.Option("--redact-wallets", help="Mask wallet addresses in alerts."),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Log only errors.")
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose", "-v", count=True, help="Log debug messages too (-v)."
        ),
    ] = 0,
) -> None:
    """Capture live on container bridges and alert on mining as it happens.

    Runs until SIGTERM or SIGINT, then judges the open flows, writes pending
    updates and exits 0. SIGHUP reloads the signatures and the inventory.
    """
    err = _stderr()
    level = logging.ERROR if quiet else logging.INFO - 10 * min(verbose, 1)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    threshold = CONFIDENCE_NAMES.get(min_confidence)
    if threshold is None:
        err.print(
            f"error: unknown confidence {min_confidence!r}; choose one of "
            + ", ".join(CONFIDENCE_NAMES)
        )
        raise typer.Exit(EXIT_ERROR)
    options = WatchOptions(
        interfaces=tuple(interfaces or ()),
        bpf=bpf,
        snaplen=snaplen,
        promiscuous=promiscuous,
        buffer_bytes=buffer_mib * 1024 * 1024,
        signatures_dir=signatures_dir,
        inventory_path=inventory_file,
        min_confidence=threshold,
        idle_timeout=idle_timeout,
        absolute_timeout=absolute_timeout,
        max_flows=max_flows,
        rescan_interval=rescan_interval,
        update_interval=update_interval,
        redact_wallets=redact_wallets,
        evidence_dir=evidence_dir,
        docker_socket=docker_socket,
    )
    if snaplen < FULL_FRAME_SNAPLEN:
        log.warning(
            "--snaplen %d cuts packets longer than that; a mining message in a"
            " cut packet is not read",
            snaplen,
        )
    controls = Controls()
    with signal_handlers(controls):
        # Signals that came while the program was still being imported.
        for number in early_signals:
            if number == signal.SIGHUP:
                controls.reload()
            else:
                controls.stop()
        watcher, server = _start_watch(
            options,
            output,
            rotate_bytes,
            rotate_keep,
            syslog,
            metrics_address,
            metrics_port,
        )
        controls.attach(watcher)
        try:
            watcher.run()
        finally:
            if server is not None:
                server.stop()
    if watcher.output_closed:
        # Keep the interpreter from failing again on its final flush.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_CLEAN)


def _start_watch(
    options: WatchOptions,
    output: Path | None,
    rotate_bytes: int,
    rotate_keep: int,
    syslog: str | None,
    metrics_address: str,
    metrics_port: int | None,
) -> tuple[Watcher, MetricsServer | None]:
    """Check the filter, open the outputs, load signatures and inventory,
    follow Docker and start the metrics server; exit 2 on any failure."""
    err = _stderr()
    outputs: list[AlertOutput] = []
    server: MetricsServer | None = None
    try:
        check_filter(options.bpf, options.snaplen)
        if output is not None:
            outputs.append(
                JsonLinesOutput(RotatingFile(output, rotate_bytes, rotate_keep))
            )
        else:
            outputs.append(JsonLinesOutput(sys.stdout, close_stream=False))
        if syslog is not None:
            outputs.append(BackgroundOutput(SyslogOutput(SyslogSender(syslog))))
        metrics = WatchMetrics()
        watcher = Watcher(options, outputs, metrics)
        watcher.start_docker()
        if metrics_port is not None:
            server = MetricsServer(
                metrics_address, metrics_port, metrics, watcher.healthy
            )
            server.start()
            log.info("metrics at http://%s:%d/metrics", metrics_address, server.port)
    except DetectorError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(EXIT_ERROR) from exc
    except OSError as exc:
        target = output if output is not None else f"port {metrics_port}"
        err.print(f"error: cannot open {target}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_ERROR) from exc
    return watcher, server


@app.command()
def inventory(
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Snapshot file to write (JSON)."),
    ],
    docker: Annotated[
        bool,
        typer.Option("--docker", help="Read containers from a Docker Engine."),
    ] = False,
    socket: Annotated[
        str,
        typer.Option("--socket", help="The Docker Engine's unix socket."),
    ] = "/var/run/docker.sock",
    follow: Annotated[
        float,
        typer.Option(
            "--follow",
            min=0,
            help="Seconds to keep following Docker events after the snapshot, so"
            " containers started or stopped meanwhile are recorded with times.",
        ),
    ] = 0.0,
    kubernetes_file: Annotated[
        Path | None,
        typer.Option(
            "--kubernetes-file", help="Output of 'kubectl get pods -A -o json'."
        ),
    ] = None,
    kubernetes: Annotated[
        bool,
        typer.Option(
            "--kubernetes",
            help="Read pods from the Kubernetes API (in-cluster, or kubeconfig).",
        ),
    ] = False,
    cni: Annotated[
        Path | None,
        typer.Option("--cni", help="CNI host-local IPAM state folder."),
    ] = None,
    static: Annotated[
        Path | None,
        typer.Option("--static", help="Static YAML inventory to include."),
    ] = None,
) -> None:
    """Save a container inventory, with its address history, for later scans.

    Use it with 'detector scan --inventory FILE' to attribute the flows of a
    capture replayed after the containers are gone.
    """
    err = _stderr()
    providers = [docker, kubernetes, kubernetes_file, cni, static]
    if not any(provider not in (None, False) for provider in providers):
        err.print(
            "error: name at least one source: --docker, --kubernetes,"
            " --kubernetes-file, --cni or --static"
        )
        raise typer.Exit(EXIT_ERROR)
    loaders: list[Callable[[], Inventory]] = []
    if docker:
        loaders.append(lambda: build_docker_inventory(socket, follow))
    if kubernetes:
        loaders.append(load_pods_live)
    if kubernetes_file is not None:
        loaders.append(lambda: load_pods_file(kubernetes_file))
    if cni is not None:
        loaders.append(lambda: load_host_local(cni))
    if static is not None:
        loaders.append(lambda: load_static(static))
    merged: Inventory | None = None
    try:
        for load in loaders:
            part = load()
            if merged is None:
                merged = part
            else:
                merged.merge(part)
        assert merged is not None
        merged.save(output)
    except DetectorError as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(EXIT_ERROR) from exc
    except OSError as exc:
        err.print(f"error: cannot write {output}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_ERROR) from exc
    typer.echo(f"inventory of {len(merged)} containers written to {output}")
