"""A behavioural score for encrypted or unknown flows.

When a miner speaks TLS to a pool nobody listed, no message can be read. The
flow's shape still differs from ordinary traffic: a long-lived connection of
small request and response packets in both directions (jobs down, shares up),
almost every packet a pushed write, and little throughput. The score is weak
evidence: it never makes more than a low-confidence finding on its own.

NOTE: the cadence of shares (how regular the client's writes are) is not part
of the score yet; it needs per-packet times that the flow table does not keep.
"""

from __future__ import annotations

from dataclasses import dataclass

# A mining session lasts as long as the miner runs; a flow shorter than this
# is too short to judge by its shape.
MIN_DURATION_SECONDS = 120.0

# Stratum messages are a few hundred bytes: jobs of 200-600 bytes down,
# shares of 150-300 bytes up. Bulk transfers fill segments of ~1400 bytes.
MAX_MEAN_PAYLOAD_BYTES = 700.0

# A CPU miner sends a share every few seconds to minutes and gets a job every
# 30-120 s: far under a kilobyte per second each way.
MAX_BYTES_PER_SECOND = 2048.0

# Each Stratum message is written with its own push; bulk flows push rarely.
MIN_PUSH_SHARE = 0.6

# Both directions carry messages: neither side sends over this many times
# the packets of the other (downloads and uploads are lopsided).
MAX_PACKET_RATIO = 4.0

# Packets needed per direction before the cadence is meaningful.
MIN_PACKETS_PER_DIRECTION = 10

# A score at or above this makes a low-confidence finding.
SCORE_THRESHOLD = 0.8


@dataclass(frozen=True, slots=True)
class FlowFeatures:
    """Per-flow counters the score reads; payload packets only."""

    duration: float
    packets_to_server: int
    packets_to_client: int
    bytes_to_server: int
    bytes_to_client: int
    pushes_to_server: int | None = None
    pushes_to_client: int | None = None


@dataclass(frozen=True, slots=True)
class BehaviourScore:
    """The score, in [0, 1], and the feature values behind it."""

    score: float
    features: dict[str, float]
    reasons: tuple[str, ...]

    @property
    def suspicious(self) -> bool:
        return self.score >= SCORE_THRESHOLD


def score_flow(features: FlowFeatures) -> BehaviourScore | None:
    """Score a flow's shape, or return None when it is too short to judge."""
    up, down = features.packets_to_server, features.packets_to_client
    if features.duration < MIN_DURATION_SECONDS or min(up, down) < (
        MIN_PACKETS_PER_DIRECTION
    ):
        return None
    total_bytes = features.bytes_to_server + features.bytes_to_client
    mean_payload = total_bytes / (up + down)
    throughput = total_bytes / features.duration
    packet_ratio = max(up, down) / min(up, down)
    checks = {
        "small messages": mean_payload <= MAX_MEAN_PAYLOAD_BYTES,
        "low throughput": throughput <= MAX_BYTES_PER_SECOND,
        "both directions talk": packet_ratio <= MAX_PACKET_RATIO,
        "long-lived": features.duration >= 2 * MIN_DURATION_SECONDS,
    }
    values = {
        "duration_s": round(features.duration, 3),
        "mean_payload_bytes": round(mean_payload, 1),
        "bytes_per_second": round(throughput, 1),
        "packet_ratio": round(packet_ratio, 2),
    }
    # Push counts are optional: a flow table that does not count PSH flags
    # leaves them out, and the score is taken over the other checks.
    if features.pushes_to_server is not None and features.pushes_to_client is not None:
        push_share = (features.pushes_to_server + features.pushes_to_client) / (
            up + down
        )
        checks["pushed writes"] = push_share >= MIN_PUSH_SHARE
        values["push_share"] = round(push_share, 3)
    reasons = tuple(name for name, passed in checks.items() if passed)
    return BehaviourScore(
        score=len(reasons) / len(checks), features=values, reasons=reasons
    )
