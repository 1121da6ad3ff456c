"""A Stratum pool on real sockets: the per-miner session and the jobs it
sends.
"""

from __future__ import annotations

import itertools
import random
import socket
import threading
import time
from typing import Any

from detector.trafficgen.live.common import (
    DIALECTS,
    METHOD_NOT_FOUND,
    MONERO,
    POLL_SECONDS,
    Endpoint,
    EventLog,
    LineReader,
    _decode_json,
    _random_hex,
    _Server,
)
from detector.trafficgen.messages import jsonrpc, monero, stratum_v1

# Seconds between the jobs a pool pushes. Real pools push one when the chain
# moves (Monero: every 120 s on average) or the difficulty changes; tests
# want them sooner.
DEFAULT_JOB_INTERVAL = 30.0

# A Monero job: RandomX, a 32-bit target in little-endian hex as pools send it,
# and a chain height near Monero's in early 2026 (an estimate).
MONERO_ALGORITHM = "rx/0"
MONERO_TARGET = "b88d0600"
MONERO_HEIGHT = 3_580_000
# A Monero hashing blob is 76 bytes: major and minor version 0x10, a 5-byte
# varint timestamp, the previous block id, a zero nonce, the merkle root and
# a one-byte transaction count.
MONERO_BLOB_VERSION = "1010"
# A Bitcoin job: version 0x20000000 (BIP 9, no deployment bits), the nbits
# (compact target) of the bundled Bitcoin samples, and 4-byte extranonces.
BITCOIN_VERSION = "20000000"
BITCOIN_NBITS = "17034219"
EXTRANONCE1_BYTES = 4
EXTRANONCE2_BYTES = 4
# The version bits a pool lets miners roll (BIP 320's general-purpose bits).
POOL_VERSION_MASK = "1fffe000"
POOL_DIFFICULTY = 65536.0

# Stratum v1 pools reject with code 20 "Other/Unknown" when no specific code
# (21 stale job, 22 duplicate, 23 low difficulty, ...) applies.
STRATUM_UNKNOWN_ERROR = 20


def _monero_job(rng: random.Random, height: int, seed_hash: str) -> monero.Job:
    timestamp = int(time.time())
    varint = bytearray()
    while True:
        byte = timestamp & 0x7F
        timestamp >>= 7
        if timestamp:
            varint.append(byte | 0x80)
        else:
            varint.append(byte)
            break
    blob = (
        MONERO_BLOB_VERSION
        + varint.hex()
        + _random_hex(rng, 32)
        + "00000000"
        + _random_hex(rng, 32)
        + "01"
    )
    return monero.Job(
        blob=blob,
        job_id=_random_hex(rng, 6),
        target=MONERO_TARGET,
        algorithm=MONERO_ALGORITHM,
        height=height,
        seed_hash=seed_hash,
    )


def _bitcoin_job(rng: random.Random, clean_jobs: bool) -> stratum_v1.Notify:
    return stratum_v1.Notify(
        job_id=_random_hex(rng, 3),
        previous_hash=_random_hex(rng, 32),
        coinbase1="01000000010000000000000000000000000000000000000000000000000000000000"
        "000000ffffffff35" + _random_hex(rng, 20),
        coinbase2=_random_hex(rng, 12) + "ffffffff02" + _random_hex(rng, 40),
        merkle_branches=(_random_hex(rng, 32), _random_hex(rng, 32)),
        version=BITCOIN_VERSION,
        nbits=BITCOIN_NBITS,
        ntime=f"{int(time.time()):08x}",
        clean_jobs=clean_jobs,
    )


