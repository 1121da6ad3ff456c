"""Pool domain and network matching, and loading of pools.yaml."""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from detector.errors import SignatureError
from detector.signatures import (
    POOL_KINDS,
    NetworkEntry,
    PoolEntry,
    PoolIndex,
    load_signatures,
    parse_pools,
)
from detector.signatures.pools import (
    MAX_HOST_NAME_LENGTH,
    host_name_problem,
    normalize_host_name,
)

BUNDLED = Path(__file__).resolve().parents[2] / "signatures"


def entry(domain: str, kind: str = "pool", coin: str = "monero") -> PoolEntry:
    return PoolEntry(domain=domain, kind=kind, coin=coin, source=f"test {domain}")


def network(cidr: str, coin: str) -> NetworkEntry:
    return NetworkEntry(
        network=ipaddress.ip_network(cidr), kind="pool", coin=coin, source="test"
    )


@pytest.fixture(scope="module")
def index() -> PoolIndex:
    return PoolIndex(
        [
            entry("supportxmr.com"),
            entry("nanopool.org", coin="multi"),
            entry("xmr-eu1.nanopool.org"),
            entry("xn--80ak6aa92e.com", kind="webminer"),
            entry("donate.v2.xmrig.com", kind="donate"),
        ]
    )


@pytest.mark.parametrize(
    ("name", "matched"),
    [
        ("supportxmr.com", "supportxmr.com"),
        ("pool.supportxmr.com", "supportxmr.com"),
        ("a.b.pool.supportxmr.com", "supportxmr.com"),
        ("POOL.SupportXMR.COM", "supportxmr.com"),
        ("pool.supportxmr.com.", "supportxmr.com"),
        ("notsupportxmr.com", None),
        ("supportxmr.com.example", None),
        ("supportxmr.co", None),
        ("xmr-eu1.nanopool.org", "xmr-eu1.nanopool.org"),
        ("a.xmr-eu1.nanopool.org", "xmr-eu1.nanopool.org"),
        ("eth-eu1.nanopool.org", "nanopool.org"),
        ("xmr-eu1-nanopool.org", None),
        ("1.debian.pool.ntp.org", None),
        ("pool.ntp.org", None),
        ("v2.xmrig.com", None),
        ("xmrig.com", None),
        ("pool.xn--80ak6aa92e.com", "xn--80ak6aa92e.com"),
        ("XN--80AK6AA92E.COM", "xn--80ak6aa92e.com"),
        ("пример.com", None),
        ("pool.supportxmr.com..", None),
        (".supportxmr.com", None),
        ("pool..supportxmr.com", None),
        ("", None),
        (".", None),
        ("com", None),
    ],
)
def test_match_domain_label_boundaries(
    index: PoolIndex, name: str, matched: str | None
) -> None:
    match = index.match_domain(name)
    if matched is None:
        assert match is None
    else:
        assert match is not None
        assert match.matched_entry == matched


def test_match_domain_fields(index: PoolIndex) -> None:
    match = index.match_domain("Gulf.XMR-EU1.nanopool.org.")
    assert match is not None
    assert match.domain == "gulf.xmr-eu1.nanopool.org"
    assert match.matched_entry == "xmr-eu1.nanopool.org"
    assert match.kind == "pool"
    assert match.coin == "monero"
    assert match.source == "test xmr-eu1.nanopool.org"


def test_match_domain_longest_entry_wins(index: PoolIndex) -> None:
    child = index.match_domain("xmr-eu1.nanopool.org")
    parent = index.match_domain("xmr-us1.nanopool.org")
    assert child is not None
    assert parent is not None
    assert child.coin == "monero"
    assert parent.coin == "multi"


def test_match_domain_rejects_overlong_name(index: PoolIndex) -> None:
    name = "a." * 130 + "supportxmr.com"
    assert len(name) > MAX_HOST_NAME_LENGTH
    assert index.match_domain(name) is None
    assert index.match_domain(name[-MAX_HOST_NAME_LENGTH:].lstrip(".")) is not None


def test_match_domain_non_ascii_does_not_raise(index: PoolIndex) -> None:
    for name in ("İstanbul.supportxmr.com", "\x00.supportxmr.com", "a\u2028b.com"):
        index.match_domain(name)
    match = index.match_domain("İ.supportxmr.com")
    assert match is not None
    assert match.matched_entry == "supportxmr.com"


