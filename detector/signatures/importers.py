"""Importers that turn public lists of mining domains into pools.yaml entries.

:func:`import_list` reads one list in one of :data:`IMPORT_FORMATS` and
returns the valid domains, lower-cased and deduplicated, together with every
line it skipped and why. It never raises on the list's content, so a hostile
or broken list costs nothing but skipped lines.

:func:`merge_pools` (and :func:`merge_into_pools`, which returns only the
text) adds the imported domains to the text of a pools.yaml file. Entries
already in the file keep their data and their comments; new ones get the
kind, coin and source given, and go after the last entry that sorts before
them by kind, then domain. A domain already listed, or under a listed parent, is
dropped, because the parent matches it anyway.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import yaml

from detector.errors import SignatureError
from detector.signatures.loader import POOLS_FILE, parse_pools
from detector.signatures.pools import (
    COIN_NAME,
    POOL_KINDS,
    PoolIndex,
    host_name_problem,
    normalize_host_name,
)

IMPORT_FORMATS = ("domains", "hosts", "adblock", "falco")

# Line number of a problem with the input as a whole rather than one line.
WHOLE_INPUT = 0

# Hosts-file addresses that block a name rather than map it to a real host.
BLOCKING_ADDRESSES = frozenset(
    ipaddress.ip_address(text) for text in ("0.0.0.0", "127.0.0.1", "::", "::1")
)
# Names that hosts files map to the local machine; RFC 6761 also reserves
# every name under "localhost".
LOCALHOST_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "local",
        "broadcasthost",
        "ip6-localhost",
        "ip6-loopback",
        "ip6-localnet",
        "ip6-mcastprefix",
        "ip6-allnodes",
        "ip6-allrouters",
        "ip6-allhosts",
    }
)
# The Falco rules lists of mining pool domains. Other lists in a rules file
# name unrelated hosts (allowed_inbound_source_domains contains google.com), so
# their items are never imported.
FALCO_DOMAIN_LISTS = ("miner_domains", "https_miner_domains", "http_miner_domains")

# Adblock rule markers of element hiding, scriptlet and HTML filtering rules,
# which hide page content rather than block a domain.
_COSMETIC_MARKERS = ("##", "#@#", "#?#", "#@?#", "#$#", "#@$#", "#%#", "#@%#")
_WILDCARD_PREFIX = "*."
# Maximum number of characters of an input line quoted back in a reason.
_QUOTE_LIMIT = 60
# YAML's line breaks, which its error marks count lines by.
_LINE_BREAK = re.compile("(\r\n|[\r\n\x85\u2028\u2029])")
_YAML_STRING_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The domains read from one list, and the lines skipped.

    ``entries`` are valid host names, lower-cased, in first-seen order, each
    once. ``skipped`` holds ``(line number, reason)`` pairs in input order;
    line 0 stands for the input as a whole. Blank and comment lines are not
    skipped lines.
    """

    entries: tuple[str, ...]
    skipped: tuple[tuple[int, str], ...]
    source: str
    fmt: str


def import_list(text: str, fmt: str, source: str) -> ImportResult:
    """Read the domains of a list in format ``fmt``.

    Formats:
        ``domains``: one domain per line, ``#`` starting a comment; columns
        after the first, such as the category number of nDPI's host lists,
        are ignored.
        ``hosts``: hosts-file lines such as ``0.0.0.0 example.com``; only
        lines with a blocking address (0.0.0.0, 127.0.0.1, ::, ::1) count,
        and localhost names are skipped.
        ``adblock``: ``||domain^`` rules, with or without ``$options``;
        exception (``@@``), element hiding and URL rules are skipped.
        ``falco``: a Falco rules YAML file; the items of the lists named in
        :data:`FALCO_DOMAIN_LISTS` are read. The YAML is parsed with PyYAML's
        SafeLoader and only its node tree is used, so no tag can construct a
        Python object.

    In ``domains`` and ``adblock`` a leading ``*.`` is dropped: the domain
    then matches its subdomains, as the wildcard meant, and itself too.
    IP addresses are skipped in every format, because a pool's address
    changes more often than its name.

    ``source`` is kept in the result for the provenance of merged entries.

    Raises:
        ValueError: ``fmt`` is not one of :data:`IMPORT_FORMATS`. The text
            itself never raises; what cannot be read is in ``skipped``.
    """
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise ValueError(
            f"unknown list format {fmt!r}; expected one of {', '.join(IMPORT_FORMATS)}"
        )
    collector = _Collector()
    parser(text.removeprefix("\ufeff"), collector)
    return ImportResult(
        entries=tuple(collector.domains),
        skipped=tuple(collector.skipped),
        source=source,
        fmt=fmt,
    )


