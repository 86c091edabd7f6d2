"""The on-disk contract of an output: its manifest, which files are sparkyfruit's, and how it is read.

An output is a folder (or S3 prefix) of Parquet files written by Spark, with `_sparkyfruit.json` written
last. Whatever else sparkyfruit or Spark leaves there (checksums, `_SUCCESS`, committer work folders, the
PCA model of `reduce`) is listed in OWN_FILES; anything outside it belongs to the user and is never
deleted.
"""

from __future__ import annotations

import json
import re

from sparkyfruit import storage
from sparkyfruit.config import S3Settings
from sparkyfruit.errors import NotAnOutputError, StorageError

MANIFEST_NAME = "_sparkyfruit.json"
# while --resume adds files, the finished manifest is moved here: the output reads as unfinished, and a
# resume that was killed can itself be resumed
RESUMING_NAME = "_sparkyfruit.resuming.json"
ENCODE_FORMAT = "sparkyfruit-output/1"
REDUCE_FORMAT = "sparkyfruit-reduce/1"

OWN_FILES = re.compile(
    r"_sparkyfruit(\.resuming)?\.json(\.tmp)?"  # the manifests, and the temporary file of an atomic write
    r"|\.?_SUCCESS(\.crc)?"  # the committers' success marker (and the local file system's checksum of it)
    r"|\.?part-[^/]+\.parquet(\.crc)?"  # Spark's data files and their checksums
    r"|(_temporary|__magic[^/]*|_pca_model)/.+"  # committers' work folders; the PCA model of `reduce`
)
SHOWN_FOREIGN = 3


def is_own_file(name: str) -> bool:
    """Whether a file (its path relative to the output) is one that sparkyfruit or Spark writes."""
    return OWN_FILES.fullmatch(name) is not None


def foreign_files(names: list[str]) -> list[str]:
    return [name for name in names if not is_own_file(name)]


def shown(location: storage.Location) -> str:
    """How a location is written back to the user: the plain path for a local one."""
    return location.uri if location.is_s3 else location.path


def check_writable(location: storage.Location, s3: S3Settings, *, overwrite: bool, resume: bool = False,
                   flag: str = "--output") -> None:
    """Before any work: a command may write to `location` only if it is empty, or holds only what
    sparkyfruit wrote and `overwrite` (replace) or `resume` (add) is given. Raises ConfigError otherwise."""
    from sparkyfruit.errors import ConfigError

    if not location.is_s3 and storage.is_local_file(location):
        raise ConfigError(f"{flag} {shown(location)} is a file, not a folder; nothing was touched.",
                          f"Give {flag} a folder (new or empty) for the output.")
    names = storage.list_files(location, s3)
    foreign = foreign_files(names)
    if foreign:
        raise ConfigError(
            f"{flag} {shown(location)} holds files that sparkyfruit did not write ({_first(foreign)}); "
            "nothing was touched.",
            f"Choose another {flag}: sparkyfruit only writes into an empty folder or replaces (--overwrite) its "
            "own output.",
        )
    if names and not (overwrite or resume):
        raise ConfigError(
            f"{flag} {shown(location)} already holds a sparkyfruit output; nothing was touched.",
            "Pass --overwrite to replace it" + (", --resume to add new images to it," if flag == "--output" else "")
            + f" or choose another {flag}.",
        )


def _first(names: list[str]) -> str:
    listed = ", ".join(names[:SHOWN_FOREIGN])
    return listed + (f" and {len(names) - SHOWN_FOREIGN} more" if len(names) > SHOWN_FOREIGN else "")


def read_manifest(location: storage.Location, s3: S3Settings, name: str = MANIFEST_NAME) -> dict | None:
    text = storage.read_text(location.child(name), s3)
    return json.loads(text) if text is not None else None


def write_manifest(location: storage.Location, manifest: dict, s3: S3Settings) -> None:
    storage.write_text(location.child(MANIFEST_NAME), json.dumps(manifest, indent=2), s3)


def finished_manifest(location: storage.Location, s3: S3Settings) -> dict:
    """The manifest of a finished output; for anything else, a NotAnOutputError that says what it is."""
    manifest = read_manifest(location, s3)
    if manifest is None:
        raise not_an_output(location, s3)
    return manifest


def not_an_output(location: storage.Location, s3: S3Settings) -> NotAnOutputError:
    """What a location without a manifest is (a file, a folder of images, an unfinished run, something
    else), with advice that fits it."""
    where = shown(location)
    if not location.is_s3 and storage.is_local_file(location):
        return NotAnOutputError(f"{where} is a file, not an output folder.",
                                "Give the --output folder of a `sparkyfruit encode` run.")
    names = storage.list_files(location, s3)
    if not names:
        return NotAnOutputError(f"{where} does not exist or is empty.",
                                "Give the --output folder of a `sparkyfruit encode` run.")
    foreign = foreign_files(names)
    if not foreign and RESUMING_NAME in names:
        return NotAnOutputError(f"{where} is an output whose last encode --resume did not finish.",
                                "Continue it: rerun that encode with --resume.")
    if not foreign:
        return NotAnOutputError(f"{where} has no {MANIFEST_NAME}: the encode run that wrote it did not finish.",
                                "Rerun that encode with --overwrite.")
    if any(name.rsplit(".", 1)[-1].lower() in storage.IMAGE_EXTENSIONS for name in foreign):
        return NotAnOutputError(f"{where} is a folder of images, not a sparkyfruit output.",
                                f"Encode it first: sparkyfruit encode --input {where} --output OUT.")
    return NotAnOutputError(f"{where} is not a sparkyfruit output: it has no {MANIFEST_NAME} and holds "
                            f"{_first(foreign)}.", "Give the --output folder of a `sparkyfruit encode` run.")


def vector_column(manifest: dict) -> str:
    """The column that holds the vectors: `features` (encode) or `pca_features` (reduce)."""
    return "pca_features" if manifest.get("format") == REDUCE_FORMAT else "features"


def open_dataset(location: storage.Location, s3: S3Settings):
    """The Parquet files of an output as a pyarrow dataset (files starting with '_' or '.' are skipped)."""
    import pyarrow.dataset as ds

    filesystem, path = storage.pyarrow_filesystem(location, s3)
    try:
        return ds.dataset(path, filesystem=filesystem, format="parquet")
    except (OSError, ValueError) as exc:
        raise StorageError(f"Could not read the Parquet files in {location.uri}: {exc}") from None


def count_rows(location: storage.Location, s3: S3Settings, column: str = "features") -> dict[str, int | None]:
    """rows, ok, failed and dim of what an output holds, from Parquet metadata and two small columns."""
    import pyarrow.compute as pc

    dataset = open_dataset(location, s3)
    try:
        rows = dataset.count_rows()
        failed = dataset.count_rows(filter=pc.field("error").is_valid())
        first = dataset.head(1, columns=[column], filter=pc.field(column).is_valid())
    except (OSError, ValueError) as exc:
        raise StorageError(f"Could not read the Parquet files in {location.uri}: {exc}") from None
    dim = len(first.column(column)[0].as_py()) if first.num_rows else None
    return {"rows": rows, "ok": rows - failed, "failed": failed, "dim": dim}
