"""Tests for TCP stream reassembly of one direction."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.flows.reassembly import (
    MAX_BUFFERED_BYTES,
    MAX_BUFFERED_SEGMENTS,
    STREAM_DEPTH,
    StreamData,
    StreamReassembler,
    sequence_difference,
)

MODULUS = 2**32

# Two Stratum messages as XMRig sends them: a login, then a submit.
STRATUM = (
    b'{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"wallet",'
    b'"pass":"x","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/12.2.0",'
    b'"algo":["rx/0"]}}\n'
    b'{"id":2,"jsonrpc":"2.0","method":"submit","params":{"id":"1","job_id":"7",'
    b'"nonce":"0a1b2c3d","result":"00ff"}}\n'
)


def joined(chunks: list[StreamData]) -> bytes:
    return b"".join(chunk.data for chunk in chunks)


def started_at(isn: int, depth: int = STREAM_DEPTH) -> StreamReassembler:
    """Return a reassembler whose SYN had sequence number ``isn``."""
    reassembler = StreamReassembler(depth)
    assert reassembler.add(isn, b"", syn=True) == []
    return reassembler


def segments_of(data: bytes, first_seq: int, size: int) -> list[tuple[int, bytes]]:
    """Cut ``data`` into segments of ``size`` bytes, starting at ``first_seq``."""
    return [
        ((first_seq + start) % MODULUS, data[start : start + size])
        for start in range(0, len(data), size)
    ]


# Feeding a sample whole, one byte at a time, and with trailing bytes.


def test_sample_fed_whole() -> None:
    reassembler = started_at(1000)

    chunks = reassembler.add(1001, STRATUM)

    assert chunks == [StreamData(STRATUM, 0)]
    assert reassembler.delivered == len(STRATUM)


def test_sample_fed_byte_by_byte() -> None:
    reassembler = started_at(1000)
    chunks: list[StreamData] = []

    for seq, payload in segments_of(STRATUM, 1001, 1):
        result = reassembler.add(seq, payload)
        assert len(result) == 1
        chunks.extend(result)

    assert joined(chunks) == STRATUM
    assert all(chunk.gap_before == 0 for chunk in chunks)
    assert reassembler.gaps == 0


def test_sample_with_trailing_bytes_after_fin() -> None:
    reassembler = started_at(1000)

    chunks = reassembler.add(1001, STRATUM, fin=True)
    trailing = reassembler.add(1001 + len(STRATUM), b"trailing bytes")

    assert joined(chunks) == STRATUM
    assert trailing == []
    assert reassembler.finished


def test_trailing_bytes_in_fin_segment_dropped() -> None:
    reassembler = started_at(1000)
    reassembler.add(1001 + len(STRATUM), b"", fin=True)

    chunks = reassembler.add(1001, STRATUM + b"after the fin")

    assert joined(chunks) == STRATUM
    assert reassembler.finished


# Order, retransmission and overlap.


def test_in_order_segments() -> None:
    reassembler = started_at(5000)
    chunks: list[StreamData] = []

    for seq, payload in segments_of(STRATUM, 5001, 40):
        result = reassembler.add(seq, payload)
        assert result == [StreamData(payload, 0)]
        chunks.extend(result)

    assert joined(chunks) == STRATUM
    assert reassembler.buffered_bytes == 0
    assert reassembler.next_seq == 5001 + len(STRATUM)


def test_out_of_order_buffered_until_hole_fills() -> None:
    reassembler = started_at(0)
    first, second, third = segments_of(STRATUM[:90], 1, 30)

    assert reassembler.add(*third) == []
    assert reassembler.add(*second) == []
    assert reassembler.buffered_bytes == 60
    chunks = reassembler.add(*first)

    assert chunks == [StreamData(STRATUM[:90], 0)]
    assert reassembler.buffered_bytes == 0
    assert reassembler.gaps == 0


def test_retransmission_dropped() -> None:
    reassembler = started_at(0)
    reassembler.add(1, STRATUM[:50])

    assert reassembler.add(1, STRATUM[:50]) == []
    assert reassembler.add(11, STRATUM[10:30]) == []
    assert reassembler.delivered == 50
    assert reassembler.conflicting_overlaps == 0


def test_retransmission_of_buffered_segment_dropped() -> None:
    reassembler = started_at(0)
    reassembler.add(21, STRATUM[20:40])

    assert reassembler.add(21, STRATUM[20:40]) == []
    assert reassembler.buffered_bytes == 20
    assert reassembler.add(1, STRATUM[:20]) == [StreamData(STRATUM[:40], 0)]
    assert reassembler.conflicting_overlaps == 0


def test_retransmission_with_new_bytes_delivers_only_new() -> None:
    reassembler = started_at(0)
    reassembler.add(1, STRATUM[:50])

    chunks = reassembler.add(31, STRATUM[30:80])

    assert chunks == [StreamData(STRATUM[50:80], 0)]


def test_overlap_on_buffered_bytes_first_wins() -> None:
    reassembler = started_at(0)
    reassembler.add(11, b"AAAAAAAAAA")

    assert reassembler.add(6, b"BBBBBBBBBBBBBBB") == []
    chunks = reassembler.add(1, b"CCCCC")

    assert joined(chunks) == b"CCCCC" + b"BBBBB" + b"AAAAAAAAAA"
    assert reassembler.conflicting_overlaps == 1


def test_overlap_on_delivered_bytes_first_wins() -> None:
    reassembler = started_at(0)
    reassembler.add(1, b"login wallet1\n")

    chunks = reassembler.add(1, b"login wallet2\nmore")

    assert chunks == [StreamData(b"more", 0)]
    assert reassembler.conflicting_overlaps == 1


def test_overlap_spanning_two_buffered_pieces() -> None:
    reassembler = started_at(0)
    reassembler.add(11, b"aaaaa")
    reassembler.add(21, b"bbbbb")

    assert reassembler.add(11, b"aaaaaXXXXXbbbbbYYYYY") == []
    chunks = reassembler.add(1, b"0123456789")

    assert joined(chunks) == b"0123456789aaaaaXXXXXbbbbbYYYYY"
    assert reassembler.conflicting_overlaps == 0


def test_overlap_with_equal_bytes_not_counted() -> None:
    reassembler = started_at(0)
    reassembler.add(41, STRATUM[40:80])
    reassembler.add(21, STRATUM[20:60])

    chunks = reassembler.add(1, STRATUM[:30])

    assert joined(chunks) == STRATUM[:80]
    assert reassembler.conflicting_overlaps == 0


# Gaps and flush.


def test_gap_then_data_sets_gap_before() -> None:
    reassembler = started_at(0)
    reassembler.add(1, b"head")
    lost = 100
    filler = b"x" * 1000
    fed = 0
    chunks: list[StreamData] = []

    seq = 5 + lost
    while not chunks:
        chunks = reassembler.add(seq, filler)
        seq += len(filler)
        fed += 1
    following = reassembler.add(seq, b"next")

    assert chunks[0].gap_before == lost
    assert joined(chunks) == filler * fed
    assert following == [StreamData(b"next", 0)]
    assert reassembler.gaps == 1
    assert reassembler.gap_bytes == lost
    assert reassembler.delivered == 4 + len(filler) * fed + 4


def test_flush_skips_holes() -> None:
    reassembler = started_at(0)
    reassembler.add(1, b"0123")
    reassembler.add(11, b"abcd")
    reassembler.add(15, b"efgh")
    reassembler.add(31, b"tail")

    chunks = reassembler.flush()

    assert chunks == [StreamData(b"abcdefgh", 6), StreamData(b"tail", 12)]
    assert reassembler.gaps == 2
    assert reassembler.gap_bytes == 18
    assert reassembler.buffered_bytes == 0
    assert reassembler.flush() == []


def test_flush_then_late_bytes_dropped() -> None:
    reassembler = started_at(0)
    reassembler.add(11, b"later")
    reassembler.flush()

    assert reassembler.add(1, b"too late!!") == []
    assert reassembler.add(16, b"next") == [StreamData(b"next", 0)]


def test_flush_without_holes_returns_nothing() -> None:
    reassembler = started_at(0)
    reassembler.add(1, b"data")

    assert reassembler.flush() == []
    assert reassembler.gaps == 0


def test_late_hole_bytes_after_skip_dropped() -> None:
    reassembler = started_at(0)
    reassembler.add(101, b"after")
    reassembler.flush()

    assert reassembler.add(1, b"x" * 100) == []
    assert reassembler.delivered == 5


# Sequence numbers across 2**32.


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (10, 5, 5),
        (5, 10, -5),
        (3, MODULUS - 2, 5),
        (MODULUS - 2, 3, -5),
        (2**31 - 1, 0, 2**31 - 1),
        (2**31, 0, -(2**31)),
    ],
)
def test_sequence_difference(a: int, b: int, expected: int) -> None:
    assert sequence_difference(a, b) == expected


def test_wrap_around_in_order() -> None:
    isn = MODULUS - 50
    reassembler = started_at(isn)
    chunks: list[StreamData] = []

    for seq, payload in segments_of(STRATUM, isn + 1, 30):
        chunks.extend(reassembler.add(seq, payload))

    assert joined(chunks) == STRATUM
    assert reassembler.next_seq == (isn + 1 + len(STRATUM)) % MODULUS


def test_wrap_around_out_of_order() -> None:
    isn = MODULUS - 20
    reassembler = started_at(isn)
    segments = segments_of(STRATUM[:120], isn + 1, 30)

    for seq, payload in reversed(segments[1:]):
        assert reassembler.add(seq, payload) == []
    chunks = reassembler.add(*segments[0])

    assert joined(chunks) == STRATUM[:120]
    assert reassembler.gaps == 0


def test_wrap_around_retransmission_dropped() -> None:
    isn = MODULUS - 10
    reassembler = started_at(isn)
    segments = segments_of(STRATUM[:40], isn + 1, 20)
    for seq, payload in segments:
        reassembler.add(seq, payload)

    assert reassembler.add(*segments[0]) == []
    assert reassembler.add(*segments[1]) == []
    assert reassembler.delivered == 40


def test_syn_at_top_of_sequence_space() -> None:
    reassembler = started_at(MODULUS - 1)

    assert reassembler.add(0, b"first") == [StreamData(b"first", 0)]


# Starting the stream.


def test_syn_then_data() -> None:
    reassembler = StreamReassembler()

    assert not reassembler.started
    assert reassembler.add(7000, b"", syn=True) == []
    assert reassembler.started
    assert reassembler.next_seq == 7001
    assert reassembler.add(7001, b"data") == [StreamData(b"data", 0)]


def test_syn_retransmission_ignored() -> None:
    reassembler = started_at(7000)
    reassembler.add(7001, b"data")

    assert reassembler.add(7000, b"", syn=True) == []
    assert reassembler.next_seq == 7005


def test_syn_with_payload_delivers_after_isn() -> None:
    reassembler = StreamReassembler()

    assert reassembler.add(100, b"fast open", syn=True) == [StreamData(b"fast open")]
    assert reassembler.next_seq == 110


def test_data_before_syn_out_of_order() -> None:
    reassembler = StreamReassembler()
    reassembler.add(5000, b"", syn=True)

    assert reassembler.add(5011, b"second") == []
    assert joined(reassembler.add(5001, b"first-----")) == b"first-----second"


def test_mid_session_start_at_first_data() -> None:
    reassembler = StreamReassembler()

    assert reassembler.add(123456, b"") == []
    assert not reassembler.started
    assert reassembler.add(123456, b"mid") == [StreamData(b"mid", 0)]
    assert reassembler.add(123459, b"dle") == [StreamData(b"dle", 0)]
    assert reassembler.add(123400, b"earlier") == []
    assert reassembler.delivered == 6


def test_mid_session_start_across_wrap() -> None:
    reassembler = StreamReassembler()
    start = MODULUS - 3

    assert reassembler.add(start, b"abc") == [StreamData(b"abc", 0)]
    assert reassembler.add(0, b"def") == [StreamData(b"def", 0)]


# Limits.


def test_depth_limit_truncates_and_stops() -> None:
    reassembler = started_at(0, depth=100)

    first = reassembler.add(1, STRATUM[:60])
    second = reassembler.add(61, STRATUM[60:120])
    third = reassembler.add(121, STRATUM[120:180])

    assert joined(first + second) == STRATUM[:100]
    assert third == []
    assert reassembler.depth_reached
    assert reassembler.delivered == 100


def test_depth_limit_exact_boundary() -> None:
    reassembler = started_at(0, depth=10)

    assert reassembler.add(1, b"0123456789") == [StreamData(b"0123456789", 0)]
    assert reassembler.depth_reached
    assert reassembler.add(11, b"more") == []


def test_depth_limit_drops_buffer() -> None:
    reassembler = started_at(0, depth=10)
    reassembler.add(21, b"buffered")

    reassembler.add(1, b"0123456789")

    assert reassembler.depth_reached
    assert reassembler.buffered_bytes == 0
    assert reassembler.flush() == []


def test_depth_zero_delivers_nothing() -> None:
    reassembler = started_at(0, depth=0)

    assert reassembler.add(1, b"data") == []
    assert reassembler.depth_reached


def test_negative_depth_rejected() -> None:
    with pytest.raises(ValueError, match="depth"):
        StreamReassembler(-1)


def test_buffered_bytes_limit_skips_hole() -> None:
    reassembler = started_at(0)
    segment = b"y" * 1000
    seq = 1 + 50
    segments_needed = MAX_BUFFERED_BYTES // len(segment) + 1
    results: list[list[StreamData]] = []

    for _ in range(segments_needed):
        results.append(reassembler.add(seq, segment))
        seq += len(segment)

    assert all(result == [] for result in results[:-1])
    assert results[-1][0].gap_before == 50
    assert joined(results[-1]) == segment * segments_needed
    assert reassembler.buffered_bytes == 0


def test_buffered_segments_limit_skips_hole() -> None:
    reassembler = started_at(0)
    results: list[list[StreamData]] = []

    # One-byte segments with one-byte holes between, so none joins another.
    for index in range(MAX_BUFFERED_SEGMENTS + 1):
        results.append(reassembler.add(3 + 2 * index, b"z"))

    assert all(result == [] for result in results[:-1])
    assert results[-1] == [StreamData(b"z", 2)]
    assert reassembler.gaps == 1
    assert reassembler.buffered_bytes == MAX_BUFFERED_SEGMENTS


def test_buffer_stays_within_limits() -> None:
    reassembler = started_at(0)
    rng = random.Random(7)

    for _ in range(2000):
        seq = 2 + rng.randrange(200_000)
        reassembler.add(seq, bytes(rng.randrange(1, 1500)))
        assert reassembler.buffered_bytes <= MAX_BUFFERED_BYTES

    assert reassembler.delivered > 0


# Properties.


@st.composite
def shuffled_segments(
    draw: st.DrawFn,
) -> tuple[int, bytes, list[tuple[int, bytes]]]:
    """Draw a stream, its ISN, and its segments in any order with duplicates."""
    data = draw(st.binary(min_size=1, max_size=3000))
    isn = draw(st.integers(min_value=0, max_value=MODULUS - 1))
    cuts = draw(st.lists(st.integers(min_value=1, max_value=len(data)), max_size=40))
    bounds = sorted({0, len(data), *cuts})
    segments = [
        ((isn + 1 + start) % MODULUS, data[start:end])
        for start, end in zip(bounds, bounds[1:], strict=False)
    ]
    duplicates = draw(st.lists(st.sampled_from(segments), max_size=10))
    order = draw(st.permutations(segments + duplicates))
    return isn, data, order


@settings(max_examples=300, deadline=None)
@given(shuffled_segments())
def test_any_order_reproduces_stream(
    case: tuple[int, bytes, list[tuple[int, bytes]]],
) -> None:
    isn, data, segments = case
    reassembler = started_at(isn)
    chunks: list[StreamData] = []

    for seq, payload in segments:
        chunks.extend(reassembler.add(seq, payload))
    chunks.extend(reassembler.flush())

    assert joined(chunks) == data
    assert all(chunk.gap_before == 0 for chunk in chunks)
    assert reassembler.gaps == 0
    assert reassembler.conflicting_overlaps == 0


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=1, max_size=2000),
    st.integers(min_value=0, max_value=MODULUS - 1),
    st.lists(
        st.tuples(st.integers(0, 1999), st.integers(1, 300)), min_size=1, max_size=30
    ),
)
def test_overlapping_slices_reproduce_stream(
    data: bytes, isn: int, slices: list[tuple[int, int]]
) -> None:
    reassembler = started_at(isn)
    chunks: list[StreamData] = []
    pieces = [(start, data[start : start + size]) for start, size in slices]
    pieces.append((0, data))

    for start, payload in pieces:
        if payload:
            chunks.extend(reassembler.add((isn + 1 + start) % MODULUS, payload))

    assert joined(chunks) == data
    assert reassembler.conflicting_overlaps == 0


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=MODULUS - 1),
            st.binary(max_size=200),
            st.booleans(),
            st.booleans(),
        ),
        max_size=60,
    ),
    st.integers(min_value=0, max_value=5000),
)
def test_arbitrary_segments_return_stream_data(
    segments: list[tuple[int, bytes, bool, bool]], depth: int
) -> None:
    reassembler = StreamReassembler(depth)
    total = 0

    for seq, payload, syn, fin in segments:
        result = reassembler.add(seq, payload, syn=syn, fin=fin)
        assert all(isinstance(chunk, StreamData) for chunk in result)
        assert all(chunk.data for chunk in result)
        assert all(chunk.gap_before >= 0 for chunk in result)
        total += sum(len(chunk.data) for chunk in result)
        assert reassembler.buffered_bytes <= MAX_BUFFERED_BYTES
    total += sum(len(chunk.data) for chunk in reassembler.flush())

    assert total == reassembler.delivered
    assert reassembler.delivered <= depth
