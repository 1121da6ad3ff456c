"""A text file for JSON lines that rotates by size, with logrotate's file names.

When the file is full, ``alerts.jsonl`` becomes ``alerts.jsonl.1``, the former
``.1`` becomes ``.2`` and so on up to ``.<keep>``, and the oldest is dropped.
:class:`logging.handlers.RotatingFileHandler` names its files the same way.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TextIO

ENCODING = "utf-8"


class RotatingFile(io.TextIOBase, TextIO):
    """An appending UTF-8 text stream that rotates before it grows past a size.

    ``max_bytes`` is the size in bytes a file may reach, and 0 turns rotation
    off. ``keep`` is the number of rotated files kept beside ``path``. With
    ``keep`` 0, a full file is emptied in place and written again from the
    start. A write that would take the file past ``max_bytes`` rotates first,
    but only when the file ends with a newline, so a line is never split across
    files. A single line longer than ``max_bytes`` is written whole to a file
    of its own.

    When rotating fails, the text is still written to the current file before
    the error is raised, so no line is lost. That file then grows past
    ``max_bytes`` until a later write rotates it successfully. If only the
    reopening of ``path`` failed, the current file has already been renamed to
    ``path.1`` and receives the text there.

    It can serve as the ``stream`` of :class:`detector.sinks.JsonlWriter`.

    Raises:
        OSError: from the constructor when ``path`` cannot be opened for
            appending, and from ``write`` or ``flush`` when writing or rotating
            fails.
        ValueError: ``max_bytes`` or ``keep`` is negative.
    """

    def __init__(self, path: str | os.PathLike[str], max_bytes: int, keep: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be 0 or more, not {max_bytes}")
        if keep < 0:
            raise ValueError(f"keep must be 0 or more, not {keep}")
        super().__init__()
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._file = self._open()
        self._size = os.fstat(self._file.fileno()).st_size
        # An existing file that does not end with a newline ends inside a
        # line, which the next write continues.
        self._at_line_start = self._size == 0 or self._ends_with_newline()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        """Append ``text``, rotating first when it would not fit.

        Returns the number of characters written, as ``TextIOBase.write``.

        Raises:
            OSError: writing or rotating failed. After a failed rotation the
                text has been written and flushed before the error is raised.
            ValueError: the stream is closed.
            UnicodeEncodeError: ``text`` contains a lone surrogate. Nothing of
                it is written.
        """
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if not text:
            return 0
        size = len(text.encode(ENCODING))
        if self._needs_rotation(size):
            try:
                self._rotate()
            except OSError:
                self._append(text, size)
                self._file.flush()
                raise
        self._append(text, size)
        return len(text)

    def flush(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        self._file.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()
        finally:
            self._file.close()

    def _open(self) -> io.TextIOWrapper:
        return open(self.path, "a", encoding=ENCODING, newline="\n")

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as existing:
            existing.seek(-1, os.SEEK_END)
            return existing.read(1) == b"\n"

    def _needs_rotation(self, size: int) -> bool:
        return (
            self.max_bytes > 0
            and self._size > 0
            and self._at_line_start
            and self._size + size > self.max_bytes
        )

    def _append(self, text: str, size: int) -> None:
        self._file.write(text)
        self._size += size
        self._at_line_start = text.endswith("\n")

    def _rotate(self) -> None:
        # Renaming the open file keeps the handle on it, so until the new file
        # is open every write still lands in a file and none is lost.
        self._file.flush()
        if not self.keep:
            # Nothing is kept, so the file is emptied in place and the handle
            # stays on ``path``.
            self._file.truncate(0)
            self._size = 0
            self._at_line_start = True
            return
        for index in range(self.keep - 1, 0, -1):
            _replace_if_present(self._backup(index), self._backup(index + 1))
        _replace_if_present(self.path, self._backup(1))
        new_file = self._open()
        old_file = self._file
        self._file = new_file
        self._size = 0
        self._at_line_start = True
        old_file.close()

    def _backup(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")


def _replace_if_present(source: Path, target: Path) -> None:
    # A backup number may be missing: fewer rotations than ``keep`` so far, or
    # a file removed by hand.
    try:
        os.replace(source, target)
    except FileNotFoundError:
        pass
