"""Writes the Parquet output, then `_sparkyfruit.json` last: no manifest means no finished run."""

from __future__ import annotations

import datetime as dt
import json
import platform
from importlib import metadata

from sparkyfruit import __version__, storage
from sparkyfruit.config import RunConfig, S3Settings
from sparkyfruit.errors import ConfigError

MANIFEST_NAME = "_sparkyfruit.json"
# while --resume adds files, the finished manifest is moved here: the output reads as unfinished, and a
# resume that was killed can itself be resumed
RESUMING_NAME = "_sparkyfruit.resuming.json"
MANIFEST_FORMAT = "sparkyfruit-output/1"


def check_output_free(config: RunConfig) -> None:
    """Refuse, before any work, to write over an output that has content, unless --overwrite."""
    location = config.output_location
    if config.input_location.is_s3 == location.is_s3 and _inside(location, config.input_location):
        raise ConfigError(
            f"--output {location.uri} lies inside --input {config.input_location.uri}.",
            "Write the output somewhere else, or the next run would read it as input.",
        )
    if not config.overwrite and not config.resume and storage.has_content(location, config):
        raise ConfigError(
            f"--output {location.uri} already has content; nothing was touched.",
            "Pass --overwrite to replace it, or choose another --output.",
        )


def _inside(inner: storage.Location, outer: storage.Location) -> bool:
    inner_path, outer_path = (
        (f"{inner.bucket}/{inner.key}", f"{outer.bucket}/{outer.key}") if inner.is_s3 else (inner.path, outer.path)
    )
    return (inner_path.rstrip("/") + "/").startswith(outer_path.rstrip("/") + "/")


UNREAD_ERROR = "no bytes read: the file is empty (0 bytes) or was removed after listing"


def prepare_resume(config: RunConfig) -> tuple[dict | None, set[str]]:
    """For --resume: the output's manifest and the image paths it already holds. An empty output is a
    plain first run (None, empty set)."""
    from sparkyfruit.inspection import open_dataset

    location = config.output_location
    if not storage.has_content(location, config):
        return None, set()
    manifest = read_manifest(location, config)
    if manifest is None:
        text = storage.read_text(location.child(RESUMING_NAME), config)
        manifest = json.loads(text) if text is not None else None
    if manifest is None:
        raise ConfigError(
            f"--resume needs a finished output, and {location.uri} has no {MANIFEST_NAME} (a run that was stopped?).",
            "Run again with --overwrite instead of --resume, or choose another --output.",
        )
    wanted = {"model": config.model, "alpha": config.alpha, "image_size": config.image_size,
              "weights": weights_label(config.weights)}
    differ = [f"{name} {manifest.get(name)!r} there, {value!r} now" for name, value in wanted.items()
              if manifest.get(name) != value]
    if differ:
        raise ConfigError(f"--resume would mix vectors of different networks in {location.uri}: {'; '.join(differ)}.",
                          "Use the output's settings, or write to another --output.")
    paths = open_dataset(location, config).to_table(columns=["path"]).column("path").to_pylist()
    return manifest, set(paths)


def begin_resume(config: RunConfig, previous: dict) -> None:
    """Mark the output unfinished while files are added (the manifest moves aside)."""
    location = config.output_location
    storage.write_text(location.child(RESUMING_NAME), json.dumps(previous, indent=2), config)
    storage.delete(location.child(MANIFEST_NAME), config)


def write(frame, config: RunConfig, listed: list[str] | None = None, rows_before: int = 0) -> dict[str, int]:
    """Write rows as Parquet and return the counts, read back (with pyarrow) from what was committed.

    `listed` (the image URIs the source listed) makes every one of them appear in the output: Spark's
    file scan silently skips 0-byte files, so those get an error row of their own here. With --resume
    the rows are added to the `rows_before` already there.
    """
    from pyspark.sql import functions as F

    from sparkyfruit.inspection import count_rows  # pyarrow, Parquet metadata: no second Spark job

    location = config.output_location
    spark = frame.sparkSession
    if config.overwrite:
        storage.delete(location.child(MANIFEST_NAME), config)  # never leave an old manifest beside new data
    frame.write.mode("append" if config.resume else "overwrite").parquet(location.spark_uri(config.spark_s3_scheme))
    counts = count_rows(location, config)
    if listed is not None and counts["rows"] < rows_before + len(listed):
        expected = spark.createDataFrame([(uri, storage.label_of(uri)) for uri in listed], "path string, label string")
        missing = expected.join(spark.read.parquet(location.spark_uri(config.spark_s3_scheme)).select("path"), "path", "left_anti")
        missing.select(
            "path", "label", F.lit(None).cast("array<float>").alias("features"), F.lit(UNREAD_ERROR).alias("error")
        ).coalesce(1).write.mode("append").parquet(location.spark_uri(config.spark_s3_scheme))
        counts = count_rows(location, config)
    return counts


def library_version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def build_manifest(config: RunConfig, counts: dict, *, spark_version: str, weights_sha256: str | None,
                   duration_seconds: float) -> dict:
    return {
        "format": MANIFEST_FORMAT,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "sparkyfruit": __version__,
            "spark": spark_version,
            "tensorflow": library_version("tensorflow", "tensorflow-cpu"),
            "keras": library_version("keras"),
            "python": platform.python_version(),
        },
        "mode": config.mode,
        "input": config.input_location.uri,
        "output": config.output_location.uri,
        "model": config.model,
        "alpha": config.alpha,
        "image_size": config.image_size,
        "weights": weights_label(config.weights),
        "weights_sha256": weights_sha256,
        "dim": counts["dim"] if counts.get("dim") and counts["dim"] > 0 else config.dim,
        "counts": {"rows": counts["rows"], "ok": counts["ok"], "failed": counts["failed"]},
        "duration_seconds": round(duration_seconds, 3),
        "config": config.redacted(),
    }


def weights_label(weights: str) -> str:
    if weights in ("imagenet", "none") or weights.startswith(("s3://", "s3a://")):
        return weights
    return storage.parse_location(weights).uri


def write_manifest(config: RunConfig, manifest: dict) -> None:
    storage.write_text(config.output_location.child(MANIFEST_NAME), json.dumps(manifest, indent=2), config)
    storage.delete(config.output_location.child(RESUMING_NAME), config)


def read_manifest(location: storage.Location, s3: S3Settings) -> dict | None:
    text = storage.read_text(location.child(MANIFEST_NAME), s3)
    return json.loads(text) if text is not None else None
