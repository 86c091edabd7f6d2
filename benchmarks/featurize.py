"""sparkyfruit against its peers (Ray Data, Daft) and the CNN's own speed, side by side in ONE run.

Rows, at each image size and from a folder and from a local S3 server (moto over HTTP): the raw model
limit (pre-decoded batches), sparkyfruit df and keys mode, and the peers as their users would write them
(benchmarks/peers.py). Then both modes through a proxy that adds S3-like latency per request (with the
requests each image cost), cold starts of 10-image runs, and peak memory at two input sizes. Every run is
a fresh process, timed from launch to exit (end to end), and every measurement is the fastest of
--repeats runs (2); steady-state images/s comes from two input sizes, (N - N/4) / (T(N) - T(N/4)), which
cancels the fixed start-up cost. "× best peer" divides by the better of Ray Data and Daft in the same
size and source.

    python -m benchmarks.featurize [--sizes 224:4000,100:8000] [--notebook]   (make bench)

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


def measure(command: list[str], env: dict, series: list | None = None) -> dict:
    """Run a command; wall seconds, peak RSS of its whole process tree (driver, JVM, Python workers) and the
    CPU seconds of each kind of process in it (the last sample of each process, 0.1 s apart). With `series`,
    every sample's (time, CPU seconds by kind) is appended to it."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    root = psutil.Process(process.pid)
    cpu: dict[int, tuple[str, float]] = {}
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
                for child in tree:
                    times = child.cpu_times()
                    cpu[child.pid] = (process_kind(child, root), times.user + times.system)
            except psutil.Error:
                pass
            if series is not None:
                series.append((time.time(), cpu_by_kind(cpu)))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-3000:]}")
    return {"wall_s": wall, "peak_rss_mb": peak / 2**20, "cpu_s": cpu_by_kind(cpu), "stdout": stdout[-500:]}


PROCESS_KINDS = ("driver", "jvm", "workers")


def cpu_by_kind(cpu: dict[int, tuple[str, float]]) -> dict[str, float]:
    totals = dict.fromkeys(PROCESS_KINDS, 0.0)
    for kind, seconds in list(cpu.values()):
        totals[kind] += seconds
    return totals


