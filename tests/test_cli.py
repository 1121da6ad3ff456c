"""The command line through typer's test runner: formats, exit codes, errors."""

from __future__ import annotations

import csv
import gzip
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detector.cli import EXIT_CLEAN, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_MINING, app

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLES = REPOSITORY / "pcaps"
MINING = SAMPLES / "monero-xmrig.pcap"
NEGATIVE = SAMPLES / "negative-http-get.pcap"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(runner: CliRunner, *args: str, stdin: bytes | None = None):
    return runner.invoke(app, list(args), input=stdin)


def test_scan_mining_jsonl(runner):
    result = run(runner, "scan", "--format", "jsonl", str(MINING))
    assert result.exit_code == EXIT_MINING, result.output
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(documents) == 1
    document = documents[0]
    assert document["event"]["kind"] == "alert"
    assert document["mining"]["dialect"] == "monero"
    assert document["destination"]["port"] == 3333
    assert document["network"]["community_id"].startswith("1:")
    assert document["mining"]["evidence"]


def test_scan_negative_exit_clean(runner):
    result = run(runner, "scan", "--format", "jsonl", str(NEGATIVE))
    assert result.exit_code == EXIT_CLEAN, result.output
    assert result.stdout == ""


def test_scan_csv(runner):
    result = run(runner, "scan", "--format", "csv", str(MINING))
    assert result.exit_code == EXIT_MINING
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 1
    assert rows[0]["mining.dialect"] == "monero"
    assert rows[0]["destination.port"] == "3333"


def test_scan_table(runner):
    result = run(runner, "scan", "--format", "table", str(MINING))
    assert result.exit_code == EXIT_MINING
    assert "monero" in result.stdout
    assert "Mining flows" in result.stdout


def test_output_file_by_suffix(runner, tmp_path):
    target = tmp_path / "alerts.csv"
    result = run(runner, "scan", "--output", str(target), str(MINING))
    assert result.exit_code == EXIT_MINING
    assert target.read_text().startswith("@timestamp,")


def test_redact_wallets(runner):
    plain = run(runner, "scan", "--format", "jsonl", str(MINING))
    wallet = json.loads(plain.stdout)["mining"]["wallet"]
    assert wallet
    redacted = run(runner, "scan", "--format", "jsonl", "--redact-wallets", str(MINING))
    assert wallet not in redacted.stdout
    document = json.loads(redacted.stdout)
    assert document["mining"]["wallet"] == wallet[:4] + "..." + wallet[-4:]


def test_summary_on_stderr(runner):
    result = run(runner, "scan", "--format", "jsonl", str(MINING))
    assert "1 mining detection" in result.stderr
    assert "malformed packets skipped" in result.stderr


def test_stdin(runner):
    result = run(runner, "scan", "--format", "jsonl", "-", stdin=MINING.read_bytes())
    assert result.exit_code == EXIT_MINING
    assert json.loads(result.stdout)["mining"]["dialect"] == "monero"


def test_missing_file_exit_error(runner, tmp_path):
    result = run(runner, "scan", "--format", "jsonl", str(tmp_path / "absent.pcap"))
    assert result.exit_code == EXIT_ERROR
    assert "absent.pcap" in result.stderr


def test_bad_file_does_not_hide_others(runner, tmp_path):
    bad = tmp_path / "notes.pcap"
    bad.write_text("these are notes, not a capture\n")
    result = run(runner, "scan", "--format", "jsonl", str(bad), str(MINING))
    assert result.exit_code == EXIT_ERROR
    assert "notes.pcap" in result.stderr
    assert json.loads(result.stdout)["mining"]["dialect"] == "monero"


def test_truncated_keeps_earlier_results(runner, tmp_path):
    data = MINING.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-10])
    result = run(runner, "scan", "--format", "jsonl", str(cut))
    assert result.exit_code == EXIT_ERROR
    assert "at byte" in result.stderr
    assert json.loads(result.stdout)["mining"]["dialect"] == "monero"


def test_empty_file(runner, tmp_path):
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    result = run(runner, "scan", str(empty))
    assert result.exit_code == EXIT_ERROR
    assert "empty" in result.stderr


