"""Sans-IO decoder for newline-delimited JSON, the framing of every JSON Stratum.

One :class:`JsonLineDecoder` reads one direction of a TCP stream, fed with the
stream bytes as they arrive. It returns one :class:`JsonMessage` per JSON line
and one :class:`MalformedLine` per line that is not a JSON object or array. It
never raises on bad input, so a hostile peer cannot stop the scan.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

# xmrig keeps a partial line in one network buffer of
# XMRIG_NET_BUFFER_CHUNK_SIZE = 64 KiB (xmrig src/base/kernel/constants.h) and
# silently drops a line that outgrows it (LineReader::add). No pool can
# therefore send xmrig a longer line. Real jobs are far shorter, because a job
# blob is at most 407 bytes, 814 hex characters.
MAX_LINE_BYTES = 64 * 1024

# Stratum messages nest four levels at most (object, params, merkle branch
# array). CPython's json module recurses once per level, so a line of a few
# thousand brackets costs a RecursionError. Lines deeper than this are rejected
# by a bracket count before json.loads parses them.
MAX_NESTING_DEPTH = 64

# Enough of a line to show its first key and method name in an alert, short
# enough not to copy a whole job blob into every piece of evidence.
MAX_EXCERPT_BYTES = 64

# Reasons carried by MalformedLine.reason, fixed strings so callers can count
# them.
REASON_TOO_LONG = "line too long"
REASON_TOO_DEEP = "nesting too deep"
REASON_INVALID_UTF8 = "invalid UTF-8"
REASON_INVALID_JSON = "invalid JSON"
REASON_NUMBER_OUT_OF_RANGE = "number out of range"
REASON_NOT_FINITE = "NaN or infinite number"
REASON_NOT_CONTAINER = "not a JSON object or array"

# JSON's own whitespace (RFC 8259 section 2), plus the \r of a \r\n line end.
_JSON_WHITESPACE = b" \t\r"
# A JSON string with its escapes, written as an unrolled loop so matching is
# linear even on hostile input.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
_OPENERS = frozenset(b"[{")


@dataclass(frozen=True, slots=True)
class JsonMessage:
    """One line that decoded to a JSON object or array.

    ``length`` is the number of stream bytes the line occupies, its line end
    included.
    """

    value: Any
    length: int


@dataclass(frozen=True, slots=True)
class MalformedLine:
    """One line that is not a JSON object or array.

    ``reason`` is one of the ``REASON_*`` constants of this module, ``length``
    the number of stream bytes the line occupies (for an over-long line, the
    bytes seen up to the limit) and ``excerpt`` its first bytes, at most
    :data:`MAX_EXCERPT_BYTES`.
    """

    reason: str
    length: int
    excerpt: bytes


class _NonFiniteNumber(ValueError):
    """A number that Python would turn into NaN or an infinity."""


def _reject_constant(name: str) -> float:
    raise _NonFiniteNumber(name)


def _parse_finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFiniteNumber(text)
    return value


_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_float=_parse_finite_float
)


def _nesting_too_deep(line: bytes) -> bool:
    """Tell whether the JSON text in ``line`` nests deeper than the limit.

    Counting openers is enough for nearly every line. A line with more openers
    than the limit is reduced to its brackets, with strings cut out first so
    that brackets inside them do not count. The scan of what is left stops at
    the first level past the limit. A 64 KiB line of shallow brackets, the
    worst case, costs a few milliseconds.
    """
    if line.count(b"[") + line.count(b"{") <= MAX_NESTING_DEPTH:
        return False
    brackets = _JSON_STRING.sub(b"", line).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        if byte in _OPENERS:
            depth += 1
            if depth > MAX_NESTING_DEPTH:
                return True
        else:
            depth -= 1
    return False


def decode_line(line: bytes, length: int) -> JsonMessage | MalformedLine | None:
    """Decode one line without its line end; return None for a blank line.

    ``length`` is the number of stream bytes the line occupied, reported back
    in the result. Never raises on bad input: every failure becomes a
    :class:`MalformedLine`.
    """
    text = line.strip(_JSON_WHITESPACE)
    if not text:
        return None
    reason = _check_line(text)
    if reason is not None:
        return MalformedLine(reason, length, line[:MAX_EXCERPT_BYTES])
    try:
        value = _DECODER.decode(text.decode("utf-8"))
    except UnicodeDecodeError:
        reason = REASON_INVALID_UTF8
    except _NonFiniteNumber:
        reason = REASON_NOT_FINITE
    except json.JSONDecodeError:
        reason = REASON_INVALID_JSON
    except ValueError:
        # int() refuses more digits than sys.get_int_max_str_digits().
        reason = REASON_NUMBER_OUT_OF_RANGE
    except RecursionError:
        reason = REASON_TOO_DEEP
    else:
        if isinstance(value, dict | list):
            return JsonMessage(value, length)
        reason = REASON_NOT_CONTAINER
    return MalformedLine(reason, length, line[:MAX_EXCERPT_BYTES])


def _check_line(text: bytes) -> str | None:
    if len(text) > MAX_LINE_BYTES:
        return REASON_TOO_LONG
    if _nesting_too_deep(text):
        return REASON_TOO_DEEP
    return None


class JsonLineDecoder:
    """Decoder for one direction of a stream of newline-delimited JSON.

    Lines end in ``\\n`` or ``\\r\\n`` and blank lines are skipped. The partial
    line kept between calls never exceeds :data:`MAX_LINE_BYTES`: a longer line
    is reported once as a :class:`MalformedLine` and the rest of it, up to the
    next newline, is skipped and counted in :attr:`discarded_bytes`.
    """

    def __init__(self) -> None:
        self._partial = bytearray()
        # True while skipping to the next newline, after an over-long line or
        # a gap in the stream.
        self._skipping = False
        self._discarded_bytes = 0

    @property
    def discarded_bytes(self) -> int:
        """Stream bytes skipped without a message: gaps and over-long tails."""
        return self._discarded_bytes

    def feed(self, data: bytes) -> list[JsonMessage | MalformedLine]:
        """Decode the complete lines in ``data`` and keep the partial last one.

        Never raises on bad input.
        """
        messages: list[JsonMessage | MalformedLine] = []
        start = 0
        if self._skipping:
            newline = data.find(b"\n")
            if newline < 0:
                self._discarded_bytes += len(data)
                return messages
            self._discarded_bytes += newline + 1
            self._skipping = False
            start = newline + 1
        while True:
            newline = data.find(b"\n", start)
            if newline < 0:
                break
            if self._partial:
                self._partial += data[start:newline]
                line = bytes(self._partial)
                self._partial.clear()
            else:
                line = data[start:newline]
            self._append(messages, line, len(line) + 1)
            start = newline + 1
        self._keep_partial(messages, data, start)
        return messages

    def gap(self) -> None:
        """Drop the partial line because the stream lost bytes.

        Decoding resumes after the next newline, because the bytes before it
        belong to a line whose start is missing.
        """
        self._discarded_bytes += len(self._partial)
        self._partial.clear()
        self._skipping = True

    def finish(self) -> list[JsonMessage | MalformedLine]:
        """Decode a last line that has no newline, at the end of the stream."""
        messages: list[JsonMessage | MalformedLine] = []
        if self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            self._append(messages, line, len(line))
        self._skipping = False
        return messages

    def _append(
        self, messages: list[JsonMessage | MalformedLine], line: bytes, length: int
    ) -> None:
        message = decode_line(line, length)
        if message is not None:
            messages.append(message)

    def _keep_partial(
        self, messages: list[JsonMessage | MalformedLine], data: bytes, start: int
    ) -> None:
        remaining = len(data) - start
        if remaining == 0:
            return
        if len(self._partial) + remaining <= MAX_LINE_BYTES:
            self._partial += data[start:]
            return
        seen = len(self._partial) + remaining
        excerpt = bytes(self._partial[:MAX_EXCERPT_BYTES])
        if len(excerpt) < MAX_EXCERPT_BYTES:
            excerpt += data[start : start + MAX_EXCERPT_BYTES - len(excerpt)]
        messages.append(MalformedLine(REASON_TOO_LONG, seen, excerpt))
        self._partial.clear()
        self._skipping = True
