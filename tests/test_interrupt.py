"""Ctrl-C: SIGINT to the whole process group of a running encode (as a terminal sends it) ends the run with
exit 130 and one line that says what is kept and how to continue, stops Spark (no process of the group is
left), and prints no traceback. The committed shards are kept, and --resume finishes the run."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pyarrow.dataset as ds
import pytest

from tests.helpers import SCRIPT, copies_of_sample, encode_args, group_is_gone, start_in_own_group

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]
COPIES = 2  # 384 images at 448 px in 12 shards: the interrupt lands with most of the run to go


@pytest.mark.parametrize("mode", ["keys", "df"])
def test_sigint_to_the_process_group_exits_130_with_one_line(tmp_path, monkeypatch, mode):
    images = copies_of_sample(tmp_path / "images", COPIES)
    out = tmp_path / "out"
    command = [
        SCRIPT,
        *encode_args(str(images), str(out), "--mode", mode),
        *("--image-size", "448", "--batch-size", "16", "--master", "local[2]"),
    ]
    monkeypatch.setenv("SPARKYFRUIT_SHARD_SIZE", "32")
    process = start_in_own_group(command)
    deadline = time.monotonic() + 240
    while not (out / "_delta_log" / f"{0:020d}.json").exists():  # a shard has committed
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr + stdout
    interrupted = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    assert len(interrupted) == 1, stderr
    assert "of 384 images encoded;" in interrupted[0] and "committed shard" in interrupted[0], interrupted[0]
    assert interrupted[0].endswith("Continue with --resume."), interrupted[0]
    for noise in ("Traceback", "py4j", "Exception", "ERROR", "KeyboardInterrupt"):
        assert noise not in stderr + stdout, stderr
    assert group_is_gone(process.pid, within=30), "a process of the run (JVM, Python worker) outlived it"
    assert not (out / "_sparkyfruit.json").exists()

    resumed = subprocess.run([*command, "--resume", "--quiet"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    paths = ds.dataset(str(out), format="parquet").to_table(columns=["path"]).column("path").to_pylist()
    assert len(paths) == len(set(paths)) == 384
