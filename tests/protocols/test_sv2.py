"""Stratum V2: the plaintext SetupConnection frame and the Noise act 1 shape."""

from __future__ import annotations

import base64
import hashlib
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.protocols.sv2 import (
    HEADER_BYTES,
    NOISE_ACT1_BYTES,
    PROTOCOL_JOB_DECLARATION,
    PROTOCOL_MINING,
    SetupConnection,
    looks_like_noise_act1,
    parse_setup_connection,
)


def str0_255(text: bytes) -> bytes:
    return bytes([len(text)]) + text


def setup_connection_frame(
    protocol: int = PROTOCOL_MINING,
    min_version: int = 2,
    max_version: int = 2,
    flags: int = 0b0101,
    host: bytes = b"pool.example.com",
    port: int = 34254,
    vendor: bytes = b"Bitmain",
    hardware: bytes = b"S19 Pro",
    firmware: bytes = b"braiins-os-2023-01-01",
    device_id: bytes = b"rig-17",
    extension_type: int = 0,
    msg_type: int = 0x00,
    extra_payload: bytes = b"",
) -> bytes:
    """Build a frame: header, then the fields of sv2-spec section 3.6.1."""
    payload = struct.pack("<BHHI", protocol, min_version, max_version, flags)
    payload += str0_255(host) + struct.pack("<H", port)
    payload += str0_255(vendor) + str0_255(hardware) + str0_255(firmware)
    payload += str0_255(device_id) + extra_payload
    header = struct.pack("<HB", extension_type, msg_type)
    return header + len(payload).to_bytes(3, "little") + payload


FRAME = setup_connection_frame()


def test_setup_connection_fields() -> None:
    message = parse_setup_connection(FRAME)
    assert message == SetupConnection(
        protocol=PROTOCOL_MINING,
        min_version=2,
        max_version=2,
        flags=0b0101,
        endpoint_host="pool.example.com",
        endpoint_port=34254,
        vendor="Bitmain",
        hardware_version="S19 Pro",
        firmware="braiins-os-2023-01-01",
        device_id="rig-17",
        frame_length=len(FRAME),
    )


def test_setup_connection_with_trailing_bytes() -> None:
    following = setup_connection_frame(msg_type=0x10)
    assert parse_setup_connection(FRAME + following) == parse_setup_connection(FRAME)


def test_every_prefix_rejected() -> None:
    # A parser of whole frames: any frame cut short is not a SetupConnection.
    for end in range(len(FRAME)):
        assert parse_setup_connection(FRAME[:end]) is None


def test_empty_and_maximum_strings() -> None:
    message = parse_setup_connection(
        setup_connection_frame(
            host=b"h" * 255, vendor=b"", hardware=b"", firmware=b"", device_id=b""
        )
    )
    assert message is not None
    assert message.endpoint_host == "h" * 255
    assert message.device_id == ""


def test_utf8_device_strings() -> None:
    frame = setup_connection_frame(vendor="Ünïcode Miner".encode())
    message = parse_setup_connection(frame)
    assert message is not None
    assert message.vendor == "Ünïcode Miner"


def test_other_protocol_and_versions() -> None:
    frame = setup_connection_frame(
        protocol=PROTOCOL_JOB_DECLARATION, min_version=2, max_version=3
    )
    message = parse_setup_connection(frame)
    assert message is not None
    assert message.protocol == PROTOCOL_JOB_DECLARATION
    assert message.max_version == 3


@pytest.mark.parametrize(
    "frame",
    [
        setup_connection_frame(extension_type=0x8000),
        setup_connection_frame(extension_type=0x0001),
        setup_connection_frame(msg_type=0x01),
        setup_connection_frame(protocol=3),
        setup_connection_frame(min_version=0, max_version=2),
        setup_connection_frame(min_version=3, max_version=2),
        setup_connection_frame(host="pööl.example".encode()),
        setup_connection_frame(firmware=b"\xff\xfe"),
        setup_connection_frame(extra_payload=b"\x00"),
        FRAME[:3] + (len(FRAME) - HEADER_BYTES - 1).to_bytes(3, "little") + FRAME[6:],
        b'{"id":1,"method":"mining.subscribe","params":[]}\n',
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ],
    ids=[
        "channel-bit",
        "extension",
        "other-message",
        "unknown-protocol",
        "version-zero",
        "versions-reversed",
        "non-ascii-host",
        "invalid-utf8",
        "payload-longer-than-fields",
        "length-shorter-than-fields",
        "stratum-v1",
        "tls",
    ],
)
def test_setup_connection_rejected(frame: bytes) -> None:
    assert parse_setup_connection(frame) is None


