"""Ordinary traffic that must not be reported as mining.

Some of it looks close: JSON-RPC with ``login`` and ``submit`` methods, an
Ethereum node's API, and the peer-to-peer protocols of Bitcoin and Monero.
"""

from __future__ import annotations

import random

from detector.model import Direction
from detector.trafficgen import wallets
from detector.trafficgen.conversation import (
    Endpoint,
    Step,
    TimedPacket,
    tcp_conversation,
    to_client,
    to_server,
    udp_conversation,
)
from detector.trafficgen.messages import bitcoin_p2p, dns, http, jsonrpc, levin, tls
from detector.trafficgen.samples.common import (
    BASE_TIME_NS,
    SampleFile,
    pcap_sample,
    seeded,
)

WEB_SERVER = Endpoint("192.0.2.80", 80)
DNS_SERVER = Endpoint("192.0.2.53", 53)
CURL_AGENT = "curl/8.5.0"
EXAMPLE_PAGE = (
    b"<!doctype html>\n<html><head><title>Example Domain</title></head>\n"
    b"<body><h1>Example Domain</h1><p>This domain is for use in examples.</p>"
    b"</body></html>\n"
)


def dns_lookup(
    client: Endpoint, name: str, address: str, *, transaction_id: int, start_ns: int
) -> list[TimedPacket]:
    """Build a DNS query for ``name`` and its answer ``address``."""
    steps = [
        Step(Direction.TO_SERVER, dns.query(transaction_id, name)),
        Step(
            Direction.TO_CLIENT,
            dns.response(transaction_id, name, [address]),
            delay=0.004,
        ),
    ]
    return udp_conversation(client, DNS_SERVER, steps, start_ns=start_ns)


def http_get_steps(host: str) -> list[Step]:
    """Return curl's GET of ``/`` and a small HTML page in reply."""
    request = http.request(
        "GET",
        "/",
        [("Host", host), ("User-Agent", CURL_AGENT), ("Accept", "*/*")],
    )
    response = http.response(
        200,
        "OK",
        [("Content-Type", "text/html; charset=UTF-8"), ("Server", "nginx/1.24.0")],
        EXAMPLE_PAGE,
    )
    return [to_server(request), to_client(response)]


def tls_client_hello_step(rng: random.Random, server_name: str) -> Step:
    """Return a TLS 1.3 ClientHello naming ``server_name``."""
    hello = tls.client_hello(
        server_name, rng.randbytes(32), rng.randbytes(32), rng.randbytes(32)
    )
    return to_server(hello)


def http_jsonrpc_api_sample() -> SampleFile:
    client = Endpoint("172.17.0.20", 56000)
    server = Endpoint("192.0.2.90", 80)
    calls = [
        (
            {"username": "monitor", "password": "correct-horse"},
            "user.login",
            "0424bd59b807674191e7d77572075f33",
        ),
        (
            {"user": "monitor", "password": "correct-horse"},
            "login",
            {"token": "8c5f0a3e", "expires_in": 3600},
        ),
        (
            {
                "form": "incident",
                "title": "Disk usage above 90% on db-2",
                "priority": 2,
            },
            "submit",
            {"ticket": 4711},
        ),
    ]
    steps: list[Step] = []
    for request_id, (params, method, result) in enumerate(calls, start=1):
        body = jsonrpc.request(request_id, method, params, jsonrpc=True)
        headers = [
            ("Host", "monitoring.example.com"),
            ("User-Agent", "python-requests/2.32.3"),
            ("Content-Type", "application/json-rpc"),
        ]
        steps.append(to_server(http.request("POST", "/api_jsonrpc.php", headers, body)))
        reply = jsonrpc.response(request_id, result, include_error=False, jsonrpc=True)
        steps.append(
            to_client(
                http.response(200, "OK", [("Content-Type", "application/json")], reply)
            )
        )
    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    return pcap_sample(
        "negative-jsonrpc-http-api.pcap",
        "A monitoring API over HTTP with JSON-RPC methods user.login, login and"
        " submit carrying ordinary parameters.",
        packets,
    )


def tcp_jsonrpc_echo_sample() -> SampleFile:
    client = Endpoint("172.17.0.21", 56010)
    server = Endpoint("192.0.2.91", 7000)
    lines = [
        jsonrpc.request(
            1, "login", {"user": "alice", "password": "correct-horse"}, jsonrpc=True
        ),
        jsonrpc.request(
            2, "submit", {"text": "hello world", "priority": 2}, jsonrpc=True
        ),
        jsonrpc.request(3, "logout", {}, jsonrpc=True),
    ]
    steps: list[Step] = []
    for line in lines:
        steps.append(to_server(line, delay=1.0))
        # The service writes each line back unchanged.
        steps.append(to_client(line, delay=0.0005))
    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    return pcap_sample(
        "negative-jsonrpc-tcp-echo.pcap",
        "A newline-delimited JSON-RPC echo service on raw TCP port 7000 with"
        " login and submit methods carrying ordinary parameters.",
        packets,
    )


