"""Packet sources: capture files and streams in pcap, pcapng or gzip form.

:func:`open_capture` and :func:`read_capture` yield :class:`detector.model.Packet`
values in file order and raise :class:`detector.errors.CaptureError` once they
reach damage, after yielding every packet before it.
"""

from __future__ import annotations

from detector.capture.limits import (
    BATCH_BYTES,
    MAX_BATCH_PACKETS,
    MAX_BLOCK_LENGTH,
    MAX_RECORD_LENGTH,
    READ_BUFFER_SIZE,
    SNAPLEN_OVERRUN_FACTOR,
)
from detector.capture.reader import FORMATS_UNDERSTOOD, open_capture, read_capture

__all__ = [
    "BATCH_BYTES",
    "FORMATS_UNDERSTOOD",
    "MAX_BATCH_PACKETS",
    "MAX_BLOCK_LENGTH",
    "MAX_RECORD_LENGTH",
    "READ_BUFFER_SIZE",
    "SNAPLEN_OVERRUN_FACTOR",
    "open_capture",
    "read_capture",
]
