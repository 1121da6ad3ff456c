"""TLS handshake decoders on built hellos and certificates, and on real captures."""

from __future__ import annotations

import hashlib
import re
import struct
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.capture import open_capture
from detector.decode import PacketDecoder
from detector.errors import DecodeError
from detector.flows import StreamReassembler
from detector.model import FIN, SYN, TCP
from detector.protocols.tls import (
    HELLO_RETRY_RANDOM,
    MAX_HANDSHAKE_BYTES,
    MAX_RECORD_LENGTH,
    REASON_HANDSHAKE_TOO_LONG,
    REASON_INVALID_CERTIFICATE,
    REASON_INVALID_HELLO,
    REASON_INVALID_RECORD,
    REASON_NOT_TLS,
    REASON_TRUNCATED,
    REASON_UNEXPECTED_MESSAGE,
    ClientHello,
    MalformedTls,
    ServerCertificate,
    ServerHello,
    TlsClientHelloDecoder,
    TlsServerDecoder,
    certificate_names,
    is_grease,
    parse_client_hello,
)

# Builders for the wire format (RFC 8446 sections 4 and 5).


def extension(extension_type: int, data: bytes) -> bytes:
    return struct.pack("!HH", extension_type, len(data)) + data


def vector(length_size: int, data: bytes) -> bytes:
    return len(data).to_bytes(length_size, "big") + data


def u16s(values: list[int]) -> bytes:
    return b"".join(struct.pack("!H", value) for value in values)


def server_name_extension(name: bytes) -> bytes:
    return extension(0x0000, vector(2, b"\x00" + vector(2, name)))


def alpn_extension(protocols: list[bytes]) -> bytes:
    return extension(0x0010, vector(2, b"".join(vector(1, name) for name in protocols)))


def client_hello_body(
    ciphers: list[int],
    extensions: list[bytes] | None,
    version: int = 0x0303,
) -> bytes:
    body = struct.pack("!H", version) + bytes(range(32))
    body += vector(1, b"\x5a" * 32)
    body += vector(2, u16s(ciphers))
    body += vector(1, b"\x00")
    if extensions is not None:
        body += vector(2, b"".join(extensions))
    return body


def handshake(message_type: int, body: bytes) -> bytes:
    return bytes([message_type]) + len(body).to_bytes(3, "big") + body


def record(content_type: int, payload: bytes, version: int = 0x0301) -> bytes:
    return struct.pack("!BHH", content_type, version, len(payload)) + payload


def handshake_records(message: bytes, size: int = 16384) -> bytes:
    return b"".join(
        record(22, message[start : start + size])
        for start in range(0, len(message), size)
    )


# The example client of the JA4 specification (FoxIO, technical_details/JA4.md),
# with GREASE values added where a browser sends them.
JA4_EXAMPLE_CIPHERS = [
    0x0A0A,
    0x1301,
    0x1302,
    0x1303,
    0xC02B,
    0xC02F,
    0xC02C,
    0xC030,
    0xCCA9,
    0xCCA8,
    0xC013,
    0xC014,
    0x009C,
    0x009D,
    0x002F,
    0x0035,
]
JA4_EXAMPLE_SIGNATURES = [
    0x0403,
    0x0804,
    0x0401,
    0x0503,
    0x0805,
    0x0501,
    0x0806,
    0x0601,
]
JA4_EXAMPLE_EXTENSIONS = [
    extension(0x1A1A, b""),
    extension(0x001B, b"\x02\x00\x02"),
    server_name_extension(b"WWW.Example.COM."),
    extension(0x0033, vector(2, struct.pack("!HH", 0x001D, 32) + b"\x07" * 32)),
    alpn_extension([b"h2", b"http/1.1"]),
    extension(0x4469, vector(2, vector(1, b"h2"))),
    extension(0x0017, b""),
    extension(0x002D, vector(1, b"\x01")),
    extension(0x000D, vector(2, u16s(JA4_EXAMPLE_SIGNATURES))),
    extension(0x0005, b"\x01\x00\x00\x00\x00"),
    extension(0x0023, b""),
    extension(0x0012, b""),
    extension(0x002B, vector(1, u16s([0x2A2A, 0x0304, 0x0303]))),
    extension(0xFF01, b"\x00"),
    extension(0x000B, vector(1, b"\x00")),
    extension(0x000A, vector(2, u16s([0x3A3A, 0x001D, 0x0017, 0x0018]))),
    extension(0x0015, b"\x00" * 20),
    extension(0x4A4A, b"\x00"),
]
JA4_EXAMPLE_HELLO = handshake(
    1, client_hello_body(JA4_EXAMPLE_CIPHERS, JA4_EXAMPLE_EXTENSIONS)
)

