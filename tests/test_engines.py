"""The engine that runs the network: LiteRT (XNNPACK) fed a model converted once on the driver, cached by
content and checked against TensorFlow's vectors; TensorFlow where it cannot be; one engine per output."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sparkyfruit import engines, models
from sparkyfruit.errors import ConfigError
from sparkyfruit.featurize import decode_image
from tests.helpers import SAMPLE, SCRIPT, WEIGHTS, encode_args, worker_hooks_env

SPEC = models.ModelSpec("mobilenet", 0.25, 100, str(WEIGHTS), 64)


def _sample_pixels(count: int, size: int) -> np.ndarray:
    files = sorted(SAMPLE.glob("*/*.jpg"))[::8][:count]
    return np.stack([decode_image(file.read_bytes(), size) for file in files]).astype(np.float32)


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    """An empty sparkyfruit cache: the conversion runs, and the test sees what it leaves."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "sparkyfruit" / "engines"


@pytest.mark.slow
def test_auto_runs_litert_with_tensorflows_vectors_and_converts_once(own_cache, monkeypatch):
    """The bundled ImageNet weights on the sample images: every row's cosine to TensorFlow's is at least
    0.99999, and the second run takes the converted model from the cache without converting."""
    sha256 = models.sha256_of(WEIGHTS)
    engine = engines.prepare(SPEC, sha256, engines.AUTO)
    assert (engine.name, engine.version, engine.notice) == ("litert", engines.version_of("litert"), None)
    assert engine.converted.parent == own_cache and engine.converted.suffix == ".tflite"

    pixels = _sample_pixels(24, SPEC.image_size)
    fast = engines.load_encoder(engines.worker_spec(SPEC, engine), threads=1)
    reference = engines.load_encoder(SPEC, threads=1)
    assert isinstance(fast, engines.LiteRTEncoder) and isinstance(reference, engines.TensorFlowEncoder)
    got, expected = fast.encode(pixels.copy()), reference.encode(pixels.copy())
    assert got.shape == expected.shape == (24, 256)
    assert engines.lowest_cosine(expected.astype(np.float64), got.astype(np.float64)) >= engines.CHECK_COSINE
    assert fast.encode(pixels[:5].copy()).shape == (5, 256)  # a task's last, smaller batch

    monkeypatch.setattr(engines, "convert", lambda spec: pytest.fail("converted again despite the cache"))
    assert engines.prepare(SPEC, sha256, engines.AUTO) == engine
    # another weights file (by content) is another model
    other = engines.cache_key(SPEC, "0" * 64)
    assert other != engines.cache_key(SPEC, sha256) and not (own_cache / f"{other}.tflite").exists()


@pytest.mark.slow
def test_a_network_whose_vectors_differ_runs_on_tensorflow_with_one_line(own_cache, monkeypatch):
    """A check that fails (here: a bar no engine reaches) makes auto fall back, says why in one line,
    and is remembered; --engine litert then refuses with exit 2's error."""
    monkeypatch.setattr(engines, "CHECK_COSINE", 1.5)
    spec = models.ModelSpec("mobilenet", 0.25, 32, models.RANDOM, 8)
    engine = engines.prepare(spec, None, engines.AUTO)
    assert engine.name == "tensorflow" and engine.converted is None
    assert engine.notice.startswith("Engine: tensorflow, since LiteRT gives other vectors than TensorFlow")
    assert "\n" not in engine.notice
    assert list(own_cache.glob("*.refused")) and not list(own_cache.glob("*.tflite"))

    monkeypatch.setattr(engines, "convert", lambda spec: pytest.fail("converted again despite the refusal"))
    with pytest.raises(ConfigError, match="--engine litert cannot run mobilenet: gives other vectors") as raised:
        engines.prepare(spec, None, engines.LITERT)
    assert raised.value.exit_code == 2


