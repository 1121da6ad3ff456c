"""Mining over TLS, where no Stratum message can be read and only names tell
the pool: a server name (SNI) in the ClientHello, or a DNS answer for the
server's address.

Encrypted records carry random bytes. Their lengths are those of the
plaintext they stand for, so the flow keeps the shape of the session inside.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

from detector.model import Direction
from detector.trafficgen import wallets
from detector.trafficgen.conversation import (
    Endpoint,
    Step,
    merge,
    tcp_conversation,
    to_client,
    to_server,
)
from detector.trafficgen.messages import tls
from detector.trafficgen.samples.common import (
    DNS,
    MEDIUM,
    TLS,
    ExpectedFlow,
    SampleFile,
    pcap_sample,
    seconds,
    seeded,
)
from detector.trafficgen.samples.monero import ACCEPTED, xmrig_session
from detector.trafficgen.samples.negative import DNS_SERVER, dns_lookup

# Plaintext sizes of the encrypted part of a TLS 1.3 handshake, estimated for
# a pool with an ECDSA certificate and one intermediate: EncryptedExtensions,
# Certificate (about 1 KB per certificate), CertificateVerify and Finished.
SERVER_HANDSHAKE_BYTES = 2_300
# The client's Finished: a 4-byte header and a SHA-384 MAC, because the
# server picks TLS_AES_256_GCM_SHA384.
CLIENT_FINISHED_BYTES = 4 + 48
# OpenSSL 1.1.1 servers send two NewSessionTicket messages after the
# handshake, each about this long.
SESSION_TICKET_BYTES = 250
SESSION_TICKETS = 2

SUPPORTXMR = "pool.supportxmr.com"
XMRIG_DONATE_TLS = "donate.ssl.xmrig.com"
HTTPS_PORT = 443


def sealed(rng: random.Random, plaintext_length: int) -> bytes:
    """Return application data records that stand for ``plaintext_length``
    bytes: random ciphertext with the TLS 1.3 overhead, 16 KiB per record."""
    out = b""
    remaining = plaintext_length
    while True:
        chunk = min(remaining, tls.MAX_PLAINTEXT_BYTES)
        out += tls.application_data(rng.randbytes(chunk + tls.AEAD_OVERHEAD))
        remaining -= chunk
        if remaining <= 0:
            return out


def encrypted(rng: random.Random, steps: Sequence[Step]) -> list[Step]:
    """Replace the data of each step by records of the same plaintext length,
    keeping direction and timing."""
    return [
        dataclasses.replace(step, data=sealed(rng, len(step.data))) for step in steps
    ]


def tls13_session(
    rng: random.Random,
    hello: bytes,
    session_id: bytes,
    application: Sequence[Step],
    *,
    hello_segment_sizes: tuple[int, ...] = (),
) -> list[Step]:
    """Build a TLS 1.3 session: ``hello`` (one or more records), the server's
    flight, then ``application`` steps sealed in records.

    The client's Finished goes out with its first application write, as
    OpenSSL's memory BIOs in xmrig flush them together. ``application`` must
    start with a client write. Raises ValueError otherwise.
    """
    if not application or application[0].direction is not Direction.TO_SERVER:
        raise ValueError("the application data must start with a client write")
    server_flight = (
        tls.server_hello(rng.randbytes(32), session_id, rng.randbytes(32))
        + tls.change_cipher_spec()
        + sealed(rng, SERVER_HANDSHAKE_BYTES)
    )
    first, *rest = encrypted(rng, application)
    finished = tls.change_cipher_spec() + sealed(rng, CLIENT_FINISHED_BYTES)
    tickets = b"".join(
        sealed(rng, SESSION_TICKET_BYTES) for _ in range(SESSION_TICKETS)
    )
    return [
        to_server(hello, segment_sizes=hello_segment_sizes),
        to_client(server_flight),
        dataclasses.replace(first, data=finished + first.data),
        to_client(tickets, delay=0.002),
        *rest,
    ]


def xmrig_hello(rng: random.Random, server_name: str | None) -> tuple[bytes, bytes]:
    """Return the handshake message of xmrig's ClientHello and its session id."""
    session_id = rng.randbytes(32)
    message = tls.client_hello_message(
        server_name,
        rng.randbytes(32),
        session_id,
        rng.randbytes(32),
        profile=tls.OPENSSL_1_1_1,
    )
    return message, session_id


