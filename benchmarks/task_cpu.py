"""One keys-mode task's own CPU per image, without Spark: what a Python worker spends around the network.

In this one process, on N generated 100 px JPEGs in a folder (benchmarks/data.py), MobileNet v1 alpha 0.25
(seeded random weights) converted for LiteRT as `--engine auto` converts it, one thread:
- *task*: the task's whole path as a worker runs it (sources/keys.py's fetch, featurize.py, the task's
  Parquet file of parquet_files.py), the network included;
- *task without the network*: the same, with the encoder's call replaced by zeros;
- *decode*: featurize.decode_image alone on the same files' bytes;
- *network*: the encoder alone on pre-decoded batches of 64.
CPU seconds of this process (time.process_time), fastest of --repeats, per image, in milliseconds.

    python -m benchmarks.task_cpu [--n 8000] [--repeats 3]

Prints a table and writes JSON to benchmarks/results/task_cpu.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.data import make_images

ROOT = Path(__file__).resolve().parent.parent
SIZE = 100
BATCH = 64


class _Context:
    """What writing_tasks and featurize_partition ask of pyspark's TaskContext."""

    def partitionId(self):  # noqa: N802  pyspark's name
        return 0

    def taskAttemptId(self):  # noqa: N802
        return 0

    def getLocalProperty(self, key):  # noqa: N802
        return "1"

    def cpus(self):
        return 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "task_cpu.json"))
    args = parser.parse_args()

    import pyarrow as pa
    import pyspark

    from sparkyfruit import engines, featurize, locations, models, parquet_files
    from sparkyfruit.s3_settings import S3Settings
    from sparkyfruit.sources.keys import fetch_batches

    pyspark.TaskContext.get = staticmethod(lambda: _Context())
    with tempfile.TemporaryDirectory(prefix="sparkyfruit-task-cpu-") as folder:
        work = Path(folder)
        files = [str(path) for path in make_images(args.n, work / "images")]
        converted = work / "model.tflite"
        spec = models.ModelSpec("mobilenet", 0.25, SIZE, models.RANDOM, BATCH, engine=engines.LITERT)
        converted.write_bytes(engines.convert(spec))
        spec = dataclasses.replace(spec, converted=str(converted))
        encoder = featurize.encoder_for(spec)
        network = encoder.encode
        batches = [
            pa.RecordBatch.from_pydict(
                {
                    "path": paths,
                    "label": ["fruit"] * len(paths),
                    "size": pa.nulls(len(paths), pa.int64()),
                    "etag": pa.nulls(len(paths), pa.string()),
                }
            )
            for paths in (files[start : start + BATCH] for start in range(0, len(files), BATCH))
        ]
        output = locations.parse_location(str(work / "out"))

        def task() -> None:
            rows = featurize.featurize_partition(spec, fetch_batches(S3Settings()))
            list(parquet_files.writing_tasks(rows, output, S3Settings(), "bench")(iter(batches)))

        contents = [Path(file).read_bytes() for file in files]
        pixels = np.random.default_rng(0).uniform(0, 255, (BATCH, SIZE, SIZE, 3)).astype(np.float32)

        def decode() -> None:
            out = np.empty((SIZE, SIZE, 3), np.uint8)
            for content in contents:
                featurize.decode_image(content, SIZE, out=out)

        def network_only() -> None:
            for _ in range(len(files) // BATCH):
                network(pixels)

        def without_network() -> None:
            encoder.encode = lambda images: np.zeros((len(images), encoder.dim), np.float32)
            try:
                task()
            finally:
                encoder.encode = network

        parts = {
            "task": task,
            "task without the network": without_network,
            "decode": decode,
            "network": network_only,
        }
        task()  # warm: the interpreter's first calls, the file system, the page cache
        result = {}
        for name, part in parts.items():
            images = len(files) if name != "network" else (len(files) // BATCH) * BATCH
            best = None
            for _ in range(args.repeats):
                started = time.process_time()
                part()
                spent = time.process_time() - started
                best = spent if best is None else min(best, spent)
            result[name] = 1000 * best / images
    print(
        f"\nCPU-ms per image, one keys-mode task without Spark, {args.n} images of {SIZE} px, fastest of {args.repeats}"
    )
    for name, value in result.items():
        print(f"{name:<28} {value:8.3f}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"n": args.n, "size": SIZE, "cpu_ms_per_image": result}, indent=2))
    print(f"\nwritten: {args.output}")


if __name__ == "__main__":
    main()
