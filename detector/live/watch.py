"""The live watch: capture on container bridges and alert as evidence arrives.

One loop, in one thread, waits on every open interface with select(), reads
the packets each has ready as a batch and feeds them to the same
:class:`~detector.scan.CaptureScanner` a capture file goes through, one per
interface, all sharing one inspection context (passive DNS and sessions).
Between batches it looks for interfaces that came or went, ends idle and
old flows by the clock, writes due updates and refreshes the metrics.

Signals only set flags the loop reads: SIGHUP reloads the signatures and the
inventory, SIGTERM and SIGINT end the loop, after which every open flow is
judged and every pending update written.
"""

from __future__ import annotations

import logging
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from detector.attribution import (
    REASON_NOT_HELD,
    REASON_NOT_IN_INVENTORY,
    Inventory,
    InventoryError,
    attribute,
    load_static,
)
from detector.engine.context import InspectionContext
from detector.engine.sessions import ALERT_INTERVAL_SECONDS
from detector.errors import CaptureError, DetectorError
from detector.flows.batch import BatchFlowTable, key_bytes
from detector.flows.table import IDLE_TIMEOUT, MAX_FLOWS
from detector.live.alerts import AlertDispatcher, AlertOutput, alert_document
from detector.live.capture import (
    ANY_INTERFACE,
    CONTAINER_BRIDGES,
    DEFAULT_BUFFER_BYTES,
    DEFAULT_FILTER,
    DEFAULT_SNAPLEN,
    LiveCapture,
    interface_names,
    select_interfaces,
)
from detector.live.docker import DockerFollower
from detector.live.metrics import WatchMetrics
from detector.model import Confidence, Detection, Packet
from detector.scan import CaptureScanner
from detector.signatures import Signatures, load_signatures
from detector.sinks.ecs import community_id

if TYPE_CHECKING:
    from detector.live.evidence import EvidenceRecorder

log = logging.getLogger(__name__)

# Seconds select() waits when no packet comes: how late the loop notices a
# signal, and the finest step of its clock work.
TICK_SECONDS = 0.2

# Seconds between two passes that end idle flows and write due updates.
HOUSEKEEPING_SECONDS = 1.0

# Seconds between two walks of the whole flow tables for closed flows and
# flows older than the absolute timeout. A walk of a full table (262,144
# flows) takes some tens of milliseconds, so it runs only this often.
ENDED_CHECK_SECONDS = 5.0

# Seconds a closed flow stays in the table for late retransmissions before
# it is reported and removed.
CLOSED_LINGER_SECONDS = 2.0

# A flow open for this long is reported and started afresh: a mining
# connection may stay open for days, and its session's update then carries
# counters at most this old.
ABSOLUTE_TIMEOUT = 3600.0

# Seconds between two looks for interfaces that came or went. Docker creates
# a network's bridge when the network is created; two seconds is soon enough
# for the first container started on it.
RESCAN_SECONDS = 2.0

# Batches read from one interface before the others get their turn, so one
# busy interface cannot starve the rest or the clock work.
MAX_BATCHES_PER_TURN = 8

# The capture loop counts as stalled when it has not turned for this long.
STALL_SECONDS = 10.0

# Seconds an alert waits for the Docker events thread, when one runs, while
# no known container has the client's address. A miner can connect within a few hundred
# milliseconds of its container starting, before the start event is read
# and the container inspected.
ATTRIBUTION_WAIT_SECONDS = 1.0

# Seconds between two trims of the Docker history (see live/docker.py).
HISTORY_TRIM_SECONDS = 3600.0

# Attribution reasons that the Docker events thread may still change.
_REASONS_EVENTS_MAY_CHANGE = (REASON_NOT_IN_INVENTORY, REASON_NOT_HELD)

# The same message is logged at most once per this many seconds; the rest
# are counted and the count logged with the next one.
LOG_INTERVAL_SECONDS = 60.0


