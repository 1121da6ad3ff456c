"""load_signatures on the bundled files and on broken copies of them."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from detector.errors import SignatureError
from detector.signatures import (
    ENV_SIGNATURES,
    SIGNATURE_FILES,
    default_directory,
    load_signatures,
)

BUNDLED = Path(__file__).resolve().parents[2] / "signatures"

# The dialect ids other packages rely on.
DIALECT_IDS = {
    "monero",
    "stratum-v1",
    "stratum-v1-zcash",
    "ethproxy",
    "ethereumstratum-1",
    "ethereumstratum-2",
    "kawpow",
    "getwork",
    "getblocktemplate",
    "webminer",
}

FALCO_MINER_PORTS = {
    25, 3333, 3334, 3335, 3336, 3357, 4444, 5555, 5556, 5588, 5730, 6099, 6666,
    7777, 7778, 8000, 8001, 8008, 8080, 8118, 8333, 8888, 8899, 9332, 9999,
    14433, 14444, 45560, 45700,
}  # fmt: skip


def test_bundled_files_load() -> None:
    signatures = load_signatures(BUNDLED)
    assert set(signatures.dialect_methods) == DIALECT_IDS
    assert signatures.files == tuple(str(BUNDLED / name) for name in SIGNATURE_FILES)
    assert len(signatures.agents) >= 22
    assert len(signatures.wallets) >= 7


def test_bundled_pool_ports() -> None:
    signatures = load_signatures(BUNDLED)
    assert FALCO_MINER_PORTS <= signatures.pool_ports
    assert {3333, 14444, 14433, 10128, 34254} <= signatures.pool_ports
    assert 30303 not in signatures.pool_ports
    assert signatures.ports[30303].kind == "node"
    assert "Bitcoin" in signatures.ports[8333].note


def test_bundled_dialect_directions() -> None:
    dialects = load_signatures(BUNDLED).dialect_methods
    assert dialects["monero"].to_server == {"login", "submit", "keepalived"}
    assert dialects["monero"].to_client == {"job"}
    assert "mining.set_target" in dialects["stratum-v1-zcash"].to_client
    assert "mining.set_target" not in dialects["stratum-v1"].to_client
    assert dialects["stratum-v1"].to_server <= dialects["stratum-v1-zcash"].to_server
    assert dialects["ethproxy"].to_client == frozenset()
    assert "EthereumStratum/1.0.0" in dialects["ethereumstratum-1"].markers
    assert dialects["webminer"].to_client == {"authed", "job", "hash_accepted"}


def test_default_directory_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "custom"
    shutil.copytree(BUNDLED, copy)
    monkeypatch.setenv(ENV_SIGNATURES, str(copy))
    assert default_directory() == copy
    assert load_signatures().files[0] == str(copy / "agents.yaml")


def test_default_directory_is_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_SIGNATURES, raising=False)
    assert default_directory() == BUNDLED


def copy_bundled(tmp_path: Path) -> Path:
    folder = tmp_path / "signatures"
    shutil.copytree(BUNDLED, folder)
    return folder


def edit(folder: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = folder / name
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(yaml.safe_dump(document), encoding="utf-8")


def load_error(folder: Path) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        load_signatures(folder)
    return caught.value


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


def append_copy(list_key: str, index: int) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        document[list_key].append(dict(document[list_key][index]))

    return change


@pytest.mark.parametrize(
    ("name", "change", "key", "words"),
    [
        (
            "agents.yaml",
            set_key(["agents", 3, "pattern"], "(unclosed"),
            "agents[3].pattern",
            "invalid regular expression",
        ),
        (
            "agents.yaml",
            set_key(["agents", 0, "colour"], "red"),
            "agents[0].colour",
            "unknown key",
        ),
        (
            "agents.yaml",
            delete_key(["agents", 2, "family"]),
            "agents[2].family",
            "missing required",
        ),
        (
            "agents.yaml",
            set_key(["agents", 1, "family"], 7),
            "agents[1].family",
            "expected a string, got int",
        ),
        (
            "agents.yaml",
            set_key(["agents", 1, "source"], "  "),
            "agents[1].source",
            "empty string",
        ),
        ("agents.yaml", set_key(["agents"], []), "agents", "empty list"),
        (
            "agents.yaml",
            set_key(["agents"], {"id": "x"}),
            "agents",
            "expected a list, got dict",
        ),
        (
            "agents.yaml",
            set_key(["agents", 4], "xmrig"),
            "agents[4]",
            "expected a mapping, got str",
        ),
        (
            "agents.yaml",
            append_copy("agents", 0),
            "agents[24].id",
            "duplicate id 'xmrig-proxy'",
        ),
        ("agents.yaml", set_key(["miners"], []), "miners", "unknown key"),
        ("agents.yaml", delete_key(["agents"]), "agents", "missing required"),
        (
            "dialects.yaml",
            set_key(["dialects", 0, "to_server"], []),
            "dialects[0].to_server",
            "empty list",
        ),
        (
            "dialects.yaml",
            set_key(["dialects", 0, "to_client"], "job"),
            "dialects[0].to_client",
            "expected a list of strings, got str",
        ),
        (
            "dialects.yaml",
            set_key(["dialects", 1, "to_server", 2], 3),
            "dialects[1].to_server[2]",
            "expected a string, got int",
        ),
        (
            "dialects.yaml",
            set_key(["dialects", 0, "to_server"], ["login", "login"]),
            "dialects[0].to_server[1]",
            "duplicate value 'login'",
        ),
        (
            "dialects.yaml",
            append_copy("dialects", 2),
            "dialects[10].id",
            "duplicate id 'stratum-v1-zcash'",
        ),
        (
            "dialects.yaml",
            set_key(["dialects", 0, "direction"], "up"),
            "dialects[0].direction",
            "unknown key",
        ),
        (
            "wallets.yaml",
            set_key(["wallets", 0, "pattern"], "[0-9"),
            "wallets[0].pattern",
            "invalid regular expression",
        ),
        (
            "wallets.yaml",
            set_key(["login_separators"], [".", "--"]),
            "login_separators[1]",
            "not one character",
        ),
        (
            "wallets.yaml",
            set_key(["login_separators"], []),
            "login_separators",
            "empty list",
        ),
        (
            "wallets.yaml",
            delete_key(["login_separators"]),
            "login_separators",
            "missing required",
        ),
        (
            "wallets.yaml",
            append_copy("wallets", 7),
            "wallets[8].id",
            "duplicate id 'ravencoin'",
        ),
        (
            "ports.yaml",
            set_key(["ports", 0, "port"], 70000),
            "ports[0].port",
            "port 70000 out of range",
        ),
        (
            "ports.yaml",
            set_key(["ports", 0, "port"], 0),
            "ports[0].port",
            "port 0 out of range",
        ),
        (
            "ports.yaml",
            set_key(["ports", 0, "port"], "3333"),
            "ports[0].port",
            "expected a port number, got str",
        ),
        (
            "ports.yaml",
            set_key(["ports", 0, "port"], True),
            "ports[0].port",
            "expected a port number, got bool",
        ),
        (
            "ports.yaml",
            set_key(["ports", 0, "kind"], "miner"),
            "ports[0].kind",
            "unknown kind 'miner'",
        ),
        (
            "ports.yaml",
            set_key(["ports", 2, "port"], 3333),
            "ports[2].port",
            "duplicate port 3333",
        ),
    ],
)
def test_invalid_value_names_file_and_key(
    tmp_path: Path,
    name: str,
    change: Callable[[dict[str, Any]], None],
    key: str,
    words: str,
) -> None:
    folder = copy_bundled(tmp_path)
    edit(folder, name, change)
    error = load_error(folder)
    assert error.source == str(folder / name)
    assert error.key == key
    assert words in error.reason
    assert str(folder / name) in str(error)
    assert key in str(error)


@pytest.mark.parametrize("name", SIGNATURE_FILES)
def test_missing_file_raises(tmp_path: Path, name: str) -> None:
    folder = copy_bundled(tmp_path)
    (folder / name).unlink()
    error = load_error(folder)
    assert error.source == str(folder / name)
    assert "file not found" in error.reason


def test_missing_folder_raises(tmp_path: Path) -> None:
    error = load_error(tmp_path / "nowhere")
    assert "file not found" in error.reason


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("agents: [\n  - id: x\n", "invalid YAML"),
        ("- just\n- a list\n", "expected a mapping at the top level, got list"),
        ("", "expected a mapping at the top level, got nothing"),
        ("agents: !!python/object:os.system {}\n", "invalid YAML"),
    ],
)
def test_unparsable_file_raises(tmp_path: Path, text: str, words: str) -> None:
    folder = copy_bundled(tmp_path)
    (folder / "agents.yaml").write_text(text, encoding="utf-8")
    error = load_error(folder)
    assert error.source == str(folder / "agents.yaml")
    assert error.key == "(document)"
    assert words in error.reason


def test_invalid_utf8_file_raises(tmp_path: Path) -> None:
    folder = copy_bundled(tmp_path)
    (folder / "ports.yaml").write_bytes(b"ports:\n  - port: \xff\n")
    error = load_error(folder)
    assert error.source == str(folder / "ports.yaml")
    assert "cannot read file" in error.reason


def test_yaml_error_names_line(tmp_path: Path) -> None:
    folder = copy_bundled(tmp_path)
    (folder / "wallets.yaml").write_text("wallets:\n  - id: [\n", encoding="utf-8")
    error = load_error(folder)
    assert "line 3" in error.reason


def test_unknown_agent_dialect_rejected(tmp_path: Path) -> None:
    folder = copy_bundled(tmp_path)
    edit(folder, "agents.yaml", set_key(["agents", 0, "dialect"], "stratum-v9"))
    error = load_error(folder)
    assert error.key == "agents[0].dialect"
    assert "unknown dialect 'stratum-v9'" in str(error)
    assert "monero" in str(error)


def test_agent_dialect_is_loaded(tmp_path: Path) -> None:
    signatures = load_signatures(BUNDLED)
    match = signatures.match_agent("cgminer/4.12.1")
    assert match is not None
    assert match.dialect == "stratum-v1"
    sgminer = signatures.match_agent("sgminer/5.6.1")
    assert sgminer is not None
    assert sgminer.dialect is None
