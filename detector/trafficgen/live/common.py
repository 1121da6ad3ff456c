"""Parts every live peer shares: the Stratum dialect names, timeouts and
limits, the error, endpoints, the event log, line framing, the threaded TCP
server base and a retrying connect.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from typing import Any, TextIO

from detector.errors import DetectorError

MONERO = "monero"
STRATUM_V1 = "stratum-v1"
DIALECTS = (MONERO, STRATUM_V1)

# Seconds a miner or a browser retries a refused connection. A server started
# at the same moment in another namespace listens within milliseconds; the
# rest is margin for a loaded host.
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
RECEIVE_BYTES = 65536

# JSON-RPC 2.0 error code for an unknown method.
METHOD_NOT_FOUND = -32601


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
