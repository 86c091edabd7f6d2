"""Engine threads: one process with N threads against N processes with 1 thread each, the two ways a
worker's engine could use a machine's N cores (issue 26, Deliver 4). Each process loads the network as a
Spark worker does (sparkyfruit.engines.load_encoder: LiteRT from the converted model in the cache, or
TensorFlow), warms up, and then all of them encode batches of sample images over the same seconds.

    python -m benchmarks.engine_threads [--model mobilenet_v2] [--sizes 100 224] [--cores 2] [--seconds 10]
                                        [--engines litert tensorflow] [--alpha 0.25 --weights FILE]

Prints a table and writes JSON to benchmarks/results/engine_threads.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "images"


def _rate(spec_fields: dict, engine: str, threads: int, seconds: float, start_at: float) -> float:
    """In a process of its own: images/s of `threads` threads over `seconds`, from `start_at` (epoch)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from sparkyfruit import engines, models
    from sparkyfruit.featurize import decode_image

    spec = models.ModelSpec(**spec_fields)
    if engine == engines.LITERT:
        prepared = engines.prepare(spec, models.sha256_of(spec.weights) if spec.weights != "none" else None, engine)
        spec = engines.worker_spec(spec, prepared)
    encoder = engines.load_encoder(spec, threads)
    files = sorted(SAMPLES.glob("*/*.jpg"))
    pixels = np.stack(
        [decode_image(files[i % len(files)].read_bytes(), spec.image_size) for i in range(spec.batch_size)]
    ).astype(np.float32)
    for _ in range(3):
        encoder.encode(pixels.copy())
    time.sleep(max(0.0, start_at - time.time()))
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        encoder.encode(pixels.copy())
        calls += 1
    return calls * spec.batch_size / elapsed


def measure(spec_fields: dict, engine: str, processes: int, threads: int, seconds: float) -> float:
    """The images/s of `processes` processes of `threads` threads each, summed."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: TF fixes its pools once
    with context.Pool(processes) as pool:
        start_at = time.time() + 25  # every process loaded and warm before any is timed
        rates = pool.starmap(_rate, [(spec_fields, engine, threads, seconds, start_at)] * processes)
    return round(sum(rates), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 224])
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--engines", nargs="+", default=["litert", "tensorflow"])
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--weights", default="none", help="none (seeded random) or a weights file")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "engine_threads.json"))
    args = parser.parse_args()
    weights = str(Path(args.weights).resolve()) if args.weights != "none" else "none"
    rows = []
    for size in args.sizes:
        fields = dict(name=args.model, alpha=args.alpha, image_size=size, weights=weights, batch_size=args.batch)
        for engine in args.engines:
            one = measure(fields, engine, 1, args.cores, args.seconds)
            many = measure(fields, engine, args.cores, 1, args.seconds)
            rows.append({"engine": engine, "size": size, "one_process_n_threads": one, "n_processes_1_thread": many})
    cores = args.cores
    print(f"{args.model} (alpha {args.alpha}, weights {Path(weights).name}), batch {args.batch}, {cores} cores, img/s")
    print(f"| engine | px | 1 process x {cores} threads | {cores} processes x 1 thread | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        one, many = row["one_process_n_threads"], row["n_processes_1_thread"]
        print(f"| {row['engine']} | {row['size']} | {one:,.0f} | {many:,.0f} | {many / one:.2f}× |")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"model": args.model, "cores": cores, "rows": rows}, indent=2))
    print(f"written: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
