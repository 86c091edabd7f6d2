"""How a run's Spark session is made, mostly without starting one: the Spark and Hadoop options, the jars
pulled, the spark-submit flags; and, in the test session, that Ctrl-C cancels only the run's own jobs."""

import pytest

from sparkyfruit.config import RunConfig
from sparkyfruit.errors import ConfigError
from sparkyfruit.spark.jars import (
    bundled_hadoop_version,
    s3a_packages,
    spark_build,
    spark_submit_flags,
)
from sparkyfruit.spark.options import s3a_options, spark_options


def test_hadoop_version_is_read_from_the_installed_spark(tmp_path):
    version = bundled_hadoop_version()
    assert version.count(".") == 2 and version.startswith("3.")
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "hadoop-client-api-3.3.4.jar").write_bytes(b"")
    assert bundled_hadoop_version(tmp_path) == "3.3.4"
    (jars / "hadoop-client-api-3.3.4.jar").unlink()
    with pytest.raises(ConfigError, match="Cannot tell which Hadoop"):
        bundled_hadoop_version(tmp_path)


def test_s3a_settings_for_a_custom_endpoint_hold_no_credentials(images, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    config = RunConfig.load(input="s3://bucket/in", output=str(tmp_path / "o"), s3_endpoint="http://127.0.0.1:9000")
    options = s3a_options(config)
    assert options["fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert options["fs.s3a.path.style.access"] == "true"
    assert options["fs.s3a.connection.ssl.enabled"] == "false"
    assert options["fs.s3a.endpoint.region"] == "us-east-1"
    everything = spark_options(config)
    assert everything["spark.jars.packages"] == f"org.apache.hadoop:hadoop-aws:{bundled_hadoop_version()}"
    assert "very-secret-value" not in str(everything)
    assert not any("secret" in key.lower() or "access.key" in key for key in everything)


def test_local_runs_do_not_pull_s3a(images, tmp_path):
    config = RunConfig.load(input=images, output=str(tmp_path / "o"))
    assert "spark.jars.packages" not in spark_options(config)


def test_only_df_mode_reading_s3_pulls_s3a(tmp_path):
    """keys mode GETs with obstore in the Python workers, and the tasks write the output's files with pyarrow:
    the JVM needs S3A only for df mode to read S3 (EMRFS, on EMR, is already there)."""
    for mode, output in (("keys", "s3://bucket/out"), ("keys", str(tmp_path / "o")), ("df", "s3://bucket/out")):
        options = spark_options(RunConfig.load(input="s3://bucket/in", output=output, mode=mode))
        jars = {key: value for key, value in options.items() if "commit" in key or key.startswith("spark.jars.")}
        expected = {"spark.jars.packages": f"org.apache.hadoop:hadoop-aws:{bundled_hadoop_version()}"}
        assert jars == (expected if mode == "df" else {}), (mode, output)
    assert "spark.jars.packages" not in spark_options(RunConfig.load(input=str(tmp_path), output="s3://bucket/o"))
    emrfs = RunConfig.load(input="s3://bucket/in", output="s3://bucket/out", spark_s3_scheme="s3")
    assert "spark.jars.packages" not in spark_options(emrfs)


def test_the_spark_build_is_read_from_its_jars(tmp_path):
    import pyspark

    scala, version = spark_build()
    assert version == pyspark.__version__ and scala in ("2.12", "2.13")
    (tmp_path / "jars").mkdir()
    (tmp_path / "jars" / "spark-core_2.13-4.1.2.jar").write_bytes(b"")
    assert spark_build(tmp_path) == ("2.13", "4.1.2")
    (tmp_path / "jars" / "spark-core_2.13-4.1.2.jar").unlink()
    (tmp_path / "jars" / "spark-sql_2.13-4.1.2.jar").write_bytes(b"")
    with pytest.raises(ConfigError, match="Cannot tell which Spark"):
        spark_build(tmp_path)


def test_spark_submit_flags_name_the_jars_a_local_start_pulls():
    config = RunConfig.load(input="s3://bucket/in", output="s3://bucket/out")
    options = spark_options(config)
    assert spark_submit_flags(config) == f"--packages {options['spark.jars.packages']}"
    assert options["spark.jars.packages"] == s3a_packages(bundled_hadoop_version())


@pytest.mark.spark
def test_ctrl_c_cancels_only_this_runs_jobs_and_not_the_sessions_others(spark):
    """In a shared session (a notebook's), Ctrl-C during a run cancels the run's jobs (its thread's tag) and
    leaves a job of the session's other user running to its end."""
    import os
    import signal
    import threading
    import time

    from sparkyfruit.spark.interrupt import SigintGuard

    context = spark.sparkContext
    others: dict = {}

    def the_other_users_job():
        try:
            others["count"] = context.parallelize(range(2), 2).map(lambda x: (time.sleep(6), x)[1]).count()
        except Exception as exc:  # noqa: BLE001 - the test reports what stopped it
            others["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"

    other = threading.Thread(target=the_other_users_job)
    other.start()
    with SigintGuard() as guard:
        guard.watch(context)
        threading.Timer(2, os.kill, (os.getpid(), signal.SIGINT)).start()
        started = time.monotonic()
        with pytest.raises(Exception, match="(?i)cancel"):
            context.parallelize(range(2), 2).map(lambda x: (time.sleep(20), x)[1]).count()
        assert time.monotonic() - started < 15 and guard.received
    other.join(60)
    assert others == {"count": 2}
    assert guard.tag not in (context.getJobTags() or set())
