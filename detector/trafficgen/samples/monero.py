"""Monero-style stratum samples: xmrig, unusual layouts and a mid-session capture."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from detector.trafficgen import wallets
from detector.trafficgen.conversation import (
    Endpoint,
    Step,
    tcp_conversation,
    to_client,
    to_server,
)
from detector.trafficgen.messages import monero
from detector.trafficgen.messages.jsonrpc import JsonStyle
from detector.trafficgen.samples.common import (
    BASE_TIME_NS,
    MONERO,
    XMRIG_AGENT,
    ExpectedFlow,
    SampleFile,
    pcap_sample,
    random_hex,
    seeded,
)

ALGORITHM = "rx/0"
# An estimate of Monero's chain height in early 2026.
HEIGHT = 3_580_000
# Monero's target block time, in seconds.
BLOCK_SECONDS = 120
# A hashing blob is the major and minor version (0x10 each), a varint
# timestamp, the 32-byte previous block id, the 4-byte nonce at offset 39, the
# 32-byte merkle root and a varint transaction count.
BLOB_VERSION = "1010"
# A 32-bit pool target in little-endian hex, as pools send it.
SHARE_TARGET = "b88d0600"

# Outcomes of a submitted share.
ACCEPTED = "accepted"
LOW_DIFFICULTY = "low-difficulty"

XMRIG_SERVER = Endpoint("203.0.113.10", 3333)


def hashing_blob(rng: random.Random, timestamp: int) -> str:
    """Return a 76-byte Monero hashing blob with a zero nonce, as hex."""
    return (
        BLOB_VERSION
        + _varint(timestamp).hex()
        + random_hex(rng, 32)
        + "00000000"
        + random_hex(rng, 32)
        + "01"
    )


def make_job(rng: random.Random, height: int, seed_hash: str) -> monero.Job:
    """Return a RandomX job at ``height``, timed so that the block at ``HEIGHT``
    is mined just before the base time."""
    timestamp = BASE_TIME_NS // 1_000_000_000 + (height - HEIGHT - 1) * BLOCK_SECONDS
    return monero.Job(
        blob=hashing_blob(rng, timestamp),
        job_id=random_hex(rng, 6),
        target=SHARE_TARGET,
        algorithm=ALGORITHM,
        height=height,
        seed_hash=seed_hash,
    )


@dataclass(slots=True)
class Session:
    """Steps of a Monero conversation with the counts the detector must find."""

    steps: list[Step] = field(default_factory=list)
    jobs: int = 0
    submitted: int = 0
    accepted: int = 0
    rejected: int = 0


def xmrig_session(
    rng: random.Random,
    wallet: str,
    *,
    rigid: str | None,
    shares: Sequence[Sequence[str]],
    keepalive_after: int | None = None,
) -> Session:
    """Build an xmrig session: login, then one group of shares per job.

    ``shares[i]`` lists the outcomes of the shares found on job ``i``. Job 0
    comes in the login result and later jobs are pushed. With
    ``keepalive_after=i`` xmrig sends keepalived after job ``i``'s shares.
    """
    session = Session()
    session_id = random_hex(rng, 8)
    seed_hash = random_hex(rng, 32)
    request_id = 1
    login = monero.xmrig_login(wallet, XMRIG_AGENT, request_id=request_id, rigid=rigid)
    session.steps.append(to_server(login))

    for job_index, outcomes in enumerate(shares):
        job = make_job(rng, HEIGHT + job_index, seed_hash)
        session.jobs += 1
        if job_index == 0:
            session.steps.append(to_client(monero.login_result(session_id, job)))
        else:
            session.steps.append(to_client(monero.job_notification(job), delay=17.5))
        for outcome in outcomes:
            request_id += 1
            # A share's hash is below the target, so its last (most significant,
            # in little-endian order) bytes are zero.
            line = monero.submit(
                session_id,
                job.job_id,
                random_hex(rng, 4),
                random_hex(rng, 28) + "00000000",
                request_id=request_id,
            )
            session.steps.append(to_server(line, delay=6.25))
            session.submitted += 1
            if outcome == LOW_DIFFICULTY:
                session.rejected += 1
                session.steps.append(to_client(monero.low_difficulty_error(request_id)))
            else:
                session.accepted += 1
                session.steps.append(to_client(monero.status_result(request_id)))
        if keepalive_after == job_index:
            request_id += 1
            line = monero.keepalived(session_id, request_id=request_id)
            # xmrig sends keepalived after 60 s without sending anything.
            session.steps.append(to_server(line, delay=60.0))
            session.steps.append(
                to_client(monero.status_result(request_id, "KEEPALIVED"))
            )
    return session


def xmrig_expected(
    client: Endpoint, server: Endpoint, session: Session, worker: str | None
) -> ExpectedFlow:
    """Return what the detector must read from an :func:`xmrig_session`."""
    return ExpectedFlow(
        client=client,
        server=server,
        dialect=MONERO,
        agent=XMRIG_AGENT,
        miner_family="xmrig",
        wallet_coin="monero",
        worker=worker,
        algorithm=ALGORITHM,
        shares_submitted=session.submitted,
        shares_accepted=session.accepted,
        shares_rejected=session.rejected,
        jobs=session.jobs,
    )


def xmrig_sample() -> SampleFile:
    rng = seeded("monero-xmrig")
    client = Endpoint("172.17.0.2", 41234)
    session = xmrig_session(
        rng,
        wallets.monero(rng),
        rigid="rig01",
        shares=[[ACCEPTED], [LOW_DIFFICULTY, ACCEPTED], [ACCEPTED]],
        keepalive_after=1,
    )
    packets = tcp_conversation(
        client, XMRIG_SERVER, session.steps, start_ns=BASE_TIME_NS
    )
    return pcap_sample(
        "monero-xmrig.pcap",
        "XMRig 6.21 logs in to a Monero pool on port 3333, receives three jobs,"
        " submits four shares (one rejected as low difficulty) and sends"
        " keepalived.",
        packets,
        [xmrig_expected(client, XMRIG_SERVER, session, "rig01")],
    )


# Keys in an order xmrig never uses, and a space after each colon.
REORDERED_CLIENT = JsonStyle(
    key_separator=": ",
    key_order=("method", "params", "pass", "login", "job_id", "nonce", "result", "id"),
)
REORDERED_SERVER = JsonStyle(
    key_separator=": ",
    key_order=("result", "status", "job", "error", "target", "job_id", "blob", "id"),
)


def reordered_sample() -> SampleFile:
    rng = seeded("monero-reordered-port443")
    client = Endpoint("172.17.0.3", 52810)
    server = Endpoint("198.51.100.23", 443)
    wallet = wallets.monero(rng)
    session_id = random_hex(rng, 8)
    seed_hash = random_hex(rng, 32)
    jobs = [make_job(rng, HEIGHT + index, seed_hash) for index in range(2)]

    steps = [
        to_server(
            monero.login(f"{wallet}.worker2", jsonrpc=False, style=REORDERED_CLIENT)
        ),
        to_client(
            monero.login_result(
                session_id, jobs[0], jsonrpc=False, style=REORDERED_SERVER
            )
        ),
    ]
    for request_id, job in enumerate(jobs, start=2):
        if request_id > 2:
            steps.append(
                to_client(
                    monero.job_notification(job, jsonrpc=False, style=REORDERED_SERVER),
                    delay=25.0,
                )
            )
        line = monero.submit(
            session_id,
            job.job_id,
            random_hex(rng, 4),
            random_hex(rng, 32),
            request_id=request_id,
            algorithm=None,
            jsonrpc=False,
            style=REORDERED_CLIENT,
        )
        steps.append(to_server(line, delay=4.5))
        steps.append(
            to_client(
                monero.status_result(request_id, jsonrpc=False, style=REORDERED_SERVER)
            )
        )

    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    expected = ExpectedFlow(
        client=client,
        server=server,
        dialect=MONERO,
        wallet_coin="monero",
        worker="worker2",
        algorithm=ALGORITHM,
        shares_submitted=2,
        shares_accepted=2,
        shares_rejected=0,
        jobs=2,
    )
    return pcap_sample(
        "monero-reordered-port443.pcap",
        "Monero stratum in plaintext on port 443 with keys in an unusual order,"
        " a space after each colon, no agent and no jsonrpc member.",
        packets,
        [expected],
    )


def minimal_sample() -> SampleFile:
    rng = seeded("monero-minimal-port25")
    client = Endpoint("10.0.4.7", 38020)
    server = Endpoint("192.0.2.25", 25)
    session_id = random_hex(rng, 8)
    job = make_job(rng, HEIGHT, random_hex(rng, 32))
    keepalive_id = "keepalive-1"
    steps = [
        to_server(monero.login(wallets.monero(rng))),
        to_client(monero.login_result(session_id, job, extensions=None)),
        to_server(
            monero.keepalived(session_id, request_id=keepalive_id, jsonrpc=False),
            delay=60.0,
        ),
        to_client(monero.status_result(keepalive_id, "KEEPALIVED", jsonrpc=False)),
    ]
    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    expected = ExpectedFlow(
        client=client,
        server=server,
        dialect=MONERO,
        wallet_coin="monero",
        jobs=1,
    )
    return pcap_sample(
        "monero-minimal-port25.pcap",
        "A minimal Monero login on port 25 followed by keepalived with a string id"
        " and no jsonrpc member.",
        packets,
        [expected],
    )


def midsession_submits_sample() -> SampleFile:
    rng = seeded("monero-midsession-submits")
    client = Endpoint("172.17.0.5", 44410)
    server = Endpoint("203.0.113.14", 3333)
    session_id = random_hex(rng, 8)
    job_id = random_hex(rng, 6)
    steps: list[Step] = []
    for request_id in range(7, 10):
        line = monero.submit(
            session_id,
            job_id,
            random_hex(rng, 4),
            random_hex(rng, 28) + "00000000",
            request_id=request_id,
        )
        steps.append(to_server(line, delay=8.0))
        steps.append(to_client(monero.status_result(request_id)))
    packets = tcp_conversation(
        client, server, steps, start_ns=BASE_TIME_NS, handshake=False, close_by=None
    )
    expected = ExpectedFlow(
        client=client,
        server=server,
        dialect=MONERO,
        shares_submitted=3,
        shares_accepted=3,
        shares_rejected=0,
    )
    return pcap_sample(
        "monero-midsession-submits.pcap",
        "A Monero session captured after login: only share submits and their OK"
        " results, with no handshake and no close.",
        packets,
        [expected],
    )


def build() -> list[SampleFile]:
    return [
        xmrig_sample(),
        reordered_sample(),
        minimal_sample(),
        midsession_submits_sample(),
    ]


def _varint(value: int) -> bytes:
    # CryptoNote varints are LEB128: 7 bits per byte, low bits first.
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
