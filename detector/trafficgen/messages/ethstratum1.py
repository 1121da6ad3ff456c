"""EthereumStratum/1.0.0, the NiceHash dialect (ethminer's ``stratum2+tcp``).

Shapes follow NiceHash's ``EthereumStratum_NiceHash_v1.0.0.txt`` and ethminer's
``EthStratumClient.cpp``. ethminer serialises with JsonCpp, which sorts keys.
"""

from __future__ import annotations

from detector.trafficgen.messages.jsonrpc import (
    COMPACT,
    SORTED,
    JsonStyle,
    notification,
    request,
    response,
)

PROTOCOL_NAME = "EthereumStratum/1.0.0"


def subscribe(request_id: int, agent: str, *, style: JsonStyle = SORTED) -> bytes:
    """Build ``mining.subscribe [agent, "EthereumStratum/1.0.0"]``."""
    return request(request_id, "mining.subscribe", [agent, PROTOCOL_NAME], style=style)


def subscribe_result(
    request_id: int,
    subscription_id: str,
    extranonce: str,
    *,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build ``[["mining.notify", id, "EthereumStratum/1.0.0"], extranonce]``
    with an extranonce of at most 3 bytes in hex."""
    result = [["mining.notify", subscription_id, PROTOCOL_NAME], extranonce]
    return response(request_id, result, style=style)


def extranonce_subscribe(request_id: int, *, style: JsonStyle = SORTED) -> bytes:
    """Build ``mining.extranonce.subscribe []``."""
    return request(request_id, "mining.extranonce.subscribe", [], style=style)


def authorize(
    request_id: int, user: str, password: str = "x", *, style: JsonStyle = SORTED
) -> bytes:
    """Build ``mining.authorize [user, password]``."""
    return request(request_id, "mining.authorize", [user, password], style=style)


def boolean_result(
    request_id: int, value: bool = True, *, style: JsonStyle = COMPACT
) -> bytes:
    """Build ``{"id", "result": value, "error": null}``."""
    return response(request_id, value, style=style)


def set_difficulty(difficulty: float, *, style: JsonStyle = COMPACT) -> bytes:
    """Build ``mining.set_difficulty [difficulty]``."""
    return notification("mining.set_difficulty", [difficulty], style=style)


def notify(
    job_id: str,
    seed_hash: str,
    header_hash: str,
    clean_jobs: bool,
    *,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build ``mining.notify [job_id, seedhash, headerhash, clean]`` with the
    hashes as 64 hex digits without ``0x``."""
    params = [job_id, seed_hash, header_hash, clean_jobs]
    return notification("mining.notify", params, style=style)


def submit(
    request_id: int,
    user: str,
    job_id: str,
    miner_nonce: str,
    *,
    style: JsonStyle = SORTED,
) -> bytes:
    """Build ``mining.submit [user, job_id, miner_nonce]``. The miner nonce is
    the 8-byte nonce without the pool's extranonce prefix."""
    return request(
        request_id, "mining.submit", [user, job_id, miner_nonce], style=style
    )
