"""Loading and validation of the signature files in one folder.

Each file is read with ``yaml.safe_load`` and checked against a small schema.
Every key must be known, every value of the expected type and every regular
expression must compile. No list may be empty except ``networks`` in
pools.yaml, no port may be out of range, and no id, port, domain or network
may appear twice. The first problem raises
:class:`~detector.errors.SignatureError` with the file, the key path
(``agents[3].pattern``) and what was expected.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from detector.errors import SignatureError
from detector.signatures.matchers import (
    AgentSignature,
    DialectMethods,
    PortInfo,
    Signatures,
    WalletSignature,
)
from detector.signatures.pools import (
    COIN_NAME,
    POOL_KINDS,
    NetworkEntry,
    PoolEntry,
    PoolIndex,
    host_name_problem,
    normalize_host_name,
)

ENV_SIGNATURES = "DETECTOR_SIGNATURES"
AGENTS_FILE = "agents.yaml"
DIALECTS_FILE = "dialects.yaml"
WALLETS_FILE = "wallets.yaml"
PORTS_FILE = "ports.yaml"
POOLS_FILE = "pools.yaml"
SIGNATURE_FILES = (AGENTS_FILE, DIALECTS_FILE, WALLETS_FILE, PORTS_FILE, POOLS_FILE)

PORT_KINDS = frozenset({"pool", "proxy", "node"})
POOL_KIND = "pool"
MIN_PORT = 1
MAX_PORT = 65535

# Key path used for problems with a whole file rather than one key.
DOCUMENT_KEY = "(document)"


def default_directory() -> Path:
    """Return the folder :func:`load_signatures` reads when given none.

    The first of: the folder named by the ``DETECTOR_SIGNATURES`` environment
    variable, the ``signatures/`` folder at the top of a source checkout, and
    ``<sys.prefix>/share/detector/signatures`` for an installed copy.
    """
    configured = os.environ.get(ENV_SIGNATURES)
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parents[2] / "signatures"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "detector" / "signatures"


def load_signatures(directory: str | os.PathLike[str] | None = None) -> Signatures:
    """Load and validate the five signature files of ``directory``.

    ``None`` means :func:`default_directory`. The folder must contain
    agents.yaml, dialects.yaml, wallets.yaml, ports.yaml and pools.yaml.

    Raises:
        SignatureError: a file is missing, unreadable or not valid YAML, or a
            value in it is invalid. The error names the file and the key path.
    """
    folder = Path(directory) if directory is not None else default_directory()
    paths = {name: folder / name for name in SIGNATURE_FILES}
    dialects = _load_dialects(_read(paths[DIALECTS_FILE]))
    agents = _load_agents(_read(paths[AGENTS_FILE]), dialects)
    separators, wallets = _load_wallets(_read(paths[WALLETS_FILE]))
    ports = _load_ports(_read(paths[PORTS_FILE]))
    pools = _load_pools(_read(paths[POOLS_FILE]))
    return Signatures(
        agents=agents,
        dialect_methods=types.MappingProxyType(dialects),
        dialects_by_method=types.MappingProxyType(_index_methods(dialects)),
        wallets=wallets,
        login_separators=re.compile(
            "(" + "|".join(re.escape(item) for item in separators) + ")"
        ),
        ports=types.MappingProxyType(ports),
        pool_ports=frozenset(
            port for port, info in ports.items() if info.kind == POOL_KIND
        ),
        files=tuple(str(paths[name]) for name in SIGNATURE_FILES),
        pools=pools,
    )


def parse_pools(text: str, source: str = POOLS_FILE) -> PoolIndex:
    """Validate the text of a pools.yaml file and index its entries.

    ``source`` names the file in error messages.

    Raises:
        SignatureError: the text is not valid YAML or a value in it is
            invalid. The error names ``source`` and the key path.
    """
    return _load_pools(_parse(source, text))


@dataclass(frozen=True, slots=True)
class _Document:
    """A parsed file: its path for error messages and its top-level mapping."""

    path: str
    content: dict[Any, Any]

    def fail(self, key: str, message: str) -> SignatureError:
        return SignatureError(self.path, key, message)


def _read(path: Path) -> _Document:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise SignatureError(
            source,
            DOCUMENT_KEY,
            "file not found; a signature folder must contain "
            + ", ".join(SIGNATURE_FILES),
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        raise SignatureError(
            source, DOCUMENT_KEY, f"cannot read file: {error}"
        ) from error
    return _parse(source, text)


def _parse(source: str, text: str) -> _Document:
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SignatureError(
            source, DOCUMENT_KEY, f"invalid YAML: {_describe_yaml_error(error)}"
        ) from error
    except RecursionError as error:
        # PyYAML composes nested collections recursively.
        raise SignatureError(
            source, DOCUMENT_KEY, "invalid YAML: collections nested too deeply"
        ) from error
    if not isinstance(content, dict):
        raise SignatureError(
            source,
            DOCUMENT_KEY,
            f"expected a mapping at the top level, got {_type_name(content)}",
        )
    return _Document(source, content)


def _describe_yaml_error(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if mark is None:
        return str(problem)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"


# Field checkers take the document, the key path and the value, and return the
# checked value or raise SignatureError.
_Checker = Callable[[_Document, str, Any], Any]


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing"
    return type(value).__name__


def _check_string(document: _Document, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise document.fail(key, f"expected a string, got {_type_name(value)}")
    if not value.strip():
        raise document.fail(key, "empty string; expected text")
    return value


def _regex_checker(flags: int) -> _Checker:
    def check(document: _Document, key: str, value: Any) -> re.Pattern[str]:
        text = _check_string(document, key, value)
        try:
            return re.compile(text, flags)
        except re.error as error:
            raise document.fail(
                key, f"invalid regular expression: {error}; expected Python re syntax"
            ) from error

    return check


def _check_string_list(document: _Document, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise document.fail(key, f"expected a list of strings, got {_type_name(value)}")
    if not value:
        raise document.fail(key, "empty list; expected at least one string")
    seen: set[str] = set()
    for index, item in enumerate(value):
        text = _check_string(document, f"{key}[{index}]", item)
        if text in seen:
            raise document.fail(
                f"{key}[{index}]", f"duplicate value {text!r}; expected each value once"
            )
        seen.add(text)
    return tuple(value)


def _check_separators(document: _Document, key: str, value: Any) -> tuple[str, ...]:
    separators = _check_string_list(document, key, value)
    for index, separator in enumerate(separators):
        if len(separator) != 1:
            raise document.fail(
                f"{key}[{index}]",
                f"separator {separator!r} is not one character; expected one",
            )
    return separators


def _check_port(document: _Document, key: str, value: Any) -> int:
    # bool is an int in Python, and YAML turns yes/no into booleans.
    if isinstance(value, bool) or not isinstance(value, int):
        raise document.fail(key, f"expected a port number, got {_type_name(value)}")
    if not MIN_PORT <= value <= MAX_PORT:
        raise document.fail(
            key, f"port {value} out of range; expected {MIN_PORT} to {MAX_PORT}"
        )
    return value


def _check_port_kind(document: _Document, key: str, value: Any) -> str:
    kind = _check_string(document, key, value)
    if kind not in PORT_KINDS:
        raise document.fail(
            key,
            f"unknown kind {kind!r}; expected one of {', '.join(sorted(PORT_KINDS))}",
        )
    return kind


@dataclass(frozen=True, slots=True)
class _Field:
    check: _Checker
    required: bool = True


def _check_mapping(
    document: _Document, key: str, value: Any, fields: Mapping[str, _Field]
) -> dict[str, Any]:
    """Check one mapping against ``fields`` and return its checked values."""
    if not isinstance(value, dict):
        raise document.fail(key, f"expected a mapping, got {_type_name(value)}")
    prefix = f"{key}." if key else ""
    for name in value:
        if name not in fields:
            raise document.fail(
                f"{prefix}{name}",
                f"unknown key; expected one of {', '.join(fields)}",
            )
    checked: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in value:
            if field.required:
                raise document.fail(
                    f"{prefix}{name}", "missing required key; add it to the entry"
                )
            continue
        checked[name] = field.check(document, f"{prefix}{name}", value[name])
    return checked


def _entries(
    document: _Document, key: str, fields: Mapping[str, _Field]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield the key path and checked fields of each entry of a top-level list."""
    value = document.content[key]
    if not isinstance(value, list):
        raise document.fail(key, f"expected a list, got {_type_name(value)}")
    if not value:
        raise document.fail(key, "empty list; expected at least one entry")
    for index, entry in enumerate(value):
        path = f"{key}[{index}]"
        yield path, _check_mapping(document, path, entry, fields)


