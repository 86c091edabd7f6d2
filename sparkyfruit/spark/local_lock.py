"""One process of this machine at a time: an exclusive `flock` on a file, for work that two runs must not do
at once (packing the executors' environment, Ivy's download of Spark's packages). A run that finds the lock
held says so once, then waits. The kernel drops the lock when its file closes or its holder dies, so a killed
run never leaves it held."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path


@contextlib.contextmanager
def held_alone(path: Path, announce=None, waiting: str = ""):
    """Hold the lock on `path` (created if missing) inside. When another process holds it, `announce(waiting)`
    is told first, then this one waits for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if announce:
                announce(waiting)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield
