"""Ordinary traffic for the mixed capture: bulk copies, TLS, HTTP and DNS.

Payloads that would be encrypted or compressed on a real network are slices of
one random buffer, which look the same to a classifier and cost nothing to
make. Nothing here carries a mining message, a miner's user agent or a pool
port, so every flow of this traffic is one the detector must leave alone.
"""

from __future__ import annotations

import math
import random
import struct

from detector.bench.conversation import Write
from detector.trafficgen.messages import dns, http, tls

# Size of the random buffer that payloads are cut from.
PAYLOAD_POOL_BYTES = 1 << 20
# Applications write bulk data in chunks of this size.
BULK_WRITE_BYTES = 65536
# Bytes one bulk copy moves, drawn log-uniformly: a config file to an image
# layer.
BULK_BYTES = (32 * 1024, 2 * 1024 * 1024)
# Bytes of one HTTP response body and one TLS response, drawn log-uniformly.
HTTP_BODY_BYTES = (200, 48 * 1024)
TLS_RESPONSE_BYTES = (120, 64 * 1024)
TLS_REQUEST_BYTES = (90, 900)
# Requests on one kept-alive HTTP or TLS connection.
REQUESTS_PER_CONNECTION = (1, 4)
# TLS 1.3 caps a record's plaintext at 2**14 bytes (RFC 8446, 5.1); the
# 17 bytes are the AEAD tag and the inner content type.
TLS_MAX_RECORD = 16384 + 17
# Bytes of the server's first flight after the ServerHello: encrypted
# extensions, certificate chain, CertificateVerify and Finished.
TLS_SERVER_FLIGHT_BYTES = (2200, 5200)
TLS_SERVER_HELLO_BYTES = 90
TLS_FINISHED_BYTES = 53
# Record types (RFC 8446, 5.1).
TLS_CHANGE_CIPHER_SPEC = 0x14
TLS_ALERT = 0x15
TLS_HANDSHAKE = 0x16
TLS_APPLICATION_DATA = 0x17
TLS_LEGACY_VERSION = 0x0303
# An encrypted close_notify alert: 2 bytes of alert, the content type and a
# 16-byte tag.
TLS_ALERT_BYTES = 19

SSH_CLIENT_BANNER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
SSH_SERVER_BANNER = b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10\r\n"
# Key exchange: KEXINIT from each side, then the ECDH init and reply.
SSH_KEXINIT_BYTES = (1080, 1600)
SSH_ECDH_INIT_BYTES = 48
SSH_ECDH_REPLY_BYTES = (500, 1100)

# Names that the background traffic resolves and visits. Only reserved
# names (RFC 2606), so none can be a listed pool.
SERVICE_NAMES = (
    "www.example.com",
    "api.example.com",
    "cdn.example.net",
    "registry.example.org",
    "auth.example.com",
    "metrics.example.net",
    "storage.example.org",
    "updates.example.com",
)
HTTP_PATHS = (
    "/",
    "/index.html",
    "/static/app.js",
    "/static/style.css",
    "/images/logo.png",
    "/api/v1/status",
    "/downloads/release.tar.gz",
)
HTTP_AGENTS = (
    "curl/7.88.1",
    "Wget/1.21.3",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
)
CONTENT_TYPES = (
    "text/html; charset=utf-8",
    "application/javascript",
    "text/css",
    "image/png",
    "application/octet-stream",
)

NS_PER_MILLISECOND = 1_000_000


