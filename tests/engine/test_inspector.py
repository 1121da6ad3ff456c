"""FlowInspector: conversations in, verdict and extracted fields out."""

from __future__ import annotations

import json

import pytest

from detector.engine.inspector import FlowInspector
from detector.flows.reassembly import StreamData
from detector.model import Confidence, Direction, FlowCounters, FlowKey

UP = Direction.TO_SERVER
DOWN = Direction.TO_CLIENT
KEY = FlowKey("tcp", "172.17.0.2", 40000, "192.0.2.10", 3333)
H64 = "ab" * 32
BLOB = "07" * 76
# Shaped like a Monero standard address (prefix, length, base58 alphabet); it
# is not a real wallet.
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
WALLET = "4A" + (BASE58 * 2)[:93]


def line(message) -> bytes:
    return json.dumps(message).encode() + b"\n"


def run(conversation, signatures, chunk_size=None):
    inspector = FlowInspector(signatures, KEY)
    for step, (direction, data) in enumerate(conversation):
        pieces = [data]
        if chunk_size:
            pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
        for piece in pieces:
            inspector.feed(direction, [StreamData(piece, 0)], float(step))
    inspector.finish(float(len(conversation)))
    return inspector.detection("test.pcap", 0.0, 9.0, FlowCounters(), False)


def xmrig_session():
    job = {
        "blob": BLOB,
        "job_id": "j1",
        "target": "b88d0600",
        "algo": "rx/0",
        "seed_hash": H64,
    }
    return [
        (
            UP,
            line(
                {
                    "id": 1,
                    "jsonrpc": "2.0",
                    "method": "login",
                    "params": {
                        "login": WALLET + ".rig1",
                        "pass": "x",
                        "agent": "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0",
                        "algo": ["rx/0"],
                    },
                }
            ),
        ),
        (
            DOWN,
            line(
                {
                    "id": 1,
                    "jsonrpc": "2.0",
                    "error": None,
                    "result": {"id": "sess", "job": job, "status": "OK"},
                }
            ),
        ),
        (DOWN, line({"jsonrpc": "2.0", "method": "job", "params": job})),
        (
            UP,
            line(
                {
                    "id": 2,
                    "jsonrpc": "2.0",
                    "method": "submit",
                    "params": {
                        "id": "sess",
                        "job_id": "j1",
                        "nonce": "0a0b0c0d",
                        "result": H64,
                    },
                }
            ),
        ),
        (
            DOWN,
            line(
                {"id": 2, "jsonrpc": "2.0", "error": None, "result": {"status": "OK"}}
            ),
        ),
        (
            UP,
            line(
                {
                    "id": 3,
                    "jsonrpc": "2.0",
                    "method": "submit",
                    "params": {
                        "id": "sess",
                        "job_id": "j1",
                        "nonce": "0a0b0c0e",
                        "result": H64,
                    },
                }
            ),
        ),
        (
            DOWN,
            line(
                {
                    "id": 3,
                    "jsonrpc": "2.0",
                    "error": {"code": -1, "message": "Low difficulty share"},
                }
            ),
        ),
    ]


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_xmrig_session(signatures, chunk_size):
    detection = run(xmrig_session(), signatures, chunk_size)
    assert detection is not None
    mining = detection.mining
    assert detection.confidence is Confidence.HIGH
    assert mining.dialect == "monero"
    assert mining.miner_family == "xmrig"
    assert mining.wallet == WALLET
    assert mining.wallet_coin == "monero"
    assert mining.worker == "rig1"
    assert mining.algorithm == "rx/0"
    assert mining.jobs == 2
    assert mining.shares_submitted == 2
    assert mining.shares_accepted == 1
    assert mining.shares_rejected == 1
    assert mining.methods_to_server == {"login": 1, "submit": 2}
    assert mining.methods_to_client == {"job": 1}
    kinds = {item.kind for item in detection.evidence}
    assert {
        "stratum.login",
        "stratum.job",
        "stratum.submit",
        "miner.agent",
        "stratum.error",
    } <= kinds


def test_generic_login_and_submit_not_mining(signatures):
    conversation = [
        (
            UP,
            line(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "login",
                    "params": {"login": "alice", "pass": "hunter2"},
                }
            ),
        ),
        (DOWN, line({"jsonrpc": "2.0", "id": 1, "result": {"token": "abc"}})),
        (
            UP,
            line(
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "submit",
                    "params": {"form": "survey", "answers": [1, 2]},
                }
            ),
        ),
        (DOWN, line({"jsonrpc": "2.0", "id": 2, "result": {"status": "OK"}})),
    ]
    assert run(conversation, signatures) is None


def test_ethereum_node_api_not_mining(signatures):
    conversation = [
        (
            UP,
            line(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "web3_clientVersion",
                    "params": [],
                }
            ),
        ),
        (DOWN, line({"jsonrpc": "2.0", "id": 1, "result": "Geth/v1.8.2"})),
    ]
    assert run(conversation, signatures) is None


