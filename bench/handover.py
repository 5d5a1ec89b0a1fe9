#!/usr/bin/env python3
"""How many lookups the compiled core's path hands to the Python detectors.

The core tells the window detectors' facts (``pcapdns._core.Facts``, core/src/facts.rs)
every lookup and builds a Python lookup only for those that ``may_be_flagged`` picks or
that the facts say the window detectors watch. This script runs the analysis of each
capture with the test suite's reference of that path beside the whole one
(tests/detect/filtered.py), which also checks that both find the same, and prints per
capture: the lookups, those handed over (flagged by the stateless predicate; only watched
by the window detectors), the ticks, and the seconds.

    python3 bench/handover.py CAPTURE...
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pcapdns.analysis import analyze  # noqa: E402
from tests.detect.filtered import twins  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("captures", nargs="+", metavar="CAPTURE")
    args = p.parse_args(argv)
    print("| capture | lookups | handed over | flagged | watched only | ticks | seconds |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for path in args.captures:
        started = time.perf_counter()
        with twins() as made:
            analyze([path])  # raises AssertionError if the filtered path finds otherwise
        (twin,) = made
        h = twin.filtered.handover
        share = h.handed / h.lookups if h.lookups else 0.0
        print(f"| {os.path.basename(path)} | {h.lookups:,} | {h.handed:,} ({share:.1%}) | "
              f"{h.flagged:,} | {h.watched_only:,} | {h.ticks:,} | "
              f"{time.perf_counter() - started:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