def process_kind(process: psutil.Process, root: psutil.Process) -> str:
    """The command's own process is the driver (or a peer's single process); the JVM; every other process
    (Spark's Python workers, a peer's actors and helpers)."""
    if process.pid == root.pid:
        return "driver"
    return "jvm" if process.name() == "java" else "workers"


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
            # the JVM class archives (sparkyfruit/spark/class_cache.py) start empty: the second runs record them
            "XDG_CACHE_HOME": str(self.work / "cache"),
        }

    def log(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def sparkyfruit(
        self,
        mode: str,
        size: int,
        n: int,
        endpoint: str | None,
        label: str | None = None,
        repeats: int | None = None,
        extra: tuple[str, ...] = (),
        model: str | None = None,
        env: dict | None = None,
    ) -> dict:
        """Encode runs; endpoint None reads the local folder, else the S3 server (or proxy) at endpoint.
        `model`: instead of --model's; `env`: added to the runs' environment."""
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
                model or self.args.model,
                "--weights",
                "none",
                "--image-size",
                str(size),
                "--quiet",
                *self.args.extra,
                *extra,
            ]
            server_cpu = self.server_cpu()
            result = measure(command, {**self.env, **(env or {})})
            result["s3_server_cpu_s"] = self.server_cpu() - server_cpu
            shutil.rmtree(out, ignore_errors=True)
            where = "folder" if endpoint is None else "S3"
            self.log(
                f"{label or 'sparkyfruit ' + mode} ({where}) {size}px N={n}: {result['wall_s']:.1f} s, "
                f"{result['peak_rss_mb']:.0f} MB, S3 server CPU {result['s3_server_cpu_s']:.1f} s"
            )
            results.append(result)
        return best_of(results)

    def pay_once_per_machine_costs(self, size: int, endpoint: str) -> dict[str, float]:
        """Runs not counted, of 10 images (set-10), for what a user pays once per machine. From a folder, the
        first converts the network and leaves the class archive's marker, and the second records the driver
        JVM's class archive as it exits. From S3, the first resolves the S3A jars through Ivy
        (sparkyfruit/spark/session.py), and the next two leave the marker and record the archive with those
        jars, an archive of its own. Returns each source's first run's seconds."""
        first = {}
        for where, source, runs in (("folder", None, 2), ("S3", endpoint, 3)):
            walls = [self.sparkyfruit("df", size, 10, source, "first runs", repeats=1)["wall_s"] for _ in range(runs)]
            first[f"df ({where})"] = walls[0]
        return first

    def server_cpu(self) -> float:
        times = psutil.Process(self.server.pid).cpu_times()
        return times.user + times.system

    def peer(self, name: str, size: int, n: int, endpoint: str | None) -> dict:
        """A peer's runs (benchmarks/peers.py), each a fresh process, with the settings --ray/--daft give."""
        source = ["--s3-endpoint", endpoint] if endpoint else []
        results = []
        for _ in range(self.args.repeats):
            self.runs += 1
            out = self.work / "out" / f"{name}-{size}-{n}-{self.runs}"
            command = [
                PYTHON,
                "-m",
                "benchmarks.peers",
                name,
                str(self.work / f"set-{n}") if endpoint is None else f"s3://bench/set-{n}",
                str(out),
                "--size",
                str(size),
                "--model",
                self.args.model,
                *source,
                *self.args.peer_settings[name].split(),
            ]
            server_cpu = self.server_cpu()
            result = measure(command, {**self.env, "PYTHONPATH": str(ROOT)})
            result["s3_server_cpu_s"] = self.server_cpu() - server_cpu
            shutil.rmtree(out, ignore_errors=True)
            where = "folder" if endpoint is None else "S3"
            self.log(f"{name} ({where}) {size}px N={n}: {result['wall_s']:.1f} s, {result['peak_rss_mb']:.0f} MB")
            results.append(result)
        return best_of(results)

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

    def raw(self, size: int, model: str | None = None, alpha: float = 1.0, engine: str = "tensorflow") -> dict:
        """The raw limit: the better of one process on every core and one single-thread process per core."""
        model = model or self.args.model
        one = self._raw_process(size, None, model, alpha, engine)
        with ThreadPoolExecutor(os.cpu_count()) as pool:
            per_core = sum(pool.map(lambda _: self._raw_process(size, 1, model, alpha, engine), range(os.cpu_count())))
        best = max(one, per_core)
        self.log(
            f"raw limit {model} {alpha:g} {size}px on {engine}: one process {one:.1f}, "
            f"one per core {per_core:.1f} images/s"
        )
        return {"images_per_second": best, "one_process": one, "one_per_core": per_core, "engine": engine}

    def _raw_process(self, size: int, threads: int | None, model: str, alpha: float, engine: str) -> float:
        command = [PYTHON, str(ROOT / "benchmarks" / "raw_limit.py"), model, str(size), "6"]
        command += [str(threads)] if threads else []
        result = subprocess.run(
            [*command, "--alpha", str(alpha), "--engine", engine],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(result.stdout.strip().splitlines()[-1])["images_per_second"]

    def run(self) -> dict:
        args = self.args
        counts = {10, *(n for _, n in args.sizes), *(n // 4 for _, n in args.sizes)}
        sets = sorted(counts | (set(args.memory_sizes) if not args.skip_memory else set()))
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
            return self._measure_all(server.endpoint, proxy)
        finally:
            if proxy:
                proxy.stop()
            server.stop()
            shutil.rmtree(self.work, ignore_errors=True)

    def _measure_all(self, endpoint: str, proxy: LatencyProxy) -> dict:
        args = self.args
        report = {
            "machine": machine(),
            "model": args.model,
            "sizes": {size: n for size, n in args.sizes},
            "repeats": args.repeats,
            "peer_settings": args.peer_settings,
            "rows": [],
        }
        report["first_run_10_images_s"] = self.pay_once_per_machine_costs(args.sizes[0][0], endpoint)
        # one run per further size converts the network at that size, for each engine that converts
        converting = [engine for engine in args.engines if engine != "tensorflow"]
        for size, _ in args.sizes[1:]:
            for engine in converting:
                self.sparkyfruit("df", size, 10, None, "conversion", repeats=1, extra=("--engine", engine))
        for size, n in args.sizes:
            small = n // 4
            raw = self.raw(size)
            report["rows"].append(
                {"name": "raw model limit", "size": size, "steady_ips": raw["images_per_second"], "raw": raw}
            )
            raw = raw["images_per_second"]
            notebook_e2e = None
            if args.notebook:
                t_small, t_n = self.notebook(size, small), self.notebook(size, n)
                notebook_e2e = n / t_n["wall_s"]
                report["rows"].append(row("notebook baseline (folder)", size, n, small, t_small, t_n, raw, None))
            for where, source in (("folder", None), ("S3", endpoint)):
                group = []
                for engine in args.engines:
                    for mode in ("df", "keys"):
                        extra = ("--engine", engine)
                        t_small = self.sparkyfruit(mode, size, small, source, extra=extra)
                        t_n = self.sparkyfruit(mode, size, n, source, extra=extra)
                        name = f"sparkyfruit {mode}" + ("" if engine == "auto" else f", --engine {engine}")
                        group.append(row(f"{name} ({where})", size, n, small, t_small, t_n, raw, notebook_e2e))
                for name in ("ray", "daft"):
                    t_small, t_n = self.peer(name, size, small, source), self.peer(name, size, n, source)
                    group.append(row(f"{PEER_NAMES[name]} ({where})", size, n, small, t_small, t_n, raw, notebook_e2e))
                against_best_peer(group)
                report["rows"] += group
        report["latency"] = [] if args.skip_latency else self._latency(endpoint, proxy)
        size = args.sizes[0][0]
        cold = {
            f"{mode} ({where})": self.sparkyfruit(mode, size, 10, source, "cold start")["wall_s"]
            for where, source in (("folder", None), ("S3", endpoint))
            for mode in ("df", "keys")
        }
        if args.notebook:
            cold["notebook (folder)"] = self.notebook(size, 10)["wall_s"]
        report["cold_start_10_images_s"] = cold
        if not args.skip_memory:
            size = args.sizes[-1][0]
            report["peak_rss_mb_by_n"] = {}
            for mode in ("df", "keys"):
                runs = {count: self.sparkyfruit(mode, size, count, None, "memory") for count in args.memory_sizes}
                report["peak_rss_mb_by_n"][f"{mode} (folder, {size} px)"] = {
                    count: result["peak_rss_mb"] for count, result in runs.items()
                }
        return report

    def _latency(self, endpoint: str, proxy: LatencyProxy) -> list[dict]:
        """Both modes at the first size and its N/4, straight to the S3 server and through the proxy that
        adds --latency-ms to every request; the proxy counts the requests each image cost."""
        size, n = self.args.sizes[0]
        small = n // 4
        rows = []
        # df mode reads one file at a time per task: the lever tried is more task slots than cores
        slots = f"local[{2 * os.cpu_count()}]"
        for mode, extra in (("df", ()), ("df", ("--master", slots)), ("keys", ())):
            direct = self.sparkyfruit(mode, size, small, endpoint, f"{mode} direct {' '.join(extra)}", extra=extra)
            before = proxy.requests
            delayed = self.sparkyfruit(
                mode, size, small, proxy.endpoint, f"{mode} +{self.args.latency_ms} ms {' '.join(extra)}", extra=extra
            )
            rows.append(
                {
                    "name": f"sparkyfruit {mode} (S3 +{self.args.latency_ms} ms/request"
                    + (f", --master {slots})" if extra else ")"),
                    "size": size,
                    "n": small,
                    "wall_s": delayed["wall_s"],
                    "direct_wall_s": direct["wall_s"],
                    "vs_direct": direct["wall_s"] / delayed["wall_s"],
                    "requests_per_image": (proxy.requests - before) / (small * self.args.repeats),
                }
            )
        return rows


PEER_NAMES = {"ray": "Ray Data", "daft": "Daft"}
# the best settings of those tried (python -m benchmarks.peers tune; docs/performance.md#peers)
PEER_DEFAULTS = {"ray": "--actors 2 --actor-cpus 0.5 --threads 1", "daft": "--actors 1 --actor-cpus 1 --threads 2"}


def against_best_peer(group: list[dict]) -> None:
    """Each sparkyfruit row of one size and source divided by the better peer's, steady and end to end."""
    peers = [r for r in group if not r["name"].startswith("sparkyfruit")]
    for key in ("steady_ips", "e2e_ips"):
        best = max((r[key] for r in peers if r[key]), default=None)
        for r in group:
            r[f"vs_best_peer_{key.split('_')[0]}"] = r[key] / best if best and r[key] else None


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
        **cpu_model(),
    }


def cpu_model() -> dict:
    """The CPU's name and its vector extensions (Linux): TensorFlow's CPU kernels gain far more from AVX-512
    than XNNPACK's do, so runs on two machines compare only with these beside them."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in text.split("\n\n")[0].splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = fields.get("flags", "").split()
    wanted = ("avx2", "avx512f", "avx512_vnni", "amx_tile")
    return {"cpu": fields.get("model name", ""), "cpu_vector_extensions": [flag for flag in wanted if flag in flags]}


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value, spec=".1f"):
        return "-" if value is None else format(value, spec)

    sizes = ", ".join(f"{size} px: N = {n // 4:,} and {n:,}" for size, n in report["sizes"].items())
    table = Table(
        title=f"{report['model']} ({sizes}; steady state from the two; the fastest of {report['repeats']} runs)"
    )
    columns = {
        "run": lambda r: r["name"],
        "px": lambda r: str(r["size"]),
        "N": lambda r: str(r.get("n", "-")),
        "end-to-end s": lambda r: fmt(r.get("wall_s")),
        "e2e img/s": lambda r: fmt(r.get("e2e_ips")),
        "steady img/s": lambda r: fmt(r.get("steady_ips")),
        "start-up s": lambda r: fmt(r.get("startup_s")),
        "× raw": lambda r: fmt(r.get("vs_raw"), ".2f"),
        "× best peer steady": lambda r: fmt(r.get("vs_best_peer_steady"), ".2f"),
        "× best peer e2e": lambda r: fmt(r.get("vs_best_peer_e2e"), ".2f"),
        "peak RSS MB": lambda r: fmt(r.get("peak_rss_mb"), ".0f"),
        "S3 server CPU s": lambda r: fmt(r.get("s3_server_cpu_s")),
    }
    if any(r.get("vs_notebook_e2e") for r in report["rows"]):
        columns["× notebook e2e"] = lambda r: fmt(r.get("vs_notebook_e2e"), ".2f")
    for column in columns:
        table.add_column(column, justify="left" if column == "run" else "right")
    for r in report["rows"]:
        table.add_row(*(cell(r) for cell in columns.values()))
    console = Console(width=200)
    console.print(table)
    for r in report["rows"]:
        if "raw" in r:
            console.print(
                f"raw model limit {r['size']} px: one process on every core {r['raw']['one_process']:.0f} images/s, "
                f"one single-thread process per core {r['raw']['one_per_core']:.0f} images/s"
            )
    for r in report["latency"]:
        console.print(
            f"{r['name']}, {r['size']} px, N = {r['n']:,}: {r['wall_s']:.1f} s against {r['direct_wall_s']:.1f} s "
            f"without the proxy ({r['vs_direct']:.2f}× its speed), {r['requests_per_image']:.2f} requests per image"
        )
    console.print(
        "cold start, 10 images, whole process: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in report["cold_start_10_images_s"].items())
    )
    console.print(
        "first run on a machine (folder: converts the network; S3: resolves the S3A jars), "
        "10 images: " + ", ".join(f"{k} {v:.1f} s" for k, v in report["first_run_10_images_s"].items())
    )
    for mode, by_n in report.get("peak_rss_mb_by_n", {}).items():
        console.print(f"peak RSS {mode}: " + ", ".join(f"N={k}: {v:.0f} MB" for k, v in by_n.items()))


def markdown(report: dict) -> str:
    """The main table as Markdown, for docs/performance.md."""

    def fmt(value, spec=".1f"):
        return "" if value is None else format(value, spec)

    lines = [
        "| run | px | N | end-to-end s | e2e img/s | steady img/s | start-up s | × raw | × best peer steady "
        "| × best peer e2e | peak RSS MB | S3 server CPU s |",
        "| --- " * 12 + "|",
    ]
    for r in report["rows"]:
        cells = [
            r["name"],
            str(r["size"]),
            str(r.get("n", "")),
            fmt(r.get("wall_s")),
            fmt(r.get("e2e_ips")),
            fmt(r.get("steady_ips")),
            fmt(r.get("startup_s")),
            fmt(r.get("vs_raw"), ".2f"),
            fmt(r.get("vs_best_peer_steady"), ".2f"),
            fmt(r.get("vs_best_peer_e2e"), ".2f"),
            fmt(r.get("peak_rss_mb"), ".0f"),
            fmt(r.get("s3_server_cpu_s")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--markdown"]:  # python -m benchmarks.featurize --markdown [JSON]
        path = sys.argv[2] if len(sys.argv) > 2 else ROOT / "benchmarks" / "results" / "featurize.json"
        print(markdown(json.loads(Path(path).read_text())))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="224:4000,100:8000", help="SIZE:N pairs; N/4 is the small run")
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--latency-ms", type=int, default=30)
    parser.add_argument("--memory-sizes", default="2000,8000")
    parser.add_argument("--repeats", type=int, default=2, help="runs per measurement; the fastest counts")
    parser.add_argument("--ray", default=PEER_DEFAULTS["ray"], help="benchmarks.peers settings for Ray Data")
    parser.add_argument("--daft", default=PEER_DEFAULTS["daft"], help="benchmarks.peers settings for Daft")
    parser.add_argument("--notebook", action="store_true", help="also the notebook baseline (issue 3's)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-latency", action="store_true", help="no runs through the latency proxy")
    parser.add_argument(
        "--engines", default="auto,tensorflow", help="the --engine values of sparkyfruit's rows (the default first)"
    )
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "featurize.json"))
    parser.add_argument("extra", nargs="*", help="extra arguments for every sparkyfruit encode (after --)")
    args = parser.parse_args()
    args.sizes = [tuple(int(x) for x in pair.split(":")) for pair in args.sizes.split(",")]
    args.memory_sizes = [int(s) for s in args.memory_sizes.split(",")]
    args.engines = args.engines.split(",")
    args.peer_settings = {"ray": args.ray, "daft": args.daft}
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
