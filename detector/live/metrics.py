"""Prometheus metrics of the live watch and the HTTP server that exposes them.

:class:`WatchMetrics` keeps the counters and gauges in a registry of its own,
never prometheus_client's global one, so two watches in one process (as in
tests) do not share values. :class:`MetricsServer` serves them at
``/metrics`` in the Prometheus text format and reports health at ``/healthz``.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import choose_encoder

from detector.errors import DetectorError
from detector.model import Confidence

logger = logging.getLogger(__name__)

ALERT_ACTIONS = ("mining-detected", "mining-updated")
RELOAD_RESULTS = ("ok", "failed")
DECODE_ERROR_KINDS = (
    "malformed_packets",
    "malformed_messages",
    "unsupported_packets",
    "stream_gaps",
    "internal",
)

# How often the server thread checks for a stop request. Shorter than the
# default 0.5 s so that stopping, at exit, waits less.
SHUTDOWN_POLL_SECONDS = 0.1

# Removed interfaces whose series are kept, so an interface that flaps keeps
# its totals. Beyond this many, the series of the longest-removed one are
# dropped: hosts where networks come and go would otherwise grow them forever.
MAX_REMOVED_INTERFACES = 64

HEALTHY_BODY = b"ok\n"
UNHEALTHY_BODY = b"capture loop stalled\n"


class WatchMetrics:
    """The metrics of one ``detector watch``, in their own registry.

    The capture loop calls the ``count_*`` and ``set_*`` methods from one
    thread. The metrics server reads the registry from its own threads, which
    prometheus_client's metrics allow.

    Raises:
        ValueError: from a ``count_*`` method given a negative number.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry

        self.packets = Counter(
            "detector_packets_total",
            "Packets captured, by interface.",
            ["interface"],
            registry=registry,
        )

        self.bytes = Counter(
            "detector_bytes_total",
            "Bytes captured (captured length, not wire length), by interface.",
            ["interface"],
            registry=registry,
        )

        self.kernel_drops = Counter(
            "detector_kernel_drops_total",
            "Packets the kernel dropped because the capture buffer was full.",
            ["interface"],
            registry=registry,
        )

        self.interface_drops = Counter(
            "detector_interface_drops_total",
            "Packets the network interface or its driver dropped.",
            ["interface"],
            registry=registry,
        )

        self.interfaces = Gauge(
            "detector_interfaces",
            "Interfaces being captured on.",
            registry=registry,
        )

        self.flows_tracked = Gauge(
            "detector_flows_tracked",
            "Flows in the flow table.",
            registry=registry,
        )

        self.flows_inspected = Counter(
            "detector_flows_inspected_total",
            "Flows whose payload went through the protocol decoders.",
            registry=registry,
        )

        self.detections = Counter(
            "detector_detections_total",
            "Detections, by confidence.",
            ["confidence"],
            registry=registry,
        )

        self.alerts = Counter(
            "detector_alerts_total",
            "Alerts written, by event.action.",
            ["action"],
            registry=registry,
        )

        self.write_errors = Counter(
            "detector_alert_write_errors_total",
            "Alerts an output failed to write (a full disk, a closed pipe).",
            registry=registry,
        )

        self.decode_errors = Counter(
            "detector_decode_errors_total",
            "Malformed packets or protocol messages skipped, by kind.",
            ["kind"],
            registry=registry,
        )

        self.reloads = Counter(
            "detector_reloads_total",
            "Reloads of signatures and inventory, by result.",
            ["result"],
            registry=registry,
        )

        # Label values known in advance start at 0, so a rate over them is
        # defined before the first event.
        for confidence in Confidence:
            self.detections.labels(confidence.label)
        for action in ALERT_ACTIONS:
            self.alerts.labels(action)
        for result in RELOAD_RESULTS:
            self.reloads.labels(result)
        for kind in DECODE_ERROR_KINDS:
            self.decode_errors.labels(kind)

        # The last running totals of libpcap's statistics, per interface:
        # (packets dropped by the kernel, packets dropped by the interface).
        self._drop_totals: dict[str, tuple[int, int]] = {}

        # Removed interfaces whose series remain, oldest removal first.
        self._removed: OrderedDict[str, None] = OrderedDict()

    def count_packets(self, interface: str, packets: int, byte_count: int) -> None:
        """Add captured packets and their captured bytes on ``interface``."""
        self._removed.pop(interface, None)
        self.packets.labels(interface).inc(packets)
        self.bytes.labels(interface).inc(byte_count)

    def set_kernel_drops(
        self, interface: str, drops: int, interface_drops: int
    ) -> None:
        """Record libpcap's running drop totals (``ps_drop``, ``ps_ifdrop``).

        The counters grow by the increase since the last call for the same
        interface. A total lower than the last one means the capture handle
        was reopened and counts from 0 again, so the whole new total is added.
        """
        last_drops, last_interface_drops = self._drop_totals.get(interface, (0, 0))
        self.kernel_drops.labels(interface).inc(_increase(last_drops, drops))
        self.interface_drops.labels(interface).inc(
            _increase(last_interface_drops, interface_drops)
        )
        self._drop_totals[interface] = (drops, interface_drops)

    def forget_interface(self, interface: str) -> None:
        """Reset the drop totals of an interface whose capture handle closed.

        Its counters stay, because Prometheus computes rates from totals that
        only grow. A handle opened again on the interface counts from 0. The
        series of at most MAX_REMOVED_INTERFACES removed interfaces are kept;
        older ones are dropped.
        """
        self._drop_totals.pop(interface, None)
        self._removed[interface] = None
        self._removed.move_to_end(interface)
        while len(self._removed) > MAX_REMOVED_INTERFACES:
            oldest, _ = self._removed.popitem(last=False)
            for counter in (
                self.packets,
                self.bytes,
                self.kernel_drops,
                self.interface_drops,
            ):
                try:
                    counter.remove(oldest)
                except KeyError:
                    pass

    def set_interfaces(self, count: int) -> None:
        self.interfaces.set(count)

    def set_flows_tracked(self, count: int) -> None:
        self.flows_tracked.set(count)

    def count_inspected(self, flows: int = 1) -> None:
        self.flows_inspected.inc(flows)

    def count_detection(self, confidence: Confidence | str) -> None:
        """Count one detection; ``confidence`` is a Confidence or its label."""
        label = confidence.label if isinstance(confidence, Confidence) else confidence
        self.detections.labels(label).inc()

    def count_alert(self, action: str) -> None:
        """Count one alert written with ``event.action`` ``action``."""
        self.alerts.labels(action).inc()

    def count_write_error(self) -> None:
        """Count one alert an output failed to write."""
        self.write_errors.inc()

    def count_decode_errors(self, kind: str, errors: int = 1) -> None:
        self.decode_errors.labels(kind).inc(errors)

    def count_reload(self, ok: bool) -> None:
        self.reloads.labels("ok" if ok else "failed").inc()


