"""Alerts of a live watch: new findings at once, later reports folded.

A watch reports a flow as soon as its evidence makes it mining, and again
when it ends. A miner that reconnects makes a new flow of the same session.
:class:`AlertDispatcher` writes ``mining-detected`` at once for the first
report of a session and for each pool endpoint or dialect new to it. It folds
the other reports into one ``mining-updated`` per session, written at most
every ``interval`` seconds and on :meth:`AlertDispatcher.flush`, so a busy
session does not flood the sinks.
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import select
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import IO, Any, Protocol

from detector.engine.sessions import ALERT_INTERVAL_SECONDS, MAX_SESSIONS, Session
from detector.model import Detection
from detector.sinks.ecs import isoformat, to_ecs
from detector.sinks.syslog import SyslogSender

log = logging.getLogger(__name__)

# An alert document of the bundled samples is 2 to 4 KiB, so a 100 MiB file
# stores 25,000 to 50,000 alerts. Five rotated files keep weeks of a host's alerts
# in a few hundred megabytes, as Debian's default logrotate keeps four weekly
# files plus the current one.
DEFAULT_ROTATE_BYTES = 100 * 1024 * 1024
DEFAULT_ROTATE_KEEP = 5

# Seconds between two log lines about alerts dropped by a slow output.
DROP_LOG_INTERVAL_SECONDS = 60.0

# Endpoint and dialect pairs of one session alerted on at once. Beyond this
# many (a client scanning a pool's ports), new ones are folded into updates.
MAX_KINDS_PER_SESSION = 16

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

    def reader_gone(self) -> bool:
        """Return whether the stream is a pipe or socket whose reader closed it."""
        try:
            descriptor = self.stream.fileno()
            mode = os.fstat(descriptor).st_mode
        except (OSError, ValueError, io.UnsupportedOperation):
            return False
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
            return False
        poller = select.poll()
        poller.register(descriptor, select.POLLOUT)
        return any(
            events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0)
        )

    def close(self) -> None:
        try:
            if self.close_stream:
                self.stream.close()
            else:
                self.stream.flush()
        except BrokenPipeError:
            # The reader already went; the alerts it missed were reported.
            pass


# Alerts waiting for a slow output before new ones are dropped: at 2 to 4 KiB
# a document, 10,000 take 20 to 40 MiB, hours of alerts on a busy host.
MAX_PENDING_ALERTS = 10_000

# Seconds the watch waits, when it stops, for a background output to send
# the alerts still queued.
CLOSE_TIMEOUT_SECONDS = 10.0


class BackgroundOutput:
    """Hand alerts to ``output`` from a thread, so a slow receiver (a syslog
    server that does not respond) never holds up the capture loop.

    At most ``max_pending`` alerts wait; further ones are dropped, counted in
    ``dropped`` and logged at most once a minute.
    """

    def __init__(
        self, output: AlertOutput, max_pending: int = MAX_PENDING_ALERTS
    ) -> None:
        self.output = output
        self.dropped = 0
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(max_pending)
        self._last_drop_log = float("-inf")
        self._thread = threading.Thread(
            target=self._run, name="alert-output", daemon=True
        )
        self._thread.start()

    def emit(self, document: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(document)
        except queue.Full:
            self.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_log >= DROP_LOG_INTERVAL_SECONDS:
                self._last_drop_log = now
                log.error(
                    "alert output is %d alerts behind: %d alerts dropped so far;"
                    " check that the syslog receiver is up and reachable",
                    self._queue.maxsize,
                    self.dropped,
                )

    def close(self) -> None:
        """Send what is queued (for at most CLOSE_TIMEOUT_SECONDS), then close."""
        self._queue.put(None)
        self._thread.join(CLOSE_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            log.error(
                "alert output did not drain within %.0f s: %d alerts left unsent",
                CLOSE_TIMEOUT_SECONDS,
                self._queue.qsize(),
            )
            return
        self.output.close()

    def _run(self) -> None:
        while True:
            document = self._queue.get()
            if document is None:
                return
            try:
                self.output.emit(document)
            except Exception:  # noqa: BLE001 - the thread must outlive one bad send
                log.exception("alert output failed")


class SyslogOutput:
    """Send each alert document to a syslog receiver."""

    def __init__(self, sender: SyslogSender) -> None:
        self.sender = sender

    def emit(self, document: dict[str, Any]) -> None:
        self.sender.send(document)

    def close(self) -> None:
        self.sender.close()


def alert_document(
    detection: Detection,
    action: str,
    redact_wallets: bool = False,
    session: Session | None = None,
) -> dict[str, Any]:
    """Return the ECS document of a live alert.

    It is the document ``detector scan`` writes, with ``event.action``, the
    interface in ``observer.ingress.interface.name`` in place of the capture
    file and, given the ``session``, its totals over every flow so far under
    ``mining.session``.
    """
    document = to_ecs(detection, redact_wallets)
    document["event"]["action"] = action
    if session is not None:
        document["mining"]["session"].update(
            {
                "flows": session.flows,
                "first_seen": isoformat(session.first_seen),
                "last_seen": isoformat(session.last_seen),
                "jobs": session.jobs,
                "shares": {
                    "submitted": session.shares_submitted,
                    "accepted": session.shares_accepted,
                    "rejected": session.shares_rejected,
                },
                "dialects": sorted(session.dialects),
                "servers": sorted(session.servers),
            }
        )
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

    ``emit`` is called with a detection and its action. A report is alerted
    on at once when its session is new, or when it shows the session on a
    pool endpoint or in a dialect not alerted on before (a pool serving two
    coins on two ports). Other reports are reconnects and flow ends, folded
    into updates. The dispatcher remembers at most ``max_sessions`` sessions,
    the least recently reported forgotten first; a forgotten session that
    comes back is alerted on again.
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
        # Session id -> the (server endpoint, dialect) pairs alerted on.
        self._alerted: dict[str, set[tuple[str, str]]] = {}
        # Session id -> the latest report not yet written.
        self._pending: dict[str, Detection] = {}
        # Session id -> the report written last, so one that repeats it (a
        # flow's end reported with nothing new since its mid-flow report) is
        # not written again.
        self._last: dict[str, Detection] = {}

    def offer(self, detection: Detection, now: float) -> None:
        """Take one report of a mining flow, seen at ``now``."""
        session = detection.session_id or str(detection.flow)
        flow = detection.flow
        kind = (f"{flow.server_ip}:{flow.server_port}", detection.mining.dialect)
        alerted = self._alerted.get(session)
        if alerted is None or (
            kind not in alerted and len(alerted) < MAX_KINDS_PER_SESSION
        ):
            self._written[session] = now
            self._written.move_to_end(session)
            self._alerted.setdefault(session, set()).add(kind)
            self._last[session] = detection
            self._pending.pop(session, None)
            self._forget_oldest()
            self.emit(detection, ACTION_DETECTED)
            return
        self._written.move_to_end(session)
        if detection == self._last.get(session):
            self._pending.pop(session, None)
            return
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
            self._last[session] = detection
            self.emit(detection, ACTION_UPDATED)

    def flush(self, now: float) -> None:
        """Write every pending update."""
        pending = self._pending
        self._pending = {}
        for session, detection in pending.items():
            self._written[session] = now
            self._last[session] = detection
            self.emit(detection, ACTION_UPDATED)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _forget_oldest(self) -> None:
        while len(self._written) > self.max_sessions:
            session, _ = self._written.popitem(last=False)
            self._last.pop(session, None)
            self._alerted.pop(session, None)
            detection = self._pending.pop(session, None)
            if detection is not None:
                self.emit(detection, ACTION_UPDATED)