# The example of the JA3 README (salesforce/ja3): a TLS 1.0 hello with SNI,
# supported groups and point formats.
JA3_EXAMPLE_HELLO = handshake(
    1,
    client_hello_body(
        [47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4],
        [
            server_name_extension(b"pool.example.org"),
            extension(0x000A, vector(2, u16s([23, 24, 25]))),
            extension(0x000B, vector(1, b"\x00")),
        ],
        version=0x0301,
    ),
)

SAMPLES = {
    "ja4-example": handshake_records(JA4_EXAMPLE_HELLO),
    "ja3-example": handshake_records(JA3_EXAMPLE_HELLO),
    "split-records": handshake_records(JA4_EXAMPLE_HELLO, size=100),
}


def decode_client(chunks: list[bytes]) -> list[object]:
    decoder = TlsClientHelloDecoder()
    messages: list[object] = []
    for chunk in chunks:
        messages.extend(decoder.feed(chunk))
    messages.extend(decoder.finish())
    return messages


def decode_server(chunks: list[bytes]) -> list[object]:
    decoder = TlsServerDecoder()
    messages: list[object] = []
    for chunk in chunks:
        messages.extend(decoder.feed(chunk))
    messages.extend(decoder.finish())
    return messages


def one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[index : index + 1] for index in range(len(data))]


def only_hello(messages: list[object]) -> ClientHello:
    assert len(messages) == 1
    hello = messages[0]
    assert isinstance(hello, ClientHello)
    return hello


def test_ja4_published_example() -> None:
    hello = only_hello(decode_client([SAMPLES["ja4-example"]]))
    assert hello.ja4 == "t13d1516h2_8daaf6152771_e5627efa2ab1"


