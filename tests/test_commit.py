"""S3 outputs are committed by the S3A magic committer where Spark's spark-hadoop-cloud module at Spark's own
version can be had: the `_SUCCESS` it writes is its JSON report, naming the committer and every file it
committed. Where Maven cannot serve that module, the run stops with one line naming it and the way out (a
run of its own: the failure is in starting Spark)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

import sparkyfruit
from devtools import local_s3
from devtools.maven import s3_committer_here
from tests.helpers import SAMPLE, SCRIPT, encode_args, run_config

pytestmark = [pytest.mark.s3, pytest.mark.spark, pytest.mark.slow]
CLASSES = sorted(p.name for p in SAMPLE.iterdir() if p.is_dir())[:2]


def committer_report(client, bucket: str, prefix: str) -> dict:
    return json.loads(client.get_object(Bucket=bucket, Key=f"{prefix}/_SUCCESS")["Body"].read())


def parquet_keys(client, bucket: str, prefix: str) -> set[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])
    return {entry["Key"] for entry in listed if entry["Key"].endswith(".parquet")}


@pytest.mark.parametrize("mode", ["df", "keys"])
def test_an_s3_output_is_committed_by_the_committer_this_spark_has_also_on_resume(spark, s3, tmp_path, mode):
    """Where Maven serves spark-hadoop-cloud at this Spark's version (the pyspark 3.5.8 pass), the magic
    committer commits, and its `_SUCCESS` report names exactly the files of each run. Elsewhere (pyspark 4.3:
    Maven lacks the module) the run, like the session, uses the rename committer: no magic staging, and the
    manifest says so."""
    committer, why = s3_committer_here()
    print(f"committer: {committer} ({why})")
    client = local_s3.client(s3.endpoint)
    client.create_bucket(Bucket="features")
    images = tmp_path / "images"
    shutil.copytree(SAMPLE / CLASSES[0], images / CLASSES[0])
    settings = dict(mode=mode, input=str(images), output="s3://features/run", s3_endpoint=s3.endpoint)

    first = sparkyfruit.encode(run_config(**settings))
    first_files = parquet_keys(client, "features", "run")
    assert first_files and first.rows == 24 and first.manifest.config["s3_committer"] == committer
    if committer == "magic":
        report = committer_report(client, "features", "run")
        assert report["committer"] == "magic", report
        assert {name.lstrip("/") for name in report["filenames"]} == first_files

    shutil.copytree(SAMPLE / CLASSES[1], images / CLASSES[1])
    resumed = sparkyfruit.encode(run_config(**settings, resume=True))
    assert (resumed.added, resumed.rows, resumed.failed) == (24, 48, 0)
    added_files = parquet_keys(client, "features", "run") - first_files
    assert added_files
    if committer == "magic":
        report = committer_report(client, "features", "run")
        assert report["committer"] == "magic" and {name.lstrip("/") for name in report["filenames"]} == added_files
    everything = client.list_objects_v2(Bucket="features", Prefix="run/")["Contents"]
    assert not [entry["Key"] for entry in everything if "__magic" in entry["Key"]]  # no staging area is left
    summary = sparkyfruit.inspect("s3://features/run", s3=run_config(**settings).s3_only())
    assert (summary.rows, summary.ok) == (48, 48)
    assert summary.labels == {CLASSES[0]: 24, CLASSES[1]: 24}


@pytest.mark.integration
def test_a_committer_module_maven_cannot_serve_stops_with_the_way_out(s3, tmp_path):
    committer, why = s3_committer_here()
    if committer == "magic":  # .ci/run runs this case only on the pyspark whose module Maven lacks (4.3)
        pytest.skip(f"Maven serves the module here ({why}), so there is no failure to show")
    local_s3.client(s3.endpoint).create_bucket(Bucket="features")
    env = {**os.environ, "COLUMNS": "300", "SPARKYFRUIT_MASTER": "local[2]", "TMPDIR": str(tmp_path)}
    env.pop("SPARKYFRUIT_S3_COMMITTER", None)
    script = SCRIPT
    encode = [
        script,
        *encode_args(str(SAMPLE), "s3://features/run"),
        "--s3-endpoint",
        s3.endpoint,
        "--limit",
        "4",
    ]
    result = subprocess.run(encode, capture_output=True, text=True, env=env, timeout=300)
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output and output.count("error:") == 1, output
    from sparkyfruit.spark.jars import hadoop_cloud_package

    assert f"Spark could not fetch {hadoop_cloud_package()}" in output
    assert "--s3-committer file" in output
    # nothing was written, so the same command with the rename committer goes through
    assert "Contents" not in local_s3.client(s3.endpoint).list_objects_v2(Bucket="features")
    renamed = subprocess.run([*encode, "--s3-committer", "file"], capture_output=True, text=True, env=env, timeout=300)
    assert renamed.returncode == 0, renamed.stderr[-3000:]
    assert "done: 4 images, 4 ok" in renamed.stdout
