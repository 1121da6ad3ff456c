"""EvidenceRecorder: per-flow packets written back as pcap files."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.capture import open_capture
from detector.errors import DetectorError
from detector.live.evidence import (
    MAX_FLOWS,
    MAX_NAME_CHARS,
    MAX_PACKETS_PER_FLOW,
    RECORD_HEADER,
    EvidenceRecorder,
    safe_file_name,
)

ETHERNET = 1
RAW_IP = 101
START = 1767225600.0


def frame(number: int, size: int = 60) -> bytes:
    return number.to_bytes(4, "big") * (size // 4) + b"\x00" * (size % 4)


def test_written_pcap_reads_back(tmp_path):
    recorder = EvidenceRecorder(tmp_path)
    sent = [
        (START, frame(1), 60),
        (START + 0.000001, frame(2, 1514), 1514),
        (START + 1.5, frame(3, 96), 9000),
    ]
    for timestamp, data, wire_length in sent:
        recorder.add(b"flow-a", timestamp, ETHERNET, data, wire_length)
    path = recorder.write(b"flow-a", "s1-flow")
    assert path == tmp_path / "s1-flow.pcap"
    packets = list(open_capture(path))
    assert len(packets) == len(sent)
    for packet, (timestamp, data, wire_length) in zip(packets, sent, strict=True):
        assert packet.linktype == ETHERNET
        assert packet.data == data
        assert packet.wire_length == wire_length
        assert packet.timestamp == pytest.approx(timestamp, abs=1e-6)


def test_flows_kept_apart(tmp_path):
    recorder = EvidenceRecorder(tmp_path)
    recorder.add(b"a", START, ETHERNET, frame(1), 60)
    recorder.add(b"b", START, ETHERNET, frame(2), 60)
    recorder.add(b"a", START + 1, ETHERNET, frame(3), 60)
    packets = list(open_capture(recorder.write(b"a", "a")))
    assert [packet.data for packet in packets] == [frame(1), frame(3)]


def test_unknown_key_returns_none(tmp_path):
    recorder = EvidenceRecorder(tmp_path)
    assert recorder.write(b"missing", "x") is None
    assert list(tmp_path.iterdir()) == []


def test_other_linktype_skipped_and_logged(tmp_path, caplog):
    recorder = EvidenceRecorder(tmp_path)
    recorder.add(b"a", START, RAW_IP, frame(1), 60)
    recorder.add(b"a", START + 1, ETHERNET, frame(2), 60)
    recorder.add(b"a", START + 2, RAW_IP, frame(3), 60)
    caplog.set_level(logging.WARNING, logger="detector.live.evidence")
    packets = list(open_capture(recorder.write(b"a", "a")))
    assert [packet.linktype for packet in packets] == [RAW_IP, RAW_IP]
    assert [packet.data for packet in packets] == [frame(1), frame(3)]
    assert len(caplog.records) == 1
    assert "1 packets with a link type other than 101" in caplog.text


def test_packet_bound_per_flow(tmp_path, caplog):
    recorder = EvidenceRecorder(tmp_path, max_packets_per_flow=3)
    for number in range(10):
        recorder.add(b"a", START + number, ETHERNET, frame(number), 60)
    caplog.set_level(logging.INFO, logger="detector.live.evidence")
    packets = list(open_capture(recorder.write(b"a", "a")))
    assert [packet.data for packet in packets] == [frame(0), frame(1), frame(2)]
    assert "7 later packets" in caplog.text


def test_default_packet_bound(tmp_path):
    recorder = EvidenceRecorder(tmp_path)
    for number in range(MAX_PACKETS_PER_FLOW + 10):
        recorder.add(b"a", START + number, ETHERNET, frame(number), 60)
    packets = list(open_capture(recorder.write(b"a", "a")))
    assert len(packets) == MAX_PACKETS_PER_FLOW


def test_byte_bound_per_flow(tmp_path):
    record = RECORD_HEADER.size + 100
    recorder = EvidenceRecorder(tmp_path, max_bytes_per_flow=2 * record)
    recorder.add(b"a", START, ETHERNET, frame(1, 100), 100)
    recorder.add(b"a", START + 1, ETHERNET, frame(2, 100), 100)
    recorder.add(b"a", START + 2, ETHERNET, frame(3, 100), 100)
    recorder.add(b"a", START + 3, ETHERNET, frame(4, 1), 1)
    assert recorder.kept_bytes == 2 * record
    path = recorder.write(b"a", "a")
    assert path.stat().st_size == 24 + 2 * record
    assert [packet.data for packet in open_capture(path)] == [
        frame(1, 100),
        frame(2, 100),
    ]


def test_oversized_first_packet_not_kept(tmp_path):
    recorder = EvidenceRecorder(tmp_path, max_bytes_per_flow=100)
    recorder.add(b"a", START, ETHERNET, frame(1, 200), 200)
    assert recorder.write(b"a", "a") is None
    assert recorder.kept_bytes == 0


def test_least_recently_added_dropped(tmp_path):
    recorder = EvidenceRecorder(tmp_path, max_flows=3)
    for key in (b"a", b"b", b"c"):
        recorder.add(key, START, ETHERNET, frame(1), 60)
    recorder.add(b"a", START + 1, ETHERNET, frame(2), 60)
    recorder.add(b"d", START + 2, ETHERNET, frame(3), 60)
    assert recorder.flows == 3
    assert recorder.evicted_flows == 1
    assert recorder.write(b"b", "b") is None
    for key in (b"a", b"c", b"d"):
        assert recorder.write(key, key.decode()) is not None


def test_total_byte_bound(tmp_path):
    record = RECORD_HEADER.size + 100
    recorder = EvidenceRecorder(
        tmp_path, max_bytes_per_flow=record, max_bytes=record * 3
    )
    for number in range(5):
        recorder.add(bytes([number]), START, ETHERNET, frame(number, 100), 100)
    assert recorder.kept_bytes == 3 * record
    assert recorder.flows == 3
    assert recorder.evicted_flows == 2
    assert recorder.write(bytes([0]), "0") is None
    assert recorder.write(bytes([4]), "4") is not None


def test_flood_of_flows_bounded(tmp_path, caplog):
    recorder = EvidenceRecorder(tmp_path)
    caplog.set_level(logging.WARNING, logger="detector.live.evidence")
    flows = MAX_FLOWS * 3
    for number in range(flows):
        key = number.to_bytes(4, "big")
        recorder.add(key, START, ETHERNET, frame(number), 60)
    assert recorder.flows == MAX_FLOWS
    assert recorder.evicted_flows == flows - MAX_FLOWS
    assert recorder.kept_bytes == MAX_FLOWS * (RECORD_HEADER.size + 60)
    assert recorder.write((0).to_bytes(4, "big"), "oldest") is None
    newest = recorder.write((flows - 1).to_bytes(4, "big"), "newest")
    assert [packet.data for packet in open_capture(newest)] == [frame(flows - 1)]
    assert len(caplog.records) == 1


def test_forget_frees_bytes(tmp_path):
    recorder = EvidenceRecorder(tmp_path)
    recorder.add(b"a", START, ETHERNET, frame(1), 60)
    recorder.add(b"b", START, ETHERNET, frame(2), 60)
    recorder.forget(b"a")
    recorder.forget(b"missing")
    assert recorder.flows == 1
    assert recorder.kept_bytes == RECORD_HEADER.size + 60
    assert recorder.write(b"a", "a") is None


def test_rewrite_replaces_file(tmp_path):
    recorder = EvidenceRecorder(tmp_path)
    recorder.add(b"a", START, ETHERNET, frame(1), 60)
    path = recorder.write(b"a", "s-1")
    recorder.add(b"a", START + 1, ETHERNET, frame(2), 60)
    assert recorder.write(b"a", "s-1") == path
    assert len(list(open_capture(path))) == 2
    assert [entry.name for entry in tmp_path.iterdir()] == ["s-1.pcap"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("s1-1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "s1-1_LQU9qZlK_B5F3KDmev6m5PMibrg_"),
        ("../../etc/passwd", "_._.._etc_passwd"),
        ("..", "_."),
        (".hidden", "_hidden"),
        ("a b/c\\d\x00é", "a_b_c_d__"),
        ("ok_name-1.2", "ok_name-1.2"),
    ],
)
def test_safe_file_name(name, expected):
    assert safe_file_name(name) == expected


def test_safe_file_name_cut():
    assert safe_file_name("x" * 1000) == "x" * MAX_NAME_CHARS


def test_empty_name_raises():
    with pytest.raises(ValueError):
        safe_file_name("")


def test_hostile_name_stays_in_folder(tmp_path):
    folder = tmp_path / "evidence"
    recorder = EvidenceRecorder(folder)
    recorder.add(b"a", START, ETHERNET, frame(1), 60)
    path = recorder.write(b"a", "../escape")
    assert path.parent == folder
    assert path.name == "_._escape.pcap"
    assert [entry.name for entry in tmp_path.iterdir()] == ["evidence"]


def test_folder_created(tmp_path):
    folder = tmp_path / "a" / "b"
    EvidenceRecorder(folder)
    assert folder.is_dir()


def test_unwritable_folder_raises(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(DetectorError, match=str(blocker / "evidence")):
        EvidenceRecorder(blocker / "evidence")


def test_write_failure_raises(tmp_path):
    folder = tmp_path / "evidence"
    recorder = EvidenceRecorder(folder)
    recorder.add(b"a", START, ETHERNET, frame(1), 60)
    folder.rmdir()
    with pytest.raises(DetectorError, match="a.pcap"):
        recorder.write(b"a", "a")


def test_no_temporary_files_left(tmp_path):
    recorder = EvidenceRecorder(tmp_path)
    for number in range(5):
        recorder.add(b"a", START + number, ETHERNET, frame(number), 60)
        recorder.write(b"a", "a")
    assert [entry.name for entry in tmp_path.iterdir()] == ["a.pcap"]


@pytest.mark.parametrize(
    "bounds",
    [
        {"max_packets_per_flow": 0},
        {"max_bytes_per_flow": 0},
        {"max_flows": 0},
        {"max_bytes": 10, "max_bytes_per_flow": 20},
    ],
)
def test_invalid_bounds_raise(tmp_path, bounds):
    with pytest.raises(ValueError):
        EvidenceRecorder(tmp_path, **bounds)


def test_out_of_range_times_clamped(tmp_path):
    recorder = EvidenceRecorder(tmp_path)
    recorder.add(b"a", -5.0, ETHERNET, frame(1), 60)
    recorder.add(b"a", float("nan"), ETHERNET, frame(2), 60)
    recorder.add(b"a", 1e12, ETHERNET, frame(3), 60)
    recorder.add(b"a", 1.9999996, ETHERNET, frame(4), 60)
    packets = list(open_capture(recorder.write(b"a", "a")))
    assert packets[0].timestamp == 0
    assert packets[1].timestamp == 0
    assert packets[2].timestamp == pytest.approx(0xFFFFFFFF + 0.999999)
    assert packets[3].timestamp == 2.0


def test_short_wire_length_raised_to_captured(tmp_path):
    recorder = EvidenceRecorder(tmp_path)
    recorder.add(b"a", START, ETHERNET, frame(1, 100), 10)
    packets = list(open_capture(recorder.write(b"a", "a")))
    assert packets[0].wire_length == 100


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2**32 * 1_000_000 - 1),
            st.binary(max_size=300),
            st.integers(min_value=0, max_value=2**32 - 1),
        ),
        max_size=20,
    )
)
def test_round_trip_property(tmp_path_factory, packets):
    folder = tmp_path_factory.mktemp("evidence")
    recorder = EvidenceRecorder(folder, max_packets_per_flow=20)
    for micros, data, wire_length in packets:
        recorder.add(b"k", micros / 1_000_000, ETHERNET, data, wire_length)
    path = recorder.write(b"k", "k")
    if not packets:
        assert path is None
        return
    read = list(open_capture(path))
    assert [packet.data for packet in read] == [data for _, data, _ in packets]
    assert [packet.wire_length for packet in read] == [
        max(wire_length, len(data)) for _, data, wire_length in packets
    ]
    for packet, (micros, _, _) in zip(read, packets, strict=True):
        seconds, fraction = divmod(micros, 1_000_000)
        assert packet.timestamp == seconds + fraction / 1_000_000
