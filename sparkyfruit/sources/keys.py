"""Mode "keys": the driver lists object keys (boto3 paginator, or a folder walk); executors GET the bytes
through obstore (sparkyfruit/s3_reads.py), several requests in flight per task, retried by object_store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sparkyfruit import locations, storage
from sparkyfruit.config import RunConfig, S3Settings
from sparkyfruit.shards import Shard, task_count
from sparkyfruit.sources import Source, no_images_error


def list_keys(config: RunConfig) -> list[tuple[str, int | None, str | None]]:
    """(URI, size, ETag) of the images to encode, sorted by URI, listed on the driver (no Spark needed)."""
    images = storage.list_image_objects(config.input_location, config.file_pattern, config, config.limit)
    if not images:
        raise no_images_error(config)
    return images


@dataclass
class Listing:
    """The driver's listing; `uris` in the listing's (sorted) order."""

    spark: object
    images: list[tuple[str, int | None, str | None]]
    config: RunConfig

    @property
    def uris(self) -> list[str]:
        return [uri for uri, _, _ in self.images]

    def source(self, shard: Shard, images_per_task: int) -> Source:
        images = [self.images[position] for position in shard.positions()]
        context = self.spark.sparkContext
        slices = task_count(len(images), context.defaultParallelism, images_per_task)
        rows = [(uri, locations.label_of(uri), size, etag) for uri, size, etag in images]
        keys = _frame_of(self.spark, rows, slices, "path string, label string, size long, etag string")
        # one output row per listed key by construction: the sink finds nothing to reconcile
        listed = [uri for uri, _, _ in images]
        return Source(keys, fetch=fetch_batches(self.config.s3_only()), listed=listed, count=len(images))


def _frame_of(spark, rows: list[tuple], slices: int, schema: str):
    """A DataFrame of `rows` in `slices` partitions, turned into Spark rows by the JVM.

    `createDataFrame` over an RDD (the only way to choose the partitions) maps every row through a Python
    worker first: per task one more Python process, and every row pickled twice more. Its own path for a
    local list, which this follows, has the JVM unpickle the rows.
    """
    from pyspark.sql import DataFrame
    from pyspark.sql.types import _parse_datatype_string

    context = spark.sparkContext
    # the JVM unpickles the batches that parallelize wrote (RDD._to_java_object_rdd would first re-pickle
    # them in a Python worker: one more Python process per task slot)
    pickled = context._jvm.SerDeUtil.pythonToJava(context.parallelize(rows, slices)._jrdd, True)
    arrays = context._jvm.SerDeUtil.toJavaArray(pickled)
    return DataFrame(
        spark._jsparkSession.applySchemaToPythonRDD(arrays.rdd(), _parse_datatype_string(schema).json()), spark
    )


def fetch_batches(s3: S3Settings):
    """(path, label, size, etag) Arrow batches -> (path, label, content, error) batches, run inside the
    featurize worker.

    `fetch_concurrency` GETs in flight per task, through the worker's one reader. The GETs of the next
    batch are in flight while the caller works on the current one: on S3 a small object costs tens of
    milliseconds of latency, which then hides behind decode and inference. The ETag comes from the
    listing, so no HEAD precedes a GET, and an object replaced since the listing fails its If-Match.
    """

    def run(batches: Iterator) -> Iterator:
        import pyarrow as pa

        from sparkyfruit.s3_reads import object_reader

        reader = None
        pending = None
        started = []
        try:
            for batch in batches:
                paths = batch.column("path").to_pylist()
                if reader is None and any(locations.is_s3_uri(p) for p in paths):
                    reader = object_reader(s3)
                started = _start(paths, batch.column("etag").to_pylist(), reader)
                if pending is not None:
                    yield _assemble(pa, *pending)
                pending = (batch, started)
            if pending is not None:
                yield _assemble(pa, *pending)
        finally:  # a task that ends early (its consumer closed this) stops the GETs it still has in flight
            for future, _ in [*(pending[1] if pending else ()), *started]:
                if future is not None:
                    future.cancel()

    return run


def _start(uris: list[str], etags: list[str | None], reader) -> list[tuple]:
    """Started reads, one per URI: (future of the object's bytes, None) on S3, (None, path) for a local
    file, read when the batch is assembled."""
    parsed = [locations.parse_location(uri) for uri in uris]
    on_s3 = [(location.bucket, location.key, etag) for location, etag in zip(parsed, etags) if location.is_s3]
    futures = iter(reader.get_many(on_s3) if on_s3 else ())
    return [(next(futures), None) if location.is_s3 else (None, location.path) for location in parsed]


def _read_file(path: str) -> bytes:
    with open(path, "rb") as file:  # not pathlib: its parsing cost a tenth of a 100 px image's decode
        return file.read()


def _result(started) -> tuple[bytes | None, str | None]:
    future, path = started
    try:
        return (_read_file(path) if future is None else future.result()), None
    except Exception as exc:  # after object_store's retries (s3_reads.ObjectReadError says why): the job goes on
        return None, f"cannot read image: {exc if future is not None else f'{type(exc).__name__}: {exc}'}"


def _assemble(pa, batch, started):
    fetched = [_result(item) for item in started]
    return pa.RecordBatch.from_arrays(
        [
            batch.column("path"),
            batch.column("label"),
            pa.array([content for content, _ in fetched], pa.binary()),
            pa.array([error for _, error in fetched], pa.string()),
        ],
        names=["path", "label", "content", "error"],
    )
