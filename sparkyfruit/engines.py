"""How the network runs: TensorFlow, or LiteRT (XNNPACK) fed a model converted once on the driver, cached by
content in ~/.cache/sparkyfruit/engines and checked against TensorFlow's vectors before any worker uses it.

The driver prepares the engine (`prepare`, or `Preparing`, whose conversion runs in a child process while the
JVM starts); each Python worker loads it once (`load_encoder`). A worker that runs LiteRT never imports
TensorFlow: the converted model holds the backbone's preprocessing and pooling, and the worker feeds it RGB
pixels 0..255 as they are decoded.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from sparkyfruit import models
from sparkyfruit.errors import ConfigError
from sparkyfruit.timeline import mark

AUTO, TENSORFLOW, LITERT = "auto", "tensorflow", "litert"
ENGINES = (AUTO, TENSORFLOW, LITERT)
# the distribution that runs each engine, whose version is part of the output's identity
PACKAGES = {TENSORFLOW: "tensorflow", LITERT: "ai-edge-litert"}
# a converted model is used only where every row of the check batch has at least this cosine to TensorFlow's
CHECK_COSINE = 0.99999
CHECK_IMAGES = 16
CHECK_SEED = 0
# LiteRT is called on this many input pixels at most (16 images at 100 px, 3 at 224 px): XNNPACK runs a
# small call faster per image, its activations staying in the CPU's caches (docs/performance.md)
LITERT_CALL_PIXELS = 160_000


@dataclass(frozen=True)
class PreparedEngine:
    """The engine a run uses: its name and version, the converted model the workers load (None for
    TensorFlow), and the one line `auto` says when it did not take the fast engine (else None)."""

    name: str
    version: str | None
    converted: Path | None = None
    notice: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name


class EngineRefused(Exception):
    """The fast engine cannot run this network, or its vectors are not TensorFlow's (the text says which)."""


def version_of(engine: str) -> str | None:
    """The installed version of the engine's package, read without importing it (None: not installed)."""
    from importlib import metadata

    try:
        return metadata.version(PACKAGES[engine])
    except metadata.PackageNotFoundError:
        return None


def gpu_visible() -> bool:
    """Whether this machine shows TensorFlow an NVIDIA GPU (the driver's view, without importing TensorFlow):
    `auto` keeps TensorFlow there, which runs the network on it."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def engine_to_use(wanted: str, made_by: str | None, output: str) -> str:
    """The engine setting a run uses: with --resume, the output's own engine (`made_by`); `auto` takes it,
    another engine is refused, since one output's vectors come from one engine."""
    if made_by is None or wanted in (AUTO, made_by):
        return made_by or wanted
    raise ConfigError(
        f"--resume keeps the engine that made {output} ({made_by}); got --engine {wanted}.",
        f"Leave --engine out (or pass --engine {made_by}), or write to another --output.",
    )


def prepare(spec: models.ModelSpec, weights_sha256: str | None, wanted: str, conversion=None) -> PreparedEngine:
    """The engine for `spec` (whose `weights` is a local file, or 'none'), for the setting `wanted`.

    Parameters
    ----------
    spec: the network, as the workers would build it with TensorFlow.
    weights_sha256: the sha256 of spec.weights' file (None for a random network): part of the cache key.
    wanted: auto, tensorflow or litert.
    conversion: how the converted model is had (default `converted_model`, in this process).

    Returns
    -------
    PreparedEngine. `auto` takes LiteRT where it converts the network and reproduces TensorFlow's vectors,
    else TensorFlow with a notice; `litert` raises ConfigError where it cannot.

    Example
    -------
    >>> prepare(ModelSpec("mobilenet", 0.25, 100, "mobilenet_2_5_224_tf_no_top.h5", 64), "9f...", "auto")
    PreparedEngine(name='litert', version='2.3.0', converted=PosixPath('~/.cache/sparkyfruit/engines/...'))
    """
    if wanted == TENSORFLOW:
        return PreparedEngine(TENSORFLOW, version_of(TENSORFLOW))
    if wanted == AUTO and gpu_visible():
        return PreparedEngine(
            TENSORFLOW, version_of(TENSORFLOW), notice="Engine: tensorflow (a GPU is visible: TensorFlow runs on it)"
        )
    try:
        converted = (conversion or converted_model)(spec, weights_sha256)
    except EngineRefused as refused:
        if wanted == LITERT:
            raise ConfigError(
                f"--engine litert cannot run {spec.name}: {refused}", "Use --engine tensorflow (or auto)."
            ) from None
        return PreparedEngine(TENSORFLOW, version_of(TENSORFLOW), notice=f"Engine: tensorflow, since LiteRT {refused}")
    return PreparedEngine(LITERT, version_of(LITERT), converted)


