"""Which process sets the pace: one run per mode and source, with the CPU seconds of each kind of process
(the driver, the JVM, the Python workers) and of the local S3 server, and the cores they used together.

A run that uses all the machine's cores is bound by CPU; one that leaves some idle waits on something, and
from the local S3 server (moto, one Python process) that is the server's answers. N generated images at
100 px, MobileNetV2 with random weights, each run a fresh process timed from launch to exit, after one
uncounted run per source (the network's conversion, the S3A jars and the class archives are once per
machine).

    python -m benchmarks.cores_used [--n 4000] [--modes keys,df] [--sources folder,S3]

Prints a table and writes JSON to benchmarks/results/cores_used.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import psutil

from benchmarks.data import make_images
from benchmarks.featurize import PROCESS_KINDS, ROOT, SPARKYFRUIT, machine, measure, upload
from devtools import local_s3

SIZE = 100


def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="sparkyfruit-cores-"))
    os.environ.update(local_s3.FAKE_CREDENTIALS)  # the local server only: never real AWS
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "XDG_CACHE_HOME": str(work / "cache")}
    images = work / "images"
    make_images(args.n, images)
    server = local_s3.start(log_path=work / "s3.log")
    try:
        local_s3.client(server.endpoint).create_bucket(Bucket="bench")
        upload(server.endpoint, "bench", "images", images)

        def server_cpu() -> float:
            times = psutil.Process(server.pid).cpu_times()
            return times.user + times.system

        def encode(mode: str, source: str, output: Path) -> dict:
            where = ["--input", str(images)] if source == "folder" else ["--input", "s3://bench/images"]
            where += ["--s3-endpoint", server.endpoint] if source == "S3" else []
            command = [SPARKYFRUIT, "encode", "--mode", mode, *where, "--output", str(output), "--model",
                       "mobilenet_v2", "--weights", "none", "--image-size", str(SIZE), "--quiet"]  # fmt: skip
            before = server_cpu()
            result = measure(command, env)
            result["cpu_s"]["S3 server"] = server_cpu() - before
            shutil.rmtree(output, ignore_errors=True)
            return result

        rows = []
        for source in args.sources:
            for _ in range(3 if source == "S3" else 2):  # resolve the jars, leave the marker, record the archive
                encode("df", source, work / "uncounted")
            for mode in args.modes:
                result = encode(mode, source, work / "out")
                cpu = result["cpu_s"]
                row = {
                    "mode": mode,
                    "source": source,
                    "n": args.n,
                    "wall_s": result["wall_s"],
                    "cpu_s": cpu,
                    "cores_used": sum(cpu.values()) / result["wall_s"],
                    "cpu_ms_per_image": {kind: 1000 * seconds / args.n for kind, seconds in cpu.items()},
                }
                print(line(row), flush=True)
                rows.append(row)
        return {"machine": machine(), "cores": os.cpu_count(), "size": SIZE, "rows": rows}
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def line(row: dict) -> str:
    per_image = "  ".join(f"{kind} {ms:5.2f}" for kind, ms in row["cpu_ms_per_image"].items())
    return (
        f"{row['mode']:<5} {row['source']:<7} {row['n']:>6} {row['wall_s']:7.1f} s  "
        f"{row['cores_used']:5.2f} cores   CPU-ms per image: {per_image}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4000, help="images per run")
    parser.add_argument("--modes", type=lambda text: text.split(","), default=["keys", "df"])
    parser.add_argument("--sources", type=lambda text: text.split(","), default=["folder", "S3"])
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "cores_used.json"))
    args = parser.parse_args(argv)
    print(
        f"{'mode':<5} {'source':<7} {'N':>6} {'wall':>9}  {'used':>11}   kinds: {', '.join(PROCESS_KINDS)}, S3 server"
    )
    report = run(args)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1))
    print(f"JSON: {args.output}")


if __name__ == "__main__":
    main()
