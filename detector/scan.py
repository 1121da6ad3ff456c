"""The scan pipeline: capture → decode → flows → reassembly → inspection.

:func:`scan_paths` reads capture files one after another and returns every
detection with the counts a summary needs. A file that fails keeps the
detections made before the failure, and the scan goes on with the next file.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import multiprocessing.queues
import os
import queue
import signal
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from multiprocessing.synchronize import Event as EventType
from typing import Any

import numpy as np

from detector.capture import open_capture
from detector.capture.batch import PacketBatch, open_batches
from detector.capture.reader import STDIN_PATH
from detector.decode import (
    SUPPORTED_LINKTYPES,
    BatchDecoder,
    PacketDecoder,
    SegmentBatch,
    UnsupportedLinkType,
)
from detector.decode.decoder import IPPROTO_TCP
from detector.engine.context import InspectionContext
from detector.engine.inspector import FlowInspector
from detector.errors import CaptureError, DecodeError
from detector.flows.batch import BatchFlowTable, FlowKeys, flow_keys
from detector.flows.table import IDLE_TIMEOUT, MAX_FLOWS, Flow, FlowTable
from detector.model import (
    FIN,
    RST,
    SYN,
    TCP,
    Confidence,
    Detection,
    Direction,
    FlowKey,
    Packet,
    Segment,
)
from detector.signatures import Signatures, load_signatures

log = logging.getLogger(__name__)

# File name endings picked up when a directory is scanned. Files named on the
# command line are read whatever their name, since the format is found by magic.
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz")

# Idle flows are expired every this many packets, so the flow table is walked
# rarely while flows still end close to their idle timeout.
EXPIRE_EVERY_PACKETS = 65536

# A progress callback is called every this many packets.
PROGRESS_EVERY_PACKETS = 20000

# Seconds a live report waits, after a flow turns mining, until its dialect is
# distinguished. A lone Stratum subscribe fits several dialects, and the
# pool's reply, which settles it, follows within milliseconds. A proxied
# flow's Stratum follows its CONNECT or SOCKS reply as quickly.
DIALECT_WAIT_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class FileError:
    """Why a file could not be read to its end."""

    source: str
    message: str
    offset: int | None = None

    def __str__(self) -> str:
        if self.offset is None:
            return f"{self.source}: {self.message}"
        return f"{self.source} at byte {self.offset}: {self.message}"


@dataclass(slots=True)
class ScanStats:
    """Counts for the scan summary."""

    files: int = 0
    files_failed: int = 0
    packets: int = 0
    segments: int = 0
    flows: int = 0
    detections: int = 0
    malformed_packets: int = 0
    unsupported_packets: int = 0
    malformed_messages: int = 0
    stream_gaps: int = 0
    fragments_expired: int = 0
    flows_evicted: int = 0
    seconds: float = 0.0

    def add(self, other: ScanStats) -> None:
        for item in fields(self):
            setattr(
                self, item.name, getattr(self, item.name) + getattr(other, item.name)
            )


@dataclass(slots=True)
class FileResult:
    """The detections and counts of one capture file."""

    source: str
    detections: list[Detection] = field(default_factory=list)
    stats: ScanStats = field(default_factory=ScanStats)
    error: FileError | None = None
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False


@dataclass(slots=True)
class ScanReport:
    """The results of every file of a scan, in the order they were read."""

    files: list[FileResult] = field(default_factory=list)
    stats: ScanStats = field(default_factory=ScanStats)
    interrupted: bool = False

    @property
    def detections(self) -> list[Detection]:
        return [d for result in self.files for d in result.detections]

    @property
    def errors(self) -> list[FileError]:
        return [result.error for result in self.files if result.error is not None]


ProgressCallback = Callable[[str, int], None]
DetectionCallback = Callable[[Detection], None]
# Called with a flow's key (as flows.batch.flow_keys gives it) and each
# packet of the flow that is inspected.
PacketCallback = Callable[[bytes, Packet], None]


class CaptureScanner:
    """Scan one capture file: the per-file state of the pipeline.

    With ``fast`` (the default), packets are read, decoded and counted in
    batches, and only the segments that still need inspection are handled one
    by one. Without it, every packet goes through the per-packet decoder and
    :class:`FlowTable`. Both give the same detections and counts.

    A live watch feeds batches with :meth:`feed` instead of :meth:`run`. It
    sets ``on_mining``, called with a detection as soon as a flow's evidence
    makes it mining, while the flow is still open (``on_detection`` follows
    when the flow ends), ``on_packet``, called with the packets inspected, and
    ``keep_detections`` False, so a process that runs for months does not
    keep every detection in memory.
    """

    def __init__(
        self,
        signatures: Signatures,
        source: str,
        max_flows: int = MAX_FLOWS,
        on_detection: DetectionCallback | None = None,
        context: InspectionContext | None = None,
        fast: bool = True,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        on_mining: DetectionCallback | None = None,
        on_packet: PacketCallback | None = None,
        keep_detections: bool = True,
    ) -> None:
        self.signatures = signatures
        self.source = source
        self.on_detection = on_detection
        self.on_mining = on_mining
        self.on_packet = on_packet
        self.keep_detections = keep_detections
        # Flows whose early report waits for their dialect: the Flow, its
        # slot in a batch table, and the capture time the wait began.
        self._waiting: dict[FlowKey, tuple[Flow, int | None, float]] = {}
        # Shared with the other files of a scan, so DNS answers and sessions
        # carry over from one capture to the next.
        self.context = context if context is not None else InspectionContext()
        self.fast = fast
        self.decoder: PacketDecoder | BatchDecoder
        self.table: FlowTable | BatchFlowTable
        if fast:
            self.decoder = BatchDecoder()
            self.table = BatchFlowTable(
                max_flows=max_flows,
                idle_timeout=idle_timeout,
                server_ports=signatures.pool_ports,
            )
        else:
            self.decoder = PacketDecoder()
            self.table = FlowTable(
                max_flows=max_flows,
                idle_timeout=idle_timeout,
                server_ports=signatures.pool_ports,
            )
        self.result = FileResult(source=source)
        self._unsupported: set[int] = set()
        # The batch whose rows the inspect callback reads, while it is counted.
        self._batch: _BatchView | None = None

    def run(self, progress: ProgressCallback | None = None) -> FileResult:
        stats = self.result.stats
        stats.files = 1
        started = time.perf_counter()
        try:
            if self.fast:
                self._read_batches(progress)
            else:
                self._read_packets(progress)
        except CaptureError as exc:
            stats.files_failed = 1
            self.result.error = FileError(self.source, exc.reason, exc.offset)
        except OSError as exc:
            stats.files_failed = 1
            reason = exc.strerror or str(exc)
            self.result.error = FileError(
                self.source, f"cannot read the file: {reason}"
            )
        except KeyboardInterrupt:
            # The flows read so far are still judged and reported below.
            self.result.interrupted = True
        finally:
            self._finish_flows(self.table.flush_all())
            stats.fragments_expired = self.decoder.fragments_expired
            stats.flows_evicted = self.table.evictions
            stats.seconds = time.perf_counter() - started
        if stats.packets and stats.packets == stats.unsupported_packets:
            stats.files_failed = 1
            self.result.error = FileError(
                self.source,
                "no packet has a supported link type; supported: "
                + ", ".join(f"{n} ({name})" for n, name in SUPPORTED_LINKTYPES.items()),
            )
        self.result.detections.sort(key=lambda d: (d.first_seen, str(d.flow)))
        stats.detections = len(self.result.detections)
        return self.result

    # -- one packet at a time ------------------------------------------------

    def _read_packets(self, progress: ProgressCallback | None) -> None:
        decoder = self.decoder
        table = self.table
        assert isinstance(decoder, PacketDecoder)
        assert isinstance(table, FlowTable)
        stats = self.result.stats
        for packet in open_capture(self.source):
            stats.packets += 1
            if progress is not None and stats.packets % PROGRESS_EVERY_PACKETS == 0:
                progress(self.source, stats.packets)
            try:
                segment = decoder.decode(packet)
            except UnsupportedLinkType as exc:
                stats.unsupported_packets += 1
                self._report_unsupported(exc.linktype)
                continue
            except DecodeError as exc:
                stats.malformed_packets += 1
                log.debug("%s packet %d skipped: %s", self.source, packet.number, exc)
                continue
            if segment is None:
                continue
            stats.segments += 1
            self._on_segment(table, segment)
            if stats.packets % EXPIRE_EVERY_PACKETS == 0:
                self._finish_flows(table.expire(segment.timestamp))

    def _on_segment(self, table: FlowTable, segment: Segment) -> None:
        flow, direction = table.lookup(segment)
        self._finish_flows(table.drain_evicted())
        inspector = flow.state
        if inspector is None:
            if not segment.payload:
                if segment.transport == TCP and segment.flags & SYN:
                    # The SYN fixes the initial sequence number of the stream.
                    flow.stream(direction).add(segment.seq, b"", syn=True)
                return
            inspector = FlowInspector(self.signatures, flow.key, self.context)
            flow.state = inspector
            self.result.stats.flows += 1
        assert isinstance(inspector, FlowInspector)
        self._inspect_segment(
            flow,
            inspector,
            direction,
            segment.transport == TCP,
            segment.flags,
            segment.seq,
            segment.payload,
            segment.timestamp,
        )
        if self.on_mining is not None and inspector.reported is None:
            self._report_when_mining(flow, inspector)

    def _inspect_segment(
        self,
        flow: Flow,
        inspector: FlowInspector,
        direction: Direction,
        tcp: bool,
        flags: int,
        seq: int,
        payload: bytes,
        timestamp: float,
    ) -> None:
        """Feed one segment of a flow with an inspector to reassembly and the
        inspector; both paths share it."""
        if not inspector.wants_data:
            return
        if not tcp:
            inspector.feed_datagram(direction, payload, timestamp)
            return
        stream = flow.stream(direction)
        chunks = stream.add(seq, payload, syn=bool(flags & SYN), fin=bool(flags & FIN))
        if chunks:
            inspector.feed(direction, chunks, timestamp)
        if flags & (FIN | RST):
            rest = stream.flush()
            if rest:
                inspector.feed(direction, rest, timestamp)
        if not flow.pinned and inspector.is_mining():
            # A full flow table evicts other flows before a mining one.
            flow.pinned = True

    def _report_when_mining(
        self, flow: Flow, inspector: FlowInspector, slot: int | None = None
    ) -> None:
        """Call ``on_mining`` when the flow's evidence makes it mining; the
        caller checks that it was not reported yet.

        The report waits up to DIALECT_WAIT_SECONDS of capture time for more
        messages while the dialect is a tie, or while the evidence is of
        medium confidence on a flow still being read (a proxy's target names
        a pool, and the Stratum it carries follows). :meth:`report_waiting`
        sends the reports whose wait is over.
        """
        if not (flow.pinned or inspector.is_mining()):
            return
        if not _ready_to_report(inspector):
            since = self._waiting.setdefault(flow.key, (flow, slot, flow.last_seen))[2]
            if flow.last_seen - since < DIALECT_WAIT_SECONDS:
                return
        self._waiting.pop(flow.key, None)
        self._send_early_report(flow, inspector)

    def report_waiting(self, now: float) -> None:
        """Send the early reports that waited DIALECT_WAIT_SECONDS for their
        dialect by ``now``, settled or not."""
        if not self._waiting:
            return
        table = self.table
        for key, (flow, slot, since) in list(self._waiting.items()):
            if now - since < DIALECT_WAIT_SECONDS:
                continue
            del self._waiting[key]
            inspector = flow.state
            if not isinstance(inspector, FlowInspector) or inspector.reported:
                continue
            if slot is not None and isinstance(table, BatchFlowTable):
                table.refresh(slot)
            self._send_early_report(flow, inspector)

    def _detection_of(self, flow: Flow, inspector: FlowInspector) -> Detection | None:
        return inspector.detection(
            self.source,
            flow.first_seen,
            flow.last_seen,
            flow.counters(),
            pool_port_evidence=flow.key.server_port in self.signatures.pool_ports,
        )

    def _send_early_report(self, flow: Flow, inspector: FlowInspector) -> None:
        assert self.on_mining is not None
        detection = self._detection_of(flow, inspector)
        if detection is not None:
            self.on_mining(detection)

    # -- batches -------------------------------------------------------------

    # -- live ----------------------------------------------------------------

    def feed(self, batch: PacketBatch) -> None:
        """Scan one batch of packets from a live capture."""
        self._scan_parts(batch, None)

    def expire(self, now: float) -> None:
        """End the flows idle at ``now``."""
        self._finish_flows(self.table.expire(now))

    def expire_ended(self, now: float, lifetime: float, closed_linger: float) -> None:
        """End the flows older than ``lifetime`` and the closed ones quiet for
        ``closed_linger`` seconds (see BatchFlowTable.expire_ended)."""
        table = self.table
        assert isinstance(table, BatchFlowTable)
        self._finish_flows(table.expire_ended(now, lifetime, closed_linger))

    def close(self) -> None:
        """End every flow of a live capture, reporting the mining ones."""
        self._finish_flows(self.table.flush_all())
        stats = self.result.stats
        stats.fragments_expired = self.decoder.fragments_expired
        stats.flows_evicted = self.table.evictions

    def _read_batches(self, progress: ProgressCallback | None) -> None:
        for batch in open_batches(self.source):
            self._scan_parts(batch, progress)
            # Dropped before the reader fills the next batch's buffer, so only
            # one buffer is alive at a time.
            del batch

    def _scan_parts(
        self, batch: PacketBatch, progress: ProgressCallback | None
    ) -> None:
        stats = self.result.stats
        for part in _split_for_expiry(batch):
            before = stats.packets
            self._scan_batch(part)
            if progress is not None and (
                stats.packets // PROGRESS_EVERY_PACKETS
                != before // PROGRESS_EVERY_PACKETS
            ):
                progress(self.source, stats.packets)

    def _scan_batch(self, batch: PacketBatch) -> None:
        decoder = self.decoder
        table = self.table
        assert isinstance(decoder, BatchDecoder)
        assert isinstance(table, BatchFlowTable)
        stats = self.result.stats
        decoded = decoder.decode(batch)
        stats.packets += len(batch)

        for number, error in decoded.malformed:
            stats.malformed_packets += 1
            log.debug("%s packet %d skipped: %s", self.source, number, error)
        for linktype, count in decoded.unsupported.items():
            stats.unsupported_packets += count
            self._report_unsupported(linktype)

        segments = decoded.segments
        if not len(segments):
            return
        stats.segments += len(segments)
        keys = flow_keys(segments)
        self._batch = _BatchView(segments, keys, batch)
        try:
            table.process(segments, keys, self._inspect_row, self._finish_flows)
        finally:
            self._batch = None
        last = len(batch) - 1
        if (
            int(batch.numbers[last]) % EXPIRE_EVERY_PACKETS == 0
            and int(segments.packet_indices[-1]) == last
        ):
            # The per-packet path expires flows after the segment of every
            # EXPIRE_EVERY_PACKETS-th packet; batches are cut there.
            self._finish_flows(table.expire(float(segments.timestamps[-1])))

    def _inspect_row(self, index: int, slot: int, to_server: bool) -> None:
        """Inspect row ``index`` of the current batch: BatchFlowTable's callback."""
        table = self.table
        assert isinstance(table, BatchFlowTable)
        view = self._batch
        assert view is not None
        tcp = view.tcp[index]
        if self.on_packet is not None:
            self.on_packet(
                view.keys.key(index),
                view.packets.packet(int(view.segments.packet_indices[index])),
            )

        flow = table.flow(slot)
        if flow is None:
            if not view.payload_lengths[index]:
                if tcp and view.flags[index] & SYN:
                    # The SYN fixes the initial sequence number of the stream.
                    table.note_syn(slot, to_server, view.seqs[index])
                return
            flow = table.promote(slot, view.keys.key(index))
            flow.state = FlowInspector(self.signatures, flow.key, self.context)
            self.result.stats.flows += 1

        inspector = flow.state
        assert isinstance(inspector, FlowInspector)
        direction = Direction.TO_SERVER if to_server else Direction.TO_CLIENT
        self._inspect_segment(
            flow,
            inspector,
            direction,
            tcp,
            view.flags[index],
            view.seqs[index],
            view.segments.payload(index),
            view.timestamps[index],
        )
        if self.on_mining is not None and inspector.reported is None:
            if flow.pinned or inspector.is_mining():
                table.refresh(slot)
                self._report_when_mining(flow, inspector, slot)
        if not inspector.wants_data:
            table.mark_judged(slot)
            # Judged flows are not reassembled again; what a reassembler keeps
            # of them is dead weight until the flow ends.
            flow.drop_idle_streams()
        elif tcp and flow.stream(direction).depth_reached:
            table.mark_done(slot, to_server)

    # -- both paths ----------------------------------------------------------

    def _report_unsupported(self, linktype: int) -> None:
        if linktype in self._unsupported:
            return
        self._unsupported.add(linktype)
        self.result.warnings.append(
            f"{self.source}: packets with link type {linktype} skipped: "
            "the link type is not supported"
        )

    def _finish_flows(self, flows: Iterable[Flow]) -> None:
        for flow in flows:
            inspector = flow.state
            if not isinstance(inspector, FlowInspector):
                continue
            if self._waiting:
                self._waiting.pop(flow.key, None)
            # A flow without reassemblers has nothing buffered to flush.
            if flow.key.transport == TCP and flow.streams is not None:
                for direction in (Direction.TO_SERVER, Direction.TO_CLIENT):
                    rest = flow.stream(direction).flush()
                    if rest:
                        inspector.feed(direction, rest, flow.last_seen)
            inspector.finish(flow.last_seen)
            stats = self.result.stats
            stats.malformed_messages += inspector.malformed_messages
            stats.stream_gaps += inspector.stream_gaps
            detection = self._detection_of(flow, inspector)
            flow.state = None
            if detection is not None:
                log.info(
                    "%s: mining flow %s (%s)",
                    self.source,
                    detection.flow,
                    detection.mining.dialect,
                )
                if self.keep_detections:
                    self.result.detections.append(detection)
                if self.on_detection is not None:
                    self.on_detection(detection)


