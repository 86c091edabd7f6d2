"""The output's Parquet files, written by the tasks themselves with pyarrow, straight to the output (local,
S3, HDFS): each task attempt writes one file and reports it; the driver commits exactly the reported files
(sparkyfruit/delta.py). No vector passes through the JVM, and no Hadoop committer is involved.

A file's name carries the run, the shard, the partition and the task attempt, so the files of an attempt
that failed or lost to a speculative copy are known by name and removed by the driver after the shard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

from sparkyfruit import locations
from sparkyfruit.delta import FileReport
from sparkyfruit.s3_settings import S3Settings

# what a task hands back to the driver: one row per file it wrote, FileReport's fields
REPORT_SCHEMA = "name string, rows long, ok long, failed long, bytes long"
# the Spark job's local property that names the shard its tasks write (jobs_of_shard)
SHARD_PROPERTY = "sparkyfruit.shard"

_FILESYSTEMS: dict[str, tuple] = {}
_FILESYSTEMS_LOCK = threading.Lock()
# a worker's file system holds the credentials resolved when it was built: an instance role's expire within
# hours, and boto3 refreshes them well before that, so a long-lived Python worker builds it again this often
FILESYSTEM_SECONDS = 300.0
# rows per Parquet row group: the tasks' Arrow batches (--batch-size rows, 64 by default) are gathered up
# to this many, so that a file holds a few row groups of useful size rather than one per batch (a reader
# pays per row group, and so did the writer)
ROW_GROUP_ROWS = 2048


def arrow_schema(column: str = "features"):
    """The rows' schema: `column` holds the vectors (list<float32>, null where the image failed)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("path", pa.string()),
            ("label", pa.string()),
            (column, pa.list_(pa.field("element", pa.float32()))),
            ("error", pa.string()),
        ]
    )


def delta_schema(column: str = "features"):
    from deltalake import Schema

    return Schema.from_arrow(arrow_schema(column))


def file_name(run: str, shard: int, partition: int, attempt: int | str) -> str:
    return f"{shard_prefix(run, shard)}{partition:05d}-{attempt}.parquet"


def shard_prefix(run: str, shard: int) -> str:
    """The start of the names of every file that the attempts of one run's shard write."""
    return f"part-{run}-{shard:05d}-"


def filesystem(location: locations.Location, s3: S3Settings):
    """The process's pyarrow file system for the output (kept by the Python worker for its tasks, built again
    after FILESYSTEM_SECONDS with fresh credentials) and the output's path inside it."""
    from sparkyfruit.storage import pyarrow_filesystem, pyarrow_path

    key = f"{location.scheme}|{location.bucket}|{s3.model_dump_json()}"
    with _FILESYSTEMS_LOCK:
        built = _FILESYSTEMS.get(key)
        if built is None or time.monotonic() - built[1] > FILESYSTEM_SECONDS:
            built = _FILESYSTEMS[key] = (pyarrow_filesystem(location, s3)[0], time.monotonic())
    return built[0], pyarrow_path(location)


def write_file(
    location: locations.Location, s3: S3Settings, name: str, batches: Iterator, column: str = "features"
) -> FileReport | None:
    """Write the non-empty Arrow batches of `batches` as one Parquet file `name` in the output, opened on the
    first row (no rows: no file, None). The labels and errors repeat and get a dictionary; the vectors
    hardly ever do, and Parquet would fill a hash table per file before falling back to plain values."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    schema = arrow_schema(column)
    fs, root = filesystem(location, s3)
    rows = failed = written = 0
    sink = writer = None
    gathered: list = []  # batches not yet written: fewer than ROW_GROUP_ROWS rows in all

    def write_gathered() -> None:
        table = pa.Table.from_batches(gathered).cast(schema)
        writer.write_table(table, row_group_size=table.num_rows)  # one row group
        gathered.clear()

    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            if writer is None:
                if location.is_local:
                    fs.create_dir(root, recursive=True)
                sink = fs.open_output_stream(f"{root}/{name}")
                writer = pq.ParquetWriter(sink, schema, use_dictionary=["label", "error"], compression="snappy")
            gathered.append(batch)
            rows += batch.num_rows
            failed += batch.num_rows - pc.sum(pc.is_valid(batch.column(column))).as_py()
            if rows - written >= ROW_GROUP_ROWS:
                write_gathered()
                written = rows
        if writer is None:
            return None
        if gathered:
            write_gathered()
        writer.close()
        size = sink.tell()
        sink.close()
    except BaseException:
        if sink is not None and not sink.closed:
            sink.close()
        raise
    return FileReport(name, rows, rows - failed, failed, size)


def writing_tasks(
    rows: Callable[[Iterator], Iterator] | None,
    location: locations.Location,
    s3: S3Settings,
    run: str,
    column: str = "features",
) -> Callable[[Iterator], Iterator]:
    """The function given to `DataFrame.mapInArrow`: `rows` turns the task's input batches into output rows
    (None: the batches are the rows), which are written as this attempt's one file; the task yields its
    report (REPORT_SCHEMA). The shard in the file's name is the job's (jobs_of_shard), so one planned
    DataFrame serves every shard."""

    def run_task(batches: Iterator) -> Iterator:
        import pyarrow as pa
        from pyspark import TaskContext

        context = TaskContext.get()
        partition, attempt = (context.partitionId(), context.taskAttemptId()) if context else (0, 0)
        shard = context.getLocalProperty(SHARD_PROPERTY) if context else None
        if shard is None:
            raise RuntimeError(f"a writing task ran outside jobs_of_shard (no {SHARD_PROPERTY} property)")
        name = file_name(run, int(shard), partition, attempt)
        report = write_file(location, s3, name, rows(batches) if rows else batches, column)
        if report is not None:
            yield pa.RecordBatch.from_pylist([dataclasses.asdict(report)])  # str and int64 columns

    return run_task


def report_frame(frame, rows, location: locations.Location, s3: S3Settings, run: str, column: str = "features"):
    """The DataFrame of the reports of the tasks that write `frame`'s rows (see writing_tasks)."""
    return frame.mapInArrow(writing_tasks(rows, location, s3, run, column), REPORT_SCHEMA)


def reports_of(rows) -> list[FileReport]:
    """Collected report rows as FileReports."""
    return [FileReport(**row.asDict()) for row in rows]


def collected_reports(reports) -> list[FileReport]:
    """Run the job of `reports` (report_frame's DataFrame); the FileReports of its tasks."""
    return reports_of(reports.collect())


@contextlib.contextmanager
def jobs_of_shard(spark_context, number: int):
    """The Spark jobs started inside write the files of shard `number` (a job's local property reaches its
    tasks)."""
    before = spark_context.getLocalProperty(SHARD_PROPERTY)
    spark_context.setLocalProperty(SHARD_PROPERTY, str(number))
    try:
        yield
    finally:
        spark_context.setLocalProperty(SHARD_PROPERTY, before)
