"""SOCKS5 handshake messages (RFC 1928) as xmrig's ``socks5`` pool option
sends them.

xmrig (src/base/net/stratum/Socks5.cpp) offers only "no authentication",
waits for the method reply, then sends CONNECT with the pool's host name
(address type 3) unless the host is an IPv4 or IPv6 literal.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

SOCKS5 = 5
METHOD_NO_AUTHENTICATION = 0x00
COMMAND_CONNECT = 1
ADDRESS_IPV4 = 1
ADDRESS_DOMAIN = 3
REPLY_SUCCEEDED = 0
# A domain name in a request is one length byte and at most 255 bytes.
MAX_DOMAIN_BYTES = 255


def greeting(methods: Sequence[int] = (METHOD_NO_AUTHENTICATION,)) -> bytes:
    """Build the client's greeting offering ``methods``. Raises ValueError
    for an empty list or more than 255 methods."""
    if not 0 < len(methods) < 256:
        raise ValueError(f"a greeting offers 1 to 255 methods, not {len(methods)}")
    return bytes([SOCKS5, len(methods), *methods])


def method_selection(method: int = METHOD_NO_AUTHENTICATION) -> bytes:
    """Build the proxy's choice of authentication method."""
    return bytes([SOCKS5, method])


def connect_by_name(host: str, port: int) -> bytes:
    """Build a CONNECT request for ``host``:``port`` by domain name.

    Raises ValueError for an empty or over-long name or an invalid port.
    """
    name = host.encode("ascii")
    if not 0 < len(name) <= MAX_DOMAIN_BYTES:
        raise ValueError(f"invalid SOCKS5 domain name {host!r}")
    if not 0 < port < 65536:
        raise ValueError(f"invalid port {port}")
    return (
        bytes([SOCKS5, COMMAND_CONNECT, 0, ADDRESS_DOMAIN, len(name)])
        + name
        + struct.pack(">H", port)
    )


def reply(bind_address: str, bind_port: int, status: int = REPLY_SUCCEEDED) -> bytes:
    """Build the proxy's reply with the IPv4 address and port it bound for
    the connection."""
    packed = ipaddress.IPv4Address(bind_address).packed
    return (
        bytes([SOCKS5, status, 0, ADDRESS_IPV4]) + packed + struct.pack(">H", bind_port)
    )
