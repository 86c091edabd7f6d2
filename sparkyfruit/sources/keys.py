"""Mode "keys": the driver lists object keys (boto3 paginator, or a folder walk); executors GET the bytes,
one boto3 client per partition and several requests in flight, retries by botocore's configured mode."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from sparkyfruit import storage
from sparkyfruit.config import RunConfig, S3Settings
from sparkyfruit.featurize import SOURCE_SCHEMA
from sparkyfruit.sources import no_images_error

# Enough rows per task that per-task overhead (Python gc, scheduling) stays small, while still
# giving every core work on small inputs.
ROWS_PER_PARTITION = 2048


def read_images(spark, config: RunConfig):
    uris = storage.list_images(config.input_location, config.file_pattern, config, config.limit)
    if not uris:
        raise no_images_error(config)
    slices = min(len(uris), max(spark.sparkContext.defaultParallelism, math.ceil(len(uris) / ROWS_PER_PARTITION)))
    rows = spark.sparkContext.parallelize([(uri, storage.label_of(uri)) for uri in uris], slices)
    keys = spark.createDataFrame(rows, "path string, label string")
    # one output row per listed key by construction: nothing for the sink to reconcile
    return keys.mapInArrow(fetch_partition(config.s3_only()), SOURCE_SCHEMA), None, len(uris)


def fetch_partition(s3: S3Settings):
    """The function given to `mapInArrow`: (path, label) batches -> (path, label, content, error) batches."""

    def run(batches: Iterator) -> Iterator:
        import pyarrow as pa

        client = None
        with ThreadPoolExecutor(max_workers=s3.fetch_concurrency) as pool:
            for batch in batches:
                paths = batch.column("path").to_pylist()
                if client is None and any(p.startswith("s3://") for p in paths):
                    client = storage.s3_client(s3)  # one client per partition, shared by the threads
                fetched = list(pool.map(lambda uri: _fetch(uri, client), paths))
                yield pa.RecordBatch.from_arrays(
                    [
                        batch.column("path"),
                        batch.column("label"),
                        pa.array([content for content, _ in fetched], pa.binary()),
                        pa.array([error for _, error in fetched], pa.string()),
                    ],
                    names=["path", "label", "content", "error"],
                )

    return run


def _fetch(uri: str, client) -> tuple[bytes | None, str | None]:
    try:
        return storage.read_local_or_s3(uri, client), None
    except Exception as exc:  # after botocore's retries: the row records why, the job goes on
        return None, f"cannot read image: {type(exc).__name__}: {exc}"
