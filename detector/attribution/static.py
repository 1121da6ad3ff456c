"""Inventory provider for a hand-written YAML file.

The file has the layout of a snapshot (see :mod:`detector.attribution.
document`) without the ``format`` header: a ``containers`` list whose
addresses may be plain strings, valid at any time, or mappings with
``start`` and ``end`` times. Runtime defaults to ``static``.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from detector.attribution.errors import InventoryError
from detector.attribution.inventory import Inventory


def load_static(path: str | os.PathLike[str]) -> Inventory:
    """Read a static inventory YAML file.

    Raises :class:`InventoryError` when the file cannot be read, is not YAML,
    or has an invalid value (the error names its key).
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise InventoryError(source, f"cannot read the file: {reason}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = (
            "" if mark is None else f" at line {mark.line + 1} column {mark.column + 1}"
        )
        raise InventoryError(source, f"invalid YAML{where}: {problem}") from exc
    return Inventory.from_document(
        data, source, default_runtime="static", require_header=False
    )
