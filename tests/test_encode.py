"""End to end on real parts: moto's S3 server over HTTP, local Spark, TensorFlow, the real ImageNet weights."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import sparkyfruit
from sparkyfruit.cli import app
from tests.helpers import (
    BROKEN_SAMPLE_FILE,
    SAMPLE,
    SAMPLE_BUCKET,
    SCRIPT,
    WEIGHTS,
    encode_args,
    read_output,
    run_config,
)

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def good_rows(rows: dict[str, tuple]) -> dict[str, tuple]:
    """An output's rows less the undecodable file that the shared sample outputs hold."""
    return {path: row for path, row in rows.items() if not path.endswith(BROKEN_SAMPLE_FILE)}


def nearest_centroid_accuracy(rows: dict[str, tuple]) -> float:
    """Even positions of each class's sorted files train, odd positions test; cosine to class centroids."""
    by_label: dict[str, list] = {}
    for path in sorted(rows):
        label, features, _ = rows[path]
        by_label.setdefault(label, []).append(np.asarray(features, dtype=np.float64))

    def unit(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    labels = sorted(by_label)
    centroids = unit(np.stack([np.mean(by_label[label][0::2], axis=0) for label in labels]))
    correct = total = 0
    for index, label in enumerate(labels):
        tests = unit(np.stack(by_label[label][1::2]))
        correct += int(np.sum(np.argmax(tests @ centroids.T, axis=1) == index))
        total += len(tests)
    return correct / total


def test_s3a_jars_stay_off_the_python_path(spark):
    """spark-submit ships --packages jars as Python files; the 690 MB SDK bundle on sys.path slows imports."""
    assert any("hadoop-aws" in jar for jar in spark.sparkContext.getConf().get("spark.jars", "").split(","))
    assert not [entry for entry in sys.path if entry.endswith(".jar")]
    assert not [name for name in spark.sparkContext._python_includes if name.endswith(".jar")]


@pytest.mark.s3
def test_no_credential_reaches_the_sessions_configuration_or_its_ui(spark, sample_outputs):
    """After runs from S3 in both modes (conftest's aws_env holds the keys in the environment): no value of
    Spark's configuration holds the access key or the secret, sparkyfruit puts neither into Hadoop's, and the
    Spark UI's environment page shows neither. (Spark itself copies AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY into
    Hadoop's configuration at start, SparkHadoopUtil.appendS3CredentialsFromEnvironment, under the six names
    below; its UI redacts them.)"""
    import urllib.request

    secrets = [os.environ["AWS_SECRET_ACCESS_KEY"], os.environ["AWS_ACCESS_KEY_ID"]]
    spark_own_copies = {
        "fs.s3.awsAccessKeyId",
        "fs.s3.awsSecretAccessKey",
        "fs.s3n.awsAccessKeyId",
        "fs.s3n.awsSecretAccessKey",
        "fs.s3a.access.key",
        "fs.s3a.secret.key",
    }
    context = spark.sparkContext
    spark_conf = dict(context.getConf().getAll())
    hadoop = context._jsc.hadoopConfiguration().getValByRegex(".*")
    hadoop_conf = {key: str(hadoop[key]) for key in hadoop.keySet()}
    assert any(key.startswith("fs.s3a.") for key in hadoop_conf) and len(spark_conf) > 10  # both really were read
    with urllib.request.urlopen(f"{context.uiWebUrl}/api/v1/applications/{context.applicationId}/environment") as page:
        environment = page.read().decode()
    assert "sparkProperties" in environment and "hadoopProperties" in environment

    def holding_a_credential(conf: dict[str, str]) -> set[str]:
        return {key for key, value in conf.items() if any(secret in value for secret in secrets)}

    assert not holding_a_credential(spark_conf)
    assert holding_a_credential(hadoop_conf) <= spark_own_copies, holding_a_credential(hadoop_conf) - spark_own_copies
    assert not [secret for secret in secrets if secret in environment], "a credential is on the UI's environment page"


@pytest.mark.s3
def test_keys_and_df_modes_give_the_same_rows_and_vectors(sample_outputs):
    results, outputs = sample_outputs.results, sample_outputs.rows
    broken = f"s3://{SAMPLE_BUCKET}/Training/{BROKEN_SAMPLE_FILE}"
    for mode in ("keys", "df"):
        assert (results[mode].rows, results[mode].ok, results[mode].failed, results[mode].dim) == (193, 192, 1, 256)
        assert len(outputs[mode]) == 193
        label, features, error = outputs[mode][broken]
        assert label == "Kiwi" and features is None and error.startswith("cannot decode image")
    assert set(outputs["keys"]) == set(outputs["df"])
    for path, (label, features, error) in good_rows(outputs["keys"]).items():
        assert path.startswith(f"s3://{SAMPLE_BUCKET}/Training/") and error is None
        assert label == path.split("/")[-2] == outputs["df"][path][0]
        keys_vector, df_vector = np.asarray(features), np.asarray(outputs["df"][path][1])
        assert keys_vector.shape == (256,) and np.all(np.isfinite(keys_vector))
        np.testing.assert_allclose(keys_vector, df_vector, atol=1e-5)
    assert {row[0] for row in outputs["keys"].values()} == {p.name for p in SAMPLE.iterdir() if p.is_dir()}


@pytest.mark.s3
def test_manifest_records_the_run(sample_outputs):
    results = sample_outputs.results
    manifest = dataclasses.asdict(results["df"].manifest)  # the manifest as its JSON reads
    assert manifest["counts"] == {"rows": 193, "ok": 192, "failed": 1}
    assert manifest["mode"] == "df" and manifest["input"] == f"s3://{SAMPLE_BUCKET}/Training"
    assert (manifest["model"], manifest["alpha"], manifest["image_size"], manifest["dim"]) == (
        "mobilenet",
        0.25,
        224,
        256,
    )
    assert manifest["weights_sha256"] == "dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf"
    assert manifest["versions"]["spark"] and manifest["versions"]["tensorflow"]
    assert manifest["duration_seconds"] > 0 and manifest["config"]["batch_size"] == 64
    on_disk = json.loads(Path(results["df"].output.removeprefix("file://"), "_sparkyfruit.json").read_text())
    assert on_disk == manifest


def test_feature_values_are_written_without_a_parquet_dictionary(tmp_path):
    """A dictionary of float values that hardly ever repeat only costs the task CPU (parquet_files.py). Real
    vectors fall back to plain values either way, so the file would not show it: values that repeat would
    keep a dictionary, and must not. The label column keeps one; the report counts what the file holds."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sparkyfruit import locations, parquet_files
    from sparkyfruit.s3_settings import S3Settings

    batch = pa.RecordBatch.from_pydict(
        {
            "path": [f"file:///f/{i}.jpg" for i in range(24)],
            "label": [f"label{i % 3}" for i in range(24)],
            "features": [[0.5] * 256 if i % 4 else None for i in range(24)],
            "error": [None if i % 4 else "cannot decode image: x" for i in range(24)],
        }
    )
    out = locations.parse_location(str(tmp_path / "out"))
    report = parquet_files.write_file(out, S3Settings(), "part-a.parquet", iter([batch.slice(0, 0), batch]))
    file = tmp_path / "out" / "part-a.parquet"
    assert (report.rows, report.ok, report.failed, report.bytes) == (24, 18, 6, file.stat().st_size)
    meta = pq.ParquetFile(file).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert not [e for e in encodings["features.list.element"] if "DICTIONARY" in e], encodings
    assert [e for e in encodings["label"] if "DICTIONARY" in e], encodings
    # no rows, no file
    assert parquet_files.write_file(out, S3Settings(), "part-b.parquet", iter([batch.slice(0, 0)])) is None
    assert not (tmp_path / "out" / "part-b.parquet").exists()


def test_a_file_gathers_the_tasks_batches_into_row_groups_of_row_group_rows(tmp_path, monkeypatch):
    """A task hands on batches of --batch-size rows; one row group per batch would make a file of many
    tiny row groups. They are gathered to ROW_GROUP_ROWS rows, in order, the last group taking the rest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sparkyfruit import locations, parquet_files
    from sparkyfruit.s3_settings import S3Settings

    monkeypatch.setattr(parquet_files, "ROW_GROUP_ROWS", 100)
    batches = [
        pa.RecordBatch.from_pydict(
            {
                "path": [f"file:///f/{start + i}.jpg" for i in range(30)],
                "label": ["a"] * 30,
                "features": [[float(start + i)] * 4 for i in range(30)],
                "error": [None] * 30,
            }
        )
        for start in range(0, 300, 30)
    ]
    out = locations.parse_location(str(tmp_path / "out"))
    report = parquet_files.write_file(out, S3Settings(), "part-c.parquet", iter(batches))
    file = pq.ParquetFile(tmp_path / "out" / "part-c.parquet")
    # 4 batches (120 rows) reach 100, twice; the last 2 batches (60 rows) end the file
    assert [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)] == [120, 120, 60]
    assert report.rows == report.ok == 300
    assert file.read().column("path").to_pylist() == [f"file:///f/{i}.jpg" for i in range(300)]


