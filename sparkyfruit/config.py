"""The one settings model. Precedence: flag > env `SPARKYFRUIT_<NAME>` > TOML file (--config) > default.

Everything that can be checked before Spark starts is checked here, and fails with a ConfigError
(exit code 2) that says what was wrong, what was given, and what to do.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from sparkyfruit import locations, models, weights
from sparkyfruit.errors import ConfigError
from sparkyfruit.s3_settings import ENV_PREFIX, S3Settings, endpoint_shown

SAVED_MODEL_SIZE = 224  # a saved model's default --image-size, unless its input has a fixed size


class RunConfig(S3Settings):
    """Everything one `sparkyfruit encode` run needs."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, use_attribute_docstrings=True
    )
    _image_size_given: bool = PrivateAttr(default=False)

    mode: str = "df"
    """How images are read: 'df' (Spark binaryFile over S3A) or 'keys' (driver lists, executors GET)."""
    input: str
    """Images: s3://bucket/prefix, hdfs://namenode:port/path (df mode) or a local folder. Label = parent folder name."""
    output: str
    """Where the Parquet files and _sparkyfruit.json go: a local folder, s3://bucket/prefix or hdfs://namenode:port/path."""
    model: str = "mobilenet_v2"
    """Network: any backbone of keras.applications by its snake_case name (`sparkyfruit models` lists them,
    e.g. efficientnet_v2_b0, convnext_tiny, resnet50_v2), or a saved Keras model: a .keras/.h5 file or
    s3:// object, whose --layer gives the vectors."""
    alpha: float | None = None
    """Width multiplier of mobilenet, mobilenet_v2 and mobilenet_v3_* (default 1.0); 0.25 with mobilenet
    gives 256-d."""
    image_size: int | None = None
    """Images are resized to this many pixels square before the network. Default: the backbone's own size
    (224 for most, 299 for inception_v3 and xception, ...), or 224 for a saved model."""
    pooling: Literal["avg", "max"] = "avg"
    """How a feature map (height x width x channels) becomes one vector: global average or max pooling."""
    layer: str | None = None
    """With a saved model: the layer whose output is the vector (default: its last layer), e.g. a
    fine-tuned network's penultimate layer. A feature map is pooled (see pooling)."""
    preprocess: str | None = None
    """With a saved model: the backbone whose preprocess_input is applied to the RGB 0..255 pixels first
    (e.g. mobilenet_v2), or 'none' (default: the model gets 0..255 as it is)."""
    weights: str = models.IMAGENET
    """'imagenet' (Keras download), a local .h5/.keras file, an s3:// object, or 'none' (random; tests only).
    A saved model carries its own."""
    master: str = "local[*]"
    """Spark master URL: local[*], local[N], spark://host:port, yarn."""
    driver_memory: str = "2g"
    """Heap of the driver JVM that sparkyfruit starts (spark.driver.memory; on a local master it is also
    the executor). df mode's listing lives there: Spark keeps a file status per image, and a million
    images need more than Spark's default 1g."""
    batch_size: int = 64
    """Images per Arrow batch and per TensorFlow call. LiteRT's calls are smaller (16 images at 100 px, 3 at
    224), which XNNPACK runs faster."""
    engine: Literal["auto", "tensorflow", "litert"] = "auto"
    """What runs the network. auto: LiteRT (XNNPACK), with the network converted once on the driver and
    cached, where it converts and gives TensorFlow's vectors (cosine >= 0.99999 on a check batch), else
    TensorFlow; TensorFlow too where the driver sees a GPU. --resume keeps the output's engine."""
    images_per_task: int = 1024
    """Images per Spark task, at most. The progress bar moves as tasks finish, and small tasks keep every
    core busy to the end; each task also has a fixed cost (scheduling, a Python worker's hand-off), which
    larger tasks spread thinner. Unless shard_size is set, a task is about 5 s of one core's work, up to this."""
    shard_size: int | None = None
    """Images per shard: each shard is one Spark job whose files commit on their own and are recorded in the
    output, so a run that crashes loses at most the shard under way (`encode --resume` continues it). Unset:
    about 90 s of this cluster's work, at the rate its tasks encoded so far (the first is 2 tasks of 16
    images per core), at least two tasks per core. In df mode, whose tasks are cut once for the whole run, a
    set size is whole tasks: exact where a task size near two tasks per core divides it, else rounded up."""
    limit: int | None = None
    """Encode only the first N images in path order."""
    pattern: str | None = None
    """Glob on file names ('*', '?', '[abc]', '{a,b}'); default: jpg, jpeg, png in any letter case."""
    overwrite: bool = False
    """Replace an output that sparkyfruit wrote (default: refuse and touch nothing). A folder or prefix that
    holds any other file is refused either way, and nothing of it is deleted."""
    resume: bool = False
    """Continue an --output whose run did not finish (a crash, Ctrl-C: only the shards not yet committed are
    encoded), or add to a finished one the images not yet in it. Same model, size and weights as the output."""
    retry_failed: bool = False
    """With --resume: encode again the images whose rows failed (a store that refused them, a file since
    repaired). Each new row replaces the failed one in the same commit, so no image has two rows."""
    max_failed: float | None = None
    """The share of images (0 to 1) that may fail (unreadable, undecodable) before the run counts as failed
    (exit 1; the output is kept, `inspect` shows the failures). Unset: only a run where no image succeeded
    fails."""
    quiet: bool = False
    """No progress bar and no summary, errors only."""
    ship_env: bool = False
    """On a cluster master: pack this virtualenv (venv-pack, cached by content) and run the executors'
    Python from it. Off: the executors' own Python must have sparkyfruit installed."""
    ship_env_private: bool = False
    """With --ship-env on YARN: upload the packed environment with each run into the application's own
    staging folder on HDFS, readable by you only, instead of keeping one copy on HDFS that every user of the
    cluster can read (which YARN caches once per node). Files that hold credentials are never packed."""
    jvm_class_cache: bool = True
    """Keep start-up caches in ~/.cache/sparkyfruit: an archive of the driver JVM's classes (AppCDS, recorded
    as the first run's JVM exits and mapped by later runs, which then start faster) and, on a local master,
    the S3A jars Ivy resolved, put on the driver's class path by later runs (no resolution, and no copy of
    the AWS SDK bundle into each run's folder)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @classmethod
    def load(cls, config_file: str | Path | None = None, **flags: Any) -> RunConfig:
        """Resolve flags (None = not given) over env over the TOML file over defaults; raise ConfigError."""
        given = {name: value for name, value in flags.items() if value is not None}
        target: type[RunConfig] = cls
        if config_file is not None:
            _check_config_file(Path(config_file))
            target = type(cls.__name__, (cls,), {"model_config": {**cls.model_config, "toml_file": config_file}})
        try:
            return target(**given)
        except ValidationError as exc:
            raise config_error_from(exc) from None

    # ------------------------------------------------------------ field checks

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("df", "keys"):
            raise ConfigError(f"Unknown --mode {value!r}.", "Use --mode df (Spark reads the files) or --mode keys.")
        return value

    @field_validator("input")
    @classmethod
    def _input(cls, value: str) -> str:
        location = locations.parse_location(value, "--input")
        if location.is_local and os.path.isfile(location.path):
            raise ConfigError(
                f"--input is a file, not a folder: {value!r}.",
                "Give the folder of images (one subfolder per label) that holds it.",
            )
        if location.is_local and not os.path.isdir(location.path):
            raise ConfigError(
                f"--input folder does not exist: {value!r}.", "Check the path, or use s3://bucket/prefix."
            )
        return value

    @field_validator("output")
    @classmethod
    def _output(cls, value: str) -> str:
        locations.parse_location(value, "--output")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if models.is_saved_model(value):
            return _readable_file(value, "--model", "a saved Keras model (.keras or .h5)")
        if models.backbone(value) is None:
            close = models.closest_names(value)
            raise ConfigError(
                f"Unknown --model {value!r}: not a backbone of keras.applications, nor a .keras/.h5 file.",
                (f"Did you mean {' or '.join(close)}? " if close else "") + "`sparkyfruit models` lists every name.",
            )
        return value

    @field_validator("preprocess")
    @classmethod
    def _preprocess(cls, value: str | None) -> str | None:
        if value is not None and value != models.NO_PREPROCESSING and models.backbone(value) is None:
            raise ConfigError(
                f"Unknown --preprocess {value!r}.", "Give a backbone's name (see `sparkyfruit models`) or 'none'."
            )
        return value

    @field_validator("driver_memory")
    @classmethod
    def _driver_memory(cls, value: str) -> str:
        if not re.fullmatch(r"\d+[kmgt]", value.strip().lower()):
            raise ConfigError(f"driver_memory must be a size such as 2g or 4096m; got {value!r}.", "The default is 2g.")
        return value.strip().lower()

    @field_validator("image_size", "batch_size", "images_per_task")
    @classmethod
    def _in_range(cls, value: int | None, info) -> int | None:
        if value is None:
            return value  # image_size: the network's own, once the network is known
        low, high, unit = {
            "image_size": (32, 2048, " pixels"),
            "batch_size": (1, 4096, ""),
            "images_per_task": (1, 10_000_000, ""),
        }[info.field_name]
        if not low <= value <= high:
            flag = "--" + info.field_name.replace("_", "-")
            default = cls.model_fields[info.field_name].default
            raise ConfigError(
                f"{flag} must be between {low} and {high}{unit}; got {value}.",
                f"The default is {default}." if default is not None else "Leave it out for the network's own.",
            )
        return value

    @field_validator("limit", "shard_size")
    @classmethod
    def _positive_count(cls, value: int | None, info) -> int | None:
        if value is not None and value < 1:
            name, hint = {
                "limit": ("--limit", "Leave it out to encode all."),
                "shard_size": ("shard_size", "Leave it unset for the default."),
            }[info.field_name]
            raise ConfigError(f"{name} must be a positive number of images; got {value}.", hint)
        return value

    @field_validator("max_failed")
    @classmethod
    def _fraction(cls, value: float | None) -> float | None:
        if value is not None and not 0 <= value <= 1:
            raise ConfigError(
                f"--max-failed is a share of the images, from 0 to 1; got {value}.",
                "For example 0.01 lets 1% fail; leave it out to fail only when no image succeeded.",
            )
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            locations.compile_pattern(value)
        return value

    @field_validator("master")
    @classmethod
    def _master(cls, value: str) -> str:
        if not value.startswith(("local", "spark://", "yarn", "k8s://", "mesos://")):
            raise ConfigError(f"Unsupported --master {value!r}.", "Use local[*], local[N], spark://host:port or yarn.")
        return value

    @field_validator("weights")
    @classmethod
    def _weights_value(cls, value: str) -> str:
        if weights.kind_of(value) in (weights.IMAGENET, weights.RANDOM):
            return value
        return _readable_file(value, "--weights", "a .h5/.keras file, 'imagenet' (download) or 'none' (random)")

    @model_validator(mode="after")
    def _resume_or_overwrite(self) -> RunConfig:
        if self.resume and self.overwrite:
            raise ConfigError("--resume adds to an output and --overwrite replaces it; got both.", "Choose one.")
        if self.retry_failed and not self.resume:
            raise ConfigError(
                "--retry-failed encodes the failed rows of an existing output again, and needs --resume.",
                "Add --resume (the same command, on the same --output).",
            )
        return self

    @model_validator(mode="after")
    def _keys_mode_reads_s3_or_files(self) -> RunConfig:
        if self.mode == "keys" and self.input_location.is_hdfs:
            raise ConfigError(
                f"--mode keys reads S3 objects or local files, and --input is on HDFS: {self.input!r}.",
                "Use --mode df: Spark reads HDFS itself.",
            )
        return self

    @model_validator(mode="after")
    def _saved_model_or_backbone(self) -> RunConfig:
        self._image_size_given = self.image_size is not None
        if models.is_saved_model(self.model):
            if self.weights != models.IMAGENET or self.alpha is not None:
                raise ConfigError(
                    "--weights and --alpha apply to a backbone of keras.applications; a saved model (--model "
                    f"{self.model}) carries its own weights and width.",
                    "Leave them out.",
                )
            self.alpha = 1.0
            # a saved model with a fixed input size uses it where none is given (pipeline._network_shape)
            self.image_size = self.image_size or SAVED_MODEL_SIZE
            return self
        for name in ("layer", "preprocess"):
            if getattr(self, name) is not None:
                raise ConfigError(
                    f"--{name} applies to a saved model (--model path/to/model.keras); --model {self.model} is a "
                    "backbone, which always uses its own pooled output and preprocessing.",
                    f"Leave out --{name}, or give --model a .keras/.h5 file.",
                )
        info = models.backbone(self.model)
        self.image_size = self.image_size or info.default_size
        if self.image_size < info.min_size:
            raise ConfigError(
                f"--model {self.model} takes images of at least {info.min_size} pixels; "
                f"got --image-size {self.image_size}.",
                f"Its own size is {info.default_size}.",
            )
        if self.alpha is None:
            self.alpha = info.default_alpha
        if self.alpha <= 0:
            raise ConfigError(f"--alpha must be positive; got {self.alpha}.", "Typical values: 0.25, 0.5, 0.75, 1.0.")
        if not info.imagenet_alphas and self.alpha != info.default_alpha:
            raise ConfigError(
                f"--alpha applies to the mobilenet family, not {self.model}; got {self.alpha}.", "Leave it out."
            )
        if self.weights == models.IMAGENET and info.imagenet_alphas and self.alpha not in info.imagenet_alphas:
            raise ConfigError(
                f"Keras has no ImageNet weights for {self.model} with --alpha {self.alpha}.",
                f"Use one of {', '.join(map(str, info.imagenet_alphas))}, or give --weights FILE.",
            )
        return self

    # ------------------------------------------------------------ derived values

    @property
    def input_location(self) -> locations.Location:
        return locations.parse_location(self.input, "--input")

    @property
    def output_location(self) -> locations.Location:
        return locations.parse_location(self.output, "--output")

    @property
    def master_is_local(self) -> bool:
        """A local master: the driver JVM is also the executor, and workers run this very Python."""
        return self.master.startswith("local")

    @property
    def master_is_yarn(self) -> bool:
        """YARN (EMR's resource manager): the cluster is found through HADOOP_CONF_DIR."""
        return self.master == "yarn"

    @property
    def file_pattern(self) -> str:
        return self.pattern or locations.default_pattern()

    @property
    def is_saved_model(self) -> bool:
        return models.is_saved_model(self.model)

    @property
    def model_label(self) -> str:
        """How the network is written into a manifest: a backbone's name, or a saved model's URI."""
        return weights.label(self.model) if self.is_saved_model else self.model

    @property
    def weights_label(self) -> str:
        """How the weights are written into a manifest (a saved model's are in its file)."""
        return weights.INCLUDED if self.is_saved_model else weights.label(self.weights)

    def network(self) -> dict[str, Any]:
        """What makes the vectors: the settings that a manifest records and --resume must find unchanged."""
        return {
            "model": self.model_label,
            "alpha": self.alpha,
            "image_size": self.image_size,
            "weights": self.weights_label,
            "pooling": self.pooling,
            "layer": self.layer,
            "preprocess": self.preprocess,
        }

    @property
    def dim(self) -> int | None:
        """The vector's length where it is known before any network is built: a backbone at its own width
        (else the built network says it)."""
        info = None if self.is_saved_model else models.BACKBONES.get(self.model)
        return info.dim if info is not None and self.alpha == info.default_alpha else None

    @property
    def needs_s3a(self) -> bool:
        """Whether Spark itself touches S3: df mode reading it. keys mode's GETs, an s3:// weights file and
        the output's files (written by the tasks with pyarrow) go around it, and a JVM without S3A starts
        faster."""
        return self.mode == "df" and self.input_location.is_s3 and self.spark_s3_scheme == "s3a"

    @property
    def image_size_given(self) -> bool:
        """Whether --image-size (or its env or file setting) was given, rather than the network's own."""
        return self._image_size_given

    @property
    def env_kept_on_hdfs(self) -> bool:
        """--ship-env on YARN keeps one copy of the packed environment on HDFS, readable by every user of the
        cluster, unless ship_env_private asks for Spark's per-run upload into the application's own folder."""
        return self.ship_env and self.master_is_yarn and not self.ship_env_private

    def redacted(self) -> dict[str, Any]:
        """The resolved settings, safe to print or store: no credentials ever live here (an endpoint URL
        that holds a user name or password is refused)."""
        return self.model_dump(mode="json")


def _readable_file(value: str, flag: str, what: str) -> str:
    """A local .h5/.keras file that exists (resolved to an absolute path), or an s3:// URI (checked when
    it is downloaded). Raises ConfigError."""
    if locations.is_s3_uri(value):
        locations.parse_location(value, flag)
        return value
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(f"{flag} file is missing or unreadable: {value!r}.", f"Give {what}, or an s3:// object.")
    if not path.name.lower().endswith(models.KERAS_FILE_SUFFIXES):
        raise ConfigError(f"{flag} file must end in .h5 or .keras; got {value!r}.", "Keras loads only those.")
    return str(path.resolve())


def _check_config_file(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"--config file not found: {str(path)!r}.", "Give the path of a TOML file.")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config file {str(path)!r} is not valid TOML: {exc}.", "Fix the file.") from None
    unknown = sorted(set(data) - set(RunConfig.model_fields))
    if unknown:
        raise ConfigError(
            f"--config file {str(path)!r} has unknown settings: {', '.join(unknown)}.",
            f"Known settings: {', '.join(RunConfig.model_fields)}.",
        )


def config_error_from(exc: ValidationError) -> ConfigError:
    """One clear line from pydantic's report: the first problem, what was given, where it can be set."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "setting"
    flag = "--" + name.replace("_", "-")
    where = f"{flag}, env {ENV_PREFIX}{name.upper()}, or '{name}' in the --config file"
    if error["type"] == "missing":
        return ConfigError(f"Missing {flag}.", f"Set it with {where}.")
    message = error["msg"].removeprefix("Value error, ")
    return ConfigError(f"Invalid {flag}: {message} (got {error.get('input')!r}).", f"Set it with {where}.")


def settings_with_sources(
    config_file: str | Path | None = None, flags: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Every RunConfig setting as {name, value, source, help}: where its value comes from (encode's `flags`,
    {setting: value} as given, then env, the file, or the default), with the endpoint's user:password part
    hidden."""
    flags = flags or {}
    file_values: dict[str, Any] = {}
    if config_file is not None:
        _check_config_file(Path(config_file))
        file_values = tomllib.loads(Path(config_file).read_text(encoding="utf-8"))
    rows = []
    for name, info in RunConfig.model_fields.items():
        env_name = f"{ENV_PREFIX}{name.upper()}"
        if name in flags:
            value, source = flags[name], f"flag --{name.replace('_', '-')}"
        elif env_name in os.environ:
            value, source = os.environ[env_name], f"env {env_name}"
        elif name in file_values:
            value, source = file_values[name], f"file {config_file}"
        elif info.is_required():
            value, source = None, "required (no default)"
        else:
            value, source = info.default, "default"
        if name == "s3_endpoint" and value:
            value = endpoint_shown(str(value))
        rows.append({"name": name, "value": value, "source": source, "help": info.description or ""})
    return rows


def reference_markdown() -> str:
    """The table of docs/configuration.md, generated from this model (tests/test_docs.py keeps them equal)."""
    lines = ["| setting | env | flag | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for name, info in RunConfig.model_fields.items():
        default = "required" if info.is_required() else "unset" if info.default is None else f"`{info.default}`"
        flag = f"`--{name.replace('_', '-')}`" if name not in NO_FLAG else ""
        meaning = " ".join((info.description or "").split()).replace("|", "\\|")
        lines.append(f"| `{name}` | `{ENV_PREFIX}{name.upper()}` | {flag} | {default} | {meaning} |")
    return "\n".join(lines)


# settings for env/TOML only: rarely changed, and the encode --help stays readable
NO_FLAG = {
    "ship_env_private",
    "s3_retry_mode",
    "s3_max_attempts",
    "s3_connect_timeout",
    "s3_read_timeout",
    "fetch_concurrency",
    "jvm_class_cache",
    "images_per_task",
    "shard_size",
    "driver_memory",
}