@dataclass(slots=True)
class WatchOptions:
    """The options of ``detector watch``: what to capture and how."""

    interfaces: tuple[str, ...] = ()
    bpf: str = DEFAULT_FILTER
    snaplen: int = DEFAULT_SNAPLEN
    promiscuous: bool = True
    buffer_bytes: int = DEFAULT_BUFFER_BYTES
    signatures_dir: Path | None = None
    inventory_path: Path | None = None
    min_confidence: Confidence = Confidence.MEDIUM
    idle_timeout: float = IDLE_TIMEOUT
    absolute_timeout: float = ABSOLUTE_TIMEOUT
    max_flows: int = MAX_FLOWS
    rescan_interval: float = RESCAN_SECONDS
    update_interval: float = ALERT_INTERVAL_SECONDS
    redact_wallets: bool = False
    evidence_dir: Path | None = None
    docker_socket: str | None = None

    @property
    def patterns(self) -> tuple[str, ...]:
        """The interface name patterns: those given, or the container bridges."""
        return self.interfaces or CONTAINER_BRIDGES


def load_inventory(path: Path) -> Inventory:
    """Load a saved inventory, or a static YAML one by its suffix.

    Raises:
        InventoryError: the file cannot be read or is not an inventory.
    """
    if path.suffix.lower() in (".yaml", ".yml"):
        return load_static(path)
    return Inventory.load(path)


class RateLimitedLog:
    """Log each kind of message at most once per LOG_INTERVAL_SECONDS."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def __call__(
        self, level: int, kind: str, message: str, *, exc_info: bool = False
    ) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < LOG_INTERVAL_SECONDS:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += f" ({suppressed} more like this since the last one)"
        self.logger.log(level, "%s", message, exc_info=exc_info)


@dataclass(slots=True)
class _Interface:
    """One captured interface and its part of the pipeline."""

    name: str
    ifindex: int
    capture: LiveCapture
    scanner: CaptureScanner
    # Totals already added to the metrics.
    flows_counted: int = 0
    malformed_packets: int = 0
    malformed_messages: int = 0
    unsupported_packets: int = 0
    stream_gaps: int = 0


@dataclass(slots=True)
class _Totals:
    """The watch's totals, for its closing log line."""

    packets: int = 0
    alerts: int = 0
    updates: int = 0


