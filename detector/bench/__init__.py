"""The benchmark: generated captures, and the detector timed against
ndpiReader and tshark on them.

``python -m detector.bench generate OUTDIR`` writes the captures and
``python -m detector.bench run --workdir OUTDIR`` times the tools and writes
the results page.
"""
