"""Bitcoin Stratum v1 samples (cgminer, cpuminer, a mid-session capture) and
the Zcash variant."""

from __future__ import annotations

import random

from detector.trafficgen import wallets
from detector.trafficgen.conversation import (
    Endpoint,
    Step,
    coalesce,
    tcp_conversation,
    to_client,
    to_server,
)
from detector.trafficgen.messages import stratum_v1
from detector.trafficgen.messages.jsonrpc import SPACED, JsonStyle
from detector.trafficgen.samples.common import (
    BASE_TIME_NS,
    STRATUM_V1,
    STRATUM_V1_ZCASH,
    ExpectedFlow,
    SampleFile,
    pcap_sample,
    random_hex,
    seeded,
)

CGMINER_AGENT = "cgminer/4.12.1"
CPUMINER_AGENT = "cpuminer/2.5.1"
NHEQMINER_AGENT = "nheqminer/0.5c"
# BIP 9 version with no deployment bits set.
BLOCK_VERSION = "20000000"
NBITS = "17034219"
EXTRANONCE2_SIZE = 4
# The version bits a pool lets miners roll (BIP 320's general-purpose bits).
POOL_VERSION_MASK = "1fffe000"
# An Equihash (200,9) solution is 1344 bytes, prefixed with its compact size.
EQUIHASH_SOLUTION_PREFIX = "fd4005"
EQUIHASH_SOLUTION_SIZE = 1344

# cpuminer writes "method" first in mining.submit.
CPUMINER_SUBMIT = JsonStyle(
    item_separator=", ", key_separator=": ", key_order=("method", "params", "id")
)


def make_notify(
    rng: random.Random, ntime: int, *, clean_jobs: bool, branches: int = 2
) -> stratum_v1.Notify:
    """Return a Bitcoin job with a plausible coinbase split and merkle path."""
    return stratum_v1.Notify(
        job_id=random_hex(rng, 3),
        previous_hash=random_hex(rng, 32),
        coinbase1="01000000010000000000000000000000000000000000000000000000000000000000"
        "000000ffffffff35" + random_hex(rng, 20),
        coinbase2=random_hex(rng, 12) + "ffffffff02" + random_hex(rng, 40),
        merkle_branches=tuple(random_hex(rng, 32) for _ in range(branches)),
        version=BLOCK_VERSION,
        nbits=NBITS,
        ntime=f"{ntime:08x}",
        clean_jobs=clean_jobs,
    )


def unix_time(offset_seconds: int) -> int:
    return BASE_TIME_NS // 1_000_000_000 + offset_seconds