# Noise act 1: 64 bytes that look random.


def pseudo_random_keys(count: int) -> list[bytes]:
    """Return ``count`` SHA-512 digests: 64 bytes each, as random as a key."""
    return [hashlib.sha512(b"act1-%d" % index).digest() for index in range(count)]


def test_random_keys_accepted() -> None:
    keys = pseudo_random_keys(2000)
    opening_like_json = [key for key in keys if key[:1] in (b"{", b"[")]
    accepted = [key for key in keys if looks_like_noise_act1(key)]
    # Only the keys that happen to open like JSON are turned away.
    assert len(accepted) == len(keys) - len(opening_like_json)
    assert all(not looks_like_noise_act1(key) for key in opening_like_json)


KEY = pseudo_random_keys(1)[0]


@pytest.mark.parametrize("payload", [KEY[:63], KEY + b"\x00", b""])
def test_other_lengths_rejected(payload: bytes) -> None:
    assert looks_like_noise_act1(KEY)
    assert not looks_like_noise_act1(payload)


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps(
            {"id": 1, "method": "login", "params": {"login": "x" * 11}}
        ).encode(),
        b"\x16\x03\x01" + KEY[3:],
        hashlib.sha256(b"x").hexdigest().encode(),
        base64.b64encode(KEY[:48]),
        bytes(64),
        b"abcd" * 16,
        bytes(16) + KEY[:48],
        b"GET /" + KEY[:59],
        b"SSH-2.0-" + KEY[:56],
    ],
    ids=[
        "json-line",
        "tls-record",
        "hex-text",
        "base64-text",
        "zeros",
        "repeated-pattern",
        "zero-padded-header",
        "http",
        "ssh",
    ],
)
def test_structured_payloads_rejected(payload: bytes) -> None:
    assert len(payload) == NOISE_ACT1_BYTES
    assert not looks_like_noise_act1(payload)


def test_setup_connection_of_64_bytes_rejected() -> None:
    base = len(setup_connection_frame(host=b"", firmware=b"fw"))
    frame = setup_connection_frame(
        host=b"p" * (NOISE_ACT1_BYTES - base), firmware=b"fw"
    )
    assert len(frame) == NOISE_ACT1_BYTES
    assert parse_setup_connection(frame) is not None
    assert not looks_like_noise_act1(frame)


# Hostile input.


@settings(database=None, max_examples=500)
@given(st.binary(max_size=300))
def test_parse_arbitrary_bytes(data: bytes) -> None:
    message = parse_setup_connection(data)
    assert message is None or isinstance(message, SetupConnection)
    assert isinstance(looks_like_noise_act1(data), bool)


SHORT_TEXT = st.text(max_size=40).filter(lambda text: len(text.encode()) <= 255)


@settings(database=None, max_examples=300)
@given(
    st.text(alphabet=st.characters(max_codepoint=127), max_size=255),
    st.integers(0, 0xFFFF),
    SHORT_TEXT,
    SHORT_TEXT,
    st.binary(max_size=20),
)
def test_built_frames_round_trip(
    host: str, port: int, vendor: str, device_id: str, following: bytes
) -> None:
    frame = setup_connection_frame(
        host=host.encode(),
        port=port,
        vendor=vendor.encode(),
        device_id=device_id.encode(),
    )
    message = parse_setup_connection(frame + following)
    assert message is not None
    assert message.endpoint_host == host
    assert message.endpoint_port == port
    assert message.vendor == vendor
    assert message.device_id == device_id
    assert message.frame_length == len(frame)
