"""Mode "df": Spark lists and reads the files itself with the `binaryFile` source (over S3A for S3).

Spark lists the input once. Each shard is that one listing narrowed to a range of file paths with a filter
on the `_metadata.file_path` column, which Spark evaluates against its file index while planning: a
shard's job reads only its own files, and no file is listed or checked again.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from sparkyfruit import locations
from sparkyfruit.config import RunConfig
from sparkyfruit.errors import StorageError, failure_summary
from sparkyfruit.shards import Shard
from sparkyfruit.sources import Source, no_images_error, task_count

FILE_PATH = "_metadata.file_path"


@dataclass
class Listing:
    """The input as Spark listed it. `uris` (canonical) and `spark_paths` (as `_metadata.file_path` holds
    them) are in the same order, sorted as Spark compares strings (by UTF-8 bytes)."""

    frame: object
    uris: list[str]
    spark_paths: list[str]
    config: RunConfig

    def source(self, shard: Shard, images_per_task: int) -> Source:
        from pyspark.sql import functions as F

        positions = shard.positions()
        path = F.col(FILE_PATH)
        wanted = (path >= self.spark_paths[shard.start]) & (path <= self.spark_paths[shard.stop - 1])
        if shard.skip:  # images inside the range that the output already holds
            wanted = wanted & ~path.isin([self.spark_paths[position] for position in shard.skip])
        return _source(self.frame.where(wanted), [self.uris[position] for position in positions], images_per_task)


def list_images(spark, config: RunConfig) -> Listing:
    """Spark's listing of --input (no job, no bytes read); --limit keeps the first images in path order."""
    from pyspark.errors import AnalysisException

    location = config.input_location
    reader = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", config.file_pattern)
        # a file that cannot be read (an object that keeps failing, one deleted after the listing) is
        # skipped instead of failing the job; the sink then gives it an error row, as keys mode does
        .option("ignoreCorruptFiles", "true")
        .option("ignoreMissingFiles", "true")
    )
    try:
        frame = reader.load(location.spark_uri(config.spark_s3_scheme))
        # URIs ("file:///a/Apple%20Braeburn/1.jpg"); _metadata.file_path has the same text with "file:/"
        files = sorted((_as_file_path(uri) for uri in _input_files(frame)), key=lambda f: f.encode("utf-8"))
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc):
            raise no_images_error(config) from None
        raise StorageError(f"Spark could not list {location.uri}: {failure_summary(exc)}") from None
    except Exception as exc:  # Py4JJavaError from S3A: credentials, endpoint, bucket
        if "OutOfMemoryError" in str(exc):
            raise StorageError(
                f"The Spark driver ran out of memory listing {location.uri} (driver_memory {config.driver_memory}).",
                "Give it more (env SPARKYFRUIT_DRIVER_MEMORY=4g, or driver_memory in the --config file), or use "
                "--mode keys, whose listing needs no JVM.",
            ) from None
        if not location.is_s3:
            raise StorageError(f"Spark could not list {location.uri}: {failure_summary(exc)[:400]}") from None
        endpoint = config.endpoint_for_display or "AWS S3"
        raise StorageError(
            f"Spark could not list {location.uri} at {endpoint}: {failure_summary(exc)[:400]}",
            "Check the bucket, --s3-endpoint, --s3-region and the credentials (env, --profile, instance role).",
        ) from None
    if not files:
        raise no_images_error(config)
    if config.limit is not None:
        files = files[: config.limit]
    return Listing(frame, [locations.canonical_image_uri(unquote(path)) for path in files], files, config)


def _input_files(frame) -> list[str]:
    """frame.inputFiles() in one transfer: pyspark's own fetches the JVM's array one element per py4j call
    (minutes for a million files); here the JVM joins it into one string. No file name holds a NUL."""
    spark = frame.sparkSession
    functions = spark._jvm.org.apache.spark.sql.functions
    files = functions.lit(frame._jdf.inputFiles())
    joined = spark._jsparkSession.range(1).withColumn("files", functions.array_join(files, "\u0000"))
    text = joined.first().getString(1)
    return text.split("\u0000") if text else []


def _as_file_path(uri: str) -> str:
    return "file:/" + uri[len("file:///") :] if uri.startswith("file:///") else uri


def _source(frame, listed: list[str], images_per_task: int) -> Source:
    """Spark's (path, content) rows as the shared (path, label, content, error), paths canonical."""
    from pyspark.sql import functions as F

    # Spark splits the files into tasks of about totalBytes / minPartitionNum (each file charged at least
    # openCostInBytes): with as many partitions as task_count wants, a task holds about images_per_task
    # images (fewer when they are large). Read when the job is planned, so it applies to this shard's job.
    spark = frame.sparkSession
    tasks = task_count(len(listed), spark.sparkContext.defaultParallelism, images_per_task)
    spark.conf.set("spark.sql.files.minPartitionNum", str(tasks))
    path = F.col("path")
    canonical = (
        F.when(path.startswith("s3a://"), F.concat(F.lit("s3://"), path.substr(7, 1 << 30)))
        .when(
            path.startswith("file:/") & ~path.startswith("file://"), F.concat(F.lit("file://"), path.substr(6, 1 << 30))
        )
        .otherwise(path)
    )
    parts = F.split(canonical, "/")  # the column form of locations.label_of
    images = frame.select(canonical.alias("path"), "content").select(
        "path",
        F.when(F.size(parts) >= 5, F.element_at(parts, -2)).alias("label"),
        "content",
        F.lit(None).cast("string").alias("error"),
    )
    return Source(images, fetch=None, listed=listed, count=len(listed))