def cgminer_sample() -> SampleFile:
    rng = seeded("stratum-v1-cgminer")
    client = Endpoint("172.17.0.4", 49822)
    server = Endpoint("198.51.100.20", 3333)
    user = f"{wallets.bitcoin_bech32(rng)}.worker1"
    subscription = random_hex(rng, 8)
    first = make_notify(rng, unix_time(0), clean_jobs=True)
    second = make_notify(rng, unix_time(30), clean_jobs=False)
    steps = [
        to_server(stratum_v1.configure(1)),
        to_client(stratum_v1.configure_result(1, POOL_VERSION_MASK)),
        to_server(stratum_v1.subscribe(2, CGMINER_AGENT)),
        to_client(
            stratum_v1.subscribe_result(
                2, subscription, random_hex(rng, 4), EXTRANONCE2_SIZE
            )
        ),
        to_server(stratum_v1.authorize(3, user)),
        coalesce(
            [
                to_client(stratum_v1.boolean_result(3, True)),
                to_client(stratum_v1.set_difficulty(8192)),
                to_client(stratum_v1.notify(first)),
            ]
        ),
        to_server(
            stratum_v1.get_transactions(f"txlist{first.job_id}", first.job_id),
            delay=0.01,
        ),
        to_client(
            stratum_v1.transactions_result(
                f"txlist{first.job_id}", [random_hex(rng, 60), random_hex(rng, 48)]
            )
        ),
        to_server(_cgminer_submit(rng, 4, user, first), delay=11.0),
        to_client(stratum_v1.boolean_result(4, True)),
        to_client(stratum_v1.notify(second), delay=19.0),
        to_server(_cgminer_submit(rng, 5, user, second), delay=3.0),
        to_client(
            stratum_v1.boolean_result(5, False, error=stratum_v1.LOW_DIFFICULTY_ERROR)
        ),
        to_server(_cgminer_submit(rng, 6, user, second), delay=8.0),
        to_client(stratum_v1.boolean_result(6, True)),
        to_client(stratum_v1.reconnect("stratum.pool.example", "3333"), delay=15.0),
    ]
    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    expected = ExpectedFlow(
        client=client,
        server=server,
        dialect=STRATUM_V1,
        agent=CGMINER_AGENT,
        miner_family="cgminer",
        wallet_coin="bitcoin",
        worker="worker1",
        shares_submitted=3,
        shares_accepted=2,
        shares_rejected=1,
        jobs=2,
    )
    return pcap_sample(
        "stratum-v1-cgminer.pcap",
        "cgminer 4.12 speaks Bitcoin Stratum v1: configure, subscribe, authorize,"
        " two jobs, three shares (one rejected), get_transactions and a"
        " client.reconnect from the pool.",
        packets,
        [expected],
    )


def _cgminer_submit(
    rng: random.Random, request_id: int, user: str, job: stratum_v1.Notify
) -> bytes:
    return stratum_v1.submit(
        request_id,
        user,
        job.job_id,
        random_hex(rng, EXTRANONCE2_SIZE),
        job.ntime,
        random_hex(rng, 4),
    )


def server_first_sample() -> SampleFile:
    rng = seeded("stratum-v1-server-first")
    client = Endpoint("172.17.0.6", 50144)
    server = Endpoint("198.51.100.21", 4444)
    user = f"{wallets.bitcoin_legacy(rng)}.rig7"
    first = make_notify(rng, unix_time(0), clean_jobs=True)
    second = make_notify(rng, unix_time(45), clean_jobs=True)
    steps: list[Step] = [
        # The pool speaks first, right after the handshake.
        coalesce(
            [
                to_client(stratum_v1.set_difficulty(1024), delay=0.002),
                to_client(stratum_v1.notify(first)),
            ]
        ),
        to_server(stratum_v1.subscribe(1, CPUMINER_AGENT), delay=0.004),
        to_client(
            stratum_v1.subscribe_result(
                1, random_hex(rng, 8), random_hex(rng, 4), EXTRANONCE2_SIZE
            )
        ),
        to_server(stratum_v1.authorize(2, user)),
        to_client(stratum_v1.boolean_result(2, True)),
    ]
    for request_id, job, delay in ((4, first, 14.0), (5, second, 6.0)):
        if job is second:
            steps.append(to_client(stratum_v1.notify(second), delay=31.0))
        submit = stratum_v1.submit(
            request_id,
            user,
            job.job_id,
            random_hex(rng, EXTRANONCE2_SIZE),
            job.ntime,
            random_hex(rng, 4),
            style=CPUMINER_SUBMIT,
        )
        steps.append(to_server(submit, delay=delay))
        steps.append(to_client(stratum_v1.boolean_result(request_id, True)))
    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    expected = ExpectedFlow(
        client=client,
        server=server,
        dialect=STRATUM_V1,
        agent=CPUMINER_AGENT,
        miner_family="cpuminer",
        wallet_coin="bitcoin",
        worker="rig7",
        shares_submitted=2,
        shares_accepted=2,
        shares_rejected=0,
        jobs=2,
    )
    return pcap_sample(
        "stratum-v1-server-first.pcap",
        "A Bitcoin pool pushes set_difficulty and notify right after the handshake,"
        " before cpuminer 2.5.1 sends its first line.",
        packets,
        [expected],
    )


