"""The raw model limit: the same network on pre-decoded float batches, all cores, no Spark, no I/O.

Usage: python benchmarks/raw_limit.py MODEL IMAGE_SIZE [SECONDS] [THREADS] [--alpha A]   -> one JSON line
THREADS: TensorFlow intra-op threads (default: all cores), e.g. 1 to compare one process per core.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def images_per_second(call, batch, seconds: float) -> float:
    """`call` on `batch` over `seconds`, after two calls of warm-up."""
    call(batch)
    call(batch)
    started, images = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        call(batch)
        images += len(batch)
    return images / (time.perf_counter() - started)


def main(model_name: str, size: int, seconds: float, threads: int | None, alpha: float, engine: str) -> None:
    if engine == "litert":
        return litert(model_name, size, seconds, threads, alpha)
    import numpy as np
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    from sparkyfruit.models import ModelSpec, build_model

    results = {}
    for batch in (32, 64, 128, 256):
        model, preprocess = build_model(ModelSpec(model_name, alpha, size, "none", batch))
        x = preprocess(np.random.RandomState(0).uniform(0, 255, (batch, size, size, 3)).astype(np.float32))
        results[batch] = images_per_second(model.predict_on_batch, x, seconds)
    best = max(results, key=results.get)
    # the lever "call the model directly, never model.predict in a loop": what each way costs
    model, preprocess = build_model(ModelSpec(model_name, alpha, size, "none", best))
    x = preprocess(np.random.RandomState(0).uniform(0, 255, (best, size, size, 3)).astype(np.float32))
    ways = {
        "predict_on_batch": model.predict_on_batch,
        "model(x, training=False)": lambda b: model(b, training=False),
        "predict": lambda b: model.predict(b, verbose=0),
    }
    per_way = {name: images_per_second(call, x, seconds / 2) for name, call in ways.items()}
    print(
        json.dumps(
            {
                "images_per_second": results[best],
                "best_batch": best,
                "by_batch": results,
                "by_call": per_way,
                "threads": threads or os.cpu_count(),
                "alpha": alpha,
            }
        )
    )


def litert(model_name: str, size: int, seconds: float, threads: int | None, alpha: float) -> None:
    import numpy as np

    from sparkyfruit import engines
    from sparkyfruit.models import ModelSpec

    spec = ModelSpec(model_name, alpha, size, "none", 64, engine=engines.LITERT)
    flat = engines.convert(spec)
    encoder = engines.LiteRTEncoder(spec, threads or os.cpu_count(), model_content=flat)
    results = {}
    for batch in (16, 64, 256):
        x = np.random.RandomState(0).uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
        results[batch] = images_per_second(encoder.encode, x, seconds)
    best = max(results, key=results.get)
    print(
        json.dumps(
            {
                "images_per_second": results[best],
                "best_batch": best,
                "by_batch": results,
                "threads": threads or os.cpu_count(),
                "alpha": alpha,
                "engine": "litert",
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("size", type=int)
    parser.add_argument("seconds", type=float, nargs="?", default=6.0)
    parser.add_argument("threads", type=int, nargs="?", default=None)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--engine", choices=("tensorflow", "litert"), default="tensorflow")
    args = parser.parse_args()
    main(args.model, args.size, args.seconds, args.threads, args.alpha, args.engine)
