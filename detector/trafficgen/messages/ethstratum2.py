"""EthereumStratum/2.0.0 as ethminer speaks it (``stratum3+tcp``).

Shapes follow ethminer's ``EthStratumClient.cpp``: the client opens with
``mining.hello`` carrying its agent and the pool's host and port (port in hex),
subscribes with no parameters, and authorises a worker, for which the pool
returns a token. The pool sends ``mining.set`` and then ``mining.notify`` with
four parameters. Notifications carry no ``id``. JsonCpp sorts keys.
"""

from __future__ import annotations

from typing import Any

from detector.trafficgen.messages.jsonrpc import (
    COMPACT,
    SORTED,
    JsonStyle,
    encode_line,
    response,
)

PROTOCOL_NAME = "EthereumStratum/2.0.0"


def hello(
    request_id: int, agent: str, host: str, port: int, *, style: JsonStyle = SORTED
) -> bytes:
    """Build ``mining.hello {agent, host, port, proto}`` with the port in hex."""
    params = {"agent": agent, "host": host, "port": f"{port:x}", "proto": PROTOCOL_NAME}
    return _request(request_id, "mining.hello", params, style=style)


def hello_result(
    request_id: int,
    node: str,
    *,
    timeout_seconds: int = 30,
    max_errors: int = 5,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build the pool's hello result with the members ethminer requires."""
    result = {
        "proto": PROTOCOL_NAME,
        "encoding": "plain",
        "resume": 1,
        "timeout": f"{timeout_seconds:x}",
        "maxerrors": f"{max_errors:x}",
        "node": node,
    }
    return response(request_id, result, include_error=False, style=style)


def subscribe(request_id: int, *, style: JsonStyle = SORTED) -> bytes:
    """Build ``mining.subscribe`` with no ``params`` member."""
    return _request(request_id, "mining.subscribe", None, style=style)


def string_result(request_id: int, value: str, *, style: JsonStyle = COMPACT) -> bytes:
    """Build the session id or worker token the pool returns."""
    return response(request_id, value, include_error=False, style=style)


def authorize(
    request_id: int, user: str, password: str = "x", *, style: JsonStyle = SORTED
) -> bytes:
    """Build ``mining.authorize [user, password]``."""
    return _request(request_id, "mining.authorize", [user, password], style=style)


def mining_set(
    epoch: int,
    target: str,
    extranonce: str,
    algorithm: str = "ethash",
    *,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build ``mining.set {epoch, target, algo, extranonce}`` with the epoch in
    hex."""
    params = {
        "epoch": f"{epoch:x}",
        "target": target,
        "algo": algorithm,
        "extranonce": extranonce,
    }
    return _notification("mining.set", params, style=style)


def notify(
    job_id: str,
    height: int,
    header_hash: str,
    clean_jobs: bool,
    *,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build ``mining.notify [job_id, height, header, clean]``, height in hex
    and ``clean`` as the string "1" or "0"."""
    params = [job_id, f"{height:x}", header_hash, "1" if clean_jobs else "0"]
    return _notification("mining.notify", params, style=style)


def submit(
    request_id: int,
    job_id: str,
    miner_nonce: str,
    worker_token: str,
    *,
    style: JsonStyle = SORTED,
) -> bytes:
    """Build ``mining.submit [job_id, nonce, worker_token]``."""
    params = [job_id, miner_nonce, worker_token]
    return _request(request_id, "mining.submit", params, style=style)


def boolean_result(
    request_id: int, value: bool = True, *, style: JsonStyle = COMPACT
) -> bytes:
    """Build ``{"id", "result": value}``."""
    return response(request_id, value, include_error=False, style=style)


def hashrate(
    request_id: int, rate: int, worker_token: str, *, style: JsonStyle = SORTED
) -> bytes:
    """Build ``mining.hashrate [rate, worker_token]`` with the rate in hex."""
    return _request(
        request_id, "mining.hashrate", [f"{rate:x}", worker_token], style=style
    )


def noop(request_id: int, *, style: JsonStyle = SORTED) -> bytes:
    """Build ``mining.noop``, which keeps an idle session open."""
    return _request(request_id, "mining.noop", None, style=style)


def bye(*, style: JsonStyle = COMPACT) -> bytes:
    """Build ``mining.bye``, which ends the session."""
    return _notification("mining.bye", None, style=style)


def _request(request_id: int, method: str, params: Any, *, style: JsonStyle) -> bytes:
    message: dict[str, Any] = {"id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return encode_line(message, style)


def _notification(method: str, params: Any, *, style: JsonStyle) -> bytes:
    message: dict[str, Any] = {"method": method}
    if params is not None:
        message["params"] = params
    return encode_line(message, style)