class Preparing:
    """`prepare`, with a conversion that the cache does not hold already started in a child process (TensorFlow
    imported there, not in the driver), so that it runs while the JVM starts; `result()` waits for it."""

    def __init__(self, spec: models.ModelSpec, weights_sha256: str | None, wanted: str):
        self._args = (spec, weights_sha256, wanted)
        self._child = None
        self._engine: PreparedEngine | None = None
        to_convert = wanted == LITERT or (wanted == AUTO and not gpu_visible())
        if to_convert and version_of(LITERT) is not None and not _cached(spec, weights_sha256):
            command = [sys.executable, "-m", "sparkyfruit.engines", json.dumps(asdict(spec)), weights_sha256 or ""]
            self._child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> PreparedEngine:
        """The prepared engine (the same one on every call); raises ConfigError where `litert` was asked for and
        cannot be had."""
        if self._engine is None:
            self._engine = prepare(*self._args, conversion=self._converted_by_child if self._child else None)
            mark("driver prepared the engine")
        return self._engine

    def _converted_by_child(self, spec: models.ModelSpec, weights_sha256: str | None) -> Path:
        printed, logged = self._child.communicate()
        answer = printed.strip().splitlines()[-1:] if self._child.returncode == 0 else []
        if not answer:  # it died (memory, a crash in the converter): said once, and tried again next run
            last = (logged.strip().splitlines() or ["no output"])[-1][:200]
            raise EngineRefused(f"could not convert it (the converter exited {self._child.returncode}: {last})")
        outcome = json.loads(answer[0])
        if "refused" in outcome:
            raise EngineRefused(outcome["refused"])
        return Path(outcome["converted"])


def _child_main(spec_json: str, weights_sha256: str) -> int:
    """`python -m sparkyfruit.engines SPEC_JSON SHA256`: convert (or take from the cache) and print one JSON
    line: {"converted": path} or {"refused": why}."""
    spec = models.ModelSpec(**json.loads(spec_json))
    try:
        print(json.dumps({"converted": str(converted_model(spec, weights_sha256 or None))}))
    except EngineRefused as refused:
        print(json.dumps({"refused": str(refused)}))
    return 0


# ---------------------------------------------------------------- the converted model, cached by content


def cache_folder() -> Path:
    from sparkyfruit.spark.class_cache import cache_dir

    return cache_dir() / "engines"


def cache_key(spec: models.ModelSpec, weights_sha256: str | None) -> str:
    """What makes a converted model: the network, its weights' content, size, pooling, layer and
    preprocessing, and the versions of the converter (TensorFlow, Keras) and of LiteRT."""
    from sparkyfruit.output_format import library_version

    made_of = {
        "network": spec.name,
        "alpha": spec.alpha,
        "size": spec.image_size,
        "weights": weights_sha256 or spec.weights,
        "pooling": spec.pooling,
        "layer": spec.layer,
        "preprocess": spec.preprocess,
        "tensorflow": library_version("tensorflow"),
        "keras": library_version("keras"),
        LITERT: version_of(LITERT),
    }
    return hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:24]


