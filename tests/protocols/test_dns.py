"""DNS parsing on built messages with compression, DNS over TCP, and real captures."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.capture import open_capture
from detector.decode import PacketDecoder
from detector.errors import DecodeError
from detector.model import UDP
from detector.protocols.dns import (
    MAX_CNAME_CHAIN,
    MAX_EXCERPT_BYTES,
    MAX_POINTER_JUMPS,
    REASON_INVALID_MESSAGE,
    REASON_TRUNCATED,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    DnsMessage,
    DnsQuestion,
    DnsRecord,
    DnsTcpDecoder,
    MalformedDns,
    parse_dns,
    resolve_chain,
)

TYPE_MX = 15
TYPE_TXT = 16
TYPE_OPT = 41


def encode_name(name: str) -> bytes:
    labels = [label.encode() for label in name.split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def pointer(offset: int) -> bytes:
    return struct.pack("!H", 0xC000 | offset)


def header(
    message_id: int,
    flags: int,
    questions: int,
    answers: int,
    authority: int = 0,
    additional: int = 0,
) -> bytes:
    return struct.pack(
        "!HHHHHH", message_id, flags, questions, answers, authority, additional
    )


def resource(owner: bytes, record_type: int, ttl: int, rdata: bytes) -> bytes:
    return owner + struct.pack("!HHIH", record_type, 1, ttl, len(rdata)) + rdata


# A recursive resolver's answer for a pool name behind a CDN alias, compressed
# as resolvers write it: every owner name points back at a name already
# written. The OPT record in the additional section is not decoded.
QUESTION_OFFSET = 12
QUERY = (
    header(0x4D2A, 0x0100, 1, 0) + encode_name("xmr.Pool.Example") + b"\x00\x01\x00\x01"
)
_CNAME_TARGET = b"\x04edge\x03cdn" + pointer(QUESTION_OFFSET + 4 + 5)
_RESPONSE_HEAD = header(0x4D2A, 0x8180, 1, 5, 0, 1)
_RESPONSE_QUESTION = encode_name("xmr.Pool.Example") + b"\x00\x01\x00\x01"
_CNAME_RECORD = resource(pointer(QUESTION_OFFSET), TYPE_CNAME, 300, _CNAME_TARGET)
# The CNAME target's labels start after the owner pointer and fixed fields.
_TARGET_OFFSET = len(_RESPONSE_HEAD) + len(_RESPONSE_QUESTION) + 2 + 10
RESPONSE = (
    _RESPONSE_HEAD
    + _RESPONSE_QUESTION
    + _CNAME_RECORD
    + resource(pointer(_TARGET_OFFSET), TYPE_A, 60, bytes([192, 0, 2, 10]))
    + resource(pointer(_TARGET_OFFSET), TYPE_A, 60, bytes([192, 0, 2, 11]))
    + resource(
        pointer(_TARGET_OFFSET),
        TYPE_AAAA,
        60,
        bytes.fromhex("20010db8000000000000000000000001"),
    )
    + resource(pointer(QUESTION_OFFSET), TYPE_TXT, 30, b"\x05hello")
    + resource(b"\x00", TYPE_OPT, 0, b"")
)


def test_response_fields() -> None:
    message = parse_dns(RESPONSE)
    assert message.id == 0x4D2A
    assert message.is_response
    assert message.rcode == 0
    assert message.opcode == 0
    assert not message.truncated
    assert message.questions == (DnsQuestion("xmr.pool.example", TYPE_A),)
    assert len(message.answers) == 5


def test_response_records() -> None:
    answers = parse_dns(RESPONSE).answers
    assert answers[0] == DnsRecord(
        "xmr.pool.example", TYPE_CNAME, 300, "edge.cdn.example"
    )
    assert answers[1] == DnsRecord("edge.cdn.example", TYPE_A, 60, "192.0.2.10")
    assert answers[2].value == "192.0.2.11"
    assert answers[3] == DnsRecord("edge.cdn.example", TYPE_AAAA, 60, "2001:db8::1")
    assert answers[4] == DnsRecord("xmr.pool.example", TYPE_TXT, 30, b"\x05hello")


def test_query_fields() -> None:
    message = parse_dns(QUERY)
    assert not message.is_response
    assert message.answers == ()
    assert message.questions[0].name == "xmr.pool.example"


def test_resolve_chain_through_cname() -> None:
    chains = resolve_chain(parse_dns(RESPONSE))
    assert chains == {
        "192.0.2.10": ["xmr.pool.example", "edge.cdn.example"],
        "192.0.2.11": ["xmr.pool.example", "edge.cdn.example"],
        "2001:db8::1": ["xmr.pool.example", "edge.cdn.example"],
    }


def test_flags_decoded() -> None:
    # QR, opcode 2 (STATUS), TC and rcode 3 (NXDOMAIN).
    message = parse_dns(header(7, 0x8000 | 2 << 11 | 0x0200 | 3, 0, 0))
    assert message.is_response
    assert message.opcode == 2
    assert message.truncated
    assert message.rcode == 3


def test_root_name_and_escaped_labels() -> None:
    data = header(1, 0, 2, 0) + b"\x00\x00\x02\x00\x01"
    data += b"\x03a.b\x04\x00Xy\xff\x00" + b"\x00\x01\x00\x01"
    questions = parse_dns(data).questions
    assert questions[0] == DnsQuestion("", 2)
    assert questions[1].name == "a\\046b.\\000xy\\255"


def test_trailing_bytes_ignored() -> None:
    assert parse_dns(RESPONSE + b"\x00" * 17) == parse_dns(RESPONSE)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        header(1, 0, 0, 0)[:11],
        header(1, 0, 1, 0),
        header(1, 0, 1, 0) + b"\x03www",
        header(1, 0, 1, 0) + encode_name("pool.example") + b"\x00\x01",
        header(1, 0x8000, 0, 1) + resource(b"\x00", TYPE_A, 1, b"\x01\x02\x03"),
        header(1, 0x8000, 0, 1)
        + resource(b"\x00", TYPE_A, 1, b"\x01\x02\x03\x04")[:-1],
        header(1, 0x8000, 0, 1) + resource(b"\x00", TYPE_AAAA, 1, b"\x00" * 4),
        header(1, 0x8000, 0, 1) + resource(b"\x00", TYPE_CNAME, 1, b"\x01a\x00\x00"),
        header(1, 0, 1, 0) + b"\x41abc\x00\x00\x01\x00\x01",
        header(1, 0, 1, 0) + b"\x81abc\x00\x00\x01\x00\x01",
    ],
    ids=[
        "empty",
        "short-header",
        "missing-question",
        "name-past-end",
        "question-without-class",
        "short-a-rdata",
        "rdata-past-end",
        "short-aaaa-rdata",
        "cname-shorter-than-rdata",
        "extended-label",
        "reserved-label",
    ],
)
def test_malformed_messages_raise(data: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_dns(data)


def test_pointer_to_itself_raises() -> None:
    data = header(1, 0, 1, 0) + pointer(QUESTION_OFFSET) + b"\x00\x01\x00\x01"
    with pytest.raises(DecodeError, match="points to byte 12"):
        parse_dns(data)


def test_pointer_forward_raises() -> None:
    data = header(1, 0, 1, 0) + pointer(QUESTION_OFFSET + 6) + b"\x00\x01\x00\x01"
    data += encode_name("later.example")
    with pytest.raises(DecodeError):
        parse_dns(data)


def test_pointer_loop_between_names_raises() -> None:
    # Each name ends with a pointer to the other: a loop whatever the order.
    first = QUESTION_OFFSET
    second = first + 3 + 2 + 4
    data = header(1, 0, 2, 0)
    data += b"\x01a" + pointer(second) + b"\x00\x01\x00\x01"
    data += b"\x01b" + pointer(first) + b"\x00\x01\x00\x01"
    with pytest.raises(DecodeError):
        parse_dns(data)


def test_pointer_into_own_labels_raises() -> None:
    data = header(1, 0, 1, 0) + b"\x01a\x01b" + pointer(QUESTION_OFFSET + 2)
    with pytest.raises(DecodeError):
        parse_dns(data + b"\x00\x01\x00\x01")


def chained_names(count: int) -> bytes:
    """Build ``count`` questions, each one label plus a pointer to the previous."""
    data = header(1, 0, count, 0) + encode_name("example") + b"\x00\x01\x00\x01"
    previous = QUESTION_OFFSET
    for _ in range(count - 1):
        here = len(data)
        data += b"\x01a" + pointer(previous) + b"\x00\x01\x00\x01"
        previous = here
    return data


def test_pointer_chain_at_limit() -> None:
    message = parse_dns(chained_names(MAX_POINTER_JUMPS + 1))
    assert message.questions[-1].name == "a." * MAX_POINTER_JUMPS + "example"


def test_pointer_chain_over_limit_raises() -> None:
    with pytest.raises(DecodeError, match="compression pointers"):
        parse_dns(chained_names(MAX_POINTER_JUMPS + 2))


def test_name_too_long_raises() -> None:
    name = ".".join(["x" * 63] * 4)
    with pytest.raises(DecodeError, match="255 octets"):
        parse_dns(header(1, 0, 1, 0) + encode_name(name) + b"\x00\x01\x00\x01")


def test_name_at_max_length() -> None:
    name = ".".join(["x" * 63] * 3 + ["y" * 61])
    data = header(1, 0, 1, 0) + encode_name(name) + b"\x00\x01\x00\x01"
    assert parse_dns(data).questions[0].name == name


# resolve_chain beyond the plain case.


def record_message(
    questions: list[str], answers: list[DnsRecord], is_response: bool = True
) -> DnsMessage:
    return DnsMessage(
        id=1,
        is_response=is_response,
        rcode=0,
        questions=tuple(DnsQuestion(name, TYPE_A) for name in questions),
        answers=tuple(answers),
    )


def test_resolve_chain_without_question() -> None:
    # Multicast DNS announcements carry answers and no question.
    message = record_message(
        [],
        [
            DnsRecord("alias.local", TYPE_CNAME, 10, "host.local"),
            DnsRecord("host.local", TYPE_A, 10, "192.168.1.5"),
            DnsRecord("other.local", TYPE_AAAA, 10, "fe80::1"),
        ],
    )
    assert resolve_chain(message) == {
        "192.168.1.5": ["alias.local", "host.local"],
        "fe80::1": ["other.local"],
    }


def test_resolve_chain_cname_loop_ends() -> None:
    message = record_message(
        ["a.example"],
        [
            DnsRecord("a.example", TYPE_CNAME, 10, "b.example"),
            DnsRecord("b.example", TYPE_CNAME, 10, "a.example"),
            DnsRecord("b.example", TYPE_A, 10, "192.0.2.1"),
        ],
    )
    assert resolve_chain(message) == {"192.0.2.1": ["a.example", "b.example"]}


def test_resolve_chain_long_chain_cut() -> None:
    names = [f"n{index}.example" for index in range(MAX_CNAME_CHAIN + 5)]
    answers = [
        DnsRecord(owner, TYPE_CNAME, 10, target)
        for owner, target in zip(names, names[1:], strict=False)
    ]
    answers.append(DnsRecord(names[-1], TYPE_A, 10, "192.0.2.9"))
    chain = resolve_chain(record_message([names[0]], answers))["192.0.2.9"]
    assert chain[0] != names[0]
    assert chain[-1] == names[-1]


def test_resolve_chain_two_questions() -> None:
    message = record_message(
        ["a.example", "b.example"],
        [
            DnsRecord("a.example", TYPE_A, 10, "192.0.2.1"),
            DnsRecord("b.example", TYPE_CNAME, 10, "c.example"),
            DnsRecord("c.example", TYPE_A, 10, "192.0.2.2"),
        ],
    )
    assert resolve_chain(message) == {
        "192.0.2.1": ["a.example"],
        "192.0.2.2": ["b.example", "c.example"],
    }


def test_resolve_chain_ignores_other_types() -> None:
    assert resolve_chain(parse_dns(QUERY)) == {}
    message = record_message(["a.example"], [DnsRecord("a.example", TYPE_MX, 1, b"")])
    assert resolve_chain(message) == {}


# DNS over TCP: each message behind a 2-byte length (RFC 1035 section 4.2.2).


def framed(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


TCP_SAMPLES = {
    "query": framed(QUERY),
    "response": framed(RESPONSE),
    "two-messages": framed(QUERY) + framed(RESPONSE),
}


def decode_tcp(chunks: list[bytes]) -> list[object]:
    decoder = DnsTcpDecoder()
    events: list[object] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.finish())
    return events


def one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[index : index + 1] for index in range(len(data))]


def test_tcp_two_messages_in_one_segment() -> None:
    events = decode_tcp([TCP_SAMPLES["two-messages"]])
    assert events == [parse_dns(QUERY), parse_dns(RESPONSE)]


@pytest.mark.parametrize("name", sorted(TCP_SAMPLES))
def test_tcp_sample_byte_by_byte(name: str) -> None:
    data = TCP_SAMPLES[name]
    whole = decode_tcp([data])
    assert whole
    assert all(isinstance(event, DnsMessage) for event in whole)
    assert decode_tcp(one_byte_chunks(data)) == whole


@pytest.mark.parametrize("name", sorted(TCP_SAMPLES))
def test_tcp_sample_with_trailing_bytes(name: str) -> None:
    data = TCP_SAMPLES[name]
    decoder = DnsTcpDecoder()
    assert decoder.feed(data + b"\x00\x30\x12\x34") == decode_tcp([data])
    tail = decoder.finish()
    assert len(tail) == 1
    assert isinstance(tail[0], MalformedDns)
    assert tail[0].reason == REASON_TRUNCATED
    assert tail[0].excerpt == b"\x12\x34"


def test_tcp_split_inside_length_prefix() -> None:
    data = TCP_SAMPLES["two-messages"]
    cut = len(framed(QUERY)) + 1
    assert decode_tcp([data[:cut], data[cut:]]) == decode_tcp([data])


def test_tcp_malformed_message_stops_decoder() -> None:
    decoder = DnsTcpDecoder()
    bad = framed(header(1, 0, 3, 0))
    events = decoder.feed(bad + framed(QUERY))
    assert len(events) == 1
    malformed = events[0]
    assert isinstance(malformed, MalformedDns)
    assert malformed.reason == REASON_INVALID_MESSAGE
    assert "question" in malformed.detail
    assert len(malformed.excerpt) <= MAX_EXCERPT_BYTES
    assert decoder.discarded_bytes == len(framed(QUERY))
    assert decoder.feed(framed(QUERY)) == []
    assert decoder.discarded_bytes == 2 * len(framed(QUERY))
    assert decoder.finish() == []


def test_tcp_gap_stops_decoder() -> None:
    decoder = DnsTcpDecoder()
    assert decoder.feed(framed(RESPONSE)[:30]) == []
    decoder.gap()
    assert decoder.discarded_bytes == 30
    assert decoder.feed(framed(QUERY)) == []
    assert decoder.finish() == []


# Hostile input.


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    changed = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        changed[draw(st.integers(0, len(changed) - 1))] = draw(st.integers(0, 255))
    return bytes(changed)


def check_parse(data: bytes) -> None:
    try:
        message = parse_dns(data)
    except DecodeError:
        return
    assert isinstance(message, DnsMessage)
    for address, names in resolve_chain(message).items():
        assert isinstance(address, str)
        assert all(isinstance(name, str) for name in names)


@settings(database=None, max_examples=500)
@given(st.binary(max_size=300))
def test_parse_arbitrary_bytes(data: bytes) -> None:
    check_parse(data)


@settings(database=None, max_examples=500)
@given(mutated(RESPONSE))
def test_parse_mutated_response(data: bytes) -> None:
    check_parse(data)


@settings(database=None, max_examples=300)
@given(st.binary(max_size=400).flatmap(chunked))
def test_tcp_arbitrary_chunks(chunks: list[bytes]) -> None:
    for event in decode_tcp(chunks):
        assert isinstance(event, DnsMessage | MalformedDns)


@settings(database=None, max_examples=300)
@given(mutated(TCP_SAMPLES["two-messages"]).flatmap(chunked))
def test_tcp_mutated_stream(chunks: list[bytes]) -> None:
    for event in decode_tcp(chunks):
        assert isinstance(event, DnsMessage | MalformedDns)


# Third-party captures: UDP payloads read with the project's reader and decoder.

DNS_PORTS = frozenset({53, 5353, 5355})


def dns_datagrams(path: Path) -> list[bytes]:
    decoder = PacketDecoder()
    payloads = []
    for packet in open_capture(path):
        segment = decoder.decode(packet)
        if segment is None or segment.transport != UDP:
            continue
        if {segment.src_port, segment.dst_port} & DNS_PORTS:
            payloads.append(segment.payload)
    return payloads


@pytest.mark.realpcap
def test_real_dns_pcap(real_pcaps: Path) -> None:
    # NOTE: the capture's last two packets are PPPoE inside two VLAN tags,
    # which PacketDecoder does not decode, so only three datagrams are read.
    messages = [parse_dns(data) for data in dns_datagrams(real_pcaps / "ndpi/dns.pcap")]
    assert len(messages) == 3
    questions = {(message.questions[0], message.is_response) for message in messages}
    assert (DnsQuestion("www.l.google.com", TYPE_AAAA), True) in questions
    assert (DnsQuestion("www.example.com", TYPE_AAAA), False) in questions
    assert (DnsQuestion("www.example.com", TYPE_AAAA), True) in questions


@pytest.mark.realpcap
def test_real_wechat_ntp_pool_queries(real_pcaps: Path) -> None:
    messages = [
        parse_dns(data) for data in dns_datagrams(real_pcaps / "ndpi/wechat.pcap")
    ]
    assert len(messages) > 100
    names = {question.name for message in messages for question in message.questions}
    assert "1.debian.pool.ntp.org" in names
    assert "2.debian.pool.ntp.org" in names


@pytest.mark.realpcap
def test_real_youtube_cname_chain(real_pcaps: Path) -> None:
    path = real_pcaps / "ndpi/tls_heur__vmess-websocket.pcapng"
    chains: dict[str, list[str]] = {}
    for data in dns_datagrams(path):
        chains.update(resolve_chain(parse_dns(data)))
    assert chains["142.250.180.142"] == ["www.youtube.com", "youtube-ui.l.google.com"]
    assert chains["2a00:1450:4002:402::200e"] == [
        "www.youtube.com",
        "youtube-ui.l.google.com",
    ]


@pytest.mark.realpcap
def test_real_bitminter_answers(real_pcaps: Path) -> None:
    path = real_pcaps / "zeek-cryptomining/bitcoin-mining-in-progress.pcap"
    chains: dict[str, list[str]] = {}
    for data in dns_datagrams(path):
        chains.update(resolve_chain(parse_dns(data)))
    assert chains["104.24.1.62"] == ["bitminter.com"]
    assert chains["104.24.0.62"] == ["bitminter.com"]
    assert chains["2400:cb00:2048:1::6818:3e"] == ["bitminter.com"]
