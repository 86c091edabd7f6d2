"""The output's Delta Lake log, through deltalake (delta-rs): which Parquet files are the table, and one
commit per shard of exactly the files its tasks reported.

Tasks write their own Parquet files (sparkyfruit/parquet_files.py); nothing here lists the folder to decide
what is committed. A commit's `sparkyfruit` metadata names the run, the shard and how many images, rows and
failed rows it added, which is what `--resume` and `inspect` read back as the committed shards.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sparkyfruit import locations
from sparkyfruit.errors import StorageError, failure_summary
from sparkyfruit.s3_settings import S3Settings

LOG_FOLDER = "_delta_log"


@dataclass(frozen=True)
class FileReport:
    """One Parquet file a task wrote (`name` relative to the output), with its counts."""

    name: str
    rows: int
    ok: int
    failed: int
    bytes: int


@dataclass(frozen=True)
class CommittedShard:
    """One commit of a shard, as its metadata records it."""

    number: int
    run: str
    images: int
    rows: int
    failed: int


def table_uri(location: locations.Location) -> str:
    """The URI deltalake opens: a plain path locally, s3:// or hdfs:// otherwise."""
    return location.path if location.is_local else location.uri


def storage_options(location: locations.Location, s3: S3Settings) -> dict[str, str] | None:
    """object_store's options for an S3 output: the endpoint, the region and the credentials that boto3's
    chain (or --profile) resolves here. They stay in this process: never printed, logged or written."""
    if not location.is_s3:
        return None
    from sparkyfruit.storage import resolved_credentials

    options = {}
    if s3.effective_region:
        options["AWS_REGION"] = s3.effective_region
    if s3.s3_endpoint:
        parts = urlsplit(s3.s3_endpoint)
        options["AWS_ENDPOINT_URL"] = f"{parts.scheme or 'https'}://{parts.netloc.rpartition('@')[2]}"
        options["AWS_ALLOW_HTTP"] = "true" if parts.scheme == "http" else "false"
        options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
    frozen = resolved_credentials(s3)
    if frozen is not None:
        options["AWS_ACCESS_KEY_ID"] = frozen.access_key
        options["AWS_SECRET_ACCESS_KEY"] = frozen.secret_key
        if frozen.token:
            options["AWS_SESSION_TOKEN"] = frozen.token
    return options


def has_log(names: list[str]) -> bool:
    """Whether a folder's listing holds a Delta log."""
    return any(name.startswith(LOG_FOLDER + "/") for name in names)


def _open(location: locations.Location, s3: S3Settings, missing_ok: bool = False):
    """The table as its log says now (one read of the log); None where there is no log and `missing_ok`."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(table_uri(location), storage_options=storage_options(location, s3))
    except TableNotFoundError:
        if missing_ok:
            return None
        raise StorageError(
            f"{location.uri} has no Delta log.", "Give the --output of a `sparkyfruit encode` run."
        ) from None
    except Exception as exc:
        raise StorageError(
            f"Could not read the Delta log of {location.uri}: {failure_summary(exc)[:300]}",
            "Check that the output is reachable; a log changed by hand cannot be read.",
        ) from None


@dataclass
class TableSnapshot:
    """The table at one version, from one read of its log: `files`, its data files now (names relative to
    the output); `shards`, the shards committed to it, in order, from the commits' metadata (read on first
    use, from the same log)."""

    version: int
    files: list[str]
    table: object = field(repr=False)

    @functools.cached_property
    def shards(self) -> list[CommittedShard]:
        shards = []
        for commit in self.table.history():
            meta = commit.get("sparkyfruit")
            if isinstance(meta, str):  # some writers keep custom metadata as a JSON string
                meta = json.loads(meta)
            if isinstance(meta, dict) and "shard" in meta:
                shards.append(
                    CommittedShard(
                        int(meta["shard"]), str(meta.get("run", "")), meta["images"], meta["rows"], meta["failed"]
                    )
                )
        return sorted(shards, key=lambda shard: shard.number)


def read_table(location: locations.Location, s3: S3Settings, missing_ok: bool = False) -> TableSnapshot | None:
    """The table as its log says now; None where the output has no log (one of an earlier version, or none)
    and `missing_ok`."""
    table = _open(location, s3, missing_ok)
    if table is None:
        return None
    return TableSnapshot(table.version(), sorted(uri.rsplit("/", 1)[-1] for uri in table.file_uris()), table)


def commit(
    location: locations.Location,
    s3: S3Settings,
    files: list[FileReport],
    metadata: dict,
    schema,
    column: str = "features",
    removed: list[FileReport] = (),
) -> None:
    """One Delta commit that adds exactly `files` (creating the table with its first commit) and removes
    `removed`, with `metadata` under the commit's `sparkyfruit` key."""
    from deltalake.transaction import AddAction, CommitProperties, RemoveAction, create_table_with_add_actions

    now_ms = int(time.time() * 1000)
    actions = [
        AddAction(
            report.name,
            report.bytes,
            {},
            now_ms,
            True,
            json.dumps({"numRecords": report.rows, "nullCount": {column: report.failed, "error": report.ok}}),
        )
        for report in files
    ] + [RemoveAction(report.name, True, now_ms, report.bytes) for report in removed]
    properties = CommitProperties(custom_metadata={"sparkyfruit": metadata})
    table = _open(location, s3, missing_ok=True)
    try:
        if table is not None:
            table.create_write_transaction(actions, mode="append", schema=schema, commit_properties=properties)
        else:
            uri, options = table_uri(location), storage_options(location, s3)
            create_table_with_add_actions(
                uri, schema, actions, mode="error", storage_options=options, commit_properties=properties
            )
    except Exception as exc:
        raise StorageError(
            f"Could not commit {len(files)} file(s) to the Delta log of {location.uri}: {failure_summary(exc)[:300]}",
            "Nothing of this shard counts; continue with --resume.",
        ) from None