def xmrig_tls_steps(rng: random.Random, server_name: str | None) -> list[Step]:
    """Build an xmrig session over TLS: two jobs and two accepted shares."""
    message, session_id = xmrig_hello(rng, server_name)
    hello = tls.record(tls.RECORD_HANDSHAKE, message, version=tls.RECORD_VERSION)
    session = xmrig_session(
        rng, wallets.monero(rng), rigid=None, shares=[[ACCEPTED], [ACCEPTED]]
    )
    return tls13_session(rng, hello, session_id, session.steps)


def dns_then_tls_sample() -> SampleFile:
    rng = seeded("dns-then-tls")
    resolver_client = Endpoint("172.17.0.30", 38411)
    client = Endpoint("172.17.0.30", 41620)
    pool = Endpoint("203.0.113.30", HTTPS_PORT)
    packets = merge(
        [
            dns_lookup(
                resolver_client,
                SUPPORTXMR,
                pool.ip,
                transaction_id=0x7A41,
                start_ns=seconds(0),
            ),
            tcp_conversation(
                client, pool, xmrig_tls_steps(rng, None), start_ns=seconds(0.02)
            ),
        ]
    )
    expected = [
        ExpectedFlow(
            client=resolver_client,
            server=DNS_SERVER,
            dialect=DNS,
            pool_host=SUPPORTXMR,
            confidence=MEDIUM,
        ),
        ExpectedFlow(
            client=client,
            server=pool,
            dialect=TLS,
            pool_host=SUPPORTXMR,
            confidence=MEDIUM,
        ),
    ]
    return pcap_sample(
        "dns-then-tls.pcap",
        "xmrig resolves pool.supportxmr.com by DNS, then mines over TLS on port 443"
        " with no server name in its ClientHello, as it does with its pool option"
        " sni off.",
        packets,
        expected,
    )


def tls_sni_split_sample() -> SampleFile:
    rng = seeded("tls-sni-split")
    client = Endpoint("172.17.0.31", 41700)
    pool = Endpoint("203.0.113.31", HTTPS_PORT)
    message, session_id = xmrig_hello(rng, SUPPORTXMR)

    # The first record ends inside the server name, so neither record
    # contains the whole name.
    name_offset = message.index(SUPPORTXMR.encode("ascii"))
    first_record = name_offset + len("pool.sup")
    hello = tls.split_records(tls.RECORD_HANDSHAKE, message, [first_record])
    # TCP segments: the first record header and 40 bytes, then up to two
    # bytes into the second record header, then the rest.
    first_segment = 5 + 40
    second_segment = 5 + first_record + 2 - first_segment

    session = xmrig_session(
        rng, wallets.monero(rng), rigid=None, shares=[[ACCEPTED], [ACCEPTED]]
    )
    steps = tls13_session(
        rng,
        hello,
        session_id,
        session.steps,
        hello_segment_sizes=(first_segment, second_segment),
    )
    packets = tcp_conversation(client, pool, steps, start_ns=seconds(0))

    expected = ExpectedFlow(
        client=client,
        server=pool,
        dialect=TLS,
        tls_server_name=SUPPORTXMR,
        pool_host=SUPPORTXMR,
        confidence=MEDIUM,
    )
    return pcap_sample(
        "tls-sni-split.pcap",
        "xmrig mines over TLS to pool.supportxmr.com:443 with a ClientHello split"
        " into two TLS records inside the server name and three TCP segments.",
        packets,
        [expected],
    )


def xmrig_donate_sample() -> SampleFile:
    rng = seeded("xmrig-donate-tls")
    client = Endpoint("172.17.0.32", 41800)
    server = Endpoint("203.0.113.32", HTTPS_PORT)
    packets = tcp_conversation(
        client, server, xmrig_tls_steps(rng, XMRIG_DONATE_TLS), start_ns=seconds(0)
    )
    expected = ExpectedFlow(
        client=client,
        server=server,
        dialect=TLS,
        tls_server_name=XMRIG_DONATE_TLS,
        pool_host=XMRIG_DONATE_TLS,
        confidence=MEDIUM,
    )
    return pcap_sample(
        "xmrig-donate-tls.pcap",
        "xmrig's dev-fee connection: TLS to donate.ssl.xmrig.com:443 with that"
        " server name, carrying a short encrypted mining session.",
        packets,
        [expected],
    )


def build() -> list[SampleFile]:
    return [dns_then_tls_sample(), tls_sni_split_sample(), xmrig_donate_sample()]
