"""--weights imagenet: the driver fetches Keras's own file into Keras's cache before Spark starts and ships
it to the workers; offline, one line names the URL and the fix. The other kinds keep their labels."""

from __future__ import annotations

import functools
import os
import re
import socket
import stat
import tempfile

import numpy as np
import pytest
from typer.testing import CliRunner

import sparkyfruit
from sparkyfruit import models, weights
from sparkyfruit.cli import ENCODE_EXAMPLE, app
from sparkyfruit.errors import ConfigError
from tests.helpers import ROOT, SAMPLE, WEIGHTS, read_output, run_config


@pytest.mark.parametrize(
    "value, kind",
    [
        ("imagenet", weights.IMAGENET),
        ("none", weights.RANDOM),
        ("s3://b/w.h5", weights.S3),
        ("S3A://b/w.h5", weights.S3),
        ("w/model.h5", weights.FILE),
    ],
)
def test_kinds_of_a_weights_value(value, kind):
    assert weights.kind_of(value) == kind


def test_staged_files_are_private_whole_and_checked_so_a_planted_file_is_never_shipped(tmp_path, monkeypatch):
    """The scratch folder is the user's own (0700); the staged file is the one whose sha256 the run records,
    whatever was at its name before (a planted file, or a copy cut short)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    mine = tmp_path / f"sparkyfruit-{os.getuid()}"
    mine.mkdir(mode=0o777)
    os.chmod(mine, 0o777)  # as an older release left it: closed on use
    source = tmp_path / "fine-tuned.h5"
    source.write_bytes(b"the real weights " * 1000)
    stage = functools.partial(weights.stage, str(source), None, model="mobilenet", alpha=0.25, image_size=100)
    first = stage()
    assert first.file.parent == mine / "weights" and first.sha256 == models.sha256_of(source)
    assert first.file.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700 and stat.S_IMODE(first.file.parent.stat().st_mode) == 0o700
    for planted in (b"planted by someone else", source.read_bytes()[:100]):  # a plant, a truncated copy
        first.file.write_bytes(planted)
        again = stage()
        assert again == first and again.file.read_bytes() == source.read_bytes()
    assert [each.name for each in first.file.parent.iterdir()] == [first.file.name]  # no partial copy left

    (mine / "weights").rename(tmp_path / "elsewhere")
    (mine / "weights").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=r"the scratch folder .*/weights is not a folder; .*set TMPDIR"):
        stage()
    monkeypatch.setattr(os, "getuid", lambda: 4242)
    (tmp_path / "sparkyfruit-4242").mkdir()  # a folder under the name of user 4242, made by someone else
    with pytest.raises(ConfigError, match=r"the scratch folder .*sparkyfruit-4242 belongs to user id \d+"):
        stage()


KERAS_WEIGHTS = "https://storage.googleapis.com/tensorflow/keras-applications/"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, alpha, size, url, file_hash",
    [
        ("mobilenet", 0.25, 224, "mobilenet/mobilenet_2_5_224_tf_no_top.h5", None),
        ("mobilenet", 1.0, 100, "mobilenet/mobilenet_1_0_224_tf_no_top.h5", None),
        (
            "mobilenet_v2",
            1.0,
            100,
            "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
            None,
        ),
        (
            "mobilenet_v2",
            0.35,
            160,
            "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_160_no_top.h5",
            None,
        ),
        (
            "resnet50",
            1.0,
            224,
            "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "4d473c1dd8becc155b73f8504c6f6626",
        ),
        (
            "efficientnet_v2_b0",
            1.0,
            224,
            "efficientnet_v2/efficientnetv2-b0_notop.h5",
            "893217f2bb855e2983157299931e43ff",
        ),
    ],
)
def test_the_imagenet_download_is_the_file_keras_itself_asks_for(
    tmp_path, monkeypatch, name, alpha, size, url, file_hash
):
    """Keras's own request is intercepted (the published names and hashes above are Keras's, by its rules
    per family, size and alpha), then remembered: a second run builds nothing."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    asked = weights.imagenet_download(name, alpha, size)
    assert (asked.url, asked.file_hash) == (KERAS_WEIGHTS + url, file_hash)
    monkeypatch.setattr(weights, "_ask_keras", lambda *a: pytest.fail("Keras was asked again"))
    assert weights.imagenet_download(name, alpha, size) == asked


