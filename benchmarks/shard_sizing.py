"""What shards sized by the measured rate cost against the fixed size they replaced, and what they buy: the
same job, one run, alternating so that drift hits both alike.

- fixed: the earlier default, shard_size 10,000 and tasks of up to 1,024 images (a run under 10,000 images is
  one shard: a crash or Ctrl-C keeps nothing, and the progress bar moves once per 1,024-image task);
- by rate: today's default (shards.Sizing): a first shard of 2 tasks of 16 images per core, then shards of
  about 90 s of work in tasks of about 5 s of one core's work.

Encodes N generated images (100 px unless --image-size, MobileNet v1 0.25 with the bundled weights: the
cheap model, where the fixed cost of shards and tasks weighs most) from a folder, in both modes, each run a
fresh process timed from launch to exit. Also reported, from the run's timeline (sparkyfruit/timeline.py):
the seconds from launch to the first committed shard (what a crash just after costs, at most) and the
longest wait between two task ends (how long the progress bar stands still).

    python -m benchmarks.shard_sizing [--n 2240] [--repeats 2] [--image-size 100]

Prints a table and writes benchmarks/results/shard_sizing-<px>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.data import make_images
from benchmarks.featurize import machine, measure

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "examples" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
SIZINGS = {"fixed": {"SPARKYFRUIT_SHARD_SIZE": "10000", "SPARKYFRUIT_IMAGES_PER_TASK": "1024"}, "by rate": {}}
MODES = ("keys", "df")


def timed_encode(mode: str, sizing: str, images: Path, work: Path, env: dict, size: int) -> dict:
    timeline = work / "timeline.txt"
    timeline.unlink(missing_ok=True)
    command = [
        str(Path(sys.executable).with_name("sparkyfruit")),
        "encode",
        *("--mode", mode, "--input", str(images), "--output", str(work / "out")),
        *("--model", "mobilenet", "--alpha", "0.25", "--weights", str(WEIGHTS), "--image-size", str(size), "--quiet"),
    ]
    run_env = {**env, **SIZINGS[sizing], "SPARKYFRUIT_TIMELINE": str(timeline)}
    launched = time.time()
    measured = measure(command, run_env)
    shutil.rmtree(work / "out", ignore_errors=True)
    events = [line.split(" ", 2) for line in timeline.read_text().splitlines()]
    committed = sorted(float(moment) for moment, _, what in events if what.endswith(" committed"))
    task_ends = sorted(float(moment) for moment, _, what in events if what == "worker task ended")
    encoding_started = min((float(m) for m, _, what in events if what == "worker task started"), default=launched)
    gaps = [later - earlier for earlier, later in zip([encoding_started, *task_ends], task_ends)]
    return {
        "wall_s": measured["wall_s"],
        "shards": len(committed),
        "first_commit_s": committed[0] - launched if committed else None,
        "longest_still_s": max(gaps, default=None),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2240)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=100, help="pixels: 224 makes each image 5x the work")
    parser.add_argument("--output", default=None, help="default: benchmarks/results/shard_sizing-<px>.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparkyfruit-shard-bench-"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "XDG_CACHE_HOME": str(work / "cache")}
    make_images(args.n, work / "set")
    runs = {(mode, sizing): [] for mode in MODES for sizing in SIZINGS}
    try:
        timed_encode("keys", "fixed", work / "set", work, env, args.image_size)  # records the JVM class archive
        for _ in range(args.repeats):
            for mode in MODES:
                for sizing in SIZINGS:
                    runs[mode, sizing].append(timed_encode(mode, sizing, work / "set", work, env, args.image_size))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for (mode, sizing), measured in runs.items():
        fastest = min(measured, key=lambda run: run["wall_s"])
        rows.append(
            {
                "mode": mode,
                "sizing": sizing,
                "n": args.n,
                "image_size": args.image_size,
                "runs_s": [round(run["wall_s"], 1) for run in measured],
                "fastest_s": round(fastest["wall_s"], 1),
                "shards": fastest["shards"],
                "first_commit_s": round(fastest["first_commit_s"], 1) if fastest["first_commit_s"] else None,
                "longest_still_s": round(max(run["longest_still_s"] or 0 for run in measured), 1),
            }
        )
    print(
        "| mode | sizing | N | runs (s) | fastest s | shards | first commit after (s) | bar still at most (s) |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    for row in rows:
        print(
            f"| {row['mode']} | {row['sizing']} | {row['n']:,} | {', '.join(map(str, row['runs_s']))} "
            f"| {row['fastest_s']} | {row['shards']} | {row['first_commit_s']} | {row['longest_still_s']} |"
        )
    ratios = {}
    for mode in MODES:
        by_rate, fixed = (
            next(r["fastest_s"] for r in rows if (r["mode"], r["sizing"]) == (mode, s)) for s in ("by rate", "fixed")
        )
        ratios[mode] = round(by_rate / fixed, 3)
        print(f"{mode}: time by rate / fixed: {ratios[mode]:.2f}")
    output = Path(args.output or ROOT / "benchmarks" / "results" / f"shard_sizing-{args.image_size}.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"machine": machine(), "rows": rows, "by_rate_over_fixed": ratios}, indent=2))


if __name__ == "__main__":
    main()
