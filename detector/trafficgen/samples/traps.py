"""Traffic that looks like pool intelligence at a glance and must give no
finding at all, not even a low one.

- ``pool.ntp.org`` contains the label ``pool`` but is no mining pool.
- A CDN address that DNS also gave a pool's name serves an ordinary site.
- A port scan touches pool ports without any payload.
- A long TLS session downloads in bursts; its shape is not a miner's.
"""

from __future__ import annotations

import random

from scapy.layers.inet import IP, TCP

from detector.model import Direction
from detector.trafficgen.conversation import (
    HANDSHAKE_RTT_NS,
    HOP_LIMIT,
    IPV4_MSS,
    Endpoint,
    Step,
    TimedPacket,
    merge,
    tcp_conversation,
    to_client,
    to_server,
    udp_conversation,
)
from detector.trafficgen.messages import dns, ntp, tls
from detector.trafficgen.samples.common import (
    SampleFile,
    pcap_sample,
    seconds,
    seeded,
)
from detector.trafficgen.samples.negative import DNS_SERVER
from detector.trafficgen.samples.tls import sealed, tls13_session

# Captures that must give no finding. Their names do not start with
# "negative-" because each is a trap for one kind of pool intelligence.
TRAP_FILES = frozenset(
    {
        "dns-ntp-pool.pcap",
        "cdn-shared-address.pcap",
        "portscan-pool-ports.pcap",
        "long-tls-download.pcap",
    }
)

NTP_PORT = 123
# The four addresses a DNS response for an NTP pool name contains.
NTP_POOL_ANSWERS = {
    "1.debian.pool.ntp.org": (
        "192.0.2.123",
        "198.51.100.123",
        "203.0.113.123",
        "192.0.2.124",
    ),
    "0.pool.ntp.org": ("198.51.100.124", "203.0.113.124", "192.0.2.125", "192.0.2.126"),
}
# Seconds between NTP polls: 2**6, the default minimum poll interval.
NTP_POLL_SECONDS = 64.0
NTP_POLLS = 2

# Pool ports a scanner probes: xmrig's default, ethermine's, Bitcoin's P2P
# port, nanopool's Monero port and others from Falco's miner port list.
SCANNED_PORTS = (3333, 4444, 5555, 7777, 8333, 14444, 45700)
# nmap's SYN probes carry a 1024-byte window and one MSS option.
SCAN_WINDOW = 1024
SCAN_PROBE_GAP_NS = 500_000

# The long download: one request every two minutes for ten minutes, each
# answered by a burst of large records.
DOWNLOAD_BURST_SECONDS = 120.0
DOWNLOAD_RESPONSE_BYTES = (5_800, 4_300, 5_800, 2_900, 5_800, 4_300)
DOWNLOAD_REQUEST_BYTES = 210
# Linux acknowledges every second full-sized segment.
SEGMENTS_PER_ACK = 2
BULK_WRITE_GAP = 0.0001


def dns_ntp_pool_sample() -> SampleFile:
    client_ip = "172.17.0.40"
    conversations: list[list[TimedPacket]] = []
    for index, (name, addresses) in enumerate(NTP_POOL_ANSWERS.items()):
        transaction_id = 0x4E10 + index
        lookup = [
            to_server(dns.query(transaction_id, name)),
            to_client(dns.response(transaction_id, name, addresses), delay=0.004),
        ]
        conversations.append(
            udp_conversation(
                Endpoint(client_ip, 45001 + index),
                DNS_SERVER,
                lookup,
                start_ns=seconds(0.001 * index),
            )
        )
        server = Endpoint(addresses[0], NTP_PORT)
        client = Endpoint(client_ip, 51230 + index)
        conversations.append(
            udp_conversation(
                client, server, ntp_polls(index), start_ns=seconds(0.05 + 0.001 * index)
            )
        )
    return pcap_sample(
        "dns-ntp-pool.pcap",
        "DNS lookups of 1.debian.pool.ntp.org and 0.pool.ntp.org, then NTP"
        " requests and responses on UDP port 123 to one answered address of each.",
        merge(conversations),
    )


def ntp_polls(index: int) -> list[Step]:
    """Return ``NTP_POLLS`` request and response pairs, one poll interval apart."""
    steps: list[Step] = []
    for poll in range(NTP_POLLS):
        sent = seconds(0.05 + 0.001 * index + NTP_POLL_SECONDS * poll)
        request = ntp.client_request(sent)
        response = ntp.server_response(
            request,
            stratum=2,
            reference_id=bytes([192, 0, 2, 1]),
            reference_ns=sent - 300 * 1_000_000_000,
            receive_ns=sent + 15_000_000,
            transmit_ns=sent + 15_050_000,
        )
        steps.append(to_server(request, delay=NTP_POLL_SECONDS if poll else 0.0))
        steps.append(to_client(response, delay=0.03))
    return steps


