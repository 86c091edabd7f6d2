"""--resume over a growing input: the same rows as one fresh run, no duplicates; a run stopped after a
shard's commit but before its record is continued without duplicates; a different network is refused;
nothing new starts no Spark job."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import sparkyfruit
from sparkyfruit import delta, locations, output_format
from sparkyfruit.errors import ConfigError
from sparkyfruit.s3_settings import S3Settings
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


def orphans(out) -> set[str]:
    """Parquet files in the folder that the table does not name."""
    on_disk = {p.name for p in out.glob("*.parquet")}
    return on_disk - set(delta.read_table(locations.parse_location(str(out)), S3Settings()).files)


@pytest.mark.parametrize(
    ("mode", "stage"), [("keys", "before commit"), ("df", "before commit"), ("keys", "after commit")]
)
def test_a_run_that_dies_at_each_stage_is_continued_to_a_clean_table(spark, tmp_path, mode, stage, monkeypatch):
    """The driver dies (1) after shard 2's tasks wrote their files and before its commit, then the --resume
    dies during its cleanup of those files; or (2) after every commit and before the manifest. Each time the
    output reads as unfinished, and --resume ends with 72 distinct rows, every committed shard kept, and no
    file that the table does not name."""
    from sparkyfruit import storage

    images, out = tmp_path / "images", tmp_path / "out"
    grow(images, 3)
    settings = dict(mode=mode, input=str(images), output=str(out), shard_size=30)
    if stage == "before commit":
        real_commit = delta.commit

        def commit_or_die(location, s3, files, metadata, *args, **kwargs):
            if metadata["shard"] == 2:
                raise RuntimeError("the driver died")
            return real_commit(location, s3, files, metadata, *args, **kwargs)

        monkeypatch.setattr(delta, "commit", commit_or_die)
        with pytest.raises(sparkyfruit.errors.RunFailedError, match="the driver died"):
            sparkyfruit.encode(run_config(**settings))
        monkeypatch.undo()
        left = orphans(out)
        assert left and all("-00002-" in name for name in left)  # shard 2's files, never committed
        with pytest.raises(sparkyfruit.errors.NotAnOutputError, match="unfinished: 1 of 3 shards, 30 of 72 images"):
            sparkyfruit.inspect(str(out))
        shard_1 = delta.read_table(locations.parse_location(str(out)), S3Settings()).files
        # the --resume dies after deleting one of those files
        real_delete = storage.delete_files

        def delete_one_then_die(location, names, s3):
            real_delete(location, names[:1], s3)
            raise RuntimeError("killed during the cleanup")

        monkeypatch.setattr(storage, "delete_files", delete_one_then_die)
        with pytest.raises(RuntimeError, match="killed during the cleanup"):
            sparkyfruit.encode(run_config(**settings, resume=True))
        monkeypatch.undo()
        assert 0 < len(orphans(out)) < len(left)
    else:
        real_manifest = output_format.write_manifest
        monkeypatch.setattr(output_format, "write_manifest", lambda *a: (_ for _ in ()).throw(RuntimeError("died")))
        with pytest.raises(RuntimeError, match="died"):
            sparkyfruit.encode(run_config(**settings))
        monkeypatch.setattr(output_format, "write_manifest", real_manifest)
        assert not orphans(out) and not (out / "_sparkyfruit.json").exists()
        with pytest.raises(sparkyfruit.errors.NotAnOutputError, match="unfinished: 3 of 3 shards, 72 of 72 images"):
            sparkyfruit.inspect(str(out))
        shard_1 = delta.read_table(locations.parse_location(str(out)), S3Settings()).files

    result = sparkyfruit.encode(run_config(**settings, resume=True))
    assert (result.rows, result.failed) == (72, 0)
    assert result.added == (0 if stage == "after commit" else 42)
    assert all((out / name).exists() for name in shard_1)  # what was committed was kept, not redone
    assert not orphans(out)
    import pyarrow.dataset as ds

    paths = ds.dataset(str(out), format="parquet").to_table(columns=["path"]).column("path").to_pylist()
    assert len(paths) == len(set(paths)) == 72  # a plain reader of the folder sees the table
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


def test_retry_failed_replaces_the_failed_rows_in_the_same_commit(spark, tmp_path):
    """Two images fail (empty files); one is repaired. `--resume --retry-failed` encodes both again: the
    repaired one gets its vector, the other its error again, each image keeps exactly one row, and the
    commit that adds the new rows is the one that drops the old ones."""
    images, out = tmp_path / "images", tmp_path / "out"
    grow(images, 2)
    broken = sorted(images.rglob("*.jpg"))[::30][:2]
    repaired = broken[0].read_bytes()
    for path in broken:
        path.write_bytes(b"")
    settings = dict(mode="keys", input=str(images), output=str(out))
    first = sparkyfruit.encode(run_config(**settings))
    assert (first.rows, first.failed) == (48, 2)
    with pytest.raises(ConfigError, match="--retry-failed .* needs --resume"):
        run_config(**settings, retry_failed=True)
    broken[0].write_bytes(repaired)
    location = locations.parse_location(str(out))
    version = len(list((out / "_delta_log").glob("*.json")))

    result = sparkyfruit.encode(run_config(**settings, resume=True, retry_failed=True))
    assert (result.rows, result.ok, result.failed, result.added) == (48, 47, 1, 0)
    rows = read_output(out)
    assert len(rows) == 48 and not orphans(out)
    uri = {path: f"file://{path}" for path in broken}
    assert rows[uri[broken[0]]][2] is None and len(rows[uri[broken[0]]][1]) == 256
    assert rows[uri[broken[1]]][2] == "cannot decode image: empty file (0 bytes)"
    # one commit (the images of both sit in one shard, or each shard's commit replaces its own): the old rows
    # never coexist with the new ones in any version
    from deltalake import DeltaTable

    for number in range(version, len(list((out / "_delta_log").glob("*.json")))):
        table = DeltaTable(str(out), version=number).to_pyarrow_table(columns=["path"])
        paths = table.column("path").to_pylist()
        assert len(paths) == len(set(paths)) == 48, number
    assert sum(shard.images for shard in delta.read_table(location, S3Settings()).shards) == 48


def test_an_output_of_an_earlier_version_stays_readable_and_resume_converts_it(spark, tmp_path):
    """An output written before the Delta log (Spark's part files, `_SUCCESS`, a shard record, the manifest)
    is read from its folder; `--resume` converts it with one commit of its files, then adds to it."""
    images, out = tmp_path / "images", tmp_path / "out"
    grow(images, 1)
    settings = dict(mode="keys", input=str(images), output=str(out))
    sparkyfruit.encode(run_config(**settings))
    files = sorted(p.name for p in out.glob("*.parquet"))
    shutil.rmtree(out / "_delta_log")  # what an earlier version left
    (out / "_SUCCESS").write_bytes(b"")
    record = output_format.ShardRecord(1, 24, 24, 0, files)
    output_format.write_shard_record(locations.parse_location(str(out)), record, S3Settings())
    summary = sparkyfruit.inspect(str(out))
    assert summary.rows == 24 and "earlier version" in summary.table

    grow(images, 2)
    result = sparkyfruit.encode(run_config(**settings, resume=True))
    assert (result.added, result.rows, result.failed) == (24, 48, 0)
    assert not (out / "_SUCCESS").exists() and not (out / "_shards").exists() and not orphans(out)
    location = locations.parse_location(str(out))
    assert set(files) <= set(delta.read_table(location, S3Settings()).files)  # the old files, committed as they are
    shards = delta.read_table(location, S3Settings()).shards
    assert shards[0].run == "converted" and (shards[0].images, shards[0].rows) == (24, 24)
    assert sum(shard.images for shard in shards) == 48
    assert sparkyfruit.inspect(str(out)).table.startswith("Delta Lake, version 1,")
