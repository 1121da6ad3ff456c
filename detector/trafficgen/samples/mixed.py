"""A capture of several containers: two miners among ordinary traffic."""

from __future__ import annotations

from detector.trafficgen import wallets
from detector.trafficgen.conversation import (
    Endpoint,
    merge,
    tcp_conversation,
    to_client,
    to_server,
)
from detector.trafficgen.messages import stratum_v1
from detector.trafficgen.samples.bitcoin import CGMINER_AGENT, make_notify, unix_time
from detector.trafficgen.samples.common import (
    DNS,
    STRATUM_V1,
    ExpectedFlow,
    SampleFile,
    pcap_sample,
    random_hex,
    seconds,
    seeded,
)
from detector.trafficgen.samples.monero import ACCEPTED, xmrig_expected, xmrig_session
from detector.trafficgen.samples.negative import (
    DNS_SERVER,
    WEB_SERVER,
    dns_lookup,
    http_get_steps,
    tls_client_hello_step,
)

# The Monero pool's name resolves to a documentation address here.
MONERO_POOL_NAME = "pool.supportxmr.com"
MONERO_POOL = Endpoint("203.0.113.10", 3333)
BITCOIN_POOL = Endpoint("198.51.100.20", 3333)
HTTPS_SERVER = Endpoint("192.0.2.44", 443)


def mixed_sample() -> SampleFile:
    rng = seeded("mixed-containers")
    monero_client = Endpoint("172.17.0.2", 41300)
    bitcoin_client = Endpoint("172.17.0.3", 49900)
    web_client = Endpoint("172.17.0.4", 50200)
    tls_client = Endpoint("172.17.0.5", 50300)

    monero_session = xmrig_session(
        rng, wallets.monero(rng), rigid="web-7f9c", shares=[[ACCEPTED], [ACCEPTED]]
    )
    user = f"{wallets.bitcoin_bech32(rng)}.w2"
    job = make_notify(rng, unix_time(1), clean_jobs=True)
    bitcoin_steps = [
        to_server(stratum_v1.subscribe(1, CGMINER_AGENT)),
        to_client(
            stratum_v1.subscribe_result(1, random_hex(rng, 8), random_hex(rng, 4), 4)
        ),
        to_server(stratum_v1.authorize(2, user)),
        to_client(
            stratum_v1.boolean_result(2, True)
            + stratum_v1.set_difficulty(4096)
            + stratum_v1.notify(job)
        ),
        to_server(
            stratum_v1.submit(
                3, user, job.job_id, random_hex(rng, 4), job.ntime, random_hex(rng, 4)
            ),
            delay=9.0,
        ),
        to_client(stratum_v1.boolean_result(3, True)),
    ]

    packets = merge(
        [
            dns_lookup(
                Endpoint(monero_client.ip, 53114),
                MONERO_POOL_NAME,
                MONERO_POOL.ip,
                transaction_id=0x1C2D,
                start_ns=seconds(0),
            ),
            tcp_conversation(
                monero_client, MONERO_POOL, monero_session.steps, start_ns=seconds(0.05)
            ),
            dns_lookup(
                Endpoint(web_client.ip, 53208),
                "www.example.com",
                WEB_SERVER.ip,
                transaction_id=0x5E6F,
                start_ns=seconds(0.4),
            ),
            tcp_conversation(
                web_client,
                WEB_SERVER,
                http_get_steps("www.example.com"),
                start_ns=seconds(0.45),
            ),
            tcp_conversation(
                bitcoin_client, BITCOIN_POOL, bitcoin_steps, start_ns=seconds(1.2)
            ),
            tcp_conversation(
                tls_client,
                HTTPS_SERVER,
                [tls_client_hello_step(rng, "www.example.com")],
                start_ns=seconds(2.0),
            ),
        ]
    )
    expected = [
        ExpectedFlow(
            client=Endpoint(monero_client.ip, 53114),
            server=DNS_SERVER,
            dialect=DNS,
            confidence="medium",
        ),
        xmrig_expected(monero_client, MONERO_POOL, monero_session, "web-7f9c"),
        ExpectedFlow(
            client=bitcoin_client,
            server=BITCOIN_POOL,
            dialect=STRATUM_V1,
            agent=CGMINER_AGENT,
            miner_family="cgminer",
            wallet_coin="bitcoin",
            worker="w2",
            shares_submitted=1,
            shares_accepted=1,
            shares_rejected=0,
            jobs=1,
        ),
    ]
    return pcap_sample(
        "mixed-containers.pcap",
        "Four containers on one bridge: an xmrig miner that resolves its pool by"
        " DNS, a cgminer Bitcoin miner, and ordinary DNS, HTTP and TLS traffic.",
        packets,
        expected,
    )


def build() -> list[SampleFile]:
    return [mixed_sample()]
