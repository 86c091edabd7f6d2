"""Writes the Parquet output, then `_sparkyfruit.json` last: no manifest means no finished run."""

from __future__ import annotations

from sparkyfruit import locations, output_format, storage, weights
from sparkyfruit.config import RunConfig
from sparkyfruit.errors import ConfigError


def check_output_free(config: RunConfig) -> None:
    """Refuse, before any work, an output inside the input, or one that is not empty, unless it holds only
    sparkyfruit's files and --overwrite or --resume is given."""
    location = config.output_location
    if config.input_location.is_s3 == location.is_s3 and _inside(location, config.input_location):
        raise ConfigError(
            f"--output {location.uri} lies inside --input {config.input_location.uri}.",
            "Write the output somewhere else, or the next run would read it as input.",
        )
    output_format.check_writable(location, config, overwrite=config.overwrite, resume=config.resume)


def _inside(inner: locations.Location, outer: locations.Location) -> bool:
    inner_path, outer_path = (
        (f"{inner.bucket}/{inner.key}", f"{outer.bucket}/{outer.key}") if inner.is_s3 else (inner.path, outer.path)
    )
    return (inner_path.rstrip("/") + "/").startswith(outer_path.rstrip("/") + "/")


def prepare_resume(config: RunConfig) -> tuple[output_format.Manifest | None, set[str]]:
    """For --resume: the output's manifest and the image paths it already holds. An empty output is a
    plain first run (None, empty set)."""
    location = config.output_location
    if not storage.has_content(location, config):
        return None, set()
    manifest = output_format.read_manifest(location, config) or output_format.read_manifest(
        location, config, output_format.RESUMING_NAME
    )
    if manifest is None:
        raise ConfigError(
            f"--resume needs a finished output, and {location.uri} has no {output_format.MANIFEST_NAME} (a run "
            "that was stopped?).",
            "Run again with --overwrite instead of --resume, or choose another --output.",
        )
    wanted = {
        "model": config.model,
        "alpha": config.alpha,
        "image_size": config.image_size,
        "weights": weights.label(config.weights),
    }
    differ = [
        f"{name} {getattr(manifest, name)!r} there, {value!r} now"
        for name, value in wanted.items()
        if getattr(manifest, name) != value
    ]
    if differ:
        raise ConfigError(
            f"--resume would mix vectors of different networks in {location.uri}: {'; '.join(differ)}.",
            "Use the output's settings, or write to another --output.",
        )
    paths = output_format.open_dataset(location, config).to_table(columns=["path"]).column("path").to_pylist()
    return manifest, set(paths)


def begin_resume(config: RunConfig, previous: output_format.Manifest) -> None:
    """Mark the output unfinished while files are added (the manifest moves aside)."""
    location = config.output_location
    output_format.write_manifest(location, previous, config, output_format.RESUMING_NAME)
    storage.delete(location.child(output_format.MANIFEST_NAME), config)


def write(frame, config: RunConfig, listed: list[str] | None = None, rows_before: int = 0) -> output_format.RowCounts:
    """Write rows as Parquet and return the counts, read back (with pyarrow) from what was committed.

    `listed` (the image URIs the source listed) makes every one of them appear in the output: Spark's
    file scan silently skips 0-byte files, so those get an error row of their own here. With --resume
    the rows are added to the `rows_before` already there.
    """
    location = config.output_location
    if config.overwrite:
        storage.delete(
            location.child(output_format.MANIFEST_NAME), config
        )  # never leave an old manifest beside new data
    target = location.spark_uri(config.spark_s3_scheme)
    frame.write.mode("append" if config.resume else "overwrite").parquet(target)
    counts = output_format.count_rows(location, config)  # pyarrow, Parquet metadata: no second Spark job
    if listed is not None and counts.rows < rows_before + len(listed):
        written = set(
            output_format.open_dataset(location, config).to_table(columns=["path"]).column("path").to_pylist()
        )
        missing = [
            (uri, locations.label_of(uri), None, _unread_error(uri, config)) for uri in listed if uri not in written
        ]
        frame.sparkSession.createDataFrame(
            missing, "path string, label string, features array<float>, error string"
        ).coalesce(1).write.mode("append").parquet(target)
        counts = output_format.count_rows(location, config)
    return counts


def _unread_error(uri: str, config: RunConfig) -> str:
    """Why a listed image has no row from Spark's file scan: it is empty (the scan skips 0-byte files, and
    keys mode reports the same text), or it went away after the listing."""
    from sparkyfruit.featurize import EMPTY_FILE_ERROR

    size = storage.size_of(uri, config)
    return EMPTY_FILE_ERROR if size == 0 else "cannot read image: the file was removed after it was listed"


def build_manifest(
    config: RunConfig,
    counts: output_format.RowCounts,
    *,
    spark_version: str,
    weights_sha256: str | None,
    duration_seconds: float,
) -> output_format.Manifest:
    return output_format.Manifest(
        created_at=output_format.now(),
        versions=output_format.library_versions(spark_version),
        mode=config.mode,
        input=config.input_location.uri,
        output=config.output_location.uri,
        model=config.model,
        alpha=config.alpha,
        image_size=config.image_size,
        weights=weights.label(config.weights),
        weights_sha256=weights_sha256,
        dim=counts.dim if counts.dim else config.dim,
        counts=counts.as_counts(),
        duration_seconds=round(duration_seconds, 3),
        config=config.redacted(),
    )


def write_manifest(config: RunConfig, manifest: output_format.Manifest) -> None:
    output_format.write_manifest(config.output_location, manifest, config)
    storage.delete(config.output_location.child(output_format.RESUMING_NAME), config)
