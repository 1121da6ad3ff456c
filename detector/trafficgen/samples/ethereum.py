"""Ethereum-family samples: ethproxy, EthereumStratum/1.0.0 and 2.0.0, KawPow."""

from __future__ import annotations

import random

from detector.trafficgen import wallets
from detector.trafficgen.conversation import (
    Endpoint,
    Step,
    coalesce,
    merge,
    tcp_conversation,
    to_client,
    to_server,
)
from detector.trafficgen.messages import ethproxy, ethstratum1, ethstratum2, kawpow
from detector.trafficgen.messages.jsonrpc import COMPACT
from detector.trafficgen.samples.common import (
    BASE_TIME_NS,
    ETHEREUMSTRATUM_1,
    ETHEREUMSTRATUM_2,
    ETHPROXY,
    KAWPOW,
    ExpectedFlow,
    SampleFile,
    pcap_sample,
    random_hex,
    seconds,
    seeded,
)

ETHMINER_AGENT = "ethminer-0.19.0"
GMINER_AGENT = "GMiner/2.09"
# A share target of about difficulty 4 G, as a 32-byte boundary.
SHARE_BOUNDARY = "0000000112e0be826d694b2e62d01511f12a6061fbaec8bc02357593e70e52ba"
# ethminer's solution ids start at 40 plus the GPU index.
ETHMINER_SUBMIT_ID = 40
ETHMINER_HASHRATE_ID = 9
ETHMINER_NOOP_ID = 50
# Ethash changes its dataset every 30000 blocks.
ETHASH_EPOCH_LENGTH = 30_000


def _work(rng: random.Random, height: int | None) -> tuple[str, str, str, str | None]:
    header = "0x" + random_hex(rng, 32)
    seed = "0x" + random_hex(rng, 32)
    return header, seed, "0x" + SHARE_BOUNDARY, None if height is None else hex(height)


def claymore_flow(rng: random.Random, client: Endpoint, server: Endpoint) -> list[Step]:
    """eth_submitLogin with ``worker`` outside params, polling and pushes."""
    wallet = wallets.ethereum(rng)
    steps = [
        to_server(ethproxy.submit_login(wallet, worker="rig")),
        to_client(ethproxy.boolean_result(2)),
        to_server(ethproxy.get_work(3)),
    ]
    header, seed, target, _ = _work(rng, None)
    steps.append(to_client(ethproxy.work_package(3, header, seed, target)))
    steps.append(
        to_server(
            ethproxy.submit_hashrate(6, "0x1d08a61", "0x" + random_hex(rng, 32)),
            delay=5.0,
        )
    )
    steps.append(to_client(ethproxy.boolean_result(6)))
    for height in (21_900_001, 21_900_002):
        header, seed, target, block = _work(rng, height)
        push = ethproxy.work_package(ethproxy.PUSH_ID, header, seed, target, block)
        steps.append(to_client(push, delay=12.0))
        submit = ethproxy.submit_work(
            4,
            "0x" + random_hex(rng, 8),
            header,
            "0x" + random_hex(rng, 32),
            worker="rig",
        )
        steps.append(to_server(submit, delay=3.5))
        steps.append(to_client(ethproxy.boolean_result(4)))
    return steps


def eth_login_flow(rng: random.Random) -> list[Step]:
    """eth_login with the worker in the login, in compact JSON."""
    wallet = wallets.ethereum(rng)
    header, seed, target, _ = _work(rng, None)
    pushed_header, pushed_seed, _, block = _work(rng, 21_900_003)
    return [
        to_server(ethproxy.eth_login(f"{wallet}.rig2")),
        to_client(ethproxy.boolean_result(1)),
        to_server(ethproxy.get_work(2, worker=None, style=COMPACT)),
        to_client(ethproxy.work_package(2, header, seed, target)),
        to_client(
            ethproxy.work_package(
                ethproxy.PUSH_ID, pushed_header, pushed_seed, target, block
            ),
            delay=13.0,
        ),
        to_server(
            ethproxy.submit_work(
                3,
                "0x" + random_hex(rng, 8),
                pushed_header,
                "0x" + random_hex(rng, 32),
                style=COMPACT,
            ),
            delay=6.0,
        ),
        to_client(ethproxy.boolean_result(3)),
    ]


