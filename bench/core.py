#!/usr/bin/env python3
"""The compiled core alone: how fast ``pcapdns._core.Engine`` gets through a capture.

    python3 bench/core.py CAPTURE...                  # the engine and the detectors
    python3 bench/core.py --no-detectors CAPTURE...   # the engine, detectors left out

The capture is opened as an analysis opens it (``_core.Engine(paths, AnalysisConfig(),
collector)``) and run to its end a step at a time, as pcapdns/analysis.py does. Only the
``engine.step(...)`` loop and ``engine.finish(...)`` are timed (``time.perf_counter``,
after the imports): the interpreter's start-up, the imports, the collector's own end of
capture and building and writing an output are not. The seconds are printed on the last
line of stdout, for ``bench/bench.py``'s core rows.

By default the collector is a real ``pcapdns.detect.FindingCollector``: the detectors run
on every lookup and orphan the engine hands over, as in an analysis. With
``--no-detectors`` it is a stand-in that only holds the facts and drops what it is handed,
so the time is the engine's, its hand-over included (the lookups the facts pick are still
made Python records and passed to a Python call that does nothing); the facts then watch
only what the engine itself tells them, so a few fewer lookups are handed over.
"""

from __future__ import annotations

import argparse
import sys
import time

from pcapdns import _core
from pcapdns.analysis import STEP_RECORDS
from pcapdns.config import AnalysisConfig
from pcapdns.detect import FindingCollector


class NoDetectors:
    """A collector that keeps the window detectors' facts and drops what it is handed."""

    def __init__(self, config: AnalysisConfig) -> None:
        self.facts = _core.Facts(config)

    def detect(self, lookup: object) -> None:
        pass

    def tick(self) -> None:
        pass

    def orphan(self, orphan: object) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", metavar="CAPTURE", help="capture files or directories")
    p.add_argument(
        "--no-detectors",
        action="store_true",
        help="hand what the engine closes to a collector that drops it",
    )
    args = p.parse_args(argv)
    config = AnalysisConfig()
    collector = NoDetectors(config) if args.no_detectors else FindingCollector(config)
    engine = _core.Engine(args.paths, config, collector)

    start = time.perf_counter()
    while engine.step(STEP_RECORDS):
        pass
    # The end of the capture as an analysis without capture.json has it: the last record
    # time of the files, or the newest record read if it was written earlier.
    last = [f["last_time"] for f in engine.files() if f["last_time"] is not None]
    engine.finish(max(max(last), engine.newest) if last else None)
    elapsed = time.perf_counter() - start

    if isinstance(collector, FindingCollector):
        collector.finish()
        found = len(collector.findings())
    else:
        found = 0
    lookups, handed = engine.handed_over
    records = engine.facts()["records"]
    print(f"records {records}, lookups {lookups}, handed over {handed}, findings {found}")
    print(f"{records / elapsed:.0f} records/s")
    print(f"{elapsed:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
