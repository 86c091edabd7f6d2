"""The driver's log file: where it is, sending the JVM's stderr there, and reading back what failed."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from pathlib import Path


def log_folder() -> Path:
    """This user's private folder of driver logs (scratch.py); made, and checked, on each call."""
    from sparkyfruit import scratch

    return scratch.folder("logs")


def new_log_path() -> Path:
    return log_folder() / f"driver-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


@contextlib.contextmanager
def stderr_to(path: Path):
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def unresolved_packages(log_path: Path) -> list[str]:
    """The Maven modules Spark's Ivy could not resolve, from the driver log ("group#artifact;version")."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return re.findall(r"unresolved dependency: ([^:\s]+#[^;\s]+;[^:\s]+): not found", text)


def first_line(exc: Exception) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])
