"""Conversion of the time stamps that inventory sources write to Unix seconds."""

from __future__ import annotations

from datetime import date, datetime

# Docker writes this for a time that was never set (a container never started).
ZERO_TIME_YEAR = 1


def parse_time(value: object) -> float | None:
    """Convert ``value`` to seconds since the Unix epoch.

    Accepts a number of seconds, an RFC 3339 string with a UTC offset (``Z``
    or ``+02:00``; Docker's nanoseconds are cut to microseconds), a timezone-
    aware :class:`datetime.datetime` (PyYAML reads unquoted times as one), or
    None. Docker's zero time ``0001-01-01T00:00:00Z`` becomes None.

    Raises ValueError when the value is of another type, is not RFC 3339, or
    has no UTC offset, since a time without one could be any host's local time.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a time, not {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        raise ValueError(f"expected a date and time, not the date {value}")
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"invalid RFC 3339 time {value!r}") from None
    else:
        raise ValueError(f"expected a time, not {type(value).__name__}")
    if moment.tzinfo is None:
        raise ValueError(f"time {value!s} has no UTC offset; add Z or +HH:MM")
    if moment.year == ZERO_TIME_YEAR:
        return None
    return moment.timestamp()
