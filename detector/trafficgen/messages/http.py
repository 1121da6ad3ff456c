"""HTTP/1.1 requests and responses as raw bytes."""

from __future__ import annotations

from collections.abc import Sequence

Header = tuple[str, str]


def request(
    method: str, target: str, headers: Sequence[Header], body: bytes = b""
) -> bytes:
    """Build a request with the headers in the given order.

    A ``Content-Length`` header is appended for a non-empty body unless the
    caller placed one, so callers that mimic a client's header order pass it
    themselves.
    """
    start_line = f"{method} {target} HTTP/1.1"
    return _message(start_line, headers, body)


def response(
    status: int, reason: str, headers: Sequence[Header], body: bytes = b""
) -> bytes:
    """Build a response, adding ``Content-Length`` as :func:`request` does."""
    return _message(f"HTTP/1.1 {status} {reason}", headers, body)


def content_length(body: bytes) -> Header:
    """Return the ``Content-Length`` header for ``body``."""
    return ("Content-Length", str(len(body)))


def _message(start_line: str, headers: Sequence[Header], body: bytes) -> bytes:
    lines = [start_line]
    lines.extend(f"{name}: {value}" for name, value in headers)
    has_length = any(name.lower() == "content-length" for name, _ in headers)
    if body and not has_length:
        name, value = content_length(body)
        lines.append(f"{name}: {value}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("ascii") + body
