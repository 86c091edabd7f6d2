"""The peers, written the way their own docs show: Ray Data and Daft doing sparkyfruit's job with the same
Keras network, the same images and the same output columns (path, label, features as list<float32>).

    python -m benchmarks.peers ray  INPUT OUTPUT --size 100 [--model mobilenet_v2] [--s3-endpoint URL]
    python -m benchmarks.peers daft INPUT OUTPUT --size 100 ...
    python -m benchmarks.peers tune [--n 2000] [--size 100]   (the settings tried, end to end, one run)

INPUT is a folder of <label>/<name>.jpg or s3://bucket/prefix; OUTPUT a folder of Parquet. The network is
built with random weights and the seed sparkyfruit uses (`--weights none`), so all three compute the same
function. Each peer is tuned, not run on defaults alone; the settings tried are in docs/performance.md.

- Ray Data: `read_images` (decoded and resized in read tasks) -> `map_batches` with an actor pool of
  `--actors` Keras models (each `--actor-cpus` of Ray's CPUs, `--threads` TensorFlow threads) ->
  `write_parquet`.
- Daft: `from_glob_path` -> `download` -> `decode_image` -> `resize` -> a `@daft.cls` batch method
  (`--actors` instances, `max_concurrency`) -> `write_parquet`.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class Embedder:
    """One Keras network per actor, built once; a batch of RGB images -> float32 vectors."""

    def __init__(self, model: str, size: int, threads: int):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from sparkyfruit.models import ModelSpec, build_model

        self.model, self.preprocess = build_model(ModelSpec(model, 1.0, size, "none", 64))

    def vectors(self, images):
        import numpy as np

        batch = self.preprocess(np.asarray(images, dtype=np.float32))
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)


def label_of(path: str) -> str:
    return path.rstrip("/").rsplit("/", 2)[-2]


def run_ray(args) -> None:
    import numpy as np
    import pyarrow.dataset as pa_dataset
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    filesystem = None
    if args.input.startswith("s3://"):
        from pyarrow import fs

        filesystem = fs.S3FileSystem(endpoint_override=args.s3_endpoint, scheme="http", region="us-east-1")

    class RayEmbedder(Embedder):
        def __call__(self, batch: dict) -> dict:
            return {
                "path": batch["path"],
                "label": np.array([label_of(p) for p in batch["path"]]),
                "features": list(self.vectors(batch["image"])),
            }

    dataset = ray.data.read_images(
        args.input, filesystem=filesystem, size=(args.size, args.size), mode="RGB", include_paths=True
    )
    dataset = dataset.map_batches(
        RayEmbedder,
        fn_constructor_kwargs={"model": args.model, "size": args.size, "threads": args.threads},
        batch_size=args.batch_size,
        compute=ray.data.ActorPoolStrategy(size=args.actors),
        num_cpus=args.actor_cpus,
    )
    dataset.write_parquet(args.output)
    print(f"ray: wrote {pa_dataset.dataset(args.output).count_rows()} rows")


def run_daft(args) -> None:
    import daft
    from daft import DataType, col
    from daft.functions import decode_image, download, resize

    io_config = None
    if args.input.startswith("s3://"):
        from daft.io import IOConfig, S3Config

        io_config = IOConfig(s3=S3Config(endpoint_url=args.s3_endpoint, region_name="us-east-1", use_ssl=False))
    pattern = args.input.rstrip("/") + "/**/*.jpg"

    @daft.cls(max_concurrency=args.actors, cpus=args.actor_cpus or None, use_process=True)
    class DaftEmbedder(Embedder):
        @daft.method.batch(return_dtype=DataType.list(DataType.float32()), batch_size=args.batch_size)
        def embed(self, images: daft.Series):
            return list(self.vectors(images.to_pylist()))

    embedder = DaftEmbedder(args.model, args.size, args.threads)
    frame = daft.from_glob_path(pattern, io_config=io_config)
    frame = frame.with_column(
        "image", resize(decode_image(download(col("path"), io_config=io_config)), args.size, args.size)
    )
    frame = frame.select(
        col("path"),
        col("path").apply(label_of, return_dtype=DataType.string()).alias("label"),
        embedder.embed(col("image")).alias("features"),
    )
    frame.write_parquet(args.output)
    print("daft: done")


# the settings tried for each peer, as benchmarks.peers arguments
TRIED = {
    "ray": [
        "--actors 2 --actor-cpus 1 --threads 1",
        "--actors 2 --actor-cpus 0.5 --threads 1",
        "--actors 2 --actor-cpus 0.25 --threads 1",
        "--actors 1 --actor-cpus 1 --threads 2",
    ],
    "daft": [
        "--actors 2 --actor-cpus 0.5 --threads 1",
        "--actors 2 --actor-cpus 0 --threads 1",
        "--actors 1 --actor-cpus 1 --threads 2",
    ],
}
STALL_SECONDS = 120


def tune(n: int, size: int, model: str) -> None:
    """Each tried setting of each peer on n images from a folder, end to end; prints a table, writes JSON."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from benchmarks.data import make_images

    work = Path(tempfile.mkdtemp(prefix="sparkyfruit-peers-"))
    make_images(n, work / "images")
    results = []
    try:
        for peer, settings in TRIED.items():
            for setting in settings:
                command = [sys.executable, "-m", "benchmarks.peers", peer, str(work / "images"), str(work / "out")]
                command += ["--size", str(size), "--model", model, *setting.split()]
                started = time.perf_counter()
                try:
                    subprocess.run(command, capture_output=True, check=True, timeout=STALL_SECONDS)
                    wall = time.perf_counter() - started
                except subprocess.TimeoutExpired:
                    wall = None  # Ray: actors that hold every CPU leave none to the read tasks, and it stalls
                shutil.rmtree(work / "out", ignore_errors=True)
                results.append({"peer": peer, "settings": setting, "wall_s": wall})
                shown = f"{wall:.1f} s ({n / wall:.0f} images/s)" if wall else f"stalled (no end in {STALL_SECONDS} s)"
                print(f"{peer} {setting}: {shown}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    output = Path(__file__).resolve().parent / "results" / "peers_tune.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    command = f"python -m benchmarks.peers tune --n {n} --size {size} --model {model}"
    output.write_text(json.dumps({"n": n, "size": size, "model": model, "results": results, "command": command}))
    print(f"JSON: {output}")


def main() -> None:
    import sys

    if sys.argv[1:2] == ["tune"]:
        parser = argparse.ArgumentParser(description="the peers' settings tried, end to end")
        parser.add_argument("tune")
        parser.add_argument("--n", type=int, default=2000)
        parser.add_argument("--size", type=int, default=100)
        parser.add_argument("--model", default="mobilenet_v2")
        args = parser.parse_args()
        tune(args.n, args.size, args.model)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=["ray", "daft"])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--s3-endpoint")
    parser.add_argument("--actors", type=int, default=os.cpu_count(), help="model instances (actor pool size)")
    parser.add_argument(
        "--actor-cpus",
        type=float,
        default=0.5,
        help="CPUs each instance reserves (Ray: a pool that holds every CPU leaves none to its read tasks and stalls)",
    )
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads per instance")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    {"ray": run_ray, "daft": run_daft}[args.peer](args)


if __name__ == "__main__":
    main()