def _check_top_level(document: _Document, keys: Mapping[str, bool]) -> None:
    """Check the top-level keys; ``keys`` maps each known key to required."""
    for name in document.content:
        if name not in keys:
            raise document.fail(
                str(name), f"unknown key; expected one of {', '.join(keys)}"
            )
    for name, required in keys.items():
        if required and name not in document.content:
            raise document.fail(name, "missing required top-level key")


class _UniqueIds:
    """The ids seen so far in one file, to reject a duplicate."""

    def __init__(self, document: _Document, label: str = "id") -> None:
        self._document = document
        self._label = label
        self._seen: dict[Any, str] = {}

    def add(self, key: str, value: Any) -> None:
        if value in self._seen:
            raise self._document.fail(
                key,
                f"duplicate {self._label} {value!r}, first used at"
                f" {self._seen[value]}; expected each {self._label} once",
            )
        self._seen[value] = key


_AGENT_FIELDS = {
    "id": _Field(_check_string),
    "family": _Field(_check_string),
    "pattern": _Field(_regex_checker(re.IGNORECASE)),
    "source": _Field(_check_string),
    "dialect": _Field(_check_string, required=False),
}


def _load_agents(
    document: _Document, dialects: Mapping[str, object]
) -> tuple[AgentSignature, ...]:
    _check_top_level(document, {"agents": True})
    ids = _UniqueIds(document)
    agents = []
    for path, entry in _entries(document, "agents", _AGENT_FIELDS):
        ids.add(f"{path}.id", entry["id"])
        dialect = entry.get("dialect")
        if dialect is not None and dialect not in dialects:
            raise document.fail(
                f"{path}.dialect",
                f"unknown dialect {dialect!r}; expected one of the ids in"
                f" {DIALECTS_FILE}: {', '.join(sorted(dialects))}",
            )
        agents.append(
            AgentSignature(
                entry["id"], entry["family"], entry["pattern"], entry["source"], dialect
            )
        )
    return tuple(agents)


