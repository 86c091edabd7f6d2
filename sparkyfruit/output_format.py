"""The on-disk contract of an output: its manifest, which files are sparkyfruit's, and how it is read.

An output is a Delta Lake table (a folder or S3 prefix of Parquet files and their `_delta_log/`), with
`_sparkyfruit.json` written last. Readers take the table's current files from its log (sparkyfruit/delta.py),
never by globbing the folder; an output of a version before the Delta log (Parquet files written by Spark,
and shard records) is read from its folder until `--resume` converts it. Whatever sparkyfruit or Spark
leaves there (the log, checksums, `_SUCCESS`, committer work folders, the PCA model of `reduce`) is listed
in OWN_FILES, and is ours only beside one of sparkyfruit's own metadata files (OWN_MARKERS): a plain Spark
Parquet or Delta table has part files too. Anything else belongs to the user and is never deleted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import platform
import re
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from sparkyfruit import delta, locations, storage
from sparkyfruit.errors import ConfigError, NotAnOutputError, StorageError
from sparkyfruit.lease import LEASE_NAME, live_holder  # held by a run while it writes: one writer at a time
from sparkyfruit.s3_settings import S3Settings

MANIFEST_NAME = "_sparkyfruit.json"
# written before a run's first shard and removed when its manifest is written: while it is there the output
# is unfinished, and it holds what `--resume` checks and continues (a finished manifest being added to moves
# into it)
RUN_NAME = "_sparkyfruit.run.json"
# versions before the Delta log kept one record per committed shard: the Parquet files its Spark job committed
SHARDS_FOLDER = "_shards"
ENCODE_FORMAT = "sparkyfruit-output/1"
REDUCE_FORMAT = "sparkyfruit-reduce/1"
RUN_FORMAT = "sparkyfruit-run/1"

OWN_FILES = re.compile(
    r"_sparkyfruit(\.resuming|\.run|\.lease)?\.json(\.tmp)?"  # the manifests and the lease, and the temporary
    # file of an atomic write
    r"|_shards/\d+\.json(\.tmp)?"  # the shard records of a version before the Delta log
    r"|_delta_log/.+"  # the Delta log (delta.LOG_FOLDER): which data files are the table
    r"|\.?_SUCCESS(\.crc)?"  # the committers' success marker (and the local file system's checksum of it)
    r"|\.?part-[^/]+\.parquet(\.crc)?"  # Spark's data files and their checksums
    r"|(_temporary|__magic[^/]*|_pca_model)/.+"  # committers' work folders; the PCA model of `reduce`
)
# files that only sparkyfruit writes: without one of them, nothing in a folder is ours
OWN_MARKERS = re.compile(r"_sparkyfruit(\.resuming|\.run|\.lease)?\.json(\.tmp)?|_shards/\d+\.json(\.tmp)?")
SHOWN_FOREIGN = 3
DATA_FILE = re.compile(r"part-[^/]+\.parquet")
# what a Spark job that did not commit leaves: its committer's work folders (versions before the Delta log)
WORK_FILES = re.compile(r"(_temporary|__magic[^/]*)/.+")
# what versions before the Delta log kept beside the data files, removed when --resume converts an output
LEGACY_FILES = re.compile(r"_shards/\d+\.json(\.tmp)?|\.?_SUCCESS(\.crc)?")


def is_own_file(name: str) -> bool:
    """Whether a file (its path relative to the output) is one that sparkyfruit or Spark writes."""
    return OWN_FILES.fullmatch(name) is not None


def foreign_files(
    names: list[str], location: locations.Location | None = None, s3: S3Settings | None = None
) -> list[str]:
    """The files of a folder's listing that are not sparkyfruit's: all of them when none of sparkyfruit's own
    metadata files is among them, and (with `location`) its Delta log was not begun by sparkyfruit."""
    if not any(OWN_MARKERS.fullmatch(name) for name in names) and not (
        location is not None and log_begun_by_sparkyfruit(location, s3, names)
    ):
        return list(names)
    return [name for name in names if not is_own_file(name)]


def log_begun_by_sparkyfruit(location: locations.Location, s3: S3Settings, names: list[str]) -> bool:
    """Whether the folder's Delta log starts with a commit of sparkyfruit's (its metadata names it): a table
    that sparkyfruit made, whose manifest is gone. Another program's Delta table is not ours."""
    first = f"{delta.LOG_FOLDER}/{0:020d}.json"
    if first not in names:
        return False
    for line in (storage.read_text(location.child(first), s3) or "").splitlines():
        try:
            action = json.loads(line)
        except ValueError:
            return False
        if isinstance(action, dict) and isinstance(action.get("commitInfo"), dict):
            return "sparkyfruit" in action["commitInfo"]
    return False