def test_directory_scan(runner, tmp_path):
    (tmp_path / "a.pcap").write_bytes(MINING.read_bytes())
    (tmp_path / "b.pcap.gz").write_bytes(gzip.compress(MINING.read_bytes(), mtime=0))
    (tmp_path / "readme.txt").write_text("not scanned")
    result = run(runner, "scan", "--format", "jsonl", str(tmp_path))
    assert result.exit_code == EXIT_MINING
    assert len(result.stdout.splitlines()) == 2


def test_unknown_format(runner):
    result = run(runner, "scan", "--format", "xml", str(MINING))
    assert result.exit_code == EXIT_ERROR
    assert "unknown format" in result.stderr


def test_signatures_check_ok(runner):
    result = run(runner, "signatures", "check")
    assert result.exit_code == 0
    assert "valid" in result.stdout


def test_signatures_check_bad(runner, tmp_path):
    for source in (Path(__file__).resolve().parents[1] / "signatures").glob("*.yaml"):
        (tmp_path / source.name).write_text(source.read_text())
    (tmp_path / "agents.yaml").write_text("agents: [{pattern: '(', family: x}]\n")
    result = run(runner, "signatures", "check", str(tmp_path))
    assert result.exit_code == EXIT_ERROR
    assert "agents.yaml" in result.stderr