def ethereum_node_sample() -> SampleFile:
    rng = seeded("negative-ethereum-node-rpc")
    client = Endpoint("172.17.0.22", 56020)
    server = Endpoint("192.0.2.92", 8545)
    calls = [
        ("web3_clientVersion", [], "Geth/v1.14.12-stable/linux-amd64/go1.23.4"),
        ("eth_blockNumber", [], "0x1515a3f"),
        ("eth_getBalance", [wallets.ethereum(rng), "latest"], "0x1bc16d674ec80000"),
    ]
    steps: list[Step] = []
    for request_id, (method, params, result) in enumerate(calls, start=1):
        body = jsonrpc.encode_line(
            {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}
        )
        headers = [
            ("Host", f"{server.ip}:{server.port}"),
            ("User-Agent", "python-requests/2.32.3"),
            ("Content-Type", "application/json"),
        ]
        steps.append(to_server(http.request("POST", "/", headers, body), delay=0.5))
        reply = jsonrpc.encode_line(
            {"jsonrpc": "2.0", "id": request_id, "result": result}
        )
        steps.append(
            to_client(
                http.response(200, "OK", [("Content-Type", "application/json")], reply),
                delay=0.002,
            )
        )
    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    return pcap_sample(
        "negative-ethereum-node-rpc.pcap",
        "An Ethereum node's JSON-RPC API on port 8545: web3_clientVersion,"
        " eth_blockNumber and eth_getBalance.",
        packets,
    )


def bitcoin_p2p_sample() -> SampleFile:
    rng = seeded("negative-bitcoin-p2p")
    client = Endpoint("172.17.0.23", 56030)
    server = Endpoint("192.0.2.93", 8333)
    now = BASE_TIME_NS // 1_000_000_000

    def version(sender: Endpoint, receiver: Endpoint) -> bytes:
        return bitcoin_p2p.version(
            timestamp=now,
            receiver=(receiver.ip, receiver.port),
            sender=(sender.ip, sender.port),
            nonce=rng.getrandbits(64),
            user_agent="/Satoshi:28.1.0/",
            start_height=930000,
        )

    steps = [
        to_server(version(client, server)),
        to_client(version(server, client) + bitcoin_p2p.verack()),
        to_server(bitcoin_p2p.verack(), delay=0.001),
    ]
    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    return pcap_sample(
        "negative-bitcoin-p2p.pcap",
        "Two Bitcoin nodes exchange version and verack on port 8333.",
        packets,
    )


def monero_levin_sample() -> SampleFile:
    rng = seeded("negative-monero-levin")
    client = Endpoint("172.17.0.24", 56040)
    server = Endpoint("192.0.2.94", levin.MAINNET_P2P_PORT)
    top_id = rng.randbytes(32)
    steps = [
        to_server(
            levin.handshake(
                peer_id=rng.getrandbits(64),
                height=3_580_000,
                top_id=top_id,
                cumulative_difficulty=rng.getrandbits(63),
                is_response=False,
            )
        ),
        to_client(
            levin.handshake(
                peer_id=rng.getrandbits(64),
                height=3_580_001,
                top_id=rng.randbytes(32),
                cumulative_difficulty=rng.getrandbits(63),
                is_response=True,
            )
        ),
    ]
    packets = tcp_conversation(client, server, steps, start_ns=BASE_TIME_NS)
    return pcap_sample(
        "negative-monero-levin.pcap",
        "Two Monero nodes perform the levin handshake on port 18080.",
        packets,
    )


def http_get_sample() -> SampleFile:
    client = Endpoint("172.17.0.25", 56050)
    packets = tcp_conversation(
        client, WEB_SERVER, http_get_steps("www.example.com"), start_ns=BASE_TIME_NS
    )
    return pcap_sample(
        "negative-http-get.pcap",
        "curl fetches a small web page with a plain HTTP GET.",
        packets,
    )


def tls_client_hello_sample() -> SampleFile:
    rng = seeded("negative-tls-clienthello")
    client = Endpoint("172.17.0.26", 56060)
    server = Endpoint("192.0.2.96", 443)
    packets = tcp_conversation(
        client,
        server,
        [tls_client_hello_step(rng, "www.example.com")],
        start_ns=BASE_TIME_NS,
    )
    return pcap_sample(
        "negative-tls-clienthello.pcap",
        "A TLS 1.3 ClientHello to port 443 with the server name www.example.com.",
        packets,
    )


def dns_sample() -> SampleFile:
    client = Endpoint("172.17.0.27", 56070)
    packets = dns_lookup(
        client,
        "www.example.com",
        WEB_SERVER.ip,
        transaction_id=0x3A51,
        start_ns=BASE_TIME_NS,
    )
    return pcap_sample(
        "negative-dns.pcap",
        "A DNS query for www.example.com and its answer.",
        packets,
    )


def build() -> list[SampleFile]:
    return [
        http_jsonrpc_api_sample(),
        tcp_jsonrpc_echo_sample(),
        ethereum_node_sample(),
        bitcoin_p2p_sample(),
        monero_levin_sample(),
        http_get_sample(),
        tls_client_hello_sample(),
        dns_sample(),
    ]
