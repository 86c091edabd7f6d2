"""Writes the output shard by shard: the tasks write Parquet files and report them, and each shard is one
Delta commit of exactly those files; `_sparkyfruit.json` is written last, so no manifest means no finished
run. Owns the resume and overwrite policy."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from sparkyfruit import delta, locations, output_format, parquet_files, storage
from sparkyfruit.config import RunConfig
from sparkyfruit.errors import ConfigError, StorageError, failure_summary
from sparkyfruit.output_format import LEASE_NAME


def check_output_free(config: RunConfig) -> None:
    """Refuse, before any work, an output inside the input, or one that holds files sparkyfruit did not
    write. (Whether it may be replaced or added to is checked under the lease: check_output_replaceable.)"""
    location = config.output_location
    if config.input_location.contains(location):
        raise ConfigError(
            f"--output {location.uri} lies inside --input {config.input_location.uri}.",
            "Write the output somewhere else, or the next run would read it as input.",
        )
    output_format.check_not_foreign(location, config)


def check_output_replaceable(config: RunConfig) -> None:
    """Under the run's lease: refuse an output that already holds a sparkyfruit output, unless --overwrite
    or --resume is given."""
    location = config.output_location
    names = storage.list_files(location, config)
    output_format.check_replaceable(names, location, overwrite=config.overwrite, resume=config.resume)


@dataclass
class OutputState:
    """What an output holds when a run starts.

    previous: the manifest of a finished output that --resume adds to.
    unfinished: the record of a run that stopped before its manifest (--resume continues it).
    shards: the committed shards; files: the table's data files; done: the image paths they hold.
    legacy: an output of a version before the Delta log, whose counted files begin() commits once.
    retried: with --retry-failed, the failed images to encode again, each with the file its row is in now
    (they are left out of `done`).
    """

    previous: output_format.Manifest | None = None
    unfinished: output_format.RunRecord | None = None
    shards: list[delta.CommittedShard] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    legacy: bool = False
    retried: dict[str, str] = field(default_factory=dict)

    @property
    def next_shard(self) -> int:
        return max((shard.number for shard in self.shards), default=0) + 1


def prepare(config: RunConfig) -> OutputState:
    """For --resume: what the output already holds, after checking it was made with the same network. An
    empty output is a plain first run."""
    location = config.output_location
    names = [name for name in storage.list_files(location, config) if name != LEASE_NAME] if config.resume else []
    if not names:
        return OutputState()
    stored = output_format.read_output(location, config, names)
    manifest, unfinished = stored.manifest, stored.run_record
    made_by = manifest or unfinished
    if made_by is None:
        raise ConfigError(
            f"--resume needs an output of sparkyfruit, and {location.uri} has neither {output_format.MANIFEST_NAME} "
            f"nor {output_format.RUN_NAME} (a run of an older version that was stopped?).",
            "Run again with --overwrite instead of --resume, or choose another --output.",
        )
    _check_same_run(config, made_by)
    previous = manifest if manifest is not None else unfinished.previous
    # without a Delta log (an earlier version's output) begin() commits what counts before the first shard
    shards, files, legacy = stored.shards, stored.files, stored.table is None
    done, retried = set(), {}
    if files:
        table = output_format.open_dataset(location, config, files).to_table(columns=["path"])
        done = set(table.column("path").to_pylist())
    if files and config.retry_failed:
        retried = _failed_rows(location, config, files)
        done -= retried.keys()
    return OutputState(previous, unfinished, shards, files, done, legacy, retried)


def _failed_rows(location, config: RunConfig, files: list[str]) -> dict[str, str]:
    """The paths of the failed rows in `files`, each with the name of the file that holds it."""
    import pyarrow.compute as pc

    failed = {}
    for fragment in output_format.open_dataset(location, config, files).get_fragments():
        table = fragment.to_table(columns=["path"], filter=pc.field("error").is_valid())
        name = fragment.path.rsplit("/", 1)[-1]
        failed.update(dict.fromkeys(table.column("path").to_pylist(), name))
    return failed


def _check_same_run(config: RunConfig, made_by) -> None:
    """--resume adds to an output only with its network, input and pattern."""
    location = config.output_location
    if config.is_saved_model and not config.image_size_given:
        config.image_size = made_by.image_size  # the model's own size, which the output's run found
    wanted = config.network()
    differ = [
        f"{name} {getattr(made_by, name)!r} there, {value!r} now"
        for name, value in wanted.items()
        if getattr(made_by, name) != value
    ]
    if differ:
        raise ConfigError(
            f"--resume would mix vectors of different networks in {location.uri}: {'; '.join(differ)}.",
            "Use the output's settings, or write to another --output.",
        )
    # the images too: another input or pattern would make one output of two runs' listings
    differ = [
        f"{flag} {there!r} there, {now!r} now"
        for flag, there, now in (
            ("--input", made_by.input, config.input_location.uri),
            ("--pattern", made_by.pattern, config.pattern),
        )
        if there != now
    ]
    if differ:
        raise ConfigError(
            f"--resume continues the images of {location.uri}, and these differ: {'; '.join(differ)}.",
            "Give the output's --input and --pattern, or write to another --output.",
        )


def check_same_weights(config: RunConfig, state: OutputState, sha256: str | None) -> None:
    """For --resume: the weights file (or saved model) now staged must be the very file that made the
    output's vectors, by sha256: a file replaced at the same path would mix two networks."""
    made_by = state.previous if state.unfinished is None else state.unfinished
    if made_by is None:
        return
    there = made_by.shipped_sha256 if isinstance(made_by, output_format.Manifest) else made_by.weights_sha256
    if there is not None and sha256 is not None and there != sha256:
        what = "saved model" if config.is_saved_model else "weights file"
        raise ConfigError(
            f"--resume would mix vectors of two networks in {config.output_location.uri}: the {what} "
            f"{config.model_label if config.is_saved_model else config.weights_label} changed since the output "
            f"was made (sha256 {there[:12]}… there, {sha256[:12]}… now).",
            "Restore the original file, or write to another --output (or --overwrite this one).",
        )


