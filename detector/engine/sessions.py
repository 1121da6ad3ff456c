"""Group the detections of one client towards one pool into sessions.

Miners reconnect: after a pool restart, a network blip, a failed TLS attempt
followed by a plaintext retry, or a dev-fee switch and back. Each reconnect is
a new flow and a new detection; a session ties them together so an analyst
sees one mining session with its first and last time and its totals.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field

from detector.model import Confidence, Detection, FlowKey

# Detections of the same client and pool closer than this belong to one
# session. xmrig retries a failed pool every 5 s by default and gives up on a
# pool after a few minutes, so a longer silence means the miner was stopped.
SESSION_GAP_SECONDS = 900.0

# A live sink repeats an alert for a session at most this often. The scan of
# a capture writes one alert per flow and is not rate-limited.
ALERT_INTERVAL_SECONDS = 300.0

# Sessions kept open at once; the least recently active is closed first.
MAX_SESSIONS = 65536

# Flows of a session remembered with the capture they were counted from. A
# flow routed between two bridges is seen on both within milliseconds, so
# only the most recent flows need remembering.
MAX_SOURCES_PER_SESSION = 256


@dataclass(slots=True)
class Session:
    """The detections of one client towards one pool, across reconnects."""

    id: str
    client_ip: str
    pool: str
    first_seen: float
    last_seen: float
    flows: int = 0
    jobs: int = 0
    shares_submitted: int = 0
    shares_accepted: int = 0
    shares_rejected: int = 0
    confidence: Confidence = Confidence.LOW
    dialects: set[str] = field(default_factory=set)
    servers: set[str] = field(default_factory=set)
    last_alert: float | None = None
    # The recent flows of the session and the capture (interface or file)
    # each was counted from, so a flow seen in two captures counts once.
    sources: OrderedDict[FlowKey, str] = field(default_factory=OrderedDict)


class SessionTracker:
    """Assign each detection to a session, opening one where none fits."""

    def __init__(
        self, gap: float = SESSION_GAP_SECONDS, max_sessions: int = MAX_SESSIONS
    ) -> None:
        self.gap = gap
        self.max_sessions = max_sessions
        self._open: dict[tuple[str, str], Session] = {}
        self._by_id: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._open)

    def get(self, session_id: str) -> Session | None:
        """Return the open session with this id, or None."""
        return self._by_id.get(session_id)

    def add(
        self,
        detection: Detection,
        pool: str | None = None,
        replaces: Detection | None = None,
    ) -> Session:
        """Add a detection and return its session.

        ``pool`` names the pool (a domain from the protocol, SNI or DNS). A
        session is found by the client with the pool's name or with the
        server address, so a TLS attempt known by its server name and a
        plaintext retry known only by its address share a session.

        ``replaces`` is an earlier detection of the same flow, already added
        (a live watch reports a flow when it is found and again when it
        ends): its counts are taken back so the flow counts once.
        """
        flow = detection.flow
        keys = [(flow.client_ip, flow.server_ip)]
        if pool:
            keys.insert(0, (flow.client_ip, pool.lower()))
        session = None
        for key in keys:
            candidate = self._open.get(key)
            if candidate is not None and self._close_enough(candidate, detection):
                session = candidate
                break
        if session is None:
            if len(self._open) >= self.max_sessions:
                oldest = min(self._open, key=lambda k: self._open[k].last_seen)
                self._release(self._open.pop(oldest))
            session = Session(
                id=_session_id(flow.client_ip, keys[0][1], detection.first_seen),
                client_ip=flow.client_ip,
                pool=pool or flow.server_ip,
                first_seen=detection.first_seen,
                last_seen=detection.last_seen,
            )
        elif pool and session.pool == flow.server_ip:
            session.pool = pool
        for key in keys:
            replaced = self._open.get(key)
            self._open[key] = session
            if replaced is not None and replaced is not session:
                self._release(replaced)
        self._by_id[session.id] = session
        owner = session.sources.get(flow)
        if owner is not None and owner != detection.source:
            # The same flow seen in another capture (a flow routed between
            # two bridges): counted already, from the capture that saw it first.
            return session
        session.sources[flow] = detection.source
        session.sources.move_to_end(flow)
        if len(session.sources) > MAX_SOURCES_PER_SESSION:
            session.sources.popitem(last=False)
        mining = detection.mining
        session.first_seen = min(session.first_seen, detection.first_seen)
        session.last_seen = max(session.last_seen, detection.last_seen)
        if replaces is None:
            session.flows += 1
        else:
            earlier = replaces.mining
            session.jobs -= earlier.jobs
            session.shares_submitted -= earlier.shares_submitted
            session.shares_accepted -= earlier.shares_accepted
            session.shares_rejected -= earlier.shares_rejected
        session.jobs += mining.jobs
        session.shares_submitted += mining.shares_submitted
        session.shares_accepted += mining.shares_accepted
        session.shares_rejected += mining.shares_rejected
        session.confidence = max(session.confidence, detection.confidence)
        if mining.dialect != "unknown":
            session.dialects.add(mining.dialect)
        session.servers.add(f"{flow.server_ip}:{flow.server_port}")
        return session

    def _release(self, session: Session) -> None:
        """Forget a session's id once no key leads to it any more."""
        if all(other is not session for other in self._open.values()):
            self._by_id.pop(session.id, None)

    def _close_enough(self, session: Session, detection: Detection) -> bool:
        # Flows end, and so reach the tracker, in any order: measure the
        # silence between the two time ranges whichever comes first.
        silence = max(
            detection.first_seen - session.last_seen,
            session.first_seen - detection.last_seen,
        )
        return silence <= self.gap

    def should_alert(self, session: Session, timestamp: float) -> bool:
        """Whether a live sink should (re)send the session's alert now."""
        if session.last_alert is not None and (
            timestamp - session.last_alert < ALERT_INTERVAL_SECONDS
        ):
            return False
        session.last_alert = timestamp
        return True


def _session_id(client_ip: str, pool: str, first_seen: float) -> str:
    digest = hashlib.sha256(f"{client_ip}|{pool}|{first_seen:.6f}".encode())
    return digest.hexdigest()[:16]