def cdn_shared_address_sample() -> SampleFile:
    rng = seeded("cdn-shared-address")
    site = "www.cdn-customer.example"
    cdn = Endpoint("198.51.100.77", 443)
    resolver_client = Endpoint("172.17.0.41", 45101)
    client = Endpoint("172.17.0.41", 45102)
    # The answer maps a pool's name to the same address as the site: a CDN
    # address serves many names.
    lookup = [
        to_server(dns.query(0x5C01, site)),
        to_client(
            dns.response_records(
                0x5C01, site, [(site, cdn.ip), ("pool.supportxmr.com", cdn.ip)]
            ),
            delay=0.004,
        ),
    ]
    steps = browser_tls_steps(rng, site, [(DOWNLOAD_REQUEST_BYTES, 3_100)])
    packets = merge(
        [
            udp_conversation(resolver_client, DNS_SERVER, lookup, start_ns=seconds(0)),
            tcp_conversation(client, cdn, steps, start_ns=seconds(0.02)),
        ]
    )
    return pcap_sample(
        "cdn-shared-address.pcap",
        "A DNS answer maps www.cdn-customer.example and pool.supportxmr.com to one"
        " CDN address, then a short TLS session with the server name"
        " www.cdn-customer.example goes to that address.",
        packets,
    )


def browser_tls_steps(
    rng: random.Random,
    server_name: str,
    exchanges: list[tuple[int, int]],
    *,
    gap: float = 0.5,
) -> list[Step]:
    """Build a TLS 1.3 session of request and response sizes in plaintext
    bytes. Responses go out in writes of two segments, each acknowledged."""
    session_id = rng.randbytes(32)
    hello = tls.client_hello(
        server_name, rng.randbytes(32), session_id, rng.randbytes(32)
    )
    first_request, first_response = exchanges[0]
    steps = tls13_session(rng, hello, session_id, [to_server(bytes(first_request))])
    steps += bulk_steps(Direction.TO_CLIENT, sealed(rng, first_response))
    for request, response in exchanges[1:]:
        steps.append(to_server(sealed(rng, request), delay=gap))
        steps += bulk_steps(Direction.TO_CLIENT, sealed(rng, response))
    return steps


def bulk_steps(direction: Direction, data: bytes) -> list[Step]:
    """Cut ``data`` into writes of two full segments, so the receiver
    acknowledges every second segment as Linux does."""
    size = IPV4_MSS * SEGMENTS_PER_ACK
    return [
        Step(direction, data[offset : offset + size], delay=BULK_WRITE_GAP)
        for offset in range(0, len(data), size)
    ]


def portscan_sample() -> SampleFile:
    rng = seeded("portscan-pool-ports")
    scanner = Endpoint("172.17.0.42", 61532)
    target_ip = "203.0.113.70"
    ports = list(SCANNED_PORTS)
    # nmap probes ports in random order.
    rng.shuffle(ports)
    packets: list[TimedPacket] = []
    for index, port in enumerate(ports):
        sent = seconds(0) + index * SCAN_PROBE_GAP_NS
        sequence = rng.getrandbits(32)
        syn = IP(src=scanner.ip, dst=target_ip, ttl=HOP_LIMIT, id=rng.getrandbits(16))
        syn /= TCP(
            sport=scanner.port,
            dport=port,
            flags="S",
            seq=sequence,
            window=SCAN_WINDOW,
            options=[("MSS", IPV4_MSS)],
        )
        reset = IP(src=target_ip, dst=scanner.ip, ttl=HOP_LIMIT, id=0, flags="DF")
        reset /= TCP(
            sport=port,
            dport=scanner.port,
            flags="RA",
            seq=0,
            ack=(sequence + 1) % 2**32,
            window=0,
        )
        packets.append(TimedPacket(sent, Direction.TO_SERVER, scanner, syn))
        packets.append(
            TimedPacket(sent + HANDSHAKE_RTT_NS, Direction.TO_CLIENT, scanner, reset)
        )
    packets.sort(key=lambda packet: packet.timestamp_ns)
    return pcap_sample(
        "portscan-pool-ports.pcap",
        "A SYN scan of one host on seven mining pool ports, each answered by"
        " RST/ACK, with no payload.",
        packets,
    )


def long_tls_download_sample() -> SampleFile:
    rng = seeded("long-tls-download")
    client = Endpoint("172.17.0.43", 45300)
    server = Endpoint("192.0.2.43", 443)
    exchanges = [(DOWNLOAD_REQUEST_BYTES, size) for size in DOWNLOAD_RESPONSE_BYTES]
    steps = browser_tls_steps(
        rng, "www.example.com", exchanges, gap=DOWNLOAD_BURST_SECONDS
    )
    packets = tcp_conversation(client, server, steps, start_ns=seconds(0))
    return pcap_sample(
        "long-tls-download.pcap",
        "A ten-minute TLS session with the server name www.example.com that"
        " downloads a burst of large records every two minutes.",
        packets,
    )


def build() -> list[SampleFile]:
    samples = [
        dns_ntp_pool_sample(),
        cdn_shared_address_sample(),
        portscan_sample(),
        long_tls_download_sample(),
    ]
    names = {sample.name for sample in samples}
    if names != TRAP_FILES:
        raise ValueError(f"trap files {sorted(names)} differ from TRAP_FILES")
    return samples
