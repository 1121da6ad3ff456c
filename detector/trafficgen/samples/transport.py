"""Transport and capture-format variants of a Monero session.

The segmentation samples check that the detector reassembles streams: a login
cut into tiny segments, many lines in one segment, and segments reordered or
sent twice. The encapsulation samples carry the same kind of session over
IPv6, VLAN tags, Linux cooked headers, raw IP, pcapng, nanosecond and
big-endian pcap, and gzip.
"""

from __future__ import annotations

import dataclasses
import random

from detector.trafficgen import wallets
from detector.trafficgen.conversation import (
    Endpoint,
    TimedPacket,
    tcp_conversation,
    to_client,
    to_server,
)
from detector.trafficgen.links import (
    Ethernet,
    LinkLayer,
    LinuxCooked,
    LinuxCookedV2,
    RawIP,
)
from detector.trafficgen.messages import monero
from detector.trafficgen.samples.common import (
    BASE_TIME_NS,
    MONERO,
    XMRIG_AGENT,
    ExpectedFlow,
    SampleFile,
    pcap_sample,
    random_hex,
    seconds,
    seeded,
)
from detector.trafficgen.samples.monero import (
    ACCEPTED,
    ALGORITHM,
    HEIGHT,
    make_job,
    xmrig_expected,
    xmrig_session,
)
from detector.trafficgen.writers import Interface, Record, encode_pcapng, gzip_compress

# Tiny segments of 1 to 7 bytes, as a hostile or broken sender might produce.
MIN_TINY_SEGMENT = 1
MAX_TINY_SEGMENT = 7

POOL = Endpoint("203.0.113.11", 3333)
POOL_IPV6 = Endpoint("2001:db8:2::11", 3333)
# Docker's documentation example for a container IPv6 subnet.
CONTAINER_IPV6 = Endpoint("2001:db8:1::242:ac11:2", 43512)
CONTAINER = Endpoint("172.17.0.2", 43510)
# VLAN ids: 802.1Q customer tag, and the 802.1ad service tag outside it.
CUSTOMER_VLAN = 100
SERVICE_VLAN = 200


def tiny_segment_sizes(rng: random.Random, total: int) -> tuple[int, ...]:
    """Cut ``total`` bytes into sizes between 1 and 7 that add up exactly."""
    sizes: list[int] = []
    remaining = total
    while remaining:
        size = min(rng.randint(MIN_TINY_SEGMENT, MAX_TINY_SEGMENT), remaining)
        sizes.append(size)
        remaining -= size
    return tuple(sizes)


def split_login_sample() -> SampleFile:
    rng = seeded("monero-split-login")
    client = Endpoint("172.17.0.15", 40001)
    session = xmrig_session(
        rng, wallets.monero(rng), rigid=None, shares=[[ACCEPTED], [ACCEPTED]]
    )
    login = session.steps[0]
    session.steps[0] = dataclasses.replace(
        login, segment_sizes=tiny_segment_sizes(rng, len(login.data))
    )
    packets = tcp_conversation(client, POOL, session.steps, start_ns=BASE_TIME_NS)
    return pcap_sample(
        "monero-split-login.pcap",
        "An xmrig login line cut into TCP segments of 1 to 7 bytes, followed by"
        " an ordinary Monero session.",
        packets,
        [xmrig_expected(client, POOL, session, None)],
    )


def coalesced_lines_sample() -> SampleFile:
    rng = seeded("monero-coalesced-lines")
    client = Endpoint("172.17.0.16", 40002)
    wallet = wallets.monero(rng)
    session_id = random_hex(rng, 8)
    seed_hash = random_hex(rng, 32)
    jobs = [make_job(rng, HEIGHT + index, seed_hash) for index in range(3)]

    submits = b""
    results = b""
    for request_id, job in enumerate(jobs, start=2):
        submits += monero.submit(
            session_id,
            job.job_id,
            random_hex(rng, 4),
            random_hex(rng, 28) + "00000000",
            request_id=request_id,
        )
        results += monero.status_result(request_id)
    keepalive_id = len(jobs) + 2
    submits += monero.keepalived(session_id, request_id=keepalive_id)
    results += monero.status_result(keepalive_id, "KEEPALIVED")

    pool_write = (
        monero.login_result(session_id, jobs[0])
        + monero.job_notification(jobs[1])
        + monero.job_notification(jobs[2])
    )
    steps = [
        to_server(monero.xmrig_login(wallet, XMRIG_AGENT, rigid="rig09")),
        # The pool sends the login result and two job pushes in one write.
        to_client(pool_write),
        # The miner flushes three shares and a keepalived in one write.
        to_server(submits, delay=20.0),
        to_client(results),
    ]

    packets = tcp_conversation(client, POOL, steps, start_ns=BASE_TIME_NS)
    expected = ExpectedFlow(
        client=client,
        server=POOL,
        dialect=MONERO,
        agent=XMRIG_AGENT,
        miner_family="xmrig",
        wallet_coin="monero",
        worker="rig09",
        algorithm=ALGORITHM,
        shares_submitted=3,
        shares_accepted=3,
        shares_rejected=0,
        jobs=3,
    )
    return pcap_sample(
        "monero-coalesced-lines.pcap",
        "A Monero session where the pool sends its login result and two jobs in one"
        " segment and the miner sends three submits and keepalived in another.",
        packets,
        [expected],
    )