def check_writable(
    location: locations.Location,
    s3: S3Settings,
    *,
    overwrite: bool,
    resume: bool | None = None,
    flag: str = "--output",
) -> None:
    """Before any work: a command may write to `location` only if it is empty, or holds only what
    sparkyfruit wrote and `overwrite` (replace) or `resume` (add) is given. `resume` None: the command has
    no --resume (reduce), so its message does not offer one. Raises ConfigError otherwise."""
    names = check_not_foreign(location, s3, flag)
    check_replaceable(names, location, overwrite=overwrite, resume=resume, flag=flag)


def check_not_foreign(location: locations.Location, s3: S3Settings, flag: str = "--output") -> list[str]:
    """Refuse (ConfigError) a location that is a file, or a folder that holds anything sparkyfruit did not
    write. Returns its listing."""
    if storage.is_local_file(location):
        raise ConfigError(
            f"{flag} {location.shown} is a file, not a folder; nothing was touched.",
            f"Give {flag} a folder (new or empty) for the output.",
        )
    names = storage.list_files(location, s3)
    foreign = foreign_files(names, location, s3)
    if foreign:
        raise ConfigError(
            f"{flag} {location.shown} holds files that sparkyfruit did not write ({_first(foreign)}); "
            "nothing was touched.",
            f"Choose another {flag}: sparkyfruit only writes into an empty folder or replaces (--overwrite) its "
            "own output.",
        )
    return names


def check_replaceable(
    names: list[str],
    location: locations.Location,
    *,
    overwrite: bool,
    resume: bool | None = None,
    flag: str = "--output",
) -> None:
    """Refuse (ConfigError) to write over an output (its listing `names`, all sparkyfruit's) unless
    `overwrite` or `resume` is given. A lease alone (this run's own) does not count."""
    if [name for name in names if name != LEASE_NAME] and not (overwrite or resume):
        raise ConfigError(
            f"{flag} {location.shown} already holds a sparkyfruit output; nothing was touched.",
            "Pass --overwrite to replace it"
            + (", --resume to add new images to it," if resume is not None else "")
            + f" or choose another {flag}.",
        )


def _first(names: list[str]) -> str:
    listed = ", ".join(names[:SHOWN_FOREIGN])
    return listed + (f" and {len(names) - SHOWN_FOREIGN} more" if len(names) > SHOWN_FOREIGN else "")


@dataclass
class Counts:
    rows: int
    ok: int
    failed: int


@dataclass
class Manifest:
    """`_sparkyfruit.json` of an encode output: what made the vectors, and how many there are."""

    created_at: str
    versions: dict[str, str | None]
    mode: str
    input: str
    output: str
    model: str  # a backbone's name, or a saved model's URI
    alpha: float
    image_size: int
    weights: str  # weights.label() of the setting; "included" for a saved model
    weights_sha256: str | None
    dim: int | None  # None only where no image could be encoded with a network of unknown width
    counts: Counts
    duration_seconds: float
    config: dict[str, Any]  # the run's redacted settings
    resumes: int = 0
    added_by_last_resume: int | None = None
    pooling: str = "avg"  # the setting: how a feature map becomes the vector
    pooled: bool = True  # whether the network's output was a feature map, pooled (a backbone's always is)
    layer: str | None = None  # a saved model's layer
    preprocess: str | None = None  # a saved model's preprocessing (a backbone's name, or "none")
    model_sha256: str | None = None  # a saved model's file
    pattern: str | None = None  # the --pattern setting (None: the default image pattern)
    engine: str = "tensorflow"  # what ran the network (engines.py); an output of an earlier version: TensorFlow
    engine_version: str | None = None
    format: str = ENCODE_FORMAT

    @property
    def shipped_sha256(self) -> str | None:
        """The sha256 of the file the workers loaded: a saved model's own, else its weights' (None: random)."""
        return self.model_sha256 or self.weights_sha256


