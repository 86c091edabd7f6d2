"""Multi-node path for real: a Spark standalone master and 2 workers (1 core each) on 127.0.0.1."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import sparkyfruit
from devtools import standalone
from sparkyfruit.spark.class_cache import packages_identity, remember_jars
from sparkyfruit.spark.jars import local_jars
from sparkyfruit.spark.options import spark_options
from tests.helpers import SCRIPT, encode_args, read_output, run_config

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.spark, pytest.mark.slow, pytest.mark.s3]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    folder = tmp_path_factory.mktemp("standalone")
    cluster = standalone.start(folder)
    yield cluster, folder
    cluster.stop()
    shutil.rmtree(folder, ignore_errors=True)  # executors keep a copy of the S3A jars each: ~0.7 GB per run


def worker_reports(folder, both: bool) -> list[str]:
    """The line each Python worker of the newest application printed into its executor's stderr (which Python
    and which sparkyfruit ran), after checking that both workers ran tasks of it (`both`), or one at least.
    With --ship-env each executor unpacks the archive before its first task, and one that finishes well
    before the other may run all of a 192-image job alone."""
    reports, ran = [], []
    for worker in ("worker-0", "worker-1"):
        newest_app = max((folder / worker).glob("app-*"), key=lambda p: p.name)
        logs = "".join(p.read_text(errors="replace") for p in newest_app.glob("*/stderr"))
        ran += [worker] if "Finished task" in logs else []
        reports += [line for line in logs.splitlines() if "sparkyfruit worker:" in line]
    assert ran, "no executor logged a finished task"
    assert ran == ["worker-0", "worker-1"] or not both, ran
    return reports


def executor_fetches(folder) -> list[str]:
    """What the executors of the newest application fetched from the driver: `/jars/NAME` or `/files/NAME`."""
    fetched = []
    for worker in ("worker-0", "worker-1"):
        newest_app = max((folder / worker).glob("app-*"), key=lambda p: p.name)
        for log in newest_app.glob("*/stderr"):
            fetched += re.findall(
                r"INFO Executor: Fetching spark://\S+?(/(?:jars|files)/\S+)", log.read_text(errors="replace")
            )
    return fetched


@pytest.mark.parametrize("mode", ["keys", "df"])
def test_cluster_output_equals_local_output(spark, cluster, fruit_bucket, s3, tmp_path, mode):
    """Both modes on two workers give the local run's vectors. keys mode runs with --ship-env: its executors'
    Python is the unpacked archive and sparkyfruit comes from the shipped zip, not from this machine's venv
    (which the workers here could otherwise reach); df mode runs this interpreter on the workers."""
    cluster, folder = cluster
    local = sparkyfruit.encode(
        run_config(mode=mode, input=fruit_bucket, output=str(tmp_path / "local"), s3_endpoint=s3.endpoint)
    )
    out = tmp_path / "cluster"
    command = [
        SCRIPT,
        *encode_args(fruit_bucket, str(out), "--mode", mode),
        "--s3-endpoint",
        s3.endpoint,
        "--master",
        cluster.master_url,
    ]
    env = {**os.environ, "COLUMNS": "200"}
    if mode == "keys":
        command.append("--ship-env")
        env.pop("PYSPARK_PYTHON", None)
    else:
        env["PYSPARK_PYTHON"] = sys.executable  # it has sparkyfruit installed
        # as after an earlier run on this machine: the S3A jars that Ivy resolved (the suite's session's) are
        # remembered, and this run serves them to the executors as spark.jars
        resolved = local_jars(spark.sparkContext.getConf().get("spark.jars", ""))
        assert any("bundle" in jar for jar in resolved), resolved
        cli_config = run_config(mode=mode, input=fruit_bucket, output=str(out), master=cluster.master_url)
        remember_jars(packages_identity(spark_options(cli_config)), resolved)
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done: 192 images, 192 ok, 0 failed" in result.stdout

    expected, actual = read_output(tmp_path / "local"), read_output(out)
    assert local.rows == len(expected) == 192 and set(actual) == set(expected)
    for path, (label, features, error) in actual.items():
        assert error is None and label == expected[path][0]
        np.testing.assert_allclose(np.asarray(features), np.asarray(expected[path][1]), atol=1e-5)

    reports = worker_reports(folder, both=mode == "df")
    assert reports, "no executor reported its Python"
    if mode == "keys":  # the executors run LiteRT: their environment came without TensorFlow
        assert "without TensorFlow, which the LiteRT engine does not need" in " ".join(result.stderr.split())
        unpacked = list(folder.glob("worker-*/app-*/*/environment/lib/python*/site-packages"))
        assert any((site / "ai_edge_litert").is_dir() for site in unpacked), unpacked
        assert not any((site / "tensorflow").exists() for site in unpacked)
    if mode == "df":  # the AWS SDK bundle (686 MB) came once, as a jar, not again as a Python file
        fetched = executor_fetches(folder)
        assert any(name.startswith("/jars/") and "bundle" in name for name in fetched), fetched
        assert not [name for name in fetched if name.startswith("/files/") and name.endswith(".jar")], fetched
    for line in reports:
        if mode == "keys":
            assert "Executors' Python:" in result.stderr
            assert f"python {folder}" in line and "/environment/bin/python" in line, line
            assert "sparkyfruit.zip/sparkyfruit" in line, line
        else:
            assert f"python {sys.executable}" in line and "sparkyfruit.zip" not in line, line


def test_spark_submit_runs_the_same_command_in_client_mode(cluster, fruit_bucket, s3, tmp_path):
    """`spark-submit ... $(python -m sparkyfruit.submit) encode ...`: spark-submit's --master and --packages
    are used; without the S3A package the run stops with the line to add."""
    from sparkyfruit.spark.jars import bundled_hadoop_version, s3a_packages, spark_home

    cluster, _ = cluster
    entry = subprocess.run([sys.executable, "-m", "sparkyfruit.submit"], capture_output=True, text=True, check=True)
    submit = [str(spark_home() / "bin" / "spark-submit"), "--master", cluster.master_url]
    encode = [
        *encode_args(fruit_bucket, str(tmp_path / "out"), "--mode", "df"),
        "--s3-endpoint",
        s3.endpoint,
        "--limit",
        "16",
    ]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable, "COLUMNS": "200"}

    without_s3a = subprocess.run(
        [*submit, entry.stdout.strip(), *encode], capture_output=True, text=True, env=env, timeout=300
    )
    assert without_s3a.returncode == 2, without_s3a.stderr[-3000:]
    # spark-submit merges the Python driver's stderr into its stdout
    assert f"Add --packages {s3a_packages(bundled_hadoop_version())} to spark-submit" in without_s3a.stdout

    result = subprocess.run(
        [
            *submit,
            "--deploy-mode",
            "client",
            "--packages",
            s3a_packages(bundled_hadoop_version()),
            entry.stdout.strip(),
            *encode,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done: 16 images, 16 ok, 0 failed" in result.stdout
    assert len(read_output(tmp_path / "out")) == 16

    # cluster deploy mode needs YARN (or Kubernetes) for Python: a standalone master refuses it up front
    refused = subprocess.run(
        [*submit, "--deploy-mode", "cluster", entry.stdout.strip(), "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "not supported for python applications on standalone clusters" in (refused.stdout + refused.stderr).lower()
