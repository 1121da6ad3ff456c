"""KawPow (Ravencoin) stratum as GMiner speaks it.

Shapes follow NiceHash's ``KawPow_NiceHash_v1.0.txt``: the subscribe carries
``[agent, null, host, port]`` and its result is ``[null, nonce_prefix]``. The
pool sets a 256-bit target and sends jobs with seven parameters. A share carries
the 8-byte nonce, the header hash and the mix hash, each ``0x``-prefixed.
"""

from __future__ import annotations

from detector.trafficgen.messages.jsonrpc import (
    COMPACT,
    JsonStyle,
    notification,
    request,
    response,
)


def subscribe(
    request_id: int, agent: str, host: str, port: int, *, style: JsonStyle = COMPACT
) -> bytes:
    """Build ``mining.subscribe [agent, null, host, port]`` (port as a string)."""
    return request(
        request_id, "mining.subscribe", [agent, None, host, str(port)], style=style
    )


def subscribe_result(
    request_id: int, nonce_prefix: str, *, style: JsonStyle = COMPACT
) -> bytes:
    """Build the subscribe result ``[null, nonce_prefix]``."""
    return response(request_id, [None, nonce_prefix], style=style)


def authorize(
    request_id: int, user: str, password: str = "x", *, style: JsonStyle = COMPACT
) -> bytes:
    """Build ``mining.authorize [user, password]``."""
    return request(request_id, "mining.authorize", [user, password], style=style)


def boolean_result(
    request_id: int, value: bool = True, *, style: JsonStyle = COMPACT
) -> bytes:
    """Build ``{"id", "result": value, "error": null}``."""
    return response(request_id, value, style=style)


def set_target(target: str, *, style: JsonStyle = COMPACT) -> bytes:
    """Build ``mining.set_target [target]`` with 64 hex digits."""
    return notification("mining.set_target", [target], style=style)


def notify(
    job_id: str,
    header_hash: str,
    seed_hash: str,
    target: str,
    clean_jobs: bool,
    height: int,
    bits: str,
    *,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build ``mining.notify [job, header, seed, target, clean, height, bits]``."""
    params = [job_id, header_hash, seed_hash, target, clean_jobs, height, bits]
    return notification("mining.notify", params, style=style)


def submit(
    request_id: int,
    user: str,
    job_id: str,
    nonce: str,
    header_hash: str,
    mix_hash: str,
    *,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build ``mining.submit [user, job, 0xnonce, 0xheader, 0xmix]``."""
    params = [user, job_id, nonce, header_hash, mix_hash]
    return request(request_id, "mining.submit", params, style=style)
