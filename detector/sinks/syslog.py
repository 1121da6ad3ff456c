"""Alerts as RFC 5424 syslog messages over UDP, TCP or a unix socket.

Each message carries the key fields of the alert as structured data, under the
SD-ID ``detector@32473``, and the whole ECS document as BOM-prefixed UTF-8 JSON
in the MSG part. 32473 is the private enterprise number that RFC 5612 reserves
for documentation. Over TCP and unix stream sockets, messages are framed by
octet counting (RFC 6587 section 3.4.1).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from detector.errors import DetectorError
from detector.model import Detection
from detector.sinks.ecs import isoformat, to_ecs

logger = logging.getLogger(__name__)

SD_ID = "detector@32473"

# Facility local0 (RFC 5424 section 6.2.1), the first of the facilities
# reserved for local use.
FACILITY_LOCAL0 = 16
MAX_FACILITY = 23

SEVERITY_CRITICAL = 2
SEVERITY_WARNING = 4
SEVERITY_NOTICE = 5

# Severity by mining.confidence. High confidence means a decoded mining
# protocol or miner agent, proof that a miner runs, so it is critical. Medium
# is a pool name on a flow carrying data, worth a look, so a warning. Low is a
# pool address, port or behaviour alone, context and never proof, so a notice.
SEVERITIES = {
    "high": SEVERITY_CRITICAL,
    "medium": SEVERITY_WARNING,
    "low": SEVERITY_NOTICE,
}
# A document without a known confidence is reported as the weakest finding.
DEFAULT_SEVERITY = SEVERITY_NOTICE

# Maximum header field lengths (RFC 5424 section 6). Longer values are cut.
MAX_HOSTNAME = 255
MAX_APP_NAME = 48
MAX_PROCID = 128
MAX_MSGID = 32
# PARAM-NAME is SD-NAME, at most 32 characters (RFC 5424 section 6.3.3).
MAX_PARAM_NAME = 32

NILVALUE = "-"
BOM = b"\xef\xbb\xbf"

# The ECS fields copied into the structured data element, in order, so a
# receiver can filter on them without parsing the JSON.
SD_FIELDS = (
    "event.action",
    "rule.id",
    "mining.confidence",
    "mining.dialect",
    "mining.session.id",
    "mining.pool.host",
    "network.transport",
    "network.community_id",
    "source.ip",
    "source.port",
    "destination.ip",
    "destination.port",
    "observer.ingress.interface.name",
    "container.id",
    "container.name",
)

# Connecting and sending block the capture loop, so each gets this long before
# it counts as failed. 2 seconds is an estimate, far above a round trip on a
# local network. While a send blocks, packets wait in the kernel's capture
# buffer, which drops them once it is full.
SEND_TIMEOUT_SECONDS = 2.0
# Send failures are logged at most once in this interval per sender, and the
# failures in between are counted in the next log line.
FAILURE_LOG_INTERVAL_SECONDS = 60.0

ADDRESS_FORMS = (
    "udp://HOST:PORT, tcp://HOST:PORT (for example udp://127.0.0.1:514) or the"
    " path of a unix socket (for example /dev/log)"
)


def format_rfc5424(
    document: dict[str, Any],
    *,
    hostname: str,
    app_name: str = "detector",
    procid: int | str | None = None,
    msgid: str = "mining",
    severity: int | None = None,
    facility: int = FACILITY_LOCAL0,
    timestamp: float | None = None,
) -> bytes:
    """Format an ECS alert document as one RFC 5424 syslog message.

    ``severity`` defaults to the one for the document's ``mining.confidence``
    (see :data:`SEVERITIES`). ``timestamp`` is the time the message is sent,
    in seconds since the epoch, and defaults to now. Header fields are cut to
    their RFC 5424 lengths, and characters other than printable US-ASCII
    become ``_``. A ``procid`` of None is written as the NILVALUE ``-``.

    Raises:
        ValueError: ``facility`` is not 0 to 23 or ``severity`` not 0 to 7.
    """
    if not 0 <= facility <= MAX_FACILITY:
        raise ValueError(f"syslog facility must be 0 to {MAX_FACILITY}, not {facility}")
    if severity is None:
        severity = severity_of(document)
    if not 0 <= severity <= 7:
        raise ValueError(f"syslog severity must be 0 to 7, not {severity}")
    if timestamp is None:
        timestamp = time.time()
    header = " ".join(
        (
            f"<{facility * 8 + severity}>1",
            isoformat(timestamp),
            _header_field(hostname, MAX_HOSTNAME),
            _header_field(app_name, MAX_APP_NAME),
            _header_field("" if procid is None else str(procid), MAX_PROCID),
            _header_field(msgid, MAX_MSGID),
        )
    )
    structured_data = format_structured_data(document)
    message = json.dumps(
        document, ensure_ascii=False, separators=(",", ":"), default=str
    )
    # A lone surrogate cannot be encoded in UTF-8. Inside a JSON string its
    # backslash escape (\ud800) is what the JSON encoder would have written.
    encoded_message = message.encode("utf-8", "backslashreplace")
    return f"{header} {structured_data} ".encode() + BOM + encoded_message


def severity_of(document: Mapping[str, Any]) -> int:
    """Return the syslog severity for the document's ``mining.confidence``."""
    confidence = _lookup(document, "mining.confidence")
    return SEVERITIES.get(str(confidence), DEFAULT_SEVERITY)


