"""getwork and getblocktemplate over HTTP."""

from __future__ import annotations

import random

from detector.trafficgen import wallets
from detector.trafficgen.conversation import (
    Endpoint,
    tcp_conversation,
    to_client,
    to_server,
)
from detector.trafficgen.messages import getwork
from detector.trafficgen.samples.common import (
    BASE_TIME_NS,
    GETBLOCKTEMPLATE,
    GETWORK,
    ExpectedFlow,
    SampleFile,
    pcap_sample,
    random_hex,
    seeded,
)

# A getwork target for difficulty 1 shares, little-endian as bitcoind sent it.
DIFFICULTY_1_TARGET = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffff00000000"
# getwork data: an 80-byte header followed by SHA-256 padding to 128 bytes.
GETWORK_PADDING = (
    "000000800000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000080020000"
)


def _getwork_data(rng: random.Random) -> str:
    return "00000020" + random_hex(rng, 76) + GETWORK_PADDING


def getwork_sample() -> SampleFile:
    rng = seeded("getwork-cpuminer")
    client = Endpoint("172.17.0.13", 55002)
    server = Endpoint("192.0.2.83", 8332)
    host = f"{server.ip}:{server.port}"
    authorization = getwork.basic_authorization(
        f"{wallets.bitcoin_legacy(rng)}.cpu1", "x"
    )
    first = _getwork_data(rng)
    solved = first[:152] + random_hex(rng, 4) + first[160:]
    steps = [
        to_server(getwork.cpuminer_getwork(host, authorization)),
        to_client(
            getwork.getwork_result(0, first, random_hex(rng, 32), DIFFICULTY_1_TARGET)
        ),
        to_server(
            getwork.cpuminer_getwork(
                host, authorization, request_id=1, solved_data=solved
            ),
            delay=21.0,
        ),
        to_client(getwork.json_response(1, True)),
        to_server(getwork.cpuminer_getwork(host, authorization), delay=0.01),
        to_client(
            getwork.getwork_result(
                0, _getwork_data(rng), random_hex(rng, 32), DIFFICULTY_1_TARGET
            )
        ),
    ]
    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    expected = ExpectedFlow(
        client=client,
        server=server,
        dialect=GETWORK,
        agent=getwork.CPUMINER_AGENT,
        miner_family="cpuminer",
        shares_submitted=1,
        shares_accepted=1,
        shares_rejected=0,
        jobs=2,
    )
    return pcap_sample(
        "getwork-cpuminer.pcap",
        "cpuminer 2.5.1 fetches work with getwork over HTTP on port 8332, submits"
        " one solved header and fetches new work from a pool that offers long"
        " polling.",
        packets,
        [expected],
    )


def _block_template(rng: random.Random) -> dict[str, object]:
    transaction = random_hex(rng, 90)
    return {
        "version": 0x20000000,
        "rules": ["csv", "!segwit", "taproot"],
        "previousblockhash": "0000000000000000000" + random_hex(rng, 32)[19:],
        "transactions": [
            {
                "data": transaction,
                "txid": random_hex(rng, 32),
                "hash": random_hex(rng, 32),
                "depends": [],
                "fee": 1420,
                "sigops": 4,
                "weight": 561,
            }
        ],
        "coinbaseaux": {},
        "coinbasevalue": 312501420,
        "longpollid": random_hex(rng, 32) + "41",
        "target": "00000000000000000003b6b80000000000000000000000000000000000000000",
        "mintime": BASE_TIME_NS // 1_000_000_000 - 3600,
        "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff",
        "sigoplimit": 80000,
        "sizelimit": 4000000,
        "weightlimit": 4000000,
        "curtime": BASE_TIME_NS // 1_000_000_000,
        "bits": "17034219",
        "height": 930000,
        "default_witness_commitment": "6a24aa21a9ed" + random_hex(rng, 32),
    }


def getblocktemplate_sample() -> SampleFile:
    rng = seeded("getblocktemplate-cgminer")
    client = Endpoint("172.17.0.14", 55004)
    server = Endpoint("192.0.2.84", 8332)
    host = f"{server.ip}:{server.port}"
    authorization = getwork.basic_authorization("solo", random_hex(rng, 8))
    # An 80-byte header, one transaction, and the coinbase.
    block = (
        "00000020"
        + random_hex(rng, 76)
        + "02"
        + "01000000010000000000000000000000000000000000000000000000000000000000000000"
        + random_hex(rng, 90)
    )
    steps = [
        to_server(
            getwork.cgminer_post(
                host,
                authorization,
                "getblocktemplate",
                getwork.getblocktemplate_params(),
                request_id=0,
            )
        ),
        to_client(getwork.json_response(0, _block_template(rng))),
        to_server(
            getwork.cgminer_post(
                host,
                authorization,
                "submitblock",
                [block],
                request_id=1,
                hashrate=1_200_000_000,
            ),
            delay=48.0,
        ),
        # BIP 22: a null result means the block was accepted.
        to_client(getwork.json_response(1, None)),
    ]
    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    expected = ExpectedFlow(
        client=client,
        server=server,
        dialect=GETBLOCKTEMPLATE,
        agent=getwork.CGMINER_HTTP_AGENT,
        miner_family="cgminer",
        shares_submitted=1,
        shares_accepted=1,
        shares_rejected=0,
    )
    return pcap_sample(
        "getblocktemplate-cgminer.pcap",
        "cgminer 4.12 asks a node for a block template over HTTP on port 8332 and"
        " submits a block with submitblock.",
        packets,
        [expected],
    )


def build() -> list[SampleFile]:
    return [getwork_sample(), getblocktemplate_sample()]
