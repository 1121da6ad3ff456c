"""State the inspection of one flow shares with the other flows of a scan."""

from __future__ import annotations

from dataclasses import dataclass, field

from detector.engine.passive_dns import PassiveDnsCache
from detector.engine.sessions import SessionTracker


@dataclass(slots=True)
class InspectionContext:
    """The state flows share: the passive DNS cache and the open sessions.

    One context serves every flow of a scan, so a DNS answer seen in one flow
    names the server of a later flow, and reconnects share a session.
    """

    dns_cache: PassiveDnsCache = field(default_factory=PassiveDnsCache)
    sessions: SessionTracker = field(default_factory=SessionTracker)