def _ready_to_report(inspector: FlowInspector) -> bool:
    """Whether a mining flow's early report can go out without waiting for
    more of the flow: its dialect is settled, and its evidence is high or no
    more will be read."""
    if not inspector.dialect_settled():
        return False
    return not inspector.wants_data or inspector.verdict(True) is Confidence.HIGH


class _BatchView:
    """The current batch's segments as Python lists, for the inspect callback."""

    __slots__ = (
        "segments",
        "keys",
        "packets",
        "tcp",
        "flags",
        "seqs",
        "payload_lengths",
        "timestamps",
    )

    def __init__(
        self, segments: SegmentBatch, keys: FlowKeys, packets: PacketBatch
    ) -> None:
        self.segments = segments
        self.keys = keys
        self.packets = packets
        self.tcp: list[bool] = (segments.transports == IPPROTO_TCP).tolist()
        self.flags: list[int] = segments.flags.tolist()
        self.seqs: list[int] = segments.seqs.tolist()
        self.payload_lengths: list[int] = segments.payload_lengths.tolist()
        self.timestamps: list[float] = segments.timestamps.tolist()


def _split_for_expiry(batch: PacketBatch) -> Iterator[PacketBatch]:
    """Cut ``batch`` after every packet whose number is a multiple of
    EXPIRE_EVERY_PACKETS, where the per-packet path expires idle flows."""
    cuts = np.flatnonzero(batch.numbers % EXPIRE_EVERY_PACKETS == 0) + 1
    start = 0
    for stop in cuts.tolist():
        yield batch.slice(start, stop)
        start = stop
    if start < len(batch):
        yield batch.slice(start, len(batch))


