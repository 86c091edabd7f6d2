"""Mode "df": Spark lists and reads the files itself with the `binaryFile` source (over S3A for S3).

Spark lists the input once, and plans the run's job once (Listing.plan): the files still to encode, cut
into tasks of an exact number of files. Each shard is then a range of that plan's tasks, run as a Spark job
of its own (`SparkContext.runJob` over those partitions), so a shard costs the same however large the
listing. (A run without a shard size plans twice: its first shard, small, before the rate is known, then
the rest.)
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from urllib.parse import unquote

from sparkyfruit import locations, parquet_files
from sparkyfruit.config import RunConfig
from sparkyfruit.delta import FileReport
from sparkyfruit.errors import StorageError, failure_summary
from sparkyfruit.sources import no_images_error

FILE_PATH = "_metadata.file_path"
# Spark packs a scan's files into tasks by bytes, charging each file this much on top of its length
# (spark.sql.files.openCostInBytes): with the charge far above an image's length, a task's bytes count its
# files, and a task gets exactly the files asked for (fewer only where they hold over FILE_CHARGE / 2 bytes)
FILE_CHARGE = 1 << 32
# how PartitionedFile prints itself (Spark 3.5 and 4): its path is URL-encoded, so holds no ", "
_PLANNED_FILE = re.compile(r"path: (.+?), range: \d+-\d+, partition values: ")


@dataclass
class Listing:
    """The input as Spark listed it. `uris` (canonical) and `spark_paths` (as `_metadata.file_path` holds
    them) are in the same order, sorted as Spark compares strings (by UTF-8 bytes)."""

    frame: object
    uris: list[str]
    spark_paths: list[str]
    config: RunConfig

    def plan(
        self, start: int, stop: int, done: Collection[str], task_images: int, writing: Callable
    ) -> PlannedScan | None:
        """One plan of the images at positions [start, stop) that `done` does not hold, in tasks of
        `task_images` files; `writing` turns a DataFrame of (path, label, content, error) rows into the
        DataFrame of its tasks' reports (parquet_files.report_frame). None when no image is left."""
        from pyspark.sql import functions as F

        positions = [p for p in range(start, stop) if self.uris[p] not in done]
        if not positions:
            return None
        path = F.col(FILE_PATH)
        # evaluated against Spark's file index while planning: the plan holds only these files
        wanted = (path >= self.spark_paths[positions[0]]) & (path <= self.spark_paths[positions[-1]])
        inside = set(positions)
        skipped = [self.spark_paths[p] for p in range(positions[0], positions[-1]) if p not in inside]
        if skipped:
            wanted = wanted & ~path.isin(skipped)
        reports = writing(_images(self.frame.where(wanted)))
        spark = self.frame.sparkSession
        settings = {
            "spark.sql.files.openCostInBytes": str(FILE_CHARGE),
            "spark.sql.files.maxPartitionBytes": str((task_images - 1) * FILE_CHARGE + FILE_CHARGE // 2),
            "spark.sql.files.minPartitionNum": "1",
        }
        with _session_settings(spark, settings):  # Spark cuts the scan's tasks when its plan is first used
            partitions = _planned_files(reports)
            rdd = reports.rdd
        partitions = [[self._canonical(path) for path in files] for files in partitions]
        wanted_uris = {self.uris[p] for p in positions}
        got = [uri for files in partitions for uri in files]
        if rdd.getNumPartitions() != len(partitions) or len(got) != len(set(got)) or not wanted_uris.issuperset(got):
            raise StorageError(
                f"Spark planned {len(got):,} files ({len(set(got) - wanted_uris):,} not asked for) in "
                f"{len(partitions):,} tasks for the {len(wanted_uris):,} images left between "
                f"{self.uris[positions[0]]} and {self.uris[positions[-1]]}.",
                "Run again; if it happens again, report it with the driver log, or use --mode keys.",
            )
        # the scan leaves out 0-byte files: the first shard lists them, and the sink gives them error rows
        return PlannedScan(rdd, partitions, sorted(wanted_uris.difference(got)))

    @staticmethod
    def _canonical(spark_path: str) -> str:
        return locations.canonical_image_uri(unquote(_as_file_path(spark_path)))


@dataclass
class PlannedScan:
    """A planned job over the input: `reports` (an RDD of the tasks' report rows) has one partition per
    task, and `partitions` holds each task's image URIs. Shards take consecutive tasks (take), each run as
    a job over just those partitions (run)."""

    reports: object
    partitions: list[list[str]]
    unplanned: list[str] = field(default_factory=list)  # images asked for that no task reads (0-byte files)
    taken: int = 0  # the tasks already in a shard

    def take(self, images: int) -> tuple[list[int], list[str]] | None:
        """The next shard: at least one task, then more while the shard stays within `images`; its task
        (partition) numbers and their images (the first shard also lists the unplanned images, which the
        sink gives error rows). None when every task and image has a shard."""
        unplanned, self.unplanned = self.unplanned, []
        if self.taken >= len(self.partitions):
            return ([], unplanned) if unplanned else None
        chosen, count = [self.taken], len(self.partitions[self.taken])
        while chosen[-1] + 1 < len(self.partitions) and count + len(self.partitions[chosen[-1] + 1]) <= images:
            chosen.append(chosen[-1] + 1)
            count += len(self.partitions[chosen[-1]])
        self.taken = chosen[-1] + 1
        return chosen, [uri for task in chosen for uri in self.partitions[task]] + unplanned

    def run(self, tasks: list[int]) -> list[FileReport]:
        """Run the tasks `tasks` of the plan as one Spark job; their reports."""
        if not tasks:
            return []
        return parquet_files.reports_of(_collect_partitions(self.reports, tasks))


def _collect_partitions(rdd, partitions: list[int]) -> list:
    """The rows of `partitions` of `rdd`, whose rows the JVM pickles (DataFrame.rdd), collected by the JVM
    alone: `SparkContext.runJob` would map each partition through a Python function first, which takes one
    more Python worker (and daemon) per task slot for rows that need no Python."""
    try:
        from pyspark.core.rdd import _load_from_socket  # pyspark 4
    except ImportError:
        from pyspark.rdd import _load_from_socket  # pyspark 3.5
    context = rdd.context
    sock_info = context._jvm.PythonRDD.runJob(context._jsc.sc(), rdd._jrdd, partitions)
    loaded = _load_from_socket(sock_info, rdd._jrdd_deserializer)
    if not hasattr(loaded, "__enter__"):  # pyspark 3.5: a generator over the socket
        return list(loaded)
    with loaded as stream:
        return list(stream)


@contextlib.contextmanager
def _session_settings(spark, settings: dict[str, str]):
    """The session's SQL settings as `settings` inside, as they were after (the session may be the caller's)."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def _planned_files(reports) -> list[list[str]]:
    """The files of each task of the file scan that `reports`'s plan reads, as Spark's paths, in partition
    order; read from the JVM's plan. The JVM prints every task's files into one string (commons-lang's
    ToStringBuilder, which Spark ships) that crosses to Python once: py4j takes tens of milliseconds for each
    string of some size it returns, so one per task would cost seconds at 100,000 files."""
    spark = reports.sparkSession
    leaves = reports._jdf.queryExecution().executedPlan().collectLeaves()
    scan = leaves.head()
    if leaves.size() != 1 or not scan.getClass().getName().endswith("FileSourceScanExec"):
        raise StorageError(f"Spark planned the input unexpectedly: {scan.getClass().getName()}.")
    jvm = spark._jvm
    builder = jvm.org.apache.commons.lang3.builder.ToStringBuilder(
        "", jvm.org.apache.commons.lang3.builder.ToStringStyle.SIMPLE_STYLE
    )
    sizes = []
    for partition in scan.inputRDD().partitions():
        files = partition.files()
        sizes.append(jvm.java.lang.reflect.Array.getLength(files))
        builder.append(files)  # the array's elements, each as PartitionedFile prints itself
    paths = _PLANNED_FILE.findall(builder.toString())
    if len(paths) != sum(sizes):
        raise StorageError(f"Spark's plan names {sum(sizes):,} files, of which {len(paths):,} could be read here.")
    ends = list(itertools.accumulate(sizes))
    return [paths[end - size : end] for size, end in zip(sizes, ends)]


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
        endpoint = config.s3_endpoint or "AWS S3"
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
    (minutes for a million files); here the JVM joins it into one string, without a Spark job (Hadoop's
    join takes the String[] itself, which py4j does not pass as Java's Object[] or CharSequence[]). No file
    name holds a NUL."""
    hadoop_strings = frame.sparkSession._jvm.org.apache.hadoop.util.StringUtils
    text = hadoop_strings.join("\u0000", frame._jdf.inputFiles())
    return text.split("\u0000") if text else []


def _as_file_path(uri: str) -> str:
    return "file:/" + uri[len("file:///") :] if uri.startswith("file:///") else uri


def _images(frame):
    """Spark's (path, content) rows as the shared (path, label, content, error), paths canonical."""
    from pyspark.sql import functions as F

    path = F.col("path")
    canonical = (
        F.when(path.startswith("s3a://"), F.concat(F.lit("s3://"), path.substr(7, 1 << 30)))
        .when(
            path.startswith("file:/") & ~path.startswith("file://"), F.concat(F.lit("file://"), path.substr(6, 1 << 30))
        )
        .otherwise(path)
    )
    parts = F.split(canonical, "/")  # the column form of locations.label_of
    return frame.select(canonical.alias("path"), "content").select(
        "path",
        F.when(F.size(parts) >= 5, F.element_at(parts, -2)).alias("label"),
        "content",
        F.lit(None).cast("string").alias("error"),
    )
