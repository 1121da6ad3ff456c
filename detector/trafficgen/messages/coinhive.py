"""Browser-miner messages of the coin-hive protocol, as JSON text for
WebSocket frames.

Shapes follow coin-hive-stratum (src/types.ts, src/Miner.ts): the browser
sends ``auth`` and ``submit``, the proxy sends ``authed``, ``job`` and
``hash_accepted``. Every message is ``{"type": ..., "params": {...}}``
written by ``JSON.stringify``, so without spaces.
"""

from __future__ import annotations

import json
from typing import Any

# The auth types of coin-hive's browser library: an anonymous miner, one
# credited to a user name, or one working towards a link token.
AUTH_TYPES = frozenset({"anonymous", "user", "token"})


def auth(site_key: str, auth_type: str = "anonymous", user: str | None = None) -> str:
    """Build the browser's ``auth``. Raises ValueError for an unknown type."""
    if auth_type not in AUTH_TYPES:
        raise ValueError(f"unknown coin-hive auth type {auth_type!r}")
    return _message(
        "auth", {"site_key": site_key, "type": auth_type, "user": user, "goal": 0}
    )


def authed(token: str, hashes: int) -> str:
    """Build the proxy's ``authed`` with the hashes credited so far."""
    return _message("authed", {"token": token, "hashes": hashes})


def job(job_id: str, blob: str, target: str) -> str:
    """Build a ``job``: a hashing blob and a 4-byte target, both hex."""
    return _message("job", {"job_id": job_id, "blob": blob, "target": target})


def submit(job_id: str, nonce: str, result: str) -> str:
    """Build the browser's ``submit``: a 4-byte nonce and 32-byte hash in hex."""
    return _message("submit", {"job_id": job_id, "nonce": nonce, "result": result})


def hash_accepted(hashes: int) -> str:
    """Build the proxy's ``hash_accepted`` with the hashes credited so far."""
    return _message("hash_accepted", {"hashes": hashes})


def _message(kind: str, params: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "params": params}, separators=(",", ":"))
