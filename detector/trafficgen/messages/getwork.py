"""getwork and getblocktemplate over HTTP, as cpuminer and cgminer send them.

cpuminer 2.5.1 (``cpu-miner.c``, ``util.c``) posts ``getwork`` bodies ending in
``\\r\\n`` with ``User-Agent: cpuminer/2.5.1`` and ``X-Mining-Extensions:
midstate``. cgminer (``util.c``) sends ``User-Agent`` set to its autoconf
package string (``cgminer 4.12.1``), ``X-Mining-Extensions: longpoll midstate
rollntime submitold`` and ``X-Mining-Hashrate``. Pools announce long polling
with ``X-Long-Polling``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from detector.trafficgen.messages import http
from detector.trafficgen.messages.jsonrpc import SPACED, JsonStyle, encode_line

CPUMINER_AGENT = "cpuminer/2.5.1"
CGMINER_HTTP_AGENT = "cgminer 4.12.1"

# cpuminer builds these bodies with sprintf and ends them with CRLF.
CPUMINER_BODY = JsonStyle(
    item_separator=", ",
    key_separator=": ",
    key_order=("method", "params", "id"),
    line_ending=b"\r\n",
)

# Standard getwork hash1 buffer: SHA-256 padding for a 32-byte message.
GETWORK_HASH1 = (
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000008000000000000000000000000000000000000000000000000000010000"
)

GBT_CAPABILITIES = ("coinbasetxn", "workid", "coinbase/append")


def basic_authorization(user: str, password: str) -> str:
    """Return the value of an ``Authorization: Basic`` header."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def cpuminer_getwork(
    host: str,
    authorization: str,
    *,
    request_id: int = 0,
    solved_data: str | None = None,
    agent: str = CPUMINER_AGENT,
) -> bytes:
    """Build cpuminer's getwork POST: a work request, or with ``solved_data``
    (256 hex digits) a share submission."""
    params = [] if solved_data is None else [solved_data]
    body = encode_line(
        {"method": "getwork", "params": params, "id": request_id}, CPUMINER_BODY
    )
    headers = [
        ("Host", host),
        ("Authorization", authorization),
        ("Accept-Encoding", "deflate, gzip"),
        ("Content-Type", "application/json"),
        http.content_length(body),
        ("User-Agent", agent),
        ("X-Mining-Extensions", "midstate"),
    ]
    return http.request("POST", "/", headers, body)


def getwork_result(
    request_id: int,
    data: str,
    midstate: str,
    target: str,
    *,
    long_polling: str | None = "/LP",
) -> bytes:
    """Build the pool's getwork response with work and long-polling header."""
    result = {
        "midstate": midstate,
        "data": data,
        "hash1": GETWORK_HASH1,
        "target": target,
    }
    return json_response(request_id, result, long_polling=long_polling)


def json_response(
    request_id: int | str | None,
    result: Any,
    *,
    error: Any = None,
    long_polling: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> bytes:
    """Build an HTTP 200 response carrying ``{"result", "error", "id"}``."""
    body = encode_line({"result": result, "error": error, "id": request_id})
    headers = [("Content-Type", "application/json")]
    if long_polling is not None:
        headers.append(("X-Long-Polling", long_polling))
    if extra_headers:
        headers.extend(extra_headers.items())
    headers.append(http.content_length(body))
    return http.response(200, "OK", headers, body)


def cgminer_post(
    host: str,
    authorization: str,
    method: str,
    params: Any,
    *,
    request_id: int,
    hashrate: int = 0,
    agent: str = CGMINER_HTTP_AGENT,
    style: JsonStyle = SPACED,
) -> bytes:
    """Build cgminer's JSON-RPC POST with its mining headers."""
    body = encode_line({"id": request_id, "method": method, "params": params}, style)
    headers = [
        ("Host", host),
        ("Authorization", authorization),
        ("Accept", "*/*"),
        ("Accept-Encoding", "deflate, gzip"),
        ("Content-type", "application/json"),
        ("X-Mining-Extensions", "longpoll midstate rollntime submitold"),
    ]
    if hashrate:
        headers.append(("X-Mining-Hashrate", str(hashrate)))
    headers.append(http.content_length(body))
    headers.append(("User-Agent", agent))
    return http.request("POST", "/", headers, body)


def getblocktemplate_params() -> list[dict[str, Any]]:
    """Return cgminer's getblocktemplate parameters (BIP 22/23, segwit rule)."""
    return [{"capabilities": list(GBT_CAPABILITIES), "rules": ["segwit"]}]