def format_structured_data(document: Mapping[str, Any]) -> str:
    """Format the :data:`SD_FIELDS` present in ``document`` as one SD-ELEMENT.

    Fields that are missing, None, objects or lists are left out.
    """
    params = []
    for field in SD_FIELDS:
        value = _lookup(document, field)
        if value is None or isinstance(value, dict | list | tuple):
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        params.append(f'{param_name(field)}="{escape_param_value(str(value))}"')
    return "[" + " ".join((SD_ID, *params)) + "]"


def param_name(name: str) -> str:
    """Make ``name`` a valid PARAM-NAME (RFC 5424 section 6.3.3).

    A PARAM-NAME is 1 to 32 printable US-ASCII characters other than ``=``,
    space, ``]`` and ``"``. Other characters become ``_``, and a longer name is
    cut to 32 characters.
    """
    cleaned = "".join(
        character if _is_sd_name_character(character) else "_" for character in name
    )
    return cleaned[:MAX_PARAM_NAME] or "_"


def escape_param_value(value: str) -> str:
    """Escape ``"``, ``\\`` and ``]`` with a backslash (RFC 5424 section 6.3.3).

    Lone surrogates, which UTF-8 cannot encode, become their ``\\uXXXX`` text.
    """
    value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _is_sd_name_character(character: str) -> bool:
    return "!" <= character <= "~" and character not in '= ]"'


def _header_field(value: str, max_length: int) -> str:
    cleaned = "".join(
        character if "!" <= character <= "~" else "_" for character in value
    )
    return cleaned[:max_length] or NILVALUE


def _lookup(document: Mapping[str, Any], dotted: str) -> Any:
    value: Any = document
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


@dataclass(frozen=True, slots=True)
class SyslogAddress:
    """A parsed syslog destination.

    ``transport`` is ``udp``, ``tcp`` or ``unix``. ``host`` and ``port`` are
    set for UDP and TCP, ``path`` for a unix socket.
    """

    transport: str
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.transport == "unix":
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}://{host}:{self.port}"


def parse_address(address: str) -> SyslogAddress:
    """Parse ``udp://HOST:PORT``, ``tcp://HOST:PORT`` or a unix socket path.

    An IPv6 host goes in brackets: ``udp://[::1]:514``. Anything without
    ``://`` is taken as a path.

    Raises:
        DetectorError: the address has another scheme, no host, or a missing
            or invalid port. The message lists the accepted forms.
    """
    if "://" not in address:
        if not address:
            raise DetectorError(f"syslog address is missing; use {ADDRESS_FORMS}")
        return SyslogAddress("unix", path=address)
    parts = urlsplit(address)
    if parts.scheme not in ("udp", "tcp"):
        raise DetectorError(
            f"invalid syslog address {address!r}: unknown scheme"
            f" {parts.scheme!r}; use {ADDRESS_FORMS}"
        )
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or port == 0:
        raise DetectorError(
            f"invalid syslog address {address!r}: a host and a port from 1 to"
            f" 65535 are required; use {ADDRESS_FORMS}"
        )
    if parts.path or parts.query or parts.fragment or parts.username:
        raise DetectorError(
            f"invalid syslog address {address!r}: only a host and a port may"
            f" follow the scheme; use {ADDRESS_FORMS}"
        )
    return SyslogAddress(parts.scheme, host=parts.hostname, port=port)