def expand_paths(
    paths: Iterable[str], errors: list[FileError] | None = None
) -> Iterator[str]:
    """Yield the capture files named by ``paths``, walking directories.

    A directory contributes the files whose names end in a capture suffix, in
    sorted order; a file or ``-`` (standard input) is yielded as given. A
    directory that cannot be read is added to ``errors``, not skipped silently.
    """
    for path in paths:
        if path == "-" or not os.path.isdir(path):
            yield path
            continue
        found: list[str] = []

        def unreadable(exc: OSError) -> None:
            if errors is not None:
                folder = exc.filename or "?"
                reason = exc.strerror or str(exc)
                errors.append(
                    FileError(str(folder), f"cannot read the folder: {reason}")
                )

        for folder, subfolders, names in os.walk(path, onerror=unreadable):
            subfolders.sort()
            found.extend(
                os.path.join(folder, name)
                for name in names
                if name.lower().endswith(CAPTURE_SUFFIXES)
                and os.path.isfile(os.path.join(folder, name))
            )
        yield from sorted(found)


def scan_file(
    source: str,
    signatures: Signatures,
    progress: ProgressCallback | None = None,
    max_flows: int = MAX_FLOWS,
    on_detection: DetectionCallback | None = None,
    context: InspectionContext | None = None,
    fast_path: bool = True,
) -> FileResult:
    """Scan one capture file; errors end up in the result, never raised.

    ``on_detection`` is called with each detection as its flow ends, before
    the file is done; the result holds them all, sorted by first packet.
    ``fast_path`` False reads and decodes one packet at a time, for checking
    the batch path against it.
    """
    scanner = CaptureScanner(
        signatures, source, max_flows, on_detection, context, fast_path
    )
    return scanner.run(progress)


