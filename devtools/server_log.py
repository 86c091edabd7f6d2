"""Read what a server we started reports in its log (the ports it bound), for the test servers that pick
their own ports: a port chosen by us and handed over is free only until some other process binds it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path


def log_size(path: Path) -> int:
    """Where this start's lines begin in a log that earlier starts appended to."""
    return path.stat().st_size if path.exists() else 0


def wait_for_line(
    path: Path, since: int, pattern: re.Pattern[str], check_alive: Callable[[], None], deadline: float
) -> re.Match[str]:
    """The first match of `pattern` in what `path` got after byte `since`; `check_alive` raises when the
    server has exited, so a crash is reported at once instead of at the deadline."""
    while True:
        found = pattern.search(path.read_bytes()[since:].decode(errors="replace")) if path.exists() else None
        if found:
            return found
        check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pattern.pattern!r} did not appear in {path} in time")
        time.sleep(0.2)
