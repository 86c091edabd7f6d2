"""df mode from S3: Hadoop's "classic" S3A input stream (what sparkyfruit sets) vs its "analytics" stream
(Hadoop 3.4.3+'s default), same job, one run, alternating so that drift hits both alike.

Encodes N generated images (mobilenet_v2, random weights, 224 px) from the local S3 server in df mode, each
run a fresh process timed from launch to exit. sparkyfruit has no flag for the stream (it needs the classic
one to retry cut bodies, tests/test_faults.py), so the "analytics" runs swap that one S3A setting in.

    python -m benchmarks.s3a_stream [--n 1000] [--repeats 2]

Prints a table and writes benchmarks/results/s3a_stream.json.
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
from benchmarks.featurize import machine, measure, upload
from devtools import local_s3

ROOT = Path(__file__).resolve().parent.parent
STREAMS = ("classic", "analytics")

# Run in the child process: sparkyfruit's CLI with its S3A options' stream type replaced.
CHILD = """
import sys
import sparkyfruit.spark.options as options
from sparkyfruit.cli import app
original = options.s3a_options
options.s3a_options = lambda s3: {**original(s3), "fs.s3a.input.stream.type": sys.argv[1]}
app(sys.argv[2:], prog_name="sparkyfruit")
"""


def timed_encode(stream: str, endpoint: str, out: Path, env: dict) -> float:
    command = [
        sys.executable,
        "-c",
        CHILD,
        stream,
        "encode",
        "--mode",
        "df",
        "--input",
        "s3://bench/set",
        "--s3-endpoint",
        endpoint,
        "--output",
        str(out),
        "--weights",
        "none",
        "--quiet",
    ]
    elapsed = measure(command, env)["wall_s"]
    shutil.rmtree(out, ignore_errors=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "s3a_stream.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparkyfruit-stream-bench-"))
    os.environ.update(local_s3.FAKE_CREDENTIALS)  # the local server only: never real AWS
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "XDG_CACHE_HOME": str(work / "cache"),
    }
    make_images(args.n, work / "set")
    server = local_s3.start(log_path=work / "s3.log")
    seconds: dict[str, list[float]] = {stream: [] for stream in STREAMS}
    try:
        local_s3.client(server.endpoint).create_bucket(Bucket="bench")
        upload(server.endpoint, "bench", "set", work / "set")
        # the first run resolves the S3A jars, the second leaves the class archive's marker, the third records it:
        # part of no measurement
        for _ in range(3):
            timed_encode("classic", server.endpoint, work / "out", env)
        for _ in range(args.repeats):
            for stream in STREAMS:
                seconds[stream].append(timed_encode(stream, server.endpoint, work / "out", env))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        {
            "stream": stream,
            "n": args.n,
            "runs_s": [round(s, 1) for s in runs],
            "fastest_s": round(min(runs), 1),
            "images_per_s": round(args.n / min(runs), 1),
        }
        for stream, runs in seconds.items()
    ]
    print("| S3A stream | N | runs (s) | fastest s | images/s |\n| --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['stream']} | {row['n']} | {', '.join(map(str, row['runs_s']))} | {row['fastest_s']} | "
            f"{row['images_per_s']} |"
        )
    ratio = rows[0]["fastest_s"] / rows[1]["fastest_s"]
    print(f"classic / analytics time: {ratio:.2f}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(
        json.dumps({"machine": machine(), "rows": rows, "classic_over_analytics": ratio}, indent=2)
    )


if __name__ == "__main__":
    main()
