"""Alert writers: JSON lines, CSV and a table for people."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import IO, Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

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


def write_jsonl(
    detections: Iterable[Detection], stream: IO[str], redact_wallets: bool = False
) -> None:
    """Write one ECS JSON document per line."""
    for detection in detections:
        document = to_ecs(detection, redact_wallets)
        stream.write(json.dumps(document, separators=(",", ":"), default=str))
        stream.write("\n")


def csv_rows(
    detections: Iterable[Detection], redact_wallets: bool = False
) -> list[dict[str, Any]]:
    rows = []
    for detection in detections:
        flat = flatten(to_ecs(detection, redact_wallets))
        flat["mining.evidence"] = ";".join(
            f"{item.kind}:{item.confidence.label}" for item in detection.evidence
        )
        rows.append({column: flat.get(column) for column in CSV_COLUMNS})
    return rows


def write_csv(
    detections: Iterable[Detection], stream: IO[str], redact_wallets: bool = False
) -> None:
    """Write a header and one row per detection, with flat ECS column names."""
    frame = pd.DataFrame(csv_rows(detections, redact_wallets), columns=CSV_COLUMNS)
    frame.to_csv(stream, index=False, lineterminator="\n")


def write_table(
    detections: Iterable[Detection], console: Console, redact_wallets: bool = False
) -> None:
    """Print a table of detections for people reading a terminal.

    The table keeps to the fields an analyst reads first; the JSON and CSV
    formats carry every field and every piece of evidence.
    """
    table = Table(
        title="Mining flows", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True
    )
    detections = list(detections)
    several_files = len({detection.source for detection in detections}) > 1
    if several_files:
        table.add_column("capture", overflow="fold", min_width=12)
    # Short values never wrap; endpoints wrap only for long IPv6 addresses.
    table.add_column("first seen (UTC)", no_wrap=True)
    table.add_column("client", overflow="fold", min_width=17)
    table.add_column("server", overflow="fold", min_width=17)
    table.add_column("dialect", no_wrap=True)
    table.add_column("confidence", no_wrap=True)
    table.add_column("miner", overflow="fold", min_width=7)
    table.add_column("wallet", overflow="fold", min_width=11)
    table.add_column("activity", overflow="fold", min_width=12)
    for detection in detections:
        flow = detection.flow
        mining = detection.mining
        wallet = mining.wallet or ""
        if wallet and redact_wallets:
            wallet = redact(wallet)
        elif len(wallet) > TABLE_WALLET_CHARS:
            wallet = wallet[:TABLE_WALLET_CHARS] + "..."
        if wallet and mining.wallet_coin:
            wallet = f"{wallet} ({mining.wallet_coin})"
        activity = f"{mining.jobs} jobs, {mining.shares_submitted} shares"
        if mining.shares_rejected:
            activity += f" ({mining.shares_rejected} rejected)"
        cells: tuple[str, ...] = (
            isoformat(detection.first_seen)[:19].replace("T", " "),
            _endpoint(flow.client_ip, flow.client_port),
            _endpoint(flow.server_ip, flow.server_port),
            mining.dialect,
            detection.confidence.label,
            mining.miner_family or mining.agent or "",
            wallet,
            activity,
        )
        if several_files:
            cells = (os.path.basename(detection.source), *cells)
        # Text cells are printed as they are: an IPv6 endpoint in brackets
        # would otherwise be read as console markup.
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)


def _endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
