"""JSON-RPC lines in the byte layouts that miners and pools produce.

Stratum is one JSON object per line. Programs differ in key order, in the
whitespace after ``:`` and ``,`` and in the line ending, and a detector must
accept all of them, so every builder takes a :class:`JsonStyle`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class JsonStyle:
    """The layout in which one program serialises a JSON object onto a line.

    ``key_order`` lists keys that come first, in that order, in every object of
    the message, nested ones included. Other keys keep their insertion order.
    ``sort_keys`` sorts every object instead, as JsonCpp does.
    """

    item_separator: str = ","
    key_separator: str = ":"
    key_order: tuple[str, ...] = ()
    sort_keys: bool = False
    line_ending: bytes = b"\n"


# xmrig (rapidjson), most pools, GMiner and ethminer's compact writer.
COMPACT = JsonStyle()

# Python's json.dumps default, which Claymore-style ethproxy miners also produce.
SPACED = JsonStyle(item_separator=", ", key_separator=": ")

# A space after every colon but none after commas.
COLON_SPACE = JsonStyle(key_separator=": ")

# ethminer serialises with JsonCpp, whose objects come out sorted by key.
SORTED = JsonStyle(sort_keys=True)


def encode_line(message: Mapping[str, Any], style: JsonStyle = COMPACT) -> bytes:
    """Serialise ``message`` as one line in ``style``, line ending included."""
    ordered = _reorder(message, style.key_order) if style.key_order else message
    text = json.dumps(
        ordered,
        separators=(style.item_separator, style.key_separator),
        sort_keys=style.sort_keys,
    )
    return text.encode("utf-8") + style.line_ending


def _reorder(value: Any, key_order: Sequence[str]) -> Any:
    if isinstance(value, Mapping):
        first = [key for key in key_order if key in value]
        rest = [key for key in value if key not in first]
        return {key: _reorder(value[key], key_order) for key in first + rest}
    if isinstance(value, list | tuple):
        return [_reorder(item, key_order) for item in value]
    return value


def request(
    request_id: int | str | None,
    method: str,
    params: Any,
    *,
    jsonrpc: bool = False,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build a request line ``{"id", ["jsonrpc",] "method", "params"}``."""
    message: dict[str, Any] = {"id": request_id}
    if jsonrpc:
        message["jsonrpc"] = "2.0"
    message["method"] = method
    message["params"] = params
    return encode_line(message, style)


def notification(
    method: str,
    params: Any,
    *,
    null_id: bool = True,
    jsonrpc: bool = False,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build a notification line, with ``"id":null`` unless ``null_id`` is False."""
    message: dict[str, Any] = {}
    if null_id:
        message["id"] = None
    if jsonrpc:
        message["jsonrpc"] = "2.0"
    message["method"] = method
    message["params"] = params
    return encode_line(message, style)


def response(
    request_id: int | str | None,
    result: Any,
    *,
    error: Any = None,
    include_error: bool = True,
    jsonrpc: bool = False,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build a response line ``{"id", ["jsonrpc",] "result", "error"}``.

    ``include_error=False`` leaves out ``"error":null`` as JSON-RPC 2.0 servers
    do. A non-null ``error`` is always written.
    """
    message: dict[str, Any] = {"id": request_id}
    if jsonrpc:
        message["jsonrpc"] = "2.0"
    message["result"] = result
    if include_error or error is not None:
        message["error"] = error
    return encode_line(message, style)


def error_response(
    request_id: int | str | None,
    error: Any,
    *,
    jsonrpc: bool = False,
    style: JsonStyle = COMPACT,
) -> bytes:
    """Build a JSON-RPC 2.0 error line ``{"id", ["jsonrpc",] "error"}`` without
    a ``result`` member."""
    message: dict[str, Any] = {"id": request_id}
    if jsonrpc:
        message["jsonrpc"] = "2.0"
    message["error"] = error
    return encode_line(message, style)
