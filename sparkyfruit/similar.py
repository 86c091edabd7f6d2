"""`sparkyfruit similar`: recognise images by the nearest rows of an encode output.

The query images are encoded in this process (no Spark) by the very network that made the output, rebuilt
from its manifest: the same backbone or saved model, width, size, pooling and weights, whose sha256 must
match the manifest's. The output's rows are then ranked by cosine similarity (see `NearestRows`), and each
query gets its k nearest rows and a predicted label: the label with the largest sum of similarities among
them.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from sparkyfruit import locations, models, output_format, storage, weights
from sparkyfruit.errors import ConfigError, StorageError
from sparkyfruit.s3_settings import S3Settings

# how many query images are decoded and encoded at a time: memory stays bounded for a folder of queries
QUERY_BATCH = 64


@dataclass
class Neighbor:
    path: str
    label: str
    similarity: float


@dataclass
class Answer:
    """One query image: its predicted label and nearest rows, or why it could not be encoded."""

    query: str  # the image: a file as it was given, an image found in a folder by its path, or an s3:// URI
    label: str | None
    neighbors: list[Neighbor] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        if self.error is None:
            data.pop("error")
        return data


@dataclass
class Similar:
    index: str
    rows: int  # rows of the index with a vector
    model: str
    answers: list[Answer]
    seconds: dict[str, float]  # load (index and network), encode, search

    @property
    def failed(self) -> int:
        return sum(answer.error is not None for answer in self.answers)


class NearestRows:
    """Exact cosine-similarity search over the rows of an index: one float32 matrix product (NumPy's BLAS)
    and a partial sort. Chosen by measurement (benchmarks/similar.py, docs/performance.md): faiss's exact
    index, built and searched, was faster in one case measured (1,000 rows, by a millisecond) and slower in
    the rest; an approximate one costs more to build than thousands of these searches, and each command
    that loads an output would build it again."""

    def __init__(self, vectors: np.ndarray):
        self.unit = _unit(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, row indices), each (len(queries), min(k, rows)), nearest first."""
        k = min(k, len(self.unit))
        similarities = _unit(np.ascontiguousarray(queries, dtype=np.float32)) @ self.unit.T
        if k < similarities.shape[1]:
            top = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
        else:
            top = np.broadcast_to(np.arange(similarities.shape[1]), similarities.shape).copy()
        picked = np.take_along_axis(similarities, top, axis=1)
        order = np.argsort(-picked, axis=1, kind="stable")
        return np.take_along_axis(picked, order, axis=1), np.take_along_axis(top, order, axis=1)


def _unit(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


def vote(labels: list[str], similarities: np.ndarray) -> str:
    """The label with the largest sum of similarities among the neighbours (the nearest one's on a tie)."""
    scores: dict[str, float] = defaultdict(float)
    for label, similarity in zip(labels, similarities):
        scores[label] += float(similarity)
    return max(scores, key=lambda label: (scores[label], -labels.index(label)))


def similar(queries: list[str], index: str, s3: S3Settings, k: int = 5, encoder=None, announce=None) -> Similar:
    """The k nearest rows of the encode output `index` for each query image, and a predicted label.

    Parameters
    ----------
    queries: image files, folders of images, s3:// keys or prefixes.
    index: a finished encode output (local, s3:// or hdfs://).
    s3: S3 settings for the queries and the index.
    k: neighbours per query.
    encoder: an encoder (engines.load_encoder) of the index's network and engine, already loaded (tests and
        benchmarks reuse one).
    announce: a print function, told which network (model file and sha256) encodes the queries.

    Returns
    -------
    Similar: one Answer per query image, in the order given (a folder's images sorted by path); an image
    that cannot be read or decoded gets its error, and the others go on. Raises ConfigError for bad
    arguments or an index that is not an encode output.

    Example
    -------
    >>> similar(["photo.jpg"], "out/features", S3Settings(), k=5).answers[0].label
    'Banana'
    """
    if k < 1:
        raise ConfigError(f"--k must be at least 1; got {k}.", "The default is 5.")
    if not queries:
        raise ConfigError("similar needs at least one QUERY image.", "Give image files, folders or s3:// keys.")
    started = time.monotonic()
    location = locations.parse_location(index, "--index")
    stored = output_format.finished_output(location, s3)
    manifest = stored.manifest
    if not isinstance(manifest, output_format.Manifest):
        raise ConfigError(
            f"--index {location.shown} is a `reduce` output: its PCA vectors cannot be compared with a new image's.",
            "Give the encode output that it was reduced from.",
        )
    images = [image for query in queries for image in _expand(query, s3)]
    loaded = output_format.load_vectors(stored)
    nearest = NearestRows(loaded.vectors)
    encoder = encoder or encoder_for_manifest(manifest, s3, announce)
    if encoder.dim != loaded.vectors.shape[1]:
        raise ConfigError(
            f"The network rebuilt from {location.shown}'s manifest gives {encoder.dim}-d vectors, and the output "
            f"holds {loaded.vectors.shape[1]}-d ones.",
            "The output was changed after its run; encode it again.",
        )
    from sparkyfruit.featurize import featurize_batch

    seconds = {"load": time.monotonic() - started, "encode": 0.0, "search": 0.0}
    answers = []
    for start in range(0, len(images), QUERY_BATCH):
        batch = images[start : start + QUERY_BATCH]
        encoded_at = time.monotonic()
        contents, errors = zip(*(_read(image, s3) for image in batch))
        result = featurize_batch(encoder, list(contents), list(errors))
        searched_at = time.monotonic()
        seconds["encode"] += searched_at - encoded_at
        found = nearest.search(result["vectors"], k) if result["decoded_rows"] else None
        seconds["search"] += time.monotonic() - searched_at
        answers += _answers(batch, result, found, loaded)
    return Similar(location.uri, len(loaded.paths), manifest.model, answers, seconds)


def _answers(batch: list[str], result: dict, found, loaded: output_format.Vectors) -> list[Answer]:
    """One batch's answers, in its order: featurize_batch's `result`, and the (similarities, rows) found for
    the rows it decoded."""
    number_of = {row: number for number, row in enumerate(result["decoded_rows"])}
    answers = []
    for row, image in enumerate(batch):
        if row not in number_of:
            answers.append(Answer(_shown(image), None, error=result["errors"][row]))
            continue
        similarities, rows = found[0][number_of[row]], found[1][number_of[row]]
        neighbors = [
            Neighbor(loaded.paths[i], loaded.labels[i], round(float(s), 6)) for i, s in zip(rows, similarities)
        ]
        answers.append(Answer(_shown(image), vote([n.label for n in neighbors], similarities), neighbors))
    return answers


def encoder_for_manifest(manifest: output_format.Manifest, s3: S3Settings, announce=None):
    """The network that made an output, on the engine that ran it, loaded in this process from its manifest.
    The manifest is not trusted to name what runs: a saved model is loaded only when the manifest records
    its sha256, the staged file has that sha256, and the file carries no code (models.check_model_file);
    a weights file must match the recorded sha256 too. `announce` (a print function) is told what runs."""
    from sparkyfruit import engines

    source = weights.source_of(manifest.model, manifest.weights)
    recorded = manifest.shipped_sha256
    saved_model = models.is_saved_model(manifest.model)
    if saved_model and not recorded:
        raise ConfigError(
            f"The index's manifest names the saved model {source} without its sha256; sparkyfruit loads a model "
            "file only when the output records which file it was, so it did not fetch it.",
            "Encode the images again with this release, which records it.",
        )
    staged = weights.stage(source, s3, model=manifest.model, alpha=manifest.alpha, image_size=manifest.image_size)
    if recorded and staged.sha256 != recorded:
        raise ConfigError(
            f"The weights {source} are not the ones this output was encoded with (sha256 {staged.sha256[:12]}..., "
            f"the manifest says {recorded[:12]}...): their vectors cannot be compared.",
            "Restore that file, or encode the images again with the new one.",
        )
    if saved_model:
        models.check_model_file(staged.file, source)
    if announce is not None:
        what = f"saved model {source}" if saved_model else f"{manifest.model}, weights {weights.label(source)}"
        announce(f"Network: {what}" + (f" (sha256 {staged.sha256[:12]}...)" if staged.sha256 else ""))
    local = str(staged.file) if staged.file is not None else models.RANDOM
    spec = models.ModelSpec.of(manifest.model, local, QUERY_BATCH, manifest)
    engine = engines.prepare(spec, staged.sha256, manifest.engine)  # the index's: a query's vector is comparable
    return engines.load_encoder(engines.worker_spec(spec, engine), threads=os.cpu_count() or 1)


def _expand(query: str, s3: S3Settings) -> list[str]:
    """A query as image URIs: a file or key as itself, a folder or prefix as the images under it."""
    location = locations.parse_location(query, "QUERY")
    if location.is_local and not os.path.isdir(location.path):
        return [query]  # a file, as given (one that is not there gets its error)
    if location.is_s3 and location.key.rsplit(".", 1)[-1].lower() in locations.IMAGE_EXTENSIONS:
        return [location.uri]
    found = storage.list_images(location, locations.default_pattern(), s3)
    if not found:
        raise ConfigError(f"QUERY {location.shown} holds no images (jpg, jpeg, png).", "Give image files or folders.")
    return found


def _shown(image: str) -> str:
    """A query image as it is reported: a local one by its path, an S3 one by its URI."""
    return locations.parse_location(image).shown if "://" in image else image


def _read(uri: str, s3: S3Settings) -> tuple[bytes | None, str | None]:
    """An image's bytes, or the reason they cannot be read."""
    try:
        content = storage.read_bytes(locations.parse_location(uri), s3)
    except (OSError, StorageError) as exc:
        return None, f"cannot read image: {getattr(exc, 'message', exc)}"
    return (content, None) if content is not None else (None, "cannot read image: no such file or object")
