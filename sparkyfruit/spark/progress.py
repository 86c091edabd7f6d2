"""A rich progress bar of the images a run has encoded, with images/s and the time left.

The Python workers add the rows of every batch they finish to a Spark accumulator; Spark merges a task's
additions into the driver's value when the task ends, and a background thread here shows that value.
"""

from __future__ import annotations

import threading
import uuid


def images_column():
    """A rich column with the task's speed in images/s (rich's own speed columns count bytes)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class ImagesPerSecond(ProgressColumn):
        def render(self, task) -> Text:
            # rich's recent-speed estimate while it has one, else the average so far
            speed = task.speed or (task.completed / task.elapsed if task.completed and task.elapsed else None)
            return Text(f"{speed:,.0f}/s" if speed else "-/s", style="progress.data.speed")

    return ImagesPerSecond()


class SparkProgress:
    """Use as a context manager around the Spark actions of one run; jobs are tagged with a job group
    (`group`), which the Spark UI shows and which a Ctrl-C cancels.

    Parameters
    ----------
    spark_context: the run's SparkContext.
    description: what the bar says, and the job group's description in the Spark UI.
    total: the images this run encodes.
    console: a rich Console (stderr); `enabled=False` draws nothing (but still counts).

    `counter` is the accumulator to hand to the workers (`featurize_partition(..., counter=...)`), and
    `done` the images encoded so far, as far as the driver knows.
    """

    def __init__(
        self, spark_context, description: str, total: int, console=None, enabled: bool = True, interval: float = 0.5
    ):
        self.context = spark_context
        self.description = description
        self.total = total
        self.console = console
        self.enabled = enabled
        self.interval = interval
        self.group = f"sparkyfruit-{uuid.uuid4().hex[:8]}"
        self.counter = spark_context.accumulator(0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def done(self) -> int:
        # a retried task (a worker that died) adds its rows again: never report more than there are
        return min(int(self.counter.value), self.total)

    def __enter__(self) -> SparkProgress:
        self.context.setJobGroup(self.group, self.description)
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("images"),
                images_column(),
                TimeRemainingColumn(),
                TextColumn("left"),
                console=self.console,
                transient=False,
            )
            self._task = self._progress.add_task(self.description, total=self.total)
            self._progress.start()
            self._thread = threading.Thread(target=self._watch, name="sparkyfruit-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._stop.set()
        # the group belongs to this run's jobs: later jobs of a joined session (a notebook's) are not ours
        self.context._jsc.clearJobGroup()
        if self._thread is not None:
            self._thread.join()
            self._progress.update(self._task, completed=self.done)
            self._progress.stop()

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._progress.update(self._task, completed=self.done)
