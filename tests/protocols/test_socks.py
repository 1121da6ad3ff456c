"""SOCKS4, SOCKS4a and SOCKS5 handshakes in both directions, and a real capture."""

from __future__ import annotations

import socket
import struct
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.capture import open_capture
from detector.decode import PacketDecoder
from detector.flows import StreamReassembler
from detector.model import FIN, SYN, TCP
from detector.protocols.socks import (
    MAX_SOCKS4_FIELD_BYTES,
    REASON_FIELD_TOO_LONG,
    REASON_INVALID_REQUEST,
    REASON_NOT_SOCKS,
    REASON_TRUNCATED,
    REASON_UNSUPPORTED_AUTHENTICATION,
    STAGE_AUTHENTICATION,
    STAGE_METHOD,
    STAGE_REQUEST,
    MalformedSocks,
    SocksConnect,
    SocksDecoder,
    SocksReply,
    SocksReplyDecoder,
)
from detector.protocols.tls import ClientHello, TlsClientHelloDecoder

POOL = b"pool.supportxmr.com"


def socks4(command: int, port: int, address: bytes, user: bytes) -> bytes:
    return struct.pack("!BBH", 4, command, port) + address + user + b"\x00"


def socks5_request(command: int, address_type: int, address: bytes, port: int) -> bytes:
    if address_type == 3:
        address = bytes([len(address)]) + address
    return bytes([5, command, 0, address_type]) + address + struct.pack("!H", port)


SOCKS4_CONNECT = socks4(1, 3333, socket.inet_aton("192.0.2.7"), b"miner")
SOCKS4A_CONNECT = socks4(1, 443, bytes([0, 0, 0, 1]), b"") + POOL.upper() + b"\x00"
# xmrig's Socks5.cpp: a greeting offering no authentication, then CONNECT by
# host name.
SOCKS5_BY_NAME = b"\x05\x01\x00" + socks5_request(1, 3, POOL, 3333)
SOCKS5_IPV4 = b"\x05\x02\x00\x01" + socks5_request(
    1, 1, socket.inet_aton("198.51.100.4"), 14444
)
SOCKS5_IPV6 = b"\x05\x01\x00" + socks5_request(
    1, 4, socket.inet_pton(socket.AF_INET6, "2001:db8::7"), 5555
)
SOCKS5_PASSWORD = (
    b"\x05\x02\x00\x02"
    + b"\x01\x05miner\x06secret"
    + socks5_request(1, 3, b"xmr-eu1.nanopool.org.", 14433)
)

SAMPLES = {
    "socks4": (SOCKS4_CONNECT, SocksConnect(4, "192.0.2.7", 3333, False)),
    "socks4a": (SOCKS4A_CONNECT, SocksConnect(4, POOL.decode(), 443, True)),
    "socks5-name": (SOCKS5_BY_NAME, SocksConnect(5, POOL.decode(), 3333, True)),
    "socks5-ipv4": (SOCKS5_IPV4, SocksConnect(5, "198.51.100.4", 14444, False)),
    "socks5-ipv6": (SOCKS5_IPV6, SocksConnect(5, "2001:db8::7", 5555, False)),
    "socks5-password": (
        SOCKS5_PASSWORD,
        SocksConnect(5, "xmr-eu1.nanopool.org", 14433, True),
    ),
}


def decode_chunks(chunks: list[bytes]) -> tuple[list[object], SocksDecoder]:
    decoder = SocksDecoder()
    events: list[object] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.finish())
    return events, decoder


def one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[index : index + 1] for index in range(len(data))]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_whole(name: str) -> None:
    data, expected = SAMPLES[name]
    events, decoder = decode_chunks([data])
    assert events == [expected]
    assert decoder.tunnel_offset == len(data)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_byte_by_byte(name: str) -> None:
    data, expected = SAMPLES[name]
    events, decoder = decode_chunks(one_byte_chunks(data))
    assert events == [expected]
    assert decoder.tunnel_offset == len(data)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_with_tunnel_bytes(name: str) -> None:
    data, expected = SAMPLES[name]
    tunnel = b'{"id":1,"jsonrpc":"2.0","method":"login"}\n'
    decoder = SocksDecoder()
    assert decoder.feed(data + tunnel[:10]) == [expected]
    assert decoder.tunnel_offset == len(data)
    assert decoder.feed(tunnel[10:]) == []
    assert decoder.finish() == []
    assert decoder.discarded_bytes == 0


