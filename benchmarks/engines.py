"""Engines: each keras.applications backbone, built as sparkyfruit builds it (no classifier, average-pooled,
seeded random weights), exported once as a SavedModel (`model.export(dir, format="tf_saved_model")`) and run
by TensorFlow, LiteRT (XNNPACK, `ai-edge-litert`), ONNX Runtime (`tf2onnx`) and OpenVINO, with the threads
of one Spark task slot (1 unless --threads). For each engine: whether the network converts and how long
that takes, images/s on batches of 64 (fewer for the largest networks: one TensorFlow call at most --seconds,
at least 4 images), and how far its vectors are from TensorFlow's on the sample images
(the largest difference relative to the row's largest value, and the lowest cosine of a row).

    python -m benchmarks.engines [--models mobilenet_v2 resnet50 ...] [--sizes 100 224] [--threads 1]
                                 [--seconds 3] [--batch 64] [--jobs 2] [--alpha 0.25 --weights FILE]

Preprocessing stays outside the engines here (NumPy, as in the workers), so that the table compares the
networks alone. Each backbone and size runs in a child process of its own: TensorFlow fixes its thread
pools once, and the largest networks need the memory back. Prints a table and writes JSON to
benchmarks/results/engines.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "examples" / "images"
ENGINES = ("litert", "onnxruntime", "openvino")
CHILD_TIMEOUT_S = 1800
MIN_BATCH = 4


# ---------------------------------------------------------------- measured in a child process


def child(model: str, size: int, threads: int, seconds: float, batch: int, alpha: float, weights: str) -> dict:
    """One backbone at one size: TensorFlow's rate and vectors, then each engine's conversion, rate and
    difference. An engine that fails to convert or run gets its error instead."""
    from sparkyfruit import models

    tf = models.import_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    started = time.perf_counter()
    network, preprocess = models.build_model(models.ModelSpec(model, alpha, size, weights, batch))
    row = {
        "model": model,
        "size": size,
        "alpha": alpha,
        "weights": Path(weights).name,
        "threads": threads,
        "batch": batch,
    }
    row["build_s"] = _since(started)
    forward = tf.function(
        lambda x: network(x, training=False), input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)]
    )
    batch = _fitting_batch(forward, preprocess, size, batch, seconds)
    row["batch"] = batch
    images = preprocess(_sample_pixels(size, batch))
    reference = forward(images).numpy()
    row["dim"] = int(reference.shape[-1])
    row["tensorflow"] = {"images_per_s": _rate(lambda: forward(images).numpy(), batch, seconds)}
    with tempfile.TemporaryDirectory(prefix="sparkyfruit-engines-") as folder:
        saved = Path(folder) / "saved"
        started = time.perf_counter()
        network.export(str(saved), format="tf_saved_model", verbose=False)
        row["export_s"] = _since(started)
        for engine in ENGINES:
            started = time.perf_counter()
            try:
                run = CONVERTERS[engine](saved, Path(folder), size, batch, threads)
                result = {"convert_s": _since(started)}
                result.update(_difference(reference, run(images)))
                result["images_per_s"] = _rate(functools.partial(run, images), batch, seconds)
            except Exception as exc:  # the table says which networks an engine cannot take, and why
                result = {"error": _first_line(exc)}
            row[engine] = result
    return row


def _litert(saved: Path, folder: Path, size: int, batch: int, threads: int):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    flat = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
    interpreter = Interpreter(model_content=flat, num_threads=threads)  # XNNPACK: its default CPU delegate
    given = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(given, [batch, size, size, 3])
    interpreter.allocate_tensors()
    produced = interpreter.get_output_details()[0]["index"]

    def run(images):
        interpreter.set_tensor(given, images)
        interpreter.invoke()
        return interpreter.get_tensor(produced)

    return run


def _onnxruntime(saved: Path, folder: Path, size: int, batch: int, threads: int):
    import onnxruntime

    converted = folder / "model.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(saved), "--output", str(converted)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:  # its log ends in INFO lines: the reason is the last line that names an error
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise RuntimeError(f"tf2onnx: {next((line for line in reversed(lines) if 'Error' in line), lines[-1])}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(converted), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda images: session.run(None, {name: images})[0]


def _openvino(saved: Path, folder: Path, size: int, batch: int, threads: int):
    import openvino

    compiled = openvino.Core().compile_model(
        openvino.convert_model(str(saved)),
        "CPU",
        # f32 throughout: a CPU with bf16 units would otherwise run in bf16 and give other vectors
        {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"},
    )
    output = compiled.output(0)
    return lambda images: compiled(images)[output]


CONVERTERS = {"litert": _litert, "onnxruntime": _onnxruntime, "openvino": _openvino}


def _sample_pixels(size: int, batch: int):
    """`batch` sample images (repeated when there are fewer), decoded as the workers decode them, as float32."""
    import numpy as np

    from sparkyfruit.featurize import decode_image

    files = sorted(SAMPLES.glob("*/*.jpg"))
    pixels = [decode_image(files[index % len(files)].read_bytes(), size) for index in range(batch)]
    return np.stack(pixels).astype(np.float32)


def _difference(reference, vectors) -> dict:
    """The largest difference to TensorFlow's vectors relative to the row's largest value, and the lowest
    cosine of a row."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float64).reshape(reference.shape)
    reference = reference.astype(np.float64)
    scale = np.maximum(np.abs(reference).max(axis=1), np.finfo(np.float64).tiny)
    relative = float((np.abs(vectors - reference).max(axis=1) / scale).max())
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1)
    cosine = float(((vectors * reference).sum(axis=1) / np.maximum(norms, np.finfo(np.float64).tiny)).min())
    return {"max_relative_difference": relative, "min_cosine": cosine}