def converted_model(spec: models.ModelSpec, weights_sha256: str | None) -> Path:
    """The LiteRT model of `spec`: from the cache, else converted and checked here (imports TensorFlow) and
    cached. A network that fails the conversion or the check is remembered too, with its reason, and
    raises EngineRefused then and on every later call."""
    if version_of(LITERT) is None:
        raise EngineRefused(f"is not installed here (pip install {PACKAGES[LITERT]})")
    converted, refused = _cache_files(spec, weights_sha256)
    if converted.is_file():
        mark("driver found the converted model in the cache")
        return converted
    if refused.is_file():
        raise EngineRefused(refused.read_text(encoding="utf-8").strip())
    try:
        flat = convert(spec)
    except EngineRefused as exc:
        _write_once(refused, str(exc).encode())
        raise
    _write_once(converted, flat)
    mark("driver converted the network")
    return converted


def _cache_files(spec: models.ModelSpec, weights_sha256: str | None) -> tuple[Path, Path]:
    """The cache's converted model of `spec`, and its file of a remembered refusal."""
    key = cache_key(spec, weights_sha256)
    return cache_folder() / f"{key}.tflite", cache_folder() / f"{key}.refused"


def _cached(spec: models.ModelSpec, weights_sha256: str | None) -> bool:
    """Whether the cache answers for `spec` already: its converted model, or why it has none."""
    return any(file.is_file() for file in _cache_files(spec, weights_sha256))


def _write_once(path: Path, content: bytes) -> None:
    """Write `path` whole or not at all (another run may read it at any moment); a read-only cache is
    skipped, and the next run converts again."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_bytes(content)
        os.replace(partial, path)
    except OSError:
        pass


def convert(spec: models.ModelSpec) -> bytes:
    """Build `spec` with TensorFlow, with its preprocessing inside the graph, export it as a SavedModel,
    convert that with TensorFlow's LiteRT converter, and check the converted model's vectors against
    TensorFlow's on a batch of seeded random images. Returns the model's bytes; raises EngineRefused."""
    tf = models.import_tensorflow()
    import keras

    model, preprocess = models.build_model(spec)
    pixels = keras.Input((spec.image_size, spec.image_size, 3), name="pixels")
    whole = keras.Model(pixels, model(keras.layers.Lambda(preprocess, name="preprocess")(pixels)))
    with tempfile.TemporaryDirectory(prefix="sparkyfruit-convert-") as folder:
        try:
            whole.export(folder, format="tf_saved_model", verbose=False)
            flat = tf.lite.TFLiteConverter.from_saved_model(folder).convert()
        except Exception as exc:  # the converter raises many types for an operation it lacks
            raise EngineRefused(f"cannot convert it ({_first_line(exc)})") from None
    images = np.random.default_rng(CHECK_SEED).uniform(0, 255, (CHECK_IMAGES, spec.image_size, spec.image_size, 3))
    images = images.astype(np.float32)
    expected = np.asarray(whole(images.copy(), training=False), dtype=np.float64)
    try:
        got = LiteRTEncoder(spec, threads=1, model_content=flat).encode(images).astype(np.float64)
    except Exception as exc:  # the interpreter refuses a model it cannot run
        raise EngineRefused(f"cannot run it ({_first_line(exc)})") from None
    cosine = lowest_cosine(expected, got)
    if not cosine >= CHECK_COSINE:  # a NaN fails too
        raise EngineRefused(
            f"gives other vectors than TensorFlow (lowest cosine {cosine:.7f} on the check batch, below {CHECK_COSINE})"
        )
    return flat


def lowest_cosine(expected: np.ndarray, got: np.ndarray) -> float:
    """The lowest cosine similarity of a row of `got` to the same row of `expected` (NaN if shapes differ
    or a row is not finite)."""
    if expected.shape != got.shape:
        return float("nan")
    norms = np.linalg.norm(expected, axis=1) * np.linalg.norm(got, axis=1)
    cosines = (expected * got).sum(axis=1) / np.maximum(norms, np.finfo(np.float64).tiny)
    return float(cosines.min()) if np.isfinite(cosines).all() else float("nan")


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}".rstrip(": ")


# ---------------------------------------------------------------- what a worker loads


class TensorFlowEncoder:
    """A built Keras network plus its preprocessing, for one ModelSpec."""

    def __init__(self, spec: models.ModelSpec, threads: int = 1):
        tf = models.import_tensorflow()
        mark("worker imported tensorflow")

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # TF already initialised in this process: its thread pools are fixed
        self.spec = spec
        self.encoded_once = False  # for the start-up timeline: the first batch pays the network's trace
        self.model, self.preprocess = models.build_model(spec)
        self.dim = int(self.model.output_shape[-1])  # the built network says its dimension
        # One graph for every batch size: traced once, on the first batch. Keras's own predict_on_batch
        # traces again for the first batch of another size (a task's last one), which costs as much as the
        # first trace.
        shape = (None, spec.image_size, spec.image_size, 3)
        self._forward = tf.function(
            lambda images: self.model(images, training=False),
            input_signature=[tf.TensorSpec(shape, tf.float32)],
            jit_compile=False,
        )
        mark("worker built the model")
        gc.freeze()  # the model's objects are long-lived: keep them out of every later gc pass

    def encode(self, images: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) float32 RGB 0..255 -> (N, dim) float32. Preprocesses `images` in place."""
        batch = self.preprocess(images)
        return np.asarray(self._forward(batch), dtype=np.float32)