class _Collector:
    """The domains accepted so far, with the line each was first seen on."""

    def __init__(self) -> None:
        self.domains: dict[str, int] = {}
        self.skipped: list[tuple[int, str]] = []

    def skip(self, line: int, reason: str) -> None:
        self.skipped.append((line, reason))

    def add(self, line: int, candidate: str) -> None:
        name = normalize_host_name(candidate)
        problem = host_name_problem(name)
        if problem is not None:
            self.skip(line, problem)
            return
        first = self.domains.get(name)
        if first is not None:
            self.skip(line, f"{name!r} repeats line {first}")
            return
        self.domains[name] = line


def _lines(text: str) -> Iterator[tuple[int, str]]:
    # Lines are counted as YAML counts them, so line numbers mean the same in
    # every format.
    return enumerate(_LINE_BREAK.split(text)[::2], start=1)


def _quote(text: str) -> str:
    if len(text) > _QUOTE_LIMIT:
        text = text[:_QUOTE_LIMIT] + "..."
    return repr(text)


def _strip_wildcard(name: str) -> str:
    return name.removeprefix(_WILDCARD_PREFIX)


def _parse_domains(text: str, out: _Collector) -> None:
    for number, line in _lines(text):
        content = line.split("#", 1)[0].split()
        if content:
            out.add(number, _strip_wildcard(content[0]))


def _parse_hosts(text: str, out: _Collector) -> None:
    for number, line in _lines(text):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        address, names = fields[0], fields[1:]
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            out.skip(
                number,
                f"{_quote(address)} is not an address; expected '0.0.0.0 <domain>'",
            )
            continue
        if parsed not in BLOCKING_ADDRESSES:
            out.skip(
                number,
                f"address {address} maps a real host; only 0.0.0.0, 127.0.0.1,"
                " :: and ::1 lines block a name",
            )
            continue
        if not names:
            out.skip(number, f"no host name after {address}")
            continue
        for name in names:
            if _is_localhost(name):
                out.skip(number, f"{_quote(name)} is a localhost entry")
            else:
                out.add(number, name)


def _is_localhost(name: str) -> bool:
    normalized = normalize_host_name(name)
    return normalized in LOCALHOST_NAMES or normalized.endswith(".localhost")


def _parse_adblock(text: str, out: _Collector) -> None:
    for number, line in _lines(text):
        rule = line.strip()
        if not rule or rule.startswith("!"):
            continue
        if rule.startswith("[") and rule.endswith("]"):
            continue  # a header such as [Adblock Plus 2.0]
        if any(marker in rule for marker in _COSMETIC_MARKERS):
            out.skip(number, "element hiding or scriptlet rule; it blocks no domain")
            continue
        if rule.startswith("#"):
            continue  # uBlock Origin and AdGuard read "# ..." as a comment
        problem = _adblock_problem(rule)
        if problem is None:
            out.add(number, _strip_wildcard(_adblock_host(rule)))
        else:
            out.skip(number, problem)


def _adblock_problem(rule: str) -> str | None:
    """Return why ``rule`` does not block a whole domain, or None if it does."""
    if rule.startswith("@@"):
        return "exception rule (@@) allows requests; only blocking rules count"
    if not rule.startswith("||"):
        return f"{_quote(rule)} is not a ||domain^ rule"
    pattern, _, options = rule[2:].partition("$")
    if "badfilter" in (option.strip() for option in options.split(",")):
        return "$badfilter rule disables another rule; it blocks nothing"
    pattern = pattern.removesuffix("|")
    if not pattern.endswith("^") or "^" in pattern[:-1]:
        return (
            f"{_quote(rule)} matches URLs, not a whole domain;"
            " expected ||domain^ with nothing after the ^"
        )
    return None


def _adblock_host(rule: str) -> str:
    """Return the domain of a rule that :func:`_adblock_problem` accepts."""
    pattern = rule[2:].partition("$")[0].removesuffix("|")
    return pattern[:-1]


