"""Capture encoders, read back with scapy's readers."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.utils import PcapNgReader, RawPcapNgReader, RawPcapReader

from detector.trafficgen.writers import (
    DEFAULT_SNAPLEN,
    PCAP_MAGIC_MICROSECONDS,
    PCAP_MAGIC_NANOSECONDS,
    Interface,
    Record,
    encode_pcap,
    encode_pcapng,
    gzip_compress,
)

START = 1_767_225_600_000_000_000
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101


def read_pcap(tmp_path: Path, content: bytes) -> tuple[list, object]:
    path = tmp_path / "sample.pcap"
    path.write_bytes(content)
    with RawPcapReader(str(path)) as reader:
        records = list(reader)
        return records, reader.linktype


def test_pcap_header_fields() -> None:
    content = encode_pcap([], LINKTYPE_ETHERNET)
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack(
        "<IHHiIII", content
    )
    assert magic == PCAP_MAGIC_MICROSECONDS
    assert (major, minor) == (2, 4)
    assert (zone, sigfigs) == (0, 0)
    assert snaplen == DEFAULT_SNAPLEN
    assert linktype == LINKTYPE_ETHERNET


def test_pcap_nanosecond_big_endian_header() -> None:
    content = encode_pcap([], LINKTYPE_RAW, nanosecond=True, big_endian=True)
    magic, *_, linktype = struct.unpack(">IHHiIII", content)
    assert magic == PCAP_MAGIC_NANOSECONDS
    assert linktype == LINKTYPE_RAW


@pytest.mark.parametrize("nanosecond", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_round_trip(tmp_path: Path, nanosecond: bool, big_endian: bool) -> None:
    records = [
        Record(START + 123_456_789, b"\x01" * 60),
        Record(START + 2_000_000_417, b"\x02" * 1514),
    ]
    content = encode_pcap(
        records, LINKTYPE_ETHERNET, nanosecond=nanosecond, big_endian=big_endian
    )
    read, linktype = read_pcap(tmp_path, content)
    assert linktype == LINKTYPE_ETHERNET
    assert [data for data, _ in read] == [record.data for record in records]
    divisor = 1 if nanosecond else 1000
    for (_, metadata), record in zip(read, records, strict=True):
        seconds, fraction = divmod(record.timestamp_ns, 1_000_000_000)
        assert metadata.sec == seconds
        assert metadata.usec == fraction // divisor
        assert metadata.wirelen == len(record.data)


def test_pcap_truncates_at_snaplen(tmp_path: Path) -> None:
    content = encode_pcap([Record(START, b"x" * 100)], LINKTYPE_RAW, snaplen=64)
    read, _ = read_pcap(tmp_path, content)
    data, metadata = read[0]
    assert data == b"x" * 64
    assert metadata.caplen == 64
    assert metadata.wirelen == 100


def test_pcapng_two_interfaces(tmp_path: Path) -> None:
    interfaces = [
        Interface(LINKTYPE_ETHERNET, "docker0"),
        Interface(LINKTYPE_RAW, "tun0", timestamp_exponent=9),
    ]
    records = [
        Record(START + 1_500, b"\xaa" * 64, 0),
        Record(START + 2_000_000_251, b"\x45" + b"\x00" * 39, 1),
    ]
    path = tmp_path / "two.pcapng"
    path.write_bytes(encode_pcapng(interfaces, records))
    with RawPcapNgReader(str(path)) as reader:
        read = list(reader)
        assert [linktype for linktype, _, _ in reader.interfaces] == [
            LINKTYPE_ETHERNET,
            LINKTYPE_RAW,
        ]
    assert [data for data, _ in read] == [record.data for record in records]
    assert [metadata.linktype for _, metadata in read] == [
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW,
    ]
    assert [metadata.ifname for _, metadata in read] == [b"docker0", b"tun0"]
    assert [metadata.tsresol for _, metadata in read] == [10**6, 10**9]
    first, second = (metadata for _, metadata in read)
    assert (first.tshigh << 32 | first.tslow) == (START + 1_500) // 1_000
    assert (second.tshigh << 32 | second.tslow) == START + 2_000_000_251


def test_pcapng_timestamps_with_scapy_reader(tmp_path: Path) -> None:
    interfaces = [Interface(LINKTYPE_RAW, "tun0", timestamp_exponent=9)]
    ip_packet = bytes.fromhex("450000140001000040003a9bc0000201c0000202")
    path = tmp_path / "ns.pcapng"
    path.write_bytes(encode_pcapng(interfaces, [Record(START + 417, ip_packet)]))
    with PcapNgReader(str(path)) as reader:
        packet = next(iter(reader))
    assert str(packet.time) == "1767225600.000000417"


def test_pcapng_rejects_unknown_interface() -> None:
    with pytest.raises(ValueError):
        encode_pcapng([Interface(LINKTYPE_RAW, "tun0")], [Record(START, b"x", 1)])


def test_pcapng_blocks_are_aligned() -> None:
    content = encode_pcapng([Interface(LINKTYPE_RAW, "tun0")], [Record(START, b"abc")])
    offset = 0
    while offset < len(content):
        _, length = struct.unpack_from("<II", content, offset)
        assert length % 4 == 0
        (trailer,) = struct.unpack_from("<I", content, offset + length - 4)
        assert trailer == length
        offset += length
    assert offset == len(content)


def test_gzip_is_reproducible() -> None:
    data = b"capture bytes" * 100
    first = gzip_compress(data)
    assert first == gzip_compress(data)
    assert gzip.decompress(first) == data
    # Header: magic, deflate, no flags (so no file name), zero mtime.
    assert first[:4] == b"\x1f\x8b\x08\x00"
    assert first[4:8] == b"\x00\x00\x00\x00"


@settings(max_examples=60, deadline=None)
@given(
    frames=st.lists(
        st.tuples(st.integers(0, 2**31 * 10**9), st.binary(min_size=1, max_size=300)),
        max_size=8,
    ),
    nanosecond=st.booleans(),
    big_endian=st.booleans(),
)
def test_pcap_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory,
    frames: list[tuple[int, bytes]],
    nanosecond: bool,
    big_endian: bool,
) -> None:
    records = [Record(timestamp, data) for timestamp, data in frames]
    content = encode_pcap(
        records, LINKTYPE_RAW, nanosecond=nanosecond, big_endian=big_endian
    )
    read, _ = read_pcap(tmp_path_factory.mktemp("pcap"), content)
    assert [data for data, _ in read] == [data for _, data in frames]