def _fitting_batch(forward, preprocess, size: int, largest: int, seconds: float) -> int:
    """The largest batch, halving from `largest` down to MIN_BATCH, of which one TensorFlow call takes at most
    `seconds`: the largest networks at 224 px take seconds per image on one thread, and 5 calls of 64 would
    take an hour per row."""
    few = preprocess(_sample_pixels(size, MIN_BATCH))
    forward(few)  # the trace
    started = time.perf_counter()
    forward(few).numpy()
    per_image = (time.perf_counter() - started) / MIN_BATCH
    batch = largest
    while batch > MIN_BATCH and batch * per_image > seconds:
        batch //= 2
    return max(batch, MIN_BATCH)


def _rate(call, batch: int, seconds: float) -> float:
    """Images per second of `call` on one batch over at least `seconds` and 2 calls, after one call of warm-up
    (two where a call is short: XNNPACK and OpenVINO settle in the second)."""
    started = time.perf_counter()
    call()
    if time.perf_counter() - started < seconds / 2:
        call()
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or calls < 2:
        call()
        calls += 1
    return round(calls * batch / elapsed, 1)


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 2)


# ---------------------------------------------------------------- the parent


def run_child(model: str, size: int, args, cores: set[int] | None = None) -> dict:
    """One backbone at one size in a child process, on `cores` only where given."""
    command = [sys.executable, "-m", "benchmarks.engines", "child", model, str(size)]
    command += ["--threads", str(args.threads), "--seconds", str(args.seconds), "--batch", str(args.batch)]
    command += ["--alpha", str(args.alpha), "--weights", args.weights]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT_S, cwd=ROOT, preexec_fn=pin
        )
    except subprocess.TimeoutExpired:
        return {"model": model, "size": size, "error": f"no result within {CHILD_TIMEOUT_S} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": model, "size": size, "error": f"exit {done.returncode}: {last[:200]}"}
    return json.loads(lines[-1])


def _cell(row: dict, engine: str) -> str:
    result = row.get(engine)
    if result is None:
        return ""
    if "error" in result:
        return "fails"
    rate = result["images_per_s"]
    tensorflow = row["tensorflow"]["images_per_s"]
    return (
        f"{_images(rate)} ({rate / tensorflow:.1f}×) {result['convert_s']:.0f} s "
        f"{result['max_relative_difference']:.0e} {1 - result['min_cosine']:.0e}"
    )


