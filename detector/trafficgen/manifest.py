"""The manifest that lists every sample capture and what it must yield."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from detector.trafficgen.samples.common import SampleFile

MANIFEST_NAME = "manifest.yaml"

HEADER = """\
# Sample captures written by `python -m detector.trafficgen pcaps`. Do not edit.
#
# For each file: a one-sentence description, the number of packets in it, and
# the mining flows the detector must report (expected: [] means none).
# client and server are "ip:port", with IPv6 addresses in brackets.
# The other fields of a flow are values the detector must read from it. A field
# that is not listed is not checked.
# jobs counts every job the pool sent: the job inside a Monero login result,
# each job notification, each ethproxy work package (reply or push) and each
# getwork reply with work.
# shares_submitted counts submit, mining.submit, eth_submitWork, getwork with
# data and submitblock requests, and coin-hive submit messages.
# shares_accepted and shares_rejected count the replies that accept or reject
# them.
# confidence is high, medium or low, and high when not listed.
# tls_server_name is the SNI of the ClientHello, proxy_target the "host:port" a
# SOCKS or HTTP CONNECT request names, and pool_host the listed pool name
# that the flow's messages, proxy target, SNI or a DNS answer gave.
"""


def manifest_document(samples: Sequence[SampleFile]) -> dict[str, Any]:
    """Return the manifest as plain data, files in the order given."""
    files: dict[str, Any] = {}
    for sample in samples:
        files[sample.name] = {
            "description": sample.description,
            "packets": sample.packets,
            "expected": [flow.to_manifest() for flow in sample.expected],
        }
    return {"files": files}


def render_manifest(samples: Sequence[SampleFile]) -> str:
    """Render the manifest as YAML text with its explanatory header."""
    body = yaml.safe_dump(
        manifest_document(samples), sort_keys=False, width=88, allow_unicode=True
    )
    return HEADER + body