def _increase(last_total: int, total: int) -> int:
    # NOTE: libpcap keeps its totals in 32-bit unsigned integers. A total that
    # wraps past 2**32 looks like a reopened handle, so that increase is
    # undercounted.
    if total < last_total:
        return total
    return total - last_total


class MetricsServer:
    """An HTTP server for ``/metrics`` and ``/healthz``, in a daemon thread.

    ``GET /metrics`` returns the registry of ``metrics`` in the Prometheus text
    format, or in OpenMetrics when the request's ``Accept`` header lists it.
    ``GET /healthz`` returns 200 ``ok`` while ``healthy()`` returns True and
    503 otherwise. Other paths return 404. ``port`` 0 picks a free port, which
    the :attr:`port` property returns after :meth:`start`.

    Raises:
        DetectorError: from :meth:`start` when the address cannot be bound.
    """

    def __init__(
        self,
        address: str,
        port: int,
        metrics: WatchMetrics,
        healthy: Callable[[], bool],
    ) -> None:
        self.address = address
        self.requested_port = port
        self.metrics = metrics
        self.healthy = healthy
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port once started, else the requested one."""
        if self._server is None:
            return self.requested_port
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind the address and serve requests in a daemon thread.

        Raises:
            DetectorError: the address is invalid or the port is in use.
        """
        if self._server is not None:
            return
        server_class = _Server6 if ":" in self.address else _Server
        try:
            server = server_class((self.address, self.requested_port), _Handler)
        except OSError as error:
            raise DetectorError(
                f"binding the metrics server to {self.address} port"
                f" {self.requested_port} failed: {error}; choose another address"
                " or port"
            ) from error
        server.metrics = self.metrics
        server.healthy = self.healthy
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            args=(SHUTDOWN_POLL_SECONDS,),
            name="metrics-server",
            daemon=True,
        )
        self._thread.start()
        logger.info("serving metrics on %s port %d", self.address, self.port)

    def stop(self) -> None:
        """Stop serving and close the socket. Stopping twice does nothing."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = None
        self._thread = None
        logger.debug("metrics server on %s stopped", self.address)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    metrics: WatchMetrics
    healthy: Callable[[], bool]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to standard error. A failing request
        # goes to the log instead and the server keeps serving.
        logger.exception("metrics request from %s failed", client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._reply(200, encoder(self.server.metrics.registry), content_type)
        elif path == "/healthz":
            if self.server.healthy():
                self._reply(200, HEALTHY_BODY, "text/plain; charset=utf-8")
            else:
                self._reply(503, UNHEALTHY_BODY, "text/plain; charset=utf-8")
        else:
            self._reply(404, b"not found: use /metrics or /healthz\n", "text/plain")

    def log_message(self, format: str, *args: Any) -> None:
        # A scraper requests /metrics at every scrape interval, too often for
        # INFO lines.
        logger.debug(
            "metrics request from %s: " + format, self.client_address[0], *args
        )

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
