"""NTP version 4 client and server packets (RFC 5905), 48 bytes each."""

from __future__ import annotations

import struct

# Seconds from the NTP era start (1900-01-01) to the Unix epoch.
NTP_UNIX_OFFSET = 2_208_988_800
VERSION = 4
MODE_CLIENT = 3
MODE_SERVER = 4
# Poll interval as a power of two seconds: 64 s, the default minimum.
POLL_EXPONENT = 6
# Precision as a power of two seconds: about a microsecond.
PRECISION_EXPONENT = -20
# Root delay and root dispersion of a stratum 2 server, in 16.16 fixed-point
# seconds: 7.8 ms and 15.6 ms.
ROOT_DELAY = 0x0200
ROOT_DISPERSION = 0x0400


def timestamp(unix_ns: int) -> bytes:
    """Encode a time as a 64-bit NTP timestamp: seconds and a 32-bit fraction."""
    seconds, nanoseconds = divmod(unix_ns, 1_000_000_000)
    fraction = (nanoseconds << 32) // 1_000_000_000
    return struct.pack(">II", seconds + NTP_UNIX_OFFSET, fraction)


def client_request(transmit_ns: int) -> bytes:
    """Build a client request. Like chrony and ntpd, it leaves every field
    but the first byte, poll and the transmit time at zero."""
    first = VERSION << 3 | MODE_CLIENT
    header = struct.pack(">BBbb", first, 0, POLL_EXPONENT, 0)
    return header + bytes(36) + timestamp(transmit_ns)


def server_response(
    request: bytes,
    *,
    stratum: int,
    reference_id: bytes,
    reference_ns: int,
    receive_ns: int,
    transmit_ns: int,
) -> bytes:
    """Build the answer to ``request``, copying its transmit time into the
    origin field. Raises ValueError unless ``request`` is 48 bytes and
    ``reference_id`` 4."""
    if len(request) != 48 or len(reference_id) != 4:
        raise ValueError("an NTP request is 48 bytes and a reference id 4")
    first = VERSION << 3 | MODE_SERVER
    header = struct.pack(
        ">BBbbII",
        first,
        stratum,
        POLL_EXPONENT,
        PRECISION_EXPONENT,
        ROOT_DELAY,
        ROOT_DISPERSION,
    )
    return (
        header
        + reference_id
        + timestamp(reference_ns)
        + request[40:48]
        + timestamp(receive_ns)
        + timestamp(transmit_ns)
    )
