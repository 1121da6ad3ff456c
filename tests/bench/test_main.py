"""The benchmark's command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from detector.bench.__main__ import EXIT_FAILURE, EXIT_OK, main
from detector.bench.generate import EMPTY_NAME, EXPECTED_NAME, FLOOD_NAME, MIXED_NAME
from detector.bench.measure import GNU_TIME


def test_generate_writes_every_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outdir = tmp_path / "new"
    code = main(
        [
            "generate",
            str(outdir),
            "--packets",
            "3000",
            "--flood-flows",
            "50",
            "--mining-flows",
            "6",
        ]
    )
    assert code == EXIT_OK
    for name in (MIXED_NAME, EXPECTED_NAME, FLOOD_NAME, EMPTY_NAME):
        assert (outdir / name).is_file(), name
    output = capsys.readouterr().out
    assert "wrote 3000 packets" in output
    assert "6 mining flows" in output
    assert "flood of 50 SYNs" in output


def test_generate_too_small(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["generate", str(tmp_path), "--packets", "10"])
    assert code == EXIT_FAILURE
    assert "error: 10 packets leave no room" in capsys.readouterr().err


def test_zero_packets_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", str(tmp_path), "--packets", "0"])
    assert exit_info.value.code == 2


def test_run_without_captures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "page.md"
    code = main(["run", "--workdir", str(tmp_path), "--output", str(output)])
    assert code == EXIT_FAILURE
    error = capsys.readouterr().err
    assert "mixed-1m.pcap not found" in error
    assert "python -m detector.bench generate" in error
    assert not output.exists()


@pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in ("ndpiReader", "tshark", GNU_TIME)),
    reason="needs ndpiReader, tshark and /usr/bin/time (make bench-tools)",
)
def test_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workdir = tmp_path / "bench"
    arguments = ["--packets", "3000", "--flood-flows", "200", "--mining-flows", "6"]
    assert main(["generate", str(workdir), *arguments]) == EXIT_OK
    page = tmp_path / "docs" / "benchmarks.md"
    code = main(
        ["run", "--workdir", str(workdir), "--rounds", "1", "--output", str(page)]
    )
    assert code == EXIT_OK, capsys.readouterr().err
    text = page.read_text(encoding="utf-8")
    assert "The capture holds 6 mining flows. The detector wrote 6 detections" in text
    assert "6 of the expected flows with the expected dialect, and 0 others" in text
    assert "it tracked 200 flows" in text
    assert "Top functions by self time" in text
    results = json.loads((workdir / "results" / "results.json").read_text())
    assert results["detections"]["detector_matched"] == 6
    assert len(results["mixed_tools"]) == 3