class Watcher:
    """Capture on the chosen interfaces until asked to stop.

    Raises:
        DetectorError: from the constructor, when the signatures or the
            inventory cannot be loaded.
    """

    def __init__(
        self,
        options: WatchOptions,
        outputs: list[AlertOutput],
        metrics: WatchMetrics | None = None,
    ) -> None:
        self.options = options
        self.outputs = outputs
        self.metrics = metrics
        self.signatures: Signatures = load_signatures(options.signatures_dir)
        self.inventory: Inventory | None = (
            load_inventory(options.inventory_path)
            if options.inventory_path is not None
            else None
        )
        self.context = InspectionContext()
        self.dispatcher = AlertDispatcher(self._emit, options.update_interval)
        self.evidence: EvidenceRecorder | None = None
        if options.evidence_dir is not None:
            # Imported only when asked for, as a watch without it never needs it.
            from detector.live.evidence import EvidenceRecorder

            self.evidence = EvidenceRecorder(options.evidence_dir)
        self.docker: DockerFollower | None = None
        if options.docker_socket is not None:
            self.docker = DockerFollower(options.docker_socket)
        self._interfaces: dict[str, _Interface] = {}
        # Keys of flows reported while open, whose end is not yet reported,
        # by interface: one flow crosses two bridges when it is routed
        # between them, and each capture judges it on its own.
        self._open_mining: set[bytes] = set()
        # Reports waiting for the Docker events thread to name their
        # container, in order, each with its deadline (monotonic seconds).
        self._awaiting: deque[tuple[float, Detection]] = deque()
        self._stop = threading.Event()
        self._reload = False
        self._next_history_trim = time.time() + HISTORY_TRIM_SECONDS
        # Set when standard output's reader went away; the watch then stops.
        self.output_closed = False
        self._last_turn = time.monotonic()
        self._totals = _Totals()
        self._limited = RateLimitedLog(log)
        self._failed_opens: dict[str, str] = {}
        # Interfaces named literally that were not found, logged once each.
        self._missing: set[str] = set()

    # -- control ------------------------------------------------------------

    def start_docker(self) -> None:
        """Snapshot the Docker daemon and follow it, when one was named.

        Raises:
            InventoryError: the daemon cannot be reached or listed.
        """
        if self.docker is not None:
            self.docker.start()

    def stop(self) -> None:
        """Ask the loop to end; safe from a signal handler or another thread."""
        self._stop.set()

    def reload(self) -> None:
        """Ask the loop to reload signatures and inventory at its next turn."""
        self._reload = True

    def healthy(self) -> bool:
        """Return whether the capture loop turned recently."""
        return time.monotonic() - self._last_turn < STALL_SECONDS

    @property
    def interfaces(self) -> list[str]:
        return sorted(self._interfaces)

    # -- the loop -----------------------------------------------------------

    def run(self) -> None:
        """Capture until :meth:`stop`; then judge open flows and flush."""
        log.info(
            "watch started: interfaces matching %s, filter %r",
            ", ".join(self.options.patterns),
            self.options.bpf,
        )
        now = time.time()
        next_rescan = 0.0
        next_housekeeping = now + HOUSEKEEPING_SECONDS
        next_ended_check = now + ENDED_CHECK_SECONDS
        try:
            while not self._stop.is_set():
                self._last_turn = time.monotonic()
                if self._reload:
                    self._reload = False
                    self._reload_now()
                if time.monotonic() >= next_rescan:
                    self.rescan()
                    next_rescan = time.monotonic() + self.options.rescan_interval
                self._wait_and_read()
                now = time.time()
                for interface in self._interfaces.values():
                    interface.scanner.report_waiting(now)
                if self._awaiting:
                    self._release_awaiting()
                if now >= next_housekeeping:
                    next_housekeeping = now + HOUSEKEEPING_SECONDS
                    ended = now >= next_ended_check
                    if ended:
                        next_ended_check = now + ENDED_CHECK_SECONDS
                    self._housekeeping(now, ended)
        finally:
            self._shut_down()

    def _wait_and_read(self) -> None:
        interfaces = list(self._interfaces.values())
        if not interfaces:
            self._stop.wait(TICK_SECONDS)
            return
        try:
            ready, _, _ = select.select(
                [item.capture for item in interfaces], [], [], TICK_SECONDS
            )
        except (OSError, ValueError):
            # A capture closed under us; the next rescan sorts it out.
            return
        for capture in ready:
            interface = self._interfaces.get(capture.interface)
            if interface is not None:
                self._read(interface)

    def _read(self, interface: _Interface) -> None:
        for _ in range(MAX_BATCHES_PER_TURN):
            try:
                batch = interface.capture.read()
            except CaptureError as exc:
                if interface.name in interface_names():
                    log.warning("%s", exc)
                    self._close(interface.name, "the capture failed")
                else:
                    # A bridge deleted with its network ends its capture so.
                    self._close(interface.name, "it is gone")
                return
            if batch is None:
                return
            self._totals.packets += len(batch)
            if self.metrics is not None:
                self.metrics.count_packets(
                    interface.name, len(batch), int(batch.captured_lengths.sum())
                )
            try:
                interface.scanner.feed(batch)
            except Exception:  # noqa: BLE001 - one bad batch must not end a sidecar
                self._limited(
                    logging.ERROR,
                    "pipeline",
                    f"{interface.name}: a batch of {len(batch)} packets failed"
                    " in the pipeline and was skipped",
                    exc_info=True,
                )
                if self.metrics is not None:
                    self.metrics.count_decode_errors("internal", 1)

    # -- interfaces ---------------------------------------------------------

    def rescan(self) -> None:
        """Open the interfaces that match and are not open; close vanished ones."""
        present = interface_names()
        patterns = self.options.patterns
        matching = select_interfaces(patterns, present)
        if ANY_INTERFACE in patterns:
            # libpcap's "any" is no interface of its own: it is always there.
            present[ANY_INTERFACE] = 0
            matching.append(ANY_INTERFACE)
        for name in list(self._interfaces):
            item = self._interfaces[name]
            if name not in present or present[name] != item.ifindex:
                self._close(name, "it is gone")
        for name in matching:
            if name not in self._interfaces:
                self._open(name, present[name])
        if self.metrics is not None:
            self.metrics.set_interfaces(len(self._interfaces))
        self._note_missing(self.options.interfaces, present)

    def _note_missing(self, named: tuple[str, ...], present: dict[str, int]) -> None:
        """Log, once each, the interfaces named literally with --interface that
        do not exist, and, once a minute, that nothing matches at all."""
        for pattern in named:
            literal = not any(character in pattern for character in "*?[")
            if literal and pattern not in present:
                if pattern not in self._missing:
                    self._missing.add(pattern)
                    log.warning("interface %s not found; waiting for it", pattern)
            else:
                self._missing.discard(pattern)
        patterns = self.options.patterns
        if not select_interfaces(patterns, present) and ANY_INTERFACE not in patterns:
            self._limited(
                logging.WARNING,
                "no-interfaces",
                "no interface matches "
                + ", ".join(patterns)
                + "; waiting for one to appear",
            )

    def _open(self, name: str, ifindex: int) -> None:
        options = self.options
        try:
            capture = LiveCapture(
                name,
                bpf=options.bpf,
                snaplen=options.snaplen,
                promiscuous=options.promiscuous,
                buffer_bytes=options.buffer_bytes,
            )
        except CaptureError as exc:
            reason = str(exc)
            # Logged once per reason, not at every rescan.
            if self._failed_opens.get(name) != reason:
                self._failed_opens[name] = reason
                log.error("%s", reason)
            return
        self._failed_opens.pop(name, None)
        scanner = CaptureScanner(
            self.signatures,
            name,
            max_flows=options.max_flows,
            on_detection=self._on_flow_end,
            context=self.context,
            idle_timeout=options.idle_timeout,
            on_mining=self._on_mining,
            on_packet=self._on_packet if self.evidence is not None else None,
            keep_detections=False,
        )
        self._interfaces[name] = _Interface(name, ifindex, capture, scanner)
        if self.metrics is not None:
            self.metrics.set_interfaces(len(self._interfaces))
        log.info(
            "interface %s added: watching %s (link type %d)",
            name,
            name,
            capture.linktype,
        )

    def _close(self, name: str, reason: str) -> None:
        interface = self._interfaces.pop(name, None)
        if interface is None:
            return
        self._update_metrics(interface)
        try:
            interface.scanner.close()
        except Exception:  # noqa: BLE001 - the other interfaces go on
            log.exception("%s: judging its open flows failed", name)
        try:
            interface.capture.close()
        except Exception:  # noqa: BLE001 - closing a vanished device may fail
            log.debug("%s: closing the capture failed", name, exc_info=True)
        if self.metrics is not None:
            self.metrics.forget_interface(name)
            self.metrics.set_interfaces(len(self._interfaces))
        log.info("interface %s removed: %s", name, reason)

    # -- detections ---------------------------------------------------------

    def _on_packet(self, key: bytes, packet: Packet) -> None:
        assert self.evidence is not None
        self.evidence.add(
            _interface_key(packet.source, key),
            packet.timestamp,
            packet.linktype,
            packet.data,
            packet.wire_length,
        )

    def _on_mining(self, detection: Detection) -> None:
        """Report a flow whose evidence made it mining while it is open."""
        self._open_mining.add(_flow_key(detection))
        self._count_detection(detection)
        self._report(detection, first=True)

    def _on_flow_end(self, detection: Detection) -> None:
        """Report a mining flow that ended: closed, idle, aged, evicted or at
        shutdown."""
        key = _flow_key(detection)
        first = key not in self._open_mining
        if first:
            self._count_detection(detection)
        else:
            self._open_mining.discard(key)
        self._report(detection, first)
        if self.evidence is not None:
            self.evidence.forget(key)

    def _count_detection(self, detection: Detection) -> None:
        if self.metrics is not None:
            self.metrics.count_detection(detection.confidence.name.lower())

    def _report(self, detection: Detection, first: bool) -> None:
        """Alert on or update a detection; ``first`` is its flow's first report,
        when the evidence capture is written."""
        if detection.confidence < self.options.min_confidence:
            return
        detection = self._attribute(detection)
        if self.evidence is not None and first:
            self._write_evidence(detection)
        # Reports keep their order: once one waits, the later ones queue too.
        if self._awaiting or self._may_be_named_later(detection):
            self._awaiting.append(
                (time.monotonic() + ATTRIBUTION_WAIT_SECONDS, detection)
            )
            return
        self.dispatcher.offer(detection, time.time())

    def _may_be_named_later(self, detection: Detection) -> bool:
        attribution = detection.attribution
        return (
            self.docker is not None
            and self.docker.following
            and attribution is not None
            and attribution.container is None
            and attribution.reason in _REASONS_EVENTS_MAY_CHANGE
        )

    def _release_awaiting(self, everything: bool = False) -> None:
        """Offer the waiting reports whose container is now named or whose
        wait is over; with ``everything``, all of them."""
        while self._awaiting:
            deadline, detection = self._awaiting[0]
            named = self._attribute(detection)
            if (
                not everything
                and self._may_be_named_later(named)
                and time.monotonic() < deadline
            ):
                return
            self._awaiting.popleft()
            self.dispatcher.offer(named, time.time())

    def _attribute(self, detection: Detection) -> Detection:
        """Name the container from Docker's live inventory, else the file's."""
        if self.docker is not None:
            live = self.docker.current(time.time())
            found = attribute(detection, live, None)
            if self.inventory is None or (
                found.attribution is not None and found.attribution.container
            ):
                return found
        return attribute(detection, self.inventory, None)

    def _write_evidence(self, detection: Detection) -> None:
        assert self.evidence is not None
        # The interface is in the name: a flow routed between two bridges is
        # captured, and its evidence kept, on each.
        name = (
            f"{detection.session_id}-{detection.source}-{community_id(detection.flow)}"
        )
        try:
            path = self.evidence.write(_flow_key(detection), name)
        except (OSError, DetectorError) as exc:
            self._limited(
                logging.ERROR, "evidence", f"cannot write the evidence capture: {exc}"
            )
            return
        if path is not None:
            log.info("evidence for %s written to %s", detection.flow, path)

    def _emit(self, detection: Detection, action: str) -> None:
        session = (
            self.context.sessions.get(detection.session_id)
            if detection.session_id
            else None
        )
        document = alert_document(
            detection, action, self.options.redact_wallets, session
        )
        if action == "mining-detected":
            self._totals.alerts += 1
            log.warning(
                "mining %s: %s on %s (%s, %s)",
                action.removeprefix("mining-"),
                detection.flow,
                detection.source,
                detection.mining.dialect,
                detection.confidence.name.lower(),
            )
        else:
            self._totals.updates += 1
        written = False
        for output in self.outputs:
            try:
                output.emit(document)
            except BrokenPipeError:
                # The reader of standard output went away: a sidecar whose
                # alerts go nowhere should stop, so its supervisor notices.
                log.error("the alert output was closed by its reader; stopping")
                self.output_closed = True
                self.stop()
            except (OSError, DetectorError) as exc:
                if self.metrics is not None:
                    self.metrics.count_write_error()
                self._limited(
                    logging.ERROR,
                    f"output-{id(output)}",
                    f"cannot write an alert: {exc}",
                )
            else:
                written = True
        if written and self.metrics is not None:
            self.metrics.count_alert(action)

    # -- clock work ---------------------------------------------------------

    def _check_outputs(self) -> None:
        """Stop when the reader of standard output went away, even with no
        alert to write, so that a supervisor notices the watch end."""
        for output in self.outputs:
            reader_gone = getattr(output, "reader_gone", None)
            if reader_gone is not None and reader_gone():
                log.error("the alert output was closed by its reader; stopping")
                self.output_closed = True
                self.stop()
                return

    def _housekeeping(self, now: float, ended: bool) -> None:
        self._check_outputs()
        for interface in list(self._interfaces.values()):
            scanner = interface.scanner
            try:
                scanner.expire(now)
                if ended:
                    scanner.expire_ended(
                        now, self.options.absolute_timeout, CLOSED_LINGER_SECONDS
                    )
            except Exception:  # noqa: BLE001 - the loop must go on
                self._limited(
                    logging.ERROR,
                    "expire",
                    f"{interface.name}: ending idle flows failed",
                    exc_info=True,
                )
            self._update_metrics(interface)
        self.dispatcher.tick(now)
        if self.docker is not None and now >= self._next_history_trim:
            self._next_history_trim = now + HISTORY_TRIM_SECONDS
            dropped = self.docker.forget_old(now)
            if dropped:
                log.info("dropped %d ended container addresses from history", dropped)
        if self.metrics is not None:
            self.metrics.set_flows_tracked(
                sum(len(item.scanner.table) for item in self._interfaces.values())
            )

    def _update_metrics(self, interface: _Interface) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        stats = interface.scanner.result.stats
        metrics.count_inspected(stats.flows - interface.flows_counted)
        interface.flows_counted = stats.flows
        for kind in (
            "malformed_packets",
            "malformed_messages",
            "unsupported_packets",
            "stream_gaps",
        ):
            total = getattr(stats, kind)
            seen = getattr(interface, kind)
            if total > seen:
                metrics.count_decode_errors(kind, total - seen)
                setattr(interface, kind, total)
        capture = interface.capture.stats()
        metrics.set_kernel_drops(
            interface.name, capture.dropped, capture.interface_dropped
        )

    # -- reload and stop ----------------------------------------------------

    def _reload_now(self) -> None:
        options = self.options
        try:
            signatures = load_signatures(options.signatures_dir)
            inventory = (
                load_inventory(options.inventory_path)
                if options.inventory_path is not None
                else None
            )
        except (DetectorError, InventoryError, OSError) as exc:
            log.error("reload failed, keeping the signatures and inventory: %s", exc)
            if self.metrics is not None:
                self.metrics.count_reload(False)
            return
        self.signatures = signatures
        self.inventory = inventory
        for interface in self._interfaces.values():
            interface.scanner.signatures = signatures
            table = interface.scanner.table
            if isinstance(table, BatchFlowTable):
                table.set_server_ports(signatures.pool_ports)
        if self.metrics is not None:
            self.metrics.count_reload(True)
        log.info("signatures reloaded%s", " and inventory" if inventory else "")

    def _shut_down(self) -> None:
        for name in list(self._interfaces):
            self._close(name, "the watch is stopping")
        self._release_awaiting(everything=True)
        self.dispatcher.flush(time.time())
        if self.docker is not None:
            self.docker.stop()
        for output in self.outputs:
            try:
                output.close()
            except (OSError, DetectorError) as exc:
                log.error("cannot close an output: %s", exc)
        totals = self._totals
        log.info(
            "watch stopped: %d packets, %d alerts, %d updates",
            totals.packets,
            totals.alerts,
            totals.updates,
        )


