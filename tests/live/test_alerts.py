"""When the reports of mining flows become alerts and updates."""

from __future__ import annotations

import io
import json
from dataclasses import replace

from detector.live.alerts import (
    ACTION_DETECTED,
    ACTION_UPDATED,
    AlertDispatcher,
    JsonLinesOutput,
    alert_document,
)
from detector.model import Confidence, Detection, FlowCounters, FlowKey, MiningFields


def detection(session: str, port: int = 40000, shares: int = 0) -> Detection:
    return Detection(
        source="br-0123456789ab",
        flow=FlowKey("tcp", "198.18.20.10", port, "198.18.20.2", 3333),
        first_seen=1_700_000_000.0,
        last_seen=1_700_000_010.0,
        confidence=Confidence.HIGH,
        evidence=(),
        mining=MiningFields(dialect="monero", shares_submitted=shares),
        counters=FlowCounters(3, 3, 300, 600),
        session_id=session,
    )


class Recorder:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, str, int]] = []

    def __call__(self, found: Detection, action: str) -> None:
        self.emitted.append((found.session_id or "", action, found.flow.client_port))


def test_new_session_alerted_at_once() -> None:
    emitted = Recorder()
    dispatcher = AlertDispatcher(emitted, interval=300.0)
    dispatcher.offer(detection("a"), now=100.0)
    dispatcher.offer(detection("b"), now=100.5)
    assert emitted.emitted == [
        ("a", ACTION_DETECTED, 40000),
        ("b", ACTION_DETECTED, 40000),
    ]


def test_later_reports_fold_per_interval() -> None:
    emitted = Recorder()
    dispatcher = AlertDispatcher(emitted, interval=300.0)
    dispatcher.offer(detection("a", 40000), now=100.0)
    for port in (40001, 40002, 40003):
        dispatcher.offer(detection("a", port), now=150.0)
    dispatcher.tick(200.0)
    assert len(emitted.emitted) == 1
    dispatcher.tick(400.0)
    assert emitted.emitted[1:] == [("a", ACTION_UPDATED, 40003)]
    dispatcher.tick(800.0)
    assert len(emitted.emitted) == 2
    assert dispatcher.pending == 0


def test_flush_writes_pending_updates() -> None:
    emitted = Recorder()
    dispatcher = AlertDispatcher(emitted, interval=300.0)
    dispatcher.offer(detection("a"), now=100.0)
    dispatcher.offer(detection("a", 40001), now=101.0)
    dispatcher.flush(102.0)
    assert emitted.emitted[-1] == ("a", ACTION_UPDATED, 40001)
    dispatcher.flush(103.0)
    assert len(emitted.emitted) == 2


def test_forgotten_session_flushes_update() -> None:
    emitted = Recorder()
    dispatcher = AlertDispatcher(emitted, interval=300.0, max_sessions=2)
    dispatcher.offer(detection("a"), now=1.0)
    dispatcher.offer(detection("a", 40001), now=2.0)
    dispatcher.offer(detection("b"), now=3.0)
    dispatcher.offer(detection("c"), now=4.0)
    assert ("a", ACTION_UPDATED, 40001) in emitted.emitted
    # "a" was forgotten, so it is new again.
    dispatcher.offer(detection("a", 40009), now=5.0)
    assert emitted.emitted[-1] == ("a", ACTION_DETECTED, 40009)


def test_alert_document_names_interface() -> None:
    document = alert_document(detection("a", shares=2), ACTION_DETECTED)
    assert document["event"]["action"] == ACTION_DETECTED
    assert document["observer"]["ingress"]["interface"]["name"] == "br-0123456789ab"
    assert "path" not in document.get("log", {}).get("file", {})
    assert document["mining"]["shares"]["submitted"] == 2


def test_json_lines_one_per_alert() -> None:
    stream = io.StringIO()
    output = JsonLinesOutput(stream, close_stream=False)
    output.emit(alert_document(detection("a"), ACTION_DETECTED))
    output.emit(alert_document(replace(detection("a"), session_id="b"), ACTION_UPDATED))
    output.close()
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["event"]["action"] for line in lines] == [
        ACTION_DETECTED,
        ACTION_UPDATED,
    ]


