"""The model registry: name -> Keras builder, preprocessing, output dimension, valid ImageNet alphas.

Everything at module level is light (no TensorFlow), so config validation can use it; `build_model`
imports Keras when a worker actually needs the network.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

# Weights values that are not paths.
IMAGENET = "imagenet"
RANDOM = "none"  # the setting's word for a random (seeded) network
RANDOM_SEED = 0
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


@dataclass(frozen=True)
class WeightsDownload:
    """The file Keras downloads for `weights="imagenet"` (no top): its name in Keras's cache and its URL."""

    file_name: str
    url: str
    md5: str | None = None  # Keras checks it where it publishes one


@dataclass(frozen=True)
class ModelInfo:
    name: str
    keras_application: str  # class name in keras.applications
    keras_module: str  # module in keras.applications holding preprocess_input
    default_alpha: float
    imagenet_alphas: tuple[float, ...]  # alphas for which Keras publishes ImageNet weights; () = alpha unused
    description: str

    def dim(self, alpha: float) -> int:
        """Length of the pooled feature vector (Keras's own rules for each family)."""
        if self.name == "mobilenet_v2":
            return _make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
        if self.name == "mobilenet":
            return int(1024 * alpha)
        return 2048

    def imagenet_download(self, alpha: float, image_size: int) -> WeightsDownload:
        """The no-top ImageNet weights file Keras fetches for this network, by Keras's own naming rules
        (tests/test_weights.py checks them against the installed Keras)."""
        if self.name == "mobilenet_v2":
            rows = image_size if image_size in (96, 128, 160, 192, 224) else 224
            name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}_no_top.h5"
            return WeightsDownload(name, f"{KERAS_WEIGHTS_URL}mobilenet_v2/{name}")
        if self.name == "mobilenet":
            rows = image_size if image_size in (128, 160, 192, 224) else 224
            alpha_text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]
            name = f"mobilenet_{alpha_text}_{rows}_tf_no_top.h5"
            return WeightsDownload(name, f"{KERAS_WEIGHTS_URL}mobilenet/{name}")
        name = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
        return WeightsDownload(name, f"{KERAS_WEIGHTS_URL}resnet/{name}", md5="4d473c1dd8becc155b73f8504c6f6626")


def _make_divisible(value: float, divisor: int) -> int:
    """Keras MobileNetV2's channel rounding for the last conv layer."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo(
            "mobilenet_v2",
            "MobileNetV2",
            "mobilenet_v2",
            1.0,
            (0.35, 0.5, 0.75, 1.0, 1.3, 1.4),
            "MobileNetV2, 1280-d for alpha <= 1",
        ),
        ModelInfo(
            "mobilenet",
            "MobileNet",
            "mobilenet",
            1.0,
            (0.25, 0.5, 0.75, 1.0),
            "MobileNet v1, 1024*alpha-d (alpha 0.25 -> 256)",
        ),
        ModelInfo("resnet50", "ResNet50", "resnet50", 1.0, (), "ResNet50, 2048-d"),
    )
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything a worker needs to build the same network; small and picklable."""

    name: str
    alpha: float
    image_size: int
    weights: str  # "imagenet", "none", or a local file path valid on the worker
    batch_size: int

    @property
    def info(self) -> ModelInfo:
        return MODELS[self.name]

    @property
    def dim(self) -> int:
        return self.info.dim(self.alpha)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_model(spec: ModelSpec):
    """Build the Keras network (no top, global average pooling). Returns (model, preprocess_input)."""
    import importlib

    import keras

    info = spec.info
    application = getattr(keras.applications, info.keras_application)
    kwargs = dict(input_shape=(spec.image_size, spec.image_size, 3), include_top=False, pooling="avg")
    if info.imagenet_alphas:
        kwargs["alpha"] = spec.alpha
    if spec.weights == RANDOM:
        keras.utils.set_random_seed(RANDOM_SEED)  # same random network in every worker and both modes
        kwargs["weights"] = None
    else:
        kwargs["weights"] = spec.weights
    model = application(**kwargs)
    preprocess = importlib.import_module(f"keras.applications.{info.keras_module}").preprocess_input
    return model, preprocess
