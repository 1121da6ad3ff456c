"""A miner on real sockets: it logs in to a pool, submits shares and counts
the jobs it receives.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detector.trafficgen import wallets
from detector.trafficgen.live.common import (
    DEFAULT_CONNECT_TIMEOUT,
    DIALECTS,
    MONERO,
    POLL_SECONDS,
    REPLY_TIMEOUT,
    STRATUM_V1,
    Endpoint,
    EventLog,
    LineReader,
    PeerError,
    _decode_json,
    _random_hex,
    connect_with_retry,
    format_endpoint,
)
from detector.trafficgen.live.pool import EXTRANONCE2_BYTES
from detector.trafficgen.messages import monero, stratum_v1

XMRIG_AGENT = "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0"
CGMINER_AGENT = "cgminer/4.12.1"
DEFAULT_AGENTS = {MONERO: XMRIG_AGENT, STRATUM_V1: CGMINER_AGENT}
# The worker name a stratum-v1 miner appends to its wallet in authorize.
WORKER = "worker1"

DEFAULT_SHARES = 1
# Seconds between a miner's shares.
DEFAULT_SHARE_INTERVAL = 0.5
# Seconds a miner keeps the connection open after its last share.
DEFAULT_HOLD = 0.0


@dataclass(frozen=True, slots=True)
class MinerResult:
    """Outcome of a miner's run: its source address, session and counts."""

    local: Endpoint
    session_id: str
    jobs: int
    shares_submitted: int
    shares_accepted: int


class _MinerConnection:
    """A miner's socket: sends requests, waits for replies and counts the
    jobs the pool pushes meanwhile."""

    def __init__(
        self,
        connection: socket.socket,
        dialect: str,
        log: EventLog,
        stop: threading.Event,
    ) -> None:
        self.connection = connection
        self.reader = LineReader(connection)
        self.dialect = dialect
        self.log = log
        self.stop = stop
        self.jobs = 0
        self.job: Any = None
        self.next_id = 1

    def call(self, line_for_id: Callable[[int], bytes]) -> dict[str, Any]:
        """Send a request built for the next id and return the pool's reply.

        Raises PeerError when the pool closes the connection or does not
        reply within REPLY_TIMEOUT seconds.
        """
        request_id = self.next_id
        self.next_id += 1
        self.connection.sendall(line_for_id(request_id))
        deadline = time.monotonic() + REPLY_TIMEOUT
        while True:
            message = self.read(deadline)
            if message is None:
                raise PeerError(f"no reply to request {request_id}")
            if message.get("id") == request_id and "method" not in message:
                return message

    def read(self, deadline: float) -> dict[str, Any] | None:
        """Read messages until one that is not a job notification arrives,
        and return it. Return None at the deadline or once ``stop`` is set.

        Raises PeerError when the pool closes the connection.
        """
        while not self.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                line = self.reader.read_line(min(POLL_SECONDS, remaining))
            except TimeoutError:
                continue
            if line is None:
                raise PeerError("the pool closed the connection")
            message = _decode_json(line)
            if not self._take_job(message):
                return message
        return None

    def _take_job(self, message: dict[str, Any]) -> bool:
        method = message.get("method")
        params = message.get("params")
        if self.dialect == MONERO and method == "job" and isinstance(params, dict):
            self.job = params.get("job_id")
        elif (
            self.dialect == STRATUM_V1
            and method == "mining.notify"
            and isinstance(params, list)
            and params
        ):
            self.job = params
        elif method == "mining.set_difficulty":
            return True
        else:
            return False
        self.jobs += 1
        self.log.emit("job", job_id=self._job_id())
        return True

    def _job_id(self) -> Any:
        if self.dialect == STRATUM_V1 and isinstance(self.job, list):
            return self.job[0]
        return self.job


