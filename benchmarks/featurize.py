"""How close sparkyfruit runs to the CNN's own speed, side by side in ONE run on one machine.

Rows: the raw model limit (pre-decoded batches), sparkyfruit df and keys mode from a local S3 server
(moto over HTTP), the notebook baseline (benchmarks/notebook_baseline.py), cold starts of 10-image runs,
peak memory at two input sizes, and both modes through a proxy that adds S3-like latency per request.
Every run is a fresh process, timed from launch to exit (end to end), and every measurement is the
fastest of --repeats runs (2), the notebook's included; steady-state images/s comes from two input sizes,
(N - N_small) / (T(N) - T(N_small)), which cancels the fixed start-up cost.

    python -m benchmarks.featurize [--n 4000] [--sizes 224,100] [--skip-notebook]   (make bench)

Prints a table and writes JSON to benchmarks/results/featurize.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from benchmarks.data import make_images
from devtools import local_s3
from devtools.latency_proxy import LatencyProxy

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SPARKYFRUIT = str(Path(sys.executable).with_name("sparkyfruit"))


def measure(command: list[str], env: dict) -> dict:
    """Run a command; wall seconds and peak RSS of its whole process tree (driver, JVM, Python workers)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    root = psutil.Process(process.pid)
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-3000:]}")
    return {"wall_s": wall, "peak_rss_mb": peak / 2**20, "stdout": stdout[-500:]}


