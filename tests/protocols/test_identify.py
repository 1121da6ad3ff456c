"""identify() on the first bytes of stream directions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.protocols import (
    KIND_HTTP,
    KIND_INCOMPLETE,
    KIND_JSON,
    KIND_TLS,
    KIND_UNKNOWN,
    MIN_IDENTIFY_BYTES,
    identify,
)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b'{"id":1,"jsonrpc":"2.0","method":"login"}\n', KIND_JSON),
        (b"[1]", KIND_JSON),
        (b'\r\n  {"id":1}', KIND_JSON),
        (b"POST / HTTP/1.1\r\n", KIND_HTTP),
        (b"GET /getheight HTTP/1.1\r\n", KIND_HTTP),
        (b"CONNECT pool.example:3333 HTTP/1.1\r\n", KIND_HTTP),
        (b"OPTIONS * HTTP/1.1\r\n", KIND_HTTP),
        (b"HTTP/1.1 200 OK\r\n", KIND_HTTP),
        (b"HTTP/1.0 200 OK\r\n", KIND_HTTP),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", KIND_TLS),
        (b"\x16\x03\x00\x00\x10", KIND_TLS),
        (b"\x16\x03\x04\x00\x10", KIND_TLS),
        (b"\x80\x2e\x01\x00\x02", KIND_TLS),
        (b"\x16\x03\x05\x00", KIND_UNKNOWN),
        (b"\x16\x02\x01", KIND_UNKNOWN),
        (b"\x80\x2e\x02", KIND_UNKNOWN),
        (b"\x05\x01\x00", KIND_UNKNOWN),
        (b"GETX / HTTP/1.1", KIND_UNKNOWN),
        (b"get / HTTP/1.1", KIND_UNKNOWN),
        (b"HTTP/2 200", KIND_UNKNOWN),
        (b"  x", KIND_UNKNOWN),
        (b"", KIND_INCOMPLETE),
        (b"   \r\n", KIND_INCOMPLETE),
        (b"P", KIND_INCOMPLETE),
        (b"POST", KIND_INCOMPLETE),
        (b"OPTIONS", KIND_INCOMPLETE),
        (b"HTTP/1", KIND_INCOMPLETE),
        (b"\x16", KIND_INCOMPLETE),
        (b"\x16\x03", KIND_INCOMPLETE),
        (b"\x80\x2e", KIND_INCOMPLETE),
    ],
)
def test_identify_kind(data: bytes, kind: str) -> None:
    assert identify(data) == kind


@settings(database=None)
@given(st.binary(min_size=MIN_IDENTIFY_BYTES))
def test_enough_bytes_never_incomplete(data: bytes) -> None:
    kind = identify(data)
    if data.strip(b" \t\r\n"):
        assert kind != KIND_INCOMPLETE
    assert kind in {KIND_JSON, KIND_HTTP, KIND_TLS, KIND_UNKNOWN, KIND_INCOMPLETE}


@settings(database=None)
@given(st.binary(max_size=32))
def test_prefix_kind_consistent(data: bytes) -> None:
    kind = identify(data)
    assert kind in {KIND_JSON, KIND_HTTP, KIND_TLS, KIND_UNKNOWN, KIND_INCOMPLETE}
    if kind not in (KIND_INCOMPLETE, KIND_UNKNOWN):
        assert identify(data + b"more bytes") == kind