@dataclass
class ShardRecord:
    """`_shards/NNNNNN.json` of a version before the Delta log: one shard whose Spark job committed, and the
    Parquet files it wrote (read to convert such an output on --resume)."""

    number: int
    images: int
    rows: int
    failed: int
    files: list[str]


@dataclass
class RunRecord:
    """`_sparkyfruit.run.json`: a run under way, or one that stopped before its manifest was written."""

    started_at: str
    mode: str
    input: str
    model: str
    alpha: float
    image_size: int
    weights: str
    weights_sha256: str | None
    shard_size: int | None  # the setting; None: each shard's size follows the measured rate (shards.Sizing)
    images: int  # the images the output holds once this run has finished
    shards: int | None  # the shards it holds then, where the shard size is set
    previous: Manifest | None = None  # the finished output this run adds to (--resume)
    continued: int = 0  # how many times --resume has continued this run
    pooling: str = "avg"
    layer: str | None = None
    preprocess: str | None = None
    pooled: bool = True  # see Manifest
    dim: int | None = None  # the vector's length, where the driver knows it before any image is encoded
    pattern: str | None = None  # see Manifest
    engine: str = "tensorflow"  # see Manifest
    engine_version: str | None = None
    format: str = RUN_FORMAT

    def progress(self, shards: list[ShardRecord]) -> str:
        """How far it got: '3 of 8 shards, 30,000 of 80,000 images' (or '3 shards committed, ...')."""
        done = sum(shard.images for shard in shards)
        if self.shards:
            return f"{len(shards)} of {self.shards} shards, {done:,} of {self.images:,} images"
        plural = "s" if len(shards) != 1 else ""
        return f"{len(shards)} shard{plural} committed, {done:,} of {self.images:,} images"

    def progress_state(self, shards: list[ShardRecord]) -> dict[str, Any]:
        """How far it got, for JSON: the shards and images committed, and of how many."""
        return {
            "shards_committed": len(shards),
            "shards": self.shards,
            "images_committed": sum(shard.images for shard in shards),
            "images": self.images,
            "started_at": self.started_at,
            "model": self.model,
            "mode": self.mode,
            "input": self.input,
        }


@dataclass
class ReduceManifest:
    """`_sparkyfruit.json` of a `reduce` output: the PCA, and the manifest of the output it was fitted on."""

    created_at: str
    source: str
    k: int
    requested_variance: float | None
    explained_variance: float
    explained_variance_by_component: list[float]
    dim: int
    dim_in: int
    counts: Counts
    model_folder: str
    duration_seconds: float
    source_manifest: Manifest
    method: str = "pca"
    format: str = REDUCE_FORMAT


def _from_dict(kind: type, data: dict[str, Any]):
    """A manifest dataclass from its JSON, ignoring keys this version does not know."""
    names = {f.name for f in dataclasses.fields(kind)}
    values = {name: value for name, value in data.items() if name in names}
    if kind is RunRecord:
        values["previous"] = _from_dict(Manifest, values["previous"]) if values.get("previous") else None
        return kind(**values)
    if kind is ShardRecord:
        return kind(**values)
    values["counts"] = Counts(**values["counts"])
    if kind is Manifest and "pattern" not in values:  # written before the field: its settings hold it
        values["pattern"] = (values.get("config") or {}).get("pattern")
    if kind is ReduceManifest:
        values["source_manifest"] = _from_dict(Manifest, values["source_manifest"])
    return kind(**values)