@pytest.mark.slow
def test_the_driver_converts_in_a_child_process_and_a_dead_child_means_tensorflow(own_cache, tmp_path):
    """`Preparing` starts the conversion in a child (TensorFlow is imported there) and hands back what it
    cached; a child that dies (here: a saved model whose file is gone) leaves auto on TensorFlow, with the
    child's last line."""
    preparing = engines.Preparing(SPEC, models.sha256_of(WEIGHTS), engines.AUTO)
    assert preparing._child is not None
    engine = preparing.result()
    assert engine.name == "litert" and engine.converted.is_file() and engine.converted.parent == own_cache
    assert engines.Preparing(SPEC, models.sha256_of(WEIGHTS), engines.AUTO)._child is None  # cached now

    gone = models.ModelSpec(models.SAVED_MODEL, 1.0, 32, str(tmp_path / "gone.keras"), 8)
    engine = engines.Preparing(gone, "1" * 64, engines.AUTO).result()
    assert engine.name == "tensorflow"
    assert engine.notice.startswith("Engine: tensorflow, since LiteRT could not convert it (the converter exited 1: ")
    assert not list(own_cache.glob("*.refused"))  # a crash is not remembered: the next run tries again


def test_without_litert_or_with_a_gpu_auto_takes_tensorflow(monkeypatch):
    monkeypatch.setattr(engines, "version_of", lambda engine: None if engine == engines.LITERT else "2.21.0")
    engine = engines.prepare(SPEC, None, engines.AUTO)
    assert engine.name == "tensorflow" and "is not installed here (pip install ai-edge-litert)" in engine.notice
    monkeypatch.setattr(engines, "gpu_visible", lambda: True)
    assert engines.prepare(SPEC, None, engines.AUTO).notice == (
        "Engine: tensorflow (a GPU is visible: TensorFlow runs on it)"
    )
    assert engines.prepare(SPEC, None, engines.TENSORFLOW) == engines.PreparedEngine("tensorflow", "2.21.0")


def test_resume_keeps_the_outputs_engine():
    assert engines.engine_to_use("auto", None, "s3://b/o") == "auto"  # a new output
    assert engines.engine_to_use("auto", "tensorflow", "s3://b/o") == "tensorflow"
    assert engines.engine_to_use("litert", "litert", "s3://b/o") == "litert"
    with pytest.raises(ConfigError, match=r"keeps the engine that made s3://b/o \(tensorflow\); got --engine litert"):
        engines.engine_to_use("litert", "tensorflow", "s3://b/o")


@pytest.mark.integration
@pytest.mark.spark
@pytest.mark.slow
def test_workers_on_litert_never_import_tensorflow(tmp_path):
    """A run of the console script (its own Spark, fresh Python workers): every batch was encoded by a
    worker without TensorFlow in sys.modules, and the manifest names the engine and its version."""
    import json

    seen = tmp_path / "modules"
    env = worker_hooks_env({**os.environ, "COLUMNS": "200"}, SPARKYFRUIT_TEST_MODULES=str(seen))
    result = subprocess.run(
        [SCRIPT, *encode_args(str(SAMPLE), str(tmp_path / "o"), "--image-size", "100", "--master", "local[2]")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Engine: litert {engines.version_of('litert')}" in result.stderr
    lines = seen.read_text().splitlines()
    assert lines and all(line.endswith("tensorflow=False") for line in lines), lines
    manifest = json.loads((tmp_path / "o" / "_sparkyfruit.json").read_text())
    assert (manifest["engine"], manifest["engine_version"]) == ("litert", engines.version_of("litert"))


@pytest.mark.spark
@pytest.mark.slow
def test_resume_adds_to_an_output_with_its_own_engine(spark, tmp_path):
    """An output made by TensorFlow grows with TensorFlow under `auto`; --engine litert is refused."""
    import json
    import shutil

    import sparkyfruit
    from tests.helpers import run_config

    images, out = tmp_path / "images", tmp_path / "out"
    classes = sorted(path for path in SAMPLE.iterdir() if path.is_dir())[:2]
    shutil.copytree(classes[0], images / classes[0].name)
    first = sparkyfruit.encode(run_config(input=str(images), output=str(out), engine="tensorflow"))
    assert (first.manifest.engine, first.manifest.engine_version) == ("tensorflow", engines.version_of("tensorflow"))

    shutil.copytree(classes[1], images / classes[1].name)
    resumed = sparkyfruit.encode(run_config(input=str(images), output=str(out), resume=True))
    assert (resumed.added, resumed.manifest.engine) == (24, "tensorflow")
    assert json.loads((out / "_sparkyfruit.json").read_text())["engine"] == "tensorflow"
    with pytest.raises(
        ConfigError, match=r"--resume keeps the engine that made .* \(tensorflow\); got --engine litert"
    ):
        sparkyfruit.encode(run_config(input=str(images), output=str(out), resume=True, engine="litert"))
