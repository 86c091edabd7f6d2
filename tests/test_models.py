"""--model: every backbone of keras.applications by name, and a saved model with --layer.

The cache that keeps `--help` and config checks free of TensorFlow (models.BACKBONES) is checked here
against the installed Keras: its names and modules for all, and for one member of each family (one module
of keras.applications: its members share one builder and differ in width and depth) the built network's
dimension, parameters and least size. Building all 40, with and without their classifiers (which fixes
Keras's default size), takes about 2 minutes here: that full pass is `python -m benchmarks.backbones`.
The default set builds one family's member; the integration set (`make test-integration`) the other 14.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import sparkyfruit
from sparkyfruit import models
from sparkyfruit.cli import app
from sparkyfruit.config import RunConfig
from sparkyfruit.errors import ConfigError
from tests.helpers import MASTER, SAMPLE, read_output

# the smallest member of each family
ONE_PER_FAMILY = [
    "convnext_tiny",
    "densenet121",
    "efficientnet_b0",
    "efficientnet_v2_b0",
    "inception_resnet_v2",
    "inception_v3",
    "mobilenet",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "nasnet_mobile",
    "resnet50",
    "resnet50_v2",
    "vgg16",
    "vgg19",
    "xception",
]


def test_snake_names_of_keras_applications():
    assert [models.snake_name(name) for name in ("MobileNetV2", "ResNet50V2", "EfficientNetV2B0")] == [
        "mobilenet_v2",
        "resnet50_v2",
        "efficientnet_v2_b0",
    ]
    assert [models.snake_name(name) for name in ("ConvNeXtXLarge", "NASNetLarge", "InceptionResNetV2", "VGG16")] == [
        "convnext_xlarge",
        "nasnet_large",
        "inception_resnet_v2",
        "vgg16",
    ]


@pytest.mark.slow
def test_the_cache_names_every_backbone_of_the_installed_keras():
    installed = models.installed_backbones()
    cached = {name: (b.application, b.keras_module) for name, b in models.BACKBONES.items()}
    assert installed == cached
    # the rule that answers an unknown name without Keras holds for the Keras installed here
    assert models.cache_is_whole(), f"BACKBONES was read from Keras {models.CACHED_KERAS}: check it against this one"
    assert {b.keras_module for b in models.BACKBONES.values()} == {
        models.backbone(n).keras_module for n in ONE_PER_FAMILY
    }


@pytest.mark.slow
# the default set builds one (the bundled weights' family); the other 14 are the integration set's
@pytest.mark.parametrize(
    "name",
    [name if name == "mobilenet" else pytest.param(name, marks=pytest.mark.integration) for name in ONE_PER_FAMILY],
)
def test_one_backbone_of_each_family_builds_as_cached(name):
    import keras

    cached = models.BACKBONES[name]
    model, preprocess = models.build_model(models.ModelSpec(name, 1.0, cached.min_size, models.RANDOM, 1))
    assert model.output_shape == (None, cached.dim) and model.count_params() == cached.parameters
    assert preprocess is getattr(keras.applications, cached.keras_module).preprocess_input
    with pytest.raises(ValueError):  # one pixel below its least size is refused (before any layer is built)
        models.build_model(models.ModelSpec(name, 1.0, cached.min_size - 1, models.RANDOM, 1))
    keras.backend.clear_session()


@pytest.mark.slow
def test_max_pooling_and_alpha_reach_the_network():
    avg, _ = models.build_model(models.ModelSpec("mobilenet_v3_small", 0.75, 64, models.RANDOM, 1, pooling="avg"))
    top, _ = models.build_model(models.ModelSpec("mobilenet_v3_small", 0.75, 64, models.RANDOM, 1, pooling="max"))
    assert avg.layers[-1].__class__.__name__ == "GlobalAveragePooling2D"
    assert top.layers[-1].__class__.__name__ == "GlobalMaxPooling2D"
    assert avg.count_params() < models.BACKBONES["mobilenet_v3_small"].parameters  # alpha 0.75 is narrower


def test_config_takes_a_backbone_with_its_own_size(tmp_path):
    config = RunConfig(input=str(SAMPLE), output=str(tmp_path / "o"), model="inception_v3")
    assert (config.image_size, config.alpha, config.dim, config.pooling) == (299, 1.0, 2048, "avg")
    assert RunConfig(input=str(SAMPLE), output=str(tmp_path / "o"), model="xception", image_size=100).image_size == 100


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"model": "efficientnetv2b0"}, "Did you mean efficientnet_v2_b0"),
        ({"model": "convnext-tiny"}, "Did you mean convnext_tiny"),
        ({"model": "inception_v3", "image_size": 64}, "takes images of at least 75 pixels"),
        ({"model": "resnet50", "alpha": 0.5}, "--alpha applies to the mobilenet family"),
        ({"model": "mobilenet_v3_large", "alpha": 0.5}, "Keras has no ImageNet weights"),
        ({"model": "resnet50", "layer": "conv1"}, "--layer applies to a saved model"),
        ({"model": "resnet50", "pooling": "min"}, "Input should be 'avg' or 'max'"),
        ({"model": "/no/such/model.keras"}, "--model file is missing or unreadable"),
        ({"preprocess": "alexnet"}, "Unknown --preprocess 'alexnet'"),
    ],
)
def test_bad_network_settings_fail_before_spark(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message) as failure:
        RunConfig.load(input=str(SAMPLE), output=str(tmp_path / "o"), **settings)
    assert failure.value.exit_code == 2


def test_models_lists_every_backbone_with_its_dimension_and_size():
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert set(rows) == set(models.BACKBONES) and len(rows) >= 40
    assert rows["efficientnet_v2_b0"] == {
        "name": "efficientnet_v2_b0",
        "dim": 1280,
        "image_size": 224,
        "imagenet_weights": True,
        "weights_mb": 23.7,
        "keras": "keras.applications.EfficientNetV2B0",
    }
    assert rows["mobilenet"]["imagenet_weights"] == [0.25, 0.5, 0.75, 1.0] and rows["xception"]["image_size"] == 299
    table = CliRunner().invoke(app, ["models"], env={"COLUMNS": "100"})
    assert table.exit_code == 0 and "convnext_tiny" in table.output and "inception_resnet_v2" in table.output


# ------------------------------------------------------------------ a saved model and its layer


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A small 'fine-tuned' network: a MobileNet v1 0.25 trunk (random, seeded), a 16-d embedding layer and a
    classifier, saved as .keras."""
    models.import_tensorflow()
    import keras

    keras.utils.set_random_seed(1)
    trunk = keras.applications.MobileNet(input_shape=(64, 64, 3), alpha=0.25, include_top=False, weights=None)
    features = keras.layers.GlobalAveragePooling2D(name="pool")(trunk.output)
    embedding = keras.layers.Dense(16, activation="relu", name="embedding")(features)
    classes = keras.layers.Dense(8, activation="softmax", name="classes")(embedding)
    path = tmp_path_factory.mktemp("saved") / "fruit-classifier.keras"
    keras.Model(trunk.input, classes).save(path)
    return path


