"""How close `sparkyfruit plan` comes to the real encode: for each case (mode, source, size, N), the plan's
predicted wall time here, then the encode's own (the seconds of its `done:` line), side by side.

    python -m benchmarks.plan_accuracy                      # both modes, folder and S3, 100 and 224 px, N 2,000
    python -m benchmarks.plan_accuracy --n 2000 20000       # also N = 20,000 (about an hour more here)

The network is the bundled MobileNet v1 0.25 with its ImageNet weights; the images are made from the sample
(benchmarks/data.py); S3 is the local server (moto, on the same cores). Each encode is a fresh process,
after warm-up runs that convert the network and record the JVM's class archive, as a user's machine would
have them. Prints a table and writes JSON (--json-out).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.data import make_images
from devtools import local_s3

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "examples" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
SPARKYFRUIT = str(Path(sys.executable).with_name("sparkyfruit"))
NETWORK = ["--model", "mobilenet", "--alpha", "0.25", "--weights", str(WEIGHTS)]
DONE = re.compile(r"done: (\d+) images.*?, ([\d.]+) s")


def upload(endpoint: str, bucket: str, prefix: str, folder: Path) -> None:
    client = local_s3.client(endpoint)
    files = sorted(folder.rglob("*.jpg"))
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda p: client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(folder).as_posix()}"), files
            )
        )


def run(arguments: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([SPARKYFRUIT, *arguments], capture_output=True, text=True, env=env, timeout=3600)


def case(
    source: str, mode: str, size: int, work: Path, endpoint: str | None, env: dict, real: dict | None = None
) -> dict:
    """One case: the plan's prediction, then the encode's time (or, given `real`, the time an earlier run of
    the case measured: the plan alone runs)."""
    settings = ["--input", source, "--mode", mode, "--image-size", str(size), *NETWORK]
    settings += ["--s3-endpoint", endpoint] if endpoint and source.startswith("s3://") else []
    planned_at = time.perf_counter()
    planned = run(["plan", *settings, "--json"], env)
    plan_wall = time.perf_counter() - planned_at
    if planned.returncode != 0:
        raise RuntimeError(f"plan failed: {planned.stderr[-2000:]}")
    prediction = json.loads(planned.stdout)
    if real is not None:
        return {
            "images": real["images"],
            "predicted_s": round(prediction["here"]["seconds"], 1),
            "real_s": real["real_s"],
            "error": round(prediction["here"]["seconds"] / real["real_s"] - 1, 3),
            "plan_wall_s": round(plan_wall, 1),
            "calibration": prediction["calibration"],
            "real_from": real.get("at", "an earlier run"),
        }
    out = work / f"out-{mode}-{size}"
    shutil.rmtree(out, ignore_errors=True)
    encoded = run(["encode", *settings, "--output", str(out), "--master", "local[2]"], env)
    if encoded.returncode != 0:
        raise RuntimeError(f"encode failed: {encoded.stderr[-2000:]}")
    done = DONE.search(" ".join(encoded.stdout.split()))
    real = float(done.group(2))
    shutil.rmtree(out, ignore_errors=True)
    return {
        "images": int(done.group(1)),
        "predicted_s": round(prediction["here"]["seconds"], 1),
        "real_s": real,
        "error": round(prediction["here"]["seconds"] / real - 1, 3),
        "plan_wall_s": round(plan_wall, 1),
        "calibration": prediction["calibration"],
        "encode_summary": done.group(0),
    }


def warm_up(work: Path, sizes: list[int], endpoint: str | None, env: dict) -> None:
    """What a user's machine has after its first runs: each size's converted network (plan converts it), the
    JVM's class archive (the second run records it), and for df mode from S3 the S3A jars, resolved once,
    then the archive with them."""
    folder = work / "warm"
    make_images(64, folder)
    runs = [(str(folder), "keys")] * 2
    if endpoint:
        local_s3.client(endpoint).create_bucket(Bucket="warm")
        upload(endpoint, "warm", "Training", folder)
        runs += [("s3://warm/Training", "df")] * 3
    for size in sizes:
        run(["plan", "--input", str(folder), "--image-size", str(size), *NETWORK, "--json"], env)
    for source, mode in runs:
        case(source, mode, sizes[0], work, endpoint, env)


def example_plan(measured: dict, images: int = 1_000_000, cores: int = 64, prefixes: int = 131) -> None:
    """The plan of `images` on `cores` (in `prefixes` label folders, as Fruits-360's 131 classes), from the
    calibration that a measured case's plan took: keys mode from S3 at 100 px."""
    from sparkyfruit import plan
    from sparkyfruit.config import RunConfig

    row = next(r for r in measured["rows"] if (r["mode"], r["source"], r["size"]) == ("keys", "s3", 100))
    calibration = plan.Calibration(**{**row["calibration"], "server_shares_cores": False})  # AWS: another machine
    listing = [(f"s3://bucket/Training/class{i % prefixes}/{i}.jpg", 5_000, None) for i in range(images)]
    settings = RunConfig(
        input="s3://bucket/Training",
        output="s3://bucket/out",
        mode="keys",
        model="mobilenet",
        alpha=0.25,
        image_size=100,
    )
    result = plan.predict(
        settings,
        listing,
        calibration,
        here_cores=2,
        cores=cores,
        target_seconds=3600,
        prices=plan.Prices(),
        listing_seconds=images / 1000 * 0.05,  # a LIST page of 1,000 keys in about 50 ms from AWS
    )
    there = result.there
    print(f"\nExample: {images:,} images of 5 KB, keys mode from S3, on {cores} cores (calibration: {row['n']:,} run)")
    print(
        f"- {result.shards} shards, {result.list_requests:,} LIST and {result.get_requests:,} GET requests: "
        f"${result.request_cost_usd:.2f}"
    )
    print(f"- output {result.output_bytes / 1e9:.2f} GB, driver listing {result.driver_listing_bytes / 1e6:.0f} MB")
    print(
        f"- wall: {there.seconds / 60:.1f} min on {cores} cores ({'requests' if there.request_limited else 'cores'} "
        "set the speed), "
        f"{result.here.seconds / 3600:.1f} h on 2; cores for 1 h: {result.cores_for_target}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example-from", help="print the example plan from an earlier run's JSON, and stop")
    parser.add_argument("--n", type=int, nargs="+", default=[2000])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 224])
    parser.add_argument("--modes", nargs="+", default=["keys", "df"])
    parser.add_argument("--sources", nargs="+", default=["folder", "s3"])
    parser.add_argument("--json-out", default="plan_accuracy.json")
    parser.add_argument(
        "--real-from", help="an earlier run's JSON: run the plans only, against the real times it measured"
    )
    args = parser.parse_args()
    if args.example_from:
        example_plan(json.loads(Path(args.example_from).read_text()))
        return
    work = Path(tempfile.mkdtemp(prefix="sparkyfruit-plan-accuracy-"))
    os.environ.update(local_s3.FAKE_CREDENTIALS)  # the local server only: never real AWS
    env = {**os.environ, "COLUMNS": "300", "XDG_CACHE_HOME": str(work / "cache"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    server = local_s3.start(work / "moto.log") if "s3" in args.sources else None
    endpoint = server.endpoint if server else None
    rows = []
    earlier = json.loads(Path(args.real_from).read_text()) if args.real_from else None
    try:
        if earlier is None:
            warm_up(work, args.sizes, endpoint, env)
        for n in args.n:
            folder = work / f"images-{n}"
            make_images(n, folder)
            if server:
                local_s3.client(endpoint).create_bucket(Bucket=f"plan-{n}")
                upload(endpoint, f"plan-{n}", "Training", folder)
            sources = {"folder": str(folder), "s3": f"s3://plan-{n}/Training"}
            for size in args.sizes:
                for mode in args.modes:
                    for where in args.sources:
                        row = {"mode": mode, "source": where, "size": size, "n": n}
                        real = None
                        if earlier is not None:
                            real = next(r for r in earlier["rows"] if all(r[k] == row[k] for k in row))
                            real = {**real, "at": earlier["at"]}
                        row.update(case(sources[where], mode, size, work, endpoint, env, real))
                        rows.append(row)
                        print(
                            f"{mode:4} {where:6} {size:3} px N={n:>6}: predicted {row['predicted_s']:7.1f} s, "
                            f"real {row['real_s']:7.1f} s, error {row['error']:+.0%}",
                            flush=True,
                        )
    finally:
        if server:
            server.stop()
    print("\n| mode | source | px | N | predicted s | real s | error |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['mode']} | {row['source']} | {row['size']} | {row['n']:,} | {row['predicted_s']} | "
            f"{row['real_s']} | {row['error']:+.0%} |"
        )
    measured = {"rows": rows, "at": time.strftime("%Y-%m-%d %H:%M")}
    Path(args.json_out).write_text(json.dumps(measured, indent=1))
    if any((r["mode"], r["source"], r["size"]) == ("keys", "s3", 100) for r in rows):
        example_plan(measured)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
