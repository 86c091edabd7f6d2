"""Scale: encode at N = 10,000 and 100,000 (Fruits-360's 100 px, MobileNet v1 0.25 with the bundled weights)
from a folder and from the local S3 server in both modes; what a shard costs; listing 1,000,000 files in
both modes; `inspect --json` and `evaluate` on a 1,000,000-row output.

    python -m benchmarks.scale [--sizes 10000 100000] [--sources folder s3] [--listing 1000000]
                               [--rows 1000000] [--shards 10] [--modes keys df] [--skip encode shard_cost]

Each encode is a fresh process (`python -m benchmarks.scale encode-child ...`) whose Spark UI is read after
the run for the jobs' times; the parent samples the peak RSS of the driver's Python, the JVM and the Python
workers. Each encode row runs in --shards shards; steady images/s counts the shards after the first (the
first builds the model). Prints a table and
writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from benchmarks.data import make_images
from benchmarks.featurize import machine, upload
from devtools import local_s3
from sparkyfruit.spark.options import is_python_worker

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "examples" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
MODEL = dict(model="mobilenet", alpha=0.25, weights=str(WEIGHTS), image_size=100, master="local[2]", quiet=True)


# ---------------------------------------------------------------- measured in a child process


def encode_child(settings: dict) -> dict:
    """One encode, then the Spark UI's job and stage times, as JSON on the last line of stdout."""
    import urllib.request

    import sparkyfruit
    from sparkyfruit.config import RunConfig
    from sparkyfruit.spark.session import start_session

    config = RunConfig(**settings)
    handle = start_session(config)
    try:
        result = sparkyfruit.encode(config, spark=handle.spark)
        context = handle.spark.sparkContext
        api = f"{context.uiWebUrl}/api/v1/applications/{context.applicationId}"
        with urllib.request.urlopen(f"{api}/jobs?status=succeeded", timeout=30) as response:
            jobs = json.load(response)
        with urllib.request.urlopen(f"{api}/stages?status=complete", timeout=30) as response:
            stages = {stage["stageId"]: stage for stage in json.load(response)}
    finally:
        handle.stop()
    spark_jobs = []
    for job in sorted(jobs, key=lambda j: j["jobId"]):
        first_task = min(
            (parse_time(stages[s]["firstTaskLaunchedTime"]) for s in job["stageIds"] if s in stages), default=None
        )
        submitted, completed = parse_time(job["submissionTime"]), parse_time(job["completionTime"])
        spark_jobs.append(
            {"to_first_task_s": first_task - submitted if first_task else None, "job_s": completed - submitted}
        )
    timings = result.timings
    return {
        "rows": result.rows,
        "failed": result.failed,
        "duration_s": result.duration_seconds,
        "listing_s": timings.listing,
        "session_s": timings.session,
        "planning_s": getattr(timings, "planning", 0.0),  # (absent before df planned once)
        "shard_s": timings.shards,
        "finish_s": timings.finish,
        "jobs": spark_jobs,
    }


