"""Which process sets the pace: one run per mode and source, with the CPU seconds of each kind of process
(the driver, the JVM, the Python workers) and of the local S3 server, and the cores they used together.

A run that uses all the machine's cores is bound by CPU; one that leaves some idle waits on something, and
from the local S3 server (moto, one Python process) that is the server's answers. N generated images at
100 px, MobileNetV2 with random weights, each run a fresh process timed from launch to exit, after
uncounted runs (the network's conversion, the S3A jars and the class archives are once per machine:
featurize's Bench.pay_once_per_machine_costs).

    python -m benchmarks.cores_used [--n 4000] [--modes keys,df] [--sources folder,S3]

Prints a table and writes JSON to benchmarks/results/cores_used.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from benchmarks.data import make_images
from benchmarks.featurize import PROCESS_KINDS, ROOT, Bench, machine, upload
from devtools import local_s3

SIZE = 100


def run(args) -> dict:
    bench = Bench(argparse.Namespace(model="mobilenet_v2", extra=[], repeats=1))
    for count in (10, args.n):
        make_images(count, bench.work / f"set-{count}")
    server = bench.server = local_s3.start(log_path=bench.work / "s3.log")
    try:
        local_s3.client(server.endpoint).create_bucket(Bucket="bench")
        for count in (10, args.n):
            upload(server.endpoint, "bench", f"set-{count}", bench.work / f"set-{count}")
        bench.pay_once_per_machine_costs(SIZE, server.endpoint)
        rows = []
        for source in args.sources:
            for mode in args.modes:
                result = bench.sparkyfruit(mode, SIZE, args.n, server.endpoint if source == "S3" else None)
                cpu = {**result["cpu_s"], "S3 server": result["s3_server_cpu_s"]}
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
        shutil.rmtree(bench.work, ignore_errors=True)


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