@pytest.mark.s3
def test_vectors_equal_a_direct_keras_call(sample_outputs):
    import keras

    outputs = {mode: good_rows(rows) for mode, rows in sample_outputs.rows.items()}
    model = keras.applications.MobileNet(
        alpha=0.25, input_shape=(224, 224, 3), include_top=False, pooling="avg", weights=str(WEIGHTS)
    )
    paths = sorted(outputs["keys"])[::50]
    files = [SAMPLE / path.removeprefix(f"s3://{SAMPLE_BUCKET}/Training/") for path in paths]
    batch = np.stack(
        [
            keras.utils.img_to_array(keras.utils.load_img(f, target_size=(224, 224), interpolation="bilinear"))
            for f in files
        ]
    )
    expected = model.predict_on_batch(keras.applications.mobilenet.preprocess_input(batch))
    for path, vector in zip(paths, expected):
        np.testing.assert_allclose(np.asarray(outputs["keys"][path][1]), vector, atol=1e-4)


@pytest.mark.s3
def test_real_weights_separate_the_classes_and_random_weights_do_not(sample_outputs, tmp_path):
    outputs = {mode: good_rows(rows) for mode, rows in sample_outputs.rows.items()}
    real = nearest_centroid_accuracy(outputs["keys"])
    config = run_config(mode="keys", input=str(SAMPLE), output=str(tmp_path / "random"), weights="none")
    result = sparkyfruit.encode(config)
    assert result.manifest.weights_sha256 is None and result.manifest.weights == "none"
    random_rows = read_output(tmp_path / "random")
    real_vectors = np.array([outputs["keys"][p][1] for p in sorted(outputs["keys"])])
    random_vectors = np.array(
        [
            random_rows[p.replace(f"s3://{SAMPLE_BUCKET}/Training", f"file://{SAMPLE}")][1]
            for p in sorted(outputs["keys"])
        ]
    )
    real_spread, random_spread = real_vectors.std(axis=0).max(), random_vectors.std(axis=0).max()
    print(
        f"nearest-centroid accuracy with ImageNet weights: {real:.3f}; largest per-feature spread across "
        f"images: ImageNet {real_spread:.3g}, random {random_spread:.3g}"
    )
    assert real >= 0.95
    # The seeded random MobileNet 0.25 squashes every image to ~1e-17: its vectors carry no information,
    # so the class structure above can only come from the ImageNet weights.
    assert real_spread > 0.1 and random_spread < 1e-6 * real_spread


