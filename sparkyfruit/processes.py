"""What this host says of a process: whether it runs, and when it started (to tell a reused pid apart)."""

from __future__ import annotations

import os
from pathlib import Path


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def start_time(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (Linux), None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name in parentheses may hold spaces
