"""One run: config -> session -> source -> featurize -> sink -> manifest, with progress watching."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sparkyfruit import models, ship_env, sink, storage
from sparkyfruit.config import RunConfig
from sparkyfruit.errors import RunFailedError, SparkyfruitError, failure_summary


@dataclass
class RunResult:
    output: str
    mode: str
    rows: int
    ok: int
    failed: int
    dim: int
    duration_seconds: float
    ui_url: str | None
    manifest: dict = field(repr=False)
    added: int | None = None  # --resume: rows this run added (rows/ok/failed count the whole output)

    @property
    def images_per_second(self) -> float:
        return self.rows / self.duration_seconds if self.duration_seconds > 0 else 0.0


def stage_weights(config: RunConfig) -> tuple[str, str | None]:
    """Resolve --weights to (value for the workers, sha256). Files are staged under a content-addressed
    name, so Spark can ship them to executors and a changed file never collides with an earlier one."""
    if config.weights in (models.IMAGENET, models.RANDOM):
        return config.weights, None
    staging = Path(tempfile.gettempdir()) / "sparkyfruit-weights"
    staging.mkdir(exist_ok=True)
    if config.weights.startswith(("s3://", "s3a://")):
        location = storage.parse_location(config.weights, "--weights")
        name = Path(location.key).name
        source = storage.download(location, staging / f".{os.getpid()}-{name}", config)
    else:
        source = Path(config.weights)
        name = source.name
    digest = models.sha256_of(source)
    staged = staging / f"{digest[:16]}-{name}"
    if not staged.exists():
        shutil.copyfile(source, staged)
    if source.parent == staging:
        source.unlink()  # the temporary download
    return str(staged), digest


def encode(config: RunConfig, spark=None, console=None) -> RunResult:
    """Encode every image under config.input into config.output. `spark`: a running SparkSession to use
    (and leave running); by default the active one, else a new one that is stopped at the end.
    `console` (rich) shows the Spark UI link and a progress bar; without it the run is silent.
    Raises SparkyfruitError subclasses."""
    from sparkyfruit.featurize import OUTPUT_SCHEMA, SPARK_FILES_PREFIX, featurize_partition
    from sparkyfruit.progress import SparkProgress
    from sparkyfruit.session import start_session
    from sparkyfruit.sources import df as df_source
    from sparkyfruit.sources import no_images_error
    from sparkyfruit.sources import keys as keys_source

    started = time.monotonic()
    sink.check_output_free(config)
    previous, done = sink.prepare_resume(config) if config.resume else (None, set())
    weights, weights_sha256 = stage_weights(config)
    # a wrong endpoint, bucket, credentials or an empty prefix fail here, before the JVM starts
    if config.input_location.is_s3 and not storage.prefix_has_objects(config.input_location, config):
        raise no_images_error(config)
    keys = keys_source.list_keys(config) if config.mode == "keys" or previous else None
    if previous is not None:
        keys = [image for image in keys if image[0] not in done]
        if not keys:  # nothing new: no Spark at all
            counts = previous["counts"]
            return RunResult(output=config.output_location.uri, mode=config.mode, rows=counts["rows"], ok=counts["ok"],
                             failed=counts["failed"], dim=previous["dim"], duration_seconds=time.monotonic() - started,
                             ui_url=None, manifest=previous, added=0)
    show = console is not None and not config.quiet
    shipped = None
    if config.ship_env and not config.master.startswith("local"):  # local workers run this very Python
        shipped = ship_env.ship(announce=console.print if show else None)
        if show:
            console.print(f"Executors' Python: {shipped.archive} ({shipped.size_bytes / 2**20:.0f} MB"
                          + (f", packed in {shipped.built_seconds:.0f} s)" if shipped.built_seconds else ", cached)"))
    handle = start_session(config, spark, shipped)
    try:
        if show and handle.ui_url:
            console.print(f"Spark UI: {handle.ui_url}")
        if show and handle.log_path:
            console.print(f"Spark log: {handle.log_path}")
        context = handle.spark.sparkContext
        if weights not in (models.IMAGENET, models.RANDOM):
            context.addFile(weights)
            weights = SPARK_FILES_PREFIX + Path(weights).name
        spec = models.ModelSpec(config.model, config.alpha, config.image_size, weights, config.batch_size)

        if config.mode == "df":
            source = df_source.read_images(handle.spark, config, [image[0] for image in keys] if keys else None)
        else:
            source = keys_source.read_images(handle.spark, config, keys)
        features = source.frame.mapInArrow(featurize_partition(spec, source.fetch), OUTPUT_SCHEMA)
        description = f"encoding {source.count} images ({config.mode} mode, {config.model})"
        if previous is not None:
            sink.begin_resume(config, previous)
        with SparkProgress(context, description, console=console, enabled=show):
            counts = _run_job(lambda: sink.write(features, config, source.listed, rows_before=len(done)))

        duration = time.monotonic() - started
        added = counts["rows"] - len(done) if previous is not None else None
        manifest = sink.build_manifest(
            config, counts, spark_version=handle.spark.version, weights_sha256=weights_sha256,
            duration_seconds=duration,
        )
        if previous is not None:
            manifest["created_at"] = previous["created_at"]
            manifest["resumes"] = previous.get("resumes", 0) + 1
            manifest["added_by_last_resume"] = added
        sink.write_manifest(config, manifest)
        return RunResult(
            output=config.output_location.uri, mode=config.mode, rows=counts["rows"], ok=counts["ok"],
            failed=counts["failed"], dim=manifest["dim"], duration_seconds=duration, ui_url=handle.ui_url,
            manifest=manifest, added=added,
        )
    finally:
        if show and handle.class_archive is not None and handle.class_archive.recording is not None:
            console.print("Saving the Spark driver's classes for faster start-ups (first run only, ~10 s)...")
        handle.stop()


def _run_job(action):
    """Run a Spark action; a failed job becomes one clear RunFailedError instead of a JVM stack trace."""
    try:
        return action()
    except SparkyfruitError:
        raise
    except Exception as exc:
        raise RunFailedError(
            f"The Spark job failed: {failure_summary(exc)[:500]}",
            "Nothing was marked finished (no _sparkyfruit.json). See the Spark UI or the log above, then rerun "
            "with --overwrite.",
        ) from exc