class BlockingOutput:
    """An output whose sends wait until released, like a stalled receiver."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.sent: list[dict] = []
        self.closed = False

    def emit(self, document: dict) -> None:
        self.release.wait(10.0)
        self.sent.append(document)

    def close(self) -> None:
        self.closed = True


def test_background_output_drops_past_bound() -> None:
    from detector.live.alerts import BackgroundOutput

    slow = BlockingOutput()
    output = BackgroundOutput(slow, max_pending=3)
    for number in range(10):
        output.emit({"n": number})
    # One document is in the stalled send; three wait; the rest are dropped.
    assert output.dropped >= 6
    slow.release.set()
    output.close()
    assert slow.closed
    assert len(slow.sent) == 10 - output.dropped
    assert slow.sent[0] == {"n": 0}


def test_background_output_drains_on_close() -> None:
    from detector.live.alerts import BackgroundOutput

    slow = BlockingOutput()
    slow.release.set()
    output = BackgroundOutput(slow)
    for number in range(100):
        output.emit({"n": number})
    output.close()
    assert [document["n"] for document in slow.sent] == list(range(100))
    assert output.dropped == 0


def test_repeated_report_not_rewritten() -> None:
    emitted = Recorder()
    dispatcher = AlertDispatcher(emitted, interval=0.0)
    dispatcher.offer(detection("a"), now=1.0)
    dispatcher.offer(detection("a"), now=2.0)
    dispatcher.tick(3.0)
    assert len(emitted.emitted) == 1
    dispatcher.offer(detection("a", 40001), now=4.0)
    dispatcher.offer(detection("a", 40001), now=4.5)
    dispatcher.tick(5.0)
    dispatcher.offer(detection("a", 40001), now=6.0)
    dispatcher.flush(7.0)
    assert emitted.emitted[1:] == [("a", ACTION_UPDATED, 40001)]


def test_new_endpoint_or_dialect_alerted() -> None:
    emitted = Recorder()
    dispatcher = AlertDispatcher(emitted, interval=300.0)
    first = detection("a")
    dispatcher.offer(first, now=1.0)
    reconnect = detection("a", 40001)
    other_port = replace(reconnect, flow=replace(reconnect.flow, server_port=4444))
    dispatcher.offer(other_port, now=2.0)
    other_dialect = replace(
        detection("a", 40002),
        mining=replace(first.mining, dialect="stratum-v1"),
    )
    dispatcher.offer(other_dialect, now=3.0)
    # A reconnect to an endpoint already alerted on waits for the update.
    dispatcher.offer(detection("a", 40003), now=4.0)
    assert emitted.emitted == [
        ("a", ACTION_DETECTED, 40000),
        ("a", ACTION_DETECTED, 40001),
        ("a", ACTION_DETECTED, 40002),
    ]
    dispatcher.flush(5.0)
    assert emitted.emitted[-1] == ("a", ACTION_UPDATED, 40003)


def test_alert_document_has_session_totals() -> None:
    from detector.engine.sessions import SessionTracker

    tracker = SessionTracker()
    first = detection("x", shares=2)
    session = tracker.add(first)
    tracker.add(detection("x", 40001, shares=3))
    document = alert_document(first, ACTION_UPDATED, session=session)
    totals = document["mining"]["session"]
    assert totals["id"] == "x"
    assert totals["flows"] == 2
    assert totals["shares"]["submitted"] == 5
    assert totals["dialects"] == ["monero"]
    assert totals["servers"] == ["198.18.20.2:3333"]


def test_reader_gone_for_closed_pipe(tmp_path) -> None:
    import os

    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    output = JsonLinesOutput(stream)
    assert not output.reader_gone()
    os.close(read_end)
    assert output.reader_gone()
    with open(tmp_path / "alerts.jsonl", "w") as regular:
        assert not JsonLinesOutput(regular, close_stream=False).reader_gone()
    assert not JsonLinesOutput(io.StringIO()).reader_gone()
    output.close()
