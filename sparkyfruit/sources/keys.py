"""Mode "keys": the driver lists object keys (boto3 paginator, or a folder walk); executors GET the bytes,
one boto3 client per partition and several requests in flight, retries by botocore's configured mode."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from sparkyfruit import storage
from sparkyfruit.config import RunConfig, S3Settings
from sparkyfruit.sources import Source, no_images_error

# Enough rows per task that per-task overhead (Python gc, scheduling) stays small, while still
# giving every core work on small inputs.
ROWS_PER_PARTITION = 2048


def list_keys(config: RunConfig) -> list[str]:
    """The image URIs to encode, listed on the driver (no Spark needed)."""
    uris = storage.list_images(config.input_location, config.file_pattern, config, config.limit)
    if not uris:
        raise no_images_error(config)
    return uris


def read_images(spark, config: RunConfig, uris: list[str]) -> Source:
    slices = min(len(uris), max(spark.sparkContext.defaultParallelism, math.ceil(len(uris) / ROWS_PER_PARTITION)))
    rows = spark.sparkContext.parallelize([(uri, storage.label_of(uri)) for uri in uris], slices)
    keys = spark.createDataFrame(rows, "path string, label string")
    # one output row per listed key by construction: nothing for the sink to reconcile
    return Source(keys, fetch=fetch_batches(config.s3_only()), listed=None, count=len(uris))


def fetch_batches(s3: S3Settings):
    """(path, label) Arrow batches -> (path, label, content, error) batches, run inside the featurize worker.

    One boto3 client per partition, shared by `fetch_concurrency` threads. The GETs of the next batch are
    in flight while the caller works on the current one: on S3 a small object costs tens of milliseconds
    of latency, which then hides behind decode and inference.
    """

    def run(batches: Iterator) -> Iterator:
        import pyarrow as pa

        client = None
        pending = None
        with ThreadPoolExecutor(max_workers=s3.fetch_concurrency) as pool:
            for batch in batches:
                paths = batch.column("path").to_pylist()
                if client is None and any(p.startswith("s3://") for p in paths):
                    client = storage.s3_client(s3)
                submitted = (batch, [pool.submit(_fetch, uri, client) for uri in paths])
                if pending is not None:
                    yield _assemble(pa, *pending)
                pending = submitted
            if pending is not None:
                yield _assemble(pa, *pending)

    return run


def _assemble(pa, batch, futures):
    fetched = [future.result() for future in futures]
    return pa.RecordBatch.from_arrays(
        [
            batch.column("path"),
            batch.column("label"),
            pa.array([content for content, _ in fetched], pa.binary()),
            pa.array([error for _, error in fetched], pa.string()),
        ],
        names=["path", "label", "content", "error"],
    )


def _fetch(uri: str, client) -> tuple[bytes | None, str | None]:
    try:
        return storage.read_local_or_s3(uri, client), None
    except Exception as exc:  # after botocore's retries: the row records why, the job goes on
        return None, f"cannot read image: {type(exc).__name__}: {exc}"