def ethproxy_sample() -> SampleFile:
    rng = seeded("ethproxy")
    claymore_client = Endpoint("172.17.0.9", 51000)
    claymore_server = Endpoint("198.51.100.40", 9999)
    login_client = Endpoint("172.17.0.10", 51002)
    login_server = Endpoint("198.51.100.41", 8008)
    packets = merge(
        [
            tcp_conversation(
                claymore_client,
                claymore_server,
                claymore_flow(rng, claymore_client, claymore_server),
                start_ns=BASE_TIME_NS,
            ),
            tcp_conversation(
                login_client, login_server, eth_login_flow(rng), start_ns=seconds(2.5)
            ),
        ]
    )
    expected = [
        ExpectedFlow(
            client=claymore_client,
            server=claymore_server,
            dialect=ETHPROXY,
            wallet_coin="ethereum",
            worker="rig",
            shares_submitted=2,
            shares_accepted=2,
            shares_rejected=0,
            jobs=3,
        ),
        ExpectedFlow(
            client=login_client,
            server=login_server,
            dialect=ETHPROXY,
            wallet_coin="ethereum",
            worker="rig2",
            shares_submitted=1,
            shares_accepted=1,
            shares_rejected=0,
            jobs=2,
        ),
    ]
    return pcap_sample(
        "ethproxy.pcap",
        "Two ethproxy flows: a Claymore-style eth_submitLogin session on port 9999"
        " with pushed work packages, and an eth_login session on port 8008.",
        packets,
        expected,
    )


def ethereumstratum1_sample() -> SampleFile:
    rng = seeded("ethereumstratum1-nicehash")
    client = Endpoint("172.17.0.11", 53530)
    server = Endpoint("203.0.113.53", 3353)
    user = f"{wallets.ethereum(rng)}.rig4"
    extranonce = random_hex(rng, 2)
    seed_hash = random_hex(rng, 32)
    job_ids = [random_hex(rng, 4), random_hex(rng, 4)]
    steps: list[Step] = [
        to_server(ethstratum1.subscribe(1, ETHMINER_AGENT)),
        to_client(ethstratum1.subscribe_result(1, random_hex(rng, 16), extranonce)),
        # ethminer queues both requests and flushes them in one write.
        to_server(
            ethstratum1.extranonce_subscribe(2) + ethstratum1.authorize(3, user),
            delay=0.001,
        ),
        coalesce(
            [
                to_client(ethstratum1.boolean_result(2)),
                to_client(ethstratum1.boolean_result(3)),
                to_client(ethstratum1.set_difficulty(0.5)),
            ]
        ),
    ]

    for index, job_id in enumerate(job_ids):
        header_hash = random_hex(rng, 32)
        notify = ethstratum1.notify(job_id, seed_hash, header_hash, index == 0)
        steps.append(to_client(notify, delay=0.002 if index == 0 else 13.0))
        # The miner nonce is the 8-byte nonce without the 2-byte extranonce.
        submit = ethstratum1.submit(
            ETHMINER_SUBMIT_ID, user, job_id, random_hex(rng, 6)
        )
        steps.append(to_server(submit, delay=6.0))
        steps.append(to_client(ethstratum1.boolean_result(ETHMINER_SUBMIT_ID)))

    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    expected = ExpectedFlow(
        client=client,
        server=server,
        dialect=ETHEREUMSTRATUM_1,
        agent=ETHMINER_AGENT,
        miner_family="ethminer",
        wallet_coin="ethereum",
        worker="rig4",
        shares_submitted=2,
        shares_accepted=2,
        shares_rejected=0,
        jobs=2,
    )
    return pcap_sample(
        "ethereumstratum1-nicehash.pcap",
        "ethminer 0.19 speaks EthereumStratum/1.0.0 (NiceHash) on port 3353:"
        " subscribe, extranonce.subscribe, authorize, two jobs and two shares.",
        packets,
        [expected],
    )


