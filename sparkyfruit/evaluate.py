"""`sparkyfruit evaluate`: how well a linear probe separates the labels, as a check that the vectors are good.

Stratified split by label (the same share of every class is held out, chosen with a seed), then either
nearest-centroid on the driver (numpy, no Spark, default) or Spark ML logistic regression. Works on an
encode output (`features`) and on a `reduce` output (`pca_features`).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from sparkyfruit import locations, output_format
from sparkyfruit.errors import ConfigError
from sparkyfruit.s3_settings import S3Settings

METHODS = ("centroid", "logistic")
# beyond this many rows with vectors, the probe runs on a sample of about this many (and says so): the
# accuracy of a linear probe is settled long before, and memory stays bounded
AT_MOST = 200_000


@dataclass
class Evaluation:
    output: str
    column: str
    method: str
    train: int
    test: int
    accuracy: float
    per_class: dict[str, dict[str, float]]  # label -> precision, recall, support
    confusions: list[dict] = field(default_factory=list)  # {"label", "predicted", "count"}, most frequent first
    sampled_from: int | None = None  # the rows with vectors in the output, when the probe used a sample

    def to_json(self) -> dict:
        return asdict(self)


def stratified_split(labels: list[str], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, test): per label, `test_fraction` of its rows (at least one, never all) to test."""
    if not 0 < test_fraction < 1:
        raise ConfigError(f"--test-fraction must be between 0 and 1; got {test_fraction}.", "E.g. 0.5 or 0.2.")
    generator = random.Random(seed)
    train, test = [], []
    by_label: dict[str, list[int]] = {}
    for index, value in enumerate(labels):
        by_label.setdefault(value, []).append(index)
    for label in sorted(by_label):
        members = by_label[label]
        generator.shuffle(members)
        if len(members) < 2:
            train += members  # a class with one image cannot be tested
            continue
        held = min(len(members) - 1, max(1, round(len(members) * test_fraction)))
        test += members[:held]
        train += members[held:]
    return sorted(train), sorted(test)


def nearest_centroid(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray) -> list[str]:
    """Cosine similarity to each class's mean vector."""

    def unit(x):
        norms = np.linalg.norm(x, axis=-1, keepdims=True)
        return x / np.where(norms == 0, 1, norms)

    classes = sorted(set(train_y))
    labels = np.asarray(train_y)
    centroids = unit(np.stack([unit(train_x[labels == c]).mean(axis=0) for c in classes]))
    return [classes[i] for i in np.argmax(unit(test_x) @ centroids.T, axis=1)]


def logistic_regression(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray, spark) -> list[str]:
    """Spark ML multinomial logistic regression on the training rows."""
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.linalg import Vectors

    classes = sorted(set(train_y))
    index = {c: float(i) for i, c in enumerate(classes)}
    train = spark.createDataFrame(
        [(Vectors.dense(x), index[y]) for x, y in zip(train_x, train_y)], ["features", "label"]
    )
    test = spark.createDataFrame([(i, Vectors.dense(x)) for i, x in enumerate(test_x)], ["row", "features"])
    model = LogisticRegression(maxIter=200, regParam=1e-3, family="multinomial").fit(train)
    predicted = {
        r["row"]: classes[int(r["prediction"])] for r in model.transform(test).select("row", "prediction").collect()
    }
    return [predicted[i] for i in range(len(test_x))]


def evaluate(
    output: str,
    s3: S3Settings,
    *,
    test_fraction: float = 0.5,
    seed: int = 0,
    method: str = "centroid",
    spark=None,
    announce=None,
) -> Evaluation:
    if method not in METHODS:
        raise ConfigError(f"Unknown --method {method!r}.", f"Choose one of: {', '.join(METHODS)}.")
    stored = output_format.finished_output(output, s3)
    loaded = output_format.load_vectors(stored, at_most=AT_MOST, seed=seed)
    labels, vectors, column = loaded.labels, loaded.vectors, loaded.column
    if len(set(labels)) < 2:
        raise ConfigError(
            f"{output} has {len(set(labels))} label(s); a probe needs at least 2.",
            "Encode images from at least two class folders.",
        )
    train, test = stratified_split(labels, test_fraction, seed)
    train_y, test_y = [labels[i] for i in train], [labels[i] for i in test]
    if method == "centroid":
        predicted = nearest_centroid(vectors[train], train_y, vectors[test])
    else:
        from sparkyfruit.spark.session import tool_session

        if spark is None and announce is not None:
            announce(
                "--method logistic fits Spark ML's logistic regression: starting Spark (a JVM) for it, which takes "
                "longer than the fit. --method centroid needs no JVM."
            )
        # the vectors come from the driver: the session never touches S3
        with tool_session(S3Settings(), "sparkyfruit-evaluate", False, spark) as session:
            predicted = logistic_regression(vectors[train], train_y, vectors[test], session)
    accuracy = sum(p == t for p, t in zip(predicted, test_y)) / len(test_y)
    per_class = {}
    hits, predicted_as, supports = (
        Counter(t for p, t in zip(predicted, test_y) if p == t),
        Counter(predicted),
        Counter(test_y),
    )
    for label in sorted(set(labels)):
        true_positive, support = hits[label], supports[label]
        per_class[label] = {
            "precision": true_positive / predicted_as[label] if predicted_as[label] else 0.0,
            "recall": true_positive / support if support else 0.0,
            "support": support,
        }
    confusions = [
        {"label": t, "predicted": p, "count": n}
        for (t, p), n in Counter((t, p) for t, p in zip(test_y, predicted) if t != p).most_common()
    ]
    return Evaluation(
        locations.parse_location(output).uri,
        column,
        method,
        len(train),
        len(test),
        accuracy,
        per_class,
        confusions,
        loaded.rows if loaded.sampled else None,
    )
