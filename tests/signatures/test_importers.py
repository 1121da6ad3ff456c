"""Importing public domain lists and merging them into pools.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.errors import SignatureError
from detector.signatures import POOL_KINDS, PoolIndex, parse_pools
from detector.signatures.importers import (
    IMPORT_FORMATS,
    REASON_LISTED,
    REASON_UNDER_IMPORTED,
    REASON_UNDER_LISTED,
    ImportResult,
    import_list,
    merge_into_pools,
    merge_pools,
)
from detector.signatures.pools import host_name_problem

BUNDLED_POOLS = Path(__file__).resolve().parents[2] / "signatures" / "pools.yaml"


def reasons(result: ImportResult) -> dict[int, str]:
    """Map each skipped line to its reason; each sample skips a line once."""
    lines = [line for line, _ in result.skipped]
    assert len(lines) == len(set(lines))
    return dict(result.skipped)


DOMAINS_SAMPLE = """\
# Mining hosts
#
cnhv.co\t99
Coin-Hive.com\t99
coinhive.com.   99  # trailing dot
  # an indented comment
*.minero.pw
coinhive.com
bad_name.com
192.0.2.1
https://coinhive.com/lib
com

-x.example
a..example
crypto-loot.com extra columns here
"""


def test_domains_sample() -> None:
    result = import_list(DOMAINS_SAMPLE, "domains", "sample")
    assert result.entries == (
        "cnhv.co",
        "coin-hive.com",
        "coinhive.com",
        "minero.pw",
        "crypto-loot.com",
    )
    skipped = reasons(result)
    assert set(skipped) == {8, 9, 10, 11, 12, 14, 15}
    assert "repeats line 5" in skipped[8]
    assert "characters other than" in skipped[9]
    assert "IP address" in skipped[10]
    assert "characters other than" in skipped[11]
    assert "single label" in skipped[12]
    assert "hyphen" in skipped[14]
    assert "empty label" in skipped[15]
    assert result.source == "sample"
    assert result.fmt == "domains"


def test_domains_line_endings_and_trailing_bytes() -> None:
    plain = import_list(DOMAINS_SAMPLE, "domains", "sample")
    crlf = import_list(DOMAINS_SAMPLE.replace("\n", "\r\n"), "domains", "sample")
    bom = import_list("\ufeff" + DOMAINS_SAMPLE, "domains", "sample")
    unterminated = import_list(DOMAINS_SAMPLE.rstrip("\n"), "domains", "sample")
    trailing = import_list(DOMAINS_SAMPLE + "\x00\xff garbage", "domains", "sample")
    assert crlf == plain
    assert bom == plain
    assert unterminated == plain
    assert trailing.entries == plain.entries
    assert trailing.skipped[:-1] == plain.skipped
    assert trailing.skipped[-1][0] == DOMAINS_SAMPLE.count("\n") + 1


HOSTS_SAMPLE = """\
# Title: a hosts blocklist
127.0.0.1 localhost
127.0.0.1 localhost.localdomain
::1 localhost ip6-localhost ip6-loopback
0.0.0.0 0.0.0.0
0.0.0.0 coinhive.com # inline comment
0.0.0.0   Authedmine.com\tcnhv.co
127.0.0.1 crypto-loot.com
:: ppoi.org
192.168.1.10 nas.example.com
0.0.0.0
coinhive.com
0.0.0.0 198.51.100.7
0.0.0.0 my.localhost
0.0.0.0 coinhive.com
"""


def test_hosts_sample() -> None:
    result = import_list(HOSTS_SAMPLE, "hosts", "sample")
    assert result.entries == (
        "coinhive.com",
        "authedmine.com",
        "cnhv.co",
        "crypto-loot.com",
        "ppoi.org",
    )
    skipped = result.skipped
    by_line: dict[int, list[str]] = {}
    for line, reason in skipped:
        by_line.setdefault(line, []).append(reason)
    assert set(by_line) == {2, 3, 4, 5, 10, 11, 12, 13, 14, 15}
    assert all("localhost entry" in reason for reason in by_line[2])
    assert "localhost entry" in by_line[3][0]
    assert len(by_line[4]) == 3
    assert all("localhost entry" in reason for reason in by_line[4])
    assert "IP address" in by_line[5][0]
    assert "maps a real host" in by_line[10][0]
    assert "no host name" in by_line[11][0]
    assert "not an address" in by_line[12][0]
    assert "IP address" in by_line[13][0]
    assert "localhost entry" in by_line[14][0]
    assert "repeats line 6" in by_line[15][0]


ADBLOCK_SAMPLE = """\
[Adblock Plus 2.0]
! Title: NoCoin-style list
||coinhive.com^
||crypto-loot.com^$third-party
||*.minero.pw^
@@||authedmine.com^
##.miner-banner
example.com##.ad
/coinhive.min.js
||coin-hive.com/lib/
||badfilter.example^$badfilter
|https://cnhv.co/
||Upper.EXAMPLE.org^|
||ppoi.org^$script,domain=example.com
||coinerra.com
||a.example^*.js
# a comment in uBlock Origin style
coin-have.com
||192.0.2.1^
"""


def test_adblock_sample() -> None:
    result = import_list(ADBLOCK_SAMPLE, "adblock", "sample")
    assert result.entries == (
        "coinhive.com",
        "crypto-loot.com",
        "minero.pw",
        "upper.example.org",
        "ppoi.org",
    )
    skipped = reasons(result)
    assert set(skipped) == {6, 7, 8, 9, 10, 11, 12, 15, 16, 18, 19}
    assert "exception rule" in skipped[6]
    assert "element hiding" in skipped[7]
    assert "element hiding" in skipped[8]
    assert "not a ||domain^ rule" in skipped[9]
    assert "matches URLs" in skipped[10]
    assert "badfilter" in skipped[11]
    assert "not a ||domain^ rule" in skipped[12]
    assert "matches URLs" in skipped[15]
    assert "matches URLs" in skipped[16]
    assert "not a ||domain^ rule" in skipped[18]
    assert "IP address" in skipped[19]


FALCO_SAMPLE = """\
- required_engine_version: 0.57.0

