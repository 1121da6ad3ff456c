"""Message builders produce the wire shapes miners, pools and peers send."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any

import pytest
from scapy.layers.dns import DNS

from detector.trafficgen.messages import (
    bitcoin_p2p,
    dns,
    ethproxy,
    ethstratum1,
    ethstratum2,
    getwork,
    http,
    jsonrpc,
    kawpow,
    levin,
    monero,
    stratum_v1,
    tls,
)

SESSION = "1d099eb6d5f54802"
JOB = monero.Job(
    blob="1010" + "ab" * 35 + "00000000" + "cd" * 33,
    job_id="b9ed247e04ef",
    target="b88d0600",
    algorithm="rx/0",
    height=3_580_000,
    seed_hash="ef" * 32,
)
WALLET = "4" + "A" * 94
HEX64 = "12" * 32


def parse(line: bytes) -> dict[str, Any]:
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    message = json.loads(line)
    assert isinstance(message, dict)
    return message


def first_key(line: bytes) -> str:
    return next(iter(parse(line)))


# -- JSON lines ---------------------------------------------------------------


def test_key_order_applies_to_nested_objects() -> None:
    style = jsonrpc.JsonStyle(key_order=("b", "y"))
    line = jsonrpc.encode_line({"a": 1, "b": {"x": 1, "y": 2}}, style)
    assert line == b'{"b":{"y":2,"x":1},"a":1}\n'


def test_styles_control_whitespace() -> None:
    message = {"id": 1, "params": [1, 2]}
    assert jsonrpc.encode_line(message, jsonrpc.COMPACT) == b'{"id":1,"params":[1,2]}\n'
    assert (
        jsonrpc.encode_line(message, jsonrpc.SPACED) == b'{"id": 1, "params": [1, 2]}\n'
    )
    assert (
        jsonrpc.encode_line(message, jsonrpc.COLON_SPACE)
        == b'{"id": 1,"params": [1,2]}\n'
    )
    assert jsonrpc.encode_line({"b": 1, "a": 2}, jsonrpc.SORTED) == b'{"a":2,"b":1}\n'


def test_error_response_has_no_result() -> None:
    message = parse(
        jsonrpc.error_response(3, {"code": -1, "message": "x"}, jsonrpc=True)
    )
    assert message == {"id": 3, "jsonrpc": "2.0", "error": {"code": -1, "message": "x"}}


# -- Monero -------------------------------------------------------------------


def test_xmrig_login_shape() -> None:
    line = monero.xmrig_login(WALLET, "XMRig/6.21.0 (Linux x86_64)", rigid="rig01")
    message = parse(line)
    assert list(message) == ["id", "jsonrpc", "method", "params"]
    assert message["id"] == 1
    assert message["method"] == "login"
    params = message["params"]
    assert list(params) == ["login", "pass", "agent", "rigid", "algo"]
    assert params["algo"][0] == "rx/0"
    assert params["rigid"] == "rig01"


def test_login_result_carries_job() -> None:
    message = parse(monero.login_result(SESSION, JOB))
    result = message["result"]
    assert result["id"] == SESSION
    assert result["job"]["blob"] == JOB.blob
    assert result["job"]["seed_hash"] == JOB.seed_hash
    assert result["extensions"] == list(monero.POOL_EXTENSIONS)
    assert result["status"] == "OK"
    assert (
        "extensions"
        not in parse(monero.login_result(SESSION, JOB, extensions=None))["result"]
    )


def test_job_notification_has_no_id() -> None:
    message = parse(monero.job_notification(JOB))
    assert "id" not in message
    assert message["method"] == "job"
    assert message["params"]["job_id"] == JOB.job_id


def test_submit_and_replies() -> None:
    submit = parse(monero.submit(SESSION, JOB.job_id, "0a0b0c0d", HEX64, request_id=4))
    assert submit["params"] == {
        "id": SESSION,
        "job_id": JOB.job_id,
        "nonce": "0a0b0c0d",
        "result": HEX64,
        "algo": "rx/0",
    }
    assert parse(monero.status_result(4))["result"] == {"status": "OK"}
    rejected = parse(monero.low_difficulty_error(4))
    assert rejected["error"]["message"] == "Low difficulty share"
    assert "result" not in rejected


def test_keepalived_with_string_id_and_no_jsonrpc() -> None:
    message = parse(monero.keepalived(SESSION, request_id="ka-1", jsonrpc=False))
    assert message == {"id": "ka-1", "method": "keepalived", "params": {"id": SESSION}}
    reply = parse(monero.status_result("ka-1", "KEEPALIVED", jsonrpc=False))
    assert reply["result"] == {"status": "KEEPALIVED"}
    assert "jsonrpc" not in reply


# -- Bitcoin Stratum v1 and Zcash ----------------------------------------------


def test_stratum_v1_client_lines() -> None:
    configure = parse(stratum_v1.configure(1))
    assert configure["params"] == [
        ["version-rolling"],
        {"version-rolling.mask": "ffffffff"},
    ]
    subscribe = stratum_v1.subscribe(2, "cgminer/4.12.1")
    assert (
        subscribe
        == b'{"id": 2, "method": "mining.subscribe", "params": ["cgminer/4.12.1"]}\n'
    )
    submit = stratum_v1.submit(4, "w.1", "5f", "00000001", "6955b900", "deadbeef")
    assert first_key(submit) == "params"
    assert len(parse(submit)["params"]) == 5
    transactions = stratum_v1.get_transactions("txlist5f", "5f")
    assert first_key(transactions) == "params"
    assert parse(transactions)["id"] == "txlist5f"


def test_stratum_v1_pool_lines() -> None:
    result = parse(stratum_v1.subscribe_result(1, "sid", "f3b6d3f0", 4))["result"]
    assert result == [
        [["mining.set_difficulty", "sid"], ["mining.notify", "sid"]],
        "f3b6d3f0",
        4,
    ]
    job = stratum_v1.Notify(
        "5f", HEX64, "01", "02", ("aa" * 32,), "20000000", "17034219", "6955b900", True
    )
    notify = parse(stratum_v1.notify(job))
    assert notify["id"] is None
    assert len(notify["params"]) == 9
    assert notify["params"][8] is True
    rejected = parse(
        stratum_v1.boolean_result(5, False, error=stratum_v1.LOW_DIFFICULTY_ERROR)
    )
    assert rejected["result"] is False
    assert rejected["error"][1] == "Low difficulty share"
    reconnect = parse(stratum_v1.reconnect("pool.example", "3333"))
    assert reconnect["params"] == ["pool.example", "3333", 0]


def test_zcash_lines() -> None:
    subscribe = parse(
        stratum_v1.zcash_subscribe(1, "zec.pool.example", 3357, "nheqminer/0.5c")
    )
    assert subscribe["params"] == ["zec.pool.example", 3357, "nheqminer/0.5c", None]
    job = stratum_v1.ZcashNotify(
        "j", "04000000", HEX64, HEX64, "00" * 32, "80b95569", "5f9e011d", True
    )
    notify = parse(stratum_v1.zcash_notify(job))
    assert len(notify["params"]) == 8
    assert notify["params"][7] is True
    assert parse(stratum_v1.set_target("00ff" * 16))["method"] == "mining.set_target"


# -- Ethereum family ------------------------------------------------------------


def test_claymore_login_layout() -> None:
    line = ethproxy.submit_login("0x" + "ab" * 20, worker="rig")
    assert line.startswith(b'{"worker": "rig", "jsonrpc": "2.0", "params": [')
    message = parse(line)
    assert message["method"] == "eth_submitLogin"
    assert message["params"] == ["0x" + "ab" * 20, "x"]


def test_ethproxy_work_package_has_no_method() -> None:
    message = parse(
        ethproxy.work_package(
            ethproxy.PUSH_ID, "0x" + HEX64, "0x" + HEX64, "0x" + HEX64, "0x14e2ae1"
        )
    )
    assert message["id"] == 0
    assert "method" not in message
    assert len(message["result"]) == 4
    assert "error" not in message


def test_ethproxy_requests() -> None:
    login = parse(ethproxy.eth_login("0x" + "ab" * 20 + ".rig2"))
    assert login["method"] == "eth_login"
    assert "worker" not in login
    submit = parse(ethproxy.submit_work(4, "0x" + "11" * 8, "0x" + HEX64, "0x" + HEX64))
    assert submit["method"] == "eth_submitWork"
    assert len(submit["params"]) == 3
    rate = parse(ethproxy.submit_hashrate(6, "0x1d08a61", "0x" + HEX64))
    assert rate["params"][0] == "0x1d08a61"


def test_ethereumstratum1_lines() -> None:
    subscribe = ethstratum1.subscribe(1, "ethminer-0.19.0")
    assert parse(subscribe)["params"] == ["ethminer-0.19.0", "EthereumStratum/1.0.0"]
    result = parse(ethstratum1.subscribe_result(1, "sid", "1e22"))["result"]
    assert result == [["mining.notify", "sid", "EthereumStratum/1.0.0"], "1e22"]
    notify = parse(ethstratum1.notify("j1", HEX64, HEX64, True))
    assert len(notify["params"]) == 4
    assert not notify["params"][1].startswith("0x")
    submit = parse(ethstratum1.submit(40, "0xab.rig", "j1", "59e7f0c21e08"))
    assert len(submit["params"]) == 3


def test_ethereumstratum2_lines() -> None:
    hello = parse(ethstratum2.hello(1, "ethminer-0.19.0", "eth.pool.example", 4444))
    assert hello["method"] == "mining.hello"
    assert hello["params"] == {
        "agent": "ethminer-0.19.0",
        "host": "eth.pool.example",
        "port": "115c",
        "proto": "EthereumStratum/2.0.0",
    }
    assert "params" not in parse(ethstratum2.subscribe(2))
    mining_set = parse(ethstratum2.mining_set(0x1D3, "00ff", "af4c"))
    assert "id" not in mining_set
    assert mining_set["params"]["epoch"] == "1d3"
    notify = parse(ethstratum2.notify("bf0488aa", 0x6526D5, HEX64, False))
    assert notify["params"] == ["bf0488aa", "6526d5", HEX64, "0"]
    assert parse(ethstratum2.hashrate(9, 500_000, "w-1"))["params"] == ["7a120", "w-1"]
    assert parse(ethstratum2.bye()) == {"method": "mining.bye"}


def test_kawpow_lines() -> None:
    subscribe = parse(kawpow.subscribe(1, "GMiner/2.09", "rvn.pool.example", 3636))
    assert subscribe["params"] == ["GMiner/2.09", None, "rvn.pool.example", "3636"]
    assert parse(kawpow.subscribe_result(1, "267ea0"))["result"] == [None, "267ea0"]
    notify = parse(
        kawpow.notify(
            "9988",
            "0x" + HEX64,
            "0x" + HEX64,
            "0x" + HEX64,
            True,
            3_650_000,
            "1b0d2a3f",
        )
    )
    assert len(notify["params"]) == 7
    assert notify["params"][4] is True
    submit = parse(
        kawpow.submit(3, "R.rig", "9988", "0x" + "11" * 8, "0x" + HEX64, "0x" + HEX64)
    )
    assert all(value.startswith("0x") for value in submit["params"][2:])


# -- HTTP, getwork, getblocktemplate ------------------------------------------


def split_http(message: bytes) -> tuple[list[str], bytes]:
    head, _, body = message.partition(b"\r\n\r\n")
    return head.decode("ascii").split("\r\n"), body


def header(lines: list[str], name: str) -> str:
    for line in lines[1:]:
        key, _, value = line.partition(": ")
        if key.lower() == name.lower():
            return value
    raise AssertionError(f"no {name} header")


def test_http_adds_content_length() -> None:
    lines, body = split_http(http.request("POST", "/", [("Host", "h")], b"abc"))
    assert lines[0] == "POST / HTTP/1.1"
    assert header(lines, "Content-Length") == "3"
    assert body == b"abc"
    lines, _ = split_http(http.request("GET", "/", [("Host", "h")]))
    with pytest.raises(AssertionError):
        header(lines, "Content-Length")


def test_cpuminer_getwork_request() -> None:
    authorization = getwork.basic_authorization("user.1", "x")
    lines, body = split_http(getwork.cpuminer_getwork("192.0.2.83:8332", authorization))
    assert header(lines, "User-Agent") == "cpuminer/2.5.1"
    assert header(lines, "X-Mining-Extensions") == "midstate"
    assert base64.b64decode(header(lines, "Authorization").split()[1]) == b"user.1:x"
    assert int(header(lines, "Content-Length")) == len(body)
    assert body == b'{"method": "getwork", "params": [], "id": 0}\r\n'
    _, submit_body = split_http(
        getwork.cpuminer_getwork(
            "h", authorization, request_id=1, solved_data="ab" * 128
        )
    )
    assert json.loads(submit_body)["params"] == ["ab" * 128]


def test_getwork_response_headers() -> None:
    lines, body = split_http(getwork.getwork_result(0, "00" * 128, HEX64, "ff" * 32))
    assert lines[0] == "HTTP/1.1 200 OK"
    assert header(lines, "X-Long-Polling") == "/LP"
    result = json.loads(body)["result"]
    assert len(result["hash1"]) == 128
    assert set(result) == {"midstate", "data", "hash1", "target"}


def test_cgminer_post_headers() -> None:
    lines, body = split_http(
        getwork.cgminer_post(
            "h",
            "Basic x",
            "getblocktemplate",
            getwork.getblocktemplate_params(),
            request_id=0,
            hashrate=5,
        )
    )
    assert header(lines, "User-Agent") == "cgminer 4.12.1"
    assert (
        header(lines, "X-Mining-Extensions") == "longpoll midstate rollntime submitold"
    )
    assert header(lines, "X-Mining-Hashrate") == "5"
    request = json.loads(body)
    assert request["params"][0]["rules"] == ["segwit"]


# -- Peer-to-peer, TLS, DNS ----------------------------------------------------


def test_bitcoin_message_header() -> None:
    message = bitcoin_p2p.version(
        timestamp=1_767_225_600,
        receiver=("192.0.2.93", 8333),
        sender=("172.17.0.23", 56030),
        nonce=1,
        user_agent="/Satoshi:28.1.0/",
        start_height=930_000,
    )
    assert message[:4] == bitcoin_p2p.MAINNET_MAGIC
    assert message[4:16] == b"version\0\0\0\0\0"
    (length,) = struct.unpack_from("<I", message, 16)
    payload = message[24:]
    assert length == len(payload)
    assert (
        message[20:24] == hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    )
    (version,) = struct.unpack_from("<i", payload)
    assert version == bitcoin_p2p.PROTOCOL_VERSION
    assert b"/Satoshi:28.1.0/" in payload
    assert bitcoin_p2p.verack() == bytes.fromhex(
        "f9beb4d976657261636b000000000000000000005df6e0e2"
    )


def test_bitcoin_rejects_long_command() -> None:
    with pytest.raises(ValueError):
        bitcoin_p2p.message("averyverylongcommand", b"")


def test_levin_handshake_header() -> None:
    packet = levin.handshake(
        peer_id=5,
        height=10,
        top_id=b"\1" * 32,
        cumulative_difficulty=7,
        is_response=False,
    )
    signature, body_size, expects_reply, command, code, flags, version = (
        struct.unpack_from("<QQ?IiII", packet)
    )
    assert packet[:8] == bytes.fromhex("0121010101010101")
    assert signature == levin.LEVIN_SIGNATURE
    assert body_size == len(packet) - 33
    assert expects_reply is True
    assert command == levin.COMMAND_HANDSHAKE
    assert code == 0
    assert flags == levin.PACKET_REQUEST
    assert version == levin.LEVIN_PROTOCOL_VERSION

    body = packet[33:]
    assert struct.unpack_from("<IIB", body) == (0x01011101, 0x01020101, 1)
    assert levin.MAINNET_NETWORK_ID in body

    response = levin.handshake(
        peer_id=6,
        height=11,
        top_id=b"\2" * 32,
        cumulative_difficulty=8,
        is_response=True,
    )
    assert struct.unpack_from("<Q?", response, 8)[1] is False
    assert b"local_peerlist_new" in response


def test_levin_varint_widths() -> None:
    document = levin.encode_storage({"s": b"x" * 100})
    # 100 needs the two-byte form: (100 << 2) | 1, little-endian.
    assert struct.pack("<H", 100 << 2 | 1) + b"x" * 100 in document


def parse_client_hello_server_name(record: bytes) -> str:
    content_type, _, record_length = struct.unpack_from(">BHH", record)
    assert content_type == tls.RECORD_HANDSHAKE
    assert record_length == len(record) - 5
    handshake = record[5:]
    assert handshake[0] == tls.HANDSHAKE_CLIENT_HELLO
    assert int.from_bytes(handshake[1:4], "big") == len(handshake) - 4
    offset = 4 + 2 + 32
    offset += 1 + handshake[offset]
    (suites_length,) = struct.unpack_from(">H", handshake, offset)
    offset += 2 + suites_length
    offset += 1 + handshake[offset]
    (extensions_length,) = struct.unpack_from(">H", handshake, offset)
    offset += 2
    assert offset + extensions_length == len(handshake)
    while offset < len(handshake):
        extension_type, length = struct.unpack_from(">HH", handshake, offset)
        data = handshake[offset + 4 : offset + 4 + length]
        if extension_type == tls.EXTENSION_SERVER_NAME:
            (name_length,) = struct.unpack_from(">H", data, 3)
            return data[5 : 5 + name_length].decode("ascii")
        offset += 4 + length
    raise AssertionError("no server_name extension")


def test_client_hello_server_name() -> None:
    record = tls.client_hello("www.example.com", b"\1" * 32, b"\2" * 32, b"\3" * 32)
    assert parse_client_hello_server_name(record) == "www.example.com"
    with pytest.raises(ValueError):
        tls.client_hello("a.example", b"short", b"", b"\3" * 32)


def test_dns_query_and_answer() -> None:
    query = DNS(dns.query(0x3A51, "www.example.com"))
    assert query.id == 0x3A51
    assert query.qd[0].qname == b"www.example.com."
    assert query.qr == 0
    answer = DNS(dns.response(0x3A51, "www.example.com", ["192.0.2.80", "192.0.2.81"]))
    assert answer.qr == 1
    assert answer.ancount == 2
    assert answer.an[0].rdata == "192.0.2.80"
    assert answer.an[1].rdata == "192.0.2.81"
    with pytest.raises(ValueError):
        dns.query(1, "bad..name")
