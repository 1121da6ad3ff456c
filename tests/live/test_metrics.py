"""Watch metrics and the HTTP server that exposes them, over real HTTP."""

from __future__ import annotations

import logging
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from detector.errors import DetectorError
from detector.live.metrics import MetricsServer, WatchMetrics
from detector.model import Confidence

TIMEOUT = 5.0

CONTRACT_FAMILIES = {
    "detector_packets": "counter",
    "detector_bytes": "counter",
    "detector_kernel_drops": "counter",
    "detector_interface_drops": "counter",
    "detector_interfaces": "gauge",
    "detector_flows_tracked": "gauge",
    "detector_flows_inspected": "counter",
    "detector_detections": "counter",
    "detector_alerts": "counter",
    "detector_decode_errors": "counter",
    "detector_reloads": "counter",
}


def fetch(url: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url)
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body = response.read().decode("utf-8")
            return response.status, response.headers["Content-Type"], body
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse the text format into {(sample name, sorted labels): value}."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            values[key] = sample.value
    return values


def value(text: str, name: str, **labels: str) -> float:
    return samples(text)[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def served():
    metrics = WatchMetrics()
    health = {"ok": True}
    server = MetricsServer("127.0.0.1", 0, metrics, lambda: health["ok"])
    server.start()
    yield metrics, server, health
    server.stop()


def scrape(server: MetricsServer) -> str:
    status, content_type, body = fetch(f"http://127.0.0.1:{server.port}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    return body


def test_contract_names_and_types(served):
    metrics, server, _ = served
    metrics.count_packets("br-1", 1, 60)
    metrics.set_kernel_drops("br-1", 0, 0)
    metrics.count_decode_errors("ipv4", 1)
    families = {
        family.name: family.type
        for family in text_string_to_metric_families(scrape(server))
    }
    for name, kind in CONTRACT_FAMILIES.items():
        assert families.get(name) == kind, name


def test_label_values_start_at_zero(served):
    _, server, _ = served
    body = scrape(server)
    for confidence in ("high", "medium", "low"):
        assert value(body, "detector_detections_total", confidence=confidence) == 0
    for action in ("mining-detected", "mining-updated"):
        assert value(body, "detector_alerts_total", action=action) == 0
    for result in ("ok", "failed"):
        assert value(body, "detector_reloads_total", result=result) == 0


def test_counts_move(served):
    metrics, server, _ = served
    metrics.count_packets("br-1", 10, 1500)
    metrics.count_packets("br-1", 5, 300)
    metrics.count_packets("docker0", 2, 120)
    metrics.set_interfaces(2)
    metrics.set_flows_tracked(7)
    metrics.count_inspected(3)
    metrics.count_inspected()
    metrics.count_detection(Confidence.HIGH)
    metrics.count_detection("medium")
    metrics.count_alert("mining-detected")
    metrics.count_alert("mining-updated")
    metrics.count_alert("mining-updated")
    metrics.count_decode_errors("tcp", 4)
    metrics.count_reload(True)
    metrics.count_reload(False)
    metrics.count_reload(False)
    body = scrape(server)
    assert value(body, "detector_packets_total", interface="br-1") == 15
    assert value(body, "detector_bytes_total", interface="br-1") == 1800
    assert value(body, "detector_packets_total", interface="docker0") == 2
    assert value(body, "detector_interfaces") == 2
    assert value(body, "detector_flows_tracked") == 7
    assert value(body, "detector_flows_inspected_total") == 4
    assert value(body, "detector_detections_total", confidence="high") == 1
    assert value(body, "detector_detections_total", confidence="medium") == 1
    assert value(body, "detector_detections_total", confidence="low") == 0
    assert value(body, "detector_alerts_total", action="mining-detected") == 1
    assert value(body, "detector_alerts_total", action="mining-updated") == 2
    assert value(body, "detector_decode_errors_total", kind="tcp") == 4
    assert value(body, "detector_reloads_total", result="ok") == 1
    assert value(body, "detector_reloads_total", result="failed") == 2


def test_drops_count_increases(served):
    metrics, server, _ = served
    metrics.set_kernel_drops("br-1", 5, 1)
    metrics.set_kernel_drops("br-1", 12, 1)
    metrics.set_kernel_drops("br-1", 12, 4)
    body = scrape(server)
    assert value(body, "detector_kernel_drops_total", interface="br-1") == 12
    assert value(body, "detector_interface_drops_total", interface="br-1") == 4


def test_drops_after_restart_without_forget(served):
    metrics, server, _ = served
    metrics.set_kernel_drops("br-1", 100, 10)
    metrics.set_kernel_drops("br-1", 3, 1)
    body = scrape(server)
    assert value(body, "detector_kernel_drops_total", interface="br-1") == 103
    assert value(body, "detector_interface_drops_total", interface="br-1") == 11


def test_forget_interface_keeps_counters(served):
    metrics, server, _ = served
    metrics.count_packets("br-1", 9, 900)
    metrics.set_kernel_drops("br-1", 3, 0)
    metrics.forget_interface("br-1")
    body = scrape(server)
    assert value(body, "detector_packets_total", interface="br-1") == 9
    assert value(body, "detector_kernel_drops_total", interface="br-1") == 3
    # The reopened handle counts from 0: 5 is all new, even though it is more
    # than the old total of 3.
    metrics.set_kernel_drops("br-1", 5, 0)
    body = scrape(server)
    assert value(body, "detector_kernel_drops_total", interface="br-1") == 8


def test_interfaces_kept_apart(served):
    metrics, server, _ = served
    metrics.set_kernel_drops("br-1", 4, 0)
    metrics.set_kernel_drops("br-2", 1, 0)
    metrics.set_kernel_drops("br-1", 6, 0)
    body = scrape(server)
    assert value(body, "detector_kernel_drops_total", interface="br-1") == 6
    assert value(body, "detector_kernel_drops_total", interface="br-2") == 1


def test_negative_count_raises():
    metrics = WatchMetrics()
    with pytest.raises(ValueError):
        metrics.count_packets("br-1", -1, 0)


def test_registries_are_separate():
    first = WatchMetrics()
    second = WatchMetrics()
    first.count_inspected(5)
    name = "detector_flows_inspected_total"
    assert first.registry.get_sample_value(name) == 5
    assert second.registry.get_sample_value(name) == 0


def test_healthz_follows_callback(served):
    _, server, health = served
    url = f"http://127.0.0.1:{server.port}/healthz"
    assert fetch(url)[0] == 200
    assert fetch(url)[2] == "ok\n"
    health["ok"] = False
    status, _, body = fetch(url)
    assert status == 503
    assert "stalled" in body
    health["ok"] = True
    assert fetch(url)[0] == 200


def test_unknown_path_is_404(served):
    _, server, _ = served
    assert fetch(f"http://127.0.0.1:{server.port}/")[0] == 404
    assert fetch(f"http://127.0.0.1:{server.port}/metricsx")[0] == 404


def test_metrics_query_string_ignored(served):
    metrics, server, _ = served
    metrics.set_flows_tracked(3)
    status, _, body = fetch(f"http://127.0.0.1:{server.port}/metrics?x=1")
    assert status == 200
    assert value(body, "detector_flows_tracked") == 3


def test_openmetrics_on_request(served):
    _, server, _ = served
    status, content_type, body = fetch(
        f"http://127.0.0.1:{server.port}/metrics",
        accept="application/openmetrics-text; version=1.0.0",
    )
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")


def test_requests_logged_at_debug(served, caplog):
    _, server, _ = served
    caplog.set_level(logging.DEBUG, logger="detector.live.metrics")
    scrape(server)
    records = [r for r in caplog.records if "GET /metrics" in r.getMessage()]
    assert records
    assert all(record.levelno == logging.DEBUG for record in records)


def test_failing_health_callback_logged(caplog):
    def broken() -> bool:
        raise RuntimeError("loop state unreadable")

    server = MetricsServer("127.0.0.1", 0, WatchMetrics(), broken)
    server.start()
    try:
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            fetch(f"http://127.0.0.1:{server.port}/healthz")
        status, _, _ = fetch(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.stop()
    assert status == 200
    assert any("failed" in record.getMessage() for record in caplog.records)


def test_port_in_use_raises():
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    with taken:
        port = taken.getsockname()[1]
        server = MetricsServer("127.0.0.1", port, WatchMetrics(), lambda: True)
        with pytest.raises(DetectorError, match=str(port)):
            server.start()


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 support")
    server = MetricsServer("::1", 0, WatchMetrics(), lambda: True)
    try:
        server.start()
    except DetectorError as error:
        pytest.skip(f"IPv6 loopback unavailable: {error}")
    try:
        status, _, _ = fetch(f"http://[::1]:{server.port}/healthz")
    finally:
        server.stop()
    assert status == 200


def test_stop_closes_port():
    server = MetricsServer("127.0.0.1", 0, WatchMetrics(), lambda: True)
    server.start()
    port = server.port
    assert port != 0
    server.stop()
    server.stop()
    with pytest.raises(urllib.error.URLError):
        fetch(f"http://127.0.0.1:{port}/healthz")


def test_series_of_long_removed_interfaces_are_dropped(served):
    from detector.live.metrics import MAX_REMOVED_INTERFACES

    metrics, server, _ = served
    names = [f"br-{number:012x}" for number in range(MAX_REMOVED_INTERFACES + 2)]
    for name in names:
        metrics.count_packets(name, 1, 100)
        metrics.forget_interface(name)
    found = samples(scrape(server))
    for name in names[:2]:
        assert ("detector_packets_total", (("interface", name),)) not in found
    body = scrape(server)
    assert value(body, "detector_packets_total", interface=names[2]) == 1
    assert value(body, "detector_packets_total", interface=names[-1]) == 1


def test_write_errors_are_counted(served):
    metrics, server, _ = served
    metrics.count_write_error()
    metrics.count_write_error()
    assert value(scrape(server), "detector_alert_write_errors_total") == 2
