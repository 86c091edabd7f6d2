"""Mode "df": Spark lists and reads the files itself with the `binaryFile` source (over S3A for S3)."""

from __future__ import annotations

from urllib.parse import unquote

from sparkyfruit import locations
from sparkyfruit.config import RunConfig
from sparkyfruit.errors import StorageError, failure_summary
from sparkyfruit.sources import Source, no_images_error, task_count


def read_images(spark, config: RunConfig, only: list[str] | None = None) -> Source:
    """`only`: canonical URIs to read (--resume's new images) instead of everything under --input."""
    from pyspark.errors import AnalysisException

    location = config.input_location
    reader = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", config.file_pattern)
    )
    if only is not None:
        return _source(reader.load([_escape_glob(_spark_path(uri, config)) for uri in only]), only, config)
    try:
        frame = reader.load(location.spark_uri(config.spark_s3_scheme))
        # the listing Spark already made (no job, no bytes read), as URIs: "Apple%20Braeburn"
        files = [unquote(uri) for uri in frame.inputFiles()]
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "Path does not exist" in str(exc):
            raise no_images_error(config) from None
        raise StorageError(f"Spark could not list {location.uri}: {failure_summary(exc)}") from None
    except Exception as exc:  # Py4JJavaError from S3A: credentials, endpoint, bucket
        endpoint = config.endpoint_for_display or "AWS S3"
        raise StorageError(
            f"Spark could not list {location.uri} at {endpoint}: {failure_summary(exc)[:400]}",
            "Check the bucket, --s3-endpoint, --s3-region and the credentials (env, --profile, instance role).",
        ) from None
    if not files:
        raise no_images_error(config)
    if config.limit is not None and config.limit < len(files):
        files = sorted(files, key=lambda f: f.encode("utf-8"))[: config.limit]
        frame = reader.load([_escape_glob(f) for f in files])
    return _source(frame, [locations.canonical_image_uri(uri) for uri in files], config)


def _spark_path(uri: str, config: RunConfig) -> str:
    return locations.parse_location(uri).spark_uri(config.spark_s3_scheme)


def _source(frame, listed: list[str], config: RunConfig) -> Source:
    """Spark's (path, content) rows as the shared (path, label, content, error), paths canonical."""
    from pyspark.sql import functions as F

    # Spark splits the files into tasks of about totalBytes / minPartitionNum (each file charged at least
    # openCostInBytes): with as many partitions as task_count wants, a task holds about images_per_task
    # images (fewer when they are large). Read when the job is planned, so it applies to this job.
    spark = frame.sparkSession
    tasks = task_count(len(listed), spark.sparkContext.defaultParallelism, config.images_per_task)
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


def _escape_glob(path: str) -> str:
    """Spark treats load() paths as Hadoop globs; a file name may contain glob characters."""
    for char in "\\[]{}*?":
        path = path.replace(char, "\\" + char)
    return path
