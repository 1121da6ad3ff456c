"""Monero-style stratum as xmrig 6.x and its pools speak it.

Shapes follow xmrig's ``src/base/net/stratum/Client.cpp`` and xmrig-proxy's
``doc/STRATUM.md``: a ``login`` request whose result carries the first job,
``job`` notifications, ``submit`` requests that get ``{"status":"OK"}`` or an
error object back, and ``keepalived``, which gets ``{"status":"KEEPALIVED"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from detector.trafficgen.messages.jsonrpc import (
    COMPACT,
    JsonStyle,
    encode_line,
    error_response,
)

# The algorithm list xmrig 6.x sends for a RandomX pool: the configured
# algorithm first, then every other algorithm the build supports (a shortened
# but plausible set).
XMRIG_ALGORITHMS = (
    "rx/0",
    "cn/2",
    "cn/r",
    "cn/fast",
    "cn/half",
    "cn/xao",
    "cn/rto",
    "cn/rwz",
    "cn/zls",
    "cn/double",
    "cn/ccx",
    "cn-lite/1",
    "cn-heavy/xhv",
    "cn-pico",
    "cn-pico/tlo",
    "cn/upx2",
    "rx/wow",
    "rx/arq",
    "rx/graft",
    "rx/sfx",
    "rx/yada",
    "argon2/chukwa",
    "argon2/chukwav2",
    "argon2/ninja",
    "ghostrider",
)

# The extensions xmrig-proxy lists in its login result. xmrig sends keepalived
# only when "keepalive" is among them.
POOL_EXTENSIONS = ("algo", "nicehash", "connect", "tls", "keepalive")

LOW_DIFFICULTY_ERROR = {"code": -1, "message": "Low difficulty share"}


@dataclass(frozen=True, slots=True)
class Job:
    """A Monero mining job as pools send it in a login result or a ``job``."""

    blob: str
    job_id: str
    target: str
    algorithm: str
    height: int
    seed_hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "blob": self.blob,
            "job_id": self.job_id,
            "target": self.target,
            "algo": self.algorithm,
            "height": self.height,
            "seed_hash": self.seed_hash,
        }


def xmrig_login(
    wallet: str,
    agent: str,
    *,
    request_id: int = 1,
    password: str = "x",
    rigid: str | None = None,
    algorithms: Sequence[str] = XMRIG_ALGORITHMS,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build xmrig's login line. ``wallet`` may carry a ``.worker`` suffix."""
    params: dict[str, Any] = {"login": wallet, "pass": password, "agent": agent}
    if rigid is not None:
        params["rigid"] = rigid
    params["algo"] = list(algorithms)
    return encode_line(
        {"id": request_id, "jsonrpc": "2.0", "method": "login", "params": params},
        style,
    )


def login(
    wallet: str,
    *,
    request_id: int | str = 1,
    password: str = "x",
    jsonrpc: bool = True,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build a bare login line with only ``login`` and ``pass``, as simple
    miners and scripts send it."""
    message: dict[str, Any] = {"id": request_id}
    if jsonrpc:
        message["jsonrpc"] = "2.0"
    message["method"] = "login"
    message["params"] = {"login": wallet, "pass": password}
    return encode_line(message, style)


def login_result(
    session_id: str,
    job: Job,
    *,
    request_id: int | str = 1,
    extensions: Sequence[str] | None = POOL_EXTENSIONS,
    jsonrpc: bool = True,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build the pool's login result. ``extensions=None`` leaves the list out."""
    result: dict[str, Any] = {"id": session_id, "job": job.to_json()}
    if extensions is not None:
        result["extensions"] = list(extensions)
    result["status"] = "OK"
    return _result(request_id, result, jsonrpc=jsonrpc, style=style)


def job_notification(
    job: Job, *, jsonrpc: bool = True, style: JsonStyle = COMPACT
) -> bytes:
    """Build a ``job`` notification, which has no ``id``."""
    message: dict[str, Any] = {}
    if jsonrpc:
        message["jsonrpc"] = "2.0"
    message["method"] = "job"
    message["params"] = job.to_json()
    return encode_line(message, style)


def submit(
    session_id: str,
    job_id: str,
    nonce: str,
    result_hash: str,
    *,
    request_id: int | str,
    algorithm: str | None = "rx/0",
    jsonrpc: bool = True,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build a share submit with an 8-digit hex ``nonce`` and a 64-digit hex
    ``result_hash``."""
    params: dict[str, Any] = {
        "id": session_id,
        "job_id": job_id,
        "nonce": nonce,
        "result": result_hash,
    }
    if algorithm is not None:
        params["algo"] = algorithm
    message: dict[str, Any] = {"id": request_id}
    if jsonrpc:
        message["jsonrpc"] = "2.0"
    message["method"] = "submit"
    message["params"] = params
    return encode_line(message, style)


def status_result(
    request_id: int | str,
    status: str = "OK",
    *,
    jsonrpc: bool = True,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build ``{"result":{"status":...}}``, the reply to submit and keepalived."""
    return _result(request_id, {"status": status}, jsonrpc=jsonrpc, style=style)


def low_difficulty_error(
    request_id: int | str, *, jsonrpc: bool = True, style: JsonStyle = COMPACT
) -> bytes:
    """Build the pool's rejection of a share below the job's target."""
    return error_response(
        request_id, LOW_DIFFICULTY_ERROR, jsonrpc=jsonrpc, style=style
    )


def keepalived(
    session_id: str,
    *,
    request_id: int | str,
    jsonrpc: bool = True,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build xmrig's ``keepalived`` request for the session."""
    message: dict[str, Any] = {"id": request_id}
    if jsonrpc:
        message["jsonrpc"] = "2.0"
    message["method"] = "keepalived"
    message["params"] = {"id": session_id}
    return encode_line(message, style)


def _result(
    request_id: int | str, result: Any, *, jsonrpc: bool, style: JsonStyle
) -> bytes:
    message: dict[str, Any] = {"id": request_id}
    if jsonrpc:
        message["jsonrpc"] = "2.0"
    message["error"] = None
    message["result"] = result
    return encode_line(message, style)
