"""One run, in three steps: plan (before Spark: the output's state, the fail-fast checks, the listing, the
weights), execute (under Spark: shards, each source -> featurize -> tasks' files -> one commit), finish (the
manifest), with progress watching across the shards."""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from sparkyfruit import engines, lease, models, parquet_files, shards, sink, storage, weights
from sparkyfruit import plan as predictions  # `sparkyfruit plan`: its kept calibration, if one was made
from sparkyfruit.config import RunConfig
from sparkyfruit.delta import CommittedShard
from sparkyfruit.errors import ConfigError, InterruptedRun, RunFailedError, SparkyfruitError, failure_summary
from sparkyfruit.output_format import Manifest, RunRecord, now
from sparkyfruit.spark import ship_env
from sparkyfruit.spark.interrupt import SigintGuard
from sparkyfruit.timeline import mark


@dataclass
class RunTimings:
    """Where a run's time went, in seconds (the scale benchmark reports them)."""

    listing: float = 0.0  # listing the input (the driver's, or Spark's in df mode)
    session: float = 0.0  # starting (or joining) Spark
    planning: float = 0.0  # df mode: Spark planning the run's job (once, or twice without a shard size)
    shards: list[float] = field(default_factory=list)  # each shard's Spark job, its commit and its record
    finish: float = 0.0  # counting the rows and writing the manifest


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
    timings: RunTimings = field(default_factory=RunTimings)
    predicted_seconds: float | None = None  # what `sparkyfruit plan` predicted for this run, where it was asked

    def failure(self, max_failed: float | None) -> RunFailedError | None:
        """Whether the run counts as failed though it finished: no image succeeded, or more than
        `max_failed` (a share, 0 to 1) of them failed. The output stays, with every row and its error."""
        if self.rows and not self.ok:
            return RunFailedError(
                f"No image could be encoded: all {self.rows:,} rows in {self.output} are errors.",
                f"See why with: sparkyfruit inspect {self.output}",
            )
        if max_failed is not None and self.rows and self.failed / self.rows > max_failed:
            return RunFailedError(
                f"{self.failed:,} of {self.rows:,} images failed ({self.failed / self.rows:.1%}), more than "
                f"--max-failed {max_failed:g} allows.",
                f"See why with: sparkyfruit inspect {self.output}",
            )
        return None

    @property
    def images_per_second(self) -> float:
        """Overall: the output's rows over the whole run, start-up included."""
        return self.rows / self.duration_seconds if self.duration_seconds > 0 else 0.0

    @property
    def encoding_seconds(self) -> float:
        """The seconds of the shards' Spark jobs (each with its commit): the run less its start-up, listing
        and finish. What the progress bar's rate measures."""
        return sum(self.timings.shards)

    @property
    def encoding_images_per_second(self) -> float:
        """The images this run encoded over `encoding_seconds`."""
        encoded = self.added if self.added is not None else self.rows
        return encoded / self.encoding_seconds if self.encoding_seconds > 0 else 0.0

    @classmethod
    def of(cls, manifest: Manifest, duration_seconds: float, ui_url: str | None, added: int | None, timings=None):
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
            timings or RunTimings(),
        )


def encode(config: RunConfig, spark=None, console=None) -> RunResult:
    """Encode every image under config.input into config.output, one shard (one Spark job) at a time.

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

    Example
    -------
    >>> encode(RunConfig(input="s3://fruit/Training", output="s3://fruit/vectors", mode="keys"))
    """
    started = time.monotonic()
    mark("run started")
    sink.check_output_free(config)
    # one writer at a time: a second run stops here, before Spark starts (lease.py)
    with lease.hold(config.output_location, config, takeover=config.resume or config.overwrite) as held:
        sink.check_output_replaceable(config)
        return _encode_holding(config, held, spark, console, started)


