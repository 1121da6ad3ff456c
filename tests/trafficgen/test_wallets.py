"""Placeholder wallets match each coin's address shape."""

from __future__ import annotations

import random
import re

import pytest

from detector.trafficgen import wallets

# Address shapes from the coins' formats: Monero standard addresses, Bitcoin
# legacy and bech32, Ethereum, Ravencoin and Zcash transparent P2PKH.
SHAPES = {
    wallets.monero: r"4[0-9AB][1-9A-HJ-NP-Za-km-z]{93}",
    wallets.bitcoin_legacy: r"1[1-9A-HJ-NP-Za-km-z]{25,33}",
    wallets.bitcoin_bech32: r"bc1q[02-9ac-hj-np-z]{38}",
    wallets.ethereum: r"0x[0-9a-f]{40}",
    wallets.ravencoin: r"R[1-9A-HJ-NP-Za-km-z]{33}",
    wallets.zcash_transparent: r"t1[1-9A-HJ-NP-Za-km-z]{33}",
}


@pytest.mark.parametrize("make", list(SHAPES), ids=lambda make: make.__name__)
def test_wallet_shape(make) -> None:
    pattern = re.compile(SHAPES[make])
    rng = random.Random(7)
    for _ in range(200):
        address = make(rng)
        assert pattern.fullmatch(address), address


@pytest.mark.parametrize("make", list(SHAPES), ids=lambda make: make.__name__)
def test_wallet_is_seeded(make) -> None:
    assert make(random.Random("a")) == make(random.Random("a"))
    assert make(random.Random("a")) != make(random.Random("b"))