def now() -> str:
    """A manifest's timestamp: UTC, to the second, ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def library_version(*distributions: str) -> str | None:
    """The installed version of the first of `distributions` that is installed (metadata only, no import)."""
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def library_versions(spark_version: str | None = None) -> dict[str, str | None]:
    """What a manifest records of the software that made it (`spark`: the running session's version)."""
    from sparkyfruit import __version__

    return {
        "sparkyfruit": __version__,
        "pyspark": library_version("pyspark"),
        "spark": spark_version,
        "tensorflow": library_version("tensorflow", "tensorflow-cpu"),
        "keras": library_version("keras"),
        "python": platform.python_version(),
    }


def parse_manifest(text: str) -> Manifest | ReduceManifest:
    data = json.loads(text)
    return _from_dict(ReduceManifest if data.get("format") == REDUCE_FORMAT else Manifest, data)


def read_manifest(
    location: storage.Location, s3: S3Settings, name: str = MANIFEST_NAME
) -> Manifest | ReduceManifest | None:
    text = storage.read_text(location.child(name), s3)
    if text is None:
        return None
    try:
        return parse_manifest(text)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise NotAnOutputError(
            f"{location.child(name).uri} cannot be read as a sparkyfruit manifest ({type(exc).__name__}: {exc}).",
            "It was changed by hand or written by another program; rerun encode with --overwrite.",
        ) from None


def write_manifest(
    location: storage.Location, manifest: Manifest | ReduceManifest, s3: S3Settings, name: str = MANIFEST_NAME
) -> None:
    storage.write_text(location.child(name), json.dumps(dataclasses.asdict(manifest), indent=2), s3)


def read_run_record(location: locations.Location, s3: S3Settings) -> RunRecord | None:
    text = storage.read_text(location.child(RUN_NAME), s3)
    if text is None:
        return None
    try:
        return _from_dict(RunRecord, json.loads(text))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise NotAnOutputError(
            f"{location.child(RUN_NAME).uri} cannot be read as a sparkyfruit run record ({type(exc).__name__}).",
            "It was changed by hand; rerun encode with --overwrite.",
        ) from None


def write_run_record(location: locations.Location, record: RunRecord, s3: S3Settings) -> None:
    storage.write_text(location.child(RUN_NAME), json.dumps(dataclasses.asdict(record), indent=2), s3)


def shard_record_name(number: int) -> str:
    return f"{SHARDS_FOLDER}/{number:06d}.json"


def write_shard_record(location: locations.Location, record: ShardRecord, s3: S3Settings) -> None:
    """(What versions before the Delta log wrote; the tests make such outputs with it.)"""
    storage.write_text(location.child(shard_record_name(record.number)), json.dumps(dataclasses.asdict(record)), s3)


def shard_records(location: locations.Location, s3: S3Settings, names: list[str] | None = None) -> list[ShardRecord]:
    """The output's shard records in shard order (`names`: its file listing, when already made)."""
    names = storage.list_files(location, s3) if names is None else names
    records = []
    for name in names:
        if re.fullmatch(SHARDS_FOLDER + r"/\d+\.json", name):
            try:
                records.append(_from_dict(ShardRecord, json.loads(storage.read_text(location.child(name), s3))))
            except (ValueError, TypeError, KeyError) as exc:
                raise NotAnOutputError(
                    f"{location.child(name).uri} cannot be read as a shard record ({type(exc).__name__}).",
                    "It was changed by hand; rerun encode with --overwrite.",
                ) from None
    return sorted(records, key=lambda record: record.number)


@dataclass
class StoredOutput:
    """What an output holds, read in one call (read_output): its manifest (a finished output), else its run
    record (an unfinished one), and its Delta table's snapshot (None for an output of a version before the
    log, or for none)."""

    location: locations.Location
    manifest: Manifest | ReduceManifest | None
    run_record: RunRecord | None
    table: delta.TableSnapshot | None
    s3: S3Settings = field(repr=False)
    names: list[str] | None = field(default=None, repr=False)  # the folder's listing, where already made

    @functools.cached_property
    def shards(self) -> list[delta.CommittedShard]:
        """The committed shards, in order: the log's commits, or an earlier version's shard records."""
        if self.table is not None:
            return self.table.shards
        records = shard_records(self.location, self.s3, self._names())
        return [delta.CommittedShard(r.number, "", r.images, r.rows, r.failed) for r in records]

    @functools.cached_property
    def files(self) -> list[str]:
        """The data files that count (names relative to the output): the table's; an earlier version's:
        every data file of a finished output, the recorded shards' files of an unfinished one."""
        if self.table is not None:
            return self.table.files
        if self.manifest is not None:
            return [name for name in self._names() if DATA_FILE.fullmatch(name)]
        return [name for record in shard_records(self.location, self.s3, self._names()) for name in record.files]

    def _names(self) -> list[str]:
        if self.names is None:
            self.names = storage.list_files(self.location, self.s3)
        return self.names


def read_output(location: locations.Location, s3: S3Settings, names: list[str] | None = None) -> StoredOutput:
    """An output's state: its manifest or run record, and one read of its Delta log (`names`: the folder's
    listing, where the caller has made it; an output without a log is listed when its files are asked for).
    Without a manifest or a run record it is no output, and nothing more is read."""
    manifest = read_manifest(location, s3)
    run_record = read_run_record(location, s3) if manifest is None else None
    if (manifest is None and run_record is None) or (names is not None and not delta.has_log(names)):
        table = None  # not an output, or one written before the Delta log
    else:  # a log the listing shows must be readable
        table = delta.read_table(location, s3, missing_ok=names is None)
    return StoredOutput(location, manifest, run_record, table, s3, names)


def finished_output(output: str | locations.Location, s3: S3Settings) -> StoredOutput:
    """A finished output's state (`output`: its location, or as the user gave it); for anything else, a
    NotAnOutputError that says what it is."""
    location = output if isinstance(output, locations.Location) else locations.parse_location(output, "OUTPUT")
    stored = read_output(location, s3)
    if stored.manifest is None:
        raise not_an_output(location, s3, stored)
    return stored


def not_an_output(location: locations.Location, s3: S3Settings, stored: StoredOutput | None = None) -> NotAnOutputError:
    """What a location without a manifest is (a file, a folder of images, an unfinished run, something
    else), with advice that fits it (`stored`: its state, where already read)."""
    where = location.shown
    if storage.is_local_file(location):
        return NotAnOutputError(
            f"{where} is a file, not an output folder.", "Give the --output folder of a `sparkyfruit encode` run."
        )
    names = storage.list_files(location, s3)
    if not names:
        return NotAnOutputError(
            f"{where} does not exist or is empty.", "Give the --output folder of a `sparkyfruit encode` run."
        )
    foreign = foreign_files(names, location, s3)
    holder = live_holder(location, s3) if not foreign and LEASE_NAME in names else None
    record = None
    if not foreign and RUN_NAME in names:  # an unfinished run: its record says how far it got
        if stored is None or stored.run_record is None:
            stored = read_output(location, s3, names)
        record = stored.run_record
    progress = record.progress_state(stored.shards) if record is not None else {}
    if holder is not None:
        so_far = f": {record.progress(stored.shards)}" if record is not None else ""
        return NotAnOutputError(
            f"{where} is being written now by a run ({holder.describe()}){so_far}.",
            "Wait for it to end, then run this again.",
            state={"output": location.uri, "finished": False, "state": "being written", **progress},
        )
    if record is not None:
        return NotAnOutputError(
            f"{where} is unfinished: {record.progress(stored.shards)}.",
            "Continue it: rerun that encode with --resume.",
            state={"output": location.uri, "finished": False, "state": "stopped", **progress},
        )
    if not foreign:
        return NotAnOutputError(
            f"{where} has no {MANIFEST_NAME}: the encode run that wrote it did not finish.",
            "Rerun that encode with --overwrite.",
        )
    if any(name.rsplit(".", 1)[-1].lower() in locations.IMAGE_EXTENSIONS for name in foreign):
        return NotAnOutputError(
            f"{where} is a folder of images, not a sparkyfruit output.",
            f"Encode it first: sparkyfruit encode --input {where} --output OUT.",
        )
    return NotAnOutputError(
        f"{where} is not a sparkyfruit output: it has no {MANIFEST_NAME} and holds {_first(foreign)}.",
        "Give the --output folder of a `sparkyfruit encode` run.",
    )


@dataclass
class Vectors:
    """The rows of an output that have a vector, sorted by path; `vectors` is a float32 matrix. `rows` is
    how many such rows the output holds: more than len(paths) when a sample was taken."""

    paths: list[str]
    labels: list[str]
    vectors: Any
    column: str
    rows: int

    @property
    def sampled(self) -> bool:
        return len(self.paths) < self.rows


def load_vectors(stored: StoredOutput, at_most: int | None = None, seed: int = 0) -> Vectors:
    """The rows of a finished output (finished_output) that have a vector and a label, read batch by batch.
    Beyond `at_most` rows, a sample of about that many: a row is kept by a seeded hash of its path, so the
    same output gives the same sample, and memory stays bounded by the sample, not the output."""
    import zlib

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    location = stored.location
    column = vector_column(stored.manifest)
    dataset = open_dataset(location, stored.s3, stored.files)
    total = dataset.count_rows()  # Parquet metadata
    share = 1.0 if at_most is None or total <= at_most else at_most / total
    threshold, salt = int(share * 2**32), str(seed).encode()
    paths, labels, blocks, rows = [], [], [], 0
    try:
        batches = dataset.to_batches(
            columns=["path", "label", column],
            filter=pc.field(column).is_valid() & pc.field("label").is_valid(),
            # memory follows the sample, not pyarrow's read-ahead (16 batches of 131,072 vectors by default)
            batch_size=16_384,
            batch_readahead=1,
            fragment_readahead=1,
        )
        for batch in batches:
            rows += batch.num_rows
            batch_paths = batch.column("path").to_pylist()
            if share < 1.0:
                keep = [zlib.crc32(path.encode(), zlib.crc32(salt)) < threshold for path in batch_paths]
                batch = batch.filter(pa.array(keep, pa.bool_()))
                batch_paths = [path for path, kept in zip(batch_paths, keep) if kept]
            if not batch.num_rows:
                continue
            paths += batch_paths
            labels += batch.column("label").to_pylist()
            values = batch.column(column).flatten().to_numpy(zero_copy_only=False)
            blocks.append(values.astype(np.float32, copy=False).reshape(batch.num_rows, -1))
    except (OSError, ValueError) as exc:
        raise StorageError(f"Could not read the Parquet files in {location.uri}: {exc}") from None
    if not paths:
        raise NotAnOutputError(f"{location.uri} holds no rows with vectors.", "Check the encode run's failures.")
    order = np.argsort(np.asarray(paths, dtype=object), kind="stable")
    vectors = np.concatenate(blocks)[order]
    return Vectors([paths[i] for i in order], [labels[i] for i in order], vectors, column, rows)


def vector_column(manifest: Manifest | ReduceManifest) -> str:
    """The column that holds the vectors: `features` (encode) or `pca_features` (reduce)."""
    return "pca_features" if isinstance(manifest, ReduceManifest) else "features"


def open_dataset(location: locations.Location, s3: S3Settings, files: list[str] | None = None):
    """The table's current Parquet files as a pyarrow dataset (from its Delta log; an output written
    before the log: the folder's, files starting with '_' or '.' skipped), or only `files` (names relative
    to the output)."""
    import pyarrow.dataset as ds

    filesystem, path = storage.pyarrow_filesystem(location, s3)
    if files is None:
        table = delta.read_table(location, s3, missing_ok=True)
        files = None if table is None else table.files
    source = path if files is None else [f"{path}/{name}" for name in files]
    try:
        return ds.dataset(source, filesystem=filesystem, format="parquet")
    except FileNotFoundError as exc:
        raise NotAnOutputError(
            f"{location.uri} lost a data file that its table names ({exc}): it was changed after its run.",
            "Rerun encode with --overwrite.",
        ) from None
    except (OSError, ValueError) as exc:
        raise StorageError(f"Could not read the Parquet files in {location.uri}: {exc}") from None


def data_file_uris(stored: StoredOutput) -> list[str]:
    """The Spark URIs of the output's data files (StoredOutput.files)."""
    return [stored.location.child(name).spark_uri(stored.s3.spark_s3_scheme) for name in stored.files]


def count_rows(
    location: locations.Location, s3: S3Settings, column: str = "features", files: list[str] | None = None
) -> RowCounts:
    """rows, ok, failed and dim of what an output holds (or its `files`), from Parquet metadata and two
    small columns."""
    import pyarrow.compute as pc

    dataset = open_dataset(location, s3, files)
    try:
        rows = dataset.count_rows()
        failed = dataset.count_rows(filter=pc.field("error").is_valid())
        # the first vector, one small batch at a time and nothing read ahead (head() reads ahead whole
        # files of vectors, gigabytes on a large output)
        scanner = dataset.scanner(
            columns=[column], filter=pc.field(column).is_valid(), batch_size=64, batch_readahead=0, fragment_readahead=0
        )
        first = next((batch for batch in scanner.to_batches() if batch.num_rows), None)
    except (OSError, ValueError) as exc:
        raise StorageError(f"Could not read the Parquet files in {location.uri}: {exc}") from None
    dim = len(first.column(0)[0].as_py()) if first is not None else None
    return RowCounts(rows, rows - failed, failed, dim)


@dataclass
class RowCounts(Counts):
    """What the Parquet files hold, read back: the counts, and the length of the first vector."""

    dim: int | None = None

    def as_counts(self) -> Counts:
        return Counts(self.rows, self.ok, self.failed)
