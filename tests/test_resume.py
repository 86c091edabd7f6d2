"""--resume over a growing input: the same rows as one fresh run, no duplicates; a killed resume can be
resumed; a different network is refused; nothing new starts no Spark job."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import sparkyfruit
from sparkyfruit.errors import ConfigError
from tests.helpers import SAMPLE, read_output, run_config

pytestmark = [pytest.mark.spark, pytest.mark.slow]
CLASSES = sorted(p.name for p in SAMPLE.iterdir() if p.is_dir())[:3]


def grow(folder, count: int) -> None:
    """The input holds the first `count` classes of the sample."""
    for name in CLASSES[:count]:
        if not (folder / name).exists():
            shutil.copytree(SAMPLE / name, folder / name)


@pytest.mark.parametrize("mode", ["keys", "df"])
def test_resume_twice_over_a_growing_input_equals_one_fresh_run(spark, tmp_path, mode):
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
        manifest["counts"]["rows"] == 72
        and manifest["resumes"] == 2
        and not (out / "_sparkyfruit.resuming.json").exists()
    )
    assert sparkyfruit.inspect(str(out)).rows == 72

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

    # nothing new: answered from the manifest, no Spark job
    jobs_before = len(spark.sparkContext.statusTracker().getJobIdsForGroup(None))
    again = sparkyfruit.encode(run_config(mode=mode, input=str(images), output=str(out), resume=True))
    assert (again.added, again.rows) == (0, 72)
    assert len(spark.sparkContext.statusTracker().getJobIdsForGroup(None)) == jobs_before


def test_a_resume_that_was_stopped_can_be_resumed_and_reads_as_unfinished(spark, tmp_path):
    images, out = tmp_path / "images", tmp_path / "out"
    grow(images, 1)
    sparkyfruit.encode(run_config(mode="keys", input=str(images), output=str(out)))
    grow(images, 2)
    # what a resume killed during its write leaves: the manifest moved aside
    (out / "_sparkyfruit.json").rename(out / "_sparkyfruit.resuming.json")
    with pytest.raises(sparkyfruit.errors.NotAnOutputError):
        sparkyfruit.inspect(str(out))
    result = sparkyfruit.encode(run_config(mode="keys", input=str(images), output=str(out), resume=True))
    assert (result.added, result.rows) == (24, 48)
    assert sparkyfruit.inspect(str(out)).rows == 48


def test_resume_refuses_a_different_network_or_an_unfinished_output(spark, tmp_path):
    images, out = tmp_path / "images", tmp_path / "out"
    grow(images, 1)
    sparkyfruit.encode(run_config(mode="keys", input=str(images), output=str(out)))
    with pytest.raises(ConfigError, match=r"would mix vectors of different networks.*image_size 224 there, 160 now"):
        sparkyfruit.encode(run_config(mode="keys", input=str(images), output=str(out), resume=True, image_size=160))
    (out / "_sparkyfruit.json").unlink()
    with pytest.raises(ConfigError, match="--resume needs a finished output"):
        sparkyfruit.encode(run_config(mode="keys", input=str(images), output=str(out), resume=True))
    with pytest.raises(ConfigError, match="--resume adds to an output and --overwrite replaces it"):
        run_config(mode="keys", input=str(images), output=str(out), resume=True, overwrite=True)