@dataclass
class _Plan:
    """What a run knows before Spark starts (plan()): the output's state, the driver's listing (keys mode,
    or any --resume), the staged weights, the network's shape, the engine being prepared (the network
    converted while the JVM starts) and the shipped environment."""

    state: sink.OutputState
    images: list | None
    staged: weights.StagedWeights | None = None
    network: models.NetworkOutput | None = None
    engine: engines.Preparing | None = None
    shipped: object = None


def _encode_holding(config: RunConfig, held: lease.Lease, spark, console, started: float) -> RunResult:
    """encode(), once the run holds the output's lease: plan, then (where anything is left to encode) start
    Spark, execute the shards, and finish with the manifest."""
    from sparkyfruit.spark.session import start_session

    timings = RunTimings()
    show = console is not None and not config.quiet
    plan = _plan(config, console if show else None, timings, started)
    if plan.staged is None:  # nothing new: no Spark at all
        return _finish_without_spark(config, plan.state, timings, started)
    with SigintGuard() as sigint:
        session_started = time.monotonic()
        mark("session starting")
        handle = start_session(config, spark, plan.shipped, announce=console.print if show else None)
        timings.session = time.monotonic() - session_started
        mark("session started")
        try:
            sigint.watch(handle.spark.sparkContext)
            if show and handle.ui_url:
                console.print(f"Spark UI: {handle.ui_url}")
            if show and handle.log_path:
                console.print(f"Spark log: {handle.log_path}")
            record, rows_before = _execute(config, plan, held, handle, sigint, console if show else None, timings)
            finish_started = time.monotonic()
            held.check()
            manifest = sink.finish(
                config,
                plan.state,
                record,
                spark_version=handle.spark.version,
                duration_seconds=time.monotonic() - started,
            )
            timings.finish = time.monotonic() - finish_started
            mark("manifest written")
            resuming = plan.state.previous is not None or plan.state.unfinished is not None
            added = manifest.counts.rows - rows_before if resuming else None
            result = RunResult.of(manifest, time.monotonic() - started, handle.ui_url, added, timings)
            encoded = added if added is not None else manifest.counts.rows
            parallelism = handle.spark.sparkContext.defaultParallelism
            result.predicted_seconds = predictions.remembered_prediction(config, encoded, parallelism)
            return result
        finally:
            if show and handle.class_archive is not None and handle.class_archive.recording is not None:
                console.print(
                    "Saving the Spark driver's classes for faster start-ups (once for this Java, Spark "
                    "and set of jars)..."
                )
            handle.stop()
            mark("session stopped")


def _plan(config: RunConfig, console, timings: RunTimings, started: float) -> _Plan:
    """Everything before Spark: the output's state, the checks that fail fast (a wrong endpoint, bucket,
    credentials, no matching image, unreachable weights), the driver's listing, the staged weights and the
    shipped environment. A plan without staged weights has nothing left to encode."""
    from sparkyfruit.sources import keys as keys_source
    from sparkyfruit.sources import no_images_error

    announce = console.print if console is not None else None
    state = sink.prepare(config)
    made_by = state.unfinished or state.previous
    wanted = engines.engine_to_use(config.engine, made_by.engine if made_by else None, config.output_location.uri)
    if (config.input_location.is_s3 or config.mode == "df") and not storage.has_image(
        config.input_location, config.file_pattern, config
    ):
        raise no_images_error(config)
    resuming = state.previous is not None or state.unfinished is not None
    images = keys_source.list_keys(config) if config.mode == "keys" or resuming else None
    timings.listing = time.monotonic() - started
    if resuming and all(uri in state.done for uri, _, _ in images):
        return _Plan(state, images)
    staged = weights.stage_for(config, announce)
    sink.check_same_weights(config, state, staged.sha256)
    network = _network_shape(config, staged)
    local = models.ModelSpec.of(config.model, str(staged.file or models.RANDOM), config.batch_size, config)
    engine = engines.Preparing(local, staged.sha256, wanted)
    shipped = None
    if config.ship_env and not config.master_is_local:  # local workers run this very Python
        # Executors on LiteRT get the environment without TensorFlow. Which engine it is waits for a first
        # conversion here, instead of during the JVM's start: only cluster runs with --ship-env pay that.
        with_tensorflow = engine.result().converted is None
        shipped = ship_env.ship(
            announce=announce, keep_on_hdfs=config.env_kept_on_hdfs, with_tensorflow=with_tensorflow
        )
        if console is not None:
            console.print(f"Executors' Python: {shipped.summary}")
    return _Plan(state, images, staged, network, engine, shipped)