def test_version(runner):
    result = run(runner, "--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("detector ")


def test_output_same_as_input_rejected(runner, tmp_path):
    capture = tmp_path / "capture.pcap"
    capture.write_bytes(MINING.read_bytes())
    result = run(runner, "scan", "--output", str(capture), str(capture))
    assert result.exit_code == EXIT_ERROR
    assert "choose another file" in result.stderr
    assert capture.read_bytes() == MINING.read_bytes()


def detector_command() -> list[str]:
    return [sys.executable, "-m", "detector"]


def test_closed_pipe_stops_quietly():
    scan = subprocess.Popen(
        [*detector_command(), "scan", "--format", "jsonl", str(SAMPLES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert scan.stdout is not None
    first = scan.stdout.readline()
    scan.stdout.close()
    _, errors = scan.communicate(timeout=60)
    assert json.loads(first)["event"]["kind"] == "alert"
    assert scan.returncode == EXIT_MINING
    assert b"Traceback" not in errors
    assert b"error" not in errors


def test_interrupt_writes_flows_read_so_far():
    # The capture arrives on a pipe that stays open, as from a live tcpdump;
    # Ctrl-C must still report the mining session already read.
    scan = subprocess.Popen(
        [*detector_command(), "scan", "--format", "jsonl", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert scan.stdin is not None
    scan.stdin.write(MINING.read_bytes())
    scan.stdin.flush()
    time.sleep(3)
    scan.send_signal(signal.SIGINT)
    output, errors = scan.communicate(timeout=60)
    assert scan.returncode == EXIT_INTERRUPTED, errors
    assert json.loads(output)["mining"]["dialect"] == "monero"
    assert b"interrupted" in errors


def test_signatures_import_adblock(runner, tmp_path):
    pools = tmp_path / "pools.yaml"
    pools.write_text((REPOSITORY / "signatures" / "pools.yaml").read_text())
    rules = tmp_path / "rules.txt"
    rules.write_text("! comment\n||newpool.example^\n||pool.supportxmr.com^\n##.ad\n")
    result = run(
        runner,
        "signatures",
        "import",
        "--format",
        "adblock",
        "--into",
        str(pools),
        "--coin",
        "monero",
        str(rules),
    )
    assert result.exit_code == 0, result.output
    assert "1 added" in result.stdout
    text = pools.read_text()
    assert "newpool.example" in text
    assert 'source: "rules.txt"' in text
    from detector.signatures import parse_pools

    index = parse_pools(text)
    match = index.match_domain("eu.newpool.example")
    assert match is not None
    assert match.coin == "monero"


def test_signatures_import_dry_run(runner, tmp_path):
    pools = tmp_path / "pools.yaml"
    original = (REPOSITORY / "signatures" / "pools.yaml").read_text()
    pools.write_text(original)
    rules = tmp_path / "list.txt"
    rules.write_text("another.example\n")
    result = run(
        runner,
        "signatures",
        "import",
        "--format",
        "domains",
        "--dry-run",
        "--into",
        str(pools),
        str(rules),
    )
    assert result.exit_code == 0
    assert "dry run" in result.stdout
    assert pools.read_text() == original


def test_signatures_import_ndpi_list(runner, tmp_path, real_pcaps):
    pools = tmp_path / "pools.yaml"
    pools.write_text((REPOSITORY / "signatures" / "pools.yaml").read_text())
    result = run(
        runner,
        "signatures",
        "import",
        "--format",
        "domains",
        "--kind",
        "webminer",
        "--into",
        str(pools),
        str(real_pcaps / "ndpi" / "mining_hosts.txt"),
    )
    assert result.exit_code == 0, result.output
    check = run(runner, "signatures", "check", str(REPOSITORY / "signatures"))
    assert check.exit_code == 0
    from detector.signatures import parse_pools

    index = parse_pools(pools.read_text())
    assert index.match_domain("coinhive.com") is not None
    assert index.match_domain("load.jsecoin.com") is not None
    assert index.match_domain("1.debian.pool.ntp.org") is None


def test_signatures_import_bad_format(runner, tmp_path):
    rules = tmp_path / "list.txt"
    rules.write_text("a.example\n")
    result = run(runner, "signatures", "import", "--format", "csv", str(rules))
    assert result.exit_code == EXIT_ERROR
    assert "unknown list format" in result.stderr


STATIC_INVENTORY = """\
containers:
  - id: abc123
    name: xmrig-web
    image: shop/web:1.4
    addresses:
      - address: 172.17.0.2
"""


def test_scan_with_static_inventory(runner, tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(STATIC_INVENTORY)
    result = run(
        runner,
        "scan",
        "--format",
        "jsonl",
        "--inventory",
        str(inventory),
        str(SAMPLES / "mixed-containers.pcap"),
    )
    assert result.exit_code == EXIT_MINING, result.output
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    by_client = {}
    for document in documents:
        by_client.setdefault(document["source"]["ip"], []).append(document)
    for document in by_client["172.17.0.2"]:
        assert document["container"]["name"] == "xmrig-web"
        assert document["container"]["image"]["name"] == "shop/web:1.4"
    for document in by_client["172.17.0.3"]:
        assert "container" not in document
        assert document["mining"]["attribution"]["reason"] == "address not in inventory"


def test_scan_without_inventory_says_why(runner):
    result = run(runner, "scan", "--format", "jsonl", str(MINING))
    document = json.loads(result.stdout)
    assert document["mining"]["attribution"]["status"] == "unattributed"
    assert document["mining"]["attribution"]["reason"] == "no inventory loaded"


def test_inventory_snapshot_round_trip(runner, tmp_path):
    static = tmp_path / "inventory.yaml"
    static.write_text(STATIC_INVENTORY)
    snapshot = tmp_path / "snapshot.json"
    saved = run(runner, "inventory", "--static", str(static), "--output", str(snapshot))
    assert saved.exit_code == 0, saved.output
    result = run(
        runner,
        "scan",
        "--format",
        "jsonl",
        "--inventory",
        str(snapshot),
        str(SAMPLES / "mixed-containers.pcap"),
    )
    names = {
        json.loads(line).get("container", {}).get("name")
        for line in result.stdout.splitlines()
    }
    assert "xmrig-web" in names


def test_inventory_needs_a_source(runner, tmp_path):
    result = run(runner, "inventory", "--output", str(tmp_path / "x.json"))
    assert result.exit_code == EXIT_ERROR
    assert "name at least one source" in result.stderr


def test_by_container_summary(runner, tmp_path):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(STATIC_INVENTORY)
    result = run(
        runner,
        "scan",
        "--format",
        "csv",
        "--by",
        "container",
        "--inventory",
        str(inventory),
        str(SAMPLES / "mixed-containers.pcap"),
    )
    assert result.exit_code == EXIT_MINING, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 2
    miner = next(row for row in rows if row["container.name"] == "xmrig-web")
    assert miner["pools"] == "pool.supportxmr.com"
    assert miner["dialects"] == "dns, monero"
    assert miner["flows"] == "2"
    other = next(row for row in rows if row["source.ip"] == "172.17.0.3")
    assert other["attribution"] == "address not in inventory"
