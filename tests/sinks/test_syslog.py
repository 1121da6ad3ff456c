"""Syslog sink: RFC 5424 formatting and delivery over real sockets."""

from __future__ import annotations

import json
import logging
import re
import socket
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.errors import DetectorError
from detector.model import Confidence, Detection, FlowCounters, FlowKey, MiningFields
from detector.sinks.ecs import to_ecs
from detector.sinks.syslog import (
    BOM,
    FAILURE_LOG_INTERVAL_SECONDS,
    SD_ID,
    SyslogSender,
    SyslogWriter,
    escape_param_value,
    format_rfc5424,
    format_structured_data,
    param_name,
    parse_address,
)

WALLET = "4A" + "B" * 93
# 2026-01-01T00:00:00.25Z
SENT = 1767225600.25
RECEIVE_TIMEOUT = 5.0

HEADER = re.compile(rb"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) ")


@dataclass
class Message:
    priority: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd_id: str
    params: dict[str, str]
    document: dict[str, Any]


def parse_sd_element(text: str) -> tuple[str, dict[str, str], str]:
    """Parse one SD-ELEMENT at the start of ``text`` as RFC 5424 6.3 defines it.

    Returns the SD-ID, the parameters and the text after the element. Fails the
    test on an unescaped ``]`` inside a value.
    """
    assert text.startswith("[")
    position = 1
    end_of_id = min(
        index for index in (text.find(" ", 1), text.find("]", 1)) if index >= 0
    )
    sd_id = text[position:end_of_id]
    position = end_of_id
    params: dict[str, str] = {}
    while text[position] == " ":
        equals = text.index("=", position)
        name = text[position + 1 : equals]
        assert text[equals + 1] == '"'
        position = equals + 2
        value = []
        while True:
            character = text[position]
            if character == "\\" and text[position + 1] in '"\\]':
                value.append(text[position + 1])
                position += 2
            elif character == '"':
                position += 1
                break
            else:
                assert character != "]", "unescaped ] in PARAM-VALUE"
                value.append(character)
                position += 1
        params[name] = "".join(value)
    assert text[position] == "]"
    return sd_id, params, text[position + 1 :]


def parse_message(data: bytes) -> Message:
    header = HEADER.match(data)
    assert header is not None, data[:80]
    rest = data[header.end() :]
    bom_at = rest.index(b" " + BOM)
    sd_id, params, after = parse_sd_element(rest[:bom_at].decode("utf-8"))
    assert after == ""
    document = json.loads(rest[bom_at + 1 + len(BOM) :].decode("utf-8"))
    priority, timestamp, hostname, app_name, procid, msgid = (
        value.decode("ascii") for value in header.groups()
    )
    return Message(
        int(priority),
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        sd_id,
        params,
        document,
    )


def document(**mining: Any) -> dict[str, Any]:
    return {
        "@timestamp": "2026-01-01T00:00:00.000000Z",
        "event": {"kind": "alert", "action": "mining-detected"},
        "rule": {"id": "mining.monero"},
        "source": {"ip": "172.17.0.2", "port": 40000},
        "destination": {"ip": "192.0.2.1", "port": 3333},
        "network": {"transport": "tcp", "community_id": "1:abc+/="},
        "mining": {"confidence": "high", "dialect": "monero", **mining},
    }


def test_header_fields():
    message = parse_message(
        format_rfc5424(document(), hostname="node-1", procid=4242, timestamp=SENT)
    )
    assert message.priority == 16 * 8 + 2
    assert message.timestamp == "2026-01-01T00:00:00.250000Z"
    assert message.hostname == "node-1"
    assert message.app_name == "detector"
    assert message.procid == "4242"
    assert message.msgid == "mining"


def test_missing_procid_is_nilvalue():
    message = parse_message(format_rfc5424(document(), hostname="h", timestamp=SENT))
    assert message.procid == "-"


@pytest.mark.parametrize(
    ("confidence", "severity"),
    [("high", 2), ("medium", 4), ("low", 5), ("unknown", 5), (None, 5)],
)
def test_severity_from_confidence(confidence, severity):
    data = format_rfc5424(
        document(confidence=confidence), hostname="h", facility=3, timestamp=SENT
    )
    assert parse_message(data).priority == 3 * 8 + severity


