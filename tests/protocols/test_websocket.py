"""WebSocket frames, permessage-deflate and browser-miner messages."""

from __future__ import annotations

import json
import struct
import zlib
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detector.capture import open_capture
from detector.decode import PacketDecoder
from detector.flows import StreamReassembler
from detector.model import FIN, SYN, TCP
from detector.protocols.http import HttpDecoder
from detector.protocols.websocket import (
    MAX_MESSAGE_BYTES,
    REASON_INVALID_CONTROL_FRAME,
    REASON_INVALID_LENGTH,
    REASON_MASK_MISMATCH,
    REASON_RESERVED_BITS,
    REASON_RESERVED_OPCODE,
    REASON_TRUNCATED,
    REASON_UNEXPECTED_CONTINUATION,
    REASON_UNFINISHED_MESSAGE,
    WEBMINER_AUTH,
    WEBMINER_AUTHED,
    WEBMINER_ERROR,
    WEBMINER_HASH_ACCEPTED,
    WEBMINER_JOB,
    WEBMINER_SUBMIT,
    MalformedWebSocket,
    WebMinerMessage,
    WebSocketBinary,
    WebSocketDecoder,
    WebSocketText,
    parse_webminer,
)

TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0
MASK = b"\x37\xfa\x21\x3d"


def xor(payload: bytes, key: bytes) -> bytes:
    return bytes(byte ^ key[index % 4] for index, byte in enumerate(payload))


def frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    mask: bytes | None = None,
    rsv1: bool = False,
    length_bits: int = 0,
) -> bytes:
    """Build one frame; ``length_bits`` forces the 16- or 64-bit length form."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if length_bits == 64 or size > 0xFFFF:
        second, extended = 127, struct.pack("!Q", size)
    elif length_bits == 16 or size > 125:
        second, extended = 126, struct.pack("!H", size)
    else:
        second, extended = size, b""
    if mask is not None:
        second |= 0x80
        extended += mask
        payload = xor(payload, mask)
    return bytes([first, second]) + extended + payload


def deflate(messages: list[bytes]) -> list[bytes]:
    """Compress messages as permessage-deflate does with context takeover."""
    compressor = zlib.compressobj(wbits=-15)
    output = []
    for message in messages:
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(b"\x00\x00\xff\xff")
        output.append(data[:-4])
    return output


def webminer(kind: str, **params: object) -> str:
    return json.dumps({"type": kind, "params": params})


BLOB = "0707" + "ab" * 74
AUTH = webminer("auth", site_key="Q3Kx7pVdX4siteKey", type="anonymous", user=None)
JOB = webminer("job", job_id="Yd7Q+7Ld0UmYbE3JLbpnDz", blob=BLOB, target="b88d0600")
SUBMIT = webminer(
    "submit", job_id="Yd7Q+7Ld0UmYbE3JLbpnDz", nonce="1a2b3c4d", result="e" * 64
)

# Client frames are masked, server frames are not (RFC 6455 section 5.1).
CLIENT_SAMPLES = {
    "auth": frame(TEXT, AUTH.encode(), mask=MASK),
    "fragmented": frame(TEXT, SUBMIT.encode()[:20], fin=False, mask=MASK)
    + frame(PING, b"ping", mask=MASK)
    + frame(CONTINUATION, SUBMIT.encode()[20:], mask=MASK),
    "length-64": frame(BINARY, bytes(range(256)) * 2, mask=MASK, length_bits=64),
    "compressed": frame(TEXT, deflate([SUBMIT.encode()])[0], mask=MASK, rsv1=True),
}
SERVER_SAMPLES = {
    "job-length-16": frame(TEXT, JOB.encode()),
    "pong-then-text": frame(PONG, b"") + frame(TEXT, b'{"type":"hash_accepted"}'),
    "empty-binary": frame(BINARY, b""),
}
EXPECTED = {
    "auth": [WebSocketText(AUTH)],
    "fragmented": [WebSocketText(SUBMIT)],
    "length-64": [WebSocketBinary(bytes(range(256)) * 2)],
    "compressed": [WebSocketText(SUBMIT)],
    "job-length-16": [WebSocketText(JOB)],
    "pong-then-text": [WebSocketText('{"type":"hash_accepted"}')],
    "empty-binary": [WebSocketBinary(b"")],
}
ALL_SAMPLES = [(name, True) for name in CLIENT_SAMPLES] + [
    (name, False) for name in SERVER_SAMPLES
]


def sample(name: str) -> bytes:
    return CLIENT_SAMPLES.get(name) or SERVER_SAMPLES[name]


def decode_chunks(chunks: list[bytes], masked: bool) -> list[object]:
    decoder = WebSocketDecoder(masked)
    events: list[object] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.finish())
    return events


def one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[index : index + 1] for index in range(len(data))]


@pytest.mark.parametrize(("name", "masked"), ALL_SAMPLES)
def test_sample_whole(name: str, masked: bool) -> None:
    assert decode_chunks([sample(name)], masked) == EXPECTED[name]


@pytest.mark.parametrize(("name", "masked"), ALL_SAMPLES)
def test_sample_byte_by_byte(name: str, masked: bool) -> None:
    assert decode_chunks(one_byte_chunks(sample(name)), masked) == EXPECTED[name]


@pytest.mark.parametrize(("name", "masked"), ALL_SAMPLES)
def test_sample_with_trailing_bytes(name: str, masked: bool) -> None:
    decoder = WebSocketDecoder(masked)
    next_frame = frame(TEXT, b"next", mask=MASK if masked else None)
    assert decoder.feed(sample(name) + next_frame[:3]) == EXPECTED[name]
    tail = decoder.finish()
    assert len(tail) == 1
    assert isinstance(tail[0], MalformedWebSocket)
    assert tail[0].reason == REASON_TRUNCATED


def test_frame_length_forms() -> None:
    for bits in (0, 16, 64):
        data = frame(TEXT, b"short", length_bits=bits)
        assert decode_chunks([data], False) == [WebSocketText("short")]


def test_messages_back_to_back() -> None:
    data = b"".join(CLIENT_SAMPLES.values())
    expected = [event for name in CLIENT_SAMPLES for event in EXPECTED[name]]
    assert decode_chunks(one_byte_chunks(data), True) == expected


@pytest.mark.parametrize(
    ("data", "masked", "reason"),
    [
        (frame(TEXT, b"x"), True, REASON_MASK_MISMATCH),
        (frame(TEXT, b"x", mask=MASK), False, REASON_MASK_MISMATCH),
        (b"\xa1\x01x", False, REASON_RESERVED_BITS),
        (b"\x91\x01x", False, REASON_RESERVED_BITS),
        (frame(0x3, b"x"), False, REASON_RESERVED_OPCODE),
        (frame(0xB, b"x"), False, REASON_RESERVED_OPCODE),
        (frame(PING, b"x", fin=False), False, REASON_INVALID_CONTROL_FRAME),
        (frame(PING, b"x" * 126), False, REASON_INVALID_CONTROL_FRAME),
        (frame(CLOSE, b"\x03\xe8", rsv1=True), False, REASON_INVALID_CONTROL_FRAME),
        (frame(CONTINUATION, b"x"), False, REASON_UNEXPECTED_CONTINUATION),
        (
            frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"),
            False,
            REASON_UNFINISHED_MESSAGE,
        ),
        (
            frame(TEXT, b"a", fin=False, rsv1=True)
            + frame(CONTINUATION, b"b", rsv1=True),
            False,
            REASON_RESERVED_BITS,
        ),
        (b"\x82\x7f" + b"\x80" + bytes(7), False, REASON_INVALID_LENGTH),
        (b"GET / HTTP/1.1\r\n", False, REASON_RESERVED_OPCODE),
    ],
    ids=[
        "unmasked-client",
        "masked-server",
        "rsv2",
        "rsv3",
        "opcode-3",
        "opcode-11",
        "fragmented-ping",
        "long-ping",
        "compressed-close",
        "continuation-first",
        "text-inside-text",
        "rsv1-on-continuation",
        "length-msb",
        "http-text",
    ],
)
def test_framing_errors(data: bytes, masked: bool, reason: str) -> None:
    decoder = WebSocketDecoder(masked)
    events = decoder.feed(data)
    assert len(events) == 1
    malformed = events[0]
    assert isinstance(malformed, MalformedWebSocket)
    assert malformed.reason == reason
    assert decoder.feed(frame(TEXT, b"later")) == []
    assert decoder.discarded_bytes > 0
    assert decoder.finish() == []


def test_close_frame_ends_stream() -> None:
    decoder = WebSocketDecoder(False)
    data = frame(TEXT, b"bye") + frame(CLOSE, b"\x03\xe8") + frame(TEXT, b"after")
    assert decoder.feed(data) == [WebSocketText("bye")]
    assert decoder.feed(frame(TEXT, b"more")) == []
    assert decoder.finish() == []
    assert decoder.discarded_bytes == 0


def test_oversized_message_skipped() -> None:
    big = frame(BINARY, b"\x00" * (MAX_MESSAGE_BYTES + 1), mask=MASK)
    after = frame(TEXT, AUTH.encode(), mask=MASK)
    decoder = WebSocketDecoder(True)
    events = []
    for start in range(0, len(big + after), 1000):
        events.extend(decoder.feed((big + after)[start : start + 1000]))
    assert events == [WebSocketText(AUTH)]
    assert decoder.skipped_messages == 1
    assert decoder.finish() == []


def test_oversized_fragmented_message_skipped() -> None:
    part = b"p" * (MAX_MESSAGE_BYTES // 2 + 1)
    data = frame(TEXT, part, fin=False) + frame(PING, b"")
    data += frame(CONTINUATION, part, fin=False) + frame(CONTINUATION, b"tail")
    data += frame(TEXT, b"ok")
    decoder = WebSocketDecoder(False)
    assert decoder.feed(data) == [WebSocketText("ok")]
    assert decoder.skipped_messages == 1


def test_message_at_size_limit_kept() -> None:
    data = frame(BINARY, b"\x01" * MAX_MESSAGE_BYTES)
    events = decode_chunks([data], False)
    assert events == [WebSocketBinary(b"\x01" * MAX_MESSAGE_BYTES)]


def test_empty_oversized_fragment_sequence() -> None:
    part = b"q" * MAX_MESSAGE_BYTES
    data = frame(BINARY, part, fin=False) + frame(CONTINUATION, b"x", fin=False)
    data += frame(CONTINUATION, b"") + frame(BINARY, b"next")
    decoder = WebSocketDecoder(False)
    assert decoder.feed(data) == [WebSocketBinary(b"next")]
    assert decoder.skipped_messages == 1


# permessage-deflate (RFC 7692).


def test_compressed_messages_share_window() -> None:
    first, second = deflate([JOB.encode(), JOB.encode()])
    assert len(second) < len(first) // 2
    data = frame(TEXT, first, rsv1=True) + frame(TEXT, second, rsv1=True)
    assert decode_chunks(one_byte_chunks(data), False) == [
        WebSocketText(JOB),
        WebSocketText(JOB),
    ]


def test_compressed_fragmented_message() -> None:
    payload = deflate([SUBMIT.encode()])[0]
    data = frame(TEXT, payload[:10], fin=False, rsv1=True, mask=MASK)
    data += frame(CONTINUATION, payload[10:], mask=MASK)
    assert decode_chunks([data], True) == [WebSocketText(SUBMIT)]


def test_compressed_binary_message() -> None:
    payload = deflate([b"\x00\x01" * 500])[0]
    assert decode_chunks([frame(BINARY, payload, rsv1=True)], False) == [
        WebSocketBinary(b"\x00\x01" * 500)
    ]


def test_lost_window_counts_undecodable() -> None:
    huge = b"A" * (MAX_MESSAGE_BYTES + 10)
    first, second = deflate([huge, huge[:1000]])
    fresh = deflate([b'{"type":"ok"}'])[0]
    decoder = WebSocketDecoder(False)
    # The first message inflates beyond the limit, so its window is lost and
    # the second, which refers back to it, cannot be inflated.
    events = decoder.feed(frame(TEXT, first, rsv1=True))
    events += decoder.feed(frame(TEXT, second, rsv1=True))
    events += decoder.feed(frame(TEXT, fresh, rsv1=True))
    assert events == [WebSocketText('{"type":"ok"}')]
    assert decoder.skipped_messages == 1
    assert decoder.undecodable_messages == 1


def test_invalid_deflate_data_undecodable() -> None:
    decoder = WebSocketDecoder(False)
    events = decoder.feed(frame(TEXT, b"\xff\xff\xff\xff", rsv1=True))
    events += decoder.feed(frame(TEXT, b"plain"))
    assert events == [WebSocketText("plain")]
    assert decoder.undecodable_messages == 1


def test_invalid_utf8_text_undecodable() -> None:
    decoder = WebSocketDecoder(False)
    events = decoder.feed(frame(TEXT, b"\xc3\x28") + frame(TEXT, b"fine"))
    assert events == [WebSocketText("fine")]
    assert decoder.undecodable_messages == 1


def test_gap_stops_decoder() -> None:
    decoder = WebSocketDecoder(True)
    data = CLIENT_SAMPLES["auth"]
    assert decoder.feed(data[:20]) == []
    decoder.gap()
    assert decoder.feed(data[20:]) == []
    assert decoder.discarded_bytes == len(data)
    assert decoder.finish() == []


# Browser-miner messages (coin-hive protocol).


@pytest.mark.parametrize(
    ("text", "kind", "params"),
    [
        (
            AUTH,
            WEBMINER_AUTH,
            {"site_key": "Q3Kx7pVdX4siteKey", "type": "anonymous", "user": None},
        ),
        (
            webminer("auth", site_key="k", type="user", user="alice", goal=0),
            WEBMINER_AUTH,
            {"site_key": "k", "type": "user", "user": "alice"},
        ),
        (
            webminer("authed", token="", hashes=0),
            WEBMINER_AUTHED,
            {"token": "", "hashes": 0},
        ),
        (
            JOB,
            WEBMINER_JOB,
            {"job_id": "Yd7Q+7Ld0UmYbE3JLbpnDz", "blob": BLOB, "target": "b88d0600"},
        ),
        (
            webminer("job", job_id="1", blob=BLOB.upper(), target="ffffffff00000000"),
            WEBMINER_JOB,
            {"job_id": "1", "blob": BLOB.upper(), "target": "ffffffff00000000"},
        ),
        (
            SUBMIT,
            WEBMINER_SUBMIT,
            {
                "job_id": "Yd7Q+7Ld0UmYbE3JLbpnDz",
                "nonce": "1a2b3c4d",
                "result": "e" * 64,
            },
        ),
        (
            webminer("hash_accepted", hashes=256),
            WEBMINER_HASH_ACCEPTED,
            {"hashes": 256},
        ),
        (
            webminer("error", error="invalid_site_key"),
            WEBMINER_ERROR,
            {"error": "invalid_site_key"},
        ),
    ],
    ids=[
        "auth",
        "auth-user",
        "authed",
        "job",
        "job-upper-hex",
        "submit",
        "hash-accepted",
        "error",
    ],
)
def test_webminer_shapes(text: str, kind: str, params: dict[str, object]) -> None:
    assert parse_webminer(text) == WebMinerMessage(kind, params)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        '"auth"',
        '{"type": "auth"}',
        '{"type": "auth", "params": []}',
        webminer("auth", site_key="", type="anonymous", user=None),
        webminer("auth", site_key="k", type="admin", user=None),
        webminer("auth", site_key="k", type="user", user=7),
        webminer("authed", token="t", hashes=True),
        webminer("authed", token="t", hashes=-1),
        webminer("job", job_id="1", blob="zz" * 76, target="b88d0600"),
        webminer("job", job_id="1", blob=BLOB[:-1], target="b88d0600"),
        webminer("job", job_id="1", blob="ab" * 42, target="b88d0600"),
        webminer("job", job_id="1", blob="ab" * 408, target="b88d0600"),
        webminer("job", job_id="1", blob=BLOB, target="b88d060"),
        webminer("job", job_id="", blob=BLOB, target="b88d0600"),
        webminer("submit", job_id="1", nonce="1a2b3c4d5", result="e" * 64),
        webminer("submit", job_id="1", nonce="1a2b3c4d", result="e" * 63),
        webminer("submit", job_id="1", nonce="1a2b3c4g", result="e" * 64),
        webminer("hash_accepted", hashes="256"),
        webminer("error"),
        webminer("Job", job_id="1", blob=BLOB, target="b88d0600"),
        webminer("message", text="job submit auth"),
        '{"type": "job", "params": {"job": {"blob": "' + BLOB + '"}}}',
        '{"params": {"hashes": 1}, "kind": "hash_accepted"}',
        "[" * 5000,
    ],
    ids=[
        "empty",
        "not-json",
        "array",
        "string",
        "no-params",
        "params-array",
        "auth-empty-key",
        "auth-unknown-type",
        "auth-user-number",
        "authed-bool-hashes",
        "authed-negative",
        "job-not-hex",
        "job-odd-blob",
        "job-blob-short",
        "job-blob-long",
        "job-target-7",
        "job-empty-id",
        "submit-nonce-9",
        "submit-result-63",
        "submit-nonce-not-hex",
        "hashes-string",
        "error-missing",
        "type-case",
        "chat-message",
        "nested-blob",
        "no-type-key",
        "deep-nesting",
    ],
)
def test_webminer_look_alikes(text: str) -> None:
    assert parse_webminer(text) is None


# Hostile input.


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    bounds = [0, *cuts, len(data)]
    return [data[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


@st.composite
def hostile_streams(draw: st.DrawFn) -> tuple[list[bytes], bool]:
    masked = draw(st.booleans())
    prefix = draw(st.sampled_from([b"", b"\x81", b"\xc1", b"\x01", b"\x82\xfe"]))
    data = prefix + draw(st.binary(max_size=400))
    return draw(chunked(data)), masked


@settings(database=None, max_examples=500)
@given(hostile_streams())
def test_hostile_streams(stream: tuple[list[bytes], bool]) -> None:
    chunks, masked = stream
    for event in decode_chunks(chunks, masked):
        assert isinstance(event, WebSocketText | WebSocketBinary | MalformedWebSocket)


@settings(database=None, max_examples=300)
@given(st.text(max_size=200))
def test_webminer_arbitrary_text(text: str) -> None:
    result = parse_webminer(text)
    assert result is None or isinstance(result, WebMinerMessage)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(database=None, max_examples=300)
@given(
    st.sampled_from(["auth", "authed", "job", "submit", "hash_accepted", "error"]),
    st.dictionaries(
        st.sampled_from(["site_key", "type", "user", "token", "hashes", "job_id"]),
        JSON_VALUES,
    ),
)
# An unhashable value where a text is expected once raised TypeError.
@example("auth", {"type": [], "site_key": "0"})
@example("auth", {"type": {}, "site_key": "key"})
def test_webminer_arbitrary_params(kind: str, params: dict[str, object]) -> None:
    result = parse_webminer(json.dumps({"type": kind, "params": params}))
    assert result is None or result.kind == kind


# Third-party captures, reassembled by the project's own reader, decoder and
# reassembler.

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
def test_real_plain_websocket_chat(real_pcaps: Path) -> None:
    # The capture starts after the HTTP upgrade, with the first frames.
    streams = tcp_streams(real_pcaps / "ndpi/websocket.pcap")
    server = [key for key in streams if key[1] == 12345]
    client = [key for key in streams if key[3] == 12345]
    assert len(server) == 1
    assert len(client) == 1
    from_server = decode_chunks([streams[server[0]]], masked=False)
    from_client = decode_chunks([streams[client[0]]], masked=True)
    assert from_server[0] == WebSocketText("Welcome, 192.168.43.1 !")
    assert len(from_server) == 3
    assert all(isinstance(event, WebSocketText) for event in from_server)
    assert from_server[1].text.endswith("say: test message")  # type: ignore[attr-defined]
    assert from_client == [
        WebSocketText("test message"),
        WebSocketText("hello websocket"),
    ]


@pytest.mark.realpcap
def test_real_vmess_over_websocket(real_pcaps: Path) -> None:
    streams = tcp_streams(real_pcaps / "ndpi/tls_heur__vmess-websocket.pcapng")
    client = [key for key in streams if key[3] == 1234]
    assert len(client) == 1
    key = client[0]
    for direction, masked in ((key, True), ((key[2], key[3], key[0], key[1]), False)):
        data = streams[direction]
        http = HttpDecoder()
        http.feed(data)
        assert http.tunnel_offset is not None
        decoder = WebSocketDecoder(masked)
        events = decoder.feed(data[http.tunnel_offset :]) + decoder.finish()
        assert events
        assert all(isinstance(event, WebSocketBinary) for event in events)
        assert decoder.skipped_messages == 0
        assert decoder.undecodable_messages == 0