def reordered_sample() -> SampleFile:
    rng = seeded("monero-reordered-retransmitted")
    client = Endpoint("172.17.0.17", 40003)
    session = xmrig_session(
        rng, wallets.monero(rng), rigid=None, shares=[[ACCEPTED, ACCEPTED]]
    )
    login, result = session.steps[0], session.steps[1]
    third = len(login.data) // 3
    # Login: three segments on the wire as 0, 2, 1, then segment 1 again.
    session.steps[0] = dataclasses.replace(
        login, segment_sizes=(third, third), send_order=(0, 2, 1), retransmit=(1,)
    )
    # Login result: two segments in reverse order, then segment 0 again.
    half = len(result.data) // 2
    session.steps[1] = dataclasses.replace(
        result, segment_sizes=(half,), send_order=(1, 0), retransmit=(0,)
    )
    packets = tcp_conversation(client, POOL, session.steps, start_ns=BASE_TIME_NS)
    return pcap_sample(
        "monero-reordered-retransmitted.pcap",
        "A Monero session whose login and login result arrive with segments out of"
        " order and one segment of each retransmitted with the same bytes.",
        packets,
        [xmrig_expected(client, POOL, session, None)],
    )


def _encapsulated_session(
    name: str, client: Endpoint, server: Endpoint, start_ns: int
) -> tuple[ExpectedFlow, list[TimedPacket]]:
    """Build a short xmrig session (two jobs, two shares) seeded by ``name``."""
    rng = seeded(name)
    session = xmrig_session(
        rng, wallets.monero(rng), rigid=None, shares=[[ACCEPTED], [ACCEPTED]]
    )
    packets = tcp_conversation(client, server, session.steps, start_ns=start_ns)
    return xmrig_expected(client, server, session, None), packets


ENCAPSULATIONS: tuple[tuple[str, str, LinkLayer], ...] = (
    (
        "monero-vlan.pcap",
        "A Monero session on Ethernet with an 802.1Q VLAN tag.",
        Ethernet(vlan_ids=(CUSTOMER_VLAN,)),
    ),
    (
        "monero-qinq.pcap",
        "A Monero session on Ethernet with QinQ tags: an 802.1ad service tag"
        " (0x88a8) outside an 802.1Q tag.",
        Ethernet(vlan_ids=(SERVICE_VLAN, CUSTOMER_VLAN)),
    ),
    (
        "monero-sll.pcap",
        "A Monero session captured on Linux's any device with cooked headers (SLL).",
        LinuxCooked(),
    ),
    (
        "monero-sll2.pcap",
        "A Monero session captured with Linux cooked headers version 2 (SLL2).",
        LinuxCookedV2(),
    ),
    (
        "monero-raw-ip.pcap",
        "A Monero session captured on a tun interface: raw IPv4 with no link header.",
        RawIP(),
    ),
)


def encapsulation_samples() -> list[SampleFile]:
    expected, packets = _encapsulated_session(
        "monero-encapsulated", CONTAINER, POOL, BASE_TIME_NS
    )
    samples = [
        pcap_sample(name, description, packets, [expected], link=link)
        for name, description, link in ENCAPSULATIONS
    ]

    expected_v6, packets_v6 = _encapsulated_session(
        "monero-ipv6", CONTAINER_IPV6, POOL_IPV6, BASE_TIME_NS
    )
    samples.append(
        pcap_sample(
            "monero-ipv6.pcap",
            "A Monero session over IPv6 on Ethernet.",
            packets_v6,
            [expected_v6],
        )
    )

    # Odd nanoseconds, so a reader that drops the sub-microsecond part shows.
    expected_ns, packets_ns = _encapsulated_session(
        "monero-encapsulated", CONTAINER, POOL, BASE_TIME_NS + 417
    )
    samples.append(
        pcap_sample(
            "monero-nanosecond.pcap",
            "A Monero session in a pcap file with nanosecond timestamps.",
            packets_ns,
            [expected_ns],
            nanosecond=True,
        )
    )
    samples.append(
        pcap_sample(
            "monero-big-endian.pcap",
            "A Monero session in a big-endian pcap file, as written on a"
            " big-endian host.",
            packets,
            [expected],
            big_endian=True,
        )
    )

    plain = pcap_sample("monero-gzip.pcap", "", packets, [expected])
    samples.append(
        SampleFile(
            "monero-gzip.pcap.gz",
            "A Monero session in a gzip-compressed pcap file.",
            gzip_compress(plain.content),
            plain.packets,
            plain.expected,
        )
    )
    samples.append(two_interfaces_sample())
    return samples


def two_interfaces_sample() -> SampleFile:
    bridge_expected, bridge_packets = _encapsulated_session(
        "monero-encapsulated", CONTAINER, POOL, BASE_TIME_NS
    )
    tunnel_client = Endpoint("10.8.0.2", 43520)
    tunnel_server = Endpoint("203.0.113.12", 3333)
    tunnel_expected, tunnel_packets = _encapsulated_session(
        "monero-tunnel", tunnel_client, tunnel_server, seconds(0.5) + 251
    )
    interfaces = [
        Interface(linktype=Ethernet().linktype, name="docker0"),
        Interface(linktype=RawIP().linktype, name="tun0", timestamp_exponent=9),
    ]
    records = [
        Record(packet.timestamp_ns, Ethernet().frame(packet), 0)
        for packet in bridge_packets
    ] + [
        Record(packet.timestamp_ns, RawIP().frame(packet), 1)
        for packet in tunnel_packets
    ]
    records.sort(key=lambda record: record.timestamp_ns)
    return SampleFile(
        "monero-two-interfaces.pcapng",
        "Two Monero sessions in one pcapng file: one on an Ethernet interface with"
        " microsecond timestamps, one on a raw-IP tun interface with nanosecond"
        " timestamps.",
        encode_pcapng(interfaces, records),
        len(records),
        (bridge_expected, tunnel_expected),
    )


def build() -> list[SampleFile]:
    return [
        split_login_sample(),
        coalesced_lines_sample(),
        reordered_sample(),
        *encapsulation_samples(),
    ]