def test_bind_request_has_no_target() -> None:
    data = b"\x05\x01\x00" + socks5_request(2, 1, bytes(4), 0)
    events, decoder = decode_chunks([data])
    assert events == []
    assert decoder.tunnel_offset == len(data)


def test_socks4_bind_has_no_target() -> None:
    data = socks4(2, 8080, socket.inet_aton("192.0.2.1"), b"")
    events, decoder = decode_chunks([data])
    assert events == []
    assert decoder.tunnel_offset == len(data)


def test_domain_that_is_an_address() -> None:
    data = b"\x05\x01\x00" + socks5_request(1, 3, b"192.0.2.9", 3333)
    events, _ = decode_chunks([data])
    assert events == [SocksConnect(5, "192.0.2.9", 3333, True)]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\n", REASON_NOT_SOCKS),
        (b"\x16\x03\x01\x02\x00", REASON_NOT_SOCKS),
        (b'{"id":1}', REASON_NOT_SOCKS),
        (b"\x05\x00", REASON_NOT_SOCKS),
        (b"\x05\x02\x00\xff", REASON_NOT_SOCKS),
        (b"\x04\x09\x00\x50", REASON_NOT_SOCKS),
        (socks4(1, 0, socket.inet_aton("192.0.2.1"), b""), REASON_INVALID_REQUEST),
        (socks4(1, 80, bytes(4), b""), REASON_INVALID_REQUEST),
        (socks4(1, 80, bytes([0, 0, 0, 9]), b"") + b"\x00", REASON_INVALID_REQUEST),
        (
            b"\x05\x01\x00" + socks5_request(1, 3, b"pool.example", 0),
            REASON_INVALID_REQUEST,
        ),
        (b"\x05\x01\x00\x05\x01\x01\x01" + bytes(6), REASON_INVALID_REQUEST),
        (b"\x05\x01\x00\x05\x01\x00\x02" + bytes(6), REASON_INVALID_REQUEST),
        (b"\x05\x01\x00\x05\x07\x00\x01" + bytes(6), REASON_INVALID_REQUEST),
        (b"\x05\x01\x00\x04\x01\x00\x01" + bytes(6), REASON_UNSUPPORTED_AUTHENTICATION),
        (b"\x05\x01\x00\x05\x01\x00\x03\x00\x0d\x05", REASON_INVALID_REQUEST),
        (
            b"\x05\x01\x00" + socks5_request(1, 3, "pööl".encode(), 3333),
            REASON_INVALID_REQUEST,
        ),
        (
            b"\x05\x01\x00" + socks5_request(1, 3, b"pool example", 3333),
            REASON_INVALID_REQUEST,
        ),
        (b"\x05\x01\x01\x01\x01\x00\x04abcd", REASON_UNSUPPORTED_AUTHENTICATION),
    ],
    ids=[
        "http",
        "tls",
        "json",
        "no-methods",
        "offers-no-acceptable",
        "socks4-command",
        "socks4-port-zero",
        "socks4-address-zero",
        "socks4a-empty-name",
        "socks5-port-zero",
        "socks5-reserved",
        "socks5-address-type",
        "socks5-command",
        "socks5-after-greeting",
        "socks5-empty-domain",
        "socks5-non-ascii-domain",
        "socks5-space-in-domain",
        "gssapi",
    ],
)
def test_not_socks(data: bytes, reason: str) -> None:
    decoder = SocksDecoder()
    events = decoder.feed(data)
    assert len(events) == 1
    malformed = events[0]
    assert isinstance(malformed, MalformedSocks)
    assert malformed.reason == reason
    assert decoder.feed(SOCKS5_BY_NAME) == []
    assert decoder.discarded_bytes >= len(SOCKS5_BY_NAME)
    assert decoder.finish() == []


