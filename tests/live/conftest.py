"""Fixtures of the live-capture tests: the namespace lab and a Docker engine.

The lab needs root and iproute2. Without them the tests skip, unless
DETECTOR_REQUIRE_NETNS=1, which makes them fail instead so that a CI run
cannot pass without them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from tests.attribution.netns import missing_requirements
from tests.docker_lab import DockerEngine, shared_docker_engine
from tests.live.lab import Lab

REQUIRE_NETNS = "DETECTOR_REQUIRE_NETNS"


def skip_or_fail(reason: str) -> None:
    """Skip the test, or fail it when DETECTOR_REQUIRE_NETNS=1."""
    if os.environ.get(REQUIRE_NETNS) == "1":
        pytest.fail(f"{REQUIRE_NETNS}=1 but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def open_lab() -> Iterator[Lab]:
    """Build an empty lab, or skip when this machine cannot; remove it after."""
    reason = missing_requirements("ip")
    if reason is not None:
        skip_or_fail(f"namespace lab: {reason}")
    built = Lab()
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def lab() -> Iterator[Lab]:
    with open_lab() as built:
        yield built


@pytest.fixture(scope="module")
def module_lab() -> Iterator[Lab]:
    with open_lab() as built:
        yield built


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory) -> Iterator[DockerEngine]:
    with shared_docker_engine(tmp_path_factory) as engine:
        yield engine
