"""Exceptions raised by the detector.

Every error the detector raises on purpose derives from one root, so the command
line catches one class and prints one line::

    DetectorError
    ├── CaptureError          a capture file cannot be read (names file and offset)
    ├── DecodeError           a packet or protocol message is malformed
    └── SignatureError        a signature file is invalid (names file and key)

Programming mistakes stay built-in exceptions (``ValueError``, ``TypeError``).
"""

from __future__ import annotations


class DetectorError(Exception):
    """Root of every error the detector raises on purpose."""


class CaptureError(DetectorError):
    """A capture file cannot be read, or stops being readable at ``offset``.

    ``offset`` is the byte offset in the decompressed capture where reading
    failed, or ``None`` when the file could not be opened at all.
    """

    def __init__(self, source: str, message: str, offset: int | None = None) -> None:
        self.source = source
        self.offset = offset
        self.reason = message
        where = source if offset is None else f"{source} at byte {offset}"
        super().__init__(f"{where}: {message}")


class DecodeError(DetectorError):
    """A packet or protocol message is malformed and was skipped."""


class SignatureError(DetectorError):
    """A signature file is invalid; the message names the file and the key."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source = source
        self.key = key
        self.reason = message
        super().__init__(f"{source}: {key}: {message}")