def test_socks4_user_id_without_nul() -> None:
    data = struct.pack("!BBH", 4, 1, 80) + socket.inet_aton("192.0.2.1")
    decoder = SocksDecoder()
    assert decoder.feed(data + b"u" * MAX_SOCKS4_FIELD_BYTES) == []
    events = decoder.feed(b"u")
    assert len(events) == 1
    assert isinstance(events[0], MalformedSocks)
    assert events[0].reason == REASON_FIELD_TOO_LONG


def test_socks4_user_id_at_limit() -> None:
    data = socks4(1, 80, socket.inet_aton("192.0.2.1"), b"u" * MAX_SOCKS4_FIELD_BYTES)
    events, _ = decode_chunks([data])
    assert events == [SocksConnect(4, "192.0.2.1", 80, False)]


def test_stream_cut_inside_request() -> None:
    events, decoder = decode_chunks([SOCKS5_BY_NAME[:-3]])
    assert len(events) == 1
    assert isinstance(events[0], MalformedSocks)
    assert events[0].reason == REASON_TRUNCATED
    assert decoder.tunnel_offset is None


def test_gap_stops_decoder() -> None:
    decoder = SocksDecoder()
    assert decoder.feed(SOCKS5_BY_NAME[:6]) == []
    decoder.gap()
    assert decoder.feed(SOCKS5_BY_NAME[6:]) == []
    assert decoder.discarded_bytes == len(SOCKS5_BY_NAME) - 3
    assert decoder.finish() == []
    assert decoder.tunnel_offset is None


# Replies from the proxy.

REPLIES = {
    "socks5-granted": (
        b"\x05\x00" + b"\x05\x00\x00\x01" + bytes([10, 0, 0, 1]) + b"\x0d\x05",
        SocksReply(5, STAGE_REQUEST, 0, True),
    ),
    "socks5-password-granted": (
        b"\x05\x02\x01\x00\x05\x00\x00\x03\x04host\x01\xbb",
        SocksReply(5, STAGE_REQUEST, 0, True),
    ),
    "socks5-ipv6-refused": (
        b"\x05\x00\x05\x05\x00\x04" + bytes(16) + b"\x00\x00",
        SocksReply(5, STAGE_REQUEST, 5, False),
    ),
    "socks5-no-method": (b"\x05\xff", SocksReply(5, STAGE_METHOD, 0xFF, False)),
    "socks5-bad-password": (
        b"\x05\x02\x01\x01",
        SocksReply(5, STAGE_AUTHENTICATION, 1, False),
    ),
    "socks4-granted": (
        b"\x00\x5a\x0d\x05" + bytes([192, 0, 2, 7]),
        SocksReply(4, STAGE_REQUEST, 90, True),
    ),
    "socks4-rejected": (
        b"\x00\x5b" + bytes(6),
        SocksReply(4, STAGE_REQUEST, 91, False),
    ),
}


def decode_replies(chunks: list[bytes]) -> tuple[list[object], SocksReplyDecoder]:
    decoder = SocksReplyDecoder()
    events: list[object] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.finish())
    return events, decoder


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_reply_whole_and_byte_by_byte(name: str) -> None:
    data, expected = REPLIES[name]
    assert decode_replies([data])[0] == [expected]
    assert decode_replies(one_byte_chunks(data))[0] == [expected]


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_reply_with_trailing_bytes(name: str) -> None:
    data, expected = REPLIES[name]
    decoder = SocksReplyDecoder()
    assert decoder.feed(data + b"\x16\x03\x03\x00\x10") == [expected]
    if expected.granted:
        assert decoder.tunnel_offset == len(data)
    else:
        assert decoder.tunnel_offset is None
    assert decoder.feed(b"more") == []
    assert decoder.finish() == []


