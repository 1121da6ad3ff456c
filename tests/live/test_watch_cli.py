"""`detector watch` refusing to start, with the reason, before it captures."""

from __future__ import annotations

import socket

from typer.testing import CliRunner

from detector.cli import EXIT_ERROR, app


def watch(*args: str):
    return CliRunner().invoke(app, ["watch", *args])


def test_unknown_confidence_is_rejected() -> None:
    result = watch("--min-confidence", "certain")
    assert result.exit_code == EXIT_ERROR
    assert "unknown confidence 'certain'" in result.output


def test_bad_syslog_address_rejected() -> None:
    result = watch("--syslog", "ftp://192.0.2.1:514")
    assert result.exit_code == EXIT_ERROR
    assert "udp://HOST:PORT" in result.output


def test_metrics_port_in_use_is_rejected() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        port = listener.getsockname()[1]
        result = watch("--metrics-port", str(port), "-i", "nosuchif0")
    finally:
        listener.close()
    assert result.exit_code == EXIT_ERROR
    assert str(port) in result.output


def test_broken_signatures_are_rejected(tmp_path) -> None:
    (tmp_path / "agents.yaml").write_text("agents: [", encoding="utf-8")
    result = watch("--signatures", str(tmp_path))
    assert result.exit_code == EXIT_ERROR
    assert "agents.yaml" in result.output


def test_unwritable_output_is_rejected(tmp_path) -> None:
    result = watch("--output", str(tmp_path / "missing" / "alerts.jsonl"))
    assert result.exit_code == EXIT_ERROR
    assert "cannot open" in result.output


def test_missing_inventory_is_rejected(tmp_path) -> None:
    result = watch("--inventory", str(tmp_path / "absent.yaml"))
    assert result.exit_code == EXIT_ERROR
    assert "absent.yaml" in result.output


def test_bad_filter_rejected() -> None:
    result = watch("--filter", "tcp port", "-i", "nosuchif0")
    assert result.exit_code == EXIT_ERROR
    assert "'tcp port' does not compile" in result.output