def test_entry_lookups(index: PoolIndex) -> None:
    assert len(index) == 5
    assert "supportxmr.com" in index
    assert "pool.supportxmr.com" not in index
    found = index.entry("SupportXMR.com.")
    assert found is not None
    assert found.domain == "supportxmr.com"
    assert index.entry("pool.supportxmr.com") is None
    covering = index.covering_entry("pool.supportxmr.com")
    assert covering is not None
    assert covering.domain == "supportxmr.com"


@pytest.fixture(scope="module")
def networks() -> PoolIndex:
    return PoolIndex(
        networks=[
            network("198.51.0.0/16", "wide"),
            network("198.51.100.0/24", "narrow"),
            network("198.51.100.128/25", "narrowest"),
            network("192.0.2.7/32", "host"),
            network("2001:db8::/32", "v6-wide"),
            network("2001:db8:1::/48", "v6-narrow"),
        ]
    )


@pytest.mark.parametrize(
    ("address", "coin", "cidr"),
    [
        ("198.51.100.200", "narrowest", "198.51.100.128/25"),
        ("198.51.100.5", "narrow", "198.51.100.0/24"),
        ("198.51.7.7", "wide", "198.51.0.0/16"),
        ("192.0.2.7", "host", "192.0.2.7/32"),
        ("::ffff:198.51.100.200", "narrowest", "198.51.100.128/25"),
        ("2001:db8:1::5", "v6-narrow", "2001:db8:1::/48"),
        ("2001:db8:2::1", "v6-wide", "2001:db8::/32"),
        ("2001:DB8:1:0:0:0:0:9", "v6-narrow", "2001:db8:1::/48"),
    ],
)
def test_match_address_longest_prefix(
    networks: PoolIndex, address: str, coin: str, cidr: str
) -> None:
    match = networks.match_address(address)
    assert match is not None
    assert match.coin == coin
    assert match.network == cidr


@pytest.mark.parametrize(
    "address",
    ["198.52.0.1", "192.0.2.8", "2001:db9::1", "::1", "not an address", "", "1.2.3"],
)
def test_match_address_misses(networks: PoolIndex, address: str) -> None:
    assert networks.match_address(address) is None


def test_match_address_default_route() -> None:
    index = PoolIndex(networks=[network("0.0.0.0/0", "any")])
    match = index.match_address("203.0.113.9")
    assert match is not None
    assert match.network == "0.0.0.0/0"
    assert match.address == "203.0.113.9"
    assert index.match_address("2001:db8::1") is None


def test_match_address_without_networks(index: PoolIndex) -> None:
    assert index.match_address("198.51.100.1") is None


@pytest.mark.parametrize(
    ("entries", "networks", "words"),
    [
        ([entry("a.example"), entry("a.example", coin="bitcoin")], [], "twice"),
        ([entry("A.example")], [], "not normalized"),
        ([], [network("192.0.2.0/24", "x"), network("192.0.2.0/24", "y")], "twice"),
    ],
)
def test_index_rejects_inconsistent_entries(
    entries: list[PoolEntry], networks: list[NetworkEntry], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        PoolIndex(entries, networks)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "empty host name"),
        ("192.0.2.1", "IP address"),
        ("2001:db8::1", "IP address"),
        ("com", "single label"),
        ("a..com", "empty label"),
        ("-a.com", "hyphen"),
        ("a-.com", "hyphen"),
        ("a_b.com", "characters other than"),
        ("a b.com", "characters other than"),
        ("https://coinhive.com", "characters other than"),
        ("пример.com", "not ASCII"),
        ("a" * 64 + ".com", "longer than 63"),
        (".".join(["a" * 60] * 5), "longer than 253"),
        ("999.999.999.999", "all-digit"),
        ("pool.123", "all-digit"),
    ],
)
def test_host_name_problems(name: str, words: str) -> None:
    problem = host_name_problem(name)
    assert problem is not None
    assert words in problem


@pytest.mark.parametrize(
    "name",
    [
        "a.co",
        "xn--80ak6aa92e.com",
        "1q2w3.fun",
        "eth-us-east1.nanopool.org",
        "a" * 63 + ".com",
        ".".join(["a" * 61] * 4),
    ],
)
def test_host_names_accepted(name: str) -> None:
    assert host_name_problem(name) is None


