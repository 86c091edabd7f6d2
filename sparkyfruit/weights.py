"""The --weights setting: what kind of value it is, how it is labelled in a manifest, and the local file
that the workers load, made ready on the driver before Spark starts.

Kinds: `imagenet` (Keras's published file, downloaded once into Keras's cache by the driver), `none` (a
random, seeded network), an `s3://` object (downloaded by the driver), or a local file. Every file is
shipped to the executors with the job, so no worker needs the network or the driver's file system.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sparkyfruit import locations, models, storage
from sparkyfruit.errors import ConfigError, StorageError

IMAGENET, RANDOM, S3, FILE = "imagenet", "random", "s3", "file"
DOWNLOAD_TIMEOUT_SECONDS = 30


def kind_of(value: str) -> str:
    """imagenet, random, s3 or file."""
    if value == models.IMAGENET:
        return IMAGENET
    if value == models.RANDOM:
        return RANDOM
    return S3 if locations.is_s3_uri(value) else FILE


def label(value: str) -> str:
    """How a weights setting is written into a manifest (and compared by --resume)."""
    return locations.parse_location(value).uri if kind_of(value) == FILE else value


@dataclass(frozen=True)
class StagedWeights:
    """What the workers get: a local file to ship (None for a random network) and its sha256."""

    file: Path | None
    sha256: str | None


def keras_cache() -> Path:
    """Keras's own cache folder for application weights ($KERAS_HOME/models, else ~/.keras/models, else
    /tmp/.keras/models where the home folder is read-only), as keras.utils.get_file picks it."""
    base = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    if not os.environ.get("KERAS_HOME") and not os.access(Path.home(), os.W_OK):
        base = Path(tempfile.gettempdir()) / ".keras"
    return base / "models"


def stage(config, announce=None) -> StagedWeights:
    """Make the weights of `config` a local file, before Spark starts. Files are staged under a
    content-addressed name, so Spark can ship them and a changed file never collides with an earlier one.
    `announce` (a print function) is told about a download. Raises ConfigError or StorageError."""
    kind = kind_of(config.weights)
    if kind == RANDOM:
        return StagedWeights(None, None)
    staging = Path(tempfile.gettempdir()) / "sparkyfruit-weights"
    staging.mkdir(exist_ok=True)
    downloaded = None
    if kind == IMAGENET:
        source = fetch_imagenet(
            models.MODELS[config.model].imagenet_download(config.alpha, config.image_size), announce
        )
    elif kind == S3:
        location = locations.parse_location(config.weights, "--weights")
        downloaded = source = storage.download(location, staging / f".{os.getpid()}-{Path(location.key).name}", config)
    else:
        source = Path(config.weights)
    digest = models.sha256_of(source)
    staged = staging / f"{digest[:16]}-{source.name.removeprefix(f'.{os.getpid()}-')}"
    if not staged.exists():
        shutil.copyfile(source, staged)
    if downloaded is not None:
        downloaded.unlink()
    return StagedWeights(staged, digest)


def fetch_imagenet(download: models.WeightsDownload, announce=None) -> Path:
    """The file in Keras's cache, downloaded first if it is not there (written whole or not at all)."""
    cached = keras_cache() / download.file_name
    if cached.is_file() and cached.stat().st_size > 0:
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{cached.name}.{os.getpid()}.part")
    try:
        # a new opener each time: it reads the proxy settings of the environment now, not at first use
        with urllib.request.build_opener().open(download.url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            if announce:  # told once the server answered, so that offline the error is the only line
                announce(f"Downloading the ImageNet weights {download.url} into {cached.parent} (once)...")
            with open(partial, "wb") as target:
                shutil.copyfileobj(response, target, 1 << 20)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"--weights imagenet: could not download {download.url} ({reason}); this machine seems to have no network.",
            f"Download that file where there is one and pass --weights path/to/{download.file_name} (or any "
            ".h5/.keras file of the same network).",
        ) from None
    if download.md5 and _md5(partial) != download.md5:
        partial.unlink(missing_ok=True)
        raise StorageError(
            f"The download of {download.url} is damaged (its md5 is not the published one).",
            "Run again; if it persists, download the file by hand and pass --weights FILE.",
        )
    os.replace(partial, cached)
    return cached


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
