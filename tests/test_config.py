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


@pytest.fixture
def images(tmp_path):
    (tmp_path / "images").mkdir()
    return str(tmp_path / "images")


def test_precedence_flag_over_env_over_file_over_default(images, tmp_path, monkeypatch):
    config_file = tmp_path / "run.toml"
    config_file.write_text('batch_size = 32\nimage_size = 160\nmodel = "resnet50"\nlimit = 7\n')
    monkeypatch.setenv("SPARKYFRUIT_BATCH_SIZE", "16")
    monkeypatch.setenv("SPARKYFRUIT_IMAGE_SIZE", "128")
    config = RunConfig.load(config_file, input=images, output=str(tmp_path / "out"), batch_size=8, limit=None)
    assert config.batch_size == 8  # flag beats env and file
    assert config.image_size == 128  # env beats file
    assert config.model == "resnet50"  # file beats default
    assert config.limit == 7  # a flag that was not given (None) does not hide the file
    assert config.mode == "df" and config.master == "local[*]"  # defaults


def test_env_alone_can_supply_required_settings(images, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKYFRUIT_INPUT", images)
    monkeypatch.setenv("SPARKYFRUIT_OUTPUT", str(tmp_path / "out"))
    monkeypatch.setenv("SPARKYFRUIT_MODE", "keys")
    config = RunConfig.load()
    assert config.mode == "keys" and config.input == images


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model": "vgg16"}, "Unknown --model 'vgg16'"),
        ({"mode": "stream"}, "Unknown --mode 'stream'"),
        ({"batch_size": -4}, "--batch-size must be between 1 and 4096; got -4"),
        ({"limit": 0}, "--limit must be a positive number"),
        ({"image_size": 16}, "--image-size must be between 32"),
        ({"weights": "/no/such/weights.h5"}, "--weights file is missing or unreadable"),
        ({"input": "gs://bucket/x"}, "unsupported scheme 'gs'"),
        ({"output": "s3://UPPER/x"}, "no valid bucket name"),
        ({"s3_endpoint": "127.0.0.1:9000"}, "--s3-endpoint must be an http(s) URL"),
        ({"alpha": 0.3}, "no ImageNet weights for mobilenet_v2 with --alpha 0.3"),
        ({"model": "resnet50", "alpha": 0.5}, "--alpha applies to mobilenet"),
        ({"master": "mesos-ish"}, "Unsupported --master"),
        ({"input": None}, "Missing --input"),
    ],
)
def test_bad_settings_fail_with_a_clear_message(images, tmp_path, overrides, message):
    settings = {"input": images, "output": str(tmp_path / "out"), **overrides}
    with pytest.raises(ConfigError) as caught:
        RunConfig.load(**settings)
    assert message in str(caught.value)
    assert caught.value.exit_code == 2


def test_config_file_errors(images, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("batch_size = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        RunConfig.load(bad, input=images, output=str(tmp_path / "o"))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("batchsize = 3\n")
    with pytest.raises(ConfigError, match="unknown settings: batchsize"):
        RunConfig.load(unknown, input=images, output=str(tmp_path / "o"))
    with pytest.raises(ConfigError, match="--config file not found"):
        RunConfig.load(tmp_path / "missing.toml", input=images, output=str(tmp_path / "o"))


def test_redacted_dump_drops_endpoint_userinfo(images, tmp_path):
    config = RunConfig.load(input=images, output=str(tmp_path / "o"), s3_endpoint="http://user:pa55word@minio:9000")
    dump = config.redacted()
    assert dump["s3_endpoint"] == "http://minio:9000"
    assert "pa55word" not in str(dump)


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