def begin(
    config: RunConfig, state: OutputState, record: output_format.RunRecord, to_do: int, shards_to_do: int | None
) -> None:
    """Before the first shard: leave in the output only what counts, and mark it unfinished with `record`
    (whose totals are counted here, with the `to_do` images still to encode in `shards_to_do` shards, None
    where their sizes follow the measured rate).

    --overwrite removes all of the old output (check_output_free made sure it is all sparkyfruit's, and it
    is checked again on the very listing deleted). Otherwise the data files that the table does not name
    (those of attempts that died: the lease says no run is alive) are removed. An output of a version
    before the Delta log gets its counted files committed first, in one commit.
    """
    location = config.output_location
    names = [name for name in storage.list_files(location, config) if name != LEASE_NAME]
    if config.overwrite:
        foreign = output_format.foreign_files(names, location, config)
        if foreign:
            raise ConfigError(
                f"--overwrite stopped: {location.shown} now holds files that sparkyfruit did not write "
                f"({', '.join(foreign[: output_format.SHOWN_FOREIGN])}); nothing was deleted.",
                "Move them away, or choose another --output.",
            )
        # the manifest first (the output stops reading as finished), the log last (until then it names what
        # is being deleted, so a reader fails on a missing file instead of reading half an output)
        stale = sorted(names, key=lambda name: (not name.startswith("_sparkyfruit"), name.startswith("_delta_log/")))
    else:
        if state.legacy and state.files:
            state.shards = [_convert(config, state)]
        counted = set(state.files)
        stale = [
            name
            for name in names
            if output_format.WORK_FILES.fullmatch(name)
            or output_format.LEGACY_FILES.fullmatch(name)
            or _data_file_of(name) not in counted | {None}
        ]
    storage.delete_files(location, stale, config)
    record.shards = len(state.shards) + shards_to_do if shards_to_do is not None else None
    record.images = sum(shard.images for shard in state.shards) + to_do
    output_format.write_run_record(location, record, config)
    if state.previous is not None and state.unfinished is None:
        storage.delete(location.child(output_format.MANIFEST_NAME), config)  # the run record holds it now


def _data_file_of(name: str) -> str | None:
    """The data file a name is, or whose checksum it is (`.part-0.parquet.crc`); None for anything else."""
    stripped = name.removeprefix(".").removesuffix(".crc") if name.endswith(".crc") else name
    return stripped if output_format.DATA_FILE.fullmatch(stripped) else None


def _convert(config: RunConfig, state: OutputState) -> delta.CommittedShard:
    """An output written before the Delta log: one commit of the files that count (rows read from their
    Parquet footers), as one shard."""
    location = config.output_location
    reports = [_report_of(location, config, name) for name in state.files]
    shard = delta.CommittedShard(
        state.next_shard - 1,  # the last recorded shard's number (0 without records): the next one stays next
        "converted",
        sum(shard.images for shard in state.shards) or sum(report.rows for report in reports),
        sum(report.rows for report in reports),
        sum(report.failed for report in reports),
    )
    _commit(config, shard, reports)
    return shard