def _parse_falco(text: str, out: _Collector) -> None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else WHOLE_INPUT
        problem = getattr(error, "problem", None) or str(error)
        out.skip(line, f"invalid YAML: {problem}")
        return
    except RecursionError:
        out.skip(WHOLE_INPUT, "invalid YAML: collections nested too deeply")
        return
    if not isinstance(root, yaml.SequenceNode):
        out.skip(
            WHOLE_INPUT,
            "not a Falco rules file; expected a YAML list of list, macro and"
            " rule items",
        )
        return
    found = False
    for item in root.value:
        items = _falco_domain_items(item)
        if items is None:
            continue
        found = True
        if not isinstance(items, yaml.SequenceNode):
            out.skip(item.start_mark.line + 1, "list has no 'items' sequence")
            continue
        for node in items.value:
            line = node.start_mark.line + 1
            if isinstance(node, yaml.ScalarNode) and node.tag == _YAML_STRING_TAG:
                out.add(line, _unquote(node.value))
            else:
                out.skip(line, "list item is not a string")
    if not found:
        out.skip(
            WHOLE_INPUT,
            "no list named " + ", ".join(FALCO_DOMAIN_LISTS) + " in the rules file",
        )


def _falco_domain_items(item: yaml.Node) -> yaml.Node | None:
    """Return the ``items`` node of a miner domain list, else None.

    A miner domain list without items returns its own node, which the
    caller reports.
    """
    if not isinstance(item, yaml.MappingNode):
        return None
    fields: dict[str, yaml.Node] = {}
    for key, value in item.value:
        if isinstance(key, yaml.ScalarNode):
            fields[key.value] = value
    name = fields.get("list")
    if not isinstance(name, yaml.ScalarNode) or name.value not in FALCO_DOMAIN_LISTS:
        return None
    return fields.get("items", item)


def _unquote(text: str) -> str:
    # Falco rules quote items with inner double quotes ('"name"') where the
    # filter language needs them.
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    return text


_PARSERS: dict[str, Callable[[str, _Collector], None]] = {
    "domains": _parse_domains,
    "hosts": _parse_hosts,
    "adblock": _parse_adblock,
    "falco": _parse_falco,
}


# Reasons a merge drops an imported domain.
REASON_LISTED = "already listed"
REASON_UNDER_LISTED = "under a listed domain"
REASON_UNDER_IMPORTED = "under another imported domain"

_NEW_FILE_HEADER = (
    "# Pool endpoints. Fields: domain, kind, coin, ports, tls_ports, source,\n"
    "# note; the pools.yaml bundled with the detector describes each one.\n"
)


@dataclass(frozen=True, slots=True)
class DroppedDomain:
    """An imported domain the merge left out.

    ``covered_by`` is the listed or imported domain that already matches
    it, which is the domain itself when the reason is
    :data:`REASON_LISTED`.
    """

    domain: str
    reason: str
    covered_by: str


@dataclass(frozen=True, slots=True)
class PoolMerge:
    """The new pools.yaml text, the domains added and those dropped."""

    text: str
    added: tuple[str, ...]
    dropped: tuple[DroppedDomain, ...]

    def counts(self) -> dict[str, int]:
        """Count the dropped domains by reason."""
        return dict(collections.Counter(item.reason for item in self.dropped))


def merge_into_pools(
    existing_yaml_text: str,
    result: ImportResult,
    kind: str,
    coin: str,
    source: str | None = None,
    *,
    path: str = POOLS_FILE,
) -> str:
    """Return the text of pools.yaml with the domains of ``result`` added.

    The same as :func:`merge_pools`, returning only the text.

    Raises:
        SignatureError: see :func:`merge_pools`.
    """
    return merge_pools(existing_yaml_text, result, kind, coin, source, path=path).text


