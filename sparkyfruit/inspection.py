"""What is in an output, read with pyarrow only: no JVM, no Spark, fast."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sparkyfruit import delta, locations, output_format
from sparkyfruit.errors import NotAnOutputError, StorageError
from sparkyfruit.output_format import MANIFEST_NAME, Manifest, ReduceManifest, count_rows, open_dataset
from sparkyfruit.s3_settings import S3Settings

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
    engine: str  # what ran the network, with its version: "litert 2.3.0"
    pooling: str | None  # how a feature map became the vector; None where the layer gave a vector
    layer: str | None  # a saved model's layer
    model_sha256: str | None  # a saved model's file
    column: str  # where the vectors are: "features", or "pca_features" in a reduce output
    labels: dict[str, int]
    failures: list[dict[str, str]]
    manifest: Manifest | ReduceManifest = field(repr=False)
    table: str = ""  # what holds the rows: "Delta Lake, version 3, 8 files" (or an earlier version's folder)

    def to_dict(self) -> dict:
        return asdict(self)


def inspect(output: str, s3: S3Settings | None = None) -> Summary:
    """Summarise a finished output. Raises NotAnOutputError for anything that is not one."""
    import pyarrow.compute as pc

    s3 = s3 or S3Settings()
    location = locations.parse_location(output, "OUTPUT")
    stored = output_format.finished_output(location, s3)
    manifest = stored.manifest
    column = output_format.vector_column(manifest)
    # a reduce output: the network is its source's
    network = manifest.source_manifest if isinstance(manifest, ReduceManifest) else manifest
    counts = count_rows(location, s3, column, stored.files)  # the same reader that produced the manifest's counts
    expected = manifest.counts
    if counts.rows != expected.rows or counts.failed != expected.failed:
        raise NotAnOutputError(
            f"{location.uri}: the Parquet files hold {counts.rows} rows ({counts.failed} failed) but "
            f"{MANIFEST_NAME} records {expected.rows} ({expected.failed} failed).",
            "The output was changed after the run; rerun encode with --overwrite.",
        )
    dataset = open_dataset(location, s3, stored.files)
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
        output=location.uri,
        rows=counts.rows,
        ok=counts.ok,
        failed=counts.failed,
        dim=manifest.dim,
        model=network.model,
        image_size=network.image_size,
        weights_sha256=network.weights_sha256,
        mode=network.mode,
        engine=" ".join(filter(None, (network.engine, network.engine_version))),
        pooling=network.pooling if network.pooled else None,
        layer=network.layer,
        model_sha256=network.model_sha256,
        column=column,
        labels=labels,
        failures=failures.to_pylist(),
        manifest=manifest,
        table=_describe_table(stored.table),
    )


def _describe_table(table: delta.TableSnapshot | None) -> str:
    if table is None:
        return "Parquet files of an earlier version, no Delta log (encode --resume converts it)"
    files = len(table.files)
    return f"Delta Lake, version {table.version}, {files:,} file{'s' if files != 1 else ''}"
