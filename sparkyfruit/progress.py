"""A rich progress bar of finished/total Spark tasks, fed by SparkStatusTracker from a background thread."""

from __future__ import annotations

import threading
import uuid


class SparkProgress:
    """Use as a context manager around the Spark actions of one run; jobs are tagged with a job group."""

    def __init__(self, spark_context, description: str, console=None, enabled: bool = True, interval: float = 0.5):
        self.context = spark_context
        self.description = description
        self.console = console
        self.enabled = enabled
        self.interval = interval
        self.group = f"sparkyfruit-{uuid.uuid4().hex[:8]}"
        self.stages: dict[int, tuple[int, int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SparkProgress:
        self.context.setJobGroup(self.group, self.description)
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("tasks"),
                TimeElapsedColumn(), console=self.console, transient=False,
            )
            self._task = self._progress.add_task(self.description, total=None)
            self._progress.start()
            self._thread = threading.Thread(target=self._watch, name="sparkyfruit-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._refresh(finished=exc_type is None)
            self._progress.stop()

    def task_counts(self) -> tuple[int, int]:
        """(finished, total) tasks over every stage of this run's jobs seen so far."""
        tracker = self.context.statusTracker()
        for job_id in tracker.getJobIdsForGroup(self.group):
            job = tracker.getJobInfo(job_id)
            for stage_id in job.stageIds if job else ():
                stage = tracker.getStageInfo(stage_id)
                if stage is not None:  # stages that never ran (skipped) have no info and count nothing
                    self.stages[stage_id] = (stage.numCompletedTasks, stage.numTasks)
        return sum(done for done, _ in self.stages.values()), sum(total for _, total in self.stages.values())

    def _refresh(self, finished: bool = False) -> None:
        try:
            done, total = self.task_counts()
        except Exception:  # the JVM may be shutting down; progress is never worth failing a run for
            return
        # The tracker lags the scheduler by a moment; a job that returned has finished all its tasks.
        self._progress.update(self._task, completed=total if finished else done, total=total or None)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._refresh()
