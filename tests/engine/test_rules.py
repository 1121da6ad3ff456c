"""Shape rules: mining messages match, look-alike JSON-RPC does not."""

from __future__ import annotations

import pytest

from detector.engine.rules import (
    METHOD_RULES,
    Request,
    is_ethproxy_job,
    is_monero_job,
)
from detector.model import Confidence, Direction

UP = Direction.TO_SERVER
DOWN = Direction.TO_CLIENT
BLOB = "0606e89883d205a65d8ee78991838a1cf3ec2ebbc5fb1fa43dec5fa1cd2bee4069212a54" + (
    "9cd731000000005a88235653097aa3e97ef2ceef4aee610751a828f9be1a0758a78365fb0a4c8c05"
)
H64 = "ab" * 32


def observe(method, params, direction, **extra):
    message = {"id": 1, "method": method, "params": params, **extra}
    return METHOD_RULES[method](Request(method, params, message, direction))


def test_monero_job_shape():
    assert is_monero_job({"blob": BLOB, "job_id": "1", "target": "dc460300"})
    assert not is_monero_job({"blob": "00ff", "job_id": "1", "target": "dc460300"})
    assert not is_monero_job({"blob": BLOB, "job_id": "1"})


def test_ethproxy_job_shape():
    job = ["0x" + H64, "0x" + H64, "0x" + "00" * 32]
    assert is_ethproxy_job(job)
    assert is_ethproxy_job([*job, "0x492609"])
    assert not is_ethproxy_job(["0x" + H64, "0x" + H64])
    assert not is_ethproxy_job(["a", "b", "c"])


def test_monero_submit_needs_nonce_and_hash():
    good = {"id": "s", "job_id": "j", "nonce": "98024001", "result": H64}
    assert observe("submit", good, UP).confidence is Confidence.HIGH
    assert observe("submit", {"id": "s", "job_id": "j", "text": "hello"}, UP) is None
    assert observe("submit", ["form", "data"], UP) is None
    assert observe("submit", good, DOWN) is None


def test_plain_login_is_low():
    observation = observe("login", {"login": "alice", "pass": "secret"}, UP)
    assert observation is not None
    assert observation.confidence is Confidence.LOW


def test_login_with_algo_list_is_high():
    params = {"login": "x", "pass": "x", "algo": ["rx/0", "cn/r"], "agent": "XMRig/6"}
    observation = observe("login", params, UP)
    assert observation.confidence is Confidence.HIGH
    assert observation.fields["algorithm"] == "rx/0"


@pytest.mark.parametrize(
    ("params", "dialects"),
    [
        (["a", "b", "c", "d", "e", "f", "g", "h", True], {"stratum-v1"}),
        (["a", "b", "c", "d", "e", "f", "g", True], {"stratum-v1-zcash"}),
        (["a", "0xb", "0xc", "0xd", True, 1234, "1b00ffff"], {"kawpow"}),
        (["a", "b", "c", True], {"ethereumstratum-1"}),
    ],
)
def test_notify_dialect_by_clean_flag(params, dialects):
    observation = observe("mining.notify", params, DOWN)
    assert observation.dialects == frozenset(dialects)
    assert observation.job


def test_notify_from_client_ignored():
    assert observe("mining.notify", ["a", "b", "c", True], UP) is None


def test_subscribe_ethereumstratum():
    observation = observe(
        "mining.subscribe", ["NiceHash/1.0.0", "EthereumStratum/1.0.0"], UP
    )
    assert observation.dialects == frozenset({"ethereumstratum-1"})
    assert observation.fields["agent"] == "NiceHash/1.0.0"


def test_eth_submit_work_shape():
    good = ["0x07a05fa4133e5126", "0x" + H64, "0x" + H64]
    assert observe("eth_submitWork", good, UP).share
    assert observe("eth_submitWork", ["0x1", "0x2", "0x3"], UP) is None


def test_ethproxy_login_worker_outside_params():
    observation = observe("eth_submitLogin", ["0xabc", "x"], UP, worker="rig1")
    assert observation.fields == {"login": "0xabc", "worker": "rig1"}


def test_getblocktemplate_shapes():
    bitcoin = [{"capabilities": ["coinbasetxn"], "rules": ["segwit"]}]
    assert observe("getblocktemplate", bitcoin, UP).dialects == {"getblocktemplate"}
    monero = {"wallet_address": "4" * 95, "reserve_size": 60}
    assert observe("getblocktemplate", monero, UP).fields["login"] == "4" * 95
    assert observe("getblocktemplate", [{"verbose": True}], UP) is None


def test_getwork_shapes():
    assert not observe("getwork", [], UP).share
    assert observe("getwork", ["00" * 128], UP).share
    assert observe("getwork", ["not hex"], UP) is None