@pytest.mark.slow
def test_a_saved_model_is_read_at_its_layer(saved_model):
    assert models.describe_saved_model(str(saved_model), "embedding", "avg") == models.NetworkOutput(16, False, 64)
    assert models.describe_saved_model(str(saved_model), "conv_pw_13_relu", "max") == models.NetworkOutput(
        256, True, 64
    )
    with pytest.raises(ConfigError, match=r"--layer 'embeding' is not a layer of fruit-classifier.keras.*embedding"):
        models.describe_saved_model(str(saved_model), "embeding", "avg")


@pytest.mark.slow
def test_a_saved_models_layer_gives_the_vectors_keras_gives(saved_model):
    import keras

    from sparkyfruit.engines import TensorFlowEncoder as Encoder

    images = np.random.RandomState(0).uniform(0, 255, (4, 64, 64, 3)).astype(np.float32)
    whole = keras.models.load_model(saved_model, compile=False)
    for layer, pooling in (("embedding", "avg"), ("conv_pw_13_relu", "max")):
        encoder = Encoder(models.ModelSpec(models.SAVED_MODEL, 1.0, 64, str(saved_model), 4, pooling, layer))
        expected = keras.Model(whole.inputs, whole.get_layer(layer).output).predict_on_batch(images.copy())
        if expected.ndim == 4:
            expected = expected.max(axis=(1, 2))
        np.testing.assert_allclose(encoder.encode(images.copy()), expected, atol=1e-5)


