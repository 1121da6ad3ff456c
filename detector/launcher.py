"""The ``detector`` command's entry point, light enough to run at once.

Importing the command line takes most of a second (pandas, numpy, the
engine). A service manager may send ``detector watch`` SIGTERM or SIGHUP in
that time, whose default action would end the process. For ``watch`` the
launcher first keeps those signals in :data:`early_signals`; the watch acts
on them once it runs. Other commands keep the default handlers.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

# Signals a watch received before it could handle them, in order.
early_signals: list[int] = []

HELD_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _hold(signum: int, frame: FrameType | None) -> None:
    early_signals.append(signum)


def hold_signals() -> None:
    """Keep SIGTERM, SIGINT and SIGHUP in :data:`early_signals` from now on."""
    for number in HELD_SIGNALS:
        signal.signal(number, _hold)


def run() -> None:
    """Import the command line, the slow part, and run it."""
    from detector.cli import main as run_command_line

    run_command_line()


def main() -> None:
    """Run the command line; the console script's entry point."""
    if sys.argv[1:2] == ["watch"]:
        hold_signals()
    run()
