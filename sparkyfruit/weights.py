"""The --weights setting: what kind of value it is, how it is labelled in a manifest, and the local file
that the workers load, made ready on the driver before Spark starts.

Kinds: `imagenet` (Keras's published file, downloaded once into Keras's cache by the driver), `none` (a
random, seeded network), an `s3://` object (downloaded by the driver), or a local file. Every file is
shipped to the executors with the job, so no worker needs the network or the driver's file system.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sparkyfruit import locations, models, scratch, storage
from sparkyfruit.errors import ConfigError, StorageError

IMAGENET, RANDOM, S3, FILE = "imagenet", "random", "s3", "file"
# a saved model's manifest `weights`: they are in the model file
INCLUDED = "included"
DOWNLOAD_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class WeightsDownload:
    """The file Keras downloads for `weights="imagenet"` (no top): its name in Keras's cache, its URL and
    the hash Keras checks (md5, or sha256 where it has 64 hex digits)."""

    file_name: str
    url: str
    file_hash: str | None = None


def kind_of(value: str) -> str:
    """imagenet, random, s3 or file."""
    if value == models.IMAGENET:
        return IMAGENET
    if value == models.RANDOM:
        return RANDOM
    return S3 if locations.is_s3_uri(value) else FILE


def label(value: str) -> str:
    """How a weights setting (or a saved model's file) is written into a manifest, and compared by --resume."""
    return locations.parse_location(value).uri if kind_of(value) == FILE else value


def source_of(model: str, weights: str) -> str:
    """The file (or 'imagenet', 'none') that the workers load: a saved model's own file, else the weights."""
    return model if models.is_saved_model(model) else weights


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


def stage(value: str, s3, *, model: str, alpha: float, image_size: int, announce=None) -> StagedWeights:
    """Make `value` (a weights setting, or a saved model's file: see `source_of`) a local file, before
    Spark starts. Files are staged under a content-addressed name, so Spark can ship them and a changed
    file never collides with an earlier one. `announce` (a print function) is told about a download.
    Raises ConfigError or StorageError."""
    kind = kind_of(value)
    if kind == RANDOM:
        return StagedWeights(None, None)
    staging = scratch.folder("weights")
    downloaded = None
    if kind == IMAGENET:
        source = fetch_imagenet(imagenet_download(model, alpha, image_size), announce)
    elif kind == S3:
        location = locations.parse_location(value, "--weights")
        downloaded = source = storage.download(location, staging / f".{os.getpid()}-{Path(location.key).name}", s3)
    else:
        source = Path(locations.parse_location(value).path)
    digest = models.sha256_of(source)
    staged = staging / f"{digest[:16]}-{source.name.removeprefix(f'.{os.getpid()}-')}"
    # what is shipped is checked, not assumed: a copy cut short by a kill, or a file put there by anything
    # else, is replaced; a new copy takes its name only once whole (a rename), and only if it matches
    if not staged.is_file() or models.sha256_of(staged) != digest:
        partial = staging / f".{os.getpid()}-partial-{staged.name}"
        shutil.copyfile(source, partial)
        if models.sha256_of(partial) != digest:
            partial.unlink()
            raise StorageError(
                f"the weights file {value} changed while it was being copied; nothing was shipped.",
                "Run again once the file is no longer being written.",
            )
        os.replace(partial, staged)
    if downloaded is not None:
        downloaded.unlink()
    return StagedWeights(staged, digest)


def stage_for(config, announce=None) -> StagedWeights:
    """`stage` of what a run's workers load: its saved model's file, or its backbone's weights (`config`: a
    RunConfig, which also holds the S3 settings)."""
    return stage(
        source_of(config.model, config.weights),
        config,
        model=config.model,
        alpha=config.alpha,
        image_size=config.image_size,
        announce=announce,
    )


class _Asked(Exception):
    """Raised in place of Keras's download, once Keras has said which file it wants."""


def imagenet_download(model: str, alpha: float, image_size: int) -> WeightsDownload:
    """The no-top ImageNet weights file that Keras itself asks for when it builds this backbone: the
    network is built with its download intercepted (Keras names its files by rules of its own for each
    family, size and alpha). Remembered per Keras version in ~/.cache/sparkyfruit, so only the first run
    of a network imports TensorFlow on the driver for it. Raises ConfigError where Keras refuses the
    network (an input size its ImageNet weights do not take)."""
    from sparkyfruit.output_format import library_version
    from sparkyfruit.spark.class_cache import cache_dir

    remembered_in = cache_dir() / "imagenet-downloads.json"
    key = f"keras {library_version('keras')} {model} alpha {alpha} size {image_size}"
    try:
        remembered = json.loads(remembered_in.read_text())
    except (OSError, ValueError):
        remembered = {}
    if key in remembered:
        return WeightsDownload(**remembered[key])
    asked = _ask_keras(model, alpha, image_size)
    remembered[key] = dataclasses.asdict(asked)
    try:
        remembered_in.parent.mkdir(parents=True, exist_ok=True)
        partial = remembered_in.with_name(f".{remembered_in.name}.{os.getpid()}")
        partial.write_text(json.dumps(remembered, indent=1))
        os.replace(partial, remembered_in)
    except OSError:
        pass  # a read-only home: ask Keras again next time
    return asked


def _ask_keras(model: str, alpha: float, image_size: int) -> WeightsDownload:
    import warnings

    models.import_tensorflow()
    import keras
    from keras.src.utils import file_utils

    asked: list[WeightsDownload] = []

    def capture(fname=None, origin=None, md5_hash=None, file_hash=None, **_):
        asked.append(WeightsDownload(fname, origin, file_hash or md5_hash))
        raise _Asked

    backbone = models.backbone(model)
    spec = models.ModelSpec(model, alpha, image_size, IMAGENET, 1)
    real = file_utils.get_file
    file_utils.get_file = capture
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Keras's notes on sizes other than the weights' own
            getattr(keras.applications, backbone.application)(
                weights=IMAGENET, **models.backbone_kwargs(spec, backbone)
            )
    except _Asked:
        return asked[0]
    except ValueError as exc:
        raise ConfigError(
            f"Keras refuses --model {model} with ImageNet weights at --image-size {image_size}: {exc}",
            "Use the network's own size (see `sparkyfruit models`), or --weights FILE.",
        ) from None
    finally:
        file_utils.get_file = real
    raise ConfigError(f"Keras asked for no ImageNet weights file for --model {model}.", "Give --weights FILE.")


def fetch_imagenet(download: WeightsDownload, announce=None) -> Path:
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
            f"Download that file where there is one and pass --weights path/to/{download.url.rsplit('/', 1)[-1]} "
            "(or any .h5/.keras file of the same network).",
        ) from None
    if download.file_hash and _digest(partial, download.file_hash) != download.file_hash:
        partial.unlink(missing_ok=True)
        raise StorageError(
            f"The download of {download.url} is damaged (its hash is not the published one).",
            "Run again; if it persists, download the file by hand and pass --weights FILE.",
        )
    os.replace(partial, cached)
    return cached


def _digest(path: Path, published: str) -> str:
    """The file's hash, of the kind Keras publishes: sha256 for 64 hex digits, else md5."""
    digest = hashlib.sha256() if len(published) == 64 else hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
