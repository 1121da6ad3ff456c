"""Fixtures of the attribution tests: a real Docker engine in its own namespace.

The engine itself lives in :mod:`tests.docker_lab`, shared with the live
tests, so one dockerd serves both in a session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.docker_lab import DockerEngine, shared_docker_engine


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory) -> Iterator[DockerEngine]:
    with shared_docker_engine(tmp_path_factory) as engine:
        yield engine
