"""Fruits-360's own 100 px: what sparkyfruit spends around the network per image, and its start-up.

In ONE run, from a folder of N images at 100 px, for MobileNetV2 and for MobileNet v1 alpha 0.25 (the
cheap-model case):
- the raw model limit (benchmarks/raw_limit.py: the better of one process on every core and one
  single-thread process per core), on TensorFlow, and on LiteRT unless the runs use --engine tensorflow;
- sparkyfruit df and keys mode at N/4 and N, on --engine (default auto: LiteRT): steady images/s
  ((N - N/4) / (T(N) - T(N/4))), its share of the raw limit of its own engine and of TensorFlow's, and the
  CPU each image costs outside the network, in milliseconds, from the CPU seconds of every process between
  the two sizes (driver, JVM, Python workers), less the network's own CPU per image (cores / the raw limit
  of the runs' engine);
- Ray Data and Daft with MobileNetV2, the same way (benchmarks/peers.py);
- the start-up split: 10-image runs of both modes, from the folder and from the local S3 server, with the
  timeline that the driver and the workers write (sparkyfruit/timeline.py): Python and the CLI, the JVM and
  session (the driver's conversion of the network runs beside it), Spark's listing (df), the first Python
  task, the engine's load (LiteRT's converted model; or TensorFlow's import, the model build and the first
  batch's trace), the rest of the job (write, commit), and the stop; for each of --engines; next to the
  fixed cost read off the two sizes.

    python -m benchmarks.overhead [--n 8000] [--repeats 2] [--models mobilenet_v2 mobilenet] [--engine auto]
                                  [--startup-only | --skip-startup] [--engines auto,tensorflow]

Prints a table and writes JSON to benchmarks/results/overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from benchmarks.data import make_images
from benchmarks.featurize import (
    PEER_DEFAULTS,
    PEER_NAMES,
    PROCESS_KINDS,
    ROOT,
    Bench,
    against_best_peer,
    machine,
    row,
    upload,
)
from devtools import local_s3

# (model, alpha, N as a multiple of --n): the cheap network needs more images for the same seconds of signal
MODELS = (("mobilenet_v2", 1.0, 1), ("mobilenet", 0.25, 4))
SIZE = 100
STARTUP_IMAGES = 10


class OverheadBench(Bench):
    def timeline_run(self, mode: str, endpoint: str | None, engine: str = "auto") -> dict:
        """The fastest of --repeats 10-image runs, with its timeline split into phases."""
        best = None
        for _ in range(self.args.repeats):
            path = self.work / f"timeline-{self.runs}.txt"
            launched = time.time()
            result = self.sparkyfruit(
                mode,
                SIZE,
                STARTUP_IMAGES,
                endpoint,
                f"start-up, {engine}",
                repeats=1,
                extra=("--engine", engine),
                env={"SPARKYFRUIT_TIMELINE": str(path)},
            )
            result["phases"] = phases(path.read_text(), launched, result["wall_s"])
            if best is None or result["wall_s"] < best["wall_s"]:
                best = result
        return best

    def measure_all(self, endpoint: str) -> dict:
        args = self.args
        report = {"machine": machine(), "size": SIZE, "repeats": args.repeats, "rows": [], "startup": {}}
        for model, alpha, times in () if args.startup_only else selected(args.models):
            n = args.n * times
            small = n // 4
            name = f"{model} {alpha:g}" if model == "mobilenet" else model
            # the network's own limit on TensorFlow, and on LiteRT where the runs use it (--engine auto): the
            # runs' share of their own engine's limit is what the CPU around the network costs
            runs_on = "tensorflow" if args.engine == "tensorflow" else "litert"  # auto: LiteRT, here
            limits = {engine: self.raw(SIZE, model, alpha, engine) for engine in dict.fromkeys(("tensorflow", runs_on))}
            for engine, limit in limits.items():
                report["rows"].append(
                    {"name": f"raw limit ({engine})", "model": name, "steady_ips": limit["images_per_second"]}
                )
            raw = limits[runs_on]["images_per_second"]
            network_ms = 1000 * os.cpu_count() / raw
            extra = ("--alpha", str(alpha), "--engine", args.engine)
            # not counted: a network's first run converts it, and the next records the JVM's class archive
            # (XDG_CACHE_HOME starts empty); a user pays both once per machine
            for _ in range(2):
                self.sparkyfruit("df", SIZE, STARTUP_IMAGES, None, "warm-up", repeats=1, extra=extra, model=model)
            group = []
            for mode in ("df", "keys"):
                t_small = self.sparkyfruit(mode, SIZE, small, None, extra=extra, model=model)
                t_n = self.sparkyfruit(mode, SIZE, n, None, extra=extra, model=model)
                result = row(f"sparkyfruit {mode}", SIZE, n, small, t_small, t_n, raw, None)
                result["vs_raw_tensorflow"] = (
                    result["steady_ips"] / limits["tensorflow"]["images_per_second"] if result["steady_ips"] else None
                )
                result.update(per_image_ms(t_small, t_n, n - small, network_ms))
                group.append(result)
            if model == "mobilenet_v2" and not args.skip_peers:
                self.args.model = model
                for peer in ("ray", "daft"):
                    t_small, t_n = self.peer(peer, SIZE, small, None), self.peer(peer, SIZE, n, None)
                    result = row(PEER_NAMES[peer], SIZE, n, small, t_small, t_n, raw["images_per_second"], None)
                    result.update(per_image_ms(t_small, t_n, n - small, network_ms))
                    group.append(result)
            if len(group) > 2:
                against_best_peer(group)
            for result in group:
                result["model"] = name
            report["rows"] += group
        if args.skip_startup:
            return report
        self.pay_once_per_machine_costs(SIZE, endpoint)
        for engine in args.engines:
            for where, source in (("folder", None), ("S3", endpoint)):
                for mode in ("df", "keys"):
                    name = f"{mode} ({where})" + ("" if engine == "auto" else f", {engine}")
                    report["startup"][name] = self.timeline_run(mode, source, engine)["phases"]
        return report


def selected(names: list[str] | None) -> tuple:
    """The MODELS rows named by --models (all by default)."""
    return tuple(entry for entry in MODELS if not names or entry[0] in names)


def per_image_ms(t_small: dict, t_n: dict, images: int, network_ms: float) -> dict:
    """CPU milliseconds per image between the two sizes, by kind of process, and what is left of it once the
    network's own CPU per image is taken away."""
    by_kind = {kind: 1000 * (t_n["cpu_s"][kind] - t_small["cpu_s"][kind]) / images for kind in PROCESS_KINDS}
    total = sum(by_kind.values())
    return {"cpu_ms_per_image": by_kind, "network_ms": network_ms, "overhead_ms": total - network_ms}