@pytest.mark.s3
def test_local_folder_to_s3_output_then_inspect(spark, s3, tmp_path):
    from devtools import local_s3

    local_s3.client(s3.endpoint).create_bucket(Bucket="features")
    config = run_config(
        mode="df", input=str(SAMPLE), output="s3://features/run1", s3_endpoint=s3.endpoint, limit=40, pattern="*.jpg"
    )
    result = sparkyfruit.encode(config)
    assert (result.rows, result.failed, result.output) == (40, 0, "s3://features/run1")
    keys = {o["Key"] for o in local_s3.client(s3.endpoint).list_objects_v2(Bucket="features")["Contents"]}
    assert "run1/_sparkyfruit.json" in keys and any(k.endswith(".parquet") for k in keys)

    runner = CliRunner()
    as_json = runner.invoke(app, ["inspect", "s3://features/run1", "--json", "--s3-endpoint", s3.endpoint])
    assert as_json.exit_code == 0, as_json.output
    summary = json.loads(as_json.output)
    assert {"rows", "ok", "failed", "dim", "model", "image_size", "weights_sha256", "mode", "labels"} <= set(summary)
    assert summary["finished"] is True
    assert (summary["rows"], summary["ok"], summary["failed"], summary["dim"], summary["mode"]) == (
        40,
        40,
        0,
        256,
        "df",
    )
    # --limit takes the first 40 paths in order: Apple Braeburn (24) then 16 Avocado
    assert summary["labels"] == {"Apple Braeburn": 24, "Avocado": 16}

    human = runner.invoke(app, ["inspect", "s3://features/run1", "--s3-endpoint", s3.endpoint], env={"COLUMNS": "120"})
    assert human.exit_code == 0
    for text in ["rows", "40", "mobilenet", "Apple Braeburn", "Avocado", "images per label"]:
        assert text in human.output