class PoolSession:
    """One miner's conversation with the pool, without I/O.

    :meth:`receive` takes a line from the miner and returns the lines to send
    back; :meth:`next_job` returns the job to push once the miner is logged
    in. Every event goes to ``log`` with the miner's address as ``peer``.
    """

    def __init__(
        self, dialect: str, rng: random.Random, log: EventLog, peer: str
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")
        self.dialect = dialect
        self.logged_in = False
        self.jobs_sent = 0
        self.shares_accepted = 0
        self._rng = rng
        self._log = log
        self._peer = peer
        self._session_id = _random_hex(rng, 8)
        self._seed_hash = _random_hex(rng, 32)
        self._height = MONERO_HEIGHT

    def receive(self, line: bytes) -> list[bytes]:
        """Handle one line from the miner and return the replies to send.

        Raises PeerError for a line that is not a JSON object.
        """
        message = _decode_json(line)
        method = message.get("method")
        request_id = message.get("id")
        params = message.get("params")
        if self.dialect == MONERO:
            return self._receive_monero(method, request_id, params)
        return self._receive_stratum_v1(method, request_id, params)

    def next_job(self) -> bytes | None:
        """Return a new job notification, or None before the miner logs in."""
        if not self.logged_in:
            return None
        self.jobs_sent += 1
        if self.dialect == MONERO:
            self._height += 1
            job = _monero_job(self._rng, self._height, self._seed_hash)
            self._log.emit("job", peer=self._peer, job_id=job.job_id)
            return monero.job_notification(job)
        notify = _bitcoin_job(self._rng, clean_jobs=False)
        self._log.emit("job", peer=self._peer, job_id=notify.job_id)
        return stratum_v1.notify(notify)

    def _receive_monero(self, method: Any, request_id: Any, params: Any) -> list[bytes]:
        fields = params if isinstance(params, dict) else {}
        if method == "login":
            job = _monero_job(self._rng, self._height, self._seed_hash)
            self.logged_in = True
            self.jobs_sent += 1
            self._log.emit(
                "login",
                peer=self._peer,
                session=self._session_id,
                agent=fields.get("agent"),
                wallet=fields.get("login"),
                job_id=job.job_id,
            )
            return [monero.login_result(self._session_id, job, request_id=request_id)]
        if method == "submit":
            self.shares_accepted += 1
            self._log.emit("submit", peer=self._peer, job_id=fields.get("job_id"))
            return [monero.status_result(request_id)]
        if method == "keepalived":
            self._log.emit("keepalived", peer=self._peer)
            return [monero.status_result(request_id, "KEEPALIVED")]
        self._log.emit("unknown-method", peer=self._peer, method=method)
        error = {"code": METHOD_NOT_FOUND, "message": "Method not found"}
        return [jsonrpc.error_response(request_id, error, jsonrpc=True)]

    def _receive_stratum_v1(
        self, method: Any, request_id: Any, params: Any
    ) -> list[bytes]:
        values = params if isinstance(params, list) else []
        if method == "mining.subscribe":
            self._log.emit(
                "subscribe",
                peer=self._peer,
                agent=values[0] if values else None,
                session=self._session_id,
            )
            return [
                stratum_v1.subscribe_result(
                    request_id,
                    self._session_id,
                    _random_hex(self._rng, EXTRANONCE1_BYTES),
                    EXTRANONCE2_BYTES,
                )
            ]
        if method == "mining.configure":
            return [stratum_v1.configure_result(request_id, POOL_VERSION_MASK)]
        if method == "mining.authorize":
            self.logged_in = True
            self.jobs_sent += 1
            notify = _bitcoin_job(self._rng, clean_jobs=True)
            self._log.emit(
                "login",
                peer=self._peer,
                session=self._session_id,
                wallet=values[0] if values else None,
                job_id=notify.job_id,
            )
            return [
                stratum_v1.boolean_result(request_id, True),
                stratum_v1.set_difficulty(POOL_DIFFICULTY),
                stratum_v1.notify(notify),
            ]
        if method == "mining.submit":
            self.shares_accepted += 1
            job_id = values[1] if len(values) > 1 else None
            self._log.emit("submit", peer=self._peer, job_id=job_id)
            return [stratum_v1.boolean_result(request_id, True)]
        self._log.emit("unknown-method", peer=self._peer, method=method)
        error = [STRATUM_UNKNOWN_ERROR, "Method not found", None]
        return [stratum_v1.boolean_result(request_id, False, error=error)]


class StratumPool(_Server):
    """A Stratum pool that logs miners in, pushes jobs every ``job_interval``
    seconds (0 disables pushes) and accepts every share.

    Raises OSError from the constructor when it cannot listen on ``listen``.
    """

    def __init__(
        self,
        listen: Endpoint,
        log: EventLog,
        *,
        dialect: str = MONERO,
        job_interval: float = DEFAULT_JOB_INTERVAL,
        seed: int = 0,
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {dialect!r}; expected one of {DIALECTS}")
        super().__init__(listen, log, "pool")
        self.dialect = dialect
        self.job_interval = job_interval
        self._seed = seed
        self._session_numbers = itertools.count(1)

    def serve_connection(
        self, connection: socket.socket, peer: str, stopping: threading.Event
    ) -> None:
        rng = random.Random(f"{self._seed}-{next(self._session_numbers)}")
        session = PoolSession(self.dialect, rng, self._log, peer)
        reader = LineReader(connection)
        next_push: float | None = None
        while not stopping.is_set():
            try:
                line = reader.read_line(POLL_SECONDS)
            except TimeoutError:
                line = b""
            if line is None:
                return
            if line:
                for reply in session.receive(line):
                    connection.sendall(reply)
            now = time.monotonic()
            if self.job_interval > 0 and session.logged_in:
                if next_push is None:
                    next_push = now + self.job_interval
                elif now >= next_push:
                    job = session.next_job()
                    if job is not None:
                        connection.sendall(job)
                    next_push = now + self.job_interval