def _report_of(location, config: RunConfig, name: str) -> delta.FileReport:
    counts = output_format.count_rows(location, config, files=[name])
    filesystem, root = parquet_files.filesystem(location, config)
    size = filesystem.get_file_info(f"{root}/{name}").size
    return delta.FileReport(name, counts.rows, counts.ok, counts.failed, size)


def _commit(
    config: RunConfig,
    shard: delta.CommittedShard,
    reports: list[delta.FileReport],
    removed: list[delta.FileReport] = (),
) -> None:
    from sparkyfruit import __version__

    metadata = {
        "run": shard.run,
        "shard": shard.number,
        "images": shard.images,
        "rows": shard.rows,
        "failed": shard.failed,
        "version": __version__,
    }
    delta.commit(config.output_location, config, reports, metadata, parquet_files.delta_schema(), removed=removed)


def write_shard(
    tasks: Callable[[], list[delta.FileReport]],
    config: RunConfig,
    run: str,
    number: int,
    listed: list[str],
    retried: dict[str, str] | None = None,
) -> delta.CommittedShard:
    """Encode and write one shard, then commit it: `tasks` runs the shard's Spark job, whose tasks each write
    one Parquet file and report it (parquet_files.writing_tasks); the driver commits exactly the reported
    files, in one Delta commit, and removes what other attempts of the shard's tasks left.

    `listed` (the shard's image URIs) makes every one of them appear in the output: Spark's file scan skips
    0-byte files and, in df mode, files it could not read; those get an error row of their own here, in a
    file the driver writes and commits with the tasks' files.

    `retried` (--retry-failed: failed image -> the file its old row is in, updated here) makes the same
    commit replace the old rows of this shard's images: each file that holds one is rewritten without them.
    """
    location, s3 = config.output_location, config.s3_only()
    reports = tasks()
    if sum(report.rows for report in reports) < len(listed):
        reports.append(_missing_rows(config, run, number, listed, reports))
    written = sum(report.rows for report in reports)
    if written != len(listed):
        raise StorageError(
            f"Shard {number} wrote {written:,} rows for its {len(listed):,} images; nothing of it was committed.",
            "Continue with --resume; if it happens again, report it with the driver log.",
        )
    retried_before = len(retried or {})
    replaced, kept = _without_retried_rows(config, run, number, listed, retried or {})
    again = retried_before - len(retried or {})  # images that had a failed row, which this commit replaces
    failed = sum(report.failed for report in reports)
    shard = delta.CommittedShard(number, run, len(listed) - again, written - again, failed)
    _commit(config, shard, reports + kept, removed=replaced)
    _remove_other_attempts(location, s3, run, number, reports + kept)
    storage.delete_files(location, [report.name for report in replaced], s3)
    return shard


def _without_retried_rows(config: RunConfig, run: str, number: int, listed: list[str], retried: dict[str, str]):
    """For the images of this shard that --retry-failed encodes again: the files their old rows are in (to
    remove), and those files rewritten without them (to add), the rest of `retried` now pointing there."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    location = config.output_location
    again = [uri for uri in listed if uri in retried]
    old_files = sorted({retried[uri] for uri in again})
    replaced, kept = [], []
    filesystem, root = parquet_files.filesystem(location, config)
    for index, name in enumerate(old_files):
        dataset = ds.dataset(f"{root}/{name}", filesystem=filesystem, format="parquet")
        counts = output_format.count_rows(location, config, files=[name])
        size = filesystem.get_file_info(f"{root}/{name}").size
        replaced.append(delta.FileReport(name, counts.rows, counts.ok, counts.failed, size))
        rest = dataset.to_table(filter=~pc.field("path").isin(again))
        new_name = parquet_files.file_name(run, number, 99998 - index, "kept")
        report = parquet_files.write_file(location, config.s3_only(), new_name, iter(rest.to_batches()))
        if report is not None:
            kept.append(report)
            for uri in rest.column("path").to_pylist():
                if uri in retried:
                    retried[uri] = new_name
    for uri in again:
        del retried[uri]
    return replaced, kept


def write_rows(frame, location: locations.Location, s3, column: str, metadata: dict) -> int:
    """A DataFrame of output rows (path, label, `column`, error) as one commit of a new table, the tasks
    writing the files as write_shard's do (`reduce`). Returns the rows written."""
    from sparkyfruit import __version__

    run = secrets.token_hex(4)
    with parquet_files.jobs_of_shard(frame.sparkSession.sparkContext, 1):
        reports = parquet_files.collected_reports(parquet_files.report_frame(frame, None, location, s3, run, column))
    schema = parquet_files.delta_schema(column)
    delta.commit(location, s3, reports, {"run": run, **metadata, "version": __version__}, schema, column)
    _remove_other_attempts(location, s3, run, 1, reports)
    return sum(report.rows for report in reports)


