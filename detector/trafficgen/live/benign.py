"""Ordinary traffic on real sockets, which a detector must not report: a web
server with a node API and a JSON-lines service, and the client that
browses it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from detector.trafficgen.live.common import (
    DEFAULT_CONNECT_TIMEOUT,
    METHOD_NOT_FOUND,
    POLL_SECONDS,
    RECEIVE_BYTES,
    REPLY_TIMEOUT,
    Endpoint,
    EventLog,
    LineReader,
    PeerError,
    _decode_json,
    _Server,
    connect_with_retry,
    format_endpoint,
)
from detector.trafficgen.messages import http as http_messages
from detector.trafficgen.messages import jsonrpc

# Maximum HTTP header block and body the benign server accepts.
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024

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