def mine(
    pool: Endpoint,
    log: EventLog,
    *,
    dialect: str = MONERO,
    agent: str | None = None,
    wallet: str | None = None,
    shares: int = DEFAULT_SHARES,
    interval: float = DEFAULT_SHARE_INTERVAL,
    hold: float = DEFAULT_HOLD,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    seed: int = 0,
    stop: threading.Event | None = None,
) -> MinerResult:
    """Log in to ``pool``, submit ``shares`` shares ``interval`` seconds apart,
    keep the connection open ``hold`` seconds more, then close it.

    The wallet defaults to a placeholder drawn from ``seed``: a Monero address
    for the monero dialect, a Bitcoin bech32 one for stratum-v1. Setting
    ``stop`` ends the run early, after which the result counts what was done.

    Raises PeerError when the pool cannot be reached, closes the connection,
    rejects the login or does not reply in time.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")
    stop = stop if stop is not None else threading.Event()
    rng = random.Random(seed)
    agent = agent if agent is not None else DEFAULT_AGENTS[dialect]
    if wallet is None:
        wallet = (
            wallets.monero(rng) if dialect == MONERO else wallets.bitcoin_bech32(rng)
        )
    log.emit("connecting", pool=format_endpoint(pool))
    connection = connect_with_retry(pool, connect_timeout, stop)
    local_address = connection.getsockname()
    local = (str(local_address[0]), int(local_address[1]))
    submitted = accepted = 0
    session_id = ""
    miner = _MinerConnection(connection, dialect, log, stop)
    try:
        log.emit("connected", pool=format_endpoint(pool), local=format_endpoint(local))
        if dialect == MONERO:
            session_id = _monero_login(miner, wallet, agent)
        else:
            session_id = _stratum_v1_login(miner, wallet, agent)
        log.emit("logged-in", session=session_id, local=format_endpoint(local))
        for index in range(shares):
            if index and stop.wait(interval):
                break
            if stop.is_set():
                break
            submitted += 1
            if dialect == MONERO:
                ok = _monero_submit(miner, rng, session_id)
            else:
                ok = _stratum_v1_submit(miner, rng, f"{wallet}.{WORKER}")
            if ok:
                accepted += 1
            log.emit("share", accepted=ok)
        if hold > 0 and not stop.is_set():
            _hold(miner, hold)
    finally:
        connection.close()
        log.emit("closed", local=format_endpoint(local))
    return MinerResult(
        local=local,
        session_id=session_id,
        jobs=miner.jobs,
        shares_submitted=submitted,
        shares_accepted=accepted,
    )


def _monero_login(miner: _MinerConnection, wallet: str, agent: str) -> str:
    reply = miner.call(
        lambda request_id: monero.xmrig_login(wallet, agent, request_id=request_id)
    )
    result = reply.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("job"), dict):
        raise PeerError(f"login rejected: {reply.get('error')!r}")
    miner.job = result["job"].get("job_id")
    miner.jobs += 1
    return str(result.get("id"))


def _monero_submit(miner: _MinerConnection, rng: random.Random, session: str) -> bool:
    nonce = _random_hex(rng, 4)
    # A share's hash is below the target, so its last (most significant, in
    # little-endian order) bytes are zero.
    result_hash = _random_hex(rng, 28) + "00000000"
    reply = miner.call(
        lambda request_id: monero.submit(
            session, str(miner.job), nonce, result_hash, request_id=request_id
        )
    )
    result = reply.get("result")
    return isinstance(result, dict) and result.get("status") == "OK"


def _stratum_v1_login(miner: _MinerConnection, wallet: str, agent: str) -> str:
    reply = miner.call(lambda request_id: stratum_v1.subscribe(request_id, agent))
    result = reply.get("result")
    if not isinstance(result, list) or not result:
        raise PeerError(f"subscribe rejected: {reply.get('error')!r}")
    subscriptions = result[0]
    session = ""
    if isinstance(subscriptions, list) and subscriptions:
        first = subscriptions[0]
        if isinstance(first, list) and len(first) > 1:
            session = str(first[1])
    user = f"{wallet}.{WORKER}"
    reply = miner.call(lambda request_id: stratum_v1.authorize(request_id, user))
    if reply.get("result") is not True:
        raise PeerError(f"authorize rejected: {reply.get('error')!r}")
    # The pool sends the first job after the authorize result.
    deadline = time.monotonic() + REPLY_TIMEOUT
    while miner.job is None and not miner.stop.is_set():
        if time.monotonic() >= deadline:
            raise PeerError("no job after authorize")
        miner.read(min(deadline, time.monotonic() + POLL_SECONDS))
    return session


def _stratum_v1_submit(miner: _MinerConnection, rng: random.Random, user: str) -> bool:
    job = miner.job
    job_id = str(job[0]) if isinstance(job, list) else ""
    ntime = str(job[7]) if isinstance(job, list) and len(job) > 7 else "00000000"
    extranonce2 = _random_hex(rng, EXTRANONCE2_BYTES)
    nonce = _random_hex(rng, 4)
    reply = miner.call(
        lambda request_id: stratum_v1.submit(
            request_id, user, job_id, extranonce2, ntime, nonce
        )
    )
    return reply.get("result") is True


def _hold(miner: _MinerConnection, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not miner.stop.is_set():
        message = miner.read(deadline)
        if message is not None:
            miner.log.emit("unexpected-message", message=message)
