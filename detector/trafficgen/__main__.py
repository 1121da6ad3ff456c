"""Write every sample capture and its manifest to a folder.

Usage: ``python -m detector.trafficgen OUTDIR``.

``python -m detector.trafficgen live ...`` runs the real-socket peers of
:mod:`detector.trafficgen.live` instead, with the exit status described there.

Exit status: 0 on success, 2 for a usage error, a missing scapy, or a folder
that cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_FAILURE = 2


def main(argv: list[str] | None = None) -> int:
    arguments_given = sys.argv[1:] if argv is None else argv
    if arguments_given[:1] == ["live"]:
        # The live peers need no scapy, so they are imported on their own.
        from detector.trafficgen.live import main as live_main

        return live_main(arguments_given[1:])
    parser = argparse.ArgumentParser(
        prog="python -m detector.trafficgen",
        description="Write the bundled sample captures and manifest.yaml to OUTDIR."
        " The output is the same, byte for byte, on every run.",
    )
    parser.add_argument(
        "outdir", type=Path, help="folder to write (created if missing)"
    )
    arguments = parser.parse_args(argv)

    try:
        from detector.trafficgen.manifest import MANIFEST_NAME, render_manifest
        from detector.trafficgen.samples import build_samples
    except ImportError as error:
        print(
            f"error: cannot import the generator ({error});"
            " install scapy with `pip install .[gen]`",
            file=sys.stderr,
        )
        return EXIT_FAILURE

    samples = build_samples()
    outdir: Path = arguments.outdir
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        for sample in samples:
            (outdir / sample.name).write_bytes(sample.content)
        (outdir / MANIFEST_NAME).write_text(render_manifest(samples), encoding="utf-8")
    except OSError as error:
        print(f"error: cannot write to {outdir}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"wrote {len(samples)} captures and {MANIFEST_NAME} to {outdir}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