class SyslogSender:
    """Send ECS documents as RFC 5424 messages to one syslog receiver.

    ``address`` is ``udp://HOST:PORT``, ``tcp://HOST:PORT`` or the path of a
    unix socket. A unix socket is connected as a datagram socket, the type of
    ``/dev/log``, or as a stream socket when it rejects datagrams.

    :meth:`send` catches every ``OSError`` of resolving, connecting and
    sending, so a broken receiver cannot stop the capture loop. It drops the
    message, counts it in ``failed`` and logs the failure at most once a
    minute, with the number of failures since the last log line. The next
    send connects again.

    ``clock`` is a monotonic clock in seconds, for the log rate limit.

    Raises:
        DetectorError: from the constructor when ``address`` is invalid.
        ValueError: ``facility`` is not 0 to 23.
    """

    def __init__(
        self,
        address: str,
        *,
        hostname: str | None = None,
        app_name: str = "detector",
        facility: int = FACILITY_LOCAL0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= facility <= MAX_FACILITY:
            raise ValueError(
                f"syslog facility must be 0 to {MAX_FACILITY}, not {facility}"
            )
        self.address = parse_address(address)
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.app_name = app_name
        self.facility = facility
        self.sent = 0
        self.failed = 0
        self._clock = clock
        self._socket: socket.socket | None = None
        self._stream = self.address.transport == "tcp"
        self._dropped_in_outage = 0
        self._failures_not_logged = 0
        self._last_failure_log: float | None = None

    def send(self, document: dict[str, Any]) -> bool:
        """Send one document and return whether the kernel accepted it.

        For UDP and unix datagram sockets, True does not mean that the
        receiver got the message.
        """
        message = format_rfc5424(
            document,
            hostname=self.hostname,
            app_name=self.app_name,
            procid=os.getpid(),
            facility=self.facility,
        )
        try:
            self._send(message)
        except OSError as error:
            self._close_socket()
            self.failed += 1
            self._dropped_in_outage += 1
            self._log_failure(error)
            return False
        self.sent += 1
        if self._dropped_in_outage:
            logger.info(
                "syslog messages to %s are sent again after %d were dropped",
                self.address,
                self._dropped_in_outage,
            )
            self._dropped_in_outage = 0
        return True

    def close(self) -> None:
        """Close the connection, if one is open. A later send opens another."""
        self._close_socket()

    # NOTE: a message longer than one datagram (65507 bytes over UDP on IPv4)
    # fails with EMSGSIZE and is dropped, and receivers may cut long UDP
    # messages. tcp:// carries messages of any length.
    def _send(self, message: bytes) -> None:
        if self._socket is None:
            self._socket = self._connect()
        if self._stream:
            # Octet-counting framing: the length of the message in ASCII
            # digits, a space, then the message (RFC 6587 section 3.4.1).
            self._socket.sendall(str(len(message)).encode() + b" " + message)
        else:
            self._socket.send(message)

    def _connect(self) -> socket.socket:
        address = self.address
        if address.transport == "unix":
            return self._connect_unix(address.path)
        if address.transport == "tcp":
            # create_connection tries each address the host name resolves to.
            return socket.create_connection(
                (address.host, address.port), timeout=SEND_TIMEOUT_SECONDS
            )
        family, _, proto, _, sockaddr = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_DGRAM
        )[0]
        datagram = socket.socket(family, socket.SOCK_DGRAM, proto)
        datagram.settimeout(SEND_TIMEOUT_SECONDS)
        try:
            # A connected UDP socket reports an ICMP port unreachable as an
            # error on a later send, so a missing receiver gets logged.
            datagram.connect(sockaddr)
        except OSError:
            datagram.close()
            raise
        return datagram

    def _connect_unix(self, path: str) -> socket.socket:
        kinds = (
            (socket.SOCK_STREAM,)
            if self._stream
            else (socket.SOCK_DGRAM, socket.SOCK_STREAM)
        )
        for kind in kinds:
            unix = socket.socket(socket.AF_UNIX, kind)
            unix.settimeout(SEND_TIMEOUT_SECONDS)
            try:
                unix.connect(path)
            except OSError as error:
                unix.close()
                # EPROTOTYPE: the socket at the path is a stream socket.
                if kind == socket.SOCK_DGRAM and error.errno == errno.EPROTOTYPE:
                    continue
                raise
            self._stream = kind == socket.SOCK_STREAM
            return unix
        raise AssertionError("unreachable: the stream attempt returns or raises")

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _log_failure(self, error: OSError) -> None:
        now = self._clock()
        last = self._last_failure_log
        if last is not None and now - last < FAILURE_LOG_INTERVAL_SECONDS:
            self._failures_not_logged += 1
            return
        if last is not None and self._failures_not_logged:
            logger.warning(
                "syslog message to %s dropped: %s (%d more dropped since the"
                " last log line, %.0f s ago)",
                self.address,
                error,
                self._failures_not_logged,
                now - last,
            )
        else:
            logger.warning("syslog message to %s dropped: %s", self.address, error)
        self._failures_not_logged = 0
        self._last_failure_log = now


class SyslogWriter:
    """An alert writer that sends each detection's ECS document to syslog.

    It sends the document that :class:`detector.sinks.JsonlWriter` writes.
    :class:`SyslogSender` logs and drops messages on network failures.
    """

    def __init__(self, sender: SyslogSender, redact_wallets: bool = False) -> None:
        self.sender = sender
        self.redact_wallets = redact_wallets

    def write(self, detection: Detection) -> None:
        self.write_document(to_ecs(detection, self.redact_wallets))

    def write_document(self, document: dict[str, Any]) -> None:
        """Send an ECS document that the caller built or extended."""
        self.sender.send(document)

    def close(self) -> None:
        self.sender.close()
