"""EMR's path for real: Spark on YARN with HDFS beside it, from Hadoop's own minicluster (devtools/minicluster.py):
client and cluster deploy mode, keys mode from the local S3 server, df mode over hdfs://, --ship-env, and an
executor's container killed mid-task."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.dataset as ds
import pytest

import sparkyfruit
from devtools import minicluster
from sparkyfruit import locations, output_format
from sparkyfruit.s3_settings import S3Settings
from tests.helpers import (
    REAL_MODEL,
    SAMPLE,
    SCRIPT,
    by_label_and_name,
    encode_args,
    read_output,
    run_config,
    seed_hdfs,
    worker_hooks_env,
)

pytestmark = [pytest.mark.integration, pytest.mark.yarn, pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def yarn(tmp_path_factory):
    """One HDFS and YARN for the module, with the sample under /data/Training on HDFS."""
    folder = tmp_path_factory.mktemp("minicluster")
    cluster = minicluster.start(folder)
    try:
        assert seed_hdfs(cluster.default_fs, "/data/Training") == 192
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def local_vectors(spark, tmp_path_factory):
    """The sample encoded by a local run (the suite's local session), keyed by label/file name."""
    out = tmp_path_factory.mktemp("local") / "out"
    assert sparkyfruit.encode(run_config(input=str(SAMPLE), output=str(out), mode="keys")).rows == 192
    return by_label_and_name(read_output(out))


def client_env(cluster: minicluster.MiniCluster, **extra: str) -> dict[str, str]:
    env = {**os.environ, **cluster.env, "COLUMNS": "200", **extra}
    env.pop("PYSPARK_PYTHON", None)  # the executors' Python must come from --ship-env
    return env


def only_new_application(cluster: minicluster.MiniCluster, before: set[str]) -> dict:
    """The run's application: the one new since `before`, or the second of two when the driver's first start
    failed inside SparkContext and session._start launched it again (seen once: a race in Jetty's start of
    the Spark UI, ConcurrentModificationException in ServletHandler.initialize)."""
    new = sorted((app for app in cluster.applications() if app["id"] not in before), key=lambda app: app["id"])
    assert 1 <= len(new) <= 2, [{k: app.get(k) for k in ("id", "state", "finalStatus", "diagnostics")} for app in new]
    return new[-1]


def assert_same_vectors(actual: dict[str, tuple], expected: dict[str, tuple]) -> None:
    assert set(actual) == set(expected) and len(actual) == 192
    for name, (label, features, error) in actual.items():
        assert error is None and label == expected[name][0]
        np.testing.assert_allclose(np.asarray(features), np.asarray(expected[name][1]), atol=1e-5)


def read_hdfs_output(uri: str) -> dict[str, tuple]:
    """The rows of an HDFS output, read through its Delta log, after checking that the log names exactly the
    folder's data files (the tasks wrote them to HDFS, the driver committed them)."""
    from sparkyfruit import delta, storage

    location = locations.parse_location(uri)
    on_hdfs = [name for name in storage.list_files(location, S3Settings()) if name.endswith(".parquet")]
    assert on_hdfs and sorted(on_hdfs) == delta.read_table(location, S3Settings()).files
    table = output_format.open_dataset(location, S3Settings()).to_table()
    return {row["path"]: (row["label"], row["features"], row["error"]) for row in table.to_pylist()}


def executor_reports(cluster: minicluster.MiniCluster, application_id: str) -> list[str]:
    """The line each Python worker prints into its executor's stderr: which Python and sparkyfruit ran."""
    logs = cluster.container_logs(application_id)
    return [
        line
        for name, text in logs.items()
        if name.endswith("/stderr")
        for line in text.splitlines()
        if "sparkyfruit worker:" in line
    ]


@pytest.mark.s3
@pytest.mark.parametrize("mode", ["keys", "df"])
def test_client_mode_with_ship_env_equals_a_local_run(yarn, local_vectors, s3, fruit_bucket, tmp_path, mode):
    """`encode --master yarn --ship-env`: keys mode GETs from the local S3 server into a local folder; df mode reads
    hdfs:// and writes hdfs://, which `inspect` then reads without Spark. The executors ran the shipped Python."""
    env = client_env(yarn)
    if mode == "keys":
        # YARN's containers do not inherit this process's environment, and sparkyfruit never forwards
        # credentials (the Spark UI would show them): the executors find the profile's file, as every node would
        credentials = tmp_path / "credentials"
        credentials.write_text(
            f"[yarn-test]\naws_access_key_id = {env.pop('AWS_ACCESS_KEY_ID')}\n"
            f"aws_secret_access_key = {env.pop('AWS_SECRET_ACCESS_KEY')}\n"
        )
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(credentials)
        source, out = fruit_bucket, str(tmp_path / "out")
        extra = ["--s3-endpoint", s3.endpoint, "--profile", "yarn-test"]
    else:
        source, out, extra = f"{yarn.default_fs}/data/Training", f"{yarn.default_fs}/features/client-df", []
    before = {app["id"] for app in yarn.applications()}
    command = [SCRIPT, *encode_args(source, out, "--mode", mode), *extra, "--master", "yarn", "--ship-env"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done: 192 images, 192 ok, 0 failed" in result.stdout
    said = " ".join(result.stderr.split())
    assert "Executors' Python: hdfs:///user/" in said  # kept on HDFS, not staged
    assert "-without-tensorflow.tar.gz" in said  # the executors run LiteRT

    app = only_new_application(yarn, before)
    assert (app["state"], app["finalStatus"], app["applicationType"]) == ("FINISHED", "SUCCEEDED", "SPARK")
    reports = executor_reports(yarn, app["id"])
    assert len(reports) >= 2, reports  # both executors' workers
    for line in reports:
        assert "/environment/bin/python, sparkyfruit from sparkyfruit.zip/sparkyfruit" in line, line

    if mode == "keys":
        assert_same_vectors(by_label_and_name(read_output(out)), local_vectors)
        return
    assert_same_vectors(by_label_and_name(read_hdfs_output(out)), local_vectors)
    inspected = subprocess.run([SCRIPT, "inspect", out], capture_output=True, text=True, timeout=120)
    assert inspected.returncode == 0, inspected.stderr
    assert "rows 192 ok 192 failed 0 dim 256" in " ".join(inspected.stdout.split()), inspected.stdout


def test_cluster_deploy_mode_runs_the_driver_in_the_application_master(yarn, tmp_path, monkeypatch):
    """EMR's step: `spark-submit --master yarn --deploy-mode cluster` with the entry file and the shipped
    environment. The driver is the application master's container; it writes a complete output on HDFS."""
    from sparkyfruit.spark import ship_env
    from sparkyfruit.spark import yarn as yarn_cache
    from sparkyfruit.spark.jars import spark_home

    for name, value in yarn.env.items():
        monkeypatch.setenv(name, value)
    # docs/cluster.md's step: the whole environment (the driver converts the network), kept on HDFS
    packed = subprocess.run(
        [sys.executable, "-m", "sparkyfruit.spark.ship_env"],
        capture_output=True,
        text=True,
        env=client_env(yarn),
        timeout=600,
    )
    assert packed.returncode == 0, packed.stderr[-3000:]
    archive = packed.stdout.strip()
    assert archive.startswith("hdfs:///user/") and archive.endswith(".tar.gz") and "without" not in archive, archive
    shipped = ship_env.ship(keep_on_hdfs=True)  # the same archive, from the cache, and the code zip beside it
    assert (shipped.on_cluster, shipped.with_tensorflow, shipped.built_seconds) == (archive, True, None)
    jars = yarn_cache.spark_jars_archive()
    assert jars, "the default file system is this HDFS"
    entry = subprocess.run([sys.executable, "-m", "sparkyfruit.submit"], capture_output=True, text=True, check=True)
    out = f"{yarn.default_fs}/features/cluster-mode"
    before = {app["id"] for app in yarn.applications()}
    command = [
        str(spark_home() / "bin" / "spark-submit"),
        "--master",
        "yarn",
        "--deploy-mode",
        "cluster",
        "--archives",
        shipped.spark_archive,
        "--py-files",
        str(shipped.code),
        "--conf",
        f"spark.yarn.archive={jars}",
        "--conf",
        f"spark.yarn.appMasterEnv.PYSPARK_PYTHON={ship_env.EXECUTOR_PYTHON}",
        "--conf",
        f"spark.pyspark.python={ship_env.EXECUTOR_PYTHON}",
        entry.stdout.strip(),
        "encode",
        "--input",
        f"{yarn.default_fs}/data/Training",
        "--output",
        out,
        *REAL_MODEL,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=client_env(yarn), timeout=600)
    app = only_new_application(yarn, before)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (app["state"], app["finalStatus"]) == ("FINISHED", "SUCCEEDED")

    logs = yarn.container_logs(app["id"])
    driver = next(name.split("/")[0] for name in logs if name.endswith("_000001/stdout"))
    assert "done: 192 images, 192 ok, 0 failed" in logs[f"{driver}/stdout"]  # the CLI's own summary, in the AM
    assert f'PYSPARK_PYTHON="{ship_env.EXECUTOR_PYTHON}"' in logs[f"{driver}/launch_container.sh"]
    rows = read_hdfs_output(out)
    assert len(rows) == 192 and all(error is None for _, _, error in rows.values())
    assert sparkyfruit.inspect(out).rows == 192


def test_a_killed_executor_container_costs_only_its_tasks(yarn, tmp_path):
    """An executor's JVM is killed half-way through a task (the tests' worker hook, tests/worker_hooks/, on the
    Python path, and its variable in spark-defaults.conf's executor environment): YARN reports the container
    lost, Spark reruns its tasks elsewhere, and the output has every image exactly once."""
    marker = tmp_path / "crashed"
    conf = tmp_path / "spark-conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text(f"spark.executorEnv.SPARKYFRUIT_TEST_CRASH_EXECUTOR_ONCE {marker}\n")
    out = tmp_path / "out"
    before = {app["id"] for app in yarn.applications()}
    command = [
        SCRIPT,
        *encode_args(SAMPLE, out, "--mode", "keys"),
        "--batch-size",
        "16",
        "--master",
        "yarn",
        "--ship-env",
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=worker_hooks_env(client_env(yarn, SPARK_CONF_DIR=str(conf))),
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker.exists()  # an executor really died
    assert "done: 192 images, 192 ok, 0 failed" in result.stdout
    app = only_new_application(yarn, before)
    assert app["finalStatus"] == "SUCCEEDED"
    log = next(line.split(": ", 1)[1] for line in result.stderr.splitlines() if line.startswith("Spark log: "))
    driver_log = open(log, errors="replace").read()
    assert "ExecutorLostFailure" in driver_log and "Exit status: 137" in driver_log  # YARN's report of the kill

    paths = ds.dataset(str(out), format="parquet").to_table(columns=["path"]).column("path").to_pylist()
    rows = read_output(out)
    assert len(paths) == len(set(paths)) == len(rows) == 192 and set(by_label_and_name(rows)) == {
        f"{image.parent.name}/{image.name}" for image in SAMPLE.rglob("*.jpg")
    }