def upload(endpoint: str, bucket: str, prefix: str, folder: Path) -> None:
    client = local_s3.client(endpoint)
    files = sorted(p for p in folder.rglob("*.jpg"))
    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda p: client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(folder).as_posix()}"), files
            )
        )


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="sparkyfruit-bench-"))
        self.runs = 0
        self.server = None
        os.environ.update(local_s3.FAKE_CREDENTIALS)  # the local server only: never real AWS
        self.env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYSPARK_PYTHON": PYTHON,
            # the JVM class archives (sparkyfruit/spark/class_cache.py) start empty: the first runs record them
            "XDG_CACHE_HOME": str(self.work / "cache"),
        }

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def sparkyfruit(
        self, mode: str, size: int, n: int, endpoint: str | None, label: str | None = None, repeats: int | None = None
    ) -> dict:
        """Encode runs; endpoint None reads the local folder, else the S3 server (or proxy) at endpoint."""
        source = (
            ["--input", str(self.work / f"set-{n}")]
            if endpoint is None
            else ["--input", f"s3://bench/set-{n}", "--s3-endpoint", endpoint]
        )
        results = []
        for _ in range(repeats or self.args.repeats):
            self.runs += 1
            out = self.work / "out" / f"{mode}-{size}-{n}-{self.runs}"
            command = [
                SPARKYFRUIT,
                "encode",
                "--mode",
                mode,
                *source,
                "--output",
                str(out),
                "--model",
                self.args.model,
                "--weights",
                "none",
                "--image-size",
                str(size),
                "--quiet",
                *self.args.extra,
            ]
            server_cpu = self.server_cpu()
            result = measure(command, self.env)
            result["s3_server_cpu_s"] = self.server_cpu() - server_cpu
            shutil.rmtree(out, ignore_errors=True)
            where = "folder" if endpoint is None else "S3"
            self.log(
                f"{label or 'sparkyfruit ' + mode} ({where}) {size}px N={n}: {result['wall_s']:.1f} s, "
                f"{result['peak_rss_mb']:.0f} MB, S3 server CPU {result['s3_server_cpu_s']:.1f} s"
            )
            results.append(result)
        return best_of(results)

    def server_cpu(self) -> float:
        times = psutil.Process(self.server.pid).cpu_times()
        return times.user + times.system

    def notebook(self, size: int, n: int) -> dict:
        """The baseline reads the local folder: no S3 server cost counted against it."""
        out = self.work / "out" / f"notebook-{size}-{n}"
        command = [
            PYTHON,
            str(ROOT / "benchmarks" / "notebook_baseline.py"),
            str(self.work / f"set-{n}"),
            str(out),
            str(size),
        ]
        results = []
        for _ in range(self.args.repeats):
            results.append(measure(command, self.env))
            shutil.rmtree(out, ignore_errors=True)
            self.log(f"notebook {size}px N={n}: {results[-1]['wall_s']:.1f} s, {results[-1]['peak_rss_mb']:.0f} MB")
        return best_of(results)

    def raw(self, size: int) -> float:
        result = subprocess.run(
            [PYTHON, str(ROOT / "benchmarks" / "raw_limit.py"), self.args.model, str(size)],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        data = json.loads(result.stdout.strip().splitlines()[-1])
        self.log(f"raw limit {size}px: {data['images_per_second']:.1f} images/s (batch {data['best_batch']})")
        return data["images_per_second"]

    def run(self) -> dict:
        args = self.args
        n, small = args.n, args.n // 4
        sets = sorted({10, small, n, *(args.memory_sizes if not args.skip_memory else ())})
        self.log(f"making {sets} images in {self.work}")
        for count in sets:
            make_images(count, self.work / f"set-{count}")
        server = self.server = local_s3.start(log_path=self.work / "s3.log")
        proxy = None
        try:
            local_s3.client(server.endpoint).create_bucket(Bucket="bench")
            for count in sets:
                upload(server.endpoint, "bench", f"set-{count}", self.work / f"set-{count}")
            proxy = LatencyProxy(int(server.endpoint.rsplit(":", 1)[1]), args.latency_ms / 1000).start()
            return self._measure_all(server.endpoint, proxy, n, small)
        finally:
            if proxy:
                proxy.stop()
            server.stop()
            shutil.rmtree(self.work, ignore_errors=True)

    def _measure_all(self, endpoint: str, proxy: LatencyProxy, n: int, small: int) -> dict:
        args = self.args
        report = {
            "machine": machine(),
            "model": args.model,
            "n": n,
            "n_small": small,
            "repeats": args.repeats,
            "rows": [],
        }
        # A machine's first run from a folder records the driver JVM's class archive as it exits; the first
        # run from S3 resolves the S3A jars through Ivy (sparkyfruit/spark/session.py), and the next S3 run (a
        # measured one below, where the fastest of the repeats counts) records the archive with those jars.
        report["first_run_10_images_s"] = {
            f"df ({where})": self.sparkyfruit("df", args.sizes[0], 10, source, "first run", repeats=1)["wall_s"]
            for where, source in (("folder", None), ("S3", endpoint))
        }
        notebook_e2e = {}
        for size in args.sizes:
            raw = self.raw(size)
            report["rows"].append({"name": "raw model limit", "size": size, "steady_ips": raw})
            if not args.skip_notebook:
                t_small, t_n = self.notebook(size, small), self.notebook(size, n)
                notebook_e2e[size] = n / t_n["wall_s"]
                report["rows"].append(row("notebook baseline (folder)", size, n, small, t_small, t_n, raw, None))
            for where, source in (("folder", None), ("S3", endpoint)):
                for mode in ("df", "keys"):
                    t_small = self.sparkyfruit(mode, size, small, source)
                    t_n = self.sparkyfruit(mode, size, n, source)
                    report["rows"].append(
                        row(f"sparkyfruit {mode} ({where})", size, n, small, t_small, t_n, raw, notebook_e2e.get(size))
                    )
        size = args.sizes[0]
        label = f"+{args.latency_ms} ms/request"
        t_small = self.sparkyfruit("keys", size, small, proxy.endpoint, f"keys {label}")
        t_n = self.sparkyfruit("keys", size, n, proxy.endpoint, f"keys {label}")
        report["rows"].append(
            row(f"sparkyfruit keys (S3 {label})", size, n, small, t_small, t_n, None, notebook_e2e.get(size))
        )
        # df mode pays 3 sequential requests per image (Spark's binaryFile: getFileStatus, open; S3A: HEAD,
        # HEAD, GET): measured at the small size only, end to end.
        t_small = self.sparkyfruit("df", size, small, proxy.endpoint, f"df {label}")
        report["rows"].append(
            {
                "name": f"sparkyfruit df (S3 {label})",
                "size": size,
                "n": small,
                "wall_s": t_small["wall_s"],
                "e2e_ips": small / t_small["wall_s"],
                "peak_rss_mb": t_small["peak_rss_mb"],
                "s3_server_cpu_s": t_small["s3_server_cpu_s"],
            }
        )
        cold = {
            f"{mode} ({where})": self.sparkyfruit(mode, size, 10, source, "cold start")["wall_s"]
            for where, source in (("folder", None), ("S3", endpoint))
            for mode in ("df", "keys")
        }
        if not args.skip_notebook:
            cold["notebook (folder)"] = self.notebook(size, 10)["wall_s"]
        report["cold_start_10_images_s"] = cold
        if not args.skip_memory:
            size = args.sizes[-1]
            report["peak_rss_mb_by_n"] = {}
            raw = next(r["steady_ips"] for r in report["rows"] if r["name"] == "raw model limit" and r["size"] == size)
            for mode in ("df", "keys"):
                runs = {count: self.sparkyfruit(mode, size, count, None, "memory") for count in args.memory_sizes}
                report["peak_rss_mb_by_n"][f"{mode} (folder, {size} px)"] = {
                    count: result["peak_rss_mb"] for count, result in runs.items()
                }
                # At 100 px N = 4,000 runs only ~4 s longer than N = 1,000, close to the run-to-run noise of
                # start-up; the memory runs' wider span (2,000 -> 8,000) gives a steadier figure for free.
                (fewest, t_fewest), (most, t_most) = min(runs.items()), max(runs.items())
                report["rows"].append(
                    row(
                        f"sparkyfruit {mode} (folder, N {fewest:,} -> {most:,})",
                        size,
                        most,
                        fewest,
                        t_fewest,
                        t_most,
                        raw,
                        None,
                    )
                )
        return report


def best_of(results: list[dict]) -> dict:
    """The fastest of repeated runs (noise on a busy machine only ever adds time), with the largest peak
    RSS of them (memory is not noise to be filtered out) and every wall time, for the JSON."""
    best = dict(min(results, key=lambda r: r["wall_s"]))
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in results)
    best["walls_s"] = [round(r["wall_s"], 2) for r in results]
    return best


