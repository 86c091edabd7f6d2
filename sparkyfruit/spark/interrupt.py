"""Ctrl-C while Spark runs: cancel the jobs and let the run end cleanly, instead of pyspark's handler.

pyspark's own SIGINT handler calls into the JVM from inside the signal handler, while the main thread may
be half-way through a py4j call; that fails with "reentrant call" and py4j tracebacks. This handler only
records the interrupt; a thread (with its own py4j connection) then cancels this run's jobs, and keeps
cancelling any it starts later, until the run leaves the guard. Only this run's: its thread tags every job
it starts, and only that tag is cancelled, so the other jobs of a shared session (a notebook's) go on.
The Spark action fails as cancelled, and the run reports the interrupt after stopping Spark. A second
Ctrl-C ends the process at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import uuid

EXIT_CODE = 130


class SigintGuard:
    """Use as a context manager around the part of a run that has a Spark session. Enter it before the
    session starts (a Ctrl-C then is remembered, not lost), and call `watch(spark_context)` once it has, from
    the thread that runs the jobs: that tags them (a thread's tag) and puts this handler back over the one
    pyspark installs. On exit the tag is removed and the handler from before returns.
    Outside the main thread (where Python takes no signals) it does nothing."""

    def __init__(self):
        self.received = False
        self._left = threading.Event()
        self._context = None
        self._previous = None
        self.tag = f"sparkyfruit-{uuid.uuid4().hex[:12]}"
        self._active = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> SigintGuard:
        if self._active:
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def watch(self, spark_context) -> None:
        self._context = spark_context
        spark_context.addJobTag(self.tag)
        if self._active:
            signal.signal(signal.SIGINT, self._on_sigint)
        if self.received:
            self._cancel_in_background()

    def __exit__(self, *exc_info) -> None:
        self._left.set()
        if self._context is not None:
            try:
                self._context.removeJobTag(self.tag)
            except Exception:  # a stopped session has no tags left to remove
                pass
        if self._active:
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.default_int_handler)

    def _on_sigint(self, signum, frame) -> None:
        if self.received:
            print("interrupted again: stopping at once, without waiting for Spark.", file=sys.stderr, flush=True)
            os._exit(EXIT_CODE)
        self.received = True
        self._cancel_in_background()

    def _cancel_in_background(self) -> None:
        if self._context is not None:
            threading.Thread(target=self._cancel, name="sparkyfruit-cancel", daemon=True).start()

    def _cancel(self) -> None:
        while not self._left.is_set():
            try:
                self._context.cancelJobsWithTag(self.tag)
            except Exception:  # the JVM may be stopping already; the run ends either way
                return
            self._left.wait(0.2)
