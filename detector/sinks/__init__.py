"""Alert sinks: ECS documents written as JSON lines, CSV or a table."""

from detector.sinks.ecs import to_ecs
from detector.sinks.writers import (
    FORMATS,
    AlertWriter,
    CsvWriter,
    JsonlWriter,
    OutputClosed,
    TableWriter,
    csv_row,
    write_table,
)

__all__ = [
    "FORMATS",
    "AlertWriter",
    "CsvWriter",
    "JsonlWriter",
    "OutputClosed",
    "TableWriter",
    "csv_row",
    "to_ecs",
    "write_table",
]
