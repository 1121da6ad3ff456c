"""Builders of TLS, SOCKS5, WebSocket, coin-hive, Stratum V2, NTP and DNS
messages give what the protocols' own decoders read back.

Messages go to the detector's decoders, most of them whole, one byte at a time
and followed by unrelated bytes, so a builder and a decoder that disagree on
framing show up here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.dns import DNS
from scapy.layers.ntp import NTPHeader

from detector.protocols import (
    ClientHello,
    ServerHello,
    SocksConnect,
    SocksDecoder,
    SocksReply,
    SocksReplyDecoder,
    TlsClientHelloDecoder,
    TlsServerDecoder,
    WebSocketBinary,
    WebSocketDecoder,
    WebSocketText,
    parse_dns,
    parse_setup_connection,
    parse_webminer,
    resolve_chain,
)
from detector.trafficgen.messages import coinhive, dns, ntp, socks, sv2, tls, websocket
from detector.trafficgen.samples.common import BASE_TIME_NS

RANDOM = b"\1" * 32
SESSION_ID = b"\2" * 32
KEY = b"\3" * 32
# The JA3 string that fingerprint lists record for OpenSSL 1.1.1's default
# ClientHello without ALPN.
OPENSSL_1_1_1_JA3 = (
    "771,4866-4867-4865-49196-49200-159-52393-52392-52394-49195-49199-158-"
    "49188-49192-107-49187-49191-103-49162-49172-57-49161-49171-51-157-156-61-"
    "60-53-47-255,0-11-10-35-22-23-13-43-45-51,29-23-30-25-24,0-1-2"
)
# Bytes that follow a message in its stream: the next protocol's data.
TRAILING = b"\x17\x03\x03\x00\x05hello"
MASK = b"\x37\xfa\x21\x3d"


def feed_whole(decoder: Any, data: bytes) -> list[Any]:
    return [*decoder.feed(data), *decoder.finish()]


def feed_bytewise(decoder: Any, data: bytes) -> list[Any]:
    events: list[Any] = []
    for index in range(len(data)):
        events += decoder.feed(data[index : index + 1])
    return [*events, *decoder.finish()]


FEEDS: Sequence[Callable[[Any, bytes], list[Any]]] = (feed_whole, feed_bytewise)


def only(events: list[Any], kind: type) -> Any:
    matching = [event for event in events if isinstance(event, kind)]
    assert len(matching) == 1, events
    return matching[0]


# -- TLS ----------------------------------------------------------------------


@pytest.mark.parametrize("feed", FEEDS)
def test_openssl_hello_gives_openssl_ja3(feed: Callable[..., list[Any]]) -> None:
    record = tls.client_hello(
        "pool.supportxmr.com", RANDOM, SESSION_ID, KEY, profile=tls.OPENSSL_1_1_1
    )
    hello = only(feed(TlsClientHelloDecoder(), record + TRAILING), ClientHello)
    assert hello.ja3 == OPENSSL_1_1_1_JA3
    assert hello.server_name == "pool.supportxmr.com"
    assert hello.alpn == ()
    assert hello.supported_versions == (0x0304, 0x0303, 0x0302, 0x0301)


def test_hello_without_server_name() -> None:
    record = tls.client_hello(None, RANDOM, SESSION_ID, KEY, profile=tls.OPENSSL_1_1_1)
    hello = only(feed_whole(TlsClientHelloDecoder(), record), ClientHello)
    assert hello.server_name is None
    assert tls.EXTENSION_SERVER_NAME not in hello.extensions


def test_browser_hello_offers_alpn() -> None:
    record = tls.client_hello("www.example.com", RANDOM, SESSION_ID, KEY)
    hello = only(feed_whole(TlsClientHelloDecoder(), record), ClientHello)
    assert hello.alpn == ("h2", "http/1.1")
    assert hello.server_name == "www.example.com"


@pytest.mark.parametrize("feed", FEEDS)
def test_hello_split_across_records(feed: Callable[..., list[Any]]) -> None:
    message = tls.client_hello_message(
        "pool.supportxmr.com", RANDOM, SESSION_ID, KEY, profile=tls.OPENSSL_1_1_1
    )
    cut = message.index(b"supportxmr")
    records = tls.split_records(tls.RECORD_HANDSHAKE, message, [cut, 3])
    assert records.count(b"\x16\x03\x01") >= 3
    assert b"pool.supportxmr.com" not in records
    hello = only(feed(TlsClientHelloDecoder(), records + TRAILING), ClientHello)
    assert hello.server_name == "pool.supportxmr.com"


def test_split_records_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        tls.split_records(tls.RECORD_HANDSHAKE, b"abc", [3])
    with pytest.raises(ValueError):
        tls.split_records(tls.RECORD_HANDSHAKE, b"abc", [0])


@pytest.mark.parametrize("feed", FEEDS)
def test_server_hello_is_tls_1_3(feed: Callable[..., list[Any]]) -> None:
    flight = tls.server_hello(RANDOM, SESSION_ID, KEY) + tls.change_cipher_spec()
    flight += tls.application_data(b"\x99" * 40)
    hello = only(feed(TlsServerDecoder(), flight), ServerHello)
    assert hello.version == tls.TLS_1_3
    assert hello.cipher == tls.TLS_AES_256_GCM_SHA384
    assert hello.hello_retry is False


def test_tls_builders_reject_bad_sizes() -> None:
    with pytest.raises(ValueError):
        tls.server_hello(b"short", SESSION_ID, KEY)
    with pytest.raises(ValueError):
        tls.client_hello(None, RANDOM, b"\0" * 33, KEY)
    with pytest.raises(ValueError):
        tls.application_data(b"\0" * (tls.MAX_CIPHERTEXT_BYTES + 1))


def test_profile_with_unknown_extension() -> None:
    profile = tls.HelloProfile(
        cipher_suites=(0x1301,),
        extensions=(0xFE0D,),
        groups=(tls.GROUP_X25519,),
        signature_schemes=(0x0403,),
        supported_versions=(0x0304,),
    )
    with pytest.raises(ValueError):
        tls.client_hello(None, RANDOM, SESSION_ID, KEY, profile=profile)


# -- DNS ----------------------------------------------------------------------


def test_response_records_with_other_owner() -> None:
    message = dns.response_records(
        0x5C01,
        "www.cdn-customer.example",
        [
            ("www.cdn-customer.example", "198.51.100.77"),
            ("pool.supportxmr.com", "198.51.100.77"),
        ],
    )
    parsed = DNS(message)
    assert parsed.ancount == 2
    assert parsed.an[0].rrname == b"www.cdn-customer.example."
    assert parsed.an[1].rrname == b"pool.supportxmr.com."
    assert parsed.an[1].rdata == "198.51.100.77"
    names = resolve_chain(parse_dns(message))
    assert names == {
        "198.51.100.77": ["www.cdn-customer.example", "pool.supportxmr.com"]
    }


def test_response_matches_response_records() -> None:
    addresses = ["192.0.2.1", "192.0.2.2"]
    assert dns.response(7, "a.example", addresses) == dns.response_records(
        7, "a.example", [("a.example", address) for address in addresses]
    )


# -- SOCKS5 -------------------------------------------------------------------


@pytest.mark.parametrize("feed", FEEDS)
def test_socks5_connect_by_name(feed: Callable[..., list[Any]]) -> None:
    request = socks.greeting() + socks.connect_by_name("pool.supportxmr.com", 3333)
    assert request[:3] == b"\x05\x01\x00"
    decoder = SocksDecoder()
    connect = only(feed(decoder, request + b'{"id":1}\n'), SocksConnect)
    assert connect == SocksConnect(5, "pool.supportxmr.com", 3333, by_name=True)
    assert decoder.tunnel_offset == len(request)


@pytest.mark.parametrize("feed", FEEDS)
def test_socks5_reply_grants(feed: Callable[..., list[Any]]) -> None:
    replies = socks.method_selection() + socks.reply("192.0.2.108", 50412)
    decoder = SocksReplyDecoder()
    reply = only(feed(decoder, replies + b'{"id":1}\n'), SocksReply)
    assert reply.granted is True
    assert decoder.tunnel_offset == len(replies)


def test_socks5_rejects_bad_requests() -> None:
    with pytest.raises(ValueError):
        socks.connect_by_name("", 3333)
    with pytest.raises(ValueError):
        socks.connect_by_name("a" * 256, 3333)
    with pytest.raises(ValueError):
        socks.connect_by_name("pool.example", 0)
    with pytest.raises(ValueError):
        socks.greeting(())


@given(
    host=st.from_regex(
        r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,8}){1,3}", fullmatch=True
    ),
    port=st.integers(1, 65535),
)
def test_socks5_connect_round_trip(host: str, port: int) -> None:
    request = socks.greeting() + socks.connect_by_name(host, port)
    connect = only(feed_whole(SocksDecoder(), request), SocksConnect)
    assert connect.host == host
    assert connect.port == port


# -- WebSocket and coin-hive --------------------------------------------------


def test_accept_key_rfc_example() -> None:
    # RFC 6455 section 1.3.
    assert websocket.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == (
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    )


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536])
@pytest.mark.parametrize("masked", [True, False])
def test_frame_lengths_decode(length: int, masked: bool) -> None:
    payload = bytes(index % 251 for index in range(length))
    data = websocket.frame(websocket.OPCODE_BINARY, payload, MASK if masked else None)
    events = feed_whole(WebSocketDecoder(masked_expected=masked), data)
    assert events == [WebSocketBinary(payload)]


def test_frame_rejects_bad_mask() -> None:
    with pytest.raises(ValueError):
        websocket.frame(websocket.OPCODE_TEXT, b"x", b"\0\0")


@given(text=st.text(max_size=300), masked=st.booleans())
def test_text_frame_round_trip(text: str, masked: bool) -> None:
    data = websocket.text_frame(text, MASK if masked else None)
    events = feed_bytewise(WebSocketDecoder(masked_expected=masked), data)
    assert events == [WebSocketText(text)]


BLOB = "1010" + "ab" * 35 + "00000000" + "cd" * 33 + "01"
COINHIVE_MESSAGES = [
    (coinhive.auth("k9Fq2VbN7xLr4TpZ8wYc3HsD6gJm1QeA"), "auth"),
    (coinhive.authed("", 0), "authed"),
    (coinhive.job("b9ed247e04ef", BLOB, "ffffff00"), "job"),
    (coinhive.submit("b9ed247e04ef", "0a1b2c3d", "ef" * 31 + "00"), "submit"),
    (coinhive.hash_accepted(256), "hash_accepted"),
]


@pytest.mark.parametrize(("text", "kind"), COINHIVE_MESSAGES)
def test_coinhive_message_shapes(text: str, kind: str) -> None:
    message = parse_webminer(text)
    assert message is not None
    assert message.kind == kind
    assert " " not in text


@pytest.mark.parametrize("feed", FEEDS)
def test_coinhive_in_masked_frames(feed: Callable[..., list[Any]]) -> None:
    stream = b"".join(websocket.text_frame(text, MASK) for text, _ in COINHIVE_MESSAGES)
    events = feed(WebSocketDecoder(masked_expected=True), stream)
    kinds = [parse_webminer(event.text).kind for event in events]
    assert kinds == [kind for _, kind in COINHIVE_MESSAGES]


def test_coinhive_rejects_unknown_auth_type() -> None:
    with pytest.raises(ValueError):
        coinhive.auth("key", "robot")


# -- Stratum V2 ---------------------------------------------------------------


def test_setup_connection_round_trip() -> None:
    frame = sv2.setup_connection(
        "eu.stratum.braiins.com",
        34254,
        vendor="Bitmain",
        hardware_version="S19j Pro",
        firmware="braiins-os-23.03",
        device_id="rig-04",
    )
    message = parse_setup_connection(frame + sv2.setup_connection_success())
    assert message is not None
    assert message.endpoint_host == "eu.stratum.braiins.com"
    assert message.endpoint_port == 34254
    assert message.min_version == sv2.VERSION
    assert message.max_version == sv2.VERSION
    assert message.flags == sv2.FLAGS_STANDARD_JOBS_VERSION_ROLLING
    assert message.device_id == "rig-04"
    assert message.frame_length == len(frame)


def test_setup_connection_success_frame() -> None:
    frame = sv2.setup_connection_success()
    extension_type, msg_type = struct.unpack_from("<HB", frame)
    assert extension_type == 0
    assert msg_type == sv2.MSG_TYPE_SETUP_CONNECTION_SUCCESS
    assert int.from_bytes(frame[3:6], "little") == len(frame) - 6
    assert struct.unpack_from("<HI", frame, 6) == (sv2.VERSION, 0)


def test_setup_connection_rejects_long_string() -> None:
    with pytest.raises(ValueError):
        sv2.setup_connection(
            "pool.example",
            34254,
            vendor="v" * 256,
            hardware_version="",
            firmware="",
            device_id="",
        )


@given(
    host=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=255),
    port=st.integers(0, 65535),
    vendor=st.text(max_size=60),
)
def test_setup_connection_fields_round_trip(host: str, port: int, vendor: str) -> None:
    frame = sv2.setup_connection(
        host,
        port,
        vendor=vendor,
        hardware_version="S19",
        firmware="fw",
        device_id="d",
    )
    message = parse_setup_connection(frame)
    assert message is not None
    assert message.endpoint_host == host
    assert message.endpoint_port == port
    assert message.vendor == vendor


# -- NTP ----------------------------------------------------------------------


def test_ntp_request_and_response() -> None:
    request = ntp.client_request(BASE_TIME_NS)
    response = ntp.server_response(
        request,
        stratum=2,
        reference_id=bytes([192, 0, 2, 1]),
        reference_ns=BASE_TIME_NS - 300 * 10**9,
        receive_ns=BASE_TIME_NS + 15_000_000,
        transmit_ns=BASE_TIME_NS + 15_050_000,
    )
    assert len(request) == 48
    assert len(response) == 48
    parsed_request = NTPHeader(request)
    parsed_response = NTPHeader(response)
    assert parsed_request.version == 4
    assert parsed_request.mode == ntp.MODE_CLIENT
    assert parsed_response.mode == ntp.MODE_SERVER
    assert parsed_response.stratum == 2
    assert response[24:32] == request[40:48]


def test_ntp_timestamp_of_base_time() -> None:
    seconds, fraction = struct.unpack(">II", ntp.timestamp(BASE_TIME_NS + 500_000_000))
    assert seconds == BASE_TIME_NS // 10**9 + ntp.NTP_UNIX_OFFSET
    assert fraction == 2**31


def test_ntp_response_rejects_short_request() -> None:
    with pytest.raises(ValueError):
        ntp.server_response(
            b"\0" * 47,
            stratum=2,
            reference_id=b"\0" * 4,
            reference_ns=0,
            receive_ns=0,
            transmit_ns=0,
        )