def parse_time(text: str) -> float:
    from datetime import datetime

    return datetime.strptime(text.replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


# the shard size the planning is timed with (a run's own follow its measured rate: shards.Sizing)
PLANNED_SHARD_SIZE = 10_000


def listing_child(mode: str, folder: str) -> dict:
    """List (and plan the shards of) a folder the way encode does, nothing else."""
    from sparkyfruit import shards
    from sparkyfruit.config import RunConfig

    config = RunConfig(input=folder, output=folder + "-out", mode=mode, **MODEL)
    started = time.monotonic()
    if mode == "keys":
        from sparkyfruit.sources.keys import list_keys

        uris = [uri for uri, _, _ in list_keys(config)]
        session_s = 0.0
    else:
        from sparkyfruit.sources.df import list_images
        from sparkyfruit.spark.session import start_session

        handle = start_session(config)
        session_s = time.monotonic() - started
        uris = list_images(handle.spark, config).uris
    listed_s = time.monotonic() - started - session_s
    plan = shards.plan(uris, set(), PLANNED_SHARD_SIZE)
    return {
        "files": len(uris),
        "listing_s": listed_s,
        "plan_s": time.monotonic() - started - session_s - listed_s,
        "session_s": session_s,
        "shards": len(plan),
    }


# ---------------------------------------------------------------- the parent


def measured_run(command: list[str], env: dict) -> tuple[str, float, dict]:
    """Run a command; (stdout, wall seconds, peak RSS in MB of its own Python, the JVM and the Python
    workers under it)."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = {"driver_python_mb": 0.0, "jvm_mb": 0.0, "workers_mb": 0.0}
    done = threading.Event()

    def sample():
        root = psutil.Process(process.pid)
        while not done.wait(0.1):
            sizes = {"driver_python_mb": 0.0, "jvm_mb": 0.0, "workers_mb": 0.0}
            try:
                sizes["driver_python_mb"] = root.memory_info().rss / 2**20
                children = root.children(recursive=True)
            except psutil.Error:
                continue
            for child in children:  # a Python worker may end while it is looked at
                try:
                    if child.name() == "java":
                        kind = "jvm_mb"
                    else:
                        kind = "workers_mb" if is_python_worker(child.cmdline()) else None
                    if kind:
                        sizes[kind] += child.memory_info().rss / 2**20
                except psutil.Error:
                    continue
            for kind, size in sizes.items():
                peaks[kind] = max(peaks[kind], size)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed ({process.returncode}):\n{stderr[-3000:]}")
    return stdout, time.monotonic() - started, peaks


def run_child(arguments: list[str], env: dict) -> dict:
    """A child of this module; its JSON result, wall time and peak RSS by part."""
    stdout, wall, peaks = measured_run([sys.executable, "-m", "benchmarks.scale", *arguments], env)
    return {**json.loads(stdout.strip().splitlines()[-1]), "wall_s": wall, **peaks}


def encode_row(source: str, mode: str, n: int, settings: dict, env: dict) -> dict:
    measured = run_child(["encode-child", json.dumps(settings)], env)
    shard_s = measured["shard_s"]
    per_shard = settings["shard_size"]
    later = shard_s[1:]
    later_images = measured["rows"] - min(per_shard, measured["rows"])
    jobs = measured["jobs"]
    outside_jobs = sum(shard_s) - sum(job["job_s"] for job in jobs)
    return {
        "source": source,
        "mode": mode,
        "n": n,
        "shards": len(shard_s),
        "rows": measured["rows"],
        "failed": measured["failed"],
        "end_to_end_s": round(measured["wall_s"], 1),
        "steady_ips": round(later_images / sum(later), 1) if later else None,
        "listing_s": round(measured["listing_s"], 2),
        "session_s": round(measured["session_s"], 2),
        "to_first_task_s": round(sum(job["to_first_task_s"] or 0 for job in jobs), 2),
        "outside_jobs_s": round(outside_jobs, 2),  # planning (before) + commit + shard records, all shards
        "planning_s": round(measured.get("planning_s", 0.0), 2),  # df: planning the run's job, outside the shards
        "per_shard_s": round((outside_jobs + measured.get("planning_s", 0.0)) / len(shard_s), 3),
        "finish_s": round(measured["finish_s"], 2),
        "driver_python_mb": round(measured["driver_python_mb"]),
        "jvm_mb": round(measured["jvm_mb"]),
        "workers_mb": round(measured["workers_mb"]),
    }


def million_files(folder: Path, count: int) -> Path:
    """`count` empty .jpg files in 1,000 class folders: what listing costs, with no bytes to read."""
    per_folder = max(1, count // 1000)
    for index in range(count):
        sub = folder / f"class-{index // per_folder:04d}"
        if index % per_folder == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{index:07d}.jpg").touch()
    return folder


def synthetic_output(folder: Path, rows: int, dim: int = 256, classes: int = 131) -> Path:
    """A finished 1,000,000-row output written with pyarrow, with a real manifest."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sparkyfruit import output_format

    folder.mkdir(parents=True)
    generator = np.random.default_rng(0)
    centres = generator.normal(size=(classes, dim)).astype(np.float32)
    per_file = 100_000
    for start in range(0, rows, per_file):
        count = min(per_file, rows - start)
        labels = generator.integers(0, classes, count)
        vectors = centres[labels] + generator.normal(scale=2.0, size=(count, dim)).astype(np.float32)
        table = pa.table(
            {
                "path": [
                    f"s3://fruit/Training/class-{label:03d}/{start + i:07d}.jpg" for i, label in enumerate(labels)
                ],
                "label": [f"class-{label:03d}" for label in labels],
                "features": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim).cast(
                    pa.list_(pa.float32())
                ),
                "error": pa.nulls(count, pa.string()),
            }
        )
        pq.write_table(table, folder / f"part-{start // per_file:05d}-synthetic-c000.snappy.parquet")
    manifest = output_format.Manifest(
        created_at=output_format.now(),
        versions=output_format.library_versions(None),
        mode="keys",
        input="s3://fruit/Training",
        output=str(folder),
        model="mobilenet",
        alpha=0.25,
        image_size=100,
        weights="file",
        weights_sha256=None,
        dim=dim,
        counts=output_format.Counts(rows, rows, 0),
        duration_seconds=0.0,
        config={},
    )
    output_format.write_manifest(
        output_format.locations.parse_location(str(folder)), manifest, output_format.S3Settings()
    )
    return folder


