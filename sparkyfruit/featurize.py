"""The shared stage: (path, label, content, error) -> (path, label, features, error).

The only module that runs the network (on the engine of engines.py). Each Python worker loads it once and
keeps it for every task it runs (Spark reuses Python workers). An image that cannot be decoded becomes a
row with an error text and null features; it never fails the job.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from sparkyfruit.engines import load_encoder
from sparkyfruit.models import ModelSpec
from sparkyfruit.timeline import mark

# the one text for a 0-byte image, whichever source found it
EMPTY_FILE_ERROR = "cannot decode image: empty file (0 bytes)"

# A ModelSpec's file (its weights, or LiteRT's converted model) with this prefix was shipped to the executors
# by SparkContext.addFile.
SPARK_FILES_PREFIX = "sparkfiles:"

_ENCODERS: dict[ModelSpec, object] = {}  # a TensorFlowEncoder or LiteRTEncoder (engines.py) per spec


def encoder_for(spec: ModelSpec, threads: int = 1):
    """The worker's encoder for `spec`, loaded on first use and kept for every later task."""
    encoder = _ENCODERS.get(spec)
    if encoder is None:
        encoder = _ENCODERS[spec] = load_encoder(
            replace(spec, weights=_local(spec.weights), converted=_local(spec.converted)), threads
        )
        # once per Python worker, into the executor's log: which environment a cluster really ran
        print(
            f"sparkyfruit worker: python {sys.executable}, sparkyfruit from {Path(__file__).parent}, "
            f"{spec.name} on {spec.engine}",
            file=sys.stderr,
            flush=True,
        )
    return encoder


def _local(file: str | None) -> str | None:
    """A file of the spec on this worker: one shipped with the job (SPARK_FILES_PREFIX) is where Spark put it."""
    if file is None or not file.startswith(SPARK_FILES_PREFIX):
        return file
    from pyspark import SparkFiles

    return SparkFiles.get(file[len(SPARK_FILES_PREFIX) :])


# JPEG colour spaces whose decode by libjpeg-turbo straight to RGB gives Pillow's pixels exactly; Pillow's own
# conversion of the others (CMYK, YCCK) differs, so those go through Pillow
_TURBO_COLOUR_SPACES = ("YCbCr", "Gray", "RGB")


def decode_image(content: bytes, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """Bytes of a JPEG/PNG -> (size, size, 3) uint8 RGB, bilinear resize (as keras.utils.load_img does).

    A JPEG is decoded by simplejpeg (libjpeg-turbo, as in Pillow, with the same accurate DCT and fancy
    upsampling, so the same pixels) without Pillow's per-image Python work, which for a 100 px image costs
    more than the decode itself; into `out` when it is given and the image needs no resize. Anything
    simplejpeg does not take (PNG, CMYK, a damaged file) goes through Pillow, which also words the error.
    With `out`, the pixels are written there and `out` is returned.
    """
    rgb = _decode(content, size, out)
    if out is None or rgb is out:
        return rgb
    out[...] = rgb
    return out


def _decode(content: bytes, size: int, out: np.ndarray | None) -> np.ndarray:
    if content[:2] == b"\xff\xd8":
        try:
            import simplejpeg
            from PIL import Image

            height, width, colour_space, _ = simplejpeg.decode_jpeg_header(content)
            # beyond Pillow's decompression-bomb limit, Pillow's own check refuses the image (or warns)
            within_limit = Image.MAX_IMAGE_PIXELS is None or height * width <= Image.MAX_IMAGE_PIXELS
            if colour_space in _TURBO_COLOUR_SPACES and within_limit:
                if (height, width) != (size, size):
                    return _resized(simplejpeg.decode_jpeg(content, colorspace="RGB"), size)
                if out is None:
                    return simplejpeg.decode_jpeg(content, colorspace="RGB")
                simplejpeg.decode_jpeg(content, colorspace="RGB", buffer=out)
                return out
        except ValueError:
            pass  # strict: any libjpeg warning (a truncated file) is an error; Pillow decides and words it
    from PIL import Image

    with Image.open(io.BytesIO(content)) as image:
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # convert would copy an RGB image
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.BILINEAR)
        return np.asarray(rgb)


def _resized(rgb: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))


