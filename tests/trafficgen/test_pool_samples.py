"""The pool-intelligence samples and traps contain the traffic their
descriptions promise: names where they must be, none where they must not.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from scapy.layers.dns import DNS
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.ntp import NTPHeader
from scapy.utils import PcapReader

from detector.protocols import (
    ClientHello,
    SocksConnect,
    SocksDecoder,
    TlsClientHelloDecoder,
    WebSocketDecoder,
    WebSocketText,
    parse_setup_connection,
    parse_webminer,
)
from detector.trafficgen.samples import proxies, stratum_v2, tls, traps, webminer
from detector.trafficgen.samples.common import SampleFile

Flow = tuple[str, int, str, int]


def packets_of(sample: SampleFile) -> list[Any]:
    with PcapReader(io.BytesIO(sample.content)) as reader:
        return list(reader)


def streams(sample: SampleFile) -> dict[Flow, bytes]:
    """Join the TCP payloads of each direction in capture order, which is
    stream order because these samples send no segment out of order or twice."""
    joined: dict[Flow, bytes] = defaultdict(bytes)
    for packet in packets_of(sample):
        if TCP in packet:
            segment = packet[TCP]
            key = (packet[IP].src, segment.sport, packet[IP].dst, segment.dport)
            joined[key] += bytes(segment.payload)
    return dict(joined)


def client_hello(stream: bytes) -> ClientHello:
    events = TlsClientHelloDecoder().feed(stream)
    hellos = [event for event in events if isinstance(event, ClientHello)]
    assert len(hellos) == 1, events
    return hellos[0]


def client_payloads(sample: SampleFile, client_ip: str) -> list[bytes]:
    return [
        bytes(packet[TCP].payload)
        for packet in packets_of(sample)
        if TCP in packet and packet[IP].src == client_ip and bytes(packet[TCP].payload)
    ]


def dns_messages(sample: SampleFile) -> list[Any]:
    return [
        DNS(bytes(packet[UDP].payload))
        for packet in packets_of(sample)
        if UDP in packet and 53 in (packet[UDP].sport, packet[UDP].dport)
    ]


def duration(sample: SampleFile) -> float:
    times = [float(packet.time) for packet in packets_of(sample)]
    return max(times) - min(times)


@pytest.fixture(scope="module")
def built() -> dict[str, SampleFile]:
    builders: list[Callable[[], list[SampleFile]]] = [
        tls.build,
        proxies.build,
        webminer.build,
        stratum_v2.build,
        traps.build,
    ]
    return {sample.name: sample for build in builders for sample in build()}


# -- names in plain sight -----------------------------------------------------


def test_dns_then_tls_hello_has_no_name(built: dict[str, SampleFile]) -> None:
    sample = built["dns-then-tls.pcap"]
    answers = [message for message in dns_messages(sample) if message.qr == 1]
    assert len(answers) == 1
    assert answers[0].qd[0].qname == b"pool.supportxmr.com."
    assert answers[0].an[0].ttl == 300
    address = answers[0].an[0].rdata
    tls_streams = {key: data for key, data in streams(sample).items() if key[3] == 443}
    assert len(tls_streams) == 1
    (client, _, server, _), data = next(iter(tls_streams.items()))
    assert server == address
    assert client_hello(data).server_name is None


def test_split_hello_spans_records_and_segments(
    built: dict[str, SampleFile],
) -> None:
    sample = built["tls-sni-split.pcap"]
    payloads = client_payloads(sample, "172.17.0.31")
    hello_segments = payloads[:3]
    name = b"pool.supportxmr.com"
    for segment in hello_segments:
        assert name not in segment
    hello_bytes = b"".join(hello_segments)
    # Two handshake records, and the name is cut by the second's header.
    assert hello_bytes.count(b"\x16\x03\x01") == 2
    assert name not in hello_bytes
    assert client_hello(hello_bytes).server_name == "pool.supportxmr.com"
    assert payloads[3][:6] == b"\x14\x03\x03\x00\x01\x01"


def test_donate_hello_names_donate_host(built: dict[str, SampleFile]) -> None:
    sample = built["xmrig-donate-tls.pcap"]
    (data,) = [data for key, data in streams(sample).items() if key[3] == 443]
    hello = client_hello(data)
    assert hello.server_name == "donate.ssl.xmrig.com"
    assert hello.alpn == ()


def test_socks5_asks_for_pool_by_name(built: dict[str, SampleFile]) -> None:
    sample = built["socks5-stratum.pcap"]
    payloads = client_payloads(sample, "172.17.0.33")
    assert payloads[0] == b"\x05\x01\x00"
    events = SocksDecoder().feed(b"".join(payloads[:2]))
    assert events == [SocksConnect(5, "pool.supportxmr.com", 3333, by_name=True)]
    assert payloads[2].startswith(b'{"id":1,"jsonrpc":"2.0","method":"login"')


def test_http_connect_then_stratum(built: dict[str, SampleFile]) -> None:
    sample = built["http-connect-stratum.pcap"]
    payloads = client_payloads(sample, "172.17.0.34")
    assert payloads[0].startswith(b"CONNECT xmr-eu1.nanopool.org:14444 HTTP/1.1\r\n")
    assert payloads[1].startswith(b'{"id":1,')
    server_stream = [
        data for key, data in streams(sample).items() if key[0] == "198.51.100.31"
    ][0]
    assert server_stream.startswith(b"HTTP/1.1 200 Connection established\r\n\r\n{")


def test_webminer_frames_carry_coinhive(built: dict[str, SampleFile]) -> None:
    sample = built["webminer-websocket.pcap"]
    flows = streams(sample)
    upstream = flows[("172.17.0.35", 42102, "203.0.113.50", 80)]
    downstream = flows[("203.0.113.50", 80, "172.17.0.35", 42102)]
    assert b"\r\nHost: ws005.coinhive.com\r\n" in upstream
    assert downstream.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    kinds = []
    for data, masked in ((upstream, True), (downstream, False)):
        frames = data[data.index(b"\r\n\r\n") + 4 :]
        events = WebSocketDecoder(masked_expected=masked).feed(frames)
        assert all(isinstance(event, WebSocketText) for event in events)
        kinds += [parse_webminer(event.text).kind for event in events]
    assert sorted(kinds) == sorted(
        ["auth", "submit", "submit", "authed", "job", "job"]
        + ["hash_accepted", "hash_accepted"]
    )
    page = flows[("172.17.0.35", 42100, "192.0.2.81", 80)]
    assert b"coinhive" not in page.lower()


def test_sv2_setup_names_endpoint(built: dict[str, SampleFile]) -> None:
    sample = built["sv2-setup.pcap"]
    (first, reply) = [
        bytes(packet[TCP].payload)
        for packet in packets_of(sample)
        if TCP in packet and bytes(packet[TCP].payload)
    ]
    setup = parse_setup_connection(first)
    assert setup is not None
    assert setup.endpoint_host == "eu.stratum.braiins.com"
    assert setup.frame_length == len(first)
    assert reply[2] == 0x01


# -- traps --------------------------------------------------------------------


def test_ntp_pool_lookups_then_ntp(built: dict[str, SampleFile]) -> None:
    sample = built["dns-ntp-pool.pcap"]
    questions = {
        message.qd[0].qname for message in dns_messages(sample) if message.qr == 0
    }
    assert questions == {b"1.debian.pool.ntp.org.", b"0.pool.ntp.org."}
    answered = {
        record.rdata
        for message in dns_messages(sample)
        if message.qr == 1
        for record in message.an
    }
    ntp_packets = [
        packet
        for packet in packets_of(sample)
        if UDP in packet and traps.NTP_PORT in (packet[UDP].sport, packet[UDP].dport)
    ]
    assert len(ntp_packets) == 8
    for packet in ntp_packets:
        header = NTPHeader(bytes(packet[UDP].payload))
        assert header.version == 4
        server = packet[IP].dst if packet[UDP].dport == 123 else packet[IP].src
        assert server in answered


def test_cdn_answer_shares_address(built: dict[str, SampleFile]) -> None:
    sample = built["cdn-shared-address.pcap"]
    (answer,) = [message for message in dns_messages(sample) if message.qr == 1]
    owners = {answer.an[index].rrname: answer.an[index].rdata for index in range(2)}
    assert owners == {
        b"www.cdn-customer.example.": "198.51.100.77",
        b"pool.supportxmr.com.": "198.51.100.77",
    }
    (data,) = [data for key, data in streams(sample).items() if key[3] == 443]
    assert client_hello(data).server_name == "www.cdn-customer.example"
    # Shorter than the behavioural score's minimum of two minutes.
    assert duration(sample) < 120


def test_portscan_has_no_payload(built: dict[str, SampleFile]) -> None:
    sample = built["portscan-pool-ports.pcap"]
    probes = {}
    resets = {}
    for packet in packets_of(sample):
        segment = packet[TCP]
        assert bytes(segment.payload) == b""
        if segment.flags == "S":
            probes[segment.dport] = segment.seq
        else:
            assert segment.flags == "RA"
            resets[segment.sport] = segment.ack
    assert set(probes) == set(traps.SCANNED_PORTS)
    assert set(resets) == set(probes)
    for port, sequence in probes.items():
        assert resets[port] == (sequence + 1) % 2**32, port


def test_long_download_lasts_ten_minutes(built: dict[str, SampleFile]) -> None:
    sample = built["long-tls-download.pcap"]
    assert duration(sample) >= 600
    flows = streams(sample)
    upstream = flows[("172.17.0.43", 45300, "192.0.2.43", 443)]
    assert client_hello(upstream).server_name == "www.example.com"
    sizes = [
        len(bytes(packet[TCP].payload))
        for packet in packets_of(sample)
        if packet[IP].src == "192.0.2.43"
    ]
    full = [size for size in sizes if size == 1460]
    # Bulk bursts fill segments, so most of the server's payload is in them.
    assert len(full) >= 15
    assert sum(full) > sum(sizes) / 2