def _finish_without_spark(config: RunConfig, state: sink.OutputState, timings: RunTimings, started: float):
    """--resume with nothing new: the finished output's result, or the manifest of a run whose every shard
    was committed before it stopped."""
    if state.unfinished is None:
        return RunResult.of(state.previous, time.monotonic() - started, ui_url=None, added=0)
    sink.begin(config, state, state.unfinished, 0, 0)
    manifest = sink.finish(
        config, state, state.unfinished, spark_version=None, duration_seconds=time.monotonic() - started
    )
    return RunResult.of(manifest, time.monotonic() - started, None, added=0, timings=timings)


def _execute(config: RunConfig, plan: _Plan, held: lease.Lease, handle, sigint, console, timings: RunTimings):
    """Under a running session: list (df mode), mark the output unfinished, then encode and commit one shard
    (one Spark job) at a time, each sized by the rate so far. Returns the run record and the rows the output
    held before."""
    from sparkyfruit.spark.progress import SparkProgress

    state = plan.state
    context = handle.spark.sparkContext
    engine = plan.engine.result()
    if console is not None:
        console.print(engine.notice or f"Engine: {engine.label}")
    spec = _worker_spec(config, plan.staged, engine, context)
    listing = _spark_listing(config, handle, sigint, timings) if config.mode == "df" else plan.images
    # a stopped run continues with its own shard size, unless one is given now
    setting = config.shard_size or (state.unfinished.shard_size if state.unfinished else None)
    sizing = shards.Sizing(setting, context.defaultParallelism, config.images_per_task)
    busy = context.accumulator(0.0)  # the seconds tasks spend encoding, for the sizing
    uris = listing.uris if config.mode == "df" else [uri for uri, _, _ in listing]
    planner = shards.Planner(uris, state.done, state.next_shard)
    to_do = planner.remaining
    record = _run_record(config, state, plan.staged.sha256, setting, plan.network, engine)
    held.check()
    sink.begin(config, state, record, to_do - len(state.retried), -(-to_do // setting) if setting else None)
    rows_before = sum(shard.rows for shard in state.shards)
    if console is not None:
        cut = f"of up to {setting:,}" if setting else f"of about {shards.SHARD_SECONDS:.0f} s of work each"
        console.print(
            f"{to_do:,} images in shards {cut}"
            + (f"; {rows_before:,} already in the output" if rows_before else "")
            + (f", {len(state.retried):,} of them failed and encoded again" if state.retried else "")
        )
    description = f"encoding ({config.mode}, {config.model})"
    progress = SparkProgress(context, description, to_do, console=console, enabled=console is not None)
    kept = _Kept(config, rows_before, len(state.shards))
    run = secrets.token_hex(4)  # in the names of the files this process writes
    writing = functools.partial(_writing, config, spec, run, progress.counter, busy)
    if config.mode == "df":
        jobs = _df_shards(listing, planner, sizing, state.done, writing, context, timings)
    else:
        jobs = _keys_shards(config, plan.images, planner, sizing, writing, handle.spark)
    with progress:
        for job in jobs:
            if sigint.received:  # between two shards: the next job would only be cancelled
                raise _interrupted(progress, kept)
            held.check()
            busy_before = busy.value
            shard_started = time.monotonic()
            mark(f"shard {job.number} job started")
            write = functools.partial(sink.write_shard, job.tasks, config, run, job.number, job.listed, state.retried)
            committed = _run_job(write, handle, sigint, progress, kept)
            timings.shards.append(time.monotonic() - shard_started)
            sizing.observe(len(job.listed), busy.value - busy_before)
            mark(f"shard {job.number} committed")
            kept.add(committed)
    return record, rows_before


def _worker_spec(config: RunConfig, staged: weights.StagedWeights, engine: engines.PreparedEngine, context):
    """The network as the workers load it, with the one file they need shipped with the job: LiteRT's
    converted model, or TensorFlow's weights (none for a random network)."""
    from sparkyfruit.featurize import SPARK_FILES_PREFIX

    spec = models.ModelSpec.of(config.model, models.RANDOM, config.batch_size, config)
    if engine.converted is not None:
        context.addFile(str(engine.converted))
        return engines.worker_spec(spec, engine, SPARK_FILES_PREFIX + engine.converted.name)
    if staged.file is not None:
        context.addFile(str(staged.file))
        spec = replace(spec, weights=SPARK_FILES_PREFIX + staged.file.name)
    return engines.worker_spec(spec, engine)


@dataclass
class _ShardJob:
    """One shard: its number, its images, and `tasks`, which runs its Spark job and returns the reports of
    the files its tasks wrote."""

    number: int
    listed: list[str]
    tasks: Callable[[], list]


def _keys_shards(config: RunConfig, images, planner, sizing, writing, spark) -> Iterator[_ShardJob]:
    """keys mode: each shard a DataFrame of its own listed keys, cut when the shards before it have run."""
    from sparkyfruit.sources import keys as keys_source

    listing = keys_source.Listing(spark, images, config)
    while (shard := planner.next(sizing.shard_images())) is not None:
        source = listing.source(shard, sizing.task_images())
        collect = functools.partial(parquet_files.collected_reports, writing(source.frame, source.fetch))
        yield _ShardJob(shard.number, source.listed, _in_shard(spark.sparkContext, shard.number, collect))


def _df_shards(listing, planner, sizing, done, writing, context, timings) -> Iterator[_ShardJob]:
    """df mode: the input planned once (its first shard, without a shard size, on a plan of its own, of small
    tasks, before the rate is known); each shard a range of the plan's tasks."""
    number, start = planner.number, 0
    if sizing.setting is None:
        head = planner.next(sizing.shard_images())
        if head is None:
            return
        planned = _timed(timings, listing.plan, head.start, head.stop, done, sizing.task_images(), writing)
        tasks, listed = planned.take(len(listing.uris))
        yield _ShardJob(number, listed, _in_shard(context, number, functools.partial(planned.run, tasks)))
        number, start = number + 1, head.stop
        task_images = sizing.task_images()
    else:
        task_images = shards.whole_task_images(sizing.setting, sizing.parallelism, sizing.images_per_task)
    planned = _timed(timings, listing.plan, start, len(listing.uris), done, task_images, writing)
    while planned is not None and (taken := planned.take(sizing.shard_images())) is not None:
        tasks, listed = taken
        yield _ShardJob(number, listed, _in_shard(context, number, functools.partial(planned.run, tasks)))
        number += 1


def _timed(timings: RunTimings, plan, *args):
    started = time.monotonic()
    planned = plan(*args)
    timings.planning += time.monotonic() - started
    mark("spark planned the input")
    return planned


def _writing(config: RunConfig, spec, run: str, counter, busy, frame, fetch=None):
    """The DataFrame of the reports of the tasks that encode `frame`'s rows (fetching their bytes with
    `fetch` first, where the source has one) and write them as this run's files."""
    from sparkyfruit.featurize import featurize_partition

    rows = featurize_partition(spec, fetch, counter, busy)
    return parquet_files.report_frame(frame, rows, config.output_location, config.s3_only(), run)


def _in_shard(context, number: int, job: Callable[[], list]) -> Callable[[], list]:
    """`job`, its Spark jobs writing the files of shard `number`."""

    def run() -> list:
        with parquet_files.jobs_of_shard(context, number):
            return job()

    return run


def _spark_listing(config: RunConfig, handle, sigint, timings: RunTimings):
    """df mode: Spark's own listing of the input (its job can be cancelled by Ctrl-C)."""
    from sparkyfruit.sources import df as df_source

    listed_at = time.monotonic()
    try:
        listing = df_source.list_images(handle.spark, config)
    except SparkyfruitError:
        if sigint.received:  # the listing's own Spark job was cancelled
            raise InterruptedRun(
                "interrupted while Spark listed the input; nothing was written.", "Run the same command again."
            ) from None
        raise
    timings.listing += time.monotonic() - listed_at
    mark("spark listed the input")
    return listing


def _network_shape(config: RunConfig, staged: weights.StagedWeights) -> models.NetworkOutput:
    """The vector the network gives, as far as the driver knows it before Spark starts: a saved model is
    loaded here, so that a wrong --layer or input size fails now (exit 2) and not in every worker."""
    if not config.is_saved_model:
        return models.NetworkOutput(config.dim, pooled=True, input_size=None)
    described = models.describe_saved_model(str(staged.file), config.layer, config.pooling, shown=config.model)
    if described.input_size is not None and not config.image_size_given:
        config.image_size = described.input_size  # its own size, as a backbone runs at its default size
    if described.input_size is not None and described.input_size != config.image_size:
        raise ConfigError(
            f"--model {config.model} takes {described.input_size} px images; got --image-size {config.image_size}.",
            f"Pass --image-size {described.input_size}.",
        )
    return described


def _run_record(
    config: RunConfig,
    state: sink.OutputState,
    weights_sha256: str | None,
    size: int | None,
    network: models.NetworkOutput,
    engine: engines.PreparedEngine,
) -> RunRecord:
    """The run record of this run: a new one, or the stopped run's, continued."""
    unfinished = state.unfinished
    return RunRecord(
        started_at=unfinished.started_at if unfinished else now(),
        mode=config.mode,
        input=config.input_location.uri,
        model=config.model_label,
        alpha=config.alpha,
        image_size=config.image_size,
        weights=config.weights_label,
        weights_sha256=weights_sha256,
        pooling=config.pooling,
        layer=config.layer,
        preprocess=config.preprocess,
        pattern=config.pattern,
        pooled=network.pooled,
        dim=network.dim,
        shard_size=size,
        images=0,  # sink.begin counts them
        shards=0,
        previous=state.previous,
        continued=unfinished.continued + 1 if unfinished else 0,
        engine=engine.name,
        engine_version=engine.version,
    )


@dataclass
class _Kept:
    """What the output keeps of this run so far, for the message of a run that stops."""

    config: RunConfig
    rows: int
    shards: int

    def add(self, shard: CommittedShard) -> None:
        self.rows += shard.rows
        self.shards += 1

    def describe(self) -> tuple[str, str]:
        """(what the output keeps, what to do next)."""
        where = self.config.output_location.shown
        if not self.shards:
            return f"no shard was committed yet; {where} is marked unfinished", "Continue with --resume."
        plural = "s" if self.shards != 1 else ""
        return f"{where} keeps {self.shards} committed shard{plural} ({self.rows:,} images)", "Continue with --resume."


def _interrupted(progress, kept: _Kept) -> InterruptedRun:
    what, next_step = kept.describe()
    return InterruptedRun(f"interrupted: {progress.done:,} of {progress.total:,} images encoded; {what}.", next_step)


def _run_job(action, handle, sigint: SigintGuard, progress, kept: _Kept):
    """Run a shard's Spark action. A cancelled job (Ctrl-C) becomes InterruptedRun, a failed one a
    RunFailedError: one line with the cause, the driver log's path, and what the output keeps."""
    try:
        return action()
    except SparkyfruitError:
        raise
    except Exception as exc:
        if sigint.received:
            raise _interrupted(progress, kept) from None
        what, next_step = kept.describe()
        log = f" The driver log: {handle.log_path}." if handle.log_path else ""
        raise RunFailedError(
            f"The Spark job failed: {failure_summary(exc)[:500]}", f"{what[0].upper() + what[1:]}.{log} {next_step}"
        ) from exc
