"""One run: config -> session -> source -> featurize -> sink -> manifest, with progress watching."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sparkyfruit import models, sink, storage, weights
from sparkyfruit.config import RunConfig
from sparkyfruit.errors import InterruptedRun, RunFailedError, SparkyfruitError, failure_summary
from sparkyfruit.output_format import Manifest
from sparkyfruit.spark import ship_env
from sparkyfruit.spark.interrupt import SigintGuard


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
    manifest: Manifest = field(repr=False)
    added: int | None = None  # --resume: rows this run added (rows/ok/failed count the whole output)

    @property
    def images_per_second(self) -> float:
        return self.rows / self.duration_seconds if self.duration_seconds > 0 else 0.0

    @classmethod
    def of(cls, manifest: Manifest, duration_seconds: float, ui_url: str | None, added: int | None) -> RunResult:
        """The result of a run that left `manifest` (rows, ok and failed count the whole output)."""
        counts = manifest.counts
        return cls(
            manifest.output,
            manifest.mode,
            counts.rows,
            counts.ok,
            counts.failed,
            manifest.dim,
            duration_seconds,
            ui_url,
            manifest,
            added,
        )


def encode(config: RunConfig, spark=None, console=None) -> RunResult:
    """Encode every image under config.input into config.output.

    Parameters
    ----------
    config: the run's settings, already validated.
    spark: a running SparkSession to use (and leave running); by default the active one, else a new one
        that is stopped at the end.
    console: a rich Console for the Spark UI link, the progress bar and notices; without it the run is
        silent.

    Returns
    -------
    RunResult; raises SparkyfruitError subclasses (InterruptedRun on Ctrl-C).
    """
    from sparkyfruit.featurize import OUTPUT_SCHEMA, SPARK_FILES_PREFIX, featurize_partition
    from sparkyfruit.sources import df as df_source
    from sparkyfruit.sources import keys as keys_source
    from sparkyfruit.sources import no_images_error
    from sparkyfruit.spark.progress import SparkProgress
    from sparkyfruit.spark.session import start_session

    started = time.monotonic()
    show = console is not None and not config.quiet
    announce = console.print if show else None
    sink.check_output_free(config)
    previous, done = sink.prepare_resume(config) if config.resume else (None, set())
    # a wrong endpoint, bucket, credentials, no matching image or unreachable weights fail here, before the
    # JVM starts
    if (config.input_location.is_s3 or config.mode == "df") and not storage.has_image(
        config.input_location, config.file_pattern, config
    ):
        raise no_images_error(config)
    keys = keys_source.list_keys(config) if config.mode == "keys" or previous else None
    if previous is not None:
        keys = [image for image in keys if image[0] not in done]
        if not keys:  # nothing new: no Spark at all
            return RunResult.of(previous, time.monotonic() - started, ui_url=None, added=0)
    staged = weights.stage(config, announce)
    shipped = None
    if config.ship_env and not config.master_is_local:  # local workers run this very Python
        shipped = ship_env.ship(announce=announce)
        if show:
            console.print(
                f"Executors' Python: {shipped.archive} ({shipped.size_bytes / 2**20:.0f} MB"
                + (f", packed in {shipped.built_seconds:.0f} s)" if shipped.built_seconds else ", cached)")
            )
    with SigintGuard() as sigint:
        handle = start_session(config, spark, shipped)
        try:
            sigint.watch(handle.spark.sparkContext)
            if show and handle.ui_url:
                console.print(f"Spark UI: {handle.ui_url}")
            if show and handle.log_path:
                console.print(f"Spark log: {handle.log_path}")
            context = handle.spark.sparkContext
            worker_weights = models.RANDOM
            if staged.file is not None:
                context.addFile(str(staged.file))
                worker_weights = SPARK_FILES_PREFIX + staged.file.name
            spec = models.ModelSpec(config.model, config.alpha, config.image_size, worker_weights, config.batch_size)

            if config.mode == "df":
                source = df_source.read_images(handle.spark, config, [image[0] for image in keys] if keys else None)
            else:
                source = keys_source.read_images(handle.spark, config, keys)
            description = f"encoding ({config.mode}, {config.model})"
            if previous is not None:
                sink.begin_resume(config, previous)
            progress = SparkProgress(context, description, source.count, console=console, enabled=show)
            features = source.frame.mapInArrow(featurize_partition(spec, source.fetch, progress.counter), OUTPUT_SCHEMA)
            with progress:
                counts = _run_job(
                    lambda: sink.write(features, config, source.listed, rows_before=len(done)),
                    config,
                    handle,
                    sigint,
                    progress,
                )

            duration = time.monotonic() - started
            added = counts.rows - len(done) if previous is not None else None
            manifest = sink.build_manifest(
                config,
                counts,
                spark_version=handle.spark.version,
                weights_sha256=staged.sha256,
                duration_seconds=duration,
            )
            if previous is not None:
                manifest.created_at = previous.created_at
                manifest.resumes = previous.resumes + 1
                manifest.added_by_last_resume = added
            sink.write_manifest(config, manifest)
            return RunResult.of(manifest, duration, handle.ui_url, added)
        finally:
            if show and handle.class_archive is not None and handle.class_archive.recording is not None:
                console.print(
                    "Saving the Spark driver's classes for faster start-ups (once for this Java, Spark "
                    "and set of jars)..."
                )
            handle.stop()


def _run_job(action, config: RunConfig, handle, sigint: SigintGuard, progress):
    """Run a Spark action. A cancelled job (Ctrl-C) becomes InterruptedRun, a failed one a RunFailedError:
    one line with the cause, the driver log's path, and what to do with the output as it is now."""
    try:
        return action()
    except SparkyfruitError:
        raise
    except Exception as exc:
        kept, next_step = _what_is_left(config)
        if sigint.received:
            raise InterruptedRun(
                f"interrupted: {progress.done:,} of {progress.total:,} images encoded; {kept}", next_step
            ) from None
        log = f" The driver log: {handle.log_path}." if handle.log_path else ""
        raise RunFailedError(
            f"The Spark job failed: {failure_summary(exc)[:500]}", f"{kept.capitalize()}.{log} {next_step}"
        ) from exc


def _what_is_left(config: RunConfig) -> tuple[str, str]:
    """(what the output keeps, what to do next) after a run that did not finish, from what it holds now."""
    if config.resume:
        return "the output keeps what earlier runs added", "Continue with --resume."
    if storage.list_files(config.output_location, config):
        return "nothing was marked finished (no _sparkyfruit.json)", "Rerun with --overwrite."
    return "nothing was written (the files of a run are committed when it ends)", "Run the same command again."
