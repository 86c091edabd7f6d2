"""Ctrl-C: SIGINT to the whole process group of a running encode (as a terminal sends it) ends the run with
exit 130 and one line, stops Spark (no process of the group is left), and prints no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import SAMPLE, SCRIPT, encode_args

pytestmark = [pytest.mark.spark, pytest.mark.slow]
COPIES = 10  # 1,920 images at 448 px: a run of tens of seconds, so the interrupt lands while the job runs


def many_images(folder: Path) -> Path:
    for copy in range(COPIES):
        for image in SAMPLE.rglob("*.jpg"):
            target = folder / image.parent.name / f"{copy}_{image.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(image.read_bytes())
    return folder


def group_is_gone(pgid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("mode", ["keys", "df"])
def test_sigint_to_the_process_group_exits_130_with_one_line(tmp_path, mode):
    images = many_images(tmp_path / "images")
    total = sum(1 for _ in images.rglob("*.jpg"))
    out = tmp_path / "out"
    command = [
        SCRIPT,
        *encode_args(str(images), str(out), "--mode", mode),
        "--image-size",
        "448",
        "--batch-size",
        "16",
        "--master",
        "local[2]",
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    seen = []
    for line in process.stderr:
        seen.append(line)
        if line.startswith("Spark log: "):
            break
    time.sleep(3)  # the job is under way: the session is up, the model is being built or running
    assert process.poll() is None, "".join(seen)
    os.killpg(process.pid, signal.SIGINT)
    stdout, rest = process.communicate(timeout=120)
    stderr = "".join(seen) + rest
    assert process.returncode == 130, stderr + stdout
    interrupted = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    assert len(interrupted) == 1, stderr
    assert f"of {total:,} images encoded" in interrupted[0]
    assert interrupted[0].endswith("Run the same command again."), interrupted[0]
    for noise in ("Traceback", "py4j", "Exception", "ERROR", "KeyboardInterrupt"):
        assert noise not in stderr + stdout, stderr
    assert group_is_gone(process.pid, within=30), "a process of the run (JVM, Python worker) outlived it"
    assert not out.exists() or not any(out.rglob("*.parquet"))