- macro: open_write
  condition: (evt.type in (open,openat,openat2))

- list: allowed_inbound_source_domains
  items: [google.com]

- list: miner_ports
  items: [25, 3333, 3334]

- list: miner_domains
  items: [
      "asia1.ethpool.org","ca.minexmr.com",
      "Pool.SupportXMR.com", 3333,
      '"quoted.example.org"',
      falco_containers,
      !!python/object/apply:os.system ["echo hacked"],
      "rx.unmineable.com"
      ]

- list: https_miner_domains
  items:
    - "ca.minexmr.com"
    - "stratum.antpool.com"

- list: http_miner_domains

- rule: Detect outbound connections to common miner pool ports
  condition: net_miner_pool
"""


def test_falco_sample() -> None:
    result = import_list(FALCO_SAMPLE, "falco", "sample")
    assert result.entries == (
        "asia1.ethpool.org",
        "ca.minexmr.com",
        "pool.supportxmr.com",
        "quoted.example.org",
        "rx.unmineable.com",
        "stratum.antpool.com",
    )
    skipped = result.skipped
    assert (15, "list item is not a string") in skipped
    assert (18, "list item is not a string") in skipped
    by_line = dict(skipped)
    assert "falco_containers" in by_line[17]
    assert "repeats line 14" in by_line[24]
    assert (27, "list has no 'items' sequence") in skipped
    assert len(skipped) == 5


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("- list: miner_domains\n  items: [a.example\n", 3, "invalid YAML"),
        ("", 0, "not a Falco rules file"),
        ("list: miner_domains\n", 0, "not a Falco rules file"),
        ("- list: other\n  items: [a.example]\n", 0, "no list named miner_domains"),
        ("--- [a]\n--- [b]\n", 2, "invalid YAML"),
        ("[" * 5000 + "]" * 5000, 0, "invalid YAML"),
    ],
)
def test_falco_unusable_input(text: str, line: int, words: str) -> None:
    result = import_list(text, "falco", "sample")
    assert result.entries == ()
    assert len(result.skipped) == 1
    assert result.skipped[0][0] == line
    assert words in result.skipped[0][1]


def test_unknown_format_raises() -> None:
    with pytest.raises(ValueError, match="unknown list format 'csv'"):
        import_list("a.example\n", "csv", "sample")


def test_ndpi_mining_hosts(real_pcaps: Path) -> None:
    path = real_pcaps / "ndpi" / "mining_hosts.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    text = path.read_text(encoding="utf-8")
    result = import_list(text, "domains", "nDPI mining host list (NoCoin)")
    for known in ("coinhive.com", "authedmine.com", "crypto-loot.com"):
        assert known in result.entries
    header = 0
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            break
        header += 1
    assert header > 0
    first_domain = text.splitlines()[header].split()[0].lower()
    assert result.entries[0] == first_domain
    assert all(line > header for line, _ in result.skipped)
    assert all(host_name_problem(entry) is None for entry in result.entries)
    assert not any("#" in entry for entry in result.entries)
    assert not any(":" in entry for entry in result.entries)


# Hypothesis's per-example deadline is a wall-clock check, so it is off.
@settings(deadline=None)
@given(text=st.text(), fmt=st.sampled_from(IMPORT_FORMATS))
def test_import_arbitrary_text(text: str, fmt: str) -> None:
    result = import_list(text, fmt, "arbitrary")
    assert_consistent(result, text)


LIST_LINES = st.lists(
    st.one_of(
        st.text(alphabet="abc.-*_|^$@#!:/ \t019", max_size=30),
        st.sampled_from(
            [
                "0.0.0.0 a.example",
                "127.0.0.1 localhost",
                "||b.example^$third-party",
                "@@||c.example^",
                "*.d.example",
                "::1 ip6-localhost",
                "# comment",
            ]
        ),
    ),
    max_size=30,
)


@settings(deadline=None)
@given(lines=LIST_LINES, fmt=st.sampled_from(IMPORT_FORMATS))
def test_import_list_shaped_text(lines: list[str], fmt: str) -> None:
    text = "\n".join(lines)
    result = import_list(text, fmt, "shaped")
    assert_consistent(result, text)


YAML_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.integers(),
        st.text(max_size=20),
        st.sampled_from(["miner_domains", "https_miner_domains", "a.example", "list"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.sampled_from(["list", "items", "macro", "rule", "condition"]),
            children,
            max_size=4,
        ),
    ),
    max_leaves=30,
)


@settings(deadline=None)
@given(document=st.lists(YAML_VALUES, max_size=6))
def test_import_falco_shaped_yaml(document: list[object]) -> None:
    text = yaml.safe_dump(document)
    result = import_list(text, "falco", "shaped")
    assert_consistent(result, text)


def assert_consistent(result: ImportResult, text: str) -> None:
    assert isinstance(result, ImportResult)
    assert len(result.entries) == len(set(result.entries))
    for entry in result.entries:
        assert host_name_problem(entry) is None
        assert entry == entry.lower()
    last_line = len(re.split("\r\n|[\r\n\x85\u2028\u2029]", text))
    for line, reason in result.skipped:
        assert 0 <= line <= last_line
        assert reason


@pytest.fixture(scope="module")
def bundled_text() -> str:
    return BUNDLED_POOLS.read_text(encoding="utf-8")


def imported(*domains: str, source: str = "test list") -> ImportResult:
    return import_list("\n".join(domains), "domains", source)


def is_subsequence(short: list[str], long: list[str]) -> bool:
    remaining = iter(long)
    return all(line in remaining for line in short)


def test_merge_into_bundled(bundled_text: str) -> None:
    result = imported(
        "new-pool.example",
        "coinhive.com",
        "pool.supportxmr.com",
        "parent.example",
        "child.parent.example",
        "zzz.example",
    )
    merge = merge_pools(bundled_text, result, "webminer", "monero", "my list")
    assert merge.added == ("new-pool.example", "parent.example", "zzz.example")
    dropped = {item.domain: item for item in merge.dropped}
    assert dropped["coinhive.com"].reason == REASON_LISTED
    assert dropped["coinhive.com"].covered_by == "coinhive.com"
    assert dropped["pool.supportxmr.com"].reason == REASON_UNDER_LISTED
    assert dropped["pool.supportxmr.com"].covered_by == "supportxmr.com"
    assert dropped["child.parent.example"].reason == REASON_UNDER_IMPORTED
    assert dropped["child.parent.example"].covered_by == "parent.example"
    assert merge.counts() == {
        REASON_LISTED: 1,
        REASON_UNDER_LISTED: 1,
        REASON_UNDER_IMPORTED: 1,
    }

    old = parse_pools(bundled_text)
    new = parse_pools(merge.text)
    assert len(new) == len(old) + 3
    assert set(old.entries) <= set(new.entries)
    for domain in merge.added:
        added = new.entry(domain)
        assert added is not None
        assert (added.kind, added.coin, added.source) == (
            "webminer",
            "monero",
            "my list",
        )
    assert is_subsequence(bundled_text.splitlines(), merge.text.splitlines())
    keys = [(POOL_KINDS.index(item.kind), item.domain) for item in new.entries]
    assert keys == sorted(keys)


def test_merge_uses_result_source(bundled_text: str) -> None:
    merge = merge_pools(bundled_text, imported("a.example", source="nDPI"), "pool", "x")
    added = parse_pools(merge.text).entry("a.example")
    assert added is not None
    assert added.source == "nDPI"


def test_merge_twice_changes_nothing(bundled_text: str) -> None:
    result = imported("a.example", "b.example")
    once = merge_into_pools(bundled_text, result, "pool", "bitcoin", "test")
    twice = merge_pools(once, result, "pool", "bitcoin", "test")
    assert twice.text == once
    assert twice.added == ()
    assert twice.counts() == {REASON_LISTED: 2}


def test_merge_into_blank_text() -> None:
    result = imported("b.example", "a.example", "x.a.example")
    text = merge_into_pools("", result, "proxy", "multi", "test")
    index = parse_pools(text)
    assert [item.domain for item in index.entries] == ["a.example", "b.example"]
    assert index.networks == ()
    assert text.startswith("#")


def test_merge_nothing_into_blank_text_raises() -> None:
    with pytest.raises(SignatureError) as caught:
        merge_pools("\n", imported(), "pool", "monero", "test", path="new.yaml")
    assert caught.value.source == "new.yaml"
    assert caught.value.key == "pools"


@pytest.mark.parametrize(
    ("kind", "coin", "source", "key"),
    [
        ("miner", "monero", "test", "kind"),
        ("pool", "Monero", "test", "coin"),
        ("pool", "", "test", "coin"),
        ("pool", "monero", "  ", "source"),
        ("pool", "monero", "list\x7f", "source"),
        ("pool", "monero", "two\nlines", "source"),
    ],
)
def test_merge_rejects_arguments(
    bundled_text: str, kind: str, coin: str, source: str, key: str
) -> None:
    with pytest.raises(SignatureError) as caught:
        merge_pools(bundled_text, imported("a.example"), kind, coin, source)
    assert caught.value.key == key
    assert caught.value.source == "pools.yaml"


def test_merge_rejects_invalid_existing_file() -> None:
    text = "pools:\n  - domain: a.example\n    kind: miner\n"
    with pytest.raises(SignatureError) as caught:
        merge_pools(text, imported("b.example"), "pool", "x", "t", path="mine.yaml")
    assert caught.value.source == "mine.yaml"
    assert caught.value.key == "pools[0].kind"


def test_merge_rejects_flow_style() -> None:
    text = "pools: [{domain: a.example, kind: pool, coin: x, source: t}]\n"
    with pytest.raises(SignatureError) as caught:
        merge_pools(text, imported("b.example"), "pool", "x", "t")
    assert caught.value.key == "pools"
    assert "flow style" in caught.value.reason
    unchanged = merge_pools(text, imported("a.example"), "pool", "x", "t")
    assert unchanged.text == text


def test_merge_rejects_invalid_domain_in_result() -> None:
    result = ImportResult(("not a domain",), (), "hand-made", "domains")
    with pytest.raises(ValueError, match="invalid"):
        merge_pools("", result, "pool", "x", "t")


LAYOUT = """\
# header comment
pools:
# Pools
- domain: b.example   # trailing comment
  kind: pool
  coin: monero
  ports:
    - 3333
    - 5555
  source: "s"

