"""Local mode vs a Spark standalone cluster (master + 2 one-core workers on 127.0.0.1), same job, one run.

Both encode N generated images from a folder in keys mode (mobilenet_v2, random weights, 224 px), each
run a fresh `sparkyfruit encode` process timed from launch to exit, twice N to separate start-up from
steady state. On one machine the cluster cannot be faster than local[2] (same 2 cores, plus executor JVMs
and task shipping); the numbers show what the multi-process path costs.

    python -m benchmarks.cluster [--n 1000]

Prints a table and writes benchmarks/results/cluster.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.data import make_images
from devtools import standalone

ROOT = Path(__file__).resolve().parent.parent
SPARKYFRUIT = str(Path(sys.executable).with_name("sparkyfruit"))


def timed_encode(images: Path, out: Path, master: str, env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(
        [
            SPARKYFRUIT,
            "encode",
            "--mode",
            "keys",
            "--input",
            str(images),
            "--output",
            str(out),
            "--weights",
            "none",
            "--master",
            master,
            "--quiet",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    shutil.rmtree(out, ignore_errors=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "cluster.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparkyfruit-cluster-bench-"))
    small, n = args.n // 4, args.n
    for count in (small, n):
        make_images(count, work / f"set-{count}")
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "XDG_CACHE_HOME": str(work / "cache"),
    }
    # the second run on a machine records the driver's JVM class archive (the first leaves its marker): not part
    # of either measurement
    for _ in range(2):
        timed_encode(work / f"set-{small}", work / "warm-up", "local[2]", env)
    (work / "standalone").mkdir()
    cluster = standalone.start(work / "standalone")
    rows = []
    try:
        for name, master in (("local[2]", "local[2]"), ("standalone, 2 workers x 1 core", cluster.master_url)):
            t_small = timed_encode(work / f"set-{small}", work / "out", master, env)
            t_n = timed_encode(work / f"set-{n}", work / "out", master, env)
            steady = (n - small) / (t_n - t_small)
            rows.append(
                {
                    "run": name,
                    "n": n,
                    "wall_s": t_n,
                    "e2e_ips": n / t_n,
                    "steady_ips": steady,
                    "startup_s": t_small - small / steady,
                }
            )
            print(f"{name}: N={small} {t_small:.1f} s, N={n} {t_n:.1f} s", flush=True)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows[1]["vs_local_steady"] = rows[1]["steady_ips"] / rows[0]["steady_ips"]
    print(f"\n{'run':34} {'N':>6} {'wall s':>8} {'e2e img/s':>10} {'steady img/s':>13} {'start-up s':>11}")
    for r in rows:
        print(
            f"{r['run']:34} {r['n']:>6} {r['wall_s']:>8.1f} {r['e2e_ips']:>10.1f} {r['steady_ips']:>13.1f} "
            f"{r['startup_s']:>11.1f}"
        )
    print(f"cluster steady / local steady: {rows[1]['vs_local_steady']:.2f}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(
        json.dumps(
            {"command": "python -m benchmarks.cluster " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(), "rows": rows},
            indent=2,
        )
    )
    print(f"JSON: {args.output}")


if __name__ == "__main__":
    main()