def scan_paths(
    paths: Iterable[str],
    signatures: Signatures,
    progress: ProgressCallback | None = None,
    max_flows: int = MAX_FLOWS,
    on_detection: DetectionCallback | None = None,
    fast_path: bool = True,
    jobs: int = 1,
) -> ScanReport:
    """Scan every capture named by ``paths`` and merge the results.

    An interrupt (Ctrl-C) ends the scan after the current file's flows have
    been judged; ``report.interrupted`` is then True. With ``jobs`` above 1,
    files are scanned in that many worker processes (see
    :func:`scan_paths_parallel`).

    Raises:
        ValueError: ``jobs`` is below 1.
    """
    if jobs < 1:
        raise ValueError(f"invalid jobs {jobs}: must be 1 or more")
    paths = list(paths)
    if jobs > 1 and STDIN_PATH in paths:
        # A worker process cannot read this process's standard input.
        log.warning("standard input is read in one process: --jobs %d ignored", jobs)
        jobs = 1
    if jobs > 1:
        return scan_paths_parallel(
            paths, signatures, jobs, progress, max_flows, on_detection, fast_path
        )
    started = time.perf_counter()
    report = ScanReport()
    context = InspectionContext()
    folder_errors: list[FileError] = []
    for source in expand_paths(paths, folder_errors):
        _report_folder_errors(report, folder_errors)
        result = scan_file(
            source, signatures, progress, max_flows, on_detection, context, fast_path
        )
        report.files.append(result)
        report.stats.add(result.stats)
        if result.interrupted:
            report.interrupted = True
            break
    _report_folder_errors(report, folder_errors)
    report.stats.seconds = time.perf_counter() - started
    return report


