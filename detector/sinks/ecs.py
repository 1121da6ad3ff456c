"""Detections as Elastic Common Schema documents, plus a ``mining`` object.

Field names follow ECS 8 (``@timestamp``, ``event.*``, ``source.*``,
``destination.*``, ``network.*``, ``rule.*``, ``user_agent.original``,
``log.file.path``). In egress traffic the client is the host or container that
mines, so ``source`` is the client side and ``destination`` the pool.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from detector.model import Attribution, Confidence, Detection, FlowKey

# event.severity and event.risk_score by confidence, on the 0-100 scale of
# Elastic detection rules (low 21, medium 47, high 73).
RISK_SCORES = {Confidence.LOW: 21, Confidence.MEDIUM: 47, Confidence.HIGH: 73}

IANA_PROTOCOLS = {"tcp": 6, "udp": 17}

# Characters of a wallet kept at each end when wallets are redacted: enough
# to tell two wallets apart in a report, too few to pay or look one up.
REDACT_KEEP = 4


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def isoformat(timestamp: float) -> str:
    """Format seconds since the epoch as an RFC 3339 UTC time.

    A damaged or hostile capture can carry any timestamp; one outside the
    years 1 to 9999 is written as the nearest end of that range.
    """
    try:
        moment = EPOCH + timedelta(seconds=timestamp)
    except (OverflowError, ValueError):
        moment = (
            datetime.max.replace(tzinfo=UTC)
            if timestamp > 0
            else (datetime.min.replace(tzinfo=UTC))
        )
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def community_id(flow: FlowKey, seed: int = 0) -> str:
    """Compute the Community ID v1 of a flow, as Zeek and Suricata write it."""
    proto = IANA_PROTOCOLS.get(flow.transport, 0)
    client = (ipaddress.ip_address(flow.client_ip).packed, flow.client_port)
    server = (ipaddress.ip_address(flow.server_ip).packed, flow.server_port)
    first, second = (client, server) if client <= server else (server, client)
    data = (
        struct.pack("!H", seed)
        + first[0]
        + second[0]
        + struct.pack("!BxHH", proto, first[1], second[1])
    )
    digest = hashlib.sha1(data).digest()  # noqa: S324 - fixed by the specification
    return "1:" + base64.b64encode(digest).decode("ascii")


def redact(wallet: str) -> str:
    if len(wallet) <= 2 * REDACT_KEEP:
        return "*" * len(wallet)
    return wallet[:REDACT_KEEP] + "..." + wallet[-REDACT_KEEP:]


def to_ecs(detection: Detection, redact_wallets: bool = False) -> dict[str, Any]:
    """Convert a detection into an ECS document."""
    flow = detection.flow
    mining = detection.mining
    counters = detection.counters
    wallet = mining.wallet
    login = mining.login
    if redact_wallets and wallet:
        masked = redact(wallet)
        if login:
            login = login.replace(wallet, masked)
        wallet = masked
    evidence = [
        {
            "kind": item.kind,
            "confidence": item.confidence.label,
            "description": item.description,
            "timestamp": isoformat(item.timestamp),
            "direction": item.direction.value if item.direction else None,
            **({"detail": item.detail} if item.detail else {}),
        }
        for item in detection.evidence
    ]
    if redact_wallets and mining.wallet:
        # A pool's error message may quote the login, wallet included.
        evidence = _replace_text(evidence, mining.wallet, redact(mining.wallet))
    risk = RISK_SCORES[detection.confidence]
    is_http = mining.dialect in ("getwork", "getblocktemplate")
    document: dict[str, Any] = {
        "@timestamp": isoformat(detection.first_seen),
        "event": {
            "kind": "alert",
            "category": ["network", "intrusion_detection"],
            "type": ["connection", "info"],
            "module": "detector",
            "dataset": "detector.mining",
            "start": isoformat(detection.first_seen),
            "end": isoformat(detection.last_seen),
            "duration": int(round((detection.last_seen - detection.first_seen) * 1e9)),
            "severity": risk,
            "risk_score": risk,
        },
        "rule": {
            "id": f"mining.{mining.dialect}",
            "name": f"Cryptocurrency mining over {mining.dialect}",
            "category": "cryptomining",
        },
        "source": {
            "ip": flow.client_ip,
            "port": flow.client_port,
            "packets": counters.packets_to_server,
            "bytes": counters.bytes_to_server,
        },
        "destination": {
            "ip": flow.server_ip,
            "port": flow.server_port,
            "packets": counters.packets_to_client,
            "bytes": counters.bytes_to_client,
        },
        "network": {
            "transport": flow.transport,
            "type": "ipv6" if ":" in flow.client_ip else "ipv4",
            "protocol": "http" if is_http else "stratum",
            "community_id": community_id(flow),
            "packets": counters.packets_to_server + counters.packets_to_client,
            "bytes": counters.bytes_to_server + counters.bytes_to_client,
        },
        "log": {"file": {"path": detection.source}},
        "mining": {
            "dialect": mining.dialect,
            "confidence": detection.confidence.label,
            "agent": mining.agent,
            "miner_family": mining.miner_family,
            "login": login,
            "worker": mining.worker,
            "wallet": wallet,
            "wallet_coin": mining.wallet_coin,
            "algorithm": mining.algorithm,
            "pool": {"host": mining.pool_host},
            "methods": {
                "to_server": mining.methods_to_server,
                "to_client": mining.methods_to_client,
            },
            "jobs": mining.jobs,
            "shares": {
                "submitted": mining.shares_submitted,
                "accepted": mining.shares_accepted,
                "rejected": mining.shares_rejected,
            },
            "stream_gaps": detection.stream_gaps,
            "evidence": evidence,
        },
    }
    mining_object = document["mining"]
    mining_object["session"] = {"id": detection.session_id}
    if detection.attribution is not None:
        _add_attribution(document, detection.attribution)
    mining_object["pool"]["names"] = list(mining.dns_names)
    if mining.proxy_target:
        mining_object["proxy_target"] = mining.proxy_target
    if mining.agent:
        document["user_agent"] = {"original": mining.agent}
    tls_client = {
        key: value
        for key, value in (
            ("server_name", mining.tls_server_name),
            ("ja3", mining.ja3),
            ("ja4", mining.ja4),
        )
        if value
    }
    if tls_client:
        document["tls"] = {"client": tls_client}
    return document


def _add_attribution(document: dict[str, Any], attribution: Attribution) -> None:
    """Add ECS ``container.*``, ``orchestrator.*`` and ``host.name`` fields,
    and the attribution status (with the reason when nothing matched)."""
    container = attribution.container
    status: dict[str, Any] = {
        "status": "attributed" if container is not None else "unattributed",
        "address": attribution.address,
        "nat": attribution.nat,
    }
    if attribution.reason:
        status["reason"] = attribution.reason
    document["mining"]["attribution"] = status
    if container is None:
        return
    fields: dict[str, Any] = {
        "id": container.id,
        "name": container.name,
        "runtime": container.runtime,
    }
    if container.image:
        fields["image"] = {"name": container.image}
    if container.labels:
        fields["labels"] = dict(container.labels)
    if container.members:
        fields["members"] = list(container.members)
    document["container"] = fields
    if container.pod or container.namespace:
        orchestrator: dict[str, Any] = {"type": "kubernetes"}
        if container.namespace:
            orchestrator["namespace"] = container.namespace
        if container.pod:
            resource: dict[str, Any] = {"type": "pod", "name": container.pod}
            if container.pod_uid:
                resource["id"] = container.pod_uid
            orchestrator["resource"] = resource
        document["orchestrator"] = orchestrator
    host = container.node or container.host
    if host:
        document["host"] = {"name": host}


def _replace_text(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {key: _replace_text(item, old, new) for key, item in value.items()}
    if isinstance(value, list):
        return [_replace_text(item, old, new) for item in value]
    return value


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested objects into dotted keys, for CSV columns."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