@pytest.mark.spark
@pytest.mark.slow
def test_encode_with_a_saved_model_and_layer(spark, saved_model, tmp_path):
    runner = CliRunner()
    base = ["encode", "--input", str(SAMPLE), "--model", str(saved_model), "--image-size", "64", "--master", MASTER]
    wrong = runner.invoke(app, [*base, "--output", str(tmp_path / "x"), "--layer", "embeding"], env={"COLUMNS": "300"})
    assert wrong.exit_code == 2, wrong.output
    assert "--layer 'embeding' is not a layer of fruit-classifier.keras. Its layers: " in wrong.output
    assert "embedding, classes" in wrong.output
    assert len(wrong.output.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
    other_size = [*base[:-4], "--image-size", "100", "--master", MASTER]
    size = runner.invoke(app, [*other_size, "--output", str(tmp_path / "x"), "--layer", "embedding"])
    assert size.exit_code == 2 and "takes 64 px images; got --image-size 100" in size.output, size.output
    # without --image-size, the model's own fixed size, as a backbone runs at its own
    own_size = [*base[:-4], "--master", MASTER]
    done = runner.invoke(
        app, [*own_size, "--output", str(tmp_path / "o"), "--layer", "embedding", "--limit", "24", "--quiet"]
    )
    assert done.exit_code == 0, done.output
    manifest = json.loads((tmp_path / "o" / "_sparkyfruit.json").read_text())
    assert manifest["image_size"] == 64
    assert manifest["model"] == f"file://{saved_model}" and manifest["model_sha256"] == models.sha256_of(saved_model)
    assert (manifest["layer"], manifest["pooled"], manifest["dim"], manifest["weights"]) == (
        "embedding",
        False,
        16,
        "included",
    )
    vectors = [features for _, features, _ in read_output(tmp_path / "o").values()]
    assert len(vectors) == 24 and all(len(v) == 16 for v in vectors)
    summary = sparkyfruit.inspect(str(tmp_path / "o"))
    assert (summary.layer, summary.pooling, summary.model_sha256) == ("embedding", None, manifest["model_sha256"])
    resumed = runner.invoke(
        app, [*own_size, "--output", str(tmp_path / "o"), "--layer", "embedding", "--limit", "24", "--resume"]
    )
    assert resumed.exit_code == 0 and "added 0 images" in resumed.output, resumed.output  # at the output's size


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.s3
def test_a_saved_model_on_s3_at_a_feature_map_is_pooled_and_similar_uses_it(spark, saved_model, s3, tmp_path):
    from devtools import local_s3
    from sparkyfruit.s3_settings import S3Settings
    from sparkyfruit.similar import similar

    local_s3.client(s3.endpoint).create_bucket(Bucket="models")
    local_s3.client(s3.endpoint).upload_file(str(saved_model), "models", "fine-tuned/fruit-classifier.keras")
    uri = "s3://models/fine-tuned/fruit-classifier.keras"
    args = ["encode", "--input", str(SAMPLE), "--output", str(tmp_path / "o"), "--model", uri, "--layer"]
    args += ["conv_pw_13_relu", "--pooling", "max", "--image-size", "64", "--limit", "16", "--quiet"]
    done = CliRunner().invoke(app, [*args, "--master", MASTER, "--s3-endpoint", s3.endpoint])
    assert done.exit_code == 0, done.output
    manifest = json.loads((tmp_path / "o" / "_sparkyfruit.json").read_text())
    assert (manifest["model"], manifest["layer"], manifest["pooling"], manifest["pooled"], manifest["dim"]) == (
        uri,
        "conv_pw_13_relu",
        "max",
        True,
        256,
    )
    assert manifest["model_sha256"] == models.sha256_of(saved_model) and manifest["weights_sha256"] is None
    first = sorted(read_output(tmp_path / "o"))[0]
    (answer,) = similar(
        [first.removeprefix("file://")], str(tmp_path / "o"), S3Settings(s3_endpoint=s3.endpoint)
    ).answers
    assert answer.neighbors[0].path == first and answer.neighbors[0].similarity == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_a_model_whose_layer_carries_code_is_refused_and_its_code_never_runs(tmp_path):
    """A Lambda layer deserializes Python code: refused on the driver from the file's stored architecture,
    with one line naming the layer, before Keras (or Spark) reads it."""
    models.import_tensorflow()
    import keras

    ran = tmp_path / "the-lambda-ran"
    # a lambda is saved as its bytecode, which loading would run: here it leaves a mark (an attack does worse)
    plant = eval(f"lambda images: (__import__('pathlib').Path({str(ran)!r}).touch(), images)[1]")
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.GlobalAveragePooling2D()(keras.layers.Lambda(plant, name="sneaky")(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "carries-code.keras")
    ran.unlink(missing_ok=True)  # saving traced it once
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a model at all")
    base = ["encode", "--input", str(SAMPLE), "--master", MASTER, "--image-size", "32"]
    for model, expected in (
        ("carries-code.keras", "--model carries-code.keras has a Lambda layer 'sneaky', which carries Python code"),
        ("garbage.keras", "--model garbage.keras is not a Keras model file: a .keras file is a zip archive"),
    ):
        result = CliRunner().invoke(
            app, [*base, "--model", str(tmp_path / model), "--output", str(tmp_path / "o")], env={"COLUMNS": "400"}
        )
        assert result.exit_code == 2, result.output
        assert expected in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert "Traceback" not in result.output and "sparkyfruit-" not in result.output
    assert not ran.exists() and not (tmp_path / "o").exists()
    with pytest.raises(ValueError, match="(?i)lambda|unsafe|safe_mode"):  # and Keras itself, as the workers call it
        models.load_saved_model(str(tmp_path / "carries-code.keras"))
    assert not ran.exists()