def test_explicit_severity_wins():
    data = format_rfc5424(document(), hostname="h", severity=6, timestamp=SENT)
    assert parse_message(data).priority == 16 * 8 + 6


@pytest.mark.parametrize(
    "options", [{"facility": 24}, {"facility": -1}, {"severity": 8}]
)
def test_invalid_priority_raises(options):
    with pytest.raises(ValueError):
        format_rfc5424(document(), hostname="h", **options)


def test_header_fields_sanitised():
    data = format_rfc5424(
        document(),
        hostname="my host\n",
        app_name="",
        procid="x" * 200,
        msgid="é" * 40,
        timestamp=SENT,
    )
    message = parse_message(data)
    assert message.hostname == "my_host_"
    assert message.app_name == "-"
    assert message.procid == "x" * 128
    assert message.msgid == "_" * 32


def test_long_hostname_cut():
    data = format_rfc5424(document(), hostname="h" * 300, timestamp=SENT)
    assert parse_message(data).hostname == "h" * 255


HOSTILE = [
    'pool"] [evil@1 a="b',
    "back\\slash\\",
    "\\",
    '\\"',
    "]",
    "é€ 中",
    "line\nbreak",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_structured_data_escapes_hostile(value):
    data = format_rfc5424(document(pool={"host": value}), hostname="h", timestamp=SENT)
    message = parse_message(data)
    assert message.sd_id == SD_ID
    assert message.params["mining.pool.host"] == value
    assert message.document["mining"]["pool"]["host"] == value


def test_structured_data_key_fields():
    doc = document(session={"id": "s-1"})
    doc["observer"] = {"ingress": {"interface": {"name": "br-1"}}}
    doc["container"] = {"id": "c0ffee", "name": "miner"}
    params = parse_message(format_rfc5424(doc, hostname="h", timestamp=SENT)).params
    assert params == {
        "event.action": "mining-detected",
        "rule.id": "mining.monero",
        "mining.confidence": "high",
        "mining.dialect": "monero",
        "mining.session.id": "s-1",
        "network.transport": "tcp",
        "network.community_id": "1:abc+/=",
        "source.ip": "172.17.0.2",
        "source.port": "40000",
        "destination.ip": "192.0.2.1",
        "destination.port": "3333",
        "observer.ingress.interface.name": "br-1",
        "container.id": "c0ffee",
        "container.name": "miner",
    }


def test_structured_data_skips_objects():
    doc = document(pool={"host": None})
    doc["container"] = {"id": ["a", "b"], "name": {"nested": 1}}
    element = format_structured_data(doc)
    assert "mining.pool.host" not in element
    assert "container.id" not in element
    assert "container.name" not in element


def test_structured_data_without_fields():
    assert format_structured_data({}) == f"[{SD_ID}]"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("source.ip", "source.ip"),
        ('a=b c]d"e', "a_b_c_d_e"),
        ("é\x00\x7f", "___"),
        ("", "_"),
        ("n" * 40, "n" * 32),
    ],
)
def test_param_name_rules(name, expected):
    assert param_name(name) == expected


def parse_value(escaped: str) -> str:
    _, params, _ = parse_sd_element(f'[x@1 v="{escaped}"]')
    return params["v"]


@given(st.text())
def test_escape_round_trips(value):
    escaped = escape_param_value(value)
    escaped.encode("utf-8")
    expected = value.encode("utf-8", "backslashreplace").decode("utf-8")
    assert parse_value(escaped) == expected


def test_message_is_bom_and_json():
    doc = document(login=f"{WALLET}.rig-é")
    data = format_rfc5424(doc, hostname="h", timestamp=SENT)
    assert BOM + b"{" in data
    assert "é".encode() in data
    assert parse_message(data).document == doc


def test_lone_surrogate_survives_as_escape():
    doc = document(agent="xmrig\ud800")
    data = format_rfc5424(doc, hostname="h", timestamp=SENT)
    data.decode("utf-8")
    message = parse_message(data)
    assert message.document["mining"]["agent"] == "xmrig\ud800"


