"""Import boundaries: scapy stays inside the generator, the detector never
imports the generator, and the message builders work without scapy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "detector"
TRAFFICGEN = PACKAGE / "trafficgen"
# The benchmark builds its captures from the generator's scapy-free message
# builders; like the generator it is a development tool, not part of a scan.
BENCH = PACKAGE / "bench"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_detector_does_not_import_generator_or_scapy() -> None:
    for path in PACKAGE.rglob("*.py"):
        if TRAFFICGEN in path.parents:
            continue
        for name in imported_modules(path):
            if BENCH not in path.parents:
                assert not name.startswith("detector.trafficgen"), path
            assert name.split(".")[0] != "scapy", path


def test_message_builders_do_not_import_scapy() -> None:
    for path in (TRAFFICGEN / "messages").glob("*.py"):
        for name in imported_modules(path):
            assert name.split(".")[0] != "scapy", path


def test_builders_load_without_scapy() -> None:
    # Block scapy in a fresh interpreter and import every builder module.
    code = (
        "import sys\n"
        "sys.modules['scapy'] = None\n"
        "import detector.trafficgen.wallets\n"
        "from detector.trafficgen.messages import ("
        "bitcoin_p2p, dns, ethproxy, ethstratum1, ethstratum2, getwork, http,"
        " jsonrpc, kawpow, levin, monero, stratum_v1, tls)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