class LiteRTEncoder:
    """A converted model (preprocessing, network and pooling in one graph) run by LiteRT's interpreter,
    whose CPU delegate is XNNPACK, with `threads` threads, on calls of LITERT_CALL_PIXELS at most."""

    def __init__(self, spec: models.ModelSpec, threads: int = 1, model_content: bytes | None = None):
        from ai_edge_litert.interpreter import Interpreter

        with models.native_stderr_silenced():  # its one INFO line per process says which delegate it made
            if model_content is not None:
                self._interpreter = Interpreter(model_content=model_content, num_threads=threads)
            else:
                self._interpreter = Interpreter(model_path=spec.converted, num_threads=threads)
        self.spec = spec
        self.encoded_once = False
        self._input = self._interpreter.get_input_details()[0]["index"]
        output = self._interpreter.get_output_details()[0]
        self._output = output["index"]
        self.dim = int(output["shape"][-1])
        self._batch = 0  # the batch size the interpreter's tensors are allocated for
        self._call = max(1, LITERT_CALL_PIXELS // (spec.image_size * spec.image_size))

    def encode(self, images: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) float32 RGB 0..255 -> (N, dim) float32."""
        if len(images) <= self._call:
            return self._invoke(images)
        return np.concatenate([self._invoke(images[at : at + self._call]) for at in range(0, len(images), self._call)])

    def _invoke(self, images: np.ndarray) -> np.ndarray:
        if len(images) != self._batch:  # a task's last, smaller batch: the tensors are sized again
            self._interpreter.resize_tensor_input(self._input, images.shape)
            self._interpreter.allocate_tensors()
            self._batch = len(images)
        self._interpreter.set_tensor(self._input, images)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)


def load_encoder(spec: models.ModelSpec, threads: int = 1):
    """The encoder of `spec` on its engine (spec.engine), with `threads` threads."""
    if spec.engine != LITERT:
        return TensorFlowEncoder(spec, threads)
    encoder = LiteRTEncoder(spec, threads)
    mark("worker loaded the converted model")
    return encoder


def worker_spec(spec: models.ModelSpec, engine: PreparedEngine, converted: str | None = None) -> models.ModelSpec:
    """`spec` for the workers of `engine`: LiteRT's load the converted model (`converted`: its path on the
    workers, default its path here) and need no weights."""
    if engine.name != LITERT:
        return replace(spec, engine=TENSORFLOW)
    return replace(spec, weights=models.RANDOM, engine=LITERT, converted=converted or str(engine.converted))


if __name__ == "__main__":
    sys.exit(_child_main(*sys.argv[1:3]))