def test_normalize_host_name() -> None:
    assert normalize_host_name("Pool.SupportXMR.com.") == "pool.supportxmr.com"
    assert normalize_host_name("a.com..") == "a.com."


# Host names a miner or its DNS traffic would carry, the entry each must fall
# under, and that entry's kind. Every pool and dev-fee host this list names
# must stay covered by the bundled file.
BUNDLED_NAMES = [
    ("pool.supportxmr.com", "supportxmr.com", "pool"),
    ("xmr-eu1.nanopool.org", "xmr-eu1.nanopool.org", "pool"),
    ("xmr-us-east1.nanopool.org", "xmr-us-east1.nanopool.org", "pool"),
    ("xmr-asia1.nanopool.org", "xmr-asia1.nanopool.org", "pool"),
    ("eth-eu1.nanopool.org", "eth-eu1.nanopool.org", "pool"),
    ("eth-us-west1.nanopool.org", "eth-us-west1.nanopool.org", "pool"),
    ("gulf.moneroocean.stream", "moneroocean.stream", "pool"),
    ("xmr.pool.minergate.com", "xmr.pool.minergate.com", "pool"),
    ("rx.unmineable.com", "unmineable.com", "pool"),
    ("pool.hashvault.pro", "hashvault.pro", "pool"),
    ("pool.monero.hashvault.pro", "pool.monero.hashvault.pro", "pool"),
    ("xmr.crypto-pool.fr", "crypto-pool.fr", "pool"),
    ("us1.ethermine.org", "ethermine.org", "pool"),
    ("eu1.ethermine.org", "ethermine.org", "pool"),
    ("eth-eu.dwarfpool.com", "dwarfpool.com", "pool"),
    ("eu.stratum.slushpool.com", "slushpool.com", "pool"),
    ("eu.stratum.braiins.com", "stratum.braiins.com", "pool"),
    ("stratum.antpool.com", "antpool.com", "pool"),
    ("ss.antpool.com", "antpool.com", "pool"),
    ("eth.2miners.com", "2miners.com", "pool"),
    ("eth.f2pool.com", "f2pool.com", "pool"),
    ("btc.viabtc.com", "viabtc.com", "pool"),
    ("daggerhashimoto.eu.nicehash.com", "nicehash.com", "pool"),
    ("de.monero.herominers.com", "herominers.com", "pool"),
    ("eu1-zcash.flypool.org", "flypool.org", "pool"),
    ("us1.bitminter.com", "bitminter.com", "pool"),
    ("donate.v2.xmrig.com", "donate.v2.xmrig.com", "donate"),
    ("donate.ssl.xmrig.com", "donate.ssl.xmrig.com", "donate"),
    ("donate.xmr-stak.net", "donate.xmr-stak.net", "donate"),
    ("coinhive.com", "coinhive.com", "webminer"),
    ("coin-hive.com", "coin-hive.com", "webminer"),
    ("ws001.coinhive.com", "coinhive.com", "webminer"),
    ("authedmine.com", "authedmine.com", "webminer"),
    ("cnhv.co", "cnhv.co", "webminer"),
    ("crypto-loot.com", "crypto-loot.com", "webminer"),
    ("load.jsecoin.com", "load.jsecoin.com", "webminer"),
    ("minero.pw", "minero.pw", "webminer"),
    ("ppoi.org", "ppoi.org", "webminer"),
    ("coinerra.com", "coinerra.com", "webminer"),
    ("coin-have.com", "coin-have.com", "webminer"),
    ("minemytraffic.com", "minemytraffic.com", "webminer"),
]


@pytest.fixture(scope="module")
def bundled() -> PoolIndex:
    return load_signatures(BUNDLED).pools


@pytest.mark.parametrize(("name", "matched", "kind"), BUNDLED_NAMES)
def test_bundled_pools_cover_known_hosts(
    bundled: PoolIndex, name: str, matched: str, kind: str
) -> None:
    match = bundled.match_domain(name)
    assert match is not None
    assert match.matched_entry == matched
    assert match.kind == kind
    assert match.source.strip()


