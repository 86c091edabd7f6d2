import pytest

from sparkyfruit.config import RunConfig
from sparkyfruit.errors import ConfigError
from tests.helpers import SAMPLE, cli


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
        # an unknown --model: tests/test_cli.py (its suggestions look the name up in the installed Keras)
        ({"mode": "stream"}, "Unknown --mode 'stream'"),
        ({"batch_size": -4}, "--batch-size must be between 1 and 4096; got -4"),
        ({"limit": 0}, "--limit must be a positive number"),
        ({"image_size": 16}, "--image-size must be between 32"),
        ({"weights": "/no/such/weights.h5"}, "--weights file is missing or unreadable"),
        ({"input": "gs://bucket/x"}, "unsupported scheme 'gs'"),
        ({"output": "s3://UPPER/x"}, "no valid bucket name"),
        ({"s3_endpoint": "127.0.0.1:9000"}, "--s3-endpoint must be an http(s) URL"),
        ({"alpha": 0.3}, "no ImageNet weights for mobilenet_v2 with --alpha 0.3"),
        ({"model": "resnet50", "alpha": 0.5}, "--alpha applies to the mobilenet family"),
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


def test_an_endpoint_with_credentials_is_refused_without_repeating_them(images, tmp_path, monkeypatch):
    """Keys in --s3-endpoint would reach fs.s3a.endpoint, which Spark's UI shows: refused before anything
    runs, with the URL shown without them, and config show hides them too."""
    endpoint = "http://user:pa55word@minio:9000"
    result = cli("encode", "--input", images, "--output", tmp_path / "o", "--s3-endpoint", endpoint)
    assert result.exit_code == 2, result.output
    assert "--s3-endpoint http://***@minio:9000 holds a user name or password" in result.output
    assert "--profile" in result.output and len(result.output.strip().splitlines()) == 1
    assert "pa55word" not in result.output and "user:" not in result.output and not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="got 'ftp://\\*\\*\\*@minio'"):
        RunConfig.load(input=images, output=str(tmp_path / "o"), s3_endpoint="ftp://user:pa55word@minio")
    monkeypatch.setenv("SPARKYFRUIT_S3_ENDPOINT", endpoint)
    shown = cli("config", "show")
    assert "http://***@minio:9000" in shown.output and "pa55word" not in shown.output


@pytest.mark.parametrize(
    ("setting", "message"),
    [("limit", "--limit must be a positive number of images; got 0."), ("shard_size", "shard_size must be a positive")],
)
def test_a_count_of_images_below_one_is_refused_with_its_name(setting, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.load(input=str(SAMPLE), output="/tmp/unused-out", **{setting: 0})
