"""A run's start-up timeline, for benchmarks/overhead.py: with SPARKYFRUIT_TIMELINE=<file> set, the driver
and every Python worker append "<epoch seconds> <pid> <event>" lines to that file. Unset (always, outside
the benchmark), `mark` does nothing."""

from __future__ import annotations

import os
import time

TIMELINE_ENV = "SPARKYFRUIT_TIMELINE"


def mark(event: str) -> None:
    """Append one event with the wall-clock time, if the timeline is on."""
    path = os.environ.get(TIMELINE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as timeline:  # one short write: lines of processes never mix
            timeline.write(f"{time.time():.4f} {os.getpid()} {event}\n")