def _remove_other_attempts(location, s3, run: str, number: int, reports: list[delta.FileReport]) -> None:
    """Delete what the attempts that did not count (failed, killed, or beaten by a speculative copy) wrote:
    files named for this run's shard that no report names."""
    kept = {report.name for report in reports}
    prefix = parquet_files.shard_prefix(run, number)
    dead = [name for name in storage.list_files(location, s3, starting_with=prefix) if name not in kept]
    storage.delete_files(location, dead, s3)


def _missing_rows(config: RunConfig, run: str, number: int, listed: list[str], reports) -> delta.FileReport:
    """An error row for each listed image that no task wrote, in one file the driver writes."""
    import pyarrow as pa

    location = config.output_location
    written = set()
    if reports:
        dataset = output_format.open_dataset(location, config, [report.name for report in reports])
        written = set(dataset.to_table(columns=["path"]).column("path").to_pylist())
    missing = [uri for uri in listed if uri not in written]
    batch = pa.RecordBatch.from_pydict(
        {
            "path": missing,
            "label": [locations.label_of(uri) for uri in missing],
            "features": pa.nulls(len(missing), pa.list_(pa.float32())),
            "error": [_unread_error(uri, config) for uri in missing],
        }
    )
    name = parquet_files.file_name(run, number, 99999, "driver")
    return parquet_files.write_file(location, config.s3_only(), name, iter([batch]))


def _unread_error(uri: str, config: RunConfig) -> str:
    """Why a listed image has no row from Spark's file scan, found by reading it once more: it is empty (the
    scan skips 0-byte files, and keys mode reports the same text), it went away after the listing, or
    reading it fails (df mode skips what it cannot read, after S3A's retries)."""
    from sparkyfruit.featurize import EMPTY_FILE_ERROR

    try:
        content = storage.read_bytes(locations.parse_location(uri), config)
    except Exception as exc:  # the object still answers with an error: say which
        return f"cannot read image: {failure_summary(exc)[:300]}"
    if content is None:
        return "cannot read image: the file was removed after it was listed"
    if not content:
        return EMPTY_FILE_ERROR
    return "cannot read image: Spark's file reader failed on it, and it reads now (the driver log has the reason)"


def finish(
    config: RunConfig,
    state: OutputState,
    record: output_format.RunRecord,
    *,
    spark_version: str | None,
    duration_seconds: float,
) -> output_format.Manifest:
    """Write the manifest (the output is finished) and remove the run record."""
    location = config.output_location
    counts = output_format.count_rows(location, config)  # pyarrow, Parquet metadata: no Spark job
    manifest = output_format.Manifest(
        created_at=output_format.now(),
        versions=output_format.library_versions(spark_version),
        mode=config.mode,
        input=config.input_location.uri,
        output=location.uri,
        model=config.model_label,
        alpha=config.alpha,
        image_size=config.image_size,
        weights=config.weights_label,
        # a saved model's file is its weights: its sha256 is the model's
        weights_sha256=None if config.is_saved_model else record.weights_sha256,
        model_sha256=record.weights_sha256 if config.is_saved_model else None,
        pooling=config.pooling,
        pooled=record.pooled,
        layer=config.layer,
        preprocess=config.preprocess,
        pattern=config.pattern,
        engine=record.engine,
        engine_version=record.engine_version,
        dim=counts.dim or record.dim,
        counts=counts.as_counts(),
        duration_seconds=round(duration_seconds, 3),
        config=config.redacted(),
    )
    if state.previous is not None:
        manifest.created_at = state.previous.created_at
        manifest.resumes = state.previous.resumes + 1
        manifest.added_by_last_resume = counts.rows - state.previous.counts.rows
    elif state.unfinished is not None:
        manifest.created_at = state.unfinished.started_at
    output_format.write_manifest(location, manifest, config)
    storage.delete(location.child(output_format.RUN_NAME), config)
    return manifest
