"""Session grouping of detections across reconnects."""

from __future__ import annotations

from detector.engine.sessions import SESSION_GAP_SECONDS, SessionTracker
from detector.model import Confidence, Detection, FlowCounters, FlowKey, MiningFields


def detection(start, end, port=3333, client_port=40000, dialect="monero", shares=1):
    return Detection(
        source="t.pcap",
        flow=FlowKey("tcp", "172.17.0.2", client_port, "203.0.113.5", port),
        first_seen=start,
        last_seen=end,
        confidence=Confidence.HIGH,
        evidence=(),
        mining=MiningFields(dialect=dialect, shares_submitted=shares),
        counters=FlowCounters(),
    )


def test_reconnect_same_session():
    tracker = SessionTracker()
    first = tracker.add(detection(0, 100))
    second = tracker.add(detection(130, 400, client_port=40001))
    assert second is first
    assert first.flows == 2
    assert first.shares_submitted == 2
    assert (first.first_seen, first.last_seen) == (0, 400)


def test_long_silence_new_session():
    tracker = SessionTracker()
    first = tracker.add(detection(0, 100))
    second = tracker.add(detection(100 + SESSION_GAP_SECONDS + 1, 2000))
    assert second is not first
    assert second.id != first.id


def test_tls_attempt_then_plaintext_same_session():
    tracker = SessionTracker()
    tls = tracker.add(detection(0, 1, port=443, dialect="unknown"))
    plain = tracker.add(detection(6, 600, port=3333))
    assert plain is tls
    assert plain.servers == {"203.0.113.5:443", "203.0.113.5:3333"}
    assert plain.dialects == {"monero"}


def test_named_pool_groups_addresses():
    tracker = SessionTracker()
    first = tracker.add(detection(0, 100), pool="pool.example")
    second = tracker.add(detection(200, 300), pool="POOL.example")
    assert second is first
    assert first.pool == "pool.example"


def test_out_of_order_arrival():
    tracker = SessionTracker()
    later = tracker.add(detection(500, 900))
    earlier = tracker.add(detection(0, 480))
    assert earlier is later
    assert later.first_seen == 0


def test_alert_rate_limited():
    tracker = SessionTracker()
    session = tracker.add(detection(0, 100))
    assert tracker.should_alert(session, 100.0)
    assert not tracker.should_alert(session, 150.0)
    assert tracker.should_alert(session, 100.0 + 301)


def test_session_found_by_id():
    tracker = SessionTracker()
    first = tracker.add(detection(0, 100))
    assert tracker.get(first.id) is first
    later = tracker.add(detection(100 + SESSION_GAP_SECONDS + 1, 2000))
    assert tracker.get(later.id) is later
    # The silent session no key leads to any more is forgotten.
    assert tracker.get(first.id) is None


def test_session_ids_bounded():
    tracker = SessionTracker(max_sessions=4)
    sessions = [
        tracker.add(detection(float(n), float(n) + 1, client_port=40000 + n))
        for n in range(3)
    ]
    for number in range(10):
        other = Detection(
            source="t.pcap",
            flow=FlowKey("tcp", f"172.17.1.{number}", 40000, "203.0.113.5", 3333),
            first_seen=100.0 + number,
            last_seen=101.0 + number,
            confidence=Confidence.HIGH,
            evidence=(),
            mining=MiningFields(dialect="monero"),
            counters=FlowCounters(),
        )
        tracker.add(other)
    assert len(tracker._by_id) <= 4
    assert tracker.get(sessions[0].id) is None


def test_replacing_report_keeps_count():
    tracker = SessionTracker()
    early = detection(0, 10, shares=1)
    session = tracker.add(early)
    tracker.add(detection(0, 100, shares=5), replaces=early)
    assert session.flows == 1
    assert session.shares_submitted == 5


def test_flow_in_two_captures_counts_once():
    from dataclasses import replace

    tracker = SessionTracker()
    seen_here = replace(detection(0, 100, shares=2), source="br-aaaaaaaaaaaa")
    seen_there = replace(seen_here, source="br-bbbbbbbbbbbb")
    session = tracker.add(seen_here)
    assert tracker.add(seen_there) is session
    assert session.flows == 1
    assert session.shares_submitted == 2
    # A new flow from the other capture still counts.
    tracker.add(
        replace(detection(110, 200, client_port=40001), source="br-bbbbbbbbbbbb")
    )
    assert session.flows == 2