@pytest.mark.parametrize(
    "name",
    [
        "1.debian.pool.ntp.org",
        "2.debian.pool.ntp.org",
        "pool.ntp.org",
        "www.google.com",
        "xmrig.com",
        "www.xmrig.com",
        "jsecoin.com",
        "braiins.com",
        "github.com",
    ],
)
def test_bundled_pools_skip_unrelated_hosts(bundled: PoolIndex, name: str) -> None:
    assert bundled.match_domain(name) is None


def test_bundled_dev_fee_ports(bundled: PoolIndex) -> None:
    tls = bundled.match_domain("donate.ssl.xmrig.com")
    plain = bundled.match_domain("donate.v2.xmrig.com")
    stak = bundled.match_domain("donate.xmr-stak.net")
    assert tls is not None
    assert plain is not None
    assert stak is not None
    assert tls.tls_ports == (443,)
    assert plain.ports == (3333,)
    assert stak.ports == (3333,)
    assert stak.tls_ports == (6666,)


def test_bundled_pools_coins(bundled: PoolIndex) -> None:
    coins = {
        "pool.supportxmr.com": "monero",
        "xmr-eu1.nanopool.org": "monero",
        "eth-eu1.nanopool.org": "ethereum",
        "us1.ethermine.org": "ethereum",
        "us1.bitminter.com": "bitcoin",
        "coinhive.com": "monero",
    }
    for name, coin in coins.items():
        match = bundled.match_domain(name)
        assert match is not None, name
        assert match.coin == coin, name


def test_bundled_pools_sorted(bundled: PoolIndex) -> None:
    keys = [(POOL_KINDS.index(item.kind), item.domain) for item in bundled.entries]
    assert keys == sorted(keys)


def test_bundled_networks_empty(bundled: PoolIndex) -> None:
    assert bundled.networks == ()
    assert bundled.match_address("198.51.100.1") is None


def test_signatures_expose_pools() -> None:
    signatures = load_signatures(BUNDLED)
    assert signatures.files[-1] == str(BUNDLED / "pools.yaml")
    assert signatures.pools.match_domain("pool.supportxmr.com") is not None


def copy_bundled(tmp_path: Path) -> Path:
    folder = tmp_path / "signatures"
    shutil.copytree(BUNDLED, folder)
    return folder


def edit_pools(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = folder / "pools.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(yaml.safe_dump(document), encoding="utf-8")


def set_key(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target: Any = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def delete_key(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target: Any = document
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return change


def copy_first_domain_upper(document: dict[str, Any]) -> None:
    duplicate = dict(document["pools"][1])
    duplicate["domain"] = document["pools"][0]["domain"].upper() + "."
    document["pools"][1] = duplicate


NETWORK = {
    "network": "192.0.2.0/24",
    "kind": "pool",
    "coin": "monero",
    "source": "test",
}


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (
            set_key(["pools", 0, "domain"], "not a domain!"),
            "pools[0].domain",
            "invalid",
        ),
        (set_key(["pools", 2, "domain"], "192.0.2.1"), "pools[2].domain", "IP address"),
        (set_key(["pools", 0, "domain"], "com"), "pools[0].domain", "single label"),
        (set_key(["pools", 0, "domain"], 7), "pools[0].domain", "expected a string"),
        (copy_first_domain_upper, "pools[1].domain", "duplicate domain"),
        (set_key(["pools", 3, "kind"], "miner"), "pools[3].kind", "unknown kind"),
        (set_key(["pools", 0, "coin"], "Monero"), "pools[0].coin", "invalid coin"),
        (set_key(["pools", 0, "ports"], []), "pools[0].ports", "empty list"),
        (set_key(["pools", 0, "ports"], [0]), "pools[0].ports[0]", "out of range"),
        (
            set_key(["pools", 0, "ports"], [3333, 3333]),
            "pools[0].ports[1]",
            "duplicate port",
        ),
        (
            set_key(["pools", 0, "tls_ports"], "443"),
            "pools[0].tls_ports",
            "expected a list of ports",
        ),
        (
            set_key(["pools", 0, "tls_ports"], [True]),
            "pools[0].tls_ports[0]",
            "expected a port number",
        ),
        (set_key(["pools", 0, "colour"], "red"), "pools[0].colour", "unknown key"),
        (delete_key(["pools", 4, "source"]), "pools[4].source", "missing required"),
        (set_key(["pools", 0, "note"], ""), "pools[0].note", "empty string"),
        (set_key(["pools"], []), "pools", "empty list"),
        (delete_key(["pools"]), "pools", "missing required"),
        (set_key(["servers"], []), "servers", "unknown key"),
        (set_key(["networks"], "none"), "networks", "expected a list"),
        (set_key(["networks"], [NETWORK, NETWORK]), "networks[1].network", "duplicate"),
        (
            set_key(["networks"], [dict(NETWORK, network="192.0.2.1/24")]),
            "networks[0].network",
            "host bits set",
        ),
        (
            set_key(["networks"], [dict(NETWORK, network="192.0.2.0/33")]),
            "networks[0].network",
            "invalid network",
        ),
        (
            set_key(["networks"], [{"network": "192.0.2.0/24", "kind": "pool"}]),
            "networks[0].coin",
            "missing required",
        ),
        (
            set_key(["networks"], [dict(NETWORK, kind="node")]),
            "networks[0].kind",
            "unknown kind",
        ),
        (set_key(["networks"], ["192.0.2.0/24"]), "networks[0]", "expected a mapping"),
    ],
)
def test_invalid_pools_names_file_and_key(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], key: str, words: str
) -> None:
    folder = copy_bundled(tmp_path)
    edit_pools(folder, change)
    with pytest.raises(SignatureError) as caught:
        load_signatures(folder)
    error = caught.value
    assert error.source == str(folder / "pools.yaml")
    assert error.key == key
    assert words in error.reason