def test_offline_imagenet_is_one_line_before_spark(tmp_path, monkeypatch):
    import sparkyfruit.spark.session

    monkeypatch.setattr(sparkyfruit.spark.session, "start_session", lambda *a, **k: pytest.fail("Spark was started"))
    with socket.socket() as closed:  # a proxy that refuses: no request leaves this machine
        closed.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
        env = {
            "KERAS_HOME": str(tmp_path / "keras"),
            "https_proxy": proxy,
            "HTTPS_PROXY": proxy,
            "no_proxy": "",
            "NO_PROXY": "",
            "COLUMNS": "400",
        }
        result = CliRunner().invoke(
            app,
            [
                "encode",
                "--input",
                str(SAMPLE),
                "--output",
                str(tmp_path / "o"),
                "--model",
                "mobilenet",
                "--alpha",
                "0.25",
                "--weights",
                "imagenet",
            ],
            env=env,
        )
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    url = weights.imagenet_download("mobilenet", 0.25, 224).url
    assert f"could not download {url}" in lines[0] and "no network" in lines[0]
    assert "--weights path/to/mobilenet_2_5_224_tf_no_top.h5" in lines[0]
    assert "Spark UI" not in lines[0] and "--overwrite" not in lines[0]
    assert not (tmp_path / "o").exists() and not list((tmp_path / "keras").rglob("*.h5"))


@pytest.mark.spark
@pytest.mark.slow
def test_imagenet_from_keras_cache_gives_the_vectors_of_the_same_file(spark, tmp_path, monkeypatch):
    cache = tmp_path / "keras" / "models"
    cache.mkdir(parents=True)
    (cache / "mobilenet_2_5_224_tf_no_top.h5").write_bytes(WEIGHTS.read_bytes())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    imagenet = sparkyfruit.encode(
        run_config(mode="keys", input=str(SAMPLE), output=str(tmp_path / "a"), weights="imagenet", limit=8)
    )
    from_file = sparkyfruit.encode(run_config(mode="keys", input=str(SAMPLE), output=str(tmp_path / "b"), limit=8))
    assert imagenet.manifest.weights == "imagenet"
    assert imagenet.manifest.weights_sha256 == from_file.manifest.weights_sha256 == models.sha256_of(WEIGHTS)
    a, b = read_output(tmp_path / "a"), read_output(tmp_path / "b")
    assert set(a) == set(b) and len(a) == 8
    for path in a:
        np.testing.assert_array_equal(np.asarray(a[path][1]), np.asarray(b[path][1]))


@pytest.mark.spark
@pytest.mark.slow
def test_the_encode_help_example_runs_offline(spark, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = ENCODE_EXAMPLE.split()[1:]
    args[args.index("--output") + 1] = str(tmp_path / "features")
    result = CliRunner().invoke(app, [*args, "--master", "local[2]"])
    assert result.exit_code == 0, result.output
    line = " ".join(result.output.split())
    assert "done: 192 images, 192 ok, 0 failed" in line
    # both rates: over the whole run, and over the encoding alone (what the bar showed), which is faster
    found = re.search(r"s, ([\d.]+) images/s overall, ([\d.]+) images/s encoding \(([\d.]+) s\) ->", line)
    assert found, line
    overall, encoding, seconds = map(float, found.groups())
    assert 0 < overall < encoding and 0 < seconds and encoding == pytest.approx(192 / seconds, rel=0.1)