def row(name, size, n, small, t_small, t_n, raw, baseline_e2e_ips):
    steady = (n - small) / (t_n["wall_s"] - t_small["wall_s"]) if t_n["wall_s"] > t_small["wall_s"] else None
    e2e = n / t_n["wall_s"]
    return {
        "name": name,
        "size": size,
        "n": n,
        "wall_s": t_n["wall_s"],
        "e2e_ips": e2e,
        "steady_ips": steady,
        "startup_s": t_small["wall_s"] - small / steady if steady else None,
        "vs_raw": steady / raw if steady and raw else None,
        "vs_notebook_e2e": e2e / baseline_e2e_ips if baseline_e2e_ips else None,
        "peak_rss_mb": t_n["peak_rss_mb"],
        "s3_server_cpu_s": t_n.get("s3_server_cpu_s"),
    }


def machine() -> dict:
    from sparkyfruit.output_format import library_version

    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "pyspark": library_version("pyspark"),
        "tensorflow": library_version("tensorflow", "tensorflow-cpu"),
        "processor": platform.processor() or platform.machine(),
    }


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value, spec=".1f"):
        return "-" if value is None else format(value, spec)

    table = Table(
        title=f"{report['model']}, N = {report['n']} (steady state from N = {report['n_small']} and "
        f"{report['n']}; each time the fastest of {report['repeats']} runs)"
    )
    for column in [
        "run",
        "px",
        "N",
        "end-to-end s",
        "e2e img/s",
        "steady img/s",
        "start-up s",
        "× raw",
        "× notebook e2e",
        "peak RSS MB",
        "S3 server CPU s",
    ]:
        table.add_column(column, justify="left" if column == "run" else "right")
    for r in report["rows"]:
        table.add_row(
            r["name"],
            str(r["size"]),
            str(r.get("n", "-")),
            fmt(r.get("wall_s")),
            fmt(r.get("e2e_ips")),
            fmt(r.get("steady_ips")),
            fmt(r.get("startup_s")),
            fmt(r.get("vs_raw"), ".2f"),
            fmt(r.get("vs_notebook_e2e"), ".2f"),
            fmt(r.get("peak_rss_mb"), ".0f"),
            fmt(r.get("s3_server_cpu_s")),
        )
    console = Console(width=170)
    console.print(table)
    console.print(
        "cold start, 10 images, whole process: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in report["cold_start_10_images_s"].items())
    )
    console.print(
        "first run on a machine (folder: records the class archive; S3: resolves the S3A jars), "
        "10 images: " + ", ".join(f"{k} {v:.1f} s" for k, v in report["first_run_10_images_s"].items())
    )
    for mode, by_n in report.get("peak_rss_mb_by_n", {}).items():
        console.print(f"peak RSS {mode}: " + ", ".join(f"N={k}: {v:.0f} MB" for k, v in by_n.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--sizes", default="224,100")
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--latency-ms", type=int, default=30)
    parser.add_argument("--memory-sizes", default="2000,8000")
    parser.add_argument("--repeats", type=int, default=2, help="runs per measurement; the fastest counts")
    parser.add_argument("--skip-notebook", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "featurize.json"))
    parser.add_argument("extra", nargs="*", help="extra arguments for every sparkyfruit encode (after --)")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.memory_sizes = [int(s) for s in args.memory_sizes.split(",")]
    started = time.perf_counter()
    report = Bench(args).run()
    report["benchmark_seconds"] = time.perf_counter() - started
    report["command"] = " ".join(["python -m benchmarks.featurize", *sys.argv[1:]])
    print_table(report)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(f"JSON: {args.output}")


if __name__ == "__main__":
    main()
