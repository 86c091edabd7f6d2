"""The tests' faults inside Spark's Python workers, never part of the package: sparkyfruit.featurize imports
this module only where a test has put tests/worker_hooks/ on the workers' path (PYTHONPATH, see
tests/helpers.worker_hooks_env), and then calls after_batch() after each batch a task hands on.

With SPARKYFRUIT_TEST_CRASH_WORKER_ONCE=<file> the first worker to get there creates the file and kills its
own process (as the OOM killer would); with SPARKYFRUIT_TEST_CRASH_EXECUTOR_ONCE=<file> it kills its
executor's JVM first (a lost node or container). With SPARKYFRUIT_TEST_MODULES=<file> each batch appends
a line to the file: the worker's pid and whether it has imported TensorFlow.
"""

from __future__ import annotations

import os
import sys

CRASH_WORKER = "SPARKYFRUIT_TEST_CRASH_WORKER_ONCE"
CRASH_EXECUTOR = "SPARKYFRUIT_TEST_CRASH_EXECUTOR_ONCE"
MODULES = "SPARKYFRUIT_TEST_MODULES"


def after_batch() -> None:
    if os.environ.get(MODULES):
        with open(os.environ[MODULES], "a") as seen:  # one short write: lines of processes never mix
            seen.write(f"{os.getpid()} tensorflow={'tensorflow' in sys.modules}\n")
    for hook in (CRASH_WORKER, CRASH_EXECUTOR):
        marker = os.environ.get(hook)
        if not marker:
            continue
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        if hook == CRASH_EXECUTOR and (executor := _executor_jvm()) is not None:
            os.kill(executor, 9)
        os.kill(os.getpid(), 9)


def _executor_jvm() -> int | None:
    """The executor JVM above this worker (worker <- pyspark's daemon <- JVM), read from /proc."""
    pid = os.getpid()
    for _ in range(3):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])  # the parent's pid
            with open(f"/proc/{pid}/comm") as comm:
                if comm.read().strip() == "java":
                    return pid
        except (OSError, ValueError, IndexError):
            return None
    return None
