"""What capping a Spark task at images_per_task images costs: the default (1,024) against tasks so large that
each core gets two (Spark's own split), same job, one run, alternating so that drift hits both alike.

Encodes N generated images (100 px, MobileNet v1 0.25 with the bundled weights: the cheap model, where a
task's fixed cost weighs most) from a folder, in both modes, each run a fresh process timed from launch to
exit.

    python -m benchmarks.task_size [--n 4000] [--repeats 2]

Prints a table and writes benchmarks/results/task_size.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.data import make_images
from benchmarks.featurize import machine, measure

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "examples" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
TASK_SIZES = (1024, 10_000_000)
MODES = ("keys", "df")


def timed_encode(mode: str, per_task: int, images: Path, out: Path, env: dict) -> float:
    command = [
        str(Path(sys.executable).with_name("sparkyfruit")),
        "encode",
        "--mode",
        mode,
        "--input",
        str(images),
        "--output",
        str(out),
        "--model",
        "mobilenet",
        "--alpha",
        "0.25",
        "--weights",
        str(WEIGHTS),
        "--image-size",
        "100",
        "--quiet",
    ]
    elapsed = measure(command, {**env, "SPARKYFRUIT_IMAGES_PER_TASK": str(per_task)})["wall_s"]
    shutil.rmtree(out, ignore_errors=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "task_size.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparkyfruit-task-bench-"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "XDG_CACHE_HOME": str(work / "cache")}
    make_images(args.n, work / "set")
    seconds = {(mode, size): [] for mode in MODES for size in TASK_SIZES}
    try:
        timed_encode("keys", TASK_SIZES[0], work / "set", work / "out", env)  # records the JVM class archive
        for _ in range(args.repeats):
            for mode in MODES:
                for size in TASK_SIZES:
                    seconds[mode, size].append(timed_encode(mode, size, work / "set", work / "out", env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        {
            "mode": mode,
            "images_per_task": size,
            "n": args.n,
            "runs_s": [round(s, 1) for s in runs],
            "fastest_s": round(min(runs), 1),
            "images_per_s": round(args.n / min(runs), 1),
        }
        for (mode, size), runs in seconds.items()
    ]
    print("| mode | images_per_task | N | runs (s) | fastest s | images/s |\n| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['mode']} | {row['images_per_task']:,} | {row['n']} | {', '.join(map(str, row['runs_s']))} "
            f"| {row['fastest_s']} | {row['images_per_s']} |"
        )
    ratios = {}
    for mode in MODES:
        capped, split = (
            next(r["fastest_s"] for r in rows if (r["mode"], r["images_per_task"]) == (mode, size))
            for size in TASK_SIZES
        )
        ratios[mode] = round(capped / split, 3)
        print(f"{mode}: time with {TASK_SIZES[0]:,} images per task / with Spark's split: {ratios[mode]:.2f}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(
        json.dumps({"machine": machine(), "rows": rows, "capped_over_split": ratios}, indent=2)
    )


if __name__ == "__main__":
    main()
