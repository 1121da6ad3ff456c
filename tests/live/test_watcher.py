"""The watch loop's parts that need no capture: reloads, logging, stopping."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import pytest

from detector.live.metrics import WatchMetrics
from detector.live.watch import RateLimitedLog, Watcher, WatchOptions
from detector.signatures import default_directory


class Collected:
    def __init__(self) -> None:
        self.documents: list[dict] = []
        self.closed = False

    def emit(self, document: dict) -> None:
        self.documents.append(document)

    def close(self) -> None:
        self.closed = True


def copy_signatures(tmp_path: Path) -> Path:
    folder = tmp_path / "signatures"
    shutil.copytree(default_directory(), folder)
    return folder


def reload_count(metrics: WatchMetrics, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "detector_reloads_total", {"result": result}
    )
    return value or 0.0


def test_broken_reload_keeps_signatures(tmp_path, caplog) -> None:
    folder = copy_signatures(tmp_path)
    metrics = WatchMetrics()
    watcher = Watcher(WatchOptions(signatures_dir=folder), [Collected()], metrics)
    before = watcher.signatures
    (folder / "agents.yaml").write_text("agents: [unclosed\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        watcher._reload_now()
    assert watcher.signatures is before
    assert "agents.yaml" in caplog.text
    assert reload_count(metrics, "failed") == 1
    assert reload_count(metrics, "ok") == 0


def test_reload_replaces_signatures(tmp_path) -> None:
    folder = copy_signatures(tmp_path)
    metrics = WatchMetrics()
    watcher = Watcher(WatchOptions(signatures_dir=folder), [Collected()], metrics)
    ports = folder / "ports.yaml"
    assert 3333 in watcher.signatures.pool_ports
    ports.write_text(
        ports.read_text(encoding="utf-8").replace("port: 3333", "port: 3393"),
        encoding="utf-8",
    )
    watcher._reload_now()
    assert 3333 not in watcher.signatures.pool_ports
    assert 3393 in watcher.signatures.pool_ports
    assert reload_count(metrics, "ok") == 1


def test_missing_inventory_raises(tmp_path) -> None:
    from detector.errors import DetectorError

    options = WatchOptions(inventory_path=tmp_path / "absent.yaml")
    with pytest.raises(DetectorError, match="absent.yaml"):
        Watcher(options, [Collected()])


def test_idle_watch_stops_cleanly(tmp_path, caplog) -> None:
    output = Collected()
    options = WatchOptions(interfaces=("nosuchif*",), rescan_interval=0.1)
    watcher = Watcher(options, [output], WatchMetrics())
    timer = threading.Timer(0.5, watcher.stop)
    timer.start()
    with caplog.at_level(logging.INFO):
        watcher.run()
    timer.join()
    assert output.closed
    assert "no interface matches nosuchif*" in caplog.text
    assert "watch stopped" in caplog.text
    assert watcher.healthy()


def test_rate_limited_log_counts_drops(caplog) -> None:
    limited = RateLimitedLog(logging.getLogger("test.limited"))
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            limited(logging.WARNING, "same", "the same failure")
        limited(logging.WARNING, "other", "another failure")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["the same failure", "another failure"]
    assert limited._suppressed == {"same": 4}
