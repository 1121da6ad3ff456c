"""HttpDecoder on getwork and getblocktemplate traffic, pipelined, chunked and cut."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.protocols.http import (
    MAX_BODY_BYTES,
    MAX_EXCERPT_BYTES,
    MAX_HEADER_BYTES,
    REASON_HEADER_TOO_LONG,
    REASON_INVALID_CHUNK,
    REASON_INVALID_CONTENT_LENGTH,
    REASON_INVALID_HEADER,
    REASON_INVALID_START_LINE,
    REASON_NOT_HTTP,
    REASON_TRUNCATED,
    REASON_UNSUPPORTED_CODING,
    HttpDecoder,
    HttpEvent,
    HttpRequest,
    HttpResponse,
    MalformedHttp,
)

GETWORK_BODY = b'{"method": "getwork", "params": [], "id":0}'
GETWORK_REQUEST = (
    b"POST / HTTP/1.1\r\n"
    b"Host: pool.example:8332\r\n"
    b"Authorization: Basic dXNlcjp4\r\n"
    b"Accept: */*\r\n"
    b"Accept-Encoding: deflate, gzip\r\n"
    b"Content-Type: application/json\r\n"
    b"User-Agent: cpuminer/2.5.1\r\n"
    b"X-Mining-Extensions: midstate\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n" % len(GETWORK_BODY)
) + GETWORK_BODY

GETWORK_RESULT = (
    b'{"result":{"midstate":"' + b"ab" * 32 + b'","data":"' + b"00" * 128 + b'",'
    b'"hash1":"' + b"00" * 64 + b'","target":"' + b"ff" * 32 + b'"},'
    b'"error":null,"id":0}'
)
GETWORK_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"X-Long-Polling: /LP\r\n"
    b"X-Stratum: stratum+tcp://pool.example:3333\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n" % len(GETWORK_RESULT)
) + GETWORK_RESULT

GBT_BODY = (
    b'{"method":"getblocktemplate","params":[{"capabilities":["coinbasetxn",'
    b'"workid","coinbase/append"],"rules":["segwit"]}],"id":0}'
)
GBT_CHUNKS = [GBT_BODY[:40], GBT_BODY[40:]]
CHUNKED_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
    + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in GBT_CHUNKS)
    + b"0\r\n"
    b"X-Trailer: done\r\n"
    b"\r\n"
)

SAMPLES = {
    "getwork-request": GETWORK_REQUEST,
    "getwork-response": GETWORK_RESPONSE,
    "chunked-response": CHUNKED_RESPONSE,
}


def decode_chunks(chunks: list[bytes]) -> list[HttpEvent]:
    decoder = HttpDecoder()
    events: list[HttpEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.finish())
    return events


def one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[index : index + 1] for index in range(len(data))]


def test_getwork_request_fields() -> None:
    events = decode_chunks([GETWORK_REQUEST])
    assert len(events) == 1
    request = events[0]
    assert isinstance(request, HttpRequest)
    assert request.method == "POST"
    assert request.target == "/"
    assert request.version == "HTTP/1.1"
    assert ("user-agent", "cpuminer/2.5.1") in request.headers
    assert ("x-mining-extensions", "midstate") in request.headers
    assert request.headers[0] == ("host", "pool.example:8332")
    assert request.body == GETWORK_BODY
    assert request.body_length == len(GETWORK_BODY)


def test_getwork_response_fields() -> None:
    events = decode_chunks([GETWORK_RESPONSE])
    assert len(events) == 1
    response = events[0]
    assert isinstance(response, HttpResponse)
    assert response.status == 200
    assert response.reason == "OK"
    assert response.version == "HTTP/1.1"
    assert ("x-stratum", "stratum+tcp://pool.example:3333") in response.headers
    assert response.body == GETWORK_RESULT


def test_chunked_response_body_joined() -> None:
    events = decode_chunks([CHUNKED_RESPONSE])
    assert len(events) == 1
    response = events[0]
    assert isinstance(response, HttpResponse)
    assert response.body == GBT_BODY
    assert response.body_length == len(GBT_BODY)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_fed_byte_by_byte(name: str) -> None:
    data = SAMPLES[name]
    whole = decode_chunks([data])
    assert len(whole) == 1
    assert decode_chunks(one_byte_chunks(data)) == whole


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_with_trailing_bytes(name: str) -> None:
    data = SAMPLES[name]
    decoder = HttpDecoder()
    events = decoder.feed(data + b"POST / HT")
    assert events == decode_chunks([data])
    tail = decoder.finish()
    assert len(tail) == 1
    assert isinstance(tail[0], MalformedHttp)
    assert tail[0].reason == REASON_TRUNCATED
    assert tail[0].excerpt == b"POST / HT"


def test_pipelined_requests_in_one_feed() -> None:
    events = HttpDecoder().feed(GETWORK_REQUEST * 3)
    assert len(events) == 3
    assert all(isinstance(event, HttpRequest) for event in events)
    assert all(event.body == GETWORK_BODY for event in events)  # type: ignore[union-attr]


def test_responses_back_to_back() -> None:
    data = GETWORK_RESPONSE + CHUNKED_RESPONSE + GETWORK_RESPONSE
    events = decode_chunks(one_byte_chunks(data))
    assert [type(event) for event in events] == [HttpResponse] * 3
    assert [event.body for event in events] == [  # type: ignore[union-attr]
        GETWORK_RESULT,
        GBT_BODY,
        GETWORK_RESULT,
    ]


def test_response_without_length_ends_at_finish() -> None:
    decoder = HttpDecoder()
    assert decoder.feed(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nfirst ") == []
    assert decoder.feed(b"second") == []
    events = decoder.finish()
    assert len(events) == 1
    response = events[0]
    assert isinstance(response, HttpResponse)
    assert response.body == b"first second"


def test_request_without_length_has_empty_body() -> None:
    events = HttpDecoder().feed(b"GET /getheight HTTP/1.1\r\nHost: node\r\n\r\n")
    assert len(events) == 1
    request = events[0]
    assert isinstance(request, HttpRequest)
    assert request.target == "/getheight"
    assert request.body == b""


def test_bare_lf_line_ends_accepted() -> None:
    events = decode_chunks([b"POST /json_rpc HTTP/1.1\nContent-Length: 2\n\n{}"])
    assert len(events) == 1
    assert isinstance(events[0], HttpRequest)
    assert events[0].body == b"{}"


def test_empty_lines_between_messages_skipped() -> None:
    events = decode_chunks(one_byte_chunks(GETWORK_REQUEST + b"\r\n" + GETWORK_REQUEST))
    assert [type(event) for event in events] == [HttpRequest, HttpRequest]


def test_header_names_lowercased_values_trimmed() -> None:
    events = HttpDecoder().feed(
        b"GET / HTTP/1.1\r\nX-Mining-Hashrate:   1234  \r\n\r\n"
    )
    assert isinstance(events[0], HttpRequest)
    assert events[0].headers == (("x-mining-hashrate", "1234"),)


def test_folded_header_joined() -> None:
    events = HttpDecoder().feed(b"GET / HTTP/1.1\r\nX-A: one\r\n  two\r\n\r\n")
    assert isinstance(events[0], HttpRequest)
    assert events[0].headers == (("x-a", "one two"),)


def test_status_without_reason() -> None:
    events = decode_chunks([b"HTTP/1.1 204\r\n\r\n"])
    assert isinstance(events[0], HttpResponse)
    assert events[0].status == 204
    assert events[0].reason == ""


@pytest.mark.parametrize("status", [100, 204, 304])
def test_status_without_body(status: int) -> None:
    head = b"HTTP/1.1 %d X\r\nContent-Length: 5\r\n\r\n" % status
    events = HttpDecoder().feed(head + GETWORK_RESPONSE)
    assert [type(event) for event in events] == [HttpResponse, HttpResponse]
    assert events[0].body == b""  # type: ignore[union-attr]


def test_head_response_has_no_body() -> None:
    decoder = HttpDecoder()
    decoder.expect_response_to("HEAD")
    decoder.expect_response_to("POST")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n"
    events = decoder.feed(head + GETWORK_RESPONSE)
    assert [type(event) for event in events] == [HttpResponse, HttpResponse]
    assert events[1].body == GETWORK_RESULT  # type: ignore[union-attr]


def test_connect_request_then_tunnel() -> None:
    decoder = HttpDecoder()
    connect = b"CONNECT pool.example:3333 HTTP/1.1\r\nHost: pool.example:3333\r\n\r\n"
    events = decoder.feed(connect + b'{"id":1,"method":"login"}\n')
    assert len(events) == 1
    request = events[0]
    assert isinstance(request, HttpRequest)
    assert request.method == "CONNECT"
    assert request.target == "pool.example:3333"
    assert decoder.tunnel_offset == len(connect)
    assert decoder.feed(b"more tunnel bytes") == []
    assert decoder.finish() == []


def test_connect_refused_then_retried() -> None:
    connect = b"CONNECT pool.example:443 HTTP/1.1\r\n\r\n"
    events = decode_chunks([connect + connect])
    assert [type(event) for event in events] == [HttpRequest, HttpRequest]


def test_connect_response_starts_tunnel() -> None:
    decoder = HttpDecoder()
    decoder.expect_response_to("CONNECT")
    head = b"HTTP/1.1 200 Connection established\r\n\r\n"
    events = decoder.feed(head + b"\x16\x03\x01\x00\x05hello")
    assert len(events) == 1
    assert isinstance(events[0], HttpResponse)
    assert events[0].body == b""
    assert decoder.tunnel_offset == len(head)


def test_switching_protocols_starts_tunnel() -> None:
    decoder = HttpDecoder()
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
    events = decoder.feed(head + b"\x81\x05hello")
    assert len(events) == 1
    assert decoder.tunnel_offset == len(head)


def test_websocket_request_then_frames() -> None:
    decoder = HttpDecoder()
    upgrade = (
        b"GET /proxy HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )
    events = decoder.feed(upgrade) + decoder.feed(b"\x81\x85mask!")
    assert len(events) == 1
    assert decoder.tunnel_offset == len(upgrade)


def test_large_body_kept_up_to_limit() -> None:
    size = MAX_BODY_BYTES + 1000
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
    decoder = HttpDecoder()
    events = decoder.feed(head)
    for _ in range(size // 65536):
        events += decoder.feed(b"a" * 65536)
    events += decoder.feed(b"a" * (size % 65536))
    assert len(events) == 1
    response = events[0]
    assert isinstance(response, HttpResponse)
    assert len(response.body) == MAX_BODY_BYTES
    assert response.body_length == size


def test_gap_in_body_resyncs_at_next_message() -> None:
    decoder = HttpDecoder()
    assert decoder.feed(GETWORK_REQUEST[:-10]) == []
    decoder.gap()
    events = decoder.feed(b'"id":0}\r\n' + GETWORK_REQUEST)
    assert len(events) == 1
    assert isinstance(events[0], HttpRequest)
    assert events[0].body == GETWORK_BODY
    assert decoder.discarded_bytes > 0


def test_gap_resync_skips_cut_start_line() -> None:
    decoder = HttpDecoder()
    decoder.gap()
    events = decoder.feed(b"ST / HTTP/1.1\r\nHost: x\r\n\r\n" + GETWORK_REQUEST)
    assert len(events) == 1
    assert isinstance(events[0], HttpRequest)
    assert events[0].headers[0] == ("host", "pool.example:8332")


def test_gap_resync_byte_by_byte() -> None:
    decoder = HttpDecoder()
    decoder.gap()
    events: list[HttpEvent] = []
    for chunk in one_byte_chunks(b"junk\n" + GETWORK_RESPONSE):
        events += decoder.feed(chunk)
    assert [type(event) for event in events] == [HttpResponse]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"id":1,"method":"login"}\n', REASON_NOT_HTTP),
        (b"\x16\x03\x01\x02\x00\x01", REASON_NOT_HTTP),
        (b"GET/ HTTP/1.1\r\n\r\n", REASON_NOT_HTTP),
        (b"GET / HTTP/1.1 extra\r\n\r\n", REASON_INVALID_START_LINE),
        (b"HTTP/1.1 2000 OK\r\n\r\n", REASON_INVALID_START_LINE),
        (b"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", REASON_INVALID_HEADER),
        (b"GET / HTTP/1.1\r\n continued\r\n\r\n", REASON_INVALID_HEADER),
        (
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            REASON_INVALID_CONTENT_LENGTH,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            REASON_INVALID_CONTENT_LENGTH,
        ),
        (
            b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
            REASON_INVALID_CONTENT_LENGTH,
        ),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            REASON_UNSUPPORTED_CODING,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            REASON_INVALID_CHUNK,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX",
            REASON_INVALID_CHUNK,
        ),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEADER_BYTES, REASON_HEADER_TOO_LONG),
    ],
)
def test_not_http_reported_once_then_ignored(data: bytes, reason: str) -> None:
    for chunks in ([data], one_byte_chunks(data)):
        decoder = HttpDecoder()
        events: list[HttpEvent] = []
        for chunk in chunks:
            events += decoder.feed(chunk)
        events += decoder.feed(GETWORK_REQUEST)
        events += decoder.finish()
        assert len(events) == 1
        assert isinstance(events[0], MalformedHttp)
        assert events[0].reason == reason
        assert len(events[0].excerpt) <= MAX_EXCERPT_BYTES
        assert decoder.discarded_bytes >= len(GETWORK_REQUEST)


def test_repeated_content_length_allowed() -> None:
    data = b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}"
    events = decode_chunks([data])
    assert isinstance(events[0], HttpRequest)
    assert events[0].body == b"{}"


def test_stream_cut_inside_body() -> None:
    events = decode_chunks([GETWORK_REQUEST[:-5]])
    assert len(events) == 1
    assert isinstance(events[0], MalformedHttp)
    assert events[0].reason == REASON_TRUNCATED


TOKENS = st.sampled_from(
    [
        b"GET ",
        b"POST ",
        b"HTTP/1.1 ",
        b"200 ",
        b"/ ",
        b"HTTP/1.1",
        b"\r\n",
        b"\n",
        b": ",
        b"Content-Length",
        b"Transfer-Encoding",
        b"chunked",
        b"5",
        b"0",
        b"ff",
        b";",
        b"x",
        b"\x00",
        b"{",
    ]
)


@settings(database=None)
@given(
    data=st.one_of(
        st.binary(max_size=1024),
        st.lists(TOKENS, max_size=60).map(b"".join),
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=1024), max_size=20),
    gap_at=st.one_of(st.none(), st.integers(min_value=0, max_value=20)),
)
def test_arbitrary_bytes_give_only_messages(
    data: bytes, cuts: list[int], gap_at: int | None
) -> None:
    decoder = HttpDecoder()
    bounds = sorted({0, len(data), *(cut for cut in cuts if cut <= len(data))})
    events: list[HttpEvent] = []
    for index, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
        if index == gap_at:
            decoder.gap()
        events += decoder.feed(data[start:end])
    events += decoder.finish()
    for event in events:
        assert isinstance(event, HttpRequest | HttpResponse | MalformedHttp)
    assert sum(isinstance(event, MalformedHttp) for event in events) <= 2


@settings(database=None)
@given(
    bodies=st.lists(st.binary(max_size=300), min_size=1, max_size=4),
    chunk_size=st.integers(min_value=1, max_value=50),
)
def test_pipelined_bodies_any_chunking(bodies: list[bytes], chunk_size: int) -> None:
    data = b"".join(
        b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        for body in bodies
    )
    chunks = [
        data[index : index + chunk_size] for index in range(0, len(data), chunk_size)
    ]
    events = decode_chunks(chunks)
    assert [event.body for event in events] == bodies  # type: ignore[union-attr]


def test_endless_method_token_rejected() -> None:
    decoder = HttpDecoder()
    events: list[HttpEvent] = []
    for _ in range(MAX_HEADER_BYTES // 1024 + 2):
        events += decoder.feed(b"A" * 1024)
    assert len(events) == 1
    assert isinstance(events[0], MalformedHttp)
    assert events[0].reason == REASON_HEADER_TOO_LONG
