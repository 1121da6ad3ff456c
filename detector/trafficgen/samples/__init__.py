"""The bundled sample captures: what each contains and what the detector must
report for it.

:func:`build_samples` returns every sample as bytes with its manifest entry;
writing them to disk is left to the caller.
"""

from __future__ import annotations

from detector.trafficgen.samples import (
    bitcoin,
    ethereum,
    http_mining,
    mixed,
    monero,
    negative,
    proxies,
    stratum_v2,
    tls,
    transport,
    traps,
    webminer,
)
from detector.trafficgen.samples.common import ExpectedFlow, SampleFile

__all__ = ["ExpectedFlow", "SampleFile", "build_samples"]


def build_samples() -> list[SampleFile]:
    """Build every sample capture, in manifest order.

    Raises ValueError if two samples share a file name.
    """
    samples = [
        *monero.build(),
        *bitcoin.build(),
        *ethereum.build(),
        *http_mining.build(),
        *transport.build(),
        *mixed.build(),
        *negative.build(),
        *tls.build(),
        *proxies.build(),
        *webminer.build(),
        *stratum_v2.build(),
        *traps.build(),
    ]
    names = [sample.name for sample in samples]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"duplicate sample names: {', '.join(duplicates)}")
    return samples
