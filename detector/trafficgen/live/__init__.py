"""Stratum pools, miners and ordinary clients on real sockets, for live tests.

Live-capture tests need real TCP traffic on an interface that the detector
watches. These peers make it with the standard library only (no scapy), so
they run inside a network namespace::

    ip netns exec NS python -m detector.trafficgen live serve-pool --listen A:P
    python -m detector.trafficgen live mine --pool ADDR:PORT [--shares N] ...
    python -m detector.trafficgen live serve-benign --listen ADDR:PORT
    python -m detector.trafficgen live browse --server ADDR:PORT [--count N]

The miner logs in as XMRig with a placeholder Monero wallet, or as cgminer with
a Bitcoin one. The pool sends jobs and accepts every share. The benign pair
exchanges web pages, node JSON-RPC calls over HTTP and JSON-lines pings, which
a detector must not report. Every peer writes one JSON object per event
to standard output (``{"time": ..., "event": "login", ...}``), so a test can
read when a miner logged in and on which port a server listens.

Exit status: 0 on success and after SIGTERM or SIGINT, 1 when a peer fails (a
connection refused past the timeout, closed early, or a missing or malformed
reply), 2 for a usage error.

The modules, by role: :mod:`~detector.trafficgen.live.common` (errors,
endpoints, event log, line framing, server base),
:mod:`~detector.trafficgen.live.pool`, :mod:`~detector.trafficgen.live.miner`,
:mod:`~detector.trafficgen.live.benign` (the ordinary server and client) and
:mod:`~detector.trafficgen.live.command` (the command line).
"""

from __future__ import annotations

from detector.trafficgen.live.benign import BenignServer, BrowseResult, browse
from detector.trafficgen.live.command import (
    EXIT_OK,
    EXIT_PEER_FAILED,
    EXIT_USAGE,
    main,
)
from detector.trafficgen.live.common import (
    MAX_LINE_BYTES,
    METHOD_NOT_FOUND,
    MONERO,
    STRATUM_V1,
    EventLog,
    LineReader,
    PeerError,
    format_endpoint,
    parse_endpoint,
)
from detector.trafficgen.live.miner import (
    CGMINER_AGENT,
    XMRIG_AGENT,
    MinerResult,
    mine,
)
from detector.trafficgen.live.pool import MONERO_ALGORITHM, PoolSession, StratumPool

__all__ = [
    "CGMINER_AGENT",
    "EXIT_OK",
    "EXIT_PEER_FAILED",
    "EXIT_USAGE",
    "MAX_LINE_BYTES",
    "METHOD_NOT_FOUND",
    "MONERO",
    "MONERO_ALGORITHM",
    "STRATUM_V1",
    "XMRIG_AGENT",
    "BenignServer",
    "BrowseResult",
    "EventLog",
    "LineReader",
    "MinerResult",
    "PeerError",
    "PoolSession",
    "StratumPool",
    "browse",
    "format_endpoint",
    "main",
    "mine",
    "parse_endpoint",
]
