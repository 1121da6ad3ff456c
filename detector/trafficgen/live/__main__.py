"""Run the live peers' command line as ``python -m detector.trafficgen.live``."""

from __future__ import annotations

import sys

from detector.trafficgen.live.command import main

if __name__ == "__main__":
    sys.exit(main())