def test_ja3_published_example() -> None:
    hello = only_hello(decode_client([SAMPLES["ja3-example"]]))
    assert (
        hello.ja3
        == "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    )
    assert hello.ja3_hash == "ada70206e40642a3e4461f35503241d5"


def test_client_hello_fields() -> None:
    hello = only_hello(decode_client([SAMPLES["ja4-example"]]))
    assert hello.server_name == "www.example.com"
    assert hello.alpn == ("h2", "http/1.1")
    assert hello.version == 0x0303
    assert hello.ciphers == tuple(JA4_EXAMPLE_CIPHERS)
    assert hello.extensions[0] == 0x1A1A
    assert len(hello.extensions) == 18
    assert hello.groups == (0x3A3A, 0x001D, 0x0017, 0x0018)
    assert hello.point_formats == (0,)
    assert hello.sig_algs == tuple(JA4_EXAMPLE_SIGNATURES)
    assert hello.supported_versions == (0x2A2A, 0x0304, 0x0303)
    assert not hello.ssl2_format


def test_ja3_drops_grease() -> None:
    hello = only_hello(decode_client([SAMPLES["ja4-example"]]))
    version, ciphers, extensions, groups, formats = hello.ja3.split(",")
    assert version == "771"
    assert ciphers.split("-")[0] == str(0x1301)
    assert str(0x1A1A) not in extensions.split("-")
    assert str(0x4A4A) not in extensions.split("-")
    assert groups == "29-23-24"
    assert formats == "0"
    expected = hashlib.md5(hello.ja3.encode(), usedforsecurity=False).hexdigest()
    assert hello.ja3_hash == expected


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_fed_byte_by_byte(name: str) -> None:
    data = SAMPLES[name]
    whole = decode_client([data])
    assert len(whole) == 1
    assert decode_client(one_byte_chunks(data)) == whole


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_with_trailing_records(name: str) -> None:
    data = SAMPLES[name]
    trailing = record(20, b"\x01") + record(23, b"\xee" * 40) + b"\x16\x03"
    decoder = TlsClientHelloDecoder()
    assert decoder.feed(data + trailing) == decode_client([data])
    assert decoder.feed(b"more application data") == []
    assert decoder.finish() == []
    assert decoder.discarded_bytes == 0


def test_partial_record_after_hello_truncated() -> None:
    decoder = TlsClientHelloDecoder()
    assert len(decoder.feed(SAMPLES["ja3-example"] + b"\x16\x03\x01\x00")) == 1
    tail = decoder.finish()
    assert len(tail) == 1
    assert isinstance(tail[0], MalformedTls)
    assert tail[0].reason == REASON_TRUNCATED


def test_handshake_records_after_hello_skipped() -> None:
    # TLS 1.2 clients send ClientKeyExchange in cleartext after the hello.
    key_exchange = handshake(16, vector(1, b"\x04" + b"\x09" * 64))
    data = SAMPLES["ja3-example"] + record(22, key_exchange) + record(20, b"\x01")
    assert len(decode_client(one_byte_chunks(data))) == 1


def test_second_hello_after_retry() -> None:
    data = SAMPLES["ja4-example"] + SAMPLES["ja3-example"]
    messages = decode_client(one_byte_chunks(data))
    assert [type(message) for message in messages] == [ClientHello, ClientHello]


def test_nothing_after_change_cipher_spec() -> None:
    data = SAMPLES["ja4-example"] + record(20, b"\x01", 0x0303)
    decoder = TlsClientHelloDecoder()
    assert len(decoder.feed(data)) == 1
    assert decoder.feed(SAMPLES["ja3-example"]) == []


def test_hello_split_in_handshake_header() -> None:
    message = JA3_EXAMPLE_HELLO
    data = record(22, message[:2]) + record(22, message[2:])
    only_hello(decode_client([data]))


def test_server_name_absent() -> None:
    body = client_hello_body([0x002F], [alpn_extension([b"http/1.1"])])
    hello = only_hello(decode_client([handshake_records(handshake(1, body))]))
    assert hello.server_name is None
    assert hello.ja4.startswith("t12i0101h1_")


def test_no_extensions_block() -> None:
    body = client_hello_body([0x002F, 0x0035], None, version=0x0301)
    hello = only_hello(decode_client([handshake_records(handshake(1, body))]))
    assert hello.extensions == ()
    assert hello.ja3 == "769,47-53,,,"
    assert hello.ja4.endswith("_000000000000")
    assert hello.ja4.startswith("t10i020000_")


def test_ja4_without_signature_algorithms() -> None:
    # The JA4 specification hashes this extension list without signature
    # algorithms to 6d807ffa2a79.
    types = [0x0005, 0x000A, 0x000B, 0x000D, 0x0012, 0x0015, 0x0017, 0x001B]
    types += [0x0023, 0x002B, 0x002D, 0x0033, 0x4469, 0xFF01]
    payloads = {
        0x000A: vector(2, u16s([0x001D])),
        0x000B: vector(1, b"\x00"),
        0x000D: vector(2, b""),
        0x002B: vector(1, u16s([0x0304])),
    }
    extensions = [extension(kind, payloads.get(kind, b"")) for kind in types]
    body = client_hello_body([0x1301], extensions)
    hello = only_hello(decode_client([handshake_records(handshake(1, body))]))
    assert hello.ja4.split("_")[2] == "6d807ffa2a79"


@pytest.mark.parametrize(
    ("protocol", "label"),
    [
        (b"h2", "h2"),
        (b"http/1.1", "h1"),
        (b"x", "xx"),
        (b"\xab", "ab"),
        (b"\xab\xcd", "ad"),
        (b"\x30\xab", "3b"),
        (b"\x30\x31\xab\xcd", "3d"),
        (b"\x30\xab\xcd\x31", "01"),
    ],
)
def test_ja4_alpn_label(protocol: bytes, label: str) -> None:
    body = client_hello_body([0x002F], [alpn_extension([protocol, b"h2"])])
    hello = only_hello(decode_client([handshake_records(handshake(1, body))]))
    assert hello.ja4[8:10] == label


@pytest.mark.parametrize(
    ("version", "label"),
    [(0x0303, "12"), (0x0302, "11"), (0x0301, "10"), (0x0300, "s3"), (0x0305, "00")],
)
def test_ja4_version_label(version: int, label: str) -> None:
    body = client_hello_body([0x002F], [], version=version)
    hello = only_hello(decode_client([handshake_records(handshake(1, body))]))
    assert hello.ja4[1:3] == label


def test_ja4_counts_capped() -> None:
    ciphers = list(range(0x0100, 0x0100 + 120))
    body = client_hello_body(ciphers, [])
    hello = only_hello(decode_client([handshake_records(handshake(1, body))]))
    assert hello.ja4[4:6] == "99"
    assert len(hello.ciphers) == 120


def test_grease_values() -> None:
    assert is_grease(0x0A0A)
    assert is_grease(0xFAFA)
    assert not is_grease(0x0A1A)
    assert not is_grease(0x1301)


def test_server_name_normalised() -> None:
    body = client_hello_body([0x002F], [server_name_extension(b"US1.BitMinter.com.")])
    hello = only_hello(decode_client([handshake_records(handshake(1, body))]))
    assert hello.server_name == "us1.bitminter.com"


# SSL 2.0-compatible CLIENT-HELLO (RFC 6101 appendix E.2).


def ssl2_hello(cipher_specs: list[int], challenge: bytes = b"\x42" * 16) -> bytes:
    specs = b"".join(spec.to_bytes(3, "big") for spec in cipher_specs)
    body = b"\x01" + struct.pack("!HHHH", 0x0301, len(specs), 0, len(challenge))
    body += specs + challenge
    return struct.pack("!H", 0x8000 | len(body)) + body


def test_ssl2_hello_decoded() -> None:
    data = ssl2_hello([0x010080, 0x000039, 0x00002F])
    hello = only_hello(decode_client([data]))
    assert hello.ssl2_format
    assert hello.server_name is None
    assert hello.version == 0x0301
    assert hello.ciphers == (0x010080, 0x000039, 0x00002F)
    assert hello.ja3 == ""
    assert hello.ja4 == ""


def test_ssl2_hello_byte_by_byte_with_trailing() -> None:
    data = ssl2_hello(list(range(1, 120)))
    assert data[0] == 0x81
    whole = decode_client([data])
    assert (
        decode_client(one_byte_chunks(data + record(22, b"\x10\x00\x00\x00"))) == whole
    )


def test_ssl2_hello_invalid_lengths() -> None:
    data = bytearray(ssl2_hello([0x010080]))
    data[6] = 4  # cipher-spec length not a multiple of 3
    messages = decode_client([bytes(data)])
    assert len(messages) == 1
    assert isinstance(messages[0], MalformedTls)
    assert messages[0].reason == REASON_NOT_TLS


# Malformed client streams.


def first_malformed(data: bytes) -> MalformedTls:
    decoder = TlsClientHelloDecoder()
    messages = decoder.feed(data)
    assert len(messages) == 1
    malformed = messages[0]
    assert isinstance(malformed, MalformedTls)
    assert decoder.feed(SAMPLES["ja3-example"]) == []
    assert decoder.finish() == []
    return malformed


def test_plain_text_not_tls() -> None:
    malformed = first_malformed(b'{"id":1,"method":"login"}\n')
    assert malformed.reason == REASON_NOT_TLS
    assert malformed.excerpt.startswith(b'{"id":1')


def test_not_tls_counts_discarded() -> None:
    decoder = TlsClientHelloDecoder()
    decoder.feed(b"GET / HTTP/1.1\r\n")
    decoder.feed(b"Host: x\r\n")
    assert decoder.discarded_bytes == 25


def test_bad_record_version() -> None:
    malformed = first_malformed(b"\x16\x02\x00\x00\x05hello")
    assert malformed.reason == REASON_INVALID_RECORD


def test_record_too_long() -> None:
    header = struct.pack("!BHH", 22, 0x0301, MAX_RECORD_LENGTH + 1)
    assert first_malformed(header).reason == REASON_INVALID_RECORD


def test_handshake_message_too_long() -> None:
    header = b"\x01" + (MAX_HANDSHAKE_BYTES + 1).to_bytes(3, "big")
    malformed = first_malformed(record(22, header))
    assert malformed.reason == REASON_HANDSHAKE_TOO_LONG


def test_first_message_not_hello() -> None:
    server_hello = handshake(2, b"\x03\x03" + b"\x00" * 38)
    malformed = first_malformed(record(22, server_hello))
    assert malformed.reason == REASON_UNEXPECTED_MESSAGE
    assert malformed.excerpt == server_hello


def test_truncated_cipher_list() -> None:
    body = client_hello_body([0x002F], [])
    # Version, random and session id take 67 bytes; the cipher-suite length
    # follows. 9 bytes is odd and runs past the message.
    assert body[67:69] == b"\x00\x02"
    body = body[:67] + b"\x00\x09" + body[69:]
    malformed = first_malformed(record(22, handshake(1, body)))
    assert malformed.reason == REASON_INVALID_HELLO


def test_extension_overruns_block() -> None:
    body = client_hello_body([0x002F], [extension(0x0017, b"")])
    body = body[:-4] + struct.pack("!HH", 0x0017, 9)
    assert (
        first_malformed(record(22, handshake(1, body))).reason == REASON_INVALID_HELLO
    )


def test_non_ascii_server_name() -> None:
    body = client_hello_body([0x002F], [server_name_extension("pööl.example".encode())])
    assert (
        first_malformed(record(22, handshake(1, body))).reason == REASON_INVALID_HELLO
    )


def test_parse_client_hello_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        parse_client_hello(b"\x03\x03\x00")


def test_gap_stops_decoder() -> None:
    data = SAMPLES["split-records"]
    decoder = TlsClientHelloDecoder()
    assert decoder.feed(data[:150]) == []
    decoder.gap()
    assert decoder.discarded_bytes > 0
    before = decoder.discarded_bytes
    assert decoder.feed(data[150:]) == []
    assert decoder.discarded_bytes == before + len(data) - 150
    assert decoder.finish() == []


def test_stream_cut_inside_hello() -> None:
    data = SAMPLES["ja4-example"]
    messages = decode_client([data[:-10]])
    assert len(messages) == 1
    assert isinstance(messages[0], MalformedTls)
    assert messages[0].reason == REASON_TRUNCATED


# DER builders for a certificate with a subject CN and subjectAltName DNS names
# (RFC 5280 section 4.1). The signature is filler: the decoder does not check it.


def der(tag: int, content: bytes) -> bytes:
    length = len(content)
    if length < 0x80:
        encoded = bytes([length])
    else:
        size = (length.bit_length() + 7) // 8
        encoded = bytes([0x80 | size]) + length.to_bytes(size, "big")
    return bytes([tag]) + encoded + content


def oid(*octets: int) -> bytes:
    return der(0x06, bytes(octets))


COMMON_NAME = oid(0x55, 0x04, 0x03)
ORGANISATION = oid(0x55, 0x04, 0x0A)
SUBJECT_ALT_NAME = oid(0x55, 0x1D, 0x11)
BASIC_CONSTRAINTS = oid(0x55, 0x1D, 0x13)
SHA256_RSA = der(0x30, oid(0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B))


def name(*attributes: tuple[bytes, int, bytes]) -> bytes:
    rdns = b"".join(
        der(0x31, der(0x30, kind + der(tag, value))) for kind, tag, value in attributes
    )
    return der(0x30, rdns)


def certificate(subject: bytes, alt_names: list[bytes], version: bool = True) -> bytes:
    general_names = b"".join(der(0x82, alt) for alt in alt_names)
    general_names += der(0x87, bytes([192, 0, 2, 1]))
    extensions = der(
        0x30,
        der(0x30, BASIC_CONSTRAINTS + der(0x01, b"\xff") + der(0x04, der(0x30, b"")))
        + der(0x30, SUBJECT_ALT_NAME + der(0x04, der(0x30, general_names))),
    )
    tbs = der(0xA0, der(0x02, b"\x02")) if version else b""
    tbs += der(0x02, b"\x10\x32\x54\x76")
    tbs += SHA256_RSA
    tbs += name((ORGANISATION, 0x13, b"Example CA"), (COMMON_NAME, 0x13, b"Example CA"))
    tbs += der(0x30, der(0x17, b"250101000000Z") + der(0x17, b"260101000000Z"))
    tbs += subject
    tbs += der(
        0x30, der(0x30, oid(0x2A, 0x86, 0x48)) + der(0x03, b"\x00" + b"\x33" * 70)
    )
    tbs += der(0xA3, extensions)
    return der(0x30, der(0x30, tbs) + SHA256_RSA + der(0x03, b"\x00" + b"\x44" * 256))


LEAF = certificate(
    name((ORGANISATION, 0x0C, b"Pool Inc"), (COMMON_NAME, 0x0C, b"Pool.Example.COM")),
    [b"pool.example.com", b"*.pool.example.com", b"stratum.example.net."],
)
ISSUER = certificate(name((COMMON_NAME, 0x13, b"Example CA")), [])


def server_hello_body(
    version: int = 0x0303,
    cipher: int = 0xC02F,
    extensions: list[bytes] | None = None,
    random: bytes = b"\x21" * 32,
) -> bytes:
    body = struct.pack("!H", version) + random + vector(1, b"\x66" * 32)
    body += struct.pack("!HB", cipher, 0)
    if extensions is not None:
        body += vector(2, b"".join(extensions))
    return body


def certificate_message(chain: list[bytes]) -> bytes:
    return handshake(11, vector(3, b"".join(vector(3, cert) for cert in chain)))


TLS12_FLIGHT = handshake_records(
    handshake(2, server_hello_body(extensions=[alpn_extension([b"h2"])]))
    + certificate_message([LEAF, ISSUER])
    + handshake(12, b"\x03\x00\x1d" + vector(1, b"\x05" * 32))
    + handshake(14, b""),
    size=700,
)


def test_certificate_names_from_der() -> None:
    assert certificate_names(LEAF) == (
        "pool.example.com",
        "*.pool.example.com",
        "stratum.example.net",
    )


def test_certificate_without_version_field() -> None:
    cert = certificate(name((COMMON_NAME, 0x16, b"v1.example")), [], version=False)
    assert certificate_names(cert) == ("v1.example",)


@pytest.mark.parametrize(
    ("tag", "raw", "text"),
    [
        (0x1E, "bmp.example".encode("utf-16-be"), "bmp.example"),
        (0x1C, "universal.example".encode("utf-32-be"), "universal.example"),
        (0x14, b"teletex.example", "teletex.example"),
    ],
)
def test_certificate_string_types(tag: int, raw: bytes, text: str) -> None:
    cert = certificate(name((COMMON_NAME, tag, raw)), [])
    assert certificate_names(cert) == (text,)


def test_certificate_names_invalid_der() -> None:
    with pytest.raises(DecodeError):
        certificate_names(LEAF[:-300])
    with pytest.raises(DecodeError):
        certificate_names(b"\x30\x80" + LEAF[2:])


def test_server_flight_decoded() -> None:
    messages = decode_server([TLS12_FLIGHT])
    assert len(messages) == 2
    hello, names = messages
    assert isinstance(hello, ServerHello)
    assert hello.version == 0x0303
    assert hello.cipher == 0xC02F
    assert hello.alpn == "h2"
    assert hello.extensions == (0x0010,)
    assert not hello.hello_retry
    assert isinstance(names, ServerCertificate)
    assert names.names[0] == "pool.example.com"


def test_server_flight_byte_by_byte_with_trailing() -> None:
    whole = decode_server([TLS12_FLIGHT])
    trailing = record(20, b"\x01", 0x0303) + record(22, b"\x00" * 40, 0x0303)
    assert decode_server(one_byte_chunks(TLS12_FLIGHT + trailing)) == whole


def test_server_tls13_stops_after_hello() -> None:
    hello = handshake(2, server_hello_body(extensions=[extension(0x002B, b"\x03\x04")]))
    encrypted = record(23, b"\x99" * 300, 0x0303)
    messages = decode_server([record(22, hello, 0x0303) + encrypted])
    assert len(messages) == 1
    assert isinstance(messages[0], ServerHello)
    assert messages[0].version == 0x0304


def test_server_hello_retry_then_hello() -> None:
    retry = handshake(
        2,
        server_hello_body(
            cipher=0x1301,
            extensions=[extension(0x002B, b"\x03\x04")],
            random=HELLO_RETRY_RANDOM,
        ),
    )
    hello = handshake(2, server_hello_body(extensions=[extension(0x002B, b"\x03\x04")]))
    data = record(22, retry) + record(20, b"\x01") + record(22, hello)
    messages = decode_server(one_byte_chunks(data))
    assert [type(message) for message in messages] == [ServerHello, ServerHello]
    assert messages[0].hello_retry  # type: ignore[union-attr]
    assert not messages[1].hello_retry  # type: ignore[union-attr]


def test_server_resumption_stops_at_change_cipher_spec() -> None:
    data = record(22, handshake(2, server_hello_body())) + record(20, b"\x01")
    data += record(22, certificate_message([LEAF]))
    messages = decode_server([data])
    assert [type(message) for message in messages] == [ServerHello]


def test_server_empty_certificate_list() -> None:
    data = handshake_records(
        handshake(2, server_hello_body()) + certificate_message([])
    )
    assert [type(message) for message in decode_server([data])] == [ServerHello]


def test_server_alert_first() -> None:
    decoder = TlsServerDecoder()
    assert decoder.feed(record(21, b"\x02\x28")) == []
    assert decoder.finish() == []


def test_server_certificate_invalid_der() -> None:
    data = handshake_records(
        handshake(2, server_hello_body()) + certificate_message([b"\x30\x05\x01"])
    )
    messages = decode_server([data])
    assert [type(message) for message in messages] == [ServerHello, MalformedTls]
    assert messages[1].reason == REASON_INVALID_CERTIFICATE  # type: ignore[union-attr]


def test_server_certificate_before_hello() -> None:
    messages = decode_server([record(22, certificate_message([LEAF]))])
    assert len(messages) == 1
    assert isinstance(messages[0], MalformedTls)
    assert messages[0].reason == REASON_UNEXPECTED_MESSAGE


def test_server_stream_not_tls() -> None:
    messages = decode_server([b"HTTP/1.1 400 Bad Request\r\n\r\n"])
    assert len(messages) == 1
    assert isinstance(messages[0], MalformedTls)
    assert messages[0].reason == REASON_NOT_TLS


# Hostile input: any bytes in any chunks give only this module's messages.

CLIENT_TYPES = (ClientHello, MalformedTls)
SERVER_TYPES = (ServerHello, ServerCertificate, MalformedTls)


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


@st.composite
def hostile_streams(draw: st.DrawFn) -> list[bytes]:
    prefix = draw(
        st.sampled_from([b"", b"\x16\x03\x01", b"\x80", SAMPLES["ja4-example"][:60]])
    )
    return draw(chunked(prefix + draw(st.binary(max_size=400))))


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> list[bytes]:
    changed = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        changed[draw(st.integers(0, len(changed) - 1))] = draw(st.integers(0, 255))
    return draw(chunked(bytes(changed)))


@settings(database=None, max_examples=300)
@given(hostile_streams())
def test_client_hostile_streams(chunks: list[bytes]) -> None:
    for message in decode_client(chunks):
        assert isinstance(message, CLIENT_TYPES)


@settings(database=None, max_examples=300)
@given(mutated(SAMPLES["ja4-example"]))
def test_client_mutated_hello(chunks: list[bytes]) -> None:
    for message in decode_client(chunks):
        assert isinstance(message, CLIENT_TYPES)


@settings(database=None, max_examples=300)
@given(hostile_streams())
def test_server_hostile_streams(chunks: list[bytes]) -> None:
    for message in decode_server(chunks):
        assert isinstance(message, SERVER_TYPES)


@settings(database=None, max_examples=300)
@given(mutated(TLS12_FLIGHT[:1500]))
def test_server_mutated_flight(chunks: list[bytes]) -> None:
    for message in decode_server(chunks):
        assert isinstance(message, SERVER_TYPES)


@settings(database=None, max_examples=300)
@given(st.binary(max_size=300))
def test_certificate_names_hostile(data: bytes) -> None:
    try:
        names = certificate_names(data)
    except DecodeError:
        return
    assert all(isinstance(name, str) for name in names)


# Third-party captures: TCP streams reassembled by the project's own reader,
# decoder and reassembler.

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


def ndpi_fingerprints(result_file: Path, server_name: str) -> tuple[str, str]:
    """Return the JA3C and JA4 that nDPI's published result lists for a flow."""
    for line in result_file.read_text().splitlines():
        if f"[Hostname/SNI: {server_name}]" in line and "[JA3C:" in line:
            ja3 = re.search(r"\[JA3C: ([0-9a-f]{32})\]", line)
            ja4 = re.search(r"\[JA4: ([^\]]+)\]", line)
            assert ja3 is not None
            assert ja4 is not None
            return ja3.group(1), ja4.group(1)
    raise AssertionError(f"no flow with SNI {server_name} in {result_file}")


def hellos_in(streams: dict[Endpoint, bytes]) -> dict[Endpoint, ClientHello]:
    found = {}
    for key, data in streams.items():
        for message in decode_client([data]):
            if isinstance(message, ClientHello):
                found[key] = message
    return found


@pytest.mark.realpcap
def test_real_curl_hello_and_certificate(real_pcaps: Path) -> None:
    streams = tcp_streams(real_pcaps / "ndpi/443-curl.pcap")
    hellos = hellos_in(streams)
    assert len(hellos) == 1
    ((key, hello),) = hellos.items()
    assert key[3] == 443
    assert hello.server_name == "www.ntop.org"
    assert hello.alpn == ("h2", "http/1.1")
    ja3, ja4 = ndpi_fingerprints(
        real_pcaps / "ndpi/443-curl.pcap.ndpi.out", "www.ntop.org"
    )
    assert hello.ja3_hash == ja3
    assert hello.ja4 == ja4
    reply = streams[(key[2], key[3], key[0], key[1])]
    messages = decode_server([reply])
    assert isinstance(messages[0], ServerHello)
    assert messages[0].alpn == "h2"
    certificates = [m for m in messages if isinstance(m, ServerCertificate)]
    assert len(certificates) == 1
    assert "www.ntop.org" in certificates[0].names


@pytest.mark.realpcap
def test_real_google_ssl2_hello(real_pcaps: Path) -> None:
    streams = tcp_streams(real_pcaps / "ndpi/google_ssl.pcap")
    hellos = hellos_in(streams)
    assert len(hellos) == 1
    ((key, hello),) = hellos.items()
    assert hello.ssl2_format
    assert hello.server_name is None
    assert hello.version == 0x0301
    reply = streams[(key[2], key[3], key[0], key[1])]
    certificates = [
        m for m in decode_server([reply]) if isinstance(m, ServerCertificate)
    ]
    assert len(certificates) == 1
    assert "www.google.com" in certificates[0].names


@pytest.mark.realpcap
def test_real_bitminter_hellos(real_pcaps: Path) -> None:
    hellos = hellos_in(
        tcp_streams(real_pcaps / "zeek-cryptomining/bitcoin-mining.pcap")
    )
    assert len(hellos) == 5
    assert {key[3] for key in hellos} == {3333}
    assert {hello.server_name for hello in hellos.values()} == {"us1.bitminter.com"}
    # The JA3 hash tshark 4.0.17 prints for these hellos (tls.handshake.ja3).
    assert {hello.ja3_hash for hello in hellos.values()} == {
        "ec2e8760003621ca668b5f03e616cd57"
    }


@pytest.mark.realpcap
def test_real_youtube_hello_through_socks(real_pcaps: Path) -> None:
    path = real_pcaps / "ndpi/tls_heur__vmess-websocket.pcapng"
    hellos = hellos_in(tcp_streams(path))
    direct = [hello for key, hello in hellos.items() if key[3] == 443]
    assert len(direct) == 1
    hello = direct[0]
    assert hello.server_name == "www.youtube.com"
    assert 0x0304 in hello.supported_versions
    ja3, ja4 = ndpi_fingerprints(
        real_pcaps / "ndpi/tls_heur__vmess-websocket.pcapng.ndpi.out", "www.youtube.com"
    )
    assert hello.ja3_hash == ja3
    assert hello.ja4 == ja4