def _images(rate: float) -> str:
    """Images/s as the table gives them: whole numbers, with a decimal below 10."""
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}"


def table(rows: list[dict]) -> str:
    header = "| backbone | px | batch | TensorFlow img/s | " + " | ".join(ENGINES) + " |"
    lines = [
        "engine cells: images/s (× TensorFlow), conversion s, largest relative difference, 1 - the lowest cosine",
        header,
        "| --- " * (4 + len(ENGINES)) + "|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['size']} | | {row['error']} |" + " |" * len(ENGINES))
            continue
        cells = [_cell(row, engine) for engine in ENGINES]
        name = row["model"] + (f" {row['alpha']}" if row.get("alpha", 1.0) != 1.0 else "")
        name += "" if row.get("weights", "none") == "none" else f" ({row['weights']})"
        lines.append(
            f"| {name} | {row['size']} | {row.get('batch', '')} | {_images(row['tensorflow']['images_per_s'])} | "
            + " | ".join(cells)
            + " |"
        )
    failures = [
        f"{row['model']} {row['size']} px, {engine}: {row[engine]['error']}"
        for row in rows
        for engine in ENGINES
        if "error" in row.get(engine, {})
    ]
    return "\n".join(lines + ([""] + ["failed: " + failure for failure in failures] if failures else []))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        parser = argparse.ArgumentParser()
        parser.add_argument("command")
        parser.add_argument("model")
        parser.add_argument("size", type=int)
        parser.add_argument("--threads", type=int, default=1)
        parser.add_argument("--seconds", type=float, default=3.0)
        parser.add_argument("--batch", type=int, default=64)
        parser.add_argument("--alpha", type=float, default=1.0)
        parser.add_argument("--weights", default="none")
        args = parser.parse_args()
        print(
            json.dumps(child(args.model, args.size, args.threads, args.seconds, args.batch, args.alpha, args.weights))
        )
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", help="backbone names (default: every installed one)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 224])
    parser.add_argument("--threads", type=int, default=1, help="threads per engine (one Spark task slot: 1)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per engine and network")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--jobs", type=int, default=1, help="children at once, each pinned to a core of its own (at most the cores)"
    )
    parser.add_argument("--alpha", type=float, default=1.0, help="the width of the MobileNets")
    parser.add_argument(
        "--weights", default="none", help="none (seeded random) or a weights file, e.g. the bundled one"
    )
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "engines.json"))
    parser.add_argument("--table", metavar="JSON", help="only print the table of an earlier run's JSON")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(Path(args.table).read_text())["rows"]))
        return 0
    from sparkyfruit import models

    names = args.models or list(models.installed_backbones())
    cases = [
        (name, max(size, models.BACKBONES[name].min_size if name in models.BACKBONES else size))
        for name in names
        for size in args.sizes
    ]
    rows = measure(cases, args)
    print(table(rows))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    versions = {
        name: _version(name)
        for name in ("tensorflow-cpu", "keras", "ai-edge-litert", "onnxruntime", "openvino", "tf2onnx")
    }
    output.write_text(json.dumps({"versions": versions, "cores": os.cpu_count(), "rows": rows}, indent=2))
    print(f"written: {output}")
    return 0


def measure(cases: list[tuple[str, int]], args) -> list[dict]:
    """The rows of `cases` ((backbone, size) pairs), in their order. With --jobs N, N children run at once,
    the i-th of them pinned to core i: each engine still runs on --threads threads of a core of its own,
    and the cores share only the memory bus."""
    from concurrent.futures import ThreadPoolExecutor
    from queue import SimpleQueue

    free = SimpleQueue()
    for core in range(args.jobs):
        free.put(core % os.cpu_count())

    def one(case: tuple[str, int]) -> dict:
        core = free.get() if args.jobs > 1 else None
        try:
            started = time.perf_counter()
            row = run_child(*case, args, cores={core} if core is not None else None)
            print(f"{case[0]} {case[1]} px: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
            return row
        finally:
            if core is not None:
                free.put(core)

    with ThreadPoolExecutor(args.jobs) as pool:
        return list(pool.map(one, cases))


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