def test_missing_pools_file_raises(tmp_path: Path) -> None:
    folder = copy_bundled(tmp_path)
    (folder / "pools.yaml").unlink()
    with pytest.raises(SignatureError) as caught:
        load_signatures(folder)
    assert caught.value.source == str(folder / "pools.yaml")
    assert "file not found" in caught.value.reason


def test_networks_load_and_match(tmp_path: Path) -> None:
    folder = copy_bundled(tmp_path)
    networks = [
        dict(NETWORK, network="198.51.100.0/24", coin="bitcoin", note="test"),
        dict(NETWORK, network="198.51.100.64/26", coin="monero"),
        dict(NETWORK, network="2001:db8::/32", coin="ethereum"),
    ]
    edit_pools(folder, set_key(["networks"], networks))
    pools = load_signatures(folder).pools
    narrow = pools.match_address("198.51.100.70")
    wide = pools.match_address("198.51.100.7")
    ipv6 = pools.match_address("2001:db8::7")
    assert narrow is not None
    assert wide is not None
    assert ipv6 is not None
    assert narrow.coin == "monero"
    assert wide.coin == "bitcoin"
    assert ipv6.coin == "ethereum"
    assert pools.networks[0].note == "test"


def test_networks_key_may_be_absent(tmp_path: Path) -> None:
    folder = copy_bundled(tmp_path)
    edit_pools(folder, delete_key(["networks"]))
    assert load_signatures(folder).pools.networks == ()


def test_parse_pools_names_source() -> None:
    text = "pools:\n  - domain: a.example\n    kind: pool\n    coin: x\n"
    with pytest.raises(SignatureError) as caught:
        parse_pools(text, "custom.yaml")
    assert caught.value.source == "custom.yaml"
    assert caught.value.key == "pools[0].source"


def test_parse_pools_invalid_yaml() -> None:
    with pytest.raises(SignatureError) as caught:
        parse_pools("pools: [\n", "broken.yaml")
    assert caught.value.key == "(document)"
    assert "invalid YAML" in caught.value.reason


def test_parse_pools_normalizes_domains() -> None:
    text = (
        "pools:\n  - domain: Pool.Example.\n    kind: pool\n    coin: monero\n"
        "    source: test\n"
    )
    index = parse_pools(text)
    assert "pool.example" in index
    assert index.match_domain("a.pool.example") is not None


def test_parse_pools_deep_nesting() -> None:
    text = "pools: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(SignatureError) as caught:
        parse_pools(text, "deep.yaml")
    assert caught.value.key == "(document)"
    assert "nested too deeply" in caught.value.reason