def _error_text(exc: BaseException) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, UnidentifiedImageError):  # its text names the in-memory buffer, not the file
        return "cannot decode image: not an image file (JPEG, PNG) that Pillow can read"
    return f"cannot decode image: {type(exc).__name__}: {exc}"


def featurize_batch(encoder, contents: list, errors: list) -> dict:
    """The contents and source errors of one batch -> the errors, which rows decoded, and their vectors."""
    size = encoder.spec.image_size
    errors = list(errors)
    pixels = np.empty((len(contents), size, size, 3), dtype=np.uint8)  # a quarter of float32's memory traffic
    decoded: list[int] = []
    for row, content in enumerate(contents):
        if errors[row] is not None:
            continue  # the source could not read it; keep its reason
        if not content:
            errors[row] = EMPTY_FILE_ERROR
            continue
        try:
            decode_image(content, size, out=pixels[len(decoded)])
            decoded.append(row)
        except Exception as exc:  # Pillow raises many types for bad files; each becomes a row error
            errors[row] = _error_text(exc)
    step = encoder.spec.batch_size
    chunks = [
        encoder.encode(pixels[start : min(len(decoded), start + step)].astype(np.float32))
        for start in range(0, len(decoded), step)
    ]
    vectors = np.concatenate(chunks) if chunks else np.empty((0, encoder.dim), dtype=np.float32)
    return {"errors": errors, "decoded_rows": decoded, "vectors": vectors}


def featurize_partition(spec: ModelSpec, fetch=None, counter=None, busy=None) -> callable:
    """The function given to `DataFrame.mapInArrow`. It closes over the spec, the source's `fetch` (which
    turns (path, label) batches into (path, label, content, error) in this same worker), `counter`, a
    Spark accumulator that counts the rows done for the progress bar, and `busy`, one that sums the seconds
    tasks spent on their rows once the network was loaded (shards.Sizing: one core's rate, without the
    start-up). It builds nothing until a task calls it."""

    def run(batches: Iterator) -> Iterator:
        import pyarrow as pa
        from pyspark import TaskContext

        context = TaskContext.get()
        mark("worker task started")
        encoder = encoder_for(spec, threads=max(1, int(context.cpus())) if context else 1)
        after_batch = _worker_hook()
        ready = time.perf_counter()
        for batch in fetch(batches) if fetch else batches:
            if batch.num_rows == 0:
                continue
            paths, labels = batch.column("path"), batch.column("label")
            result = featurize_batch(encoder, batch.column("content").to_pylist(), batch.column("error").to_pylist())
            yield pa.RecordBatch.from_arrays(
                [paths, labels, _features_array(batch.num_rows, result), pa.array(result["errors"], pa.string())],
                names=["path", "label", "features", "error"],
            )
            if counter is not None:
                counter.add(batch.num_rows)
            if not encoder.encoded_once:
                encoder.encoded_once = True
                mark("worker encoded its first batch")
            after_batch()
        if busy is not None:
            busy.add(time.perf_counter() - ready)
        mark("worker task ended")  # its rows reach the progress bar now: Spark sends accumulators at a task's end

    return run


# The name of an optional module that only the tests put on the workers' path (tests/worker_hooks/): when a
# worker can import it, its after_batch() runs after each batch a task hands on (the tests' faults: a worker
# or an executor killed half-way through a task). Nothing in this package defines it, so a user's run never
# has one; it is looked up once per Python worker.
WORKER_HOOKS_MODULE = "sparkyfruit_worker_hooks"
_after_batch = None


def _worker_hook():
    """The tests' after_batch(), or a no-op where its module is not on the path."""
    global _after_batch
    if _after_batch is None:
        import importlib

        try:
            _after_batch = importlib.import_module(WORKER_HOOKS_MODULE).after_batch
        except ModuleNotFoundError:
            _after_batch = _no_hook
    return _after_batch


def _no_hook() -> None:
    pass


def _features_array(rows: int, result: dict):
    """list<float32> column: one vector per decoded row, null elsewhere, without a Python loop over floats."""
    import pyarrow as pa

    dim = result["vectors"].shape[1] if result["vectors"].ndim == 2 else 0
    ok = np.zeros(rows, dtype=bool)
    ok[result["decoded_rows"]] = True
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(np.where(ok, dim, 0), out=offsets[1:])
    values = pa.array(result["vectors"].reshape(-1), type=pa.float32())
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, mask=pa.array(~ok))
