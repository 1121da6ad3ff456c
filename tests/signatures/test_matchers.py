"""Agent, method, wallet and port matching with the bundled signatures.

Every wallet here is built from the address alphabet to the right length; none
is a real address.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.signatures import Signatures, load_signatures

BUNDLED = Path(__file__).resolve().parents[2] / "signatures"
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def base58_run(length: int) -> str:
    return (BASE58 * (length // len(BASE58) + 1))[:length]


MONERO_STANDARD = "4A" + base58_run(93)
MONERO_SUBADDRESS = "8B" + base58_run(93)
MONERO_INTEGRATED = "49" + base58_run(104)
BITCOIN_P2PKH = "1" + base58_run(33)
BITCOIN_P2SH = "3" + base58_run(25)
BITCOIN_BECH32 = "bc1q" + (BECH32 * 2)[:38]
BITCOIN_TAPROOT = "bc1p" + (BECH32 * 2)[:58]
ETHEREUM = "0x" + "aB3dE5" * 6 + "0f1e"
RAVENCOIN = "R" + base58_run(33)


@pytest.fixture(scope="module")
def signatures() -> Signatures:
    return load_signatures(BUNDLED)


@pytest.mark.parametrize(
    ("agent", "family"),
    [
        ("XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/11.2.0", "xmrig"),
        (
            "XMRig/6.18.1-mo1 (Windows NT 10.0; Win64; x64) libuv/1.44.1 msvc/2019",
            "xmrig",
        ),
        ("XMRig/5.11.1 (macOS x86_64) libuv/1.35.0 clang/11.0.3", "xmrig"),
        ("xmrig-proxy/6.19.0 (Linux x86_64) libuv/1.44.2 gcc/9.4.0", "xmrig-proxy"),
        ("xmr-stak/2.10.8/1f12a14/master/lin/nvidia-amd-cpu/0", "xmr-stak"),
        ("xmr-stak-cpu/1.3.0-1.5.0", "xmr-stak-cpu"),
        ("cpuminer/2.5.1", "cpuminer"),
        ("cpuminer-multi/1.3.1", "cpuminer-multi"),
        ("cgminer/4.10.0", "cgminer"),
        ("cgminer 4.10.0", "cgminer"),
        ("bfgminer/5.5.0", "bfgminer"),
        ("ethminer-0.19.0", "ethminer"),
        ("ccminer/2.3.1", "ccminer"),
        ("sgminer/5.6.1", "sgminer"),
        ("GMiner/2.09", "gminer"),
        ("NiceHash/1.0.0", "nicehash"),
        ("kawpowminer/1.2.3", "kawpowminer"),
        ("lolMiner 1.76", "lolminer"),
        ("T-Rex/0.26.8", "t-rex"),
        ("NBMiner/42.3", "nbminer"),
        ("PhoenixMiner/6.2c", "phoenixminer"),
        ("SRBMiner-MULTI/2.4.5", "srbminer"),
        ("TeamRedMiner/0.10.10", "teamredminer"),
        ("nanominer/3.8.5", "nanominer"),
        ("Claymore/15.0", "claymore"),
    ],
)
def test_agent_family(signatures: Signatures, agent: str, family: str) -> None:
    match = signatures.match_agent(agent)
    assert match is not None
    assert match.family == family
    assert match.source
    assert match.pattern


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        "curl/8.5.0",
        "python-requests/2.31",
        "trexler/1.0",
        "ethminerx/1",
        "xmrig",
        "my-xmrig-clone/1.0 (Linux x86_64) libuv/1.0",
        "",
    ],
)
def test_agent_not_miner(signatures: Signatures, agent: str) -> None:
    assert signatures.match_agent(agent) is None


def test_agent_tokens_respect_word_boundaries(signatures: Signatures) -> None:
    match = signatures.match_agent("sgminer/5.1")
    assert match is not None
    assert match.family == "sgminer"
    assert signatures.match_agent("notccminerx") is None


@pytest.mark.parametrize(
    ("method", "dialects"),
    [
        ("login", {"monero"}),
        ("keepalived", {"monero"}),
        ("job", {"monero", "webminer"}),
        ("mining.set_target", {"stratum-v1-zcash", "kawpow"}),
        ("mining.set_version_mask", {"stratum-v1", "stratum-v1-zcash"}),
        ("eth_submitLogin", {"ethproxy"}),
        ("mining.hello", {"ethereumstratum-2"}),
        ("getwork", {"getwork"}),
        ("submitblock", {"getblocktemplate"}),
        ("hash_accepted", {"webminer"}),
        ("eth_sendTransaction", set()),
    ],
)
def test_method_dialects(
    signatures: Signatures, method: str, dialects: set[str]
) -> None:
    assert signatures.method_dialects(method) == dialects


def test_placeholder_wallets_have_real_lengths() -> None:
    assert len(MONERO_STANDARD) == 95
    assert len(MONERO_INTEGRATED) == 106
    assert len(BITCOIN_P2PKH) == 34
    assert len(ETHEREUM) == 42
    assert len(RAVENCOIN) == 34


@pytest.mark.parametrize(
    ("wallet", "coin", "kind"),
    [
        (MONERO_STANDARD, "monero", "monero-standard"),
        (MONERO_SUBADDRESS, "monero", "monero-subaddress"),
        (MONERO_INTEGRATED, "monero", "monero-integrated"),
        (BITCOIN_P2PKH, "bitcoin", "bitcoin-base58"),
        (BITCOIN_P2SH, "bitcoin", "bitcoin-base58"),
        (BITCOIN_BECH32, "bitcoin", "bitcoin-bech32"),
        (BITCOIN_BECH32.upper(), "bitcoin", "bitcoin-bech32"),
        (BITCOIN_TAPROOT, "bitcoin", "bitcoin-bech32"),
        (ETHEREUM, "ethereum", "ethereum"),
        (ETHEREUM.lower(), "ethereum", "ethereum"),
        (RAVENCOIN, "ravencoin", "ravencoin"),
    ],
)
def test_wallet_alone(
    signatures: Signatures, wallet: str, coin: str, kind: str
) -> None:
    match = signatures.find_wallet(wallet)
    assert match is not None
    assert match.wallet == wallet
    assert match.coin == coin
    assert match.kind == kind
    assert match.worker is None


@pytest.mark.parametrize(
    ("login", "wallet", "worker"),
    [
        (MONERO_STANDARD + ".rig1", MONERO_STANDARD, "rig1"),
        (MONERO_STANDARD + "+50000", MONERO_STANDARD, None),
        (MONERO_STANDARD + ".rig1+50000", MONERO_STANDARD, "rig1"),
        (ETHEREUM + "/rig2/someone@mail.example", ETHEREUM, "rig2"),
        (ETHEREUM + ".rig3", ETHEREUM, "rig3"),
        (RAVENCOIN + ":box", RAVENCOIN, "box"),
        ("prefix." + BITCOIN_P2PKH + ".w", BITCOIN_P2PKH, "w"),
        (MONERO_INTEGRATED + ".", MONERO_INTEGRATED, None),
    ],
)
def test_wallet_in_login(
    signatures: Signatures, login: str, wallet: str, worker: str | None
) -> None:
    match = signatures.find_wallet(login)
    assert match is not None
    assert match.wallet == wallet
    assert match.worker == worker


@pytest.mark.parametrize(
    "login",
    [
        "someone@mail.example",
        "user.worker",
        "x",
        "",
        MONERO_STANDARD[:-1],
        MONERO_STANDARD + "1",
        "4A" + base58_run(92) + "0",
        "4I" + base58_run(93),
        "bc1Q" + (BECH32 * 2)[:38],
        "bc1q" + (BECH32 * 2)[:37] + "b",
        "0x" + "g" * 40,
        "0x" + "a" * 39,
        "R" + base58_run(32),
    ],
)
def test_not_a_wallet(signatures: Signatures, login: str) -> None:
    assert signatures.find_wallet(login) is None


def test_pool_port_lookup(signatures: Signatures) -> None:
    assert 3333 in signatures.pool_ports
    assert 443 not in signatures.pool_ports
    assert signatures.ports[9050].kind == "proxy"
