"""--resume over a growing input: the same rows as one fresh run, no duplicates; a run stopped after a
shard's commit but before its record is continued without duplicates; a different network is refused;
nothing new starts no Spark job."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import sparkyfruit
from sparkyfruit import output_format
from sparkyfruit.errors import ConfigError
from tests.helpers import SAMPLE, WEIGHTS, read_output, run_config

pytestmark = [pytest.mark.spark, pytest.mark.slow]
CLASSES = sorted(p.name for p in SAMPLE.iterdir() if p.is_dir())[:3]


def grow(folder, count: int) -> None:
    """The input holds the first `count` classes of the sample."""
    for name in CLASSES[:count]:
        if not (folder / name).exists():
            shutil.copytree(SAMPLE / name, folder / name)


@pytest.mark.parametrize("mode", ["keys", "df"])
def test_resume_twice_over_a_growing_input_equals_one_fresh_run(spark, tmp_path, mode, request):
    images, out = tmp_path / "images", tmp_path / "out"
    grow(images, 1)
    first = sparkyfruit.encode(run_config(mode=mode, input=str(images), output=str(out), resume=True))
    assert (first.rows, first.added) == (24, None)  # an empty output: a plain first run
    for count in (2, 3):
        grow(images, count)
        result = sparkyfruit.encode(run_config(mode=mode, input=str(images), output=str(out), resume=True))
        assert (result.added, result.rows, result.failed) == (24, 24 * count, 0)
    manifest = json.loads((out / "_sparkyfruit.json").read_text())
    assert (
        manifest["counts"]["rows"] == 72 and manifest["resumes"] == 2 and not (out / "_sparkyfruit.run.json").exists()
    )
    assert sparkyfruit.inspect(str(out)).rows == 72
    # a joined session's later jobs (a notebook's) are not left in the run's job group
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None

    fresh = tmp_path / "fresh"
    sparkyfruit.encode(run_config(mode=mode, input=str(images), output=str(fresh)))
    import pyarrow.dataset as ds

    paths = ds.dataset(str(out), format="parquet").to_table(columns=["path"]).column("path").to_pylist()
    assert len(paths) == len(set(paths)) == 72  # no duplicates
    resumed, expected = read_output(out), read_output(fresh)
    assert set(resumed) == set(expected)
    for path, (label, features, error) in resumed.items():
        assert error is None and label == expected[path][0]
        np.testing.assert_allclose(features, expected[path][1], atol=1e-5)

    # nothing new: answered from the manifest; Spark is not even started (no_spark_start fails the test if it is)
    request.getfixturevalue("no_spark_start")
    again = sparkyfruit.encode(run_config(mode=mode, input=str(images), output=str(out), resume=True))
    assert (again.added, again.rows, again.ui_url) == (0, 72, None)


@pytest.mark.parametrize("mode", ["keys", "df"])
def test_a_run_stopped_between_commit_and_record_is_continued_without_duplicates(spark, tmp_path, mode, monkeypatch):
    """The worst moment to die: shard 2's files are committed but not yet recorded. The output reads as
    unfinished; --resume removes shard 2's files and encodes it again, and keeps shard 1."""
    images, out = tmp_path / "images", tmp_path / "out"
    grow(images, 3)
    recorded = []
    real_record = output_format.write_shard_record

    def record_then_die(location, record, s3):
        if record.number == 2:
            raise RuntimeError("the driver died")
        recorded.append(record.number)
        real_record(location, record, s3)

    monkeypatch.setattr(output_format, "write_shard_record", record_then_die)
    with pytest.raises(sparkyfruit.errors.RunFailedError, match="the driver died"):
        sparkyfruit.encode(run_config(mode=mode, input=str(images), output=str(out), shard_size=30))
    monkeypatch.undo()
    assert recorded == [1]
    assert not (out / "_sparkyfruit.json").exists() and (out / "_sparkyfruit.run.json").exists()
    import pyarrow.dataset as ds

    assert ds.dataset(str(out), format="parquet").count_rows() == 60  # shard 2's files are there, unrecorded
    with pytest.raises(sparkyfruit.errors.NotAnOutputError, match="unfinished: 1 of 3 shards, 30 of 72 images"):
        sparkyfruit.inspect(str(out))
    shard_1 = json.loads((out / "_shards" / "000001.json").read_text())["files"]

    result = sparkyfruit.encode(run_config(mode=mode, input=str(images), output=str(out), resume=True))
    assert (result.added, result.rows, result.failed) == (42, 72, 0)
    assert all((out / name).exists() for name in shard_1)  # shard 1 was kept, not redone
    paths = ds.dataset(str(out), format="parquet").to_table(columns=["path"]).column("path").to_pylist()
    assert len(paths) == len(set(paths)) == 72
    assert sorted(p.name for p in (out / "_shards").iterdir()) == ["000001.json", "000002.json", "000003.json"]
    assert not (out / "_sparkyfruit.run.json").exists() and sparkyfruit.inspect(str(out)).rows == 72


def test_resume_refuses_a_different_network_or_an_unfinished_output(spark, tmp_path, monkeypatch):
    images, out, weights = tmp_path / "images", tmp_path / "out", tmp_path / "weights.h5"
    grow(images, 1)
    shutil.copyfile(WEIGHTS, weights)
    sparkyfruit.encode(run_config(mode="keys", input=str(images), output=str(out), weights=str(weights)))
    # every refusal below comes before Spark
    monkeypatch.setattr("sparkyfruit.spark.session.start_session", lambda *a, **k: pytest.fail("Spark was started"))
    with pytest.raises(ConfigError, match=r"would mix vectors of different networks.*image_size 224 there, 160 now"):
        sparkyfruit.encode(run_config(mode="keys", input=str(images), output=str(out), resume=True, image_size=160))
    again = dict(mode="keys", input=str(images), output=str(out), resume=True, weights=str(weights))
    with pytest.raises(ConfigError, match=r"--input '[^']+/images' there, '[^']+/other' now"):
        (tmp_path / "other").mkdir()
        sparkyfruit.encode(run_config(**{**again, "input": str(tmp_path / "other")}))
    with pytest.raises(ConfigError, match=r"--pattern None there, '\*_100.jpg' now"):
        sparkyfruit.encode(run_config(**again, pattern="*_100.jpg"))
    grow(images, 2)  # new images to encode, with weights that are no longer the output's
    with weights.open("ab") as changed:  # the same path, other bytes: another network's weights
        changed.write(b"\0")
    with pytest.raises(ConfigError, match=r"the weights file .*weights.h5 changed since the output was made"):
        sparkyfruit.encode(run_config(**again))
    (out / "_sparkyfruit.json").unlink()
    with pytest.raises(ConfigError, match="--resume needs an output of sparkyfruit"):
        sparkyfruit.encode(run_config(mode="keys", input=str(images), output=str(out), resume=True))
    with pytest.raises(ConfigError, match="--resume adds to an output and --overwrite replaces it"):
        run_config(mode="keys", input=str(images), output=str(out), resume=True, overwrite=True)
