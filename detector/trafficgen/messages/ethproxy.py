"""The ethproxy dialect (ethminer's ``stratum1+tcp``, Claymore, NBMiner).

The miner logs in with ``eth_submitLogin`` (Claymore: ``eth_login``) and a
``worker`` member outside ``params``, polls ``eth_getWork`` and submits with
``eth_submitWork``. The pool pushes new work as a bare response with ``id`` 0
and no ``method``. Claymore writes JSON the way Python's ``json.dumps`` does,
with ``worker`` first and a space after each ``:`` and ``,``.
"""

from __future__ import annotations

from typing import Any

from detector.trafficgen.messages.jsonrpc import (
    COMPACT,
    JsonStyle,
    encode_line,
    response,
)

CLAYMORE = JsonStyle(
    item_separator=", ",
    key_separator=": ",
    key_order=("worker", "jsonrpc", "params", "id", "method"),
)

# ethproxy pools push work with this id, which marks a notification.
PUSH_ID = 0


def submit_login(
    login: str,
    password: str = "x",
    *,
    worker: str,
    request_id: int = 2,
    style: JsonStyle = CLAYMORE,
) -> bytes:
    """Build ``eth_submitLogin [login, password]`` with ``worker`` outside
    ``params``."""
    return _request(
        request_id, "eth_submitLogin", [login, password], worker=worker, style=style
    )


def eth_login(
    login: str,
    password: str = "x",
    *,
    request_id: int = 1,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build ``eth_login [login, password]`` with no ``worker`` member."""
    return _request(request_id, "eth_login", [login, password], style=style)


def get_work(
    request_id: int, *, worker: str | None = "", style: JsonStyle = CLAYMORE
) -> bytes:
    """Build ``eth_getWork []``, with the empty ``worker`` Claymore sends."""
    return _request(request_id, "eth_getWork", [], worker=worker, style=style)


def work_package(
    request_id: int,
    header: str,
    seed: str,
    target: str,
    height: str | None = None,
    *,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build a work package ``{"id", "jsonrpc", "result":[header, seed, target
    (, height)]}``, the reply to eth_getWork or, with ``PUSH_ID``, a push.

    All values are ``0x``-prefixed hex strings.
    """
    result = (
        [header, seed, target] if height is None else [header, seed, target, height]
    )
    return response(request_id, result, include_error=False, jsonrpc=True, style=style)


def submit_work(
    request_id: int,
    nonce: str,
    header: str,
    mix_digest: str,
    *,
    worker: str | None = None,
    style: JsonStyle = CLAYMORE,
) -> bytes:
    """Build ``eth_submitWork [nonce, header, mix]`` (``0x``-prefixed hex)."""
    params = [nonce, header, mix_digest]
    return _request(request_id, "eth_submitWork", params, worker=worker, style=style)


def submit_hashrate(
    request_id: int,
    hashrate: str,
    client_id: str,
    *,
    worker: str | None = None,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build ``eth_submitHashrate [rate, id]``, compact as Claymore sends it."""
    params = [hashrate, client_id]
    return _request(
        request_id, "eth_submitHashrate", params, worker=worker, style=style
    )


def boolean_result(
    request_id: int, value: bool = True, *, style: JsonStyle = COMPACT
) -> bytes:
    """Build ``{"id", "jsonrpc", "result": value}``."""
    return response(request_id, value, include_error=False, jsonrpc=True, style=style)


def _request(
    request_id: int,
    method: str,
    params: Any,
    *,
    worker: str | None = None,
    style: JsonStyle,
) -> bytes:
    message: dict[str, Any] = {
        "id": request_id,
        "jsonrpc": "2.0",
        "method": method,
        "params": params,
    }
    if worker is not None:
        message["worker"] = worker
    return encode_line(message, style)