def _report_folder_errors(report: ScanReport, errors: list[FileError]) -> None:
    for error in errors:
        result = FileResult(source=error.source, error=error)
        result.stats.files_failed = 1
        report.files.append(result)
        report.stats.add(result.stats)
    errors.clear()


# -- scanning files in worker processes ------------------------------------

# Seconds the parent waits for a message from its workers before it checks
# that they are still alive.
WORKER_POLL_SECONDS = 0.5

# After Ctrl-C, seconds the parent waits for workers to judge the flows of the
# files they were reading before it stops them. Judging a full flow table of
# MAX_FLOWS flows takes a few seconds; a second Ctrl-C stops them at once.
INTERRUPT_GRACE_SECONDS = 60.0


def scan_paths_parallel(
    paths: Iterable[str],
    signatures: Signatures,
    jobs: int,
    progress: ProgressCallback | None = None,
    max_flows: int = MAX_FLOWS,
    on_detection: DetectionCallback | None = None,
    fast_path: bool = True,
) -> ScanReport:
    """Scan the captures named by ``paths`` in ``jobs`` worker processes.

    The report lists the files in input order, as :func:`scan_paths` does, and
    ``on_detection`` and ``progress`` are called in this process. Detections
    are passed to ``on_detection`` file by file in input order, each file as
    soon as it and the files before it are done. Sessions are grouped here in
    input order, so session ids are those of a scan in one process.

    NOTE: each file is scanned with its own DNS cache, so unlike a scan in one
    process, a DNS answer in one file does not name the servers of another.

    Workers are started with the "spawn" method and load the signatures from
    the folder ``signatures`` was loaded from. On Ctrl-C, the workers judge
    the flows of the files they are reading, the files not started are
    skipped, and ``report.interrupted`` is True.

    Raises:
        ValueError: ``signatures`` was not loaded from files.
    """
    if not signatures.files:
        raise ValueError(
            "scanning in worker processes needs signatures loaded from a folder"
        )
    started = time.perf_counter()
    folder = os.path.dirname(signatures.files[0])
    entries: list[FileError | str] = []
    folder_errors: list[FileError] = []
    for source in expand_paths(paths, folder_errors):
        entries.extend(folder_errors)
        folder_errors.clear()
        entries.append(source)
    entries.extend(folder_errors)
    pool = _WorkerPool(folder, jobs, max_flows, fast_path)
    merger = _ResultMerger(entries, on_detection)
    sources = {
        index: entry for index, entry in enumerate(entries) if isinstance(entry, str)
    }
    try:
        pool.run(sources, merger, progress)
    finally:
        pool.close()
    report = merger.report()
    report.stats.seconds = time.perf_counter() - started
    return report


