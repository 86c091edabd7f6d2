"""The networks: every backbone in the installed `keras.applications` by a snake_case name, or a saved Keras
model with a layer to read; how a worker builds either, and what a built one outputs.

Everything at module level is light (no TensorFlow), so `--help` and config validation can use it: the
backbones of the Keras this was written against are cached in BACKBONES (tests/test_models.py checks it
against the installed Keras, building the networks). A name outside it is looked up in the installed
Keras itself, which imports it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

# Weights values that are not paths.
IMAGENET = "imagenet"
RANDOM = "none"  # the setting's word for a random (seeded) network
RANDOM_SEED = 0
POOLINGS = ("avg", "max")
NO_PREPROCESSING = "none"
# --model values that name a saved Keras model rather than a backbone
KERAS_FILE_SUFFIXES = (".keras", ".h5")
# a ModelSpec's name for a saved model; its file is the spec's `weights`
SAVED_MODEL = "saved-model"
# Keras's smallest input side for most backbones; the others say theirs in BACKBONES
MIN_SIZE = 32


@dataclass(frozen=True)
class Backbone:
    """One network of keras.applications, as `sparkyfruit models` lists it."""

    application: str  # its function in keras.applications, e.g. "EfficientNetV2B0"
    keras_module: str  # its module in keras.applications, which holds its preprocess_input
    default_size: int  # the input side Keras's ImageNet weights were trained at
    dim: int  # length of the pooled vector (at the default alpha)
    parameters: int  # without the classifier: the size of its weights is 4 bytes each
    min_size: int = MIN_SIZE
    imagenet_alphas: tuple[float, ...] = ()  # width multipliers with ImageNet weights; () = no alpha parameter

    @property
    def name(self) -> str:
        return snake_name(self.application)

    @property
    def default_alpha(self) -> float:
        return 1.0

    @property
    def weights_megabytes(self) -> float:
        return self.parameters * 4 / 1e6


def snake_name(application: str) -> str:
    """keras.applications' function name -> its --model name: MobileNetV2 -> mobilenet_v2, ResNet50V2 ->
    resnet50_v2, EfficientNetV2B0 -> efficientnet_v2_b0, ConvNeXtTiny -> convnext_tiny, NASNetLarge -> nasnet_large."""
    glued = application.replace("NeXt", "next").replace("Net", "net")
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", glued).lower()


_B = Backbone
# the Keras release whose keras.applications BACKBONES holds whole; tests/test_models.py checks both
CACHED_KERAS = "3.15"
# Keras 3.15's keras.applications, read off the built networks by tests/test_models.py
BACKBONES: dict[str, Backbone] = {
    backbone.name: backbone
    for backbone in (
        _B("ConvNeXtBase", "convnext", 224, 1024, 87_566_464),
        _B("ConvNeXtLarge", "convnext", 224, 1536, 196_230_336),
        _B("ConvNeXtSmall", "convnext", 224, 768, 49_454_688),
        _B("ConvNeXtTiny", "convnext", 224, 768, 27_820_128),
        _B("ConvNeXtXLarge", "convnext", 224, 2048, 348_147_968),
        _B("DenseNet121", "densenet", 224, 1024, 7_037_504),
        _B("DenseNet169", "densenet", 224, 1664, 12_642_880),
        _B("DenseNet201", "densenet", 224, 1920, 18_321_984),
        _B("EfficientNetB0", "efficientnet", 224, 1280, 4_049_571),
        _B("EfficientNetB1", "efficientnet", 240, 1280, 6_575_239),
        _B("EfficientNetB2", "efficientnet", 260, 1408, 7_768_569),
        _B("EfficientNetB3", "efficientnet", 300, 1536, 10_783_535),
        _B("EfficientNetB4", "efficientnet", 380, 1792, 17_673_823),
        _B("EfficientNetB5", "efficientnet", 456, 2048, 28_513_527),
        _B("EfficientNetB6", "efficientnet", 528, 2304, 40_960_143),
        _B("EfficientNetB7", "efficientnet", 600, 2560, 64_097_687),
        _B("EfficientNetV2B0", "efficientnet_v2", 224, 1280, 5_919_312),
        _B("EfficientNetV2B1", "efficientnet_v2", 240, 1280, 6_931_124),
        _B("EfficientNetV2B2", "efficientnet_v2", 260, 1408, 8_769_374),
        _B("EfficientNetV2B3", "efficientnet_v2", 300, 1536, 12_930_622),
        _B("EfficientNetV2L", "efficientnet_v2", 480, 1280, 117_746_848),
        _B("EfficientNetV2M", "efficientnet_v2", 480, 1280, 53_150_388),
        _B("EfficientNetV2S", "efficientnet_v2", 384, 1280, 20_331_360),
        _B("InceptionResNetV2", "inception_resnet_v2", 299, 1536, 54_336_736, min_size=75),
        _B("InceptionV3", "inception_v3", 299, 2048, 21_802_784, min_size=75),
        _B("MobileNet", "mobilenet", 224, 1024, 3_228_864, imagenet_alphas=(0.25, 0.5, 0.75, 1.0)),
        _B("MobileNetV2", "mobilenet_v2", 224, 1280, 2_257_984, imagenet_alphas=(0.35, 0.5, 0.75, 1.0, 1.3, 1.4)),
        _B("MobileNetV3Large", "mobilenet_v3", 224, 960, 2_996_352, imagenet_alphas=(0.75, 1.0)),
        _B("MobileNetV3Small", "mobilenet_v3", 224, 576, 939_120, imagenet_alphas=(0.75, 1.0)),
        _B("NASNetLarge", "nasnet", 331, 4032, 84_916_818),
        _B("NASNetMobile", "nasnet", 224, 1056, 4_269_716),
        _B("ResNet101", "resnet", 224, 2048, 42_658_176),
        _B("ResNet101V2", "resnet_v2", 224, 2048, 42_626_560),
        _B("ResNet152", "resnet", 224, 2048, 58_370_944),
        _B("ResNet152V2", "resnet_v2", 224, 2048, 58_331_648),
        _B("ResNet50", "resnet", 224, 2048, 23_587_712),
        _B("ResNet50V2", "resnet_v2", 224, 2048, 23_564_800),
        _B("VGG16", "vgg16", 224, 512, 14_714_688),
        _B("VGG19", "vgg19", 224, 512, 20_024_384),
        _B("Xception", "xception", 299, 2048, 20_861_480, min_size=71),
    )
}


@functools.cache
def installed_backbones() -> dict[str, tuple[str, str]]:
    """name -> (application, module) of every backbone in the installed keras.applications (imports Keras):
    each public network there whose defining module has a public preprocess_input."""
    import_tensorflow()
    import keras

    found = {}
    for application in dir(keras.applications):
        function = getattr(keras.applications, application)
        module = getattr(function, "__module__", "").rsplit(".", 1)[-1]
        if application[:1].isupper() and hasattr(getattr(keras.applications, module, None), "preprocess_input"):
            found[snake_name(application)] = (application, module)
    return dict(sorted(found.items()))


def backbone(name: str) -> Backbone | None:
    """The backbone called `name`: from the cache, else from the installed Keras (its size and dimension
    then unknown until built: 224 and 0), else None."""
    if name in BACKBONES:
        return BACKBONES[name]
    if cache_is_whole():  # a typo is answered without importing TensorFlow
        return None
    installed = installed_backbones().get(name)
    return Backbone(installed[0], installed[1], 224, 0, 0) if installed else None


def cache_is_whole() -> bool:
    """Whether the installed Keras is the release BACKBONES was read from (its version, read without
    importing it): then a name outside the cache is no backbone."""
    from importlib import metadata

    try:
        version = metadata.version("keras")
    except metadata.PackageNotFoundError:
        return False
    return version == CACHED_KERAS or version.startswith(CACHED_KERAS + ".")


def listing() -> list[Backbone]:
    """Every backbone of the installed keras.applications: the cache, where it is whole; else Keras is
    imported, and one that the cache lacks is built once, without weights, to read its dimension and size."""
    if cache_is_whole():
        return list(BACKBONES.values())
    listed = []
    for name, (application, module) in installed_backbones().items():
        if name in BACKBONES and BACKBONES[name].application == application:
            listed.append(BACKBONES[name])
            continue
        import keras

        built = getattr(keras.applications, application)(include_top=False, weights=None, pooling="avg")
        side = built.input_shape[1] or 224
        listed.append(Backbone(application, module, side, int(built.output_shape[-1]), built.count_params()))
    return listed


def closest_names(name: str, count: int = 3) -> list[str]:
    import difflib

    return difflib.get_close_matches(name.lower().replace("-", "_"), list(BACKBONES), n=count, cutoff=0.5)


def is_saved_model(value: str) -> bool:
    """Whether a --model value is a saved Keras model (a path or s3:// URI of a .keras/.h5 file)."""
    return value.lower().endswith(KERAS_FILE_SUFFIXES)


@dataclass(frozen=True)
class ModelSpec:
    """Everything a worker needs to build the same network; small and picklable."""

    name: str  # a backbone's name, or SAVED_MODEL (then `weights` is the model file)
    alpha: float
    image_size: int
    weights: str  # "imagenet", "none", or a local file path valid on the worker
    batch_size: int
    pooling: str = "avg"
    layer: str | None = None  # a saved model's layer whose output is the vector
    preprocess: str | None = None  # the backbone whose preprocess_input applies; None = the network's own
    engine: str = "tensorflow"  # what runs it (engines.py): tensorflow builds it, litert loads `converted`
    converted: str | None = None  # litert: the converted model's file on the worker

    @classmethod
    def of(cls, model: str, weights: str, batch_size: int, network) -> ModelSpec:
        """The spec of a --model value (a backbone's name, or a saved model's path or URI, whose file then
        is `weights`) with the rest of its `network`: a RunConfig or a Manifest, which name them alike."""
        name = SAVED_MODEL if is_saved_model(model) else model
        return cls(
            name,
            network.alpha,
            network.image_size,
            weights,
            batch_size,
            network.pooling,
            network.layer,
            network.preprocess,
        )


@contextlib.contextmanager
def native_stderr_silenced():
    """TensorFlow's native code logs an INFO banner on import that TF_CPP_MIN_LOG_LEVEL does not reach;
    in a worker it repeats once per process. Import failures still surface as Python exceptions."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    """`import tensorflow`, without its native banner; returns the module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_silenced():
        import tensorflow

    return tensorflow


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def preprocessing(name: str | None):
    """The preprocess_input of the backbone `name` (imports Keras); the identity for NO_PREPROCESSING."""
    import importlib

    if name == NO_PREPROCESSING:
        return lambda images: images
    found = backbone(name)
    return importlib.import_module(f"keras.applications.{found.keras_module}").preprocess_input


def backbone_kwargs(spec: ModelSpec, found: Backbone) -> dict:
    """The keyword arguments of keras.applications' function for `spec`: no classifier, pooled."""
    kwargs = dict(input_shape=(spec.image_size, spec.image_size, 3), include_top=False, pooling=spec.pooling)
    if found.imagenet_alphas:
        kwargs["alpha"] = spec.alpha
    return kwargs


def build_model(spec: ModelSpec):
    """Build the Keras network of `spec`. Returns (model, preprocess_input): a backbone without its
    classifier and pooled, or a saved model cut at its layer (pooled where that layer is not a vector)."""
    import keras

    if spec.name == SAVED_MODEL:
        saved = load_saved_model(spec.weights)
        model = saved_model_at(saved, spec.layer, spec.pooling)
        return model, preprocessing(spec.preprocess or NO_PREPROCESSING)
    found = backbone(spec.name)
    kwargs = backbone_kwargs(spec, found)
    if spec.weights == RANDOM:
        keras.utils.set_random_seed(RANDOM_SEED)  # same random network in every worker and both modes
        kwargs["weights"] = None
    else:
        kwargs["weights"] = spec.weights
    model = getattr(keras.applications, found.application)(**kwargs)
    return model, preprocessing(spec.preprocess or spec.name)


@dataclass(frozen=True)
class NetworkOutput:
    """What the driver knows before Spark starts of the vector a network gives: a backbone's from the cache,
    a saved model's read off its layer."""

    dim: int | None  # None: a backbone at a width the cache does not hold (its workers will say)
    pooled: bool  # the network's output was a feature map, pooled to a vector
    input_size: int | None  # the model's fixed input side, if it has one


def describe_saved_model(path: str, layer: str | None, pooling: str, shown: str | None = None) -> NetworkOutput:
    """Load a saved model and check that `layer` exists and gives a vector or a feature map. Raises
    ConfigError (the layer names listed when `layer` is not one of them). `shown`: the model as the user
    gave it, for the messages (default: `path`)."""
    from sparkyfruit.errors import ConfigError

    shown = shown or path
    check_model_file(path, shown)

    import_tensorflow()
    try:
        saved = load_saved_model(path)
    except Exception as exc:  # Keras raises many types for a file it cannot read
        # its message names our staged copy, which the user never gave: say what failed, not where
        reason = str(exc).replace(str(path), Path(shown).name)
        raise ConfigError(
            f"--model {shown} cannot be loaded by Keras: {type(exc).__name__}: {reason}",
            "Give a model saved with model.save('name.keras') (or .h5).",
        ) from None
    names = [each.name for each in saved.layers]
    if layer is not None and layer not in names:
        raise ConfigError(
            f"--layer {layer!r} is not a layer of {Path(shown).name}.", f"Its layers: {', '.join(names)}."
        )
    shape = tuple(saved.input_shape) if not isinstance(saved.input_shape, list) else ()
    if len(shape) != 4 or shape[-1] != 3:
        raise ConfigError(
            f"--model {Path(shown).name} takes input of shape {saved.input_shape}; sparkyfruit feeds RGB images "
            "(batch, height, width, 3).",
            "Give a model with one image input.",
        )
    output = (saved.get_layer(layer) if layer else saved.layers[-1]).output
    if len(output.shape) not in (2, 4):
        raise ConfigError(
            f"--layer {layer or names[-1]!r} outputs shape {tuple(output.shape)}: neither a vector (batch, dim) "
            "nor a feature map (batch, height, width, channels).",
            f"Choose another layer: {', '.join(names)}.",
        )
    side = shape[1] if shape[1] is not None and shape[1] == shape[2] else None
    return NetworkOutput(int(output.shape[-1]), len(output.shape) == 4, side)


def load_saved_model(path: str):
    """A saved Keras model (.keras or .h5), for inference only. `safe_mode` refuses a layer that would
    deserialize Python code (a Lambda); it is explicit because Keras before 3.11.3 ignored it for .h5 files
    (CVE-2025-9905), and pyproject requires a Keras that honours it. The driver checks the file first
    (check_model_file), so a worker never meets such a layer."""
    import keras

    return keras.models.load_model(path, compile=False, safe_mode=True)


# layers whose config carries Python code (a marshalled function), which sparkyfruit never runs
CODE_LAYERS = ("Lambda",)


def check_model_file(path: str | Path, shown: str) -> None:
    """Refuse, before Keras reads it, a model file that is not a Keras model or that has a layer carrying
    Python code: raises ConfigError naming the layer. Reads only the file's stored architecture (JSON), so
    no code in it can run. `shown`: the model as the user gave it."""
    from sparkyfruit.errors import ConfigError

    refusal = _refusal_of_model_file(Path(path), Path(shown).name)
    if refusal:
        raise ConfigError(*refusal)


def _refusal_of_model_file(path: Path, name: str) -> tuple[str, str] | None:
    """(what, what to do) when the file at `path` must not be loaded; None when it may be."""
    config = _saved_config(path)
    if config is None:
        return (
            f"--model {name} is not a Keras model file: a .keras file is a zip archive and a .h5 file is HDF5, "
            "and this is neither.",
            "Give a model saved with model.save('name.keras') (or .h5).",
        )
    for layer in _layers(config):
        if layer.get("class_name") in CODE_LAYERS:
            layer_name = (layer.get("config") or {}).get("name", "?")
            return (
                f"--model {name} has a {layer['class_name']} layer {layer_name!r}, which carries Python code; "
                "sparkyfruit never runs code from a model file, so it was not loaded.",
                "Save the model with that computation written as a registered Keras layer, or without it.",
            )
    return None


def _saved_config(path: Path) -> dict | None:
    """The stored architecture of a .keras (zip: config.json) or .h5 (the `model_config` attribute) file;
    {} when the file is of the right kind without one (weights only); None when it is neither kind."""
    import json
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                return {}
            return json.loads(archive.read("config.json"))
    with open(path, "rb") as handle:
        if handle.read(8) != b"\x89HDF\r\n\x1a\n":
            return None
    import h5py

    with h5py.File(path, "r") as stored:
        raw = stored.attrs.get("model_config")
    if raw is None:
        return {}
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _layers(config) -> list[dict]:
    """Every layer config nested anywhere in a stored architecture (functional models, Sequential models,
    and models used as layers of others)."""
    found = []
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config.get("config"), dict):
            found.append(config)
        for value in config.values():
            found.extend(_layers(value))
    elif isinstance(config, list):
        for value in config:
            found.extend(_layers(value))
    return found


def saved_model_at(saved, layer: str | None, pooling: str):
    """`saved` cut at `layer` (its last layer if None); a feature map (batch, h, w, c) is pooled over h, w."""
    import keras

    output = saved.get_layer(layer).output if layer else saved.output
    if len(output.shape) == 4:
        pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
        output = pool(name=f"sparkyfruit_{pooling}_pool")(output)
    return keras.Model(saved.inputs, output)
