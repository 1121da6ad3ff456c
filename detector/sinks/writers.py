"""Alert writers: JSON lines, CSV and a table for people.

JSON lines and CSV are written one detection at a time as flows end, so a
consumer gets each alert as soon as the scan has judged its flow. The table is
printed once, at the end, because its column widths depend on every row.
"""

from __future__ import annotations

import csv
import json
from typing import IO, Any, Protocol

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from detector.errors import DetectorError
from detector.model import Detection
from detector.sinks.ecs import flatten, isoformat, redact, to_ecs

FORMATS = ("table", "jsonl", "csv")

# The table shows the start of a long wallet only, so a row fits a line.
TABLE_WALLET_CHARS = 8

# CSV columns, in order: flat ECS names, so a CSV and a JSON line of the same
# detection use the same field names.
CSV_COLUMNS = (
    "@timestamp",
    "event.end",
    "log.file.path",
    "network.transport",
    "source.ip",
    "source.port",
    "destination.ip",
    "destination.port",
    "network.community_id",
    "mining.dialect",
    "mining.confidence",
    "mining.agent",
    "mining.miner_family",
    "mining.login",
    "mining.worker",
    "mining.wallet",
    "mining.wallet_coin",
    "mining.algorithm",
    "mining.pool.host",
    "mining.jobs",
    "mining.shares.submitted",
    "mining.shares.accepted",
    "mining.shares.rejected",
    "source.packets",
    "source.bytes",
    "destination.packets",
    "destination.bytes",
    "mining.evidence",
)


class OutputClosed(DetectorError):
    """The reader of the output went away (a closed pipe, as with ``| head``).

    ``written`` counts the detections written before it went.
    """

    def __init__(self, written: int) -> None:
        self.written = written
        super().__init__("the output was closed")


class AlertWriter(Protocol):
    """A sink that takes detections one at a time."""

    def write(self, detection: Detection) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    """Write one ECS JSON document per line, flushed as each is written."""

    def __init__(self, stream: IO[str], redact_wallets: bool = False) -> None:
        self.stream = stream
        self.redact_wallets = redact_wallets
        self.written = 0

    def write(self, detection: Detection) -> None:
        document = to_ecs(detection, self.redact_wallets)
        line = json.dumps(document, separators=(",", ":"), default=str)
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except BrokenPipeError as exc:
            raise OutputClosed(self.written) from exc
        self.written += 1

    def close(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError as exc:
            raise OutputClosed(self.written) from exc


class CsvWriter:
    """Write a header, then one row per detection with flat ECS column names."""

    def __init__(self, stream: IO[str], redact_wallets: bool = False) -> None:
        self.stream = stream
        self.redact_wallets = redact_wallets
        self.written = 0
        self._writer = csv.DictWriter(stream, CSV_COLUMNS, lineterminator="\n")
        try:
            self._writer.writeheader()
        except BrokenPipeError as exc:
            raise OutputClosed(0) from exc

    def write(self, detection: Detection) -> None:
        try:
            self._writer.writerow(csv_row(detection, self.redact_wallets))
            self.stream.flush()
        except BrokenPipeError as exc:
            raise OutputClosed(self.written) from exc
        self.written += 1

    def close(self) -> None:
        try:
            self.stream.flush()
        except BrokenPipeError as exc:
            raise OutputClosed(self.written) from exc


class TableWriter:
    """Collect detections and print them as a table when closed."""

    def __init__(self, console: Console, redact_wallets: bool = False) -> None:
        self.console = console
        self.redact_wallets = redact_wallets
        self.detections: list[Detection] = []

    def write(self, detection: Detection) -> None:
        self.detections.append(detection)

    def close(self) -> None:
        try:
            if self.detections:
                self.detections.sort(key=lambda d: (d.source, d.first_seen))
                write_table(self.detections, self.console, self.redact_wallets)
            else:
                self.console.print("No mining traffic found.")
        except BrokenPipeError as exc:
            raise OutputClosed(0) from exc


def csv_row(detection: Detection, redact_wallets: bool = False) -> dict[str, Any]:
    """Flatten a detection into the CSV columns."""
    flat = flatten(to_ecs(detection, redact_wallets))
    flat["mining.evidence"] = ";".join(
        f"{item.kind}:{item.confidence.label}" for item in detection.evidence
    )
    return {column: _encodable(flat.get(column)) for column in CSV_COLUMNS}


def _encodable(value: Any) -> Any:
    # JSON allows lone surrogates (\ud800), which no UTF-8 writer accepts;
    # they are written as their escape instead.
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def write_table(
    detections: list[Detection], console: Console, redact_wallets: bool = False
) -> None:
    """Print detections as tables for people reading a terminal, one per capture.

    Each cell has two short lines to keep rows narrow. The JSON and CSV
    formats carry every field and every piece of evidence.
    """
    sources = list(dict.fromkeys(detection.source for detection in detections))
    for source in sources:
        table = Table(
            title=f"Mining flows in {source} (times in UTC)",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,
        )
        # Minimum widths keep a date and an IPv4 endpoint whole, so a narrow
        # terminal folds the other cells first.
        table.add_column("first seen", overflow="fold", min_width=10)
        table.add_column("client/server", overflow="fold", min_width=21)
        table.add_column("dialect", overflow="fold", min_width=10)
        table.add_column("miner/wallet", overflow="fold", min_width=11)
        table.add_column("activity", overflow="fold", min_width=10)
        for detection in detections:
            if detection.source == source:
                table.add_row(
                    *(Text(cell) for cell in _table_cells(detection, redact_wallets))
                )
        console.print(table)


def _table_cells(detection: Detection, redact_wallets: bool) -> tuple[str, ...]:
    flow = detection.flow
    mining = detection.mining
    wallet = mining.wallet or "-"
    if mining.wallet and redact_wallets:
        wallet = redact(mining.wallet)
    elif len(wallet) > TABLE_WALLET_CHARS:
        wallet = wallet[:TABLE_WALLET_CHARS] + "..."
    if mining.wallet and mining.wallet_coin:
        wallet = f"{wallet} ({mining.wallet_coin})"
    activity = (
        f"{_count(mining.jobs, 'job')}\n{_count(mining.shares_submitted, 'share')}"
    )
    if mining.shares_rejected:
        activity += f", {mining.shares_rejected} rejected"
    first_seen = isoformat(detection.first_seen)
    return (
        f"{first_seen[:10]}\n{first_seen[11:19]}",
        f"{_endpoint(flow.client_ip, flow.client_port)}\n"
        f"{_endpoint(flow.server_ip, flow.server_port)}",
        f"{mining.dialect}\n{detection.confidence.label}",
        f"{mining.miner_family or mining.agent or '-'}\n{wallet}",
        activity,
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