def ethereumstratum2_sample() -> SampleFile:
    rng = seeded("ethereumstratum2")
    client = Endpoint("172.17.0.12", 54010)
    server = Endpoint("198.51.100.60", 4444)
    user = f"{wallets.ethereum(rng)}.rig6"
    worker_token = "w-1"
    steps: list[Step] = [
        to_server(ethstratum2.hello(1, ETHMINER_AGENT, "eth.pool.example", 4444)),
        to_client(
            ethstratum2.hello_result(1, "Geth/v1.13.14-stable/linux-amd64/go1.21.7")
        ),
        to_server(ethstratum2.subscribe(2)),
        to_client(ethstratum2.string_result(2, "s-" + random_hex(rng, 4))),
        to_server(ethstratum2.authorize(3, user)),
        to_client(ethstratum2.string_result(3, worker_token)),
    ]

    for index, height in enumerate((21_900_010, 21_900_011)):
        job_id = random_hex(rng, 4)
        notify = ethstratum2.notify(job_id, height, random_hex(rng, 32), True)
        if index == 0:
            # The pool sends mining.set and its first job in one write.
            mining_set = ethstratum2.mining_set(
                height // ETHASH_EPOCH_LENGTH,
                SHARE_BOUNDARY.lstrip("0"),
                random_hex(rng, 2),
            )
            steps.append(to_client(mining_set + notify, delay=0.002))
        else:
            steps.append(to_client(notify, delay=13.0))
        submit = ethstratum2.submit(
            ETHMINER_SUBMIT_ID, job_id, random_hex(rng, 6), worker_token
        )
        steps.append(to_server(submit, delay=5.0))
        steps.append(to_client(ethstratum2.boolean_result(ETHMINER_SUBMIT_ID)))

    steps.append(
        to_server(
            ethstratum2.hashrate(ETHMINER_HASHRATE_ID, 30_500_000, worker_token),
            delay=10.0,
        )
    )
    steps.append(to_client(ethstratum2.boolean_result(ETHMINER_HASHRATE_ID)))
    steps.append(to_server(ethstratum2.noop(ETHMINER_NOOP_ID), delay=30.0))
    steps.append(to_client(ethstratum2.boolean_result(ETHMINER_NOOP_ID)))
    steps.append(to_server(ethstratum2.bye(), delay=2.0))

    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    expected = ExpectedFlow(
        client=client,
        server=server,
        dialect=ETHEREUMSTRATUM_2,
        agent=ETHMINER_AGENT,
        miner_family="ethminer",
        wallet_coin="ethereum",
        worker="rig6",
        shares_submitted=2,
        shares_accepted=2,
        shares_rejected=0,
        jobs=2,
    )
    return pcap_sample(
        "ethereumstratum2.pcap",
        "ethminer 0.19 speaks EthereumStratum/2.0.0: mining.hello, subscribe,"
        " authorize, mining.set, two jobs, two shares, hashrate, noop and bye.",
        packets,
        [expected],
    )


def kawpow_sample() -> SampleFile:
    rng = seeded("kawpow-gminer")
    client = Endpoint("172.17.0.7", 45112)
    server = Endpoint("192.0.2.36", 3636)
    user = f"{wallets.ravencoin(rng)}.rig3"
    seed_hash = "0x" + random_hex(rng, 32)
    target = "0x" + "0" * 8 + "ff" * 28
    steps: list[Step] = [
        to_server(kawpow.subscribe(1, GMINER_AGENT, "rvn.pool.example", 3636)),
        to_client(kawpow.subscribe_result(1, random_hex(rng, 3))),
        to_server(kawpow.authorize(2, user)),
        to_client(kawpow.boolean_result(2)),
    ]
    for index, height in enumerate((3_650_000, 3_650_001)):
        job_id = random_hex(rng, 2)
        header = "0x" + random_hex(rng, 32)
        notify = kawpow.notify(
            job_id, header, seed_hash, target, index == 0, height, "1b0d2a3f"
        )
        if index == 0:
            steps.append(
                coalesce(
                    [
                        to_client(kawpow.set_target(target[2:]), delay=0.002),
                        to_client(notify),
                    ]
                )
            )
        else:
            steps.append(to_client(notify, delay=60.0))
        submit = kawpow.submit(
            3 + index,
            user,
            job_id,
            "0x" + random_hex(rng, 8),
            header,
            "0x" + random_hex(rng, 32),
        )
        steps.append(to_server(submit, delay=7.0))
        steps.append(to_client(kawpow.boolean_result(3 + index)))
    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    expected = ExpectedFlow(
        client=client,
        server=server,
        dialect=KAWPOW,
        agent=GMINER_AGENT,
        miner_family="gminer",
        wallet_coin="ravencoin",
        worker="rig3",
        shares_submitted=2,
        shares_accepted=2,
        shares_rejected=0,
        jobs=2,
    )
    return pcap_sample(
        "kawpow-gminer.pcap",
        "GMiner 2.09 mines Ravencoin with KawPow on port 3636: subscribe with"
        " host and port, authorize, set_target, two 7-parameter jobs and two shares.",
        packets,
        [expected],
    )


def build() -> list[SampleFile]:
    return [
        ethproxy_sample(),
        ethereumstratum1_sample(),
        ethereumstratum2_sample(),
        kawpow_sample(),
    ]
