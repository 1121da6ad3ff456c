"""The scan pipeline: capture → decode → flows → reassembly → inspection.

:func:`scan_paths` reads capture files one after another and returns every
detection with the counts a summary needs. A file that fails keeps the
detections made before the failure, and the scan goes on with the next file.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields

import numpy as np

from detector.capture import open_capture
from detector.capture.batch import PacketBatch, open_batches
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
from detector.flows.table import MAX_FLOWS, Flow, FlowTable
from detector.model import FIN, RST, SYN, TCP, Detection, Direction, Segment
from detector.signatures import Signatures

log = logging.getLogger(__name__)

# File name endings picked up when a directory is scanned. Files named on the
# command line are read whatever their name, since the format is found by magic.
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz")

# Idle flows are expired every this many packets, so the flow table is walked
# rarely while flows still end close to their idle timeout.
EXPIRE_EVERY_PACKETS = 65536

# A progress callback is called every this many packets.
PROGRESS_EVERY_PACKETS = 20000


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


class CaptureScanner:
    """Scan one capture file: the per-file state of the pipeline.

    With ``fast`` (the default), packets are read, decoded and counted in
    batches, and only the segments that still need inspection are handled one
    by one. Without it, every packet goes through the per-packet decoder and
    :class:`FlowTable`. Both give the same detections and counts.
    """

    def __init__(
        self,
        signatures: Signatures,
        source: str,
        max_flows: int = MAX_FLOWS,
        on_detection: DetectionCallback | None = None,
        context: InspectionContext | None = None,
        fast: bool = True,
    ) -> None:
        self.signatures = signatures
        self.source = source
        self.on_detection = on_detection
        # Shared with the other files of a scan, so DNS answers and sessions
        # carry over from one capture to the next.
        self.context = context if context is not None else InspectionContext()
        self.fast = fast
        self.decoder: PacketDecoder | BatchDecoder
        self.table: FlowTable | BatchFlowTable
        if fast:
            self.decoder = BatchDecoder()
            self.table = BatchFlowTable(
                max_flows=max_flows, server_ports=signatures.pool_ports
            )
        else:
            self.decoder = PacketDecoder()
            self.table = FlowTable(
                max_flows=max_flows, server_ports=signatures.pool_ports
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

    # -- batches -------------------------------------------------------------

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
        self._batch = _BatchView(segments, keys)
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

        flow = table.flow(slot)
        if flow is None:
            if not view.payload_lengths[index]:
                if tcp and view.flags[index] & SYN:
                    # The SYN fixes the initial sequence number of the stream.
                    table.note_syn(slot, to_server, view.seqs[index])
                return
            flow = table.promote(slot, view.keys.keys[index])
            flow.state = FlowInspector(self.signatures, flow.key, self.context)
            self.result.stats.flows += 1

        inspector = flow.state
        assert isinstance(inspector, FlowInspector)
        if not inspector.wants_data:
            table.mark_judged(slot)
            return
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
        if not inspector.wants_data:
            table.mark_judged(slot)
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
            if flow.key.transport == TCP:
                for direction in (Direction.TO_SERVER, Direction.TO_CLIENT):
                    rest = flow.stream(direction).flush()
                    if rest:
                        inspector.feed(direction, rest, flow.last_seen)
            inspector.finish(flow.last_seen)
            stats = self.result.stats
            stats.malformed_messages += inspector.malformed_messages
            stats.stream_gaps += inspector.stream_gaps
            detection = inspector.detection(
                self.source,
                flow.first_seen,
                flow.last_seen,
                flow.counters(),
                pool_port_evidence=flow.key.server_port in self.signatures.pool_ports,
            )
            flow.state = None
            if detection is not None:
                log.info(
                    "%s: mining flow %s (%s)",
                    self.source,
                    detection.flow,
                    detection.mining.dialect,
                )
                self.result.detections.append(detection)
                if self.on_detection is not None:
                    self.on_detection(detection)


class _BatchView:
    """The current batch's segments as Python lists, for the inspect callback."""

    __slots__ = (
        "segments",
        "keys",
        "tcp",
        "flags",
        "seqs",
        "payload_lengths",
        "timestamps",
    )

    def __init__(self, segments: SegmentBatch, keys: FlowKeys) -> None:
        self.segments = segments
        self.keys = keys
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
) -> ScanReport:
    """Scan every capture named by ``paths`` and merge the results.

    An interrupt (Ctrl-C) ends the scan after the current file's flows have
    been judged; ``report.interrupted`` says so.
    """
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
    return report


def _report_folder_errors(report: ScanReport, errors: list[FileError]) -> None:
    for error in errors:
        result = FileResult(source=error.source, error=error)
        result.stats.files_failed = 1
        report.files.append(result)
        report.stats.add(result.stats)
    errors.clear()