@pytest.mark.parametrize(
    "data",
    [b"HTTP/1.1 200 OK\r\n", b"\x05\x01", b"\x05\x02\x02\x00", b"\x00\x10" + bytes(6)],
    ids=["http", "gssapi-selected", "bad-auth-version", "socks4-code"],
)
def test_reply_not_socks(data: bytes) -> None:
    events, _ = decode_replies([data])
    assert len(events) == 1
    assert isinstance(events[0], MalformedSocks)


def test_reply_cut_short() -> None:
    events, _ = decode_replies([b"\x05\x00\x05\x00\x00\x01\x0a"])
    assert len(events) == 1
    assert isinstance(events[0], MalformedSocks)
    assert events[0].reason == REASON_TRUNCATED


# Hostile input.


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


@st.composite
def hostile_streams(draw: st.DrawFn) -> list[bytes]:
    prefix = draw(
        st.sampled_from(
            [b"", b"\x04\x01", b"\x05\x01\x00", b"\x05\x02\x00\x02\x01", b"\x00\x5a"]
        )
    )
    return draw(chunked(prefix + draw(st.binary(max_size=300))))


@settings(database=None, max_examples=500)
@given(hostile_streams())
def test_client_hostile_streams(chunks: list[bytes]) -> None:
    events, decoder = decode_chunks(chunks)
    for event in events:
        assert isinstance(event, SocksConnect | MalformedSocks)
    offset = decoder.tunnel_offset
    assert offset is None or 0 < offset <= sum(len(chunk) for chunk in chunks)


@settings(database=None, max_examples=500)
@given(hostile_streams())
def test_reply_hostile_streams(chunks: list[bytes]) -> None:
    events, decoder = decode_replies(chunks)
    for event in events:
        assert isinstance(event, SocksReply | MalformedSocks)
    offset = decoder.tunnel_offset
    assert offset is None or 0 < offset <= sum(len(chunk) for chunk in chunks)


# Third-party capture: a SOCKS5 hop carrying TLS, reassembled by the project's
# own reader, decoder and reassembler.

Endpoint = tuple[str, int, str, int]


def tcp_streams(path: Path) -> dict[Endpoint, bytes]:
    decoder = PacketDecoder()
    reassemblers: dict[Endpoint, StreamReassembler] = {}
    streams: dict[Endpoint, bytearray] = defaultdict(bytearray)
    for packet in open_capture(path):
        segment = decoder.decode(packet)
        if segment is None or segment.transport != TCP:
            continue
        key = (segment.src_ip, segment.src_port, segment.dst_ip, segment.dst_port)
        reassembler = reassemblers.setdefault(key, StreamReassembler())
        syn, fin = bool(segment.flags & SYN), bool(segment.flags & FIN)
        for piece in reassembler.add(segment.seq, segment.payload, syn, fin):
            streams[key] += piece.data
    for key, reassembler in reassemblers.items():
        for piece in reassembler.flush():
            streams[key] += piece.data
    return {key: bytes(data) for key, data in streams.items() if data}


@pytest.mark.realpcap
def test_real_socks5_hop_to_youtube(real_pcaps: Path) -> None:
    streams = tcp_streams(real_pcaps / "ndpi/tls_heur__vmess-websocket.pcapng")
    to_proxy = [key for key in streams if key[3] == 1080]
    assert len(to_proxy) == 1
    key = to_proxy[0]
    client = SocksDecoder()
    assert client.feed(streams[key]) == [SocksConnect(5, "142.250.180.142", 443, False)]
    assert client.tunnel_offset is not None
    tunnel = streams[key][client.tunnel_offset :]
    hellos = TlsClientHelloDecoder().feed(tunnel)
    assert isinstance(hellos[0], ClientHello)
    assert hellos[0].server_name == "www.youtube.com"
    proxy = SocksReplyDecoder()
    assert proxy.feed(streams[(key[2], key[3], key[0], key[1])]) == [
        SocksReply(5, STAGE_REQUEST, 0, True)
    ]
