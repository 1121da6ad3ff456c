"""Fixtures shared by the test suite."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests check results, never time: with no deadline, a slow example on
# a loaded machine cannot fail a test that is otherwise correct.
settings.register_profile("detector", deadline=None)
settings.load_profile("detector")

# Hypothesis keeps its example database and caches under this folder; the
# suite writes only to temporary folders, so point it at one and remove it
# when the run ends.
if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
    _hypothesis_home = tempfile.mkdtemp(prefix="detector-hypothesis-")
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = _hypothesis_home
    atexit.register(shutil.rmtree, _hypothesis_home, ignore_errors=True)

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLES = REPOSITORY / "pcaps"


def real_pcaps_dir() -> Path:
    """Folder of third-party captures: $DETECTOR_REAL_PCAPS, else the folder
    beside the checkout that the project's CI provides."""
    configured = os.environ.get("DETECTOR_REAL_PCAPS")
    if configured:
        return Path(configured)
    return REPOSITORY.parent / "shared" / "pcaps-real"


@pytest.fixture(scope="session")
def real_pcaps() -> Path:
    folder = real_pcaps_dir()
    if not (folder / "manifest.csv").is_file():
        reason = (
            f"third-party captures not found in {folder}; set DETECTOR_REAL_PCAPS"
            " to the folder holding manifest.csv"
        )
        if os.environ.get("DETECTOR_REQUIRE_REAL_PCAPS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return folder


@pytest.fixture(scope="session")
def signatures():
    from detector.signatures import load_signatures

    return load_signatures()
