"""Exceptions raised while building an inventory or a NAT table.

Both derive from :class:`detector.errors.DetectorError`, so the command line
catches them with everything else::

    DetectorError
    ├── InventoryError    an inventory source is invalid or cannot be read
    └── NatError          conntrack cannot be run or its output cannot be read
"""

from __future__ import annotations

from detector.errors import DetectorError


class InventoryError(DetectorError):
    """An inventory source is invalid or cannot be read.

    ``source`` names the file, socket or API; ``key`` is the path of the
    invalid value inside a document (``containers[2].addresses[0].start``),
    or None when the whole source failed.
    """

    def __init__(self, source: str, message: str, key: str | None = None) -> None:
        self.source = source
        self.key = key
        self.reason = message
        where = source if key is None else f"{source}: {key}"
        super().__init__(f"{where}: {message}")


class NatError(DetectorError):
    """The conntrack table cannot be read; ``source`` names the command or file."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.reason = message
        super().__init__(f"{source}: {message}")
