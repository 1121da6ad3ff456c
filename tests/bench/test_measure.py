"""Parsing the output of /usr/bin/time, the detector and ndpiReader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.bench.generate import write_flood
from detector.bench.measure import (
    BenchError,
    Benchmark,
    count_detector_matches,
    count_ndpi_mining,
    flows_evicted,
    package_of,
    parse_time_output,
    pcap_packet_count,
)
from detector.errors import DetectorError

TIME_OUTPUT = """\
\tCommand being timed: "ndpiReader -q -i mixed-1m.pcap -C ndpi.csv"
\tUser time (seconds): 5.61
\tSystem time (seconds): 0.52
\tPercent of CPU this job got: 98%
\tElapsed (wall clock) time (h:mm:ss or m:ss): {wall}
\tAverage shared text size (kbytes): 0
\tMaximum resident set size (kbytes): 422036
\tExit status: 0
"""

NDPI_HEADER = (
    "#flow_id,protocol,first_seen,last_seen,duration,src_ip,src_port,dst_ip,"
    "dst_port,ndpi_proto_num,ndpi_proto,server_name_sni"
)

EXPECTED = {
    ("172.17.0.5:40000", "203.0.113.10:3333", "monero"),
    ("172.17.0.6:40001", "198.51.100.20:3333", "stratum-v1"),
}


def detection_line(
    client: tuple[str, int], server: tuple[str, int], dialect: str
) -> str:
    return json.dumps(
        {
            "source": {"ip": client[0], "port": client[1]},
            "destination": {"ip": server[0], "port": server[1]},
            "mining": {"dialect": dialect},
        }
    )


@pytest.mark.parametrize(
    ("wall", "seconds"),
    [("0:06.23", 6.23), ("1:02.50", 62.5), ("1:00:01", 3601.0)],
)
def test_time_output_parsed(wall: str, seconds: float) -> None:
    parsed_seconds, rss = parse_time_output(TIME_OUTPUT.format(wall=wall))
    assert parsed_seconds == pytest.approx(seconds)
    assert rss == 422036


def test_time_output_without_rss_rejected() -> None:
    text = TIME_OUTPUT.format(wall="0:01.00").replace("Maximum resident", "Max")
    with pytest.raises(BenchError, match="peak RSS"):
        parse_time_output(text)


@given(st.text())
def test_time_parser_returns_or_raises_bench_error(text: str) -> None:
    try:
        seconds, rss = parse_time_output(text)
    except BenchError:
        return
    assert seconds >= 0
    assert rss >= 0


def test_detector_matches_counted() -> None:
    jsonl = "\n".join(
        [
            detection_line(("172.17.0.5", 40000), ("203.0.113.10", 3333), "monero"),
            # Right flow, wrong dialect: not a match.
            detection_line(("172.17.0.6", 40001), ("198.51.100.20", 3333), "ethproxy"),
            detection_line(("172.17.0.7", 40002), ("192.0.2.1", 443), "monero"),
            "",
        ]
    )
    lines, matched = count_detector_matches(jsonl, EXPECTED)
    assert lines == 3
    assert matched == 1


def test_detector_ipv6_endpoint_bracketed() -> None:
    jsonl = detection_line(("2001:db8::5", 40000), ("2001:db8::10", 3333), "monero")
    expected = {("[2001:db8::5]:40000", "[2001:db8::10]:3333", "monero")}
    assert count_detector_matches(jsonl, expected) == (1, 1)


def test_detector_line_without_fields_rejected() -> None:
    with pytest.raises(BenchError, match="line 2"):
        valid = detection_line(("172.17.0.5", 40000), ("192.0.2.1", 3333), "monero")
        count_detector_matches(valid + '\n{"source": {}}', EXPECTED)


@given(st.text())
def test_detector_output_reader_contract(text: str) -> None:
    try:
        lines, matched = count_detector_matches(text, EXPECTED)
    except BenchError:
        return
    assert 0 <= matched <= lines


def test_ndpi_mining_rows_counted() -> None:
    rows = [
        NDPI_HEADER,
        "1,6,0,1,1,172.17.0.5,40000,203.0.113.10,3333,42,Mining,",
        # The pool side first: still the expected flow.
        "2,6,0,1,1,198.51.100.20,3333,172.17.0.6,40001,91.42,TLS.Mining,",
        "3,6,0,1,1,172.17.0.9,40009,192.0.2.9,3333,42,Mining,",
        "4,17,0,1,1,172.17.0.9,40010,192.0.2.53,53,5,DNS,",
        # 142 is not 42.
        "5,6,0,1,1,172.17.0.9,40011,10.20.0.10,443,142,Other,",
    ]
    pairs = {(client, server) for client, server, _ in EXPECTED}
    assert count_ndpi_mining("\n".join(rows), pairs) == (3, 2)


def test_ndpi_csv_without_protocol_column_rejected() -> None:
    with pytest.raises(BenchError, match="ndpi_proto_num"):
        count_ndpi_mining("#flow_id,protocol\n1,6\n", set())


@given(st.text())
def test_ndpi_reader_contract(text: str) -> None:
    try:
        mining, matched = count_ndpi_mining(text, set())
    except BenchError:
        return
    assert matched == 0
    assert mining >= 0


def test_evictions_read_from_summary() -> None:
    summary = (
        "scanned 1 file, 1000000 packets, 0 flows with payload, 0 mining"
        " detections, 737856 flows evicted from a full flow table in 20.00 s"
    )
    assert flows_evicted(summary) == 737856
    assert flows_evicted("1 flow evicted from a full flow table") == 1
    assert flows_evicted("scanned 1 file, 3 packets in 0.01 s") == 0


def test_packet_count_of_pcap(tmp_path: Path) -> None:
    path = tmp_path / "flood.pcap"
    write_flood(path, flows=123)
    assert pcap_packet_count(path) == 123
    content = path.read_bytes()
    # Each record is a 16-byte header and a 54-byte frame.
    path.write_bytes(content[:-70])
    assert pcap_packet_count(path) == 122
    path.write_bytes(content[:-60])
    with pytest.raises(BenchError, match="inside a record header"):
        pcap_packet_count(path)
    path.write_bytes(content[:-30])
    with pytest.raises(BenchError, match="inside record 123"):
        pcap_packet_count(path)


@pytest.mark.parametrize(
    ("filename", "package"),
    [
        ("~", "built-ins"),
        ("/work/main/detector/flows/table.py", "detector.flows"),
        ("/work/main/detector/scan.py", "detector.scan"),
        ("/venv/lib/python3.11/site-packages/typer/main.py", "typer"),
        ("/usr/lib/python3.11/json/decoder.py", "standard library"),
    ],
)
def test_profile_package_of_file(filename: str, package: str) -> None:
    assert package_of(filename) == package


def test_missing_capture_named(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="mixed-1m.pcap not found") as caught:
        Benchmark(tmp_path, rounds=1).check()
    assert isinstance(caught.value, DetectorError)


def test_rounds_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rounds"):
        Benchmark(tmp_path, rounds=0)