@pytest.mark.parametrize(
    ("address", "transport", "host", "port", "path"),
    [
        ("udp://127.0.0.1:514", "udp", "127.0.0.1", 514, ""),
        ("tcp://logs.example:6514", "tcp", "logs.example", 6514, ""),
        ("udp://[::1]:514", "udp", "::1", 514, ""),
        ("/dev/log", "unix", "", 0, "/dev/log"),
        ("relative.sock", "unix", "", 0, "relative.sock"),
    ],
)
def test_parse_address_forms(address, transport, host, port, path):
    parsed = parse_address(address)
    assert parsed.transport == transport
    assert parsed.host == host
    assert parsed.port == port
    assert parsed.path == path


@pytest.mark.parametrize(
    "address",
    [
        "",
        "http://127.0.0.1:514",
        "udp://127.0.0.1",
        "udp://:514",
        "tcp://host:0",
        "tcp://host:65536",
        "tcp://host:port",
        "udp://host:514/path",
        "udp://user@host:514",
    ],
)
def test_bad_address_raises(address):
    with pytest.raises(DetectorError, match="udp://HOST:PORT"):
        SyslogSender(address)


def test_invalid_facility_raises():
    with pytest.raises(ValueError):
        SyslogSender("udp://127.0.0.1:514", facility=24)


def test_address_text_round_trips():
    for address in ("udp://127.0.0.1:514", "tcp://[::1]:601", "/dev/log"):
        assert str(parse_address(address)) == address


@pytest.fixture
def udp_receiver():
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(RECEIVE_TIMEOUT)
    yield receiver
    receiver.close()


def test_udp_delivery(udp_receiver):
    port = udp_receiver.getsockname()[1]
    sender = SyslogSender(f"udp://127.0.0.1:{port}", hostname="node-1")
    assert sender.send(document())
    assert sender.send(document(confidence="low"))
    first = parse_message(udp_receiver.recv(65535))
    second = parse_message(udp_receiver.recv(65535))
    sender.close()
    assert first.hostname == "node-1"
    assert first.priority == 16 * 8 + 2
    assert second.priority == 16 * 8 + 5
    assert first.document == document()
    assert sender.sent == 2
    assert sender.failed == 0


def test_udp_without_receiver_does_not_raise():
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    sender = SyslogSender(f"udp://127.0.0.1:{port}")
    # The ICMP port unreachable of one datagram makes a later send fail.
    results = [sender.send(document()) for _ in range(4)]
    sender.close()
    assert False in results
    assert sender.failed == results.count(False)


def read_frame(connection: socket.socket) -> bytes:
    """Read one octet-counted frame: ASCII length, a space, the message."""
    digits = b""
    while True:
        byte = connection.recv(1)
        assert byte, "connection closed inside a frame"
        if byte == b" ":
            break
        assert byte.isdigit(), digits + byte
        digits += byte
    assert digits[:1] != b"0"
    length = int(digits)
    data = b""
    while len(data) < length:
        chunk = connection.recv(length - len(data))
        assert chunk, "connection closed inside a frame"
        data += chunk
    return data


@pytest.fixture
def tcp_listener():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(RECEIVE_TIMEOUT)
    yield listener
    listener.close()


def test_tcp_octet_counting(tcp_listener):
    port = tcp_listener.getsockname()[1]
    sender = SyslogSender(f"tcp://127.0.0.1:{port}", hostname="node-1")
    hostile = document(pool={"host": 'a"]\\ 12 <1>'})
    assert sender.send(hostile)
    assert sender.send(document(confidence="medium"))
    connection, _ = tcp_listener.accept()
    connection.settimeout(RECEIVE_TIMEOUT)
    with connection:
        first = parse_message(read_frame(connection))
        second = parse_message(read_frame(connection))
    sender.close()
    assert first.params["mining.pool.host"] == 'a"]\\ 12 <1>'
    assert first.document == hostile
    assert second.priority == 16 * 8 + 4


def test_tcp_reconnects_after_failure(tcp_listener):
    port = tcp_listener.getsockname()[1]
    sender = SyslogSender(f"tcp://127.0.0.1:{port}")
    assert sender.send(document())
    first, _ = tcp_listener.accept()
    first.settimeout(RECEIVE_TIMEOUT)
    assert parse_message(read_frame(first)).document == document()
    first.close()
    # The peer has closed: a send soon fails with a reset or broken pipe, and
    # the one after it connects again.
    tcp_listener.settimeout(0.2)
    second = None
    for attempt in range(50):
        sender.send(document(dialect=f"attempt-{attempt}"))
        try:
            second, _ = tcp_listener.accept()
            break
        except TimeoutError:
            continue
    assert second is not None
    assert sender.failed >= 1
    second.settimeout(RECEIVE_TIMEOUT)
    with second:
        message = parse_message(read_frame(second))
    sender.close()
    assert message.document["mining"]["dialect"].startswith("attempt-")


