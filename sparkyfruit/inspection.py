"""What is in an output, read with pyarrow only: no JVM, no Spark, fast."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sparkyfruit import sink, storage
from sparkyfruit.config import S3Settings
from sparkyfruit.errors import NotAnOutputError, StorageError

MAX_FAILURES_SHOWN = 5


@dataclass
class Summary:
    output: str
    rows: int
    ok: int
    failed: int
    dim: int
    model: str
    image_size: int
    weights_sha256: str | None
    mode: str
    labels: dict[str, int]
    failures: list[dict[str, str]]
    manifest: dict = field(repr=False)

    def to_dict(self) -> dict:
        return asdict(self)


def open_dataset(location: storage.Location, s3: S3Settings):
    """The Parquet files of an output as a pyarrow dataset (files starting with '_' or '.' are skipped)."""
    import pyarrow.dataset as ds

    filesystem, path = storage.pyarrow_filesystem(location, s3)
    try:
        return ds.dataset(path, filesystem=filesystem, format="parquet")
    except (OSError, ValueError) as exc:
        raise StorageError(f"Could not read the Parquet files in {location.uri}: {exc}") from None


def count_rows(location: storage.Location, s3: S3Settings) -> dict[str, int | None]:
    """rows, ok, failed and dim of what an output holds, from Parquet metadata and two small columns."""
    import pyarrow.compute as pc

    dataset = open_dataset(location, s3)
    try:
        rows = dataset.count_rows()
        failed = dataset.count_rows(filter=pc.field("error").is_valid())
        first = dataset.head(1, columns=["features"], filter=pc.field("error").is_null())
    except (OSError, ValueError) as exc:
        raise StorageError(f"Could not read the Parquet files in {location.uri}: {exc}") from None
    dim = len(first.column("features")[0].as_py()) if first.num_rows else None
    return {"rows": rows, "ok": rows - failed, "failed": failed, "dim": dim}


def inspect(output: str, s3: S3Settings | None = None) -> Summary:
    """Summarise a finished output. Raises NotAnOutputError for anything that is not one."""
    import pyarrow.compute as pc

    s3 = s3 or S3Settings()
    location = storage.parse_location(output, "OUTPUT")
    if not location.is_s3 and not storage.has_content(location, s3):
        raise NotAnOutputError(f"{location.uri} does not exist or is empty.", "Give the --output folder of a run.")
    manifest = sink.read_manifest(location, s3)
    if manifest is None:
        raise NotAnOutputError(
            f"{location.uri} has no {sink.MANIFEST_NAME}: it is not a finished sparkyfruit output.",
            "The run that wrote it did not finish (or this is another folder); rerun encode with --overwrite.",
        )
    counts = count_rows(location, s3)  # the same reader that produced the manifest's counts
    expected = manifest.get("counts", {})
    if counts["rows"] != expected.get("rows") or counts["failed"] != expected.get("failed"):
        raise NotAnOutputError(
            f"{location.uri}: the Parquet files hold {counts['rows']} rows ({counts['failed']} failed) but "
            f"{sink.MANIFEST_NAME} records {expected.get('rows')} ({expected.get('failed')} failed).",
            "The output was changed after the run; rerun encode with --overwrite.",
        )
    dataset = open_dataset(location, s3)
    try:
        table = dataset.to_table(columns=["label"])
        failures = dataset.head(MAX_FAILURES_SHOWN, columns=["path", "error"], filter=pc.field("error").is_valid())
    except (OSError, ValueError) as exc:
        raise StorageError(f"Could not read the Parquet files in {location.uri}: {exc}") from None
    per_label = pc.value_counts(table["label"]).to_pylist()
    labels = {
        (entry["values"] if entry["values"] is not None else "(none)"): entry["counts"]
        for entry in sorted(per_label, key=lambda e: (e["values"] is None, e["values"] or ""))
    }
    return Summary(
        output=location.uri, rows=counts["rows"], ok=counts["ok"], failed=counts["failed"], dim=manifest["dim"],
        model=manifest["model"], image_size=manifest["image_size"], weights_sha256=manifest.get("weights_sha256"),
        mode=manifest["mode"], labels=labels, failures=failures.to_pylist(), manifest=manifest,
    )
