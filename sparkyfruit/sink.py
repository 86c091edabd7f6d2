"""Writes the Parquet output shard by shard, each recorded once committed, then `_sparkyfruit.json` last:
no manifest means no finished run. Owns the resume and overwrite policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from sparkyfruit import locations, output_format, storage
from sparkyfruit.config import RunConfig
from sparkyfruit.errors import ConfigError, failure_summary
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
    shards: the committed shards' records; done: the image paths they hold (all rows of a finished output).
    """

    previous: output_format.Manifest | None = None
    unfinished: output_format.RunRecord | None = None
    shards: list[output_format.ShardRecord] = field(default_factory=list)
    done: set[str] = field(default_factory=set)

    @property
    def next_shard(self) -> int:
        return max((shard.number for shard in self.shards), default=0) + 1


def prepare(config: RunConfig) -> OutputState:
    """For --resume: what the output already holds, after checking it was made with the same network. An
    empty output is a plain first run."""
    location = config.output_location
    if not config.resume or not [name for name in storage.list_files(location, config) if name != LEASE_NAME]:
        return OutputState()
    manifest = output_format.read_manifest(location, config)
    unfinished = None if manifest is not None else output_format.read_run_record(location, config)
    made_by = manifest or unfinished
    if made_by is None:
        raise ConfigError(
            f"--resume needs an output of sparkyfruit, and {location.uri} has neither {output_format.MANIFEST_NAME} "
            f"nor {output_format.RUN_NAME} (a run of an older version that was stopped?).",
            "Run again with --overwrite instead of --resume, or choose another --output.",
        )
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
    shards = output_format.shard_records(location, config)
    # a finished output: every data file counts (also one of a version without shard records); an unfinished
    # one: only what committed shards recorded
    files = None if manifest is not None else [name for shard in shards for name in shard.files]
    done = set()
    if files is None or files:
        table = output_format.open_dataset(location, config, files).to_table(columns=["path"])
        done = set(table.column("path").to_pylist())
    previous = manifest if manifest is not None else unfinished.previous
    return OutputState(previous, unfinished, shards, done)


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
) -> set[str]:
    """Before the first shard: leave in the output only what counts, and mark it unfinished with `record`
    (whose totals are counted here, with the `to_do` images still to encode in `shards_to_do` shards, None
    where their sizes follow the measured rate). Returns the data files that count (the committed shards'
    files).

    --overwrite removes all of the old output (check_output_free made sure it is all sparkyfruit's). On an
    unfinished output, what a shard that never recorded its commit left (its data files, its committer's
    work folders) is removed: that shard is encoded again. A finished output keeps every data file, and
    those no shard record names (an older version's) are recorded as one shard here.
    """
    location = config.output_location
    names = [name for name in storage.list_files(location, config) if name != LEASE_NAME]
    recorded = {name for shard in state.shards for name in shard.files}
    if config.overwrite:
        # the very listing that is deleted is checked again: only sparkyfruit's own files go
        foreign = output_format.foreign_files(names)
        if foreign:
            raise ConfigError(
                f"--overwrite stopped: {location.shown} now holds files that sparkyfruit did not write "
                f"({', '.join(foreign[: output_format.SHOWN_FOREIGN])}); nothing was deleted.",
                "Move them away, or choose another --output.",
            )
        stale = names
    else:
        stale = [name for name in names if output_format.WORK_FILES.fullmatch(name)]
        data = [name for name in names if output_format.DATA_FILE.fullmatch(name)]
        unrecorded = [name for name in data if name not in recorded]
        if state.previous is not None and state.unfinished is None and unrecorded:
            counts = output_format.count_rows(location, config, files=unrecorded)
            adopted = output_format.ShardRecord(state.next_shard, counts.rows, counts.rows, counts.failed, unrecorded)
            output_format.write_shard_record(location, adopted, config)
            state.shards.append(adopted)
            recorded.update(unrecorded)
        else:
            stale += unrecorded + [f".{name}.crc" for name in unrecorded if f".{name}.crc" in names]
    storage.delete_files(location, stale, config)
    record.shards = len(state.shards) + shards_to_do if shards_to_do is not None else None
    record.images = sum(shard.images for shard in state.shards) + to_do
    output_format.write_run_record(location, record, config)
    if state.previous is not None and state.unfinished is None:
        storage.delete(location.child(output_format.MANIFEST_NAME), config)  # the run record holds it now
    return recorded


def write_shard(frame, config: RunConfig, number: int, listed: list[str], known: set[str]) -> output_format.ShardRecord:
    """Append one shard's rows as Parquet, then record the files its job committed (those not in `known`,
    which is updated) with their counts, read back with pyarrow.

    `listed` (the shard's image URIs) makes every one of them appear in the output: Spark's file scan skips
    0-byte files and, in df mode, files it could not read; those get an error row of their own here.
    """
    location = config.output_location
    target = location.spark_uri(config.spark_s3_scheme)
    _append_parquet(frame, target)
    files = _new_data_files(location, config, known)
    counts = output_format.count_rows(location, config, files=files) if files else output_format.RowCounts(0, 0, 0)
    if counts.rows < len(listed):
        written = set()
        if files:
            dataset = output_format.open_dataset(location, config, files)
            written = set(dataset.to_table(columns=["path"]).column("path").to_pylist())
        missing = [
            (uri, locations.label_of(uri), None, _unread_error(uri, config)) for uri in listed if uri not in written
        ]
        missing_rows = frame.sparkSession.createDataFrame(
            missing, "path string, label string, features array<float>, error string"
        )
        _append_parquet(missing_rows.coalesce(1), target)
        files += _new_data_files(location, config, known)
        counts = output_format.count_rows(location, config, files=files)
    record = output_format.ShardRecord(number, len(listed), counts.rows, counts.failed, sorted(files))
    output_format.write_shard_record(location, record, config)
    return record


# Parquet first tries a dictionary for every column; for the feature values, which hardly ever repeat, it
# fills a hash table per file before falling back to plain values, and that cost the JVM more CPU than the
# rest of the write (the path and label columns keep theirs)
NO_FEATURE_DICTIONARY = {"parquet.enable.dictionary#features.list.element": "false"}


def _append_parquet(frame, target: str) -> None:
    frame.write.mode("append").options(**NO_FEATURE_DICTIONARY).parquet(target)


def _new_data_files(location: locations.Location, config: RunConfig, known: set[str]) -> list[str]:
    new = [
        name
        for name in storage.list_files(location, config)
        if output_format.DATA_FILE.fullmatch(name) and name not in known
    ]
    known.update(new)
    return new


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
