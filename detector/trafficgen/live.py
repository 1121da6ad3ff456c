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
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

from detector.errors import DetectorError
from detector.trafficgen import wallets
from detector.trafficgen.messages import http as http_messages
from detector.trafficgen.messages import jsonrpc, monero, stratum_v1

EXIT_OK = 0
EXIT_PEER_FAILED = 1
EXIT_USAGE = 2

MONERO = "monero"
STRATUM_V1 = "stratum-v1"
DIALECTS = (MONERO, STRATUM_V1)

XMRIG_AGENT = "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0"
CGMINER_AGENT = "cgminer/4.12.1"
DEFAULT_AGENTS = {MONERO: XMRIG_AGENT, STRATUM_V1: CGMINER_AGENT}
# The worker name a stratum-v1 miner appends to its wallet in authorize.
WORKER = "worker1"

# Seconds between the jobs a pool pushes. Real pools push one when the chain
# moves (Monero: every 120 s on average) or the difficulty changes; tests
# want them sooner.
DEFAULT_JOB_INTERVAL = 30.0
DEFAULT_SHARES = 1
# Seconds between a miner's shares.
DEFAULT_SHARE_INTERVAL = 0.5
# Seconds a miner keeps the connection open after its last share.
DEFAULT_HOLD = 0.0
# Seconds a miner retries a refused connection. A pool started at the same
# moment in another namespace listens within milliseconds; the rest is margin
# for a loaded host.
DEFAULT_CONNECT_TIMEOUT = 10.0
CONNECT_RETRY_DELAY = 0.1
# Seconds a peer waits for a reply before it fails. Loopback and veth peers
# reply in milliseconds.
REPLY_TIMEOUT = 10.0
# Seconds a blocked read lasts before a server or miner checks whether a stop
# was requested, so SIGTERM takes effect within this time.
POLL_SECONDS = 0.2
LISTEN_BACKLOG = 64
# Maximum line length a peer accepts. Stratum lines stay below 4 KiB (an xmrig login
# with its algorithm list is about 600 bytes), so a longer one is an error.
MAX_LINE_BYTES = 64 * 1024
# Maximum HTTP header block and body the benign server accepts.
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
RECEIVE_BYTES = 65536

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

# JSON-RPC 2.0 error code for an unknown method.
METHOD_NOT_FOUND = -32601
# Stratum v1 pools reject with code 20 "Other/Unknown" when no specific code
# (21 stale job, 22 duplicate, 23 low difficulty, ...) applies.
STRATUM_UNKNOWN_ERROR = 20

# Contents of the benign server's replies: a small page, a Bitcoin Core block
# count and an Ethereum block number, both estimates for early 2026.
BENIGN_PAGE = (
    b"<!doctype html>\n<html><head><title>Status</title></head>\n"
    b"<body><h1>Status</h1><p>All services are running.</p></body></html>\n"
)
BITCOIN_BLOCK_COUNT = 930_000
ETHEREUM_BLOCK_NUMBER = "0x16e3600"
BROWSER_AGENT = "curl/8.5.0"
NODE_CLIENT_AGENT = "python-requests/2.32.3"
DEFAULT_BROWSE_COUNT = 1
# The first byte of a JSON-lines request; HTTP requests start with a method.
JSON_OBJECT_START = b"{"


class PeerError(DetectorError):
    """A live peer failed: its connection was refused or closed early, or a
    reply was missing or malformed."""


Endpoint = tuple[str, int]


