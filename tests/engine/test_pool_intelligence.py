"""The inspector names the pool behind proxies, tunnels, WebSockets and DNS."""

from __future__ import annotations

import json
import struct

from detector.engine.context import InspectionContext
from detector.engine.inspector import FlowInspector
from detector.flows.reassembly import StreamData
from detector.model import Confidence, Direction, FlowCounters, FlowKey

UP = Direction.TO_SERVER
DOWN = Direction.TO_CLIENT
H64 = "ab" * 32
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
WALLET = "4A" + (BASE58 * 2)[:93]
DATA_BOTH_WAYS = FlowCounters(10, 10, 1000, 1000)


def line(message) -> bytes:
    return json.dumps(message).encode() + b"\n"


def login() -> bytes:
    return line(
        {
            "id": 1,
            "method": "login",
            "params": {
                "login": WALLET,
                "pass": "x",
                "agent": "XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0",
                "algo": ["rx/0"],
            },
        }
    )


def feed(inspector, steps):
    for number, (direction, data) in enumerate(steps):
        inspector.feed(direction, [StreamData(data, 0)], float(number))
    inspector.finish(float(len(steps)))


def verdict(inspector, counters=DATA_BOTH_WAYS):
    return inspector.detection("t.pcap", 0.0, 10.0, counters, False)


def test_socks5_by_name_then_stratum(signatures):
    key = FlowKey("tcp", "172.17.0.2", 40000, "192.0.2.80", 1080)
    inspector = FlowInspector(signatures, key)
    host = b"pool.supportxmr.com"
    connect = b"\x05\x01\x00\x03" + bytes([len(host)]) + host + struct.pack("!H", 3333)
    feed(
        inspector,
        [
            (UP, b"\x05\x01\x00"),
            (DOWN, b"\x05\x00"),
            (UP, connect + login()),
            (DOWN, b"\x05\x00\x00\x01\xc0\x00\x02\x50\x0d\x05"),
        ],
    )
    detection = verdict(inspector)
    assert detection is not None
    assert detection.confidence is Confidence.HIGH
    assert detection.mining.dialect == "monero"
    assert detection.mining.proxy_target == "pool.supportxmr.com:3333"
    assert "socks.target" in {item.kind for item in detection.evidence}


def test_http_connect_then_stratum(signatures):
    key = FlowKey("tcp", "172.17.0.2", 40001, "192.0.2.81", 3128)
    inspector = FlowInspector(signatures, key)
    feed(
        inspector,
        [
            (
                UP,
                b"CONNECT xmr-eu1.nanopool.org:14444 HTTP/1.1\r\n"
                b"Host: xmr-eu1.nanopool.org:14444\r\n\r\n",
            ),
            (DOWN, b"HTTP/1.1 200 Connection established\r\n\r\n"),
            (UP, login()),
        ],
    )
    detection = verdict(inspector)
    assert detection is not None
    assert detection.mining.dialect == "monero"
    assert detection.mining.proxy_target == "xmr-eu1.nanopool.org:14444"


def ws_frame(text: str, mask: bytes | None) -> bytes:
    payload = text.encode()
    header = bytes([0x81, (0x80 if mask else 0) | len(payload)])
    if mask is None:
        return header + payload
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + masked


def test_websocket_webminer(signatures):
    key = FlowKey("tcp", "172.17.0.3", 40002, "198.51.100.9", 80)
    inspector = FlowInspector(signatures, key)
    upgrade = (
        b"GET /proxy HTTP/1.1\r\nHost: ws1.coinhive.com\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    switched = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\n\r\n"
    )
    auth = json.dumps(
        {
            "type": "auth",
            "params": {"site_key": "k" * 32, "type": "anonymous", "user": None},
        }
    )
    job = json.dumps(
        {
            "type": "job",
            "params": {"job_id": "1", "blob": "07" * 76, "target": "ffffff00"},
        }
    )
    feed(
        inspector,
        [
            (UP, upgrade),
            (DOWN, switched),
            (UP, ws_frame(auth, b"\x01\x02\x03\x04")),
            (DOWN, ws_frame(job, None)),
        ],
    )
    detection = verdict(inspector)
    assert detection is not None
    assert detection.mining.dialect == "webminer"
    assert detection.confidence is Confidence.HIGH