@pytest.mark.s3
def test_weights_from_s3_and_overwrite_of_an_s3_output(spark, s3, tmp_path):
    from devtools import local_s3

    client = local_s3.client(s3.endpoint)
    client.create_bucket(Bucket="models")
    client.upload_file(str(WEIGHTS), "models", "mobilenet/mobilenet_2_5_224_tf_no_top.h5")
    settings = dict(
        mode="keys",
        input=str(SAMPLE),
        output="s3://models/features",
        s3_endpoint=s3.endpoint,
        weights="s3://models/mobilenet/mobilenet_2_5_224_tf_no_top.h5",
        limit=8,
    )
    first = sparkyfruit.encode(run_config(**settings))
    assert first.manifest.weights_sha256 == "dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf"
    assert first.manifest.weights == "s3://models/mobilenet/mobilenet_2_5_224_tf_no_top.h5"

    from sparkyfruit.errors import ConfigError

    with pytest.raises(ConfigError, match="already holds a sparkyfruit output; nothing was touched"):
        sparkyfruit.encode(run_config(**{**settings, "limit": 4}))
    second = sparkyfruit.encode(run_config(**{**settings, "limit": 4, "overwrite": True}))
    assert second.rows == 4
    assert sparkyfruit.inspect("s3://models/features", s3=run_config(**settings).s3_only()).rows == 4


def test_overwrite_checks_the_very_listing_it_deletes(spark, sample_outputs, tmp_path, monkeypatch):
    """A file that is not ours, put into the output after the first check (here: while the run prepares),
    stops --overwrite before anything is deleted."""
    import shutil

    from sparkyfruit import sink
    from sparkyfruit.errors import ConfigError

    out = tmp_path / "out"
    shutil.copytree(sample_outputs.keys, out)
    before = sorted(path.relative_to(out) for path in out.rglob("*"))
    prepare = sink.prepare

    def prepare_then_a_user_writes(config):
        state = prepare(config)
        (out / "notes.txt").write_text("mine")
        return state

    monkeypatch.setattr(sink, "prepare", prepare_then_a_user_writes)
    config = run_config(mode="keys", input=str(SAMPLE), output=str(out), overwrite=True, limit=4)
    with pytest.raises(ConfigError, match=r"--overwrite stopped: .* now holds files .* \(notes.txt\); nothing was"):
        sparkyfruit.encode(config)
    assert sorted(path.relative_to(out) for path in out.rglob("*")) == sorted([*before, Path("notes.txt")])


@pytest.mark.integration
def test_installed_console_script_encodes_a_local_folder(tmp_path):
    """The real entry point, in its own process: local folder in, local folder out, then inspect."""
    script = SCRIPT
    out = tmp_path / "out"
    env = {**os.environ, "COLUMNS": "200", "SPARKYFRUIT_MASTER": "local[2]"}
    encode = subprocess.run(
        [
            script,
            *encode_args(str(SAMPLE), str(out), "--mode", "keys"),
            "--limit",
            "24",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert encode.returncode == 0, encode.stderr
    assert "Spark UI: http" in encode.stderr and "24/24 images" in encode.stderr  # progress counts images
    assert "done: 24 images, 24 ok, 0 failed" in encode.stdout and "images/s" in encode.stdout
    inspect = subprocess.run([script, "inspect", str(out), "--json"], capture_output=True, text=True, timeout=60)
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["labels"] == {"Apple Braeburn": 24}


def test_a_workers_output_file_system_is_kept_then_built_again_with_fresh_credentials(tmp_path, monkeypatch):
    """Tasks of one Python worker share its file system; after FILESYSTEM_SECONDS it is built again, so the
    credentials it holds (an instance role's expire) are never older than that."""
    from sparkyfruit import locations, parquet_files
    from sparkyfruit.s3_settings import S3Settings

    out = locations.parse_location(str(tmp_path / "out"))
    first, _ = parquet_files.filesystem(out, S3Settings())
    assert parquet_files.filesystem(out, S3Settings())[0] is first
    monkeypatch.setattr(parquet_files, "FILESYSTEM_SECONDS", -1.0)
    assert parquet_files.filesystem(out, S3Settings())[0] is not first