# (phase, its end event, the events it may start from, the first found); worker events take the first worker
# to reach them
PHASES = (
    ("Python and the CLI", "run started", ()),
    ("JVM and session", "session started", ("session starting",)),
    ("engine ready after the session (conversion)", "driver prepared the engine", ("session started",)),
    ("Spark lists the input (df)", "spark listed the input", ("driver prepared the engine", "session started")),
    ("Spark plans the input (df)", "spark planned the input", ("spark listed the input",)),
    ("job start → workers' daemon ready", "worker daemon preloaded", ("shard 1 job started",)),
    ("→ first Python task", "worker task started", ("worker daemon preloaded", "shard 1 job started")),
    ("LiteRT model load", "worker loaded the converted model", ("worker task started",)),
    ("TensorFlow import", "worker imported tensorflow", ("worker task started",)),
    ("model build", "worker built the model", ("worker imported tensorflow",)),
    ("first batch", "worker encoded its first batch", ("worker built the model", "worker loaded the converted model")),
    ("rest of the job (write, commit)", "shard 1 committed", ("worker encoded its first batch",)),
    ("manifest and stop", "session stopped", ("shard 1 committed",)),
)


def phases(timeline: str, launched: float, wall: float) -> dict:
    """Seconds per phase from a timeline (sparkyfruit/timeline.py), launch to exit."""
    first: dict[str, float] = {}
    for line in timeline.splitlines():
        stamp, _, event = line.split(" ", 2)
        first.setdefault(event, float(stamp) - launched)
    split = {}
    for name, end, starts in PHASES:
        began = next((first[start] for start in starts if start in first), 0.0 if not starts else None)
        if end in first and began is not None:
            split[name] = max(0.0, first[end] - began)
    stopped = first.get("session stopped")
    if stopped is not None:
        split["exit"] = wall - stopped
    split["total"] = wall
    return split