def _interface_key(interface: str, key: bytes) -> bytes:
    """Return a flow key made unique across interfaces."""
    return interface.encode("utf-8", "surrogateescape") + b"\0" + key


def _flow_key(detection: Detection) -> bytes:
    return _interface_key(detection.source, key_bytes(detection.flow))


SignalHandler = Callable[[int, FrameType | None], None]


class Controls:
    """The target of the watch's signals: the watcher once it exists.

    Until then a stop request is remembered (the watch is loading signatures,
    listing Docker's containers or starting the metrics server), so a SIGTERM
    during start-up still ends the watch cleanly.
    """

    def __init__(self) -> None:
        self.watcher: Watcher | None = None
        self.stop_requested = False

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        else:
            self.stop_requested = True

    def reload(self) -> None:
        # Before the watcher exists there is nothing to reload: it reads the
        # files as it starts.
        if self.watcher is not None:
            self.watcher.reload()

    def attach(self, watcher: Watcher) -> None:
        self.watcher = watcher
        if self.stop_requested:
            watcher.stop()


@contextmanager
def signal_handlers(controls: Controls) -> Iterator[None]:
    """Route SIGHUP to a reload and SIGTERM and SIGINT to a stop, while inside."""

    def on_stop(signum: int, frame: FrameType | None) -> None:
        controls.stop()

    def on_reload(signum: int, frame: FrameType | None) -> None:
        controls.reload()

    handlers: dict[signal.Signals, SignalHandler] = {
        signal.SIGTERM: on_stop,
        signal.SIGINT: on_stop,
        signal.SIGHUP: on_reload,
    }
    previous = {number: signal.signal(number, handlers[number]) for number in handlers}
    try:
        yield
    finally:
        for number, earlier in previous.items():
            signal.signal(number, earlier)
