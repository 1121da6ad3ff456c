"""RotatingFile: size-based rotation of a JSON lines file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from detector.model import Confidence, Detection, FlowCounters, FlowKey, MiningFields
from detector.sinks.rotating import RotatingFile
from detector.sinks.writers import JsonlWriter


def line(number: int, width: int = 10) -> str:
    """A line of exactly ``width`` bytes, newline included."""
    text = f"{number:0{width - 1}d}"
    assert len(text) == width - 1
    return text + "\n"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_appends_to_existing_file(tmp_path):
    path = tmp_path / "alerts.jsonl"
    path.write_text(line(1), encoding="utf-8")
    with RotatingFile(path, max_bytes=0, keep=3) as stream:
        stream.write(line(2))
    assert read(path) == line(1) + line(2)


def test_write_returns_characters(tmp_path):
    with RotatingFile(tmp_path / "a", max_bytes=0, keep=1) as stream:
        assert stream.write("é\n") == 2
        assert stream.write("") == 0


def test_rotates_before_overflowing_write(tmp_path):
    path = tmp_path / "alerts.jsonl"
    with RotatingFile(path, max_bytes=25, keep=2) as stream:
        stream.write(line(1))
        stream.write(line(2))
        stream.write(line(3))
    assert read(tmp_path / "alerts.jsonl.1") == line(1) + line(2)
    assert read(path) == line(3)


def test_file_may_reach_max_bytes_exactly(tmp_path):
    path = tmp_path / "alerts.jsonl"
    with RotatingFile(path, max_bytes=20, keep=2) as stream:
        stream.write(line(1))
        stream.write(line(2))
    assert read(path) == line(1) + line(2)
    assert not (tmp_path / "alerts.jsonl.1").exists()


def test_keeps_newest_backups(tmp_path):
    path = tmp_path / "alerts.jsonl"
    with RotatingFile(path, max_bytes=10, keep=2) as stream:
        for number in range(6):
            stream.write(line(number))
    assert read(path) == line(5)
    assert read(tmp_path / "alerts.jsonl.1") == line(4)
    assert read(tmp_path / "alerts.jsonl.2") == line(3)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [
        "alerts.jsonl",
        "alerts.jsonl.1",
        "alerts.jsonl.2",
    ]


def test_keep_zero_empties_file(tmp_path):
    path = tmp_path / "alerts.jsonl"
    with RotatingFile(path, max_bytes=15, keep=0) as stream:
        stream.write(line(1))
        stream.write(line(2))
        stream.write(line(3))
    assert read(path) == line(3)
    assert [entry.name for entry in tmp_path.iterdir()] == ["alerts.jsonl"]


def test_max_bytes_zero_never_rotates(tmp_path):
    path = tmp_path / "alerts.jsonl"
    with RotatingFile(path, max_bytes=0, keep=2) as stream:
        for number in range(100):
            stream.write(line(number))
    assert read(path) == "".join(line(number) for number in range(100))
    assert [entry.name for entry in tmp_path.iterdir()] == ["alerts.jsonl"]


def test_partial_writes_stay_in_one_file(tmp_path):
    path = tmp_path / "alerts.jsonl"
    with RotatingFile(path, max_bytes=12, keep=1) as stream:
        for part in ("abcd", "efgh", "ijkl", "mn\n"):
            stream.write(part)
        stream.write(line(2))
    assert read(tmp_path / "alerts.jsonl.1") == "abcdefghijklmn\n"
    assert read(path) == line(2)


def test_existing_partial_line_is_continued(tmp_path):
    path = tmp_path / "alerts.jsonl"
    path.write_text("0123456789", encoding="utf-8")
    with RotatingFile(path, max_bytes=10, keep=1) as stream:
        stream.write("end\n")
        stream.write(line(1))
    assert read(tmp_path / "alerts.jsonl.1") == "0123456789end\n"
    assert read(path) == line(1)


def test_existing_size_counts(tmp_path):
    path = tmp_path / "alerts.jsonl"
    path.write_text(line(1), encoding="utf-8")
    with RotatingFile(path, max_bytes=15, keep=1) as stream:
        stream.write(line(2))
    assert read(tmp_path / "alerts.jsonl.1") == line(1)
    assert read(path) == line(2)


def test_long_line_gets_own_file(tmp_path):
    path = tmp_path / "alerts.jsonl"
    long_line = "x" * 40 + "\n"
    with RotatingFile(path, max_bytes=20, keep=3) as stream:
        stream.write(line(1))
        stream.write(long_line)
        stream.write(line(2))
    assert read(tmp_path / "alerts.jsonl.2") == line(1)
    assert read(tmp_path / "alerts.jsonl.1") == long_line
    assert read(path) == line(2)


def test_size_counted_in_utf8_bytes(tmp_path):
    path = tmp_path / "alerts.jsonl"
    # Four characters but eight bytes: "é" takes two bytes, "€" three.
    text = "é€é\n"
    assert len(text.encode("utf-8")) == 8
    with RotatingFile(path, max_bytes=10, keep=1) as stream:
        stream.write(text)
        stream.write(text)
    assert read(tmp_path / "alerts.jsonl.1") == text
    assert read(path) == text


def test_lone_surrogate_raises_before_writing(tmp_path):
    path = tmp_path / "alerts.jsonl"
    with RotatingFile(path, max_bytes=0, keep=1) as stream:
        with pytest.raises(UnicodeEncodeError):
            stream.write("\ud800\n")
    assert read(path) == ""


def test_newlines_are_not_translated(tmp_path):
    path = tmp_path / "alerts.jsonl"
    with RotatingFile(path, max_bytes=0, keep=1) as stream:
        stream.write("a\r\nb\n")
    assert path.read_bytes() == b"a\r\nb\n"


def test_failed_rotation_still_writes(tmp_path):
    path = tmp_path / "alerts.jsonl"
    # A non-empty folder where the first backup goes makes the rename fail,
    # even for root.
    blocker = tmp_path / "alerts.jsonl.1"
    blocker.mkdir()
    (blocker / "file").write_text("x", encoding="utf-8")
    stream = RotatingFile(path, max_bytes=15, keep=1)
    stream.write(line(1))
    with pytest.raises(OSError):
        stream.write(line(2))
    assert read(path) == line(1) + line(2)
    (blocker / "file").unlink()
    blocker.rmdir()
    stream.write(line(3))
    stream.close()
    assert read(tmp_path / "alerts.jsonl.1") == line(1) + line(2)
    assert read(path) == line(3)


def test_failing_write_raises_oserror(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("/dev/full is missing")
    # /dev/full accepts the open and fails every write with ENOSPC.
    path = tmp_path / "full"
    path.symlink_to("/dev/full")
    stream = RotatingFile(path, max_bytes=0, keep=1)
    stream.write(line(1))
    with pytest.raises(OSError):
        stream.flush()


def test_unopenable_path_raises_oserror(tmp_path):
    with pytest.raises(OSError):
        RotatingFile(tmp_path / "missing" / "alerts.jsonl", max_bytes=0, keep=1)


def test_negative_limits_raise(tmp_path):
    with pytest.raises(ValueError):
        RotatingFile(tmp_path / "a", max_bytes=-1, keep=1)
    with pytest.raises(ValueError):
        RotatingFile(tmp_path / "a", max_bytes=1, keep=-1)


def test_closed_stream_raises(tmp_path):
    stream = RotatingFile(tmp_path / "a", max_bytes=0, keep=1)
    stream.close()
    stream.close()
    assert stream.closed
    with pytest.raises(ValueError):
        stream.write("x\n")
    with pytest.raises(ValueError):
        stream.flush()


def detection(number: int) -> Detection:
    return Detection(
        source="eth0",
        flow=FlowKey("tcp", "172.17.0.2", 40000 + number, "192.0.2.1", 3333),
        first_seen=1767225600.0 + number,
        last_seen=1767225660.0 + number,
        confidence=Confidence.HIGH,
        evidence=(),
        mining=MiningFields(dialect="monero"),
        counters=FlowCounters(),
    )


def test_serves_as_jsonl_writer_stream(tmp_path):
    path = tmp_path / "alerts.jsonl"
    stream = RotatingFile(path, max_bytes=4096, keep=20)
    writer = JsonlWriter(stream)
    for number in range(30):
        writer.write(detection(number))
    writer.close()
    stream.close()
    files = sorted(tmp_path.iterdir())
    assert len(files) > 2
    ports = []
    for file in files:
        assert file.stat().st_size <= 4096
        for text in read(file).splitlines():
            ports.append(json.loads(text)["source"]["port"])
    assert sorted(ports) == [40000 + number for number in range(30)]
    oldest_first = [tmp_path / f"alerts.jsonl.{index}" for index in range(20, 0, -1)]
    ordered = [file for file in oldest_first if file.exists()] + [path]
    in_order = [
        json.loads(text)["source"]["port"]
        for file in ordered
        for text in read(file).splitlines()
    ]
    assert in_order == [40000 + number for number in range(30)]
