"""Alert sinks: ECS documents written as JSON lines, CSV or a table."""

from detector.sinks.ecs import to_ecs
from detector.sinks.writers import FORMATS, write_csv, write_jsonl, write_table

__all__ = ["FORMATS", "to_ecs", "write_csv", "write_jsonl", "write_table"]