def merge_pools(
    existing_yaml_text: str,
    result: ImportResult,
    kind: str,
    coin: str,
    source: str | None = None,
    *,
    path: str = POOLS_FILE,
) -> PoolMerge:
    """Add the domains of ``result`` to the text of a pools.yaml file.

    Each new entry gets ``kind``, ``coin`` and ``source`` (the result's own
    source when None). Existing entries, comments and layout are kept as
    they are. Entries sort by kind, in the order of
    :data:`~detector.signatures.pools.POOL_KINDS`, then by domain. Each new
    entry goes after the last entry in the file that sorts before it, or
    before the first entry when none does, so a sorted file stays sorted.
    Blank ``existing_yaml_text`` starts a new file. ``path`` names the file in
    error messages.

    Raises:
        SignatureError: ``kind``, ``coin`` or ``source`` is invalid, the
            existing text is not a valid pools.yaml, its ``pools`` list is
            written in flow style (``[...]``), or a new file would have no
            entry. The error names ``path`` and the key.
        ValueError: ``result`` holds a domain that is not a valid host name,
            which :func:`import_list` never returns.
    """
    source = result.source if source is None else source
    _check_arguments(path, kind, coin, source)
    blank = not existing_yaml_text.strip()
    index = PoolIndex() if blank else parse_pools(existing_yaml_text, path)
    added, dropped = _select_new(index, result.entries)
    if not added:
        if blank:
            raise SignatureError(
                path, "pools", "empty list; the import has no domain to write"
            )
        return PoolMerge(existing_yaml_text, (), tuple(dropped))
    new_entries = [_NewEntry(domain, kind, coin, source) for domain in added]
    if blank:
        text = _new_file(new_entries)
    else:
        text = _insert_entries(existing_yaml_text, index, new_entries, path)
    _check_merged(text, len(index) + len(added), path)
    return PoolMerge(text, tuple(sorted(added)), tuple(dropped))


def _check_arguments(path: str, kind: str, coin: str, source: str) -> None:
    if kind not in POOL_KINDS:
        raise SignatureError(
            path,
            "kind",
            f"unknown kind {kind!r}; expected one of {', '.join(POOL_KINDS)}",
        )
    if not COIN_NAME.fullmatch(coin):
        raise SignatureError(
            path,
            "coin",
            f"invalid coin {coin!r}; expected lower-case words joined by hyphens,"
            " such as ethereum-classic",
        )
    if not source.strip():
        raise SignatureError(path, "source", "empty string; expected text")
    if any(unicodedata.category(char) == "Cc" for char in source):
        raise SignatureError(
            path, "source", f"{source!r} has control characters; expected one line"
        )


def _select_new(
    index: PoolIndex, domains: Sequence[str]
) -> tuple[list[str], list[DroppedDomain]]:
    """Split imported domains into those to add and those already matched."""
    names = []
    for domain in domains:
        name = normalize_host_name(domain)
        problem = host_name_problem(name)
        if problem is not None:
            raise ValueError(f"imported domain is invalid: {problem}")
        names.append(name)
    added: set[str] = set()
    dropped = []
    # Parents before children, so a child meets its imported parent.
    for name in sorted(set(names), key=lambda item: (item.count("."), item)):
        listed = index.covering_entry(name)
        if listed is not None:
            reason = REASON_LISTED if listed.domain == name else REASON_UNDER_LISTED
            dropped.append(DroppedDomain(name, reason, listed.domain))
            continue
        parent = _imported_parent(name, added)
        if parent is not None:
            dropped.append(DroppedDomain(name, REASON_UNDER_IMPORTED, parent))
            continue
        added.add(name)
    return sorted(added), dropped


def _imported_parent(name: str, added: set[str]) -> str | None:
    dot = name.find(".")
    while dot >= 0:
        parent = name[dot + 1 :]
        if parent in added:
            return parent
        dot = name.find(".", dot + 1)
    return None


@dataclass(frozen=True, slots=True)
class _NewEntry:
    domain: str
    kind: str
    coin: str
    source: str

    @property
    def order(self) -> tuple[int, str]:
        return (POOL_KINDS.index(self.kind), self.domain)

    def render(self, dash_column: int, key_column: int, newline: str) -> str:
        first_key = " " * dash_column + "-" + " " * (key_column - dash_column - 1)
        key_indent = " " * key_column
        lines = [
            f"{first_key}domain: {_scalar(self.domain)}",
            f"{key_indent}kind: {_scalar(self.kind)}",
            f"{key_indent}coin: {_scalar(self.coin)}",
            f"{key_indent}source: {json.dumps(self.source)}",
        ]
        return "".join(line + newline for line in lines)