def parse_endpoint(text: str) -> Endpoint:
    """Parse ``ADDR:PORT`` or ``[IPV6]:PORT`` into an address and a port.

    Raises ValueError when the port is missing, not a number or out of range.
    """
    host, separator, port_text = text.rpartition(":")
    if not separator or not host:
        raise ValueError(f"invalid endpoint {text!r}: expected ADDR:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"invalid port in {text!r}: {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"invalid port in {text!r}: {port} is out of range")
    return host, port


def format_endpoint(endpoint: Endpoint) -> str:
    """Format an address and port as ``ADDR:PORT``, bracketing IPv6 addresses."""
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EventLog:
    """Writes one JSON object per peer event to a text stream.

    Each object has ``time`` (Unix seconds), ``event`` and the event's fields.
    Server threads share one log, so a lock keeps each line whole.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        record = {"time": time.time(), "event": event, **fields}
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class LineReader:
    """Splits the bytes a socket receives into lines ending in ``\\n``."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._buffer = bytearray()
        self.closed = False

    def read_line(self, timeout: float) -> bytes | None:
        """Return the next line without its ending, or None once the peer
        closes. Raises TimeoutError when no line arrives within ``timeout``
        seconds and PeerError for a line longer than MAX_LINE_BYTES."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end]).rstrip(b"\r")
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > MAX_LINE_BYTES:
                raise PeerError(f"line longer than {MAX_LINE_BYTES} bytes")
            if self.closed:
                return None
            self._connection.settimeout(timeout)
            try:
                chunk = self._connection.recv(RECEIVE_BYTES)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                # A partial line at the end of the stream is dropped, as a
                # line-framed peer would drop it.
                self.closed = True
                self._buffer.clear()
            self._buffer += chunk


def _decode_json(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PeerError(f"invalid JSON line: {line[:80]!r}") from exc
    if not isinstance(message, dict):
        raise PeerError(f"JSON line is not an object: {line[:80]!r}")
    return message


def _random_hex(rng: random.Random, size: int) -> str:
    return rng.randbytes(size).hex()


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


# -- pool ----------------------------------------------------------------------


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


class _Server:
    """A TCP listener that serves each connection on its own thread until
    :meth:`stop`."""

    def __init__(self, listen: Endpoint, log: EventLog, kind: str) -> None:
        family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        self._listener = socket.create_server(
            listen, family=family, backlog=LISTEN_BACKLOG
        )
        self._listener.settimeout(POLL_SECONDS)
        self._log = log
        self._kind = kind
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[int, socket.socket] = {}
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"{kind}-accept", daemon=True
        )

    @property
    def address(self) -> Endpoint:
        """The address and port the server listens on (a real port after
        binding port 0)."""
        bound = self._listener.getsockname()
        return str(bound[0]), int(bound[1])

    def start(self) -> None:
        self._log.emit(
            "listening", kind=self._kind, address=self.address[0], port=self.address[1]
        )
        self._acceptor.start()

    def stop(self) -> None:
        """Close the listener and every connection and wait for the threads."""
        self._stopping.set()
        self._acceptor.join()
        with self._lock:
            connections = list(self._connections.values())
            threads = list(self._threads)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join()
        self._listener.close()
        self._log.emit("stopped", kind=self._kind)

    def __enter__(self) -> _Server:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                self._log.emit("accept-failed", kind=self._kind, error=str(exc))
                continue
            peer = format_endpoint((str(address[0]), int(address[1])))
            thread = threading.Thread(
                target=self._run_connection,
                args=(connection, peer),
                name=f"{self._kind}-{peer}",
                daemon=True,
            )
            with self._lock:
                self._connections[connection.fileno()] = connection
                self._threads = [item for item in self._threads if item.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _run_connection(self, connection: socket.socket, peer: str) -> None:
        key = connection.fileno()
        self._log.emit("connected", kind=self._kind, peer=peer)
        try:
            self.serve_connection(connection, peer, self._stopping)
        except (PeerError, OSError) as exc:
            self._log.emit(
                "connection-failed", kind=self._kind, peer=peer, error=str(exc)
            )
        finally:
            with self._lock:
                self._connections.pop(key, None)
            connection.close()
            self._log.emit("closed", kind=self._kind, peer=peer)

    def serve_connection(
        self, connection: socket.socket, peer: str, stopping: threading.Event
    ) -> None:
        raise NotImplementedError


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


# -- miner ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MinerResult:
    """Outcome of a miner's run: its source address, session and counts."""

    local: Endpoint
    session_id: str
    jobs: int
    shares_submitted: int
    shares_accepted: int


def connect_with_retry(
    server: Endpoint, timeout: float, stop: threading.Event | None = None
) -> socket.socket:
    """Connect to ``server``, retrying a refused connection for ``timeout``
    seconds.

    Raises PeerError when the connection is still refused at the end, fails
    for another reason, or ``stop`` is set meanwhile.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(server, timeout=REPLY_TIMEOUT)
        except ConnectionRefusedError as exc:
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                raise PeerError(
                    f"connection to {format_endpoint(server)} refused for {timeout} s"
                ) from exc
            time.sleep(CONNECT_RETRY_DELAY)
        except OSError as exc:
            raise PeerError(
                f"connection to {format_endpoint(server)} failed: {exc}"
            ) from exc


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


# -- ordinary traffic ----------------------------------------------------------


class BenignServer(_Server):
    """A web server and node API on one port, plus a JSON-lines RPC service.

    A connection whose first byte is ``{`` speaks JSON lines: ``ping``
    returns ``"pong"`` and ``echo`` returns its params. Any other connection
    speaks HTTP/1.1: ``GET`` returns a small page and ``POST`` takes a
    JSON-RPC 2.0 call of a node API (``getblockcount``, ``eth_blockNumber``).
    Unknown methods get the JSON-RPC "Method not found" error.

    Raises OSError from the constructor when it cannot listen on ``listen``.
    """

    def __init__(self, listen: Endpoint, log: EventLog) -> None:
        super().__init__(listen, log, "benign")

    def serve_connection(
        self, connection: socket.socket, peer: str, stopping: threading.Event
    ) -> None:
        first = b""
        while not stopping.is_set() and not first:
            connection.settimeout(POLL_SECONDS)
            try:
                first = connection.recv(1, socket.MSG_PEEK)
            except TimeoutError:
                continue
            if not first:
                return
        if first == JSON_OBJECT_START:
            self._serve_json_lines(connection, peer, stopping)
        elif first:
            self._serve_http(connection, peer, stopping)

    def _serve_json_lines(
        self, connection: socket.socket, peer: str, stopping: threading.Event
    ) -> None:
        reader = LineReader(connection)
        while not stopping.is_set():
            try:
                line = reader.read_line(POLL_SECONDS)
            except TimeoutError:
                continue
            if line is None:
                return
            message = _decode_json(line)
            method = message.get("method")
            self._log.emit("rpc-request", kind="json-lines", peer=peer, method=method)
            connection.sendall(_rpc_reply(message, version_two=False))

    def _serve_http(
        self, connection: socket.socket, peer: str, stopping: threading.Event
    ) -> None:
        buffer = bytearray()
        while not stopping.is_set():
            request = _read_http_request(connection, buffer, stopping)
            if request is None:
                return
            method, target, headers, body = request
            self._log.emit(
                "http-request",
                peer=peer,
                method=method,
                target=target,
                host=headers.get("host"),
            )
            if method == "POST":
                message = _decode_json(body)
                self._log.emit(
                    "rpc-request", kind="http", peer=peer, method=message.get("method")
                )
                reply_body = _rpc_reply(message, version_two=True)
                content_type = "application/json"
            else:
                reply_body = BENIGN_PAGE
                content_type = "text/html; charset=UTF-8"
            response = http_messages.response(
                200,
                "OK",
                [("Content-Type", content_type), ("Server", "nginx/1.24.0")],
                reply_body,
            )
            connection.sendall(response)
            if headers.get("connection", "").lower() == "close":
                return


def _rpc_reply(message: dict[str, Any], *, version_two: bool) -> bytes:
    method = message.get("method")
    request_id = message.get("id")
    results: dict[str, Any] = {
        "ping": "pong",
        "echo": message.get("params"),
        "getblockcount": BITCOIN_BLOCK_COUNT,
        "eth_blockNumber": ETHEREUM_BLOCK_NUMBER,
    }
    if method in results:
        # JSON-RPC 2.0 leaves "error" out of a successful response; the
        # older line protocols write "error": null.
        return jsonrpc.response(
            request_id,
            results[str(method)],
            include_error=not version_two,
            jsonrpc=version_two,
        )
    error = {"code": METHOD_NOT_FOUND, "message": "Method not found"}
    return jsonrpc.error_response(request_id, error, jsonrpc=version_two)


def _read_http_request(
    connection: socket.socket, buffer: bytearray, stopping: threading.Event
) -> tuple[str, str, dict[str, str], bytes] | None:
    """Read one request; return None when the client closes between
    requests. Raises PeerError for a malformed or oversized request."""
    # The header block ends at the first empty line.
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEADER_BYTES:
            raise PeerError(f"HTTP header longer than {MAX_HEADER_BYTES} bytes")
        chunk = _receive(connection, stopping)
        if not chunk:
            if buffer:
                raise PeerError("connection closed inside an HTTP request")
            return None
        buffer += chunk

    head_end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:head_end]).decode("latin-1")
    del buffer[: head_end + 4]
    start_line, *header_lines = head.split("\r\n")
    parts = start_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise PeerError(f"invalid HTTP request line: {start_line[:80]!r}")
    headers: dict[str, str] = {}
    for header in header_lines:
        name, separator, value = header.partition(":")
        if not separator:
            raise PeerError(f"invalid HTTP header: {header[:80]!r}")
        headers[name.strip().lower()] = value.strip()

    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise PeerError("invalid Content-Length") from None
    if not 0 <= length <= MAX_BODY_BYTES:
        raise PeerError(f"Content-Length {length} outside 0..{MAX_BODY_BYTES}")
    while len(buffer) < length:
        chunk = _receive(connection, stopping)
        if not chunk:
            raise PeerError("connection closed inside an HTTP body")
        buffer += chunk
    body = bytes(buffer[:length])
    del buffer[:length]
    return parts[0], parts[1], headers, body


def _receive(connection: socket.socket, stopping: threading.Event) -> bytes:
    """Receive some bytes; return b"" when the peer closes or once ``stopping``
    is set."""
    while not stopping.is_set():
        connection.settimeout(POLL_SECONDS)
        try:
            return connection.recv(RECEIVE_BYTES)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return b""
    return b""


@dataclass(frozen=True, slots=True)
class BrowseResult:
    """How many requests of each kind got a successful reply."""

    pages: int
    http_rpc_calls: int
    line_rpc_calls: int


# The node calls a client makes over HTTP, with the result a node returns.
NODE_CALLS = (
    ("getblockcount", BITCOIN_BLOCK_COUNT),
    ("eth_blockNumber", ETHEREUM_BLOCK_NUMBER),
)


def browse(
    server: Endpoint,
    log: EventLog,
    *,
    count: int = DEFAULT_BROWSE_COUNT,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    host: str | None = None,
) -> BrowseResult:
    """Make ``count`` rounds of ordinary requests to a :class:`BenignServer`.

    Each round opens one HTTP connection for a page and the node calls, and
    one JSON-lines connection for a ``ping``. ``host`` sets the HTTP ``Host``
    header, which otherwise names the server's address and port.

    Raises PeerError when the server cannot be reached or a reply is not the
    expected one.
    """
    pages = http_calls = line_calls = 0
    host_header = {} if host is None else {"Host": host}
    for _ in range(count):
        # Probing with a retrying connect first lets a client start at the
        # same moment as the server.
        connect_with_retry(server, connect_timeout).close()
        with _http_connection(server) as client:
            status, body = _http_exchange(
                client, "GET", "/", None, {**host_header, "User-Agent": BROWSER_AGENT}
            )
            if status != 200 or body != BENIGN_PAGE:
                raise PeerError(f"GET / returned status {status}")
            pages += 1
            log.emit("http-response", method="GET", status=status)
            for request_id, (method, expected) in enumerate(NODE_CALLS, start=1):
                call = {"jsonrpc": "2.0", "id": request_id, "method": method}
                call["params"] = []
                status, body = _http_exchange(
                    client,
                    "POST",
                    "/",
                    json.dumps(call).encode(),
                    {
                        **host_header,
                        "User-Agent": NODE_CLIENT_AGENT,
                        "Content-Type": "application/json",
                    },
                )
                reply = _decode_json(body)
                if status != 200 or reply.get("result") != expected:
                    raise PeerError(f"{method} returned {status} {reply!r}")
                http_calls += 1
                log.emit("rpc-response", kind="http", method=method)
        line_calls += _ping(server, log)
    log.emit("done", pages=pages, http_rpc_calls=http_calls, line_rpc_calls=line_calls)
    return BrowseResult(pages, http_calls, line_calls)


@contextlib.contextmanager
def _http_connection(server: Endpoint) -> Iterator[http.client.HTTPConnection]:
    client = http.client.HTTPConnection(server[0], server[1], timeout=REPLY_TIMEOUT)
    try:
        yield client
    finally:
        client.close()


def _http_exchange(
    client: http.client.HTTPConnection,
    method: str,
    target: str,
    body: bytes | None,
    headers: dict[str, str],
) -> tuple[int, bytes]:
    try:
        client.request(method, target, body=body, headers=headers)
        response = client.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise PeerError(f"{method} {target} failed: {exc}") from exc


def _ping(server: Endpoint, log: EventLog) -> int:
    try:
        connection = socket.create_connection(server, timeout=REPLY_TIMEOUT)
    except OSError as exc:
        raise PeerError(
            f"connection to {format_endpoint(server)} failed: {exc}"
        ) from exc
    with connection:
        connection.sendall(jsonrpc.request(1, "ping", [], jsonrpc=True))
        line = LineReader(connection).read_line(REPLY_TIMEOUT)
        if line is None:
            raise PeerError("the JSON-lines server closed the connection")
        reply = _decode_json(line)
        if reply.get("result") != "pong":
            raise PeerError(f"ping returned {reply!r}")
        log.emit("rpc-response", kind="json-lines", method="ping")
    return 1


# -- command line --------------------------------------------------------------


def _endpoint_argument(text: str) -> Endpoint:
    try:
        return parse_endpoint(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detector.trafficgen live",
        description="Run a Stratum pool, a miner, or an ordinary server or client"
        " on real sockets. Each writes one JSON object per event to standard"
        " output.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    pool = commands.add_parser("serve-pool", help="run a Stratum pool until SIGTERM")
    pool.add_argument(
        "--listen",
        type=_endpoint_argument,
        required=True,
        help="ADDR:PORT to listen on (port 0: any free port)",
    )
    pool.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=MONERO,
        help=f"Stratum dialect (default {MONERO})",
    )
    pool.add_argument(
        "--job-interval",
        type=_non_negative,
        default=DEFAULT_JOB_INTERVAL,
        help="seconds between pushed jobs; 0 pushes none"
        f" (default {DEFAULT_JOB_INTERVAL})",
    )
    pool.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the session ids and jobs (default 0)",
    )

    miner = commands.add_parser("mine", help="log in to a pool and submit shares")
    miner.add_argument(
        "--pool", type=_endpoint_argument, required=True, help="ADDR:PORT of the pool"
    )
    miner.add_argument(
        "--dialect",
        choices=DIALECTS,
        default=MONERO,
        help=f"Stratum dialect (default {MONERO})",
    )
    miner.add_argument(
        "--agent",
        default=None,
        help="agent string of the login or subscribe (default:"
        f" {XMRIG_AGENT!r} for monero, {CGMINER_AGENT!r} for"
        " stratum-v1)",
    )
    miner.add_argument(
        "--wallet",
        default=None,
        help="wallet to log in with (default: a placeholder address drawn from --seed)",
    )
    miner.add_argument(
        "--shares",
        type=_count,
        default=DEFAULT_SHARES,
        help=f"shares to submit (default {DEFAULT_SHARES})",
    )
    miner.add_argument(
        "--interval",
        type=_non_negative,
        default=DEFAULT_SHARE_INTERVAL,
        help=f"seconds between shares (default {DEFAULT_SHARE_INTERVAL})",
    )
    miner.add_argument(
        "--hold",
        type=_non_negative,
        default=DEFAULT_HOLD,
        help="seconds to keep the connection open after the"
        f" last share (default {DEFAULT_HOLD})",
    )
    miner.add_argument(
        "--connect-timeout",
        type=_non_negative,
        default=DEFAULT_CONNECT_TIMEOUT,
        help="seconds to retry a refused connection"
        f" (default {DEFAULT_CONNECT_TIMEOUT})",
    )
    miner.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the wallet, nonces and hashes (default 0)",
    )

    benign = commands.add_parser(
        "serve-benign",
        help="run a web server, node API and JSON-lines service until SIGTERM",
    )
    benign.add_argument(
        "--listen",
        type=_endpoint_argument,
        required=True,
        help="ADDR:PORT to listen on (port 0: any free port)",
    )

    client = commands.add_parser(
        "browse", help="fetch a page, make node API calls and send a ping"
    )
    client.add_argument(
        "--server",
        type=_endpoint_argument,
        required=True,
        help="ADDR:PORT of a serve-benign server",
    )
    client.add_argument(
        "--count",
        type=_count,
        default=DEFAULT_BROWSE_COUNT,
        help=f"rounds of requests (default {DEFAULT_BROWSE_COUNT})",
    )
    client.add_argument(
        "--connect-timeout",
        type=_non_negative,
        default=DEFAULT_CONNECT_TIMEOUT,
        help="seconds to retry a refused connection"
        f" (default {DEFAULT_CONNECT_TIMEOUT})",
    )
    client.add_argument(
        "--host",
        default=None,
        help="Host header of the HTTP requests (default: the server's ADDR:PORT)",
    )
    return parser


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Set the yielded event on SIGTERM or SIGINT, instead of exiting."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        signum: signal.signal(signum, handle)
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one peer command; return the exit status."""
    arguments = _parser().parse_args(argv)
    log = EventLog(sys.stdout)
    try:
        with _stop_on_signals() as stop:
            if arguments.command == "serve-pool":
                server: _Server = StratumPool(
                    arguments.listen,
                    log,
                    dialect=arguments.dialect,
                    job_interval=arguments.job_interval,
                    seed=arguments.seed,
                )
            elif arguments.command == "serve-benign":
                server = BenignServer(arguments.listen, log)
            elif arguments.command == "mine":
                mine(
                    arguments.pool,
                    log,
                    dialect=arguments.dialect,
                    agent=arguments.agent,
                    wallet=arguments.wallet,
                    shares=arguments.shares,
                    interval=arguments.interval,
                    hold=arguments.hold,
                    connect_timeout=arguments.connect_timeout,
                    seed=arguments.seed,
                    stop=stop,
                )
                return EXIT_OK
            else:
                browse(
                    arguments.server,
                    log,
                    count=arguments.count,
                    connect_timeout=arguments.connect_timeout,
                    host=arguments.host,
                )
                return EXIT_OK
            with server:
                while not stop.wait(POLL_SECONDS):
                    pass
    except PeerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PEER_FAILED
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PEER_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
