"""Bitcoin Stratum v1 and its Zcash variant.

Client shapes follow cgminer (``util.c``, ``cgminer.c``) and cpuminer
(``util.c``), which write JSON by hand with a space after every ``:`` and
``,``. cgminer's ``mining.submit`` and ``mining.get_transactions`` start with
``"params"``. Pools reply in compact JSON. The Zcash variant follows the Zcash
stratum draft (zcash/zips ``drafts/str4d-stratum``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from detector.trafficgen.messages.jsonrpc import (
    COMPACT,
    SPACED,
    JsonStyle,
    notification,
    request,
    response,
)

# cgminer writes these two requests with "params" first.
CGMINER_PARAMS_FIRST = JsonStyle(
    item_separator=", ", key_separator=": ", key_order=("params", "id", "method")
)

# BIP 310: the client asks to roll these header version bits.
VERSION_ROLLING_MASK = "ffffffff"

LOW_DIFFICULTY_ERROR = [23, "Low difficulty share", None]


@dataclass(frozen=True, slots=True)
class Notify:
    """The nine parameters of a Bitcoin ``mining.notify`` job."""

    job_id: str
    previous_hash: str
    coinbase1: str
    coinbase2: str
    merkle_branches: tuple[str, ...]
    version: str
    nbits: str
    ntime: str
    clean_jobs: bool

    def to_params(self) -> list[Any]:
        return [
            self.job_id,
            self.previous_hash,
            self.coinbase1,
            self.coinbase2,
            list(self.merkle_branches),
            self.version,
            self.nbits,
            self.ntime,
            self.clean_jobs,
        ]


def configure(request_id: int, *, style: JsonStyle = SPACED) -> bytes:
    """Build a BIP 310 ``mining.configure`` asking for version rolling."""
    params = [["version-rolling"], {"version-rolling.mask": VERSION_ROLLING_MASK}]
    return request(request_id, "mining.configure", params, style=style)


def configure_result(
    request_id: int, mask: str, *, style: JsonStyle = COMPACT
) -> bytes:
    """Build the pool's grant of version rolling with the bits it allows."""
    result = {"version-rolling": True, "version-rolling.mask": mask}
    return response(request_id, result, style=style)


def subscribe(
    request_id: int,
    agent: str,
    session_id: str | None = None,
    *,
    style: JsonStyle = SPACED,
) -> bytes:
    """Build ``mining.subscribe`` with the agent and an optional session to
    resume."""
    params = [agent] if session_id is None else [agent, session_id]
    return request(request_id, "mining.subscribe", params, style=style)


def subscribe_result(
    request_id: int,
    subscription_id: str,
    extranonce1: str,
    extranonce2_size: int,
    *,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build the pool's subscribe result
    ``[[["mining.set_difficulty",id],["mining.notify",id]],en1,en2_size]``."""
    result = [
        [
            ["mining.set_difficulty", subscription_id],
            ["mining.notify", subscription_id],
        ],
        extranonce1,
        extranonce2_size,
    ]
    return response(request_id, result, style=style)


def authorize(
    request_id: int, user: str, password: str = "x", *, style: JsonStyle = SPACED
) -> bytes:
    """Build ``mining.authorize`` for ``user`` (usually ``wallet.worker``)."""
    return request(request_id, "mining.authorize", [user, password], style=style)


def boolean_result(
    request_id: int | str,
    value: bool,
    *,
    error: Any = None,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build the ``true``/``false`` reply to authorize and submit."""
    return response(request_id, value, error=error, style=style)


def set_difficulty(difficulty: float, *, style: JsonStyle = COMPACT) -> bytes:
    """Build the pool's ``mining.set_difficulty`` notification."""
    return notification("mining.set_difficulty", [difficulty], style=style)


def notify(job: Notify, *, style: JsonStyle = COMPACT) -> bytes:
    """Build the pool's ``mining.notify`` notification with nine parameters."""
    return notification("mining.notify", job.to_params(), style=style)


def submit(
    request_id: int,
    worker: str,
    job_id: str,
    extranonce2: str,
    ntime: str,
    nonce: str,
    *,
    style: JsonStyle = CGMINER_PARAMS_FIRST,
) -> bytes:
    """Build ``mining.submit [worker, job_id, extranonce2, ntime, nonce]``."""
    params = [worker, job_id, extranonce2, ntime, nonce]
    return request(request_id, "mining.submit", params, style=style)


def get_transactions(
    request_id: str, job_id: str, *, style: JsonStyle = CGMINER_PARAMS_FIRST
) -> bytes:
    """Build ``mining.get_transactions [job_id]`` with cgminer's string id."""
    return request(request_id, "mining.get_transactions", [job_id], style=style)


def transactions_result(
    request_id: str, transactions: Sequence[str], *, style: JsonStyle = COMPACT
) -> bytes:
    """Build the reply to get_transactions: the raw transactions in hex."""
    return response(request_id, list(transactions), style=style)


def reconnect(
    host: str, port: str, wait_seconds: int = 0, *, style: JsonStyle = COMPACT
) -> bytes:
    """Build ``client.reconnect [host, port, wait]``, sent by the pool."""
    return notification("client.reconnect", [host, port, wait_seconds], style=style)


# -- Zcash -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZcashNotify:
    """The eight parameters of a Zcash ``mining.notify`` job."""

    job_id: str
    version: str
    previous_hash: str
    merkle_root: str
    reserved: str
    time: str
    bits: str
    clean_jobs: bool

    def to_params(self) -> list[Any]:
        return [
            self.job_id,
            self.version,
            self.previous_hash,
            self.merkle_root,
            self.reserved,
            self.time,
            self.bits,
            self.clean_jobs,
        ]


def zcash_subscribe(
    request_id: int,
    host: str,
    port: int,
    agent: str,
    session_id: str | None = None,
    *,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build the Zcash ``mining.subscribe [host, port, agent, session]``."""
    params = [host, port, agent, session_id]
    return request(request_id, "mining.subscribe", params, style=style)


def zcash_subscribe_result(
    request_id: int, session_id: str, nonce1: str, *, style: JsonStyle = COMPACT
) -> bytes:
    """Build the Zcash subscribe result ``[session_id, nonce1]``."""
    return response(request_id, [session_id, nonce1], style=style)


def set_target(target: str, *, style: JsonStyle = COMPACT) -> bytes:
    """Build ``mining.set_target [target]`` with a 256-bit target in hex."""
    return notification("mining.set_target", [target], style=style)


def zcash_notify(job: ZcashNotify, *, style: JsonStyle = COMPACT) -> bytes:
    """Build the Zcash ``mining.notify`` with eight parameters."""
    return notification("mining.notify", job.to_params(), style=style)


def zcash_submit(
    request_id: int,
    worker: str,
    job_id: str,
    time: str,
    nonce2: str,
    solution: str,
    *,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build ``mining.submit [worker, job_id, time, nonce2, solution]``."""
    params = [worker, job_id, time, nonce2, solution]
    return request(request_id, "mining.submit", params, style=style)