def print_table(report: dict) -> None:
    print(f"\n100 px, steady from N/4 and N, {report['machine']['cpus']} cores; CPU-ms per image between the sizes")
    print(
        f"{'model':<16} {'run':<22} {'N':>7} {'steady':>8} {'× raw':>6} {'× TF raw':>9} {'start s':>8} "
        f"{'driver':>7} {'JVM':>6} {'workers':>8} {'overhead ms/img':>16} {'e2e img/s':>10} {'× best peer':>12}"
    )
    for r in report["rows"]:
        cpu = r.get("cpu_ms_per_image")
        print(
            f"{r['model']:<16} {r['name']:<22} {r.get('n') or 0:7} {r['steady_ips'] or 0:8.0f} "
            f"{r.get('vs_raw') or 0:6.2f} {r.get('vs_raw_tensorflow') or 0:9.2f} "
            f"{r.get('startup_s') or 0:8.1f} "
            + (f"{cpu['driver']:7.2f} {cpu['jvm']:6.2f} {cpu['workers']:8.2f} {r['overhead_ms']:16.2f}" if cpu else "")
            + (f" {r['e2e_ips']:10.0f}" if r.get("e2e_ips") else "")
            + (f" {r['vs_best_peer_steady']:12.2f}" if r.get("vs_best_peer_steady") else "")
        )
    if not report["startup"]:
        return
    print(f"\nstart-up split, {STARTUP_IMAGES} images (seconds)")
    runs = list(report["startup"])
    names = list(dict.fromkeys(name for split in report["startup"].values() for name in split))
    print(f"{'phase':<34}" + "".join(f"{run:>15}" for run in runs))
    for name in names:
        print(f"{name:<34}" + "".join(f"{report['startup'][run].get(name, 0):15.2f}" for run in runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8000, help="images of the large run; N/4 is the small one")
    parser.add_argument("--repeats", type=int, default=2, help="runs per measurement; the fastest counts")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up split")
    parser.add_argument("--skip-startup", action="store_true", help="no start-up split")
    parser.add_argument(
        "--models", nargs="+", choices=[model for model, _, _ in MODELS], help="the networks (default: both)"
    )
    parser.add_argument(
        "--engine",
        default="auto",
        choices=("auto", "litert", "tensorflow"),
        help="the --engine of the throughput runs (raw limits: its own, TensorFlow)",
    )
    parser.add_argument("--engines", default="auto,tensorflow", help="the --engine values of the start-up split")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "overhead.json"))
    parser.add_argument("--table", metavar="JSON", help="only print the table of an earlier run's JSON")
    args = parser.parse_args()
    if args.table:
        print_table(json.loads(Path(args.table).read_text()))
        return
    args.model, args.extra, args.engines = MODELS[0][0], [], args.engines.split(",")
    args.peer_settings = dict(PEER_DEFAULTS)
    bench = OverheadBench(args)
    sizes = (
        ()
        if args.startup_only
        else (n for _, _, times in selected(args.models) for n in (args.n * times // 4, args.n * times))
    )
    sets = sorted({STARTUP_IMAGES, *sizes})
    for count in sets:
        make_images(count, bench.work / f"set-{count}")
    server = bench.server = local_s3.start(log_path=bench.work / "s3.log")
    try:
        local_s3.client(server.endpoint).create_bucket(Bucket="bench")
        upload(server.endpoint, "bench", f"set-{STARTUP_IMAGES}", bench.work / f"set-{STARTUP_IMAGES}")
        report = bench.measure_all(server.endpoint)
    finally:
        server.stop()
        shutil.rmtree(bench.work, ignore_errors=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print_table(report)
    print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    main()