def midsession_notify_sample() -> SampleFile:
    rng = seeded("stratum-v1-midsession-notify")
    client = Endpoint("172.17.0.8", 47006)
    server = Endpoint("198.51.100.22", 3333)
    steps = [to_client(stratum_v1.set_difficulty(16384))]
    for index in range(3):
        job = make_notify(rng, unix_time(30 * index), clean_jobs=index == 0)
        steps.append(to_client(stratum_v1.notify(job), delay=30.0 if index else 0.001))
    packets = tcp_conversation(
        client, server, steps, start_ns=BASE_TIME_NS, handshake=False, close_by=None
    )
    expected = ExpectedFlow(client=client, server=server, dialect=STRATUM_V1, jobs=3)
    return pcap_sample(
        "stratum-v1-midsession-notify.pcap",
        "A Bitcoin Stratum v1 session captured mid-way: only the pool's"
        " set_difficulty and three notify pushes, with no handshake.",
        packets,
        [expected],
    )


def make_zcash_job(rng: random.Random, time: int) -> stratum_v1.ZcashNotify:
    return stratum_v1.ZcashNotify(
        job_id=random_hex(rng, 4),
        version="04000000",
        previous_hash=random_hex(rng, 32),
        merkle_root=random_hex(rng, 32),
        reserved="00" * 32,
        # Zcash header fields are little-endian.
        time=time.to_bytes(4, "little").hex(),
        bits="5f9e011d",
        clean_jobs=True,
    )


def zcash_sample() -> SampleFile:
    rng = seeded("stratum-v1-zcash")
    client = Endpoint("10.0.7.12", 39100)
    server = Endpoint("203.0.113.30", 3357)
    user = f"{wallets.zcash_transparent(rng)}.rig5"
    nonce1 = random_hex(rng, 4)
    jobs = [make_zcash_job(rng, unix_time(0)), make_zcash_job(rng, unix_time(75))]
    steps = [
        to_server(
            stratum_v1.zcash_subscribe(1, "zec.pool.example", 3357, NHEQMINER_AGENT)
        ),
        to_client(stratum_v1.zcash_subscribe_result(1, random_hex(rng, 8), nonce1)),
        to_server(stratum_v1.authorize(2, user, style=SPACED)),
        coalesce(
            [
                to_client(stratum_v1.boolean_result(2, True)),
                to_client(stratum_v1.set_target("0" * 4 + "f" * 60)),
                to_client(stratum_v1.zcash_notify(jobs[0])),
            ]
        ),
    ]
    for request_id, job in enumerate(jobs, start=3):
        if request_id > 3:
            steps.append(to_client(stratum_v1.zcash_notify(job), delay=40.0))
        solution = EQUIHASH_SOLUTION_PREFIX + random_hex(rng, EQUIHASH_SOLUTION_SIZE)
        submit = stratum_v1.zcash_submit(
            request_id, user, job.job_id, job.time, random_hex(rng, 28), solution
        )
        steps.append(to_server(submit, delay=35.0))
        steps.append(to_client(stratum_v1.boolean_result(request_id, True)))
    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    expected = ExpectedFlow(
        client=client,
        server=server,
        dialect=STRATUM_V1_ZCASH,
        agent=NHEQMINER_AGENT,
        worker="rig5",
        shares_submitted=2,
        shares_accepted=2,
        shares_rejected=0,
        jobs=2,
    )
    return pcap_sample(
        "stratum-v1-zcash.pcap",
        "Zcash Stratum: subscribe with host, port, agent and session,"
        " mining.set_target, two 8-parameter notify jobs and two Equihash shares.",
        packets,
        [expected],
    )


def build() -> list[SampleFile]:
    return [
        cgminer_sample(),
        server_first_sample(),
        midsession_notify_sample(),
        zcash_sample(),
    ]