def timed_cli(arguments: list[str], env: dict) -> dict:
    stdout, wall, peaks = measured_run([str(Path(sys.executable).with_name("sparkyfruit")), *arguments], env)
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(peaks["driver_python_mb"]), "stdout": stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--sources", nargs="+", default=["folder", "s3"], choices=["folder", "s3"])
    parser.add_argument("--modes", nargs="+", default=["keys", "df"], choices=["keys", "df"])
    parser.add_argument("--skip", nargs="*", default=[], choices=["encode", "shard_cost"], help="sections to leave out")
    parser.add_argument("--shards", type=int, default=10, help="each encode row in this many shards")
    parser.add_argument("--shard-size", type=int, default=None, help="a fixed shard size instead of --shards")
    parser.add_argument("--listing", type=int, default=1_000_000, help="files for the listing rows (0: skip)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the inspect/evaluate output (0: skip)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "scale.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparkyfruit-scale-"))
    os.environ.update(local_s3.FAKE_CREDENTIALS)  # the local server only: never real AWS
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "XDG_CACHE_HOME": str(work / "cache")}
    report = {
        "machine": machine(),
        "shards": args.shards,
        "shard_size": args.shard_size,
        "encode": [],
        "shard_cost": [],
        "listing": [],
        "tools": [],
    }
    server = None
    try:
        images = work / "images"
        make_images(max(args.sizes), images)
        sets = {}
        for n in sorted(args.sizes):  # the first n images of the largest set
            if n == max(args.sizes):
                sets[n] = images
            else:
                sets[n] = work / f"images-{n}"
                for path in sorted(images.rglob("*.jpg"))[:n]:
                    target = sets[n] / path.relative_to(images)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.link(path, target)
        if "s3" in args.sources:
            server = local_s3.start(log_path=work / "moto.log")
            for n, folder in sets.items():
                local_s3.client(server.endpoint).create_bucket(Bucket=f"scale-{n}")
                upload(server.endpoint, f"scale-{n}", "Training", folder)
        # the second run records the JVM class archive (the first leaves its marker): not part of any row
        warm = dict(MODEL, input=str(sets[min(sets)]), output=str(work / "warm"), mode="keys", overwrite=True)
        for _ in range(2):
            run_child(["encode-child", json.dumps(warm)], env)

        for source in args.sources if "encode" not in args.skip else []:
            for n in sorted(args.sizes):
                for mode in args.modes:
                    out = work / f"out-{source}-{mode}-{n}"
                    settings = dict(
                        MODEL, mode=mode, output=str(out), shard_size=args.shard_size or -(-n // args.shards)
                    )
                    if source == "s3":
                        settings.update(input=f"s3://scale-{n}/Training", s3_endpoint=server.endpoint)
                    else:
                        settings.update(input=str(sets[n]))
                    row = encode_row(source, mode, n, settings, env)
                    report["encode"].append(row)
                    print(json.dumps(row), flush=True)
                    shutil.rmtree(out, ignore_errors=True)

        # what a shard costs: the same 10,000 images in 1 shard and in 10, one run each, side by side
        n = min(sets, key=lambda k: abs(k - 10_000))
        for mode in args.modes if "shard_cost" not in args.skip else []:
            walls = {}
            for size in (n, n // 10):
                out = work / f"shard-cost-{mode}-{size}"
                settings = dict(MODEL, mode=mode, input=str(sets[n]), output=str(out), shard_size=size)
                walls[size] = run_child(["encode-child", json.dumps(settings)], env)["wall_s"]
                shutil.rmtree(out, ignore_errors=True)
            extra = walls[n // 10] - walls[n]
            row = {
                "mode": mode,
                "n": n,
                "one_shard_s": round(walls[n], 1),
                "ten_shards_s": round(walls[n // 10], 1),
                "per_shard_s": round(extra / 9, 2),
            }
            report["shard_cost"].append(row)
            print(json.dumps(row), flush=True)

        if args.listing:
            folder = million_files(work / "million", args.listing)
            for mode in args.modes:
                measured = run_child(["listing-child", mode, str(folder)], env)
                row = {
                    "mode": mode,
                    "files": measured["files"],
                    "listing_s": round(measured["listing_s"], 1),
                    "plan_s": round(measured["plan_s"], 2),
                    "shards": measured["shards"],
                    "driver_python_mb": round(measured["driver_python_mb"]),
                    "jvm_mb": round(measured["jvm_mb"]),
                }
                report["listing"].append(row)
                print(json.dumps(row), flush=True)
            shutil.rmtree(folder, ignore_errors=True)

        if args.rows:
            output = synthetic_output(work / "rows", args.rows)
            inspected = timed_cli(["inspect", str(output), "--json"], env)
            evaluated = timed_cli(["evaluate", str(output), "--json"], env)
            evaluation = json.loads(evaluated["stdout"].strip().splitlines()[-1])
            report["tools"] = [
                {
                    "command": "inspect --json",
                    "rows": args.rows,
                    "wall_s": inspected["wall_s"],
                    "peak_rss_mb": inspected["peak_rss_mb"],
                },
                {
                    "command": "evaluate",
                    "rows": args.rows,
                    "wall_s": evaluated["wall_s"],
                    "peak_rss_mb": evaluated["peak_rss_mb"],
                    "probe_rows": evaluation["train"] + evaluation["test"],
                    "sampled_from": evaluation["sampled_from"],
                    "accuracy": round(evaluation["accuracy"], 3),
                },
            ]
            for row in report["tools"]:
                print(json.dumps(row), flush=True)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print_tables(report)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))


def print_tables(report: dict) -> None:
    columns = [
        "source",
        "mode",
        "n",
        "shards",
        "steady_ips",
        "end_to_end_s",
        "listing_s",
        "session_s",
        "to_first_task_s",
        "outside_jobs_s",
        "planning_s",
        "per_shard_s",
        "finish_s",
        "driver_python_mb",
        "jvm_mb",
        "workers_mb",
    ]
    for title, rows in [
        ("encode", report["encode"]),
        ("shard_cost", report["shard_cost"]),
        ("listing", report["listing"]),
        ("tools", report["tools"]),
    ]:
        if not rows:
            continue
        keys = columns if title == "encode" else list(rows[0])
        print(f"\n{title}\n| " + " | ".join(keys) + " |\n|" + " --- |" * len(keys))
        for row in rows:
            print(
                "| "
                + " | ".join(f"{row.get(k):,}" if isinstance(row.get(k), int) else str(row.get(k)) for k in keys)
                + " |"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "encode-child":
        print(json.dumps(encode_child(json.loads(sys.argv[2]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "listing-child":
        print(json.dumps(listing_child(sys.argv[2], sys.argv[3])))
    else:
        main()
