"""Behavioural score of encrypted flows."""

from __future__ import annotations

from detector.engine.behaviour import FlowFeatures, score_flow


def features(**changes):
    # An hour of a CPU miner over TLS: a job a minute down, a share every
    # 20 s up, each its own pushed record.
    base = dict(
        duration=3600.0,
        packets_to_server=180,
        packets_to_client=60,
        bytes_to_server=180 * 250,
        bytes_to_client=60 * 450,
        pushes_to_server=180,
        pushes_to_client=60,
    )
    base.update(changes)
    return FlowFeatures(**base)


def test_miner_shape_suspicious():
    result = score_flow(features())
    assert result is not None
    assert result.suspicious
    assert result.features["push_share"] == 1.0


def test_download_not_suspicious():
    download = features(
        packets_to_client=60000,
        bytes_to_client=60000 * 1400,
        pushes_to_client=600,
    )
    result = score_flow(download)
    assert result is not None
    assert not result.suspicious


def test_short_flow_not_scored():
    assert score_flow(features(duration=30.0)) is None


def test_one_sided_flow_not_scored():
    assert score_flow(features(packets_to_client=3)) is None
