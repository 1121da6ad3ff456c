"""Scan each bundled sample capture and check the flows its manifest lists.

The manifest is written by the traffic generator next to the captures; it
states, per file, the mining flows and the fields the detector must read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from detector.scan import scan_file

SAMPLES = Path(__file__).resolve().parents[1] / "pcaps"
MANIFEST = yaml.safe_load((SAMPLES / "manifest.yaml").read_text())["files"]
CHECKED_FIELDS = (
    "agent",
    "miner_family",
    "wallet_coin",
    "worker",
    "algorithm",
    "jobs",
    "shares_submitted",
    "shares_accepted",
    "shares_rejected",
    "tls_server_name",
    "proxy_target",
    "pool_host",
)


def endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_sample_flows(name, signatures):
    entry = MANIFEST[name]
    result = scan_file(str(SAMPLES / name), signatures)
    assert result.error is None, result.error
    assert result.stats.packets == entry["packets"]
    found = {
        (
            endpoint(d.flow.client_ip, d.flow.client_port),
            endpoint(d.flow.server_ip, d.flow.server_port),
        ): d
        for d in result.detections
    }
    expected = {(flow["client"], flow["server"]): flow for flow in entry["expected"]}
    assert set(found) == set(expected)
    for pair, flow in expected.items():
        mining = found[pair].mining
        assert mining.dialect == flow["dialect"], pair
        expected_confidence = flow.get("confidence", "high")
        assert found[pair].confidence.label == expected_confidence, pair
        for name_ in CHECKED_FIELDS:
            if name_ in flow:
                assert getattr(mining, name_) == flow[name_], (pair, name_)


def test_manifest_covers_every_sample():
    on_disk = {path.name for path in SAMPLES.iterdir() if path.name != "manifest.yaml"}
    assert on_disk == set(MANIFEST)


def test_samples_include_negatives_and_every_dialect():
    dialects = {
        flow["dialect"] for entry in MANIFEST.values() for flow in entry["expected"]
    }
    assert dialects == {
        "dns",
        "tls",
        "webminer",
        "stratum-v2",
        "monero",
        "stratum-v1",
        "stratum-v1-zcash",
        "ethproxy",
        "ethereumstratum-1",
        "ethereumstratum-2",
        "kawpow",
        "getwork",
        "getblocktemplate",
    }
    negatives = [name for name, entry in MANIFEST.items() if not entry["expected"]]
    assert len(negatives) >= 6
