"""The generated sample captures: reproducible, committed, readable, safe."""

from __future__ import annotations

import gzip
import ipaddress
from pathlib import Path

import pytest
import yaml
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

from detector.trafficgen.__main__ import main
from detector.trafficgen.manifest import MANIFEST_NAME
from detector.trafficgen.samples.common import BASE_TIME_NS, DIALECTS
from detector.trafficgen.samples.traps import TRAP_FILES

REPOSITORY = Path(__file__).resolve().parents[2]
COMMITTED = REPOSITORY / "pcaps"
# Samples stay small so the repository stays small; most are under 10 KB.
MAX_SAMPLE_BYTES = 16 * 1024
# A bulk download needs its bytes: ten minutes of bursts take about 36 KB.
LARGE_SAMPLES = {"long-tls-download.pcap": 40 * 1024}
GZIP_HEADER_LENGTH = 10

CLIENT_NETWORKS = [
    ipaddress.ip_network("172.17.0.0/16"),
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("2001:db8::/32"),
]
SERVER_NETWORKS = [
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("2001:db8::/32"),
]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("generated")
    assert main([str(outdir)]) == 0
    return outdir


@pytest.fixture(scope="module")
def manifest(generated: Path) -> dict:
    return yaml.safe_load((generated / MANIFEST_NAME).read_text(encoding="utf-8"))


def sample_names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir() if path.is_file()}


def parse_endpoint(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def transport_endpoints(packet) -> tuple[str, int, str, int] | None:
    """Return (source ip, source port, destination ip, destination port)."""
    if IP in packet:
        ip_layer = packet[IP]
    elif IPv6 in packet:
        ip_layer = packet[IPv6]
    else:
        return None
    if TCP in packet:
        transport = packet[TCP]
    elif UDP in packet:
        transport = packet[UDP]
    else:
        return None
    return ip_layer.src, transport.sport, ip_layer.dst, transport.dport


def test_generation_is_byte_identical(generated: Path, tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0
    assert sample_names(tmp_path) == sample_names(generated)
    for name in sample_names(generated):
        assert (tmp_path / name).read_bytes() == (generated / name).read_bytes(), name


def test_committed_files_match_generation(generated: Path) -> None:
    assert sample_names(COMMITTED) == sample_names(generated), (
        "pcaps/ is stale: run `make pcaps` and commit the result"
    )
    for name in sample_names(generated):
        committed = (COMMITTED / name).read_bytes()
        fresh = (generated / name).read_bytes()
        if name.endswith(".gz"):
            # The deflate stream depends on the zlib build, so compare the
            # header and the decompressed capture instead of the raw bytes.
            assert committed[:GZIP_HEADER_LENGTH] == fresh[:GZIP_HEADER_LENGTH], name
            assert gzip.decompress(committed) == gzip.decompress(fresh), name
        else:
            assert committed == fresh, f"{name} differs: run `make pcaps`"


def test_manifest_lists_every_file(generated: Path, manifest: dict) -> None:
    listed = set(manifest["files"])
    assert listed | {MANIFEST_NAME} == sample_names(generated)


def test_manifest_entries_are_complete(manifest: dict) -> None:
    for name, entry in manifest["files"].items():
        description = entry["description"]
        assert description.endswith("."), name
        assert description.count(". ") == 0, f"{name}: description is not one sentence"
        assert isinstance(entry["packets"], int), name
        assert entry["packets"] > 0, name
        for flow in entry["expected"]:
            assert flow["dialect"] in DIALECTS, name
            parse_endpoint(flow["client"])
            parse_endpoint(flow["server"])


def test_negatives_expect_nothing(manifest: dict) -> None:
    for name, entry in manifest["files"].items():
        if name.startswith("negative-") or name in TRAP_FILES:
            assert entry["expected"] == [], name
        else:
            assert entry["expected"], f"{name} is not a negative but expects nothing"


def test_traps_are_generated(manifest: dict) -> None:
    assert TRAP_FILES <= set(manifest["files"])


def test_files_read_back_with_scapy(generated: Path, manifest: dict) -> None:
    for name, entry in manifest["files"].items():
        packets = rdpcap(str(generated / name))
        assert len(packets) == entry["packets"], name
        for packet in packets:
            assert transport_endpoints(packet) is not None, (
                f"{name}: {packet.summary()}"
            )


def test_expected_flows_appear_in_files(generated: Path, manifest: dict) -> None:
    for name, entry in manifest["files"].items():
        seen = {
            endpoints
            for packet in rdpcap(str(generated / name))
            if (endpoints := transport_endpoints(packet)) is not None
        }
        for flow in entry["expected"]:
            client_ip, client_port = parse_endpoint(flow["client"])
            server_ip, server_port = parse_endpoint(flow["server"])
            assert (client_ip, client_port, server_ip, server_port) in seen, (
                f"{name}: no packet from {flow['client']} to {flow['server']}"
            )
            assert (server_ip, server_port, client_ip, client_port) in seen, (
                f"{name}: no packet from {flow['server']} to {flow['client']}"
            )


def test_addresses_are_reserved_ranges(generated: Path, manifest: dict) -> None:
    allowed = CLIENT_NETWORKS + SERVER_NETWORKS
    for name in manifest["files"]:
        for packet in rdpcap(str(generated / name)):
            endpoints = transport_endpoints(packet)
            assert endpoints is not None
            for address in (endpoints[0], endpoints[2]):
                ip = ipaddress.ip_address(address)
                assert any(ip in network for network in allowed), f"{name}: {ip}"
        for flow in manifest["files"][name]["expected"]:
            client = ipaddress.ip_address(parse_endpoint(flow["client"])[0])
            server = ipaddress.ip_address(parse_endpoint(flow["server"])[0])
            assert any(client in network for network in CLIENT_NETWORKS), name
            assert any(server in network for network in SERVER_NETWORKS), name


def test_captures_start_at_base_time(generated: Path, manifest: dict) -> None:
    base_seconds = BASE_TIME_NS // 1_000_000_000
    for name in manifest["files"]:
        first = rdpcap(str(generated / name))[0]
        assert int(first.time) == base_seconds, name


def test_captures_are_small(generated: Path) -> None:
    for path in generated.iterdir():
        if path.name == MANIFEST_NAME:
            continue
        limit = LARGE_SAMPLES.get(path.name, MAX_SAMPLE_BYTES)
        assert path.stat().st_size <= limit, path.name