# Dev fee
- domain: a.example
  kind: donate
  coin: multi
  note: >
    folded text
    over two lines
  source: s
networks:
- network: 192.0.2.0/24
  kind: pool
  coin: x
  source: s"""


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_merge_keeps_layout(newline: str) -> None:
    text = LAYOUT.replace("\n", newline)
    result = imported("a0.example", "c.example", "z.example")
    merge = merge_pools(text, result, "pool", "yes", 'it\'s: "quoted" ünïcode')
    index = parse_pools(merge.text)
    assert len(index) == 5
    for domain in ("a0.example", "c.example", "z.example"):
        added = index.entry(domain)
        assert added is not None
        assert added.coin == "yes"
        assert added.source == 'it\'s: "quoted" ünïcode'
    before = index.entry("b.example")
    assert before is not None
    assert before.ports == (3333, 5555)
    assert is_subsequence(text.split(newline), merge.text.split(newline))
    if newline == "\r\n":
        assert "\n" not in merge.text.replace("\r\n", "")
    lines = merge.text.split(newline)
    # Pools come before the dev-fee section, in domain order, dash at column 0.
    existing = lines.index("- domain: b.example   # trailing comment")
    assert lines.index("- domain: a0.example") < existing
    assert lines.index("- domain: c.example") > existing
    assert lines.index("- domain: c.example") < lines.index("# Dev fee")
    assert lines.index("- domain: z.example") < lines.index("# Dev fee")
    assert index.match_address("192.0.2.9") is not None


def test_merge_after_unsorted_entries() -> None:
    text = (
        "pools:\n"
        "  - {domain: m.example, kind: pool, coin: x, source: s}\n"
        "  - {domain: c.example, kind: pool, coin: x, source: s}\n"
    )
    merge = merge_pools(text, imported("d.example", "a.example"), "pool", "x", "s")
    index = parse_pools(merge.text)
    assert [item.domain for item in index.entries] == [
        "a.example",
        "m.example",
        "c.example",
        "d.example",
    ]


LABEL = st.from_regex(r"[a-z]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
DOMAIN = st.builds(
    lambda labels, top: ".".join([*labels, top]),
    st.lists(LABEL, min_size=1, max_size=3),
    st.sampled_from(["com", "org", "example", "xmrig.com", "nanopool.org"]),
)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    domains=st.lists(DOMAIN, max_size=12),
    kind=st.sampled_from(POOL_KINDS),
)
def test_merge_generated_domains(
    bundled_text: str, domains: list[str], kind: str
) -> None:
    result = imported(*domains)
    merge = merge_pools(bundled_text, result, kind, "monero", "generated")
    old = parse_pools(bundled_text)
    new = parse_pools(merge.text)
    assert len(new) == len(old) + len(merge.added)
    assert len(merge.added) + len(merge.dropped) == len(set(result.entries))
    for domain in result.entries:
        assert new.match_domain(domain) is not None
    assert_sorted(new)


def assert_sorted(index: PoolIndex) -> None:
    keys = [(POOL_KINDS.index(item.kind), item.domain) for item in index.entries]
    assert keys == sorted(keys)
