"""JsonLineDecoder on Stratum lines of every dialect, split, damaged and hostile.

Wallets in the samples are made-up strings of the right length and alphabet,
never real addresses.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.protocols.jsonlines import (
    MAX_EXCERPT_BYTES,
    MAX_LINE_BYTES,
    MAX_NESTING_DEPTH,
    REASON_INVALID_JSON,
    REASON_INVALID_UTF8,
    REASON_NOT_CONTAINER,
    REASON_NOT_FINITE,
    REASON_NUMBER_OUT_OF_RANGE,
    REASON_TOO_DEEP,
    REASON_TOO_LONG,
    JsonLineDecoder,
    JsonMessage,
    MalformedLine,
)

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
MONERO_WALLET = "4A" + (BASE58 * 2)[:93]
ETHEREUM_WALLET = "0x" + "ab12" * 10
H64 = "0f" * 32
BLOB = "0e0e" + "ab" * 74

# Each sample is a stream direction: the bytes on the wire and the methods (or
# None for a result without method) of the messages in it, in order.
STRATUM_SAMPLES: dict[str, tuple[bytes, list[str | None]]] = {
    "monero-to-server": (
        (
            '{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"'
            + MONERO_WALLET
            + '.rig1","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2'
            ' gcc/11.2.0","rigid":"","algo":["rx/0","cn/r"]}}\n'
            '{"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"s1",'
            '"job_id":"j1","nonce":"0a0b0c0d","result":"' + H64 + '"}}\n'
            '{"id":3,"jsonrpc":"2.0","method":"keepalived","params":{"id":"s1"}}\n'
        ).encode(),
        ["login", "submit", "keepalived"],
    ),
    "monero-to-client": (
        (
            '{"id":1,"jsonrpc":"2.0","error":null,"result":{"id":"s1","job":{"blob":"'
            + BLOB
            + '","job_id":"j1","target":"b88d0600","algo":"rx/0","height":3000000,'
            '"seed_hash":"' + H64 + '"},"extensions":["algo","nicehash","connect",'
            '"tls","keepalive"],"status":"OK"}}\n'
            '{"jsonrpc":"2.0","method":"job","params":{"blob":"' + BLOB + '",'
            '"job_id":"j2","target":"b88d0600","seed_hash":"' + H64 + '"}}\n'
            '{"id":2,"jsonrpc":"2.0","error":null,"result":{"status":"OK"}}\n'
        ).encode(),
        [None, "job", None],
    ),
    "stratum-v1-to-server": (
        (
            b'{"params":["cgminer/4.10.0"],"id":1,"method":"mining.subscribe"}\n'
            b'{"id": 2, "method": "mining.authorize", "params": ["user.worker", "x"]}\n'
            b'{"id":3,"method":"mining.configure","params":[["version-rolling"],'
            b'{"version-rolling.mask":"ffffffff"}]}\n'
            b'{"params": ["user.worker", "j1", "00000001", "5f5e1000", "1a2b3c4d"],'
            b' "id": 4, "method": "mining.submit"}\n'
            b'{"id":5,"method":"mining.suggest_difficulty","params":[512]}\n'
        ),
        [
            "mining.subscribe",
            "mining.authorize",
            "mining.configure",
            "mining.submit",
            "mining.suggest_difficulty",
        ],
    ),
    "stratum-v1-to-client": (
        (
            '{"id":1,"result":[[["mining.set_difficulty","d1"],["mining.notify","n1"]],'
            '"08000002",4],"error":null}\n'
            '{"id":null,"method":"mining.set_difficulty","params":[1024]}\n'
            '{"id":null,"method":"mining.notify","params":["j1","' + H64 + '",'
            '"01000000","ffffffff",["' + H64 + '","' + H64 + '"],"20000000",'
            '"1705ae3a","5f5e1000",true]}\n'
            '{"id":null,"method":"client.reconnect","params":["pool.example",'
            '"3333",0]}\n'
        ).encode(),
        [None, "mining.set_difficulty", "mining.notify", "client.reconnect"],
    ),
    "stratum-v1-zcash-to-client": (
        (
            '{"id":null,"method":"mining.set_target","params":["' + H64 + '"]}\n'
            '{"id":null,"method":"mining.notify","params":["j1","04000000","'
            + H64
            + '","'
            + H64
            + '","'
            + H64
            + '","5f5e1000","1d00ffff",true]}\n'
        ).encode(),
        ["mining.set_target", "mining.notify"],
    ),
    "ethproxy-to-server": (
        (
            '{"worker": "rig", "jsonrpc": "2.0", "params": ["'
            + ETHEREUM_WALLET
            + '.rig", "x"], "id": 1, "method": "eth_submitLogin"}\n'
            '{"id":5,"method":"eth_getWork","params":[]}\n'
            '{"id":6,"method":"eth_submitWork","params":["0x0a0b0c0d0e0f1011",'
            '"0x' + H64 + '","0x' + H64 + '"]}\n'
            '{"id":7,"method":"eth_submitHashrate","params":["0x' + H64 + '",'
            '"0x' + H64 + '"]}\n'
        ).encode(),
        ["eth_submitLogin", "eth_getWork", "eth_submitWork", "eth_submitHashrate"],
    ),
    "ethproxy-to-client": (
        (
            '{"id":0,"jsonrpc":"2.0","result":["0x' + H64 + '","0x' + H64 + '",'
            '"0x00000000ffff0000000000000000000000000000000000000000000000000000"]}\n'
        ).encode(),
        [None],
    ),
    "ethereumstratum-1-to-server": (
        (
            '{"id":1,"method":"mining.subscribe","params":["ethminer-0.19.0",'
            '"EthereumStratum/1.0.0"]}\n'
            '{"id":2,"method":"mining.authorize","params":["'
            + ETHEREUM_WALLET
            + '.rig","x"]}\n'
            '{"id":4,"method":"mining.submit","params":["'
            + ETHEREUM_WALLET
            + '.rig","j1","0a0b0c"]}\n'
        ).encode(),
        ["mining.subscribe", "mining.authorize", "mining.submit"],
    ),
    "ethereumstratum-2-to-server": (
        (
            b'{"id":0,"jsonrpc":"2.0","method":"mining.hello","params":{"agent":'
            b'"ethminer-0.19.0","host":"pool.example","port":"d05","proto":'
            b'"EthereumStratum/2.0.0"}}\n'
            b'{"id":50,"jsonrpc":"2.0","method":"mining.noop"}\n'
            b'{"id":9,"jsonrpc":"2.0","method":"mining.hashrate","params":["0x1a2b",'
            b'"w1"]}\n'
        ),
        ["mining.hello", "mining.noop", "mining.hashrate"],
    ),
    "ethereumstratum-2-to-client": (
        (
            '{"jsonrpc":"2.0","method":"mining.set","params":{"epoch":"1a",'
            '"target":"0x0112e0be826d694b","algo":"ethash","extranonce":"af4c"}}\n'
            '{"jsonrpc":"2.0","method":"mining.notify","params":["bf0488aa","0x'
            + H64
            + '",false]}\n'
        ).encode(),
        ["mining.set", "mining.notify"],
    ),
    "kawpow-to-server": (
        (
            '{"id":1,"method":"mining.subscribe","params":["GMiner/2.09",null,'
            '"pool.example","3333"]}\n'
            '{"id":3,"method":"mining.submit","params":["worker","j1",'
            '"0x0a0b0c0d0e0f1011","0x' + H64 + '","0x' + H64 + '"]}\n'
        ).encode(),
        ["mining.subscribe", "mining.submit"],
    ),
    "kawpow-to-client": (
        (
            '{"id":null,"method":"mining.set_target","params":["' + H64 + '"]}\n'
            '{"id":null,"method":"mining.notify","params":["j1","'
            + H64
            + '","'
            + H64
            + '","'
            + H64
            + '",true,1500000,"1b00ffff"]}\n'
        ).encode(),
        ["mining.set_target", "mining.notify"],
    ),
    "webminer-to-server": (
        (
            '{"type":"auth","params":{"site_key":"site","type":"anonymous",'
            '"user":null}}\n'
            '{"type":"submit","params":{"job_id":"j1","nonce":"0a0b0c0d",'
            '"result":"' + H64 + '"}}\n'
        ).encode(),
        ["auth", "submit"],
    ),
}

Event = JsonMessage | MalformedLine


def decode_chunks(chunks: list[bytes]) -> list[Event]:
    decoder = JsonLineDecoder()
    events: list[Event] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.finish())
    return events


def method_of(value: Any) -> str | None:
    # Browser miners name the message in "type" instead of "method".
    if isinstance(value, dict):
        return value.get("method", value.get("type"))
    return None


def methods(events: list[Event]) -> list[str | None]:
    assert all(isinstance(event, JsonMessage) for event in events), events
    return [
        method_of(event.value) for event in events if isinstance(event, JsonMessage)
    ]


def one_byte_chunks(data: bytes) -> list[bytes]:
    return [data[index : index + 1] for index in range(len(data))]


@pytest.mark.parametrize("name", sorted(STRATUM_SAMPLES))
def test_sample_fed_whole(name: str) -> None:
    data, expected = STRATUM_SAMPLES[name]
    events = decode_chunks([data])
    assert methods(events) == expected
    assert sum(event.length for event in events) == len(data)


@pytest.mark.parametrize("name", sorted(STRATUM_SAMPLES))
def test_sample_fed_byte_by_byte(name: str) -> None:
    data, expected = STRATUM_SAMPLES[name]
    assert decode_chunks(one_byte_chunks(data)) == decode_chunks([data])
    assert methods(decode_chunks(one_byte_chunks(data))) == expected


@pytest.mark.parametrize("name", sorted(STRATUM_SAMPLES))
def test_sample_with_trailing_bytes(name: str) -> None:
    data, expected = STRATUM_SAMPLES[name]
    decoder = JsonLineDecoder()
    events = decoder.feed(data + b'{"id":7,"meth')
    assert methods(events) == expected
    tail = decoder.finish()
    assert len(tail) == 1
    assert isinstance(tail[0], MalformedLine)
    assert tail[0].reason == REASON_INVALID_JSON


@pytest.mark.parametrize("name", sorted(STRATUM_SAMPLES))
def test_sample_values_match_json_module(name: str) -> None:
    data, _ = STRATUM_SAMPLES[name]
    expected = [json.loads(line) for line in data.splitlines() if line.strip()]
    values = [
        event.value for event in decode_chunks([data]) if isinstance(event, JsonMessage)
    ]
    assert values == expected


def test_line_split_across_feeds() -> None:
    decoder = JsonLineDecoder()
    assert decoder.feed(b'{"id":1,"meth') == []
    assert decoder.feed(b'od":"login"') == []
    events = decoder.feed(b'}\n{"id":2}\n')
    assert [event.value for event in events if isinstance(event, JsonMessage)] == [
        {"id": 1, "method": "login"},
        {"id": 2},
    ]


def test_many_lines_in_one_feed() -> None:
    data = b"".join(b'{"id":%d}\n' % number for number in range(500))
    events = JsonLineDecoder().feed(data)
    assert len(events) == 500
    assert [
        event.value["id"] for event in events if isinstance(event, JsonMessage)
    ] == list(range(500))


def test_crlf_line_ends() -> None:
    events = decode_chunks([b'{"id":1}\r\n[2]\r\n'])
    assert [event.value for event in events if isinstance(event, JsonMessage)] == [
        {"id": 1},
        [2],
    ]
    assert [event.length for event in events] == [10, 5]


def test_crlf_split_between_feeds() -> None:
    events = decode_chunks([b'{"id":1}\r', b'\n{"id":2}\r', b"\n"])
    assert [event.value for event in events if isinstance(event, JsonMessage)] == [
        {"id": 1},
        {"id": 2},
    ]


def test_blank_lines_skipped() -> None:
    events = decode_chunks([b'\n\r\n  \t \n{"id":1}\n\n'])
    assert len(events) == 1
    assert isinstance(events[0], JsonMessage)


def test_any_key_order_whitespace_and_escapes() -> None:
    line = b'  { "params" : [ "\\u0041\\n" ] ,\t"method":"mining.submit" }  \n'
    events = decode_chunks([line])
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, JsonMessage)
    assert event.value == {"params": ["A\n"], "method": "mining.submit"}


def test_last_line_without_newline_decoded_at_finish() -> None:
    decoder = JsonLineDecoder()
    assert decoder.feed(b'{"id":1}\n{"id":2}') != []
    tail = decoder.finish()
    assert len(tail) == 1
    assert isinstance(tail[0], JsonMessage)
    assert tail[0].value == {"id": 2}
    assert tail[0].length == 8


def test_gap_drops_partial_line_and_resyncs() -> None:
    decoder = JsonLineDecoder()
    assert decoder.feed(b'{"id":1,"method":"lo') == []
    decoder.gap()
    events = decoder.feed(b'st of a line"}\n{"id":2}\n')
    assert [event.value for event in events if isinstance(event, JsonMessage)] == [
        {"id": 2}
    ]
    assert len(events) == 1
    assert decoder.discarded_bytes == len(b'{"id":1,"method":"lo') + len(
        b'st of a line"}\n'
    )


def test_gap_before_any_data_skips_first_line() -> None:
    decoder = JsonLineDecoder()
    decoder.gap()
    assert decoder.feed(b'"job_id":"j1"}}\n') == []
    events = decoder.feed(b'{"id":3}\n')
    assert len(events) == 1
    assert isinstance(events[0], JsonMessage)


def test_gap_skip_spans_feeds() -> None:
    decoder = JsonLineDecoder()
    decoder.gap()
    assert decoder.feed(b"no newline here") == []
    assert decoder.feed(b" nor here") == []
    events = decoder.feed(b'\n{"id":4}\n')
    assert len(events) == 1
    assert isinstance(events[0], JsonMessage)


def malformed(events: list[Event]) -> list[MalformedLine]:
    return [event for event in events if isinstance(event, MalformedLine)]


def test_overlong_line_reported_once_then_recovers() -> None:
    decoder = JsonLineDecoder()
    chunk = b"[" + b"1," * 4096
    chunks_to_limit = MAX_LINE_BYTES // len(chunk) + 1
    events: list[Event] = []
    for _ in range(chunks_to_limit + 2):
        events.extend(decoder.feed(chunk))
    events.extend(decoder.feed(b'1]\n{"id":5}\n'))
    bad = malformed(events)
    assert len(bad) == 1
    assert bad[0].reason == REASON_TOO_LONG
    assert bad[0].length == chunks_to_limit * len(chunk)
    assert bad[0].excerpt == chunk[:MAX_EXCERPT_BYTES]
    assert decoder.discarded_bytes == 2 * len(chunk) + len(b"1]\n")
    good = [event for event in events if isinstance(event, JsonMessage)]
    assert [event.value for event in good] == [{"id": 5}]


def test_overlong_line_in_one_feed() -> None:
    line = b'{"blob":"' + b"a" * MAX_LINE_BYTES + b'"}\n'
    events = decode_chunks([line + b'{"id":6}\n'])
    assert len(events) == 2
    assert isinstance(events[0], MalformedLine)
    assert events[0].reason == REASON_TOO_LONG
    assert events[0].length == len(line)
    assert isinstance(events[1], JsonMessage)


def test_line_at_limit_accepted() -> None:
    filler = MAX_LINE_BYTES - len(b'{"blob":""}')
    line = b'{"blob":"' + b"a" * filler + b'"}'
    assert len(line) == MAX_LINE_BYTES
    events = decode_chunks(one_byte_chunks(line[:100]) + [line[100:] + b"\n"])
    assert len(events) == 1
    assert isinstance(events[0], JsonMessage)


def test_partial_line_memory_bounded() -> None:
    decoder = JsonLineDecoder()
    for _ in range(40):
        decoder.feed(b"x" * 8192)
    assert len(decoder._partial) <= MAX_LINE_BYTES
    assert decoder.discarded_bytes > 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"[" * 5000 + b"]" * 5000, REASON_TOO_DEEP),
        (
            b"[" * (MAX_NESTING_DEPTH + 1) + b"]" * (MAX_NESTING_DEPTH + 1),
            REASON_TOO_DEEP,
        ),
        (b'{"a":' * 3000 + b"1" + b"}" * 3000, REASON_TOO_DEEP),
        (b"[" + b"9" * 5000 + b"]", REASON_NUMBER_OUT_OF_RANGE),
        (b"[NaN]", REASON_NOT_FINITE),
        (b'{"d":Infinity}', REASON_NOT_FINITE),
        (b"[-Infinity]", REASON_NOT_FINITE),
        (b"[1e999]", REASON_NOT_FINITE),
        (b'{"a":"\xff\xfe"}', REASON_INVALID_UTF8),
        (b"\xef\xbb\xbf{}", REASON_INVALID_JSON),
        (b'{"a":1', REASON_INVALID_JSON),
        (b"{'a':1}", REASON_INVALID_JSON),
        (b"42", REASON_NOT_CONTAINER),
        (b'"login"', REASON_NOT_CONTAINER),
        (b"null", REASON_NOT_CONTAINER),
    ],
)
def test_bad_line_is_malformed_and_decoder_continues(line: bytes, reason: str) -> None:
    for chunks in ([line + b'\n{"id":9}\n'], one_byte_chunks(line + b'\n{"id":9}\n')):
        events = decode_chunks(chunks)
        assert len(events) == 2
        first, second = events
        assert isinstance(first, MalformedLine)
        assert first.reason == reason
        assert first.length == len(line) + 1
        assert first.excerpt == line[:MAX_EXCERPT_BYTES]
        assert isinstance(second, JsonMessage)
        assert second.value == {"id": 9}


def test_nesting_at_limit_accepted() -> None:
    depth = MAX_NESTING_DEPTH
    events = decode_chunks([b"[" * depth + b"]" * depth + b"\n"])
    assert len(events) == 1
    assert isinstance(events[0], JsonMessage)


def test_brackets_inside_strings_do_not_count() -> None:
    text = "[" * (MAX_NESTING_DEPTH * 2)
    line = json.dumps({"method": "client.show_message", "params": [text]}).encode()
    events = decode_chunks([line + b"\n"])
    assert len(events) == 1
    assert isinstance(events[0], JsonMessage)
    assert events[0].value["params"] == [text]


def test_depth_scan_skips_escaped_quotes() -> None:
    text = '\\"' + "[" * (MAX_NESTING_DEPTH * 2)
    line = json.dumps({"params": [text]}).encode()
    events = decode_chunks([line + b"\n"])
    assert isinstance(events[0], JsonMessage)


@settings(database=None)
@given(
    data=st.binary(max_size=2048),
    cuts=st.lists(st.integers(min_value=0, max_value=2048), max_size=20),
    gap_at=st.one_of(st.none(), st.integers(min_value=0, max_value=20)),
)
def test_arbitrary_bytes_give_only_messages(
    data: bytes, cuts: list[int], gap_at: int | None
) -> None:
    decoder = JsonLineDecoder()
    bounds = sorted({0, len(data), *(cut for cut in cuts if cut <= len(data))})
    events: list[Event] = []
    for index, (start, end) in enumerate(zip(bounds, bounds[1:], strict=False)):
        if index == gap_at:
            decoder.gap()
        events.extend(decoder.feed(data[start:end]))
    events.extend(decoder.finish())
    for event in events:
        assert isinstance(event, JsonMessage | MalformedLine)
        if isinstance(event, JsonMessage):
            assert isinstance(event.value, dict | list)
        else:
            assert len(event.excerpt) <= MAX_EXCERPT_BYTES


@settings(database=None)
@given(
    values=st.lists(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=8), children, max_size=4)
            ),
            max_leaves=20,
        ).map(lambda value: [value]),
        min_size=1,
        max_size=5,
    ),
    chunk_size=st.integers(min_value=1, max_value=64),
)
def test_json_lines_round_trip_any_chunking(
    values: list[list[Any]], chunk_size: int
) -> None:
    data = b"".join(json.dumps(value).encode() + b"\n" for value in values)
    chunks = [
        data[index : index + chunk_size] for index in range(0, len(data), chunk_size)
    ]
    events = decode_chunks(chunks)
    assert [event.value for event in events if isinstance(event, JsonMessage)] == values
    assert len(events) == len(values)
