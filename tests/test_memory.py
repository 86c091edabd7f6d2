"""Large images in one partition: the Python worker's memory stays bounded by the batch (Arrow batch = model
batch, one batch of GETs ahead in keys mode), not by the number of images. Peak RSS of the PySpark Python
workers for 200 images of 2000x2000 must stay within 25% of the peak for 50 of them; an implementation that
held every image would add about 12 MB of decoded pixels per image (1.8 GB here)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from PIL import Image

from sparkyfruit.spark.options import is_python_worker
from tests.helpers import SAMPLE, SCRIPT, child_pids, encode_args

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def large_images(tmp_path_factory):
    root = tmp_path_factory.mktemp("large")
    sources = sorted(SAMPLE.rglob("*.jpg"))
    for count in (50, 200):
        for index in range(count):
            source = sources[index % len(sources)]
            target = root / f"set-{count}" / source.parent.name / f"{index}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(source) as image:
                image.convert("RGB").resize((2000, 2000), Image.BILINEAR).save(target, quality=85)
    return root


def python_workers_rss_bytes(pid: int) -> int:
    """Resident memory of the PySpark Python workers (the daemon and its forks) under a process, from /proc.
    The JVM is left out: its heap grows with its own GC's timing, not with what sparkyfruit holds."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/cmdline", "rb") as cmdline:
                argv = cmdline.read().decode(errors="replace").split("\0")
            if is_python_worker(argv):
                with open(f"/proc/{current}/status") as status:
                    total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
        pending += child_pids(current)
    return total


def peak_rss_of_encode(images: Path, out: Path, mode: str) -> int:
    command = [
        SCRIPT,
        *encode_args(str(images), str(out), "--mode", mode),
        "--master",
        "local[1]",
        # full batches in both runs (50 images make 2 tasks of 25): what is held per batch is then the
        # same, and only a hold on every image could make the larger run grow
        "--batch-size",
        "8",
        "--quiet",
    ]
    # no JVM class archive recording at exit: it would add to one run's peak and not the other's
    env = {**os.environ, "SPARKYFRUIT_JVM_CLASS_CACHE": "false"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak, done = 0, threading.Event()

    def sample():
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, python_workers_rss_bytes(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate(timeout=600)
    done.set()
    sampler.join()
    assert process.returncode == 0, stderr[-3000:]
    return peak


@pytest.mark.parametrize("mode", ["keys", "df"])
def test_memory_does_not_grow_with_the_number_of_large_images(large_images, tmp_path, mode):
    small = peak_rss_of_encode(large_images / "set-50", tmp_path / "small", mode)
    large = peak_rss_of_encode(large_images / "set-200", tmp_path / "large", mode)
    import sparkyfruit

    summary = sparkyfruit.inspect(str(tmp_path / "large"))
    assert (summary.rows, summary.failed) == (200, 0)
    print(f"{mode}: Python workers' peak RSS 50 images {small / 2**20:.0f} MB, 200 images {large / 2**20:.0f} MB")
    assert small > 100 * 2**20  # the workers were really measured (TensorFlow alone is more)
    assert large < small * 1.25, (small, large)
