"""The per-container summary of a scan (``detector scan --by container``).

One row per container (or per client address where no container is known):
the pools it mined on, the dialects, first and last seen, flows, jobs and
shares. Built with pandas, written as a table, JSON lines or CSV.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from detector.model import Detection
from detector.sinks.ecs import isoformat

SUMMARY_COLUMNS = (
    "container.id",
    "container.name",
    "container.image.name",
    "orchestrator.namespace",
    "orchestrator.resource.name",
    "source.ip",
    "attribution",
    "pools",
    "dialects",
    "first_seen",
    "last_seen",
    "flows",
    "sessions",
    "jobs",
    "shares_submitted",
    "shares_accepted",
    "shares_rejected",
)


def _row(detection: Detection) -> dict[str, Any]:
    attribution = detection.attribution
    container = attribution.container if attribution is not None else None
    mining = detection.mining
    pool = (
        mining.pool_host or f"{detection.flow.server_ip}:{detection.flow.server_port}"
    )
    return {
        "key": container.id if container is not None else detection.flow.client_ip,
        "container.id": container.id if container else None,
        "container.name": container.name if container else None,
        "container.image.name": container.image if container else None,
        "orchestrator.namespace": container.namespace if container else None,
        "orchestrator.resource.name": container.pod if container else None,
        "source.ip": attribution.address if attribution else detection.flow.client_ip,
        "attribution": (
            "attributed"
            if container is not None
            else (attribution.reason if attribution else "no inventory loaded")
        ),
        "pool": pool,
        "dialect": mining.dialect,
        "first_seen": detection.first_seen,
        "last_seen": detection.last_seen,
        "session": detection.session_id,
        "jobs": mining.jobs,
        "shares_submitted": mining.shares_submitted,
        "shares_accepted": mining.shares_accepted,
        "shares_rejected": mining.shares_rejected,
    }


def summarise_by_container(detections: Iterable[Detection]) -> pd.DataFrame:
    """Group detections by container, or by client address when unattributed."""
    rows = [_row(detection) for detection in detections]
    if not rows:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    frame = pd.DataFrame(rows)
    first = "first"
    grouped = frame.groupby("key", sort=False, dropna=False).agg(
        **{
            "container.id": ("container.id", first),
            "container.name": ("container.name", first),
            "container.image.name": ("container.image.name", first),
            "orchestrator.namespace": ("orchestrator.namespace", first),
            "orchestrator.resource.name": ("orchestrator.resource.name", first),
            "source.ip": ("source.ip", _joined),
            "attribution": ("attribution", first),
            "pools": ("pool", _joined),
            "dialects": ("dialect", _joined),
            "first_seen": ("first_seen", "min"),
            "last_seen": ("last_seen", "max"),
            "flows": ("dialect", "size"),
            "sessions": ("session", "nunique"),
            "jobs": ("jobs", "sum"),
            "shares_submitted": ("shares_submitted", "sum"),
            "shares_accepted": ("shares_accepted", "sum"),
            "shares_rejected": ("shares_rejected", "sum"),
        }
    )
    grouped = grouped.sort_values(["first_seen"]).reset_index(drop=True)
    grouped["first_seen"] = grouped["first_seen"].map(isoformat)
    grouped["last_seen"] = grouped["last_seen"].map(isoformat)
    return grouped[list(SUMMARY_COLUMNS)]


def _joined(values: pd.Series) -> str:
    return ", ".join(sorted({str(value) for value in values if value is not None}))


def write_container_summary(
    detections: Iterable[Detection], fmt: str, stream: IO[str], is_terminal: bool
) -> None:
    """Write the per-container summary in the scan's output format."""
    frame = summarise_by_container(detections)
    if fmt == "csv":
        frame.to_csv(stream, index=False, lineterminator="\n")
        return
    if fmt == "jsonl":
        for record in frame.to_dict(orient="records"):
            clean = {key: _plain(value) for key, value in record.items()}
            stream.write(json.dumps(clean, separators=(",", ":")) + "\n")
        return
    console = Console(
        file=stream, highlight=False, markup=False, force_terminal=is_terminal or None
    )
    if frame.empty:
        console.print("No mining traffic found.")
        return
    table = Table(title="Mining by container (times in UTC)", box=box.SIMPLE_HEAD)
    for column in (
        "container",
        "image",
        "pools",
        "dialects",
        "first seen",
        "last seen",
        "flows",
        "shares",
    ):
        table.add_column(column, overflow="fold")
    for record in frame.to_dict(orient="records"):
        name = record["container.name"] or f"{record['source.ip']} (unattributed)"
        pod = record["orchestrator.resource.name"]
        if pod:
            name = f"{record['orchestrator.namespace']}/{pod}"
        cells = (
            str(name),
            str(record["container.image.name"] or "-"),
            str(record["pools"]),
            str(record["dialects"]),
            str(record["first_seen"])[:19].replace("T", " "),
            str(record["last_seen"])[:19].replace("T", " "),
            str(record["flows"]),
            f"{record['shares_submitted']} ({record['shares_rejected']} rejected)",
        )
        table.add_row(*(Text(cell) for cell in cells))
    console.print(table)


def _plain(value: Any) -> Any:
    # pandas hands back numpy scalars and NaN for missing values; JSON wants
    # plain numbers and null.
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item"):
        return value.item()
    return value