_DIALECT_FIELDS = {
    "id": _Field(_check_string),
    "source": _Field(_check_string),
    "to_server": _Field(_check_string_list),
    "to_client": _Field(_check_string_list, required=False),
    "markers": _Field(_check_string_list, required=False),
}


def _load_dialects(document: _Document) -> dict[str, DialectMethods]:
    _check_top_level(document, {"dialects": True})
    ids = _UniqueIds(document)
    dialects: dict[str, DialectMethods] = {}
    for path, entry in _entries(document, "dialects", _DIALECT_FIELDS):
        ids.add(f"{path}.id", entry["id"])
        dialects[entry["id"]] = DialectMethods(
            to_server=frozenset(entry["to_server"]),
            to_client=frozenset(entry.get("to_client", ())),
            markers=frozenset(entry.get("markers", ())),
            source=entry["source"],
        )
    return dialects


def _index_methods(dialects: Mapping[str, DialectMethods]) -> dict[str, frozenset[str]]:
    index: dict[str, set[str]] = {}
    for dialect_id, methods in dialects.items():
        for method in methods.to_server | methods.to_client:
            index.setdefault(method, set()).add(dialect_id)
    return {method: frozenset(ids) for method, ids in index.items()}


_WALLET_FIELDS = {
    "id": _Field(_check_string),
    "coin": _Field(_check_string),
    # Base58 is case-sensitive and bech32 forbids mixed case, so no IGNORECASE.
    "pattern": _Field(_regex_checker(0)),
    "source": _Field(_check_string),
}


def _load_wallets(
    document: _Document,
) -> tuple[tuple[str, ...], tuple[WalletSignature, ...]]:
    _check_top_level(document, {"login_separators": True, "wallets": True})
    separators = _check_separators(
        document, "login_separators", document.content["login_separators"]
    )
    ids = _UniqueIds(document)
    wallets = []
    for path, entry in _entries(document, "wallets", _WALLET_FIELDS):
        ids.add(f"{path}.id", entry["id"])
        wallets.append(
            WalletSignature(
                entry["id"], entry["coin"], entry["pattern"], entry["source"]
            )
        )
    return separators, tuple(wallets)


