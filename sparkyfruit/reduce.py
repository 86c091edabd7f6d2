"""`sparkyfruit reduce`: Spark ML PCA on an encode output's `features`, fitted once, applied to every row,
written as a Delta table as encode's output is.

Rows without a vector (failed images) are kept with a null `pca_features`. The fitted PCAModel is saved
in the output (`_pca_model/`), so later images can be projected the same way
(`pyspark.ml.feature.PCAModel.load(...)`), and the manifest records k, the explained variance and the
source output's manifest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sparkyfruit import locations, output_format, sink, storage
from sparkyfruit.errors import ConfigError, NotAnOutputError
from sparkyfruit.s3_settings import S3Settings

MODEL_FOLDER = "_pca_model"


@dataclass
class Reduction:
    output: str
    k: int
    explained_variance: float  # share of the variance the k components keep
    rows: int
    dim_in: int
    duration_seconds: float


def components_for(explained: list[float], variance: float) -> int:
    """The smallest k whose leading components keep at least `variance` of the total."""
    total = 0.0
    for k, share in enumerate(explained, start=1):
        total += share
        if total >= variance - 1e-12:
            return k
    return len(explained)


def reduce(
    source: str,
    output: str,
    s3: S3Settings,
    *,
    k: int | None = None,
    variance: float | None = None,
    overwrite: bool = False,
    spark=None,
) -> Reduction:
    if (k is None) == (variance is None):
        raise ConfigError("Give exactly one of --k N or --variance F.", "E.g. --k 50, or --variance 0.95.")
    if k is not None and k < 1:
        raise ConfigError(f"--k must be at least 1; got {k}.", "E.g. --k 50.")
    if variance is not None and not 0 < variance <= 1:
        raise ConfigError(f"--variance must be in (0, 1]; got {variance}.", "E.g. --variance 0.95.")
    source_location = locations.parse_location(source, "OUTPUT")
    target = locations.parse_location(output, "--output")
    source_output = output_format.finished_output(source_location, s3)
    source_manifest = source_output.manifest
    if isinstance(source_manifest, output_format.ReduceManifest):
        raise NotAnOutputError(
            f"{source_location.uri} is a reduce output; reduce works on an encode output.",
            f"Give the output it was reduced from: {source_manifest.source}.",
        )
    output_format.check_writable(target, s3, overwrite=overwrite)
    dim = source_manifest.dim
    if k is not None and k > dim:
        raise ConfigError(f"--k {k} is more than the vectors' {dim} dimensions.", f"Choose --k at most {dim}.")
    from sparkyfruit.spark.session import tool_session

    with tool_session(s3, "sparkyfruit-reduce", source_location.is_s3 or target.is_s3, spark) as session:
        return _fit_and_write(session, source_output, target, s3, dim, k, variance)


def _fit_and_write(spark, source_output, target, s3, dim, k, variance) -> Reduction:
    from pyspark.ml.feature import PCA
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.sql import functions as F

    started = time.monotonic()
    scheme = s3.spark_s3_scheme
    source, source_manifest = source_output.location, source_output.manifest
    rows = spark.read.parquet(*output_format.data_file_uris(source_output))
    vectors = rows.where(F.col("features").isNotNull()).select(array_to_vector("features").alias("vector")).cache()
    usable = vectors.count()
    if usable < 2:
        raise NotAnOutputError(
            f"{source.uri} has {usable} rows with vectors; PCA needs at least 2.", "Encode more images first."
        )
    if variance is not None:
        # every component the data allows, then keep as many as the requested variance needs
        full = PCA(k=min(dim, usable), inputCol="vector", outputCol="pca").fit(vectors)
        k = components_for([float(x) for x in full.explainedVariance], variance)
    model = PCA(k=k, inputCol="vector", outputCol="pca").fit(vectors)
    vectors.unpersist()
    has_vector = F.col("features").isNotNull()
    projected = model.transform(rows.where(has_vector).withColumn("vector", array_to_vector("features"))).select(
        "path", "label", vector_to_array("pca", "float32").alias("pca_features"), "error"
    )
    failed = rows.where(~has_vector).select(  # kept, with no projection
        "path", "label", F.lit(None).cast("array<float>").alias("pca_features"), "error"
    )
    result = projected.unionByName(failed)
    # the old output goes first (check_writable found only sparkyfruit's files there); then, as encode does,
    # the tasks write the Parquet files and the driver commits exactly those to the Delta log
    storage.delete_files(target, storage.list_files(target, s3), s3)
    written = sink.write_rows(result, target, s3, "pca_features", {"reduce": source.uri, "k": k})
    model.write().overwrite().save(target.child(MODEL_FOLDER).spark_uri(scheme))
    kept = float(sum(model.explainedVariance))
    duration = time.monotonic() - started
    manifest = output_format.ReduceManifest(
        created_at=output_format.now(),
        source=source.uri,
        k=k,
        requested_variance=variance,
        explained_variance=kept,
        explained_variance_by_component=[float(x) for x in model.explainedVariance],
        dim=k,
        dim_in=dim,
        counts=output_format.Counts(written, usable, written - usable),
        model_folder=MODEL_FOLDER,
        duration_seconds=round(duration, 3),
        source_manifest=source_manifest,
    )
    output_format.write_manifest(target, manifest, s3)
    return Reduction(target.uri, k, kept, written, dim, duration)
