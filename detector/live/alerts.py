"""Alerts of a live watch: the first one of a session at once, updates later.

A watch reports a flow as soon as its evidence makes it mining, and again
when it ends; a miner that reconnects makes a new flow of the same session.
:class:`AlertDispatcher` writes the first report of each session at once
(``mining-detected``) and folds the later ones into one update per session
(``mining-updated``), written at most every ``interval`` seconds and on
:meth:`AlertDispatcher.flush`, so a busy session does not flood the sinks.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import IO, Any, Protocol

from detector.engine.sessions import ALERT_INTERVAL_SECONDS, MAX_SESSIONS
from detector.model import Detection
from detector.sinks.ecs import to_ecs
from detector.sinks.syslog import SyslogSender

log = logging.getLogger(__name__)

# An alert document is about 2 KiB, so a 100 MiB file holds some 50,000
# alerts; five rotated files keep a host's history for weeks at most a few
# hundred megabytes, like logrotate's usual weekly rotate 4 plus one.
DEFAULT_ROTATE_BYTES = 100 * 1024 * 1024
DEFAULT_ROTATE_KEEP = 5

ACTION_DETECTED = "mining-detected"
ACTION_UPDATED = "mining-updated"


class AlertOutput(Protocol):
    """A sink that takes alert documents one at a time."""

    def emit(self, document: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class JsonLinesOutput:
    """Write each alert document as one JSON line, flushed at once."""

    def __init__(self, stream: IO[str], close_stream: bool = True) -> None:
        self.stream = stream
        self.close_stream = close_stream

    def emit(self, document: dict[str, Any]) -> None:
        line = json.dumps(document, separators=(",", ":"), default=str)
        self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.close_stream:
            self.stream.close()
        else:
            self.stream.flush()


class SyslogOutput:
    """Send each alert document to a syslog receiver."""

    def __init__(self, sender: SyslogSender) -> None:
        self.sender = sender

    def emit(self, document: dict[str, Any]) -> None:
        self.sender.send(document)

    def close(self) -> None:
        self.sender.close()


def alert_document(
    detection: Detection, action: str, redact_wallets: bool = False
) -> dict[str, Any]:
    """Return the ECS document of a live alert.

    It is the document ``detector scan`` writes, with ``event.action`` and
    the interface in ``observer.ingress.interface.name`` in place of the
    capture file.
    """
    document = to_ecs(detection, redact_wallets)
    document["event"]["action"] = action
    log_fields = document.get("log")
    if isinstance(log_fields, dict):
        log_fields.get("file", {}).pop("path", None)
        if not log_fields.get("file"):
            log_fields.pop("file", None)
        if not log_fields:
            del document["log"]
    document["observer"] = {"ingress": {"interface": {"name": detection.source}}}
    return document


Emit = Callable[[Detection, str], None]


class AlertDispatcher:
    """Decide which reports of mining flows become alerts, and when.

    ``emit`` is called with a detection and its action. The dispatcher
    remembers the sessions it alerted on, at most ``max_sessions`` (the
    least recently reported forgotten first; a forgotten session that
    comes back is alerted on again).
    """

    def __init__(
        self,
        emit: Emit,
        interval: float = ALERT_INTERVAL_SECONDS,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.emit = emit
        self.interval = interval
        self.max_sessions = max_sessions
        # Session id -> when its last alert or update was written.
        self._written: OrderedDict[str, float] = OrderedDict()
        # Session id -> the latest report not yet written.
        self._pending: dict[str, Detection] = {}

    def offer(self, detection: Detection, now: float) -> None:
        """Take one report of a mining flow, seen at ``now``."""
        session = detection.session_id or str(detection.flow)
        if session not in self._written:
            self._written[session] = now
            self._forget_oldest()
            self.emit(detection, ACTION_DETECTED)
            return
        self._written.move_to_end(session)
        self._pending[session] = detection

    def tick(self, now: float) -> None:
        """Write the updates whose session was last written ``interval`` ago."""
        due = [
            session
            for session in self._pending
            if now - self._written.get(session, now - self.interval) >= self.interval
        ]
        for session in due:
            detection = self._pending.pop(session)
            self._written[session] = now
            self.emit(detection, ACTION_UPDATED)

    def flush(self, now: float) -> None:
        """Write every pending update."""
        pending = self._pending
        self._pending = {}
        for session, detection in pending.items():
            self._written[session] = now
            self.emit(detection, ACTION_UPDATED)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _forget_oldest(self) -> None:
        while len(self._written) > self.max_sessions:
            session, _ = self._written.popitem(last=False)
            detection = self._pending.pop(session, None)
            if detection is not None:
                self.emit(detection, ACTION_UPDATED)