def test_tls_sni_names_listed_pool(signatures):
    from detector.trafficgen.messages.tls import client_hello

    key = FlowKey("tcp", "172.17.0.4", 40003, "203.0.113.20", 443)
    inspector = FlowInspector(signatures, key)
    hello = client_hello("pool.supportxmr.com", bytes(32), bytes(32), bytes(32))
    feed(inspector, [(UP, hello[:40]), (UP, hello[40:])])
    detection = verdict(inspector)
    assert detection is not None
    assert detection.confidence is Confidence.MEDIUM
    assert detection.mining.dialect == "tls"
    assert detection.mining.tls_server_name == "pool.supportxmr.com"
    assert detection.mining.ja4


def test_tls_sni_without_data_back_not_reported(signatures):
    from detector.trafficgen.messages.tls import client_hello

    key = FlowKey("tcp", "172.17.0.4", 40004, "203.0.113.20", 443)
    inspector = FlowInspector(signatures, key)
    feed(
        inspector,
        [(UP, client_hello("pool.supportxmr.com", bytes(32), bytes(32), bytes(32)))],
    )
    assert verdict(inspector, FlowCounters(1, 0, 300, 0)) is None


def test_tls_ordinary_site_not_reported(signatures):
    from detector.trafficgen.messages.tls import client_hello

    key = FlowKey("tcp", "172.17.0.4", 40005, "203.0.113.21", 443)
    inspector = FlowInspector(signatures, key)
    feed(
        inspector,
        [(UP, client_hello("www.example.com", bytes(32), bytes(32), bytes(32)))],
    )
    assert verdict(inspector) is None


def dns_answer(name: str, address: str, ttl: int = 300) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    header = struct.pack("!HHHHHH", 0x1234, 0x8180, 1, 1, 0, 0)
    question = labels + struct.pack("!HH", 1, 1)
    answer = (
        b"\xc0\x0c"
        + struct.pack("!HHIH", 1, 1, ttl, 4)
        + bytes(int(part) for part in address.split("."))
    )
    return header + question + answer


def test_dns_answer_names_later_flow(signatures):
    context = InspectionContext()
    dns_key = FlowKey("udp", "172.17.0.5", 53000, "192.0.2.53", 53)
    dns = FlowInspector(signatures, dns_key, context)
    dns.feed_datagram(DOWN, dns_answer("pool.supportxmr.com", "203.0.113.30"), 1.0)
    query = dns.detection("t.pcap", 1.0, 1.0, FlowCounters(1, 1, 40, 60), False)
    assert query is not None
    assert query.mining.dialect == "dns"
    assert query.confidence is Confidence.MEDIUM

    tls_key = FlowKey("tcp", "172.17.0.5", 40006, "203.0.113.30", 443)
    tls = FlowInspector(signatures, tls_key, context)
    tls.feed(UP, [StreamData(b"\x17\x03\x03\x00\x10" + bytes(16), 0)], 2.0)
    detection = tls.detection("t.pcap", 2.0, 30.0, DATA_BOTH_WAYS, False)
    assert detection is not None
    assert detection.confidence is Confidence.MEDIUM
    assert "dns.pool_address" in {item.kind for item in detection.evidence}
    assert detection.session_id == query.session_id


def test_ntp_pool_query_not_a_finding(signatures):
    key = FlowKey("udp", "172.17.0.5", 53001, "192.0.2.53", 53)
    inspector = FlowInspector(signatures, key)
    inspector.feed_datagram(DOWN, dns_answer("1.debian.pool.ntp.org", "192.0.2.9"), 1.0)
    assert inspector.detection("t", 1.0, 1.0, FlowCounters(1, 1, 40, 60), False) is None


def test_sv2_setup_connection(signatures):
    host = b"pool.example"
    payload = (
        bytes([0])
        + struct.pack("<HHI", 2, 2, 0)
        + bytes([len(host)])
        + host
        + struct.pack("<H", 34254)
        + b"\x06vendor"
        + b"\x02hw"
        + b"\x02fw"
        + b"\x03dev"
    )
    frame = struct.pack("<HB", 0, 0) + len(payload).to_bytes(3, "little") + payload
    key = FlowKey("tcp", "172.17.0.6", 40007, "192.0.2.90", 34254)
    inspector = FlowInspector(signatures, key)
    feed(inspector, [(UP, frame)])
    detection = verdict(inspector)
    assert detection is not None
    assert detection.mining.dialect == "stratum-v2"
    assert detection.confidence is Confidence.HIGH