class PayloadPool:
    """Random bytes to cut payloads from, drawn once from ``rng``."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._data = rng.randbytes(PAYLOAD_POOL_BYTES)

    def take(self, size: int) -> bytes:
        """Return ``size`` random-looking bytes; ``size`` at most 1 MiB."""
        offset = self._rng.randrange(PAYLOAD_POOL_BYTES - size + 1)
        return self._data[offset : offset + size]


def log_uniform(rng: random.Random, bounds: tuple[float, float]) -> int:
    """Draw an integer between ``bounds`` whose logarithm is uniform."""
    low, high = bounds
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def ssh_copy(rng: random.Random, payloads: PayloadPool) -> list[Write]:
    """Build an scp-style copy over SSH: banners, key exchange, then bulk data
    one way and small window adjustments the other."""
    writes = [
        Write(True, SSH_CLIENT_BANNER),
        Write(False, SSH_SERVER_BANNER),
        Write(True, payloads.take(rng.randint(*SSH_KEXINIT_BYTES))),
        Write(False, payloads.take(rng.randint(*SSH_KEXINIT_BYTES))),
        Write(True, payloads.take(SSH_ECDH_INIT_BYTES)),
        Write(False, payloads.take(rng.randint(*SSH_ECDH_REPLY_BYTES))),
    ]
    upload = rng.random() < 0.5
    remaining = log_uniform(rng, BULK_BYTES)
    while remaining > 0:
        size = min(remaining, BULK_WRITE_BYTES)
        writes.append(Write(upload, payloads.take(size)))
        remaining -= size
    # The end of the copy: scp's status byte, in an encrypted SSH packet.
    writes.append(Write(not upload, payloads.take(36)))
    return writes


def tls_session(
    rng: random.Random, payloads: PayloadPool, server_name: str
) -> list[Write]:
    """Build a TLS 1.3 session: ClientHello with ``server_name``, the server's
    flight, then requests and responses in application-data records."""
    hello = tls.client_hello(
        server_name, rng.randbytes(32), rng.randbytes(32), rng.randbytes(32)
    )
    server_flight = (
        _record(TLS_HANDSHAKE, payloads.take(TLS_SERVER_HELLO_BYTES))
        + _record(TLS_CHANGE_CIPHER_SPEC, b"\x01")
        + _records(payloads.take(rng.randint(*TLS_SERVER_FLIGHT_BYTES)))
    )
    client_finished = _record(TLS_CHANGE_CIPHER_SPEC, b"\x01") + _record(
        TLS_APPLICATION_DATA, payloads.take(TLS_FINISHED_BYTES)
    )
    writes = [
        Write(True, hello),
        Write(False, server_flight),
        Write(True, client_finished),
    ]
    for _ in range(rng.randint(*REQUESTS_PER_CONNECTION)):
        request = payloads.take(rng.randint(*TLS_REQUEST_BYTES))
        response = payloads.take(log_uniform(rng, TLS_RESPONSE_BYTES))
        think = rng.randint(1, 400) * NS_PER_MILLISECOND
        writes.append(Write(True, _records(request), think))
        writes.append(Write(False, _records(response)))
    writes.append(Write(True, _record(TLS_ALERT, payloads.take(TLS_ALERT_BYTES))))
    return writes


def http_session(rng: random.Random, payloads: PayloadPool, host: str) -> list[Write]:
    """Build plain HTTP/1.1 GET requests and their responses on one
    connection."""
    agent = rng.choice(HTTP_AGENTS)
    writes: list[Write] = []
    for _ in range(rng.randint(*REQUESTS_PER_CONNECTION)):
        request = http.request(
            "GET",
            rng.choice(HTTP_PATHS),
            [("Host", host), ("User-Agent", agent), ("Accept", "*/*")],
        )
        body = payloads.take(log_uniform(rng, HTTP_BODY_BYTES))
        response = http.response(
            200,
            "OK",
            [
                ("Server", "nginx/1.22.1"),
                ("Content-Type", rng.choice(CONTENT_TYPES)),
                http.content_length(body),
                ("Connection", "keep-alive"),
            ],
            body,
        )
        think = rng.randint(1, 300) * NS_PER_MILLISECOND if writes else 0
        writes.append(Write(True, request, think))
        writes.append(Write(False, response))
    return writes


def dns_exchange(
    rng: random.Random, name: str, addresses: list[str]
) -> tuple[bytes, bytes]:
    """Return a query for ``name`` and a response with ``addresses``."""
    transaction_id = rng.getrandbits(16)
    query = dns.query(transaction_id, name)
    answer = dns.response(transaction_id, name, addresses, ttl=rng.choice((30, 300)))
    return query, answer


def _record(content_type: int, body: bytes) -> bytes:
    return struct.pack(">BHH", content_type, TLS_LEGACY_VERSION, len(body)) + body


def _records(data: bytes) -> bytes:
    # Application data split into records of at most TLS_MAX_RECORD bytes.
    return b"".join(
        _record(TLS_APPLICATION_DATA, data[offset : offset + TLS_MAX_RECORD])
        for offset in range(0, len(data), TLS_MAX_RECORD)
    )