def test_mid_session_starts_mid_line(signatures):
    notify = line(
        {
            "id": None,
            "method": "mining.notify",
            "params": [
                "j",
                "a" * 64,
                "b",
                "c",
                [],
                "20000000",
                "1a0ffff",
                "5a0b0c0d",
                True,
            ],
        }
    )
    data = b'0000000000","1b"]}\n' + notify + notify
    detection = run([(DOWN, data)], signatures)
    assert detection is not None
    assert detection.mining.dialect == "stratum-v1"
    assert detection.mining.jobs == 2


def test_gap_resynchronises(signatures):
    inspector = FlowInspector(signatures, KEY)
    submit = line(
        {
            "id": 5,
            "method": "mining.submit",
            "params": ["w.1", "j", "00000000", "5a0b0c0d", "1a2b3c4d"],
        }
    )
    inspector.feed(UP, [StreamData(submit[:20], 0)], 1.0)
    inspector.feed(UP, [StreamData(submit[30:], 10), StreamData(submit, 0)], 2.0)
    inspector.finish(3.0)
    detection = inspector.detection("t", 0, 3, FlowCounters(), False)
    assert detection is not None
    assert detection.mining.shares_submitted == 1
    assert detection.stream_gaps == 1


def test_binary_stream_gives_up(signatures):
    inspector = FlowInspector(signatures, KEY)
    inspector.feed(UP, [StreamData(b"\xf9\xbe\xb4\xd9version\x00" + bytes(80), 0)], 1)
    inspector.feed(DOWN, [StreamData(b"\x01\x21\x01\x01" + bytes(40), 0)], 1)
    assert not inspector.wants_data


def test_keepalived_alone_is_not_enough(signatures):
    conversation = [
        (UP, line({"id": "k", "method": "keepalived", "params": {"id": "s"}})),
    ]
    assert run(conversation, signatures) is None


def test_keepalived_with_reply_is_mining(signatures):
    conversation = [
        (UP, line({"id": "k", "method": "keepalived", "params": {"id": "s"}})),
        (DOWN, line({"id": "k", "result": {"status": "KEEPALIVED"}})),
    ]
    detection = run(conversation, signatures)
    assert detection is not None
    assert detection.mining.dialect == "monero"


def test_http_getwork(signatures):
    body = b'{"method": "getwork", "params": [], "id":0}\n'
    request = (
        b"POST / HTTP/1.1\r\nHost: pool.example:8332\r\n"
        b"User-Agent: cpuminer/2.5.1\r\nContent-Type: application/json\r\n"
        b"X-Mining-Extensions: midstate\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    detection = run([(UP, request)], signatures)
    assert detection is not None
    assert detection.mining.dialect == "getwork"
    assert detection.mining.miner_family == "cpuminer"
    assert detection.mining.pool_host == "pool.example"


def test_login_with_ethereum_username_not_mining(signatures):
    conversation = [
        (
            UP,
            line(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "login",
                    "params": {"login": "0x" + "ab" * 20, "pass": "signature"},
                }
            ),
        ),
        (DOWN, line({"jsonrpc": "2.0", "id": 1, "result": {"token": "t"}})),
    ]
    assert run(conversation, signatures) is None


def test_login_with_non_miner_algorithms_not_mining(signatures):
    conversation = [
        (
            UP,
            line(
                {
                    "id": 1,
                    "method": "login",
                    "params": {
                        "login": "alice",
                        "pass": "x",
                        "algo": ["sha256", "bcrypt"],
                    },
                }
            ),
        ),
    ]
    assert run(conversation, signatures) is None


def test_unrequested_hash_list_not_mining(signatures):
    # eth_getFilterChanges answers with block hashes shaped like a work
    # package; without its request in the capture it is not a work push.
    hashes = ["0x" + "12" * 32, "0x" + "34" * 32, "0x" + "56" * 32]
    conversation = [(DOWN, line({"jsonrpc": "2.0", "id": 7, "result": hashes}))]
    assert run(conversation, signatures) is None


def test_work_push_with_id_zero_is_mining(signatures):
    package = ["0x" + "12" * 32, "0x" + "34" * 32, "0x00000000" + "ff" * 28]
    conversation = [(DOWN, line({"jsonrpc": "2.0", "id": 0, "result": package}))]
    detection = run(conversation, signatures)
    assert detection is not None
    assert detection.mining.dialect == "ethproxy"


def test_busy_json_service_given_up(signatures):
    inspector = FlowInspector(signatures, KEY)
    request = line({"jsonrpc": "2.0", "id": 1, "method": "status", "params": []})
    inspector.feed(UP, [StreamData(request * 300, 0)], 1.0)
    assert not inspector.wants_data
    assert inspector.messages < 300