class _ResultMerger:
    """Puts the results of files scanned in any order back in input order.

    A file's detections are passed on, and grouped into sessions, once it and
    every file before it are done, as a scan in one process would.
    """

    def __init__(
        self, entries: list[FileError | str], on_detection: DetectionCallback | None
    ) -> None:
        self.entries = entries
        self.on_detection = on_detection
        self.interrupted = False
        self._waiting: dict[int, tuple[FileResult, list[Detection]]] = {}
        self._merged: list[FileResult] = []
        self._next = 0
        self._context = InspectionContext()
        for index, entry in enumerate(entries):
            if isinstance(entry, FileError):
                result = FileResult(source=entry.source, error=entry)
                result.stats.files_failed = 1
                self._waiting[index] = (result, [])
        self._merge_ready()

    def add(self, index: int, result: FileResult, order: list[int]) -> None:
        """Take the result of entry ``index``; ``order`` lists the positions of
        its detections in the order the worker judged them."""
        judged = [result.detections[position] for position in order]
        self._waiting[index] = (result, judged)
        if result.interrupted:
            self.interrupted = True
        self._merge_ready()

    def fail(self, index: int, message: str) -> None:
        """Record that entry ``index`` could not be scanned."""
        source = self.entries[index]
        assert isinstance(source, str)
        result = FileResult(source=source, error=FileError(source, message))
        result.stats.files = 1
        result.stats.files_failed = 1
        self.add(index, result, [])

    def report(self) -> ScanReport:
        """Return the report of every file done; files never scanned after an
        interrupt are left out."""
        for index in sorted(self._waiting):
            self._merge(*self._waiting.pop(index))
        report = ScanReport(interrupted=self.interrupted)
        for result in self._merged:
            report.files.append(result)
            report.stats.add(result.stats)
        return report

    def _merge_ready(self) -> None:
        while self._next in self._waiting:
            self._merge(*self._waiting.pop(self._next))
            self._next += 1

    def _merge(self, result: FileResult, judged: list[Detection]) -> None:
        grouped: dict[int, Detection] = {}
        for detection in judged:
            session = self._context.sessions.add(
                dataclasses.replace(detection, session_id=None),
                detection.mining.pool_host,
            )
            grouped[id(detection)] = dataclasses.replace(
                detection, session_id=session.id
            )
        result.detections = [grouped[id(d)] for d in result.detections]
        self._merged.append(result)
        if self.on_detection is not None:
            for detection in judged:
                self.on_detection(grouped[id(detection)])


