"""CPU per image inside ONE run, by kind of process, away from its start and its end.

    python -m benchmarks.steady_window MODE N [sparkyfruit encode options...]
    python -m benchmarks.steady_window keys 20000 --model mobilenet --alpha 0.25

Encodes N generated 100 px images from a folder, one shard, tasks of 1,000 images, random weights, while it
samples the CPU seconds of the driver, the JVM and the Python workers every 0.25 s. The window runs from the
start of the 6th task to the start of the last one (sparkyfruit/timeline.py), so it holds neither the
start-up nor the tail: its CPU-ms per image are the steady cost of each process, and a change to one of them
shows without the noise of two whole runs. Used to find and check the levers of docs/performance.md; a JFR
profile of the same run: JDK_JAVA_OPTIONS="-XX:StartFlightRecording=filename=run.jfr,settings=profile".
"""

from __future__ import annotations

import bisect
import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.data import make_images
from benchmarks.featurize import PROCESS_KINDS, SPARKYFRUIT, measure

TASK_IMAGES = 1000
SKIPPED_TASKS = 5


def main(mode: str, n: int, extra: list[str]) -> None:
    work = Path(tempfile.mkdtemp(prefix="sparkyfruit-window-"))
    try:
        folder = work / "images"
        make_images(n, folder)
        (work / "run.toml").write_text(f"images_per_task = {TASK_IMAGES}\nshard_size = {n}\n")
        timeline = work / "timeline.txt"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SPARKYFRUIT_TIMELINE": str(timeline)}
        env.setdefault("PYSPARK_PYTHON", sys.executable)
        command = [SPARKYFRUIT, "encode", "--mode", mode, "--input", str(folder), "--output", str(work / "out")]
        command += ["--weights", "none", "--image-size", "100", "--quiet", "--config", str(work / "run.toml"), *extra]
        samples: list[tuple[float, dict[str, float]]] = []
        wall = measure(command, env, series=samples)["wall_s"]
        starts = sorted(
            float(line.split(" ", 2)[0])
            for line in timeline.read_text().splitlines()
            if line.split(" ", 2)[2] == "worker task started"
        )
        if len(starts) <= SKIPPED_TASKS + 1:
            raise SystemExit(f"only {len(starts)} tasks: give N of at least {(SKIPPED_TASKS + 2) * TASK_IMAGES}")
        first, last = starts[SKIPPED_TASKS], starts[-1]
        images = (len(starts) - 1 - SKIPPED_TASKS) * TASK_IMAGES
        per_image = {
            kind: 1000 * (cpu_at(samples, last, kind) - cpu_at(samples, first, kind)) / images for kind in PROCESS_KINDS
        }
        print(
            f"{mode} N={n} {' '.join(extra)}: wall {wall:.1f} s, {len(starts)} tasks, window {last - first:.1f} s, "
            f"{images / (last - first):.0f} images/s; CPU-ms per image: "
            + ", ".join(f"{kind} {value:.3f}" for kind, value in per_image.items())
            + f", total {sum(per_image.values()):.3f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def cpu_at(samples: list[tuple[float, dict[str, float]]], moment: float, kind: str) -> float:
    index = min(bisect.bisect_left([t for t, _ in samples], moment), len(samples) - 1)
    return samples[index][1][kind]


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
