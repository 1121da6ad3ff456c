"""Values and helpers shared by the sample builders."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from detector.trafficgen.conversation import NS_PER_SECOND, Endpoint, TimedPacket
from detector.trafficgen.links import Ethernet, LinkLayer
from detector.trafficgen.writers import Record, encode_pcap

# Every capture starts at 2026-01-01T00:00:00Z.
BASE_TIME_NS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * NS_PER_SECOND

# Dialect names as the manifest and the detector spell them.
MONERO = "monero"
STRATUM_V1 = "stratum-v1"
STRATUM_V1_ZCASH = "stratum-v1-zcash"
ETHPROXY = "ethproxy"
ETHEREUMSTRATUM_1 = "ethereumstratum-1"
ETHEREUMSTRATUM_2 = "ethereumstratum-2"
KAWPOW = "kawpow"
GETWORK = "getwork"
GETBLOCKTEMPLATE = "getblocktemplate"
# A DNS query for a listed pool: a finding of its own, made by the pool list.
DNS = "dns"
# Encrypted flows named as a pool's by SNI, a certificate or DNS.
TLS = "tls"
# Browser miners speaking the coin-hive protocol over WebSocket.
WEBMINER = "webminer"
STRATUM_V2 = "stratum-v2"
DIALECTS = frozenset(
    {
        DNS,
        TLS,
        WEBMINER,
        STRATUM_V2,
        MONERO,
        STRATUM_V1,
        STRATUM_V1_ZCASH,
        ETHPROXY,
        ETHEREUMSTRATUM_1,
        ETHEREUMSTRATUM_2,
        KAWPOW,
        GETWORK,
        GETBLOCKTEMPLATE,
    }
)

# Confidence labels as the detector prints them.
CONFIDENCE_LABELS = ("high", "medium", "low")
MEDIUM = "medium"

XMRIG_AGENT = "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0"


@dataclass(frozen=True, slots=True)
class ExpectedFlow:
    """A mining flow the detector must report, with the fields it must read.

    A field left as None is not checked. Counts are exact: they are what the
    generated conversation contains. ``confidence`` None means high.
    """

    client: Endpoint
    server: Endpoint
    dialect: str
    agent: str | None = None
    miner_family: str | None = None
    wallet_coin: str | None = None
    worker: str | None = None
    algorithm: str | None = None
    shares_submitted: int | None = None
    shares_accepted: int | None = None
    shares_rejected: int | None = None
    jobs: int | None = None
    tls_server_name: str | None = None
    proxy_target: str | None = None
    pool_host: str | None = None
    confidence: str | None = None

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {self.dialect!r}")
        if self.confidence not in (None, *CONFIDENCE_LABELS):
            raise ValueError(f"unknown confidence {self.confidence!r}")

    def to_manifest(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "client": str(self.client),
            "server": str(self.server),
            "dialect": self.dialect,
        }
        optional = {
            "agent": self.agent,
            "miner_family": self.miner_family,
            "wallet_coin": self.wallet_coin,
            "worker": self.worker,
            "algorithm": self.algorithm,
            "shares_submitted": self.shares_submitted,
            "shares_accepted": self.shares_accepted,
            "shares_rejected": self.shares_rejected,
            "jobs": self.jobs,
            "tls_server_name": self.tls_server_name,
            "proxy_target": self.proxy_target,
            "pool_host": self.pool_host,
            "confidence": self.confidence,
        }
        entry.update(
            {key: value for key, value in optional.items() if value is not None}
        )
        return entry


@dataclass(frozen=True, slots=True)
class SampleFile:
    """One generated capture file with its manifest entry."""

    name: str
    description: str
    content: bytes
    packets: int
    expected: tuple[ExpectedFlow, ...] = ()


def seeded(name: str) -> random.Random:
    """Return a generator seeded from ``name``. A str seed is hashed with
    SHA-512, so the sequence does not depend on PYTHONHASHSEED."""
    return random.Random(f"detector.trafficgen:{name}")


def random_hex(rng: random.Random, size: int) -> str:
    """Return ``size`` random bytes as lowercase hex."""
    return rng.randbytes(size).hex()


def seconds(value: float) -> int:
    """Convert seconds after the base time to absolute nanoseconds."""
    return BASE_TIME_NS + round(value * NS_PER_SECOND)


def pcap_sample(
    name: str,
    description: str,
    packets: Sequence[TimedPacket],
    expected: Sequence[ExpectedFlow] = (),
    *,
    link: LinkLayer | None = None,
    nanosecond: bool = False,
    big_endian: bool = False,
) -> SampleFile:
    """Frame ``packets`` on ``link`` (Ethernet by default) and encode a pcap."""
    layer = link or Ethernet()
    records = [Record(packet.timestamp_ns, layer.frame(packet)) for packet in packets]
    content = encode_pcap(
        records, layer.linktype, nanosecond=nanosecond, big_endian=big_endian
    )
    return SampleFile(name, description, content, len(records), tuple(expected))