def _scalar(text: str) -> str:
    # A plain scalar that YAML reads back as something else (no, null, 1e3)
    # is written as a JSON string, which is also a YAML double-quoted scalar.
    try:
        if yaml.safe_load(text) == text:
            return text
    except yaml.YAMLError:
        pass
    return json.dumps(text)


def _new_file(entries: list[_NewEntry]) -> str:
    body = "".join(
        entry.render(2, 4, "\n") for entry in sorted(entries, key=lambda e: e.order)
    )
    return f"{_NEW_FILE_HEADER}pools:\n{body}networks: []\n"


def _insert_entries(
    text: str, index: PoolIndex, entries: list[_NewEntry], path: str
) -> str:
    sequence = _pools_sequence(text, path)
    lines = _split_lines(text)
    newline = "\r\n" if "\r\n" in text else "\n"
    # New entries copy the first entry's indentation: the dash column, and
    # the key column, which may sit on the dash line or on the next one.
    dash_column = sequence.start_mark.column
    key_column = max(sequence.value[0].start_mark.column, dash_column + 2)

    # Each existing entry, by its sort key, and the line after its end.
    ends = []
    for item in sequence.value:
        entry = index.entry(_domain_of(item))
        assert entry is not None, "parse_pools accepted an entry without a domain"
        ends.append(
            ((POOL_KINDS.index(entry.kind), entry.domain), _last_line(item) + 1)
        )

    inserts: dict[int, list[str]] = {}
    for new in sorted(entries, key=lambda e: e.order):
        before = [end for order, end in ends if order < new.order]
        position = max(before) if before else sequence.start_mark.line
        inserts.setdefault(position, []).append(
            new.render(dash_column, key_column, newline)
        )

    if lines and not _LINE_BREAK.search(lines[-1]):
        lines[-1] += newline
    output: list[str] = []
    for number in range(len(lines) + 1):
        output.extend(inserts.get(number, ()))
        if number < len(lines):
            output.append(lines[number])
    return "".join(output)


def _pools_sequence(text: str, path: str) -> yaml.SequenceNode:
    # parse_pools has already validated the text, so this parse succeeds and
    # the pools value is a non-empty list of mappings.
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    assert isinstance(root, yaml.MappingNode)
    for key, value in root.value:
        if key.value == "pools" and isinstance(value, yaml.SequenceNode):
            if value.flow_style:
                raise SignatureError(
                    path,
                    "pools",
                    "written in flow style ([...]); write it as a block list,"
                    " one '- domain: ...' entry per item, to add entries",
                )
            return value
    raise AssertionError("parse_pools accepted a file without a pools list")


def _domain_of(item: yaml.Node) -> str:
    assert isinstance(item, yaml.MappingNode)
    for key, value in item.value:
        if key.value == "domain" and isinstance(value, yaml.ScalarNode):
            return str(value.value)
    raise AssertionError("parse_pools accepted an entry without a domain")


def _last_line(node: yaml.Node) -> int:
    """Return the 0-based number of the last line ``node`` occupies.

    Only scalars and flow collections have exact end marks: the end mark of
    a block collection lies at the next token, past any comments.
    """
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        mark = node.end_mark
        return mark.line - 1 if mark.column == 0 and mark.line > 0 else mark.line
    children: list[yaml.Node] = []
    if isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            children.extend((key, value))
    return max((_last_line(child) for child in children), default=node.start_mark.line)


def _split_lines(text: str) -> list[str]:
    """Split ``text`` into lines with their breaks, as YAML counts lines."""
    pieces = _LINE_BREAK.split(text)
    lines = [pieces[i] + pieces[i + 1] for i in range(0, len(pieces) - 1, 2)]
    if pieces[-1]:
        lines.append(pieces[-1])
    return lines


def _check_merged(text: str, expected: int, path: str) -> None:
    """Check that the merged text loads with every old and new entry."""
    try:
        merged = parse_pools(text, path)
    except SignatureError as error:
        raise SignatureError(
            path,
            "pools",
            f"cannot add entries to this file's layout ({error.reason}); write"
            " pools as a block list of '- domain: ...' entries",
        ) from error
    if len(merged) != expected:
        raise SignatureError(
            path,
            "pools",
            f"adding entries to this file's layout gave {len(merged)} entries"
            f" instead of {expected}; write pools as a block list of"
            " '- domain: ...' entries",
        )