class _WorkerPool:
    """Worker processes that scan one file per task and report by message.

    Messages from a worker are tuples: ("start", index, pid), ("progress",
    index, packets), ("done", index, result, order) and ("crashed", index,
    text), where index is None for a crash outside any file.
    """

    def __init__(self, folder: str, jobs: int, max_flows: int, fast_path: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self._tasks: multiprocessing.queues.Queue[tuple[int, str] | None] = (
            context.Queue()
        )
        self._messages: multiprocessing.queues.Queue[tuple[Any, ...]] = context.Queue()
        self._stop = context.Event()
        self._workers = [
            context.Process(
                target=_work,
                args=(
                    self._tasks,
                    self._messages,
                    self._stop,
                    folder,
                    max_flows,
                    fast_path,
                ),
                name=f"detector-scan-{number + 1}",
                daemon=True,
            )
            for number in range(jobs)
        ]

    def run(
        self,
        sources: dict[int, str],
        merger: _ResultMerger,
        progress: ProgressCallback | None,
    ) -> None:
        """Scan ``sources`` (entry index to path) and give each result to
        ``merger``; a Ctrl-C stops the scan as described in scan_paths_parallel.

        Raises:
            RuntimeError: a worker raised an exception it did not expect.
        """
        for task in sources.items():
            self._tasks.put(task)
        for _ in self._workers:
            self._tasks.put(None)
        # Entry index to the process id of the worker reading it.
        running: dict[int, int] = {}
        waiting = set(sources)
        try:
            for worker in self._workers:
                worker.start()
            self._collect(sources, waiting, running, merger, progress, None)
        except KeyboardInterrupt:
            merger.interrupted = True
            self._stop.set()
            self._interrupt_workers()
            deadline = time.monotonic() + INTERRUPT_GRACE_SECONDS
            try:
                self._collect(sources, waiting, running, merger, progress, deadline)
            except KeyboardInterrupt:
                log.warning("second interrupt: stopping the worker processes now")

    def _collect(
        self,
        sources: dict[int, str],
        waiting: set[int],
        running: dict[int, int],
        merger: _ResultMerger,
        progress: ProgressCallback | None,
        deadline: float | None,
    ) -> None:
        """Handle messages until every file is done, or, after an interrupt
        (``deadline`` set), until the files being read are done."""
        while waiting if deadline is None else running:
            try:
                message = self._messages.get(timeout=WORKER_POLL_SECONDS)
            except queue.Empty:
                if deadline is not None and time.monotonic() > deadline:
                    log.warning(
                        "worker processes did not finish within %.0f s of the"
                        " interrupt; stopping them",
                        INTERRUPT_GRACE_SECONDS,
                    )
                    return
                self._check_workers(sources, waiting, running, merger)
                continue
            kind, index = message[0], message[1]
            if kind == "start":
                running[index] = message[2]
            elif kind == "progress":
                if progress is not None:
                    progress(sources[index], message[2])
            elif kind == "done":
                running.pop(index, None)
                waiting.discard(index)
                merger.add(index, message[2], message[3])
            else:
                where = "" if index is None else f" while scanning {sources[index]}"
                raise RuntimeError(f"a worker process failed{where}:\n{message[2]}")

    def _check_workers(
        self,
        sources: dict[int, str],
        waiting: set[int],
        running: dict[int, int],
        merger: _ResultMerger,
    ) -> None:
        """Record a failure for the file of each worker that died without a
        result (killed by the system or by a signal)."""
        alive = {worker.pid for worker in self._workers if worker.is_alive()}
        lost = [index for index, pid in running.items() if pid not in alive]
        if lost or not alive:
            # Read what the dead workers sent before they died.
            time.sleep(WORKER_POLL_SECONDS)
            if not self._messages.empty():
                return
        codes = {worker.pid: worker.exitcode for worker in self._workers}
        for index in lost:
            pid = running.pop(index)
            waiting.discard(index)
            merger.fail(
                index,
                f"the worker process scanning it exited with code {codes[pid]}"
                " before it finished",
            )
        if not alive:
            for index in sorted(waiting - set(running)):
                merger.fail(index, "not scanned: every worker process had exited")
                waiting.discard(index)

    def _interrupt_workers(self) -> None:
        for worker in self._workers:
            if worker.is_alive() and worker.pid is not None:
                try:
                    os.kill(worker.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

    def close(self) -> None:
        """Stop the workers: let them exit, then terminate those that do not."""
        self._stop.set()
        for worker in self._workers:
            if worker.pid is not None:
                worker.join(timeout=WORKER_POLL_SECONDS)
        for worker in self._workers:
            if worker.is_alive():
                worker.terminate()
                worker.join()
        self._tasks.cancel_join_thread()
        self._messages.cancel_join_thread()
        self._tasks.close()
        self._messages.close()


class _WorkerSignals:
    """Ctrl-C in a worker: interrupt the scan in progress once, ignore the rest.

    The terminal sends SIGINT to every process of the command and the parent
    forwards it too, so a worker may get it twice. A second KeyboardInterrupt
    would cut short the judging of the flows read so far.
    """

    scanning = False
    interrupted = False

    @classmethod
    def install(cls) -> None:
        signal.signal(signal.SIGINT, cls._on_interrupt)

    @classmethod
    def _on_interrupt(cls, signum: int, frame: object) -> None:
        if cls.scanning and not cls.interrupted:
            cls.interrupted = True
            raise KeyboardInterrupt


def _work(
    tasks: multiprocessing.queues.Queue[tuple[int, str] | None],
    messages: multiprocessing.queues.Queue[tuple[Any, ...]],
    stop: EventType,
    folder: str,
    max_flows: int,
    fast_path: bool,
) -> None:
    """Scan files from ``tasks`` until a None task or ``stop``; runs in a worker."""
    _WorkerSignals.install()
    index: int | None = None
    try:
        signatures = load_signatures(folder)
        while not _WorkerSignals.interrupted:
            task = tasks.get()
            if task is None or stop.is_set():
                break
            index, source = task
            messages.put(("start", index, os.getpid()))
            result, order = _scan_task(
                index, source, signatures, messages, max_flows, fast_path
            )
            messages.put(("done", index, result, order))
            index = None
    except Exception:  # noqa: BLE001 - reported to the parent, which raises it
        messages.put(("crashed", index, traceback.format_exc()))


def _scan_task(
    index: int,
    source: str,
    signatures: Signatures,
    messages: multiprocessing.queues.Queue[tuple[Any, ...]],
    max_flows: int,
    fast_path: bool,
) -> tuple[FileResult, list[int]]:
    """Scan one file in a worker; return its result and the order, as positions
    in ``result.detections``, in which its detections were judged."""
    judged: list[Detection] = []

    def report_progress(name: str, packets: int) -> None:
        messages.put(("progress", index, packets))

    _WorkerSignals.scanning = True
    try:
        result = scan_file(
            source,
            signatures,
            report_progress,
            max_flows,
            judged.append,
            fast_path=fast_path,
        )
    except KeyboardInterrupt:
        # The interrupt came before the scan could catch it: nothing was read.
        result = FileResult(source=source, interrupted=True)
        result.stats.files = 1
    finally:
        _WorkerSignals.scanning = False
    position = {
        id(detection): number for number, detection in enumerate(result.detections)
    }
    return result, [position[id(detection)] for detection in judged]
