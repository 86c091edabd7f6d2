"""How a run's Spark session is made, without starting one: the Spark and Hadoop options, the jars pulled,
the spark-submit flags."""

import pytest

from sparkyfruit.config import RunConfig
from sparkyfruit.errors import ConfigError
from sparkyfruit.spark.jars import (
    bundled_hadoop_version,
    hadoop_cloud_package,
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


def test_keys_mode_pulls_s3a_only_for_an_s3_output(tmp_path):
    """keys mode GETs with boto3 in the Python workers: the JVM needs S3A only to write the output."""
    to_folder = RunConfig.load(input="s3://bucket/in", output=str(tmp_path / "o"), mode="keys")
    assert "spark.jars.packages" not in spark_options(to_folder)
    to_s3 = RunConfig.load(input="s3://bucket/in", output="s3://bucket/out", mode="keys")
    assert "spark.jars.packages" in spark_options(to_s3)


def test_the_committer_module_matches_the_installed_spark(tmp_path):
    import pyspark

    scala, version = spark_build()
    assert version == pyspark.__version__ and scala in ("2.12", "2.13")
    assert hadoop_cloud_package() == f"org.apache.spark:spark-hadoop-cloud_{scala}:{version}"
    (tmp_path / "jars").mkdir()
    (tmp_path / "jars" / "spark-core_2.13-4.1.2.jar").write_bytes(b"")
    assert hadoop_cloud_package(tmp_path) == "org.apache.spark:spark-hadoop-cloud_2.13:4.1.2"
    (tmp_path / "jars" / "spark-core_2.13-4.1.2.jar").unlink()
    (tmp_path / "jars" / "spark-sql_2.13-4.1.2.jar").write_bytes(b"")
    with pytest.raises(ConfigError, match="Cannot tell which Spark"):
        spark_build(tmp_path)


def test_only_an_s3a_output_uses_the_magic_committer(images, tmp_path):
    def committer_settings(**settings) -> dict[str, str]:
        options = spark_options(RunConfig.load(input="s3://bucket/in", **settings))
        return {key: value for key, value in options.items() if "commit" in key or key.startswith("spark.jars.")}

    magic = committer_settings(output="s3://bucket/out")
    assert magic["spark.jars.packages"].split(",") == [
        f"org.apache.hadoop:hadoop-aws:{bundled_hadoop_version()}",
        hadoop_cloud_package(),
    ]
    assert (
        magic["spark.sql.sources.commitProtocolClass"] == "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol"
    )
    assert magic["spark.sql.parquet.output.committer.class"].endswith("BindingParquetOutputCommitter")
    assert magic["spark.hadoop.fs.s3a.committer.name"] == "magic"
    assert "com.google.cloud.bigdataoss:gcs-connector" in magic["spark.jars.excludes"].split(",")

    renames = committer_settings(output="s3://bucket/out", s3_committer="file")
    assert renames == {"spark.jars.packages": f"org.apache.hadoop:hadoop-aws:{bundled_hadoop_version()}"}
    assert committer_settings(output=str(tmp_path / "o")) == {"spark.jars.packages": renames["spark.jars.packages"]}
    assert committer_settings(output="s3://bucket/out", spark_s3_scheme="s3") == {}  # EMRFS commits its own way


def test_spark_submit_flags_name_the_jars_a_local_start_pulls():
    magic = RunConfig.load(input="s3://bucket/in", output="s3://bucket/out")
    options = spark_options(magic)
    assert spark_submit_flags(magic) == (
        f"--packages {options['spark.jars.packages']} --exclude-packages {options['spark.jars.excludes']}"
    )
    assert hadoop_cloud_package() in options["spark.jars.packages"]
    renames = RunConfig.load(input="s3://bucket/in", output="s3://bucket/out", s3_committer="file")
    assert spark_submit_flags(renames) == f"--packages {s3a_packages(bundled_hadoop_version())}"
