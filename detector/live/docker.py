"""Follow a Docker Engine while a watch runs, so alerts name containers
started after the watch.

:class:`DockerFollower` takes a snapshot of the daemon's containers, then
applies its events in a background thread. Lookups from the capture loop
take no lock: a lookup reads lists that the thread appends to, which CPython
keeps consistent. Dropping old history rebuilds those lists, so it holds the
lock the thread applies events under.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from docker import DockerClient

from detector.attribution import Inventory, InventoryError
from detector.attribution.docker_engine import DockerProvider, connect

log = logging.getLogger(__name__)

# History kept: bindings that ended longer ago than this are dropped. Every
# flow a watch reports began at most an absolute timeout (an hour) plus an
# idle timeout before the report, so a day leaves a wide margin.
HISTORY_SECONDS = 86400.0

# Seconds before following again after the events stream failed (dockerd
# restarted, say). Events missed meanwhile are replayed from where the
# inventory's history ends, as far as the daemon still keeps them.
RETRY_SECONDS = 5.0


class _LockedProvider(DockerProvider):
    """A provider that applies each event under ``lock``."""

    def __init__(self, client: DockerClient, lock: threading.Lock) -> None:
        super().__init__(client)
        self.lock = lock

    def apply_event(self, event: Mapping[str, Any]) -> bool:
        with self.lock:
            return super().apply_event(event)


class DockerFollower:
    """An inventory of one Docker daemon, kept current from its events.

    Raises:
        InventoryError: from :meth:`start`, when the daemon cannot be reached
            or listed.
    """

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._provider: DockerProvider | None = None
        self._following = threading.Event()
        self._lock = threading.Lock()

    @property
    def following(self) -> bool:
        """Whether the events stream is being read now."""
        return self._following.is_set()

    @property
    def inventory(self) -> Inventory | None:
        return self._provider.inventory if self._provider is not None else None

    def start(self) -> None:
        """Snapshot the daemon, then follow its events in a thread."""
        client = connect(self.socket_path)
        provider = _LockedProvider(client, self._lock)
        since = provider.snapshot()
        self._provider = provider
        log.info(
            "following Docker at %s: %d containers",
            self.socket_path,
            len(provider.inventory),
        )
        self._thread = threading.Thread(
            target=self._follow, args=(since,), name="docker-events", daemon=True
        )
        self._thread.start()

    def current(self, now: float) -> Inventory | None:
        """Return the inventory, its history marked complete up to ``now``
        while the events stream is being read (no event means no change)."""
        provider = self._provider
        if provider is None:
            return None
        if self._following.is_set():
            provider.inventory.mark_covered(now)
        return provider.inventory

    def forget_old(self, now: float) -> int:
        """Drop the history that ended HISTORY_SECONDS before ``now``; return
        the number of bindings dropped."""
        provider = self._provider
        if provider is None:
            return 0
        with self._lock:
            return provider.inventory.forget_ended(now - HISTORY_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=RETRY_SECONDS + 5.0)
        if self._provider is not None:
            self._provider.client.close()

    def _follow(self, since: float) -> None:
        provider = self._provider
        assert provider is not None
        while not self._stop.is_set():
            self._following.set()
            try:
                provider.follow(since=since, stop=self._stop)
            except InventoryError as exc:
                log.error(
                    "Docker events: %s; trying again in %.0f s", exc, RETRY_SECONDS
                )
            finally:
                self._following.clear()
            if self._stop.wait(RETRY_SECONDS):
                return
            covered = provider.inventory.covered_until
            since = covered if covered is not None else time.time()