def test_tcp_refused_does_not_raise(tcp_listener):
    port = tcp_listener.getsockname()[1]
    tcp_listener.close()
    sender = SyslogSender(f"tcp://127.0.0.1:{port}")
    assert not sender.send(document())
    assert not sender.send(document())
    assert sender.failed == 2
    assert sender.sent == 0


def test_unix_datagram_delivery(tmp_path):
    path = tmp_path / "log"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(RECEIVE_TIMEOUT)
    with receiver:
        sender = SyslogSender(str(path), hostname="node-1")
        assert sender.send(document())
        message = parse_message(receiver.recv(65535))
        sender.close()
    assert message.hostname == "node-1"
    assert message.document == document()


def test_unix_stream_fallback(tmp_path):
    path = tmp_path / "log"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(RECEIVE_TIMEOUT)
    with listener:
        sender = SyslogSender(str(path))
        assert sender.send(document())
        assert sender.send(document(confidence="low"))
        connection, _ = listener.accept()
        connection.settimeout(RECEIVE_TIMEOUT)
        with connection:
            first = parse_message(read_frame(connection))
            second = parse_message(read_frame(connection))
        sender.close()
    assert first.document == document()
    assert second.priority == 16 * 8 + 5


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_logged_once_a_minute(tmp_path, caplog):
    clock = FakeClock()
    sender = SyslogSender(str(tmp_path / "missing"), clock=clock)
    caplog.set_level(logging.WARNING, logger="detector.sinks.syslog")
    for _ in range(5):
        assert not sender.send(document())
        clock.now += 1.0
    assert len(caplog.records) == 1
    assert "missing" in caplog.records[0].getMessage()
    clock.now += FAILURE_LOG_INTERVAL_SECONDS
    assert not sender.send(document())
    assert len(caplog.records) == 2
    assert "4 more dropped" in caplog.records[1].getMessage()
    assert sender.failed == 6


def test_recovery_is_logged(tmp_path, caplog):
    path = tmp_path / "log"
    sender = SyslogSender(str(path), clock=FakeClock())
    caplog.set_level(logging.INFO, logger="detector.sinks.syslog")
    assert not sender.send(document())
    assert not sender.send(document())
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(RECEIVE_TIMEOUT)
    with receiver:
        assert sender.send(document())
        assert parse_message(receiver.recv(65535)).document == document()
    sender.close()
    messages = [record.getMessage() for record in caplog.records]
    assert any("sent again after 2 were dropped" in text for text in messages)


def detection() -> Detection:
    return Detection(
        source="br-1",
        flow=FlowKey("tcp", "172.17.0.2", 40000, "192.0.2.1", 3333),
        first_seen=1767225600.0,
        last_seen=1767225660.0,
        confidence=Confidence.MEDIUM,
        evidence=(),
        mining=MiningFields(dialect="monero", login=WALLET, wallet=WALLET),
        counters=FlowCounters(),
    )


def test_writer_sends_ecs_document(udp_receiver):
    port = udp_receiver.getsockname()[1]
    writer = SyslogWriter(SyslogSender(f"udp://127.0.0.1:{port}"), redact_wallets=True)
    writer.write(detection())
    writer.close()
    message = parse_message(udp_receiver.recv(65535))
    expected = json.loads(json.dumps(to_ecs(detection(), redact_wallets=True)))
    assert message.document == expected
    assert WALLET not in json.dumps(message.document)
    assert message.priority == 16 * 8 + 4


def test_writer_sends_extended_document(udp_receiver):
    port = udp_receiver.getsockname()[1]
    writer = SyslogWriter(SyslogSender(f"udp://127.0.0.1:{port}"))
    extended = to_ecs(detection())
    extended["event"]["action"] = "mining-updated"
    writer.write_document(extended)
    writer.close()
    message = parse_message(udp_receiver.recv(65535))
    assert message.params["event.action"] == "mining-updated"