_PORT_FIELDS = {
    "port": _Field(_check_port),
    "kind": _Field(_check_port_kind),
    "note": _Field(_check_string),
    "source": _Field(_check_string),
}


def _load_ports(document: _Document) -> dict[int, PortInfo]:
    _check_top_level(document, {"ports": True})
    numbers = _UniqueIds(document, "port")
    ports: dict[int, PortInfo] = {}
    for path, entry in _entries(document, "ports", _PORT_FIELDS):
        numbers.add(f"{path}.port", entry["port"])
        ports[entry["port"]] = PortInfo(
            entry["port"], entry["kind"], entry["note"], entry["source"]
        )
    return ports


def _check_domain(document: _Document, key: str, value: Any) -> str:
    domain = normalize_host_name(_check_string(document, key, value))
    problem = host_name_problem(domain)
    if problem is not None:
        raise document.fail(
            key, f"invalid domain: {problem}; expected a name such as pool.example.com"
        )
    return domain


def _check_pool_kind(document: _Document, key: str, value: Any) -> str:
    kind = _check_string(document, key, value)
    if kind not in POOL_KINDS:
        raise document.fail(
            key, f"unknown kind {kind!r}; expected one of {', '.join(POOL_KINDS)}"
        )
    return kind


def _check_coin(document: _Document, key: str, value: Any) -> str:
    coin = _check_string(document, key, value)
    if not COIN_NAME.fullmatch(coin):
        raise document.fail(
            key,
            f"invalid coin {coin!r}; expected lower-case words joined by hyphens,"
            " such as ethereum-classic",
        )
    return coin


def _check_port_list(document: _Document, key: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise document.fail(key, f"expected a list of ports, got {_type_name(value)}")
    if not value:
        raise document.fail(
            key, "empty list; list at least one port or leave the key out"
        )
    ports = _UniqueIds(document, "port")
    for index, item in enumerate(value):
        ports.add(f"{key}[{index}]", _check_port(document, f"{key}[{index}]", item))
    return tuple(value)


def _check_network(
    document: _Document, key: str, value: Any
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    text = _check_string(document, key, value)
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as error:
        raise document.fail(
            key,
            f"invalid network {text!r}: {error}; expected CIDR notation with the"
            " host bits zero, such as 192.0.2.0/24",
        ) from error


_POOL_FIELDS = {
    "domain": _Field(_check_domain),
    "kind": _Field(_check_pool_kind),
    "coin": _Field(_check_coin),
    "ports": _Field(_check_port_list, required=False),
    "tls_ports": _Field(_check_port_list, required=False),
    "source": _Field(_check_string),
    "note": _Field(_check_string, required=False),
}

_NETWORK_FIELDS = {
    "network": _Field(_check_network),
    "kind": _Field(_check_pool_kind),
    "coin": _Field(_check_coin),
    "source": _Field(_check_string),
    "note": _Field(_check_string, required=False),
}


def _load_pools(document: _Document) -> PoolIndex:
    _check_top_level(document, {"pools": True, "networks": False})
    domains = _UniqueIds(document, "domain")
    entries = []
    for path, entry in _entries(document, "pools", _POOL_FIELDS):
        domains.add(f"{path}.domain", entry["domain"])
        entries.append(
            PoolEntry(
                domain=entry["domain"],
                kind=entry["kind"],
                coin=entry["coin"],
                source=entry["source"],
                ports=entry.get("ports", ()),
                tls_ports=entry.get("tls_ports", ()),
                note=entry.get("note"),
            )
        )
    return PoolIndex(entries, _load_networks(document))


def _load_networks(document: _Document) -> list[NetworkEntry]:
    # Unlike the other lists, networks may be empty: published pool address
    # lists go stale quickly, so the bundled file ships none.
    value = document.content.get("networks", [])
    if not isinstance(value, list):
        raise document.fail(
            "networks", f"expected a list (may be []), got {_type_name(value)}"
        )
    networks = _UniqueIds(document, "network")
    items = []
    for index, item in enumerate(value):
        path = f"networks[{index}]"
        entry = _check_mapping(document, path, item, _NETWORK_FIELDS)
        networks.add(f"{path}.network", entry["network"])
        items.append(
            NetworkEntry(
                network=entry["network"],
                kind=entry["kind"],
                coin=entry["coin"],
                source=entry["source"],
                note=entry.get("note"),
            )
        )
    return items
