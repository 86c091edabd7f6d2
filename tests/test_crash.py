"""A crashed Python worker: Spark retries its task, and the output still has one row per image."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.helpers import SAMPLE, SCRIPT, encode_args, read_output, worker_hooks_env


@pytest.mark.integration
@pytest.mark.spark
@pytest.mark.slow
def test_a_worker_killed_mid_task_is_retried_without_duplicates_or_gaps(tmp_path):
    """A Python worker dies after handing Spark part of a task's output; Spark reruns the task (local[2,3]:
    up to 3 attempts) and drops the dead attempt's rows: exactly one row per image."""
    marker = tmp_path / "crashed"
    script = SCRIPT
    env = worker_hooks_env({**os.environ, "COLUMNS": "200"}, SPARKYFRUIT_TEST_CRASH_WORKER_ONCE=str(marker))
    result = subprocess.run(
        [
            script,
            *encode_args(str(SAMPLE), str(tmp_path / "o"), "--mode", "keys"),
            "--batch-size",
            "16",
            "--master",
            "local[2,3]",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker.exists()  # a worker really died
    log = Path(next(line.split(": ", 1)[1] for line in result.stderr.splitlines() if line.startswith("Spark log: ")))
    assert "Python worker exited unexpectedly" in log.read_text(errors="replace")
    assert "done: 192 images, 192 ok, 0 failed" in result.stdout

    paths = ds.dataset(str(tmp_path / "o"), format="parquet").to_table(columns=["path"]).column("path").to_pylist()
    assert len(paths) == len(set(paths)) == 192
    assert set(paths) == set(read_output(tmp_path / "o"))
