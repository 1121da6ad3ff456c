"""Monero Stratum relayed by proxies: a SOCKS5 proxy and an HTTP CONNECT
proxy. The proxy handshake names the pool; the Stratum session follows in
the tunnel, in plaintext.
"""

from __future__ import annotations

import dataclasses

from detector.trafficgen import wallets
from detector.trafficgen.conversation import (
    Endpoint,
    tcp_conversation,
    to_client,
    to_server,
)
from detector.trafficgen.messages import http, socks
from detector.trafficgen.samples.common import (
    SampleFile,
    pcap_sample,
    seconds,
    seeded,
)
from detector.trafficgen.samples.monero import (
    ACCEPTED,
    LOW_DIFFICULTY,
    xmrig_expected,
    xmrig_session,
)

SOCKS_PROXY = Endpoint("192.0.2.108", 1080)
# Squid's default port.
HTTP_PROXY = Endpoint("198.51.100.31", 3128)
SUPPORTXMR_HOST = "pool.supportxmr.com"
SUPPORTXMR_PORT = 3333
NANOPOOL_HOST = "xmr-eu1.nanopool.org"
NANOPOOL_PORT = 14444
# The address and port the SOCKS proxy binds for its upstream connection.
PROXY_BIND = ("192.0.2.108", 50412)


def socks5_sample() -> SampleFile:
    rng = seeded("socks5-stratum")
    client = Endpoint("172.17.0.33", 41900)
    session = xmrig_session(
        rng,
        wallets.monero(rng),
        rigid="proxied",
        shares=[[ACCEPTED], [LOW_DIFFICULTY, ACCEPTED]],
    )
    # xmrig waits for each reply before its next write.
    steps = [
        to_server(socks.greeting()),
        to_client(socks.method_selection()),
        to_server(socks.connect_by_name(SUPPORTXMR_HOST, SUPPORTXMR_PORT)),
        to_client(socks.reply(*PROXY_BIND), delay=0.06),
        *session.steps,
    ]
    packets = tcp_conversation(client, SOCKS_PROXY, steps, start_ns=seconds(0))
    expected = dataclasses.replace(
        xmrig_expected(client, SOCKS_PROXY, session, "proxied"),
        proxy_target=f"{SUPPORTXMR_HOST}:{SUPPORTXMR_PORT}",
        pool_host=SUPPORTXMR_HOST,
    )
    return pcap_sample(
        "socks5-stratum.pcap",
        "xmrig reaches pool.supportxmr.com:3333 through a SOCKS5 proxy that it asks"
        " by name, then runs a Monero session in the tunnel.",
        packets,
        [expected],
    )


def http_connect_sample() -> SampleFile:
    rng = seeded("http-connect-stratum")
    client = Endpoint("172.17.0.34", 42000)
    target = f"{NANOPOOL_HOST}:{NANOPOOL_PORT}"
    session = xmrig_session(
        rng, wallets.monero(rng), rigid=None, shares=[[ACCEPTED], [ACCEPTED]]
    )
    steps = [
        to_server(http.request("CONNECT", target, [("Host", target)])),
        to_client(http.response(200, "Connection established", []), delay=0.06),
        *session.steps,
    ]
    packets = tcp_conversation(client, HTTP_PROXY, steps, start_ns=seconds(0))
    expected = dataclasses.replace(
        xmrig_expected(client, HTTP_PROXY, session, None),
        proxy_target=target,
        pool_host=NANOPOOL_HOST,
    )
    return pcap_sample(
        "http-connect-stratum.pcap",
        "xmrig, wrapped by a tool such as proxychains, reaches"
        " xmr-eu1.nanopool.org:14444 through an HTTP proxy with CONNECT and runs"
        " a Monero session in the tunnel.",
        packets,
        [expected],
    )


def build() -> list[SampleFile]:
    return [socks5_sample(), http_connect_sample()]
