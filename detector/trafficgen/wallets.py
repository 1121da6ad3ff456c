"""Placeholder wallet addresses, shaped like real ones but drawn at random.

Each address has its coin's prefix, length and alphabet, so shape-based
matchers accept it, but its characters come from a seeded generator and no
checksum is computed, so it is not a usable address.
"""

from __future__ import annotations

import random

# Bitcoin's base58 alphabet (no 0, O, I or l), which Monero also uses.
BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
# BIP 173 bech32 data characters.
BECH32_ALPHABET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
HEX_DIGITS = "0123456789abcdef"

# A standard Monero address is 95 characters: "4", then 0-9, A or B.
MONERO_ADDRESS_LENGTH = 95
MONERO_SECOND_CHARACTERS = "0123456789AB"
# A P2WPKH bech32 address: "bc1q" and 38 data characters.
BECH32_DATA_LENGTH = 38
# A legacy P2PKH address is 25 to 34 characters, most often 34.
BITCOIN_LEGACY_LENGTH = 34
# Ravencoin and Zcash transparent P2PKH addresses are 34 and 35 characters.
RAVENCOIN_ADDRESS_LENGTH = 34
ZCASH_TRANSPARENT_LENGTH = 35
ETHEREUM_ADDRESS_DIGITS = 40


def monero(rng: random.Random) -> str:
    """Return a standard Monero address shape: ``4[0-9AB]`` and 93 base58."""
    return "4" + rng.choice(MONERO_SECOND_CHARACTERS) + _draw(rng, BASE58_ALPHABET, 93)


def bitcoin_bech32(rng: random.Random) -> str:
    """Return a native segwit (P2WPKH) address shape, ``bc1q`` and 38 chars."""
    return "bc1q" + _draw(rng, BECH32_ALPHABET, BECH32_DATA_LENGTH)


def bitcoin_legacy(rng: random.Random) -> str:
    """Return a legacy P2PKH address shape: ``1`` and 33 base58 characters."""
    return "1" + _draw(rng, BASE58_ALPHABET, BITCOIN_LEGACY_LENGTH - 1)


def ethereum(rng: random.Random) -> str:
    """Return an Ethereum address shape: ``0x`` and 40 lowercase hex digits."""
    return "0x" + _draw(rng, HEX_DIGITS, ETHEREUM_ADDRESS_DIGITS)


def ravencoin(rng: random.Random) -> str:
    """Return a Ravencoin P2PKH address shape: ``R`` and 33 base58 characters."""
    return "R" + _draw(rng, BASE58_ALPHABET, RAVENCOIN_ADDRESS_LENGTH - 1)


def zcash_transparent(rng: random.Random) -> str:
    """Return a Zcash transparent P2PKH address shape: ``t1`` and 33 base58."""
    return "t1" + _draw(rng, BASE58_ALPHABET, ZCASH_TRANSPARENT_LENGTH - 2)


def _draw(rng: random.Random, alphabet: str, count: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(count))
