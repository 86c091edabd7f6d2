"""Unreachable or wrong S3, in both modes: one clear line that names the endpoint or bucket and what to
check, exit code 1, in seconds (a quick LIST runs before Spark starts), never a traceback or a hang."""

from __future__ import annotations

import json
import socket
import time

import boto3
import pytest
from typer.testing import CliRunner

import sparkyfruit
from devtools import local_s3
from sparkyfruit.cli import app
from sparkyfruit.errors import ConfigError
from tests.helpers import SAMPLE, run_config

pytestmark = pytest.mark.s3
runner = CliRunner()
MODES = ["keys", "df"]


def encode_cli(*args: str) -> tuple[int, str, float]:
    started = time.monotonic()
    result = runner.invoke(app, ["encode", "--weights", "none", *args])
    return result.exit_code, " ".join(result.output.split()), time.monotonic() - started


def assert_one_clear_line(code: int, output: str, seconds: float, *expected: str, exit_code: int = 1) -> None:
    assert code == exit_code, output
    assert "Traceback" not in output and output.count("error:") == 1, output
    for text in expected:
        assert text in output, output
    assert seconds < 30


@pytest.mark.parametrize("mode", MODES)
def test_a_closed_port(tmp_path, mode):
    # Bound and never listening: connections are refused, and no other process can take the port meanwhile.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
        code, output, seconds = encode_cli(
            "--mode", mode, "--input", "s3://fruit/Training", "--output", str(tmp_path / "o"), "--s3-endpoint", endpoint
        )
    assert_one_clear_line(
        code, output, seconds, f"Could not connect to {endpoint}", "bucket 'fruit'", "Check --s3-endpoint"
    )


@pytest.mark.parametrize("mode", MODES)
def test_a_bucket_that_does_not_exist(s3, tmp_path, mode, monkeypatch):
    """Found by the listing before Spark starts, in both modes."""
    monkeypatch.setattr("sparkyfruit.spark.session.start_session", lambda *a, **k: pytest.fail("Spark was started"))
    code, output, seconds = encode_cli(
        "--mode",
        mode,
        "--input",
        "s3://no-such-bucket/Training",
        "--output",
        str(tmp_path / "o"),
        "--s3-endpoint",
        s3.endpoint,
    )
    assert_one_clear_line(
        code, output, seconds, "bucket 'no-such-bucket'", s3.endpoint, "NoSuchBucket", "Check the bucket name"
    )


@pytest.mark.parametrize("mode", MODES)
def test_an_empty_prefix(s3, tmp_path, mode):
    local_s3.seed(s3.endpoint, "fruit", "Training", SAMPLE)
    code, output, seconds = encode_cli(
        "--mode",
        mode,
        "--input",
        "s3://fruit/Nothing/here",
        "--output",
        str(tmp_path / "o"),
        "--s3-endpoint",
        s3.endpoint,
    )
    # nothing to encode is a usage error (2), not a failed run
    assert_one_clear_line(
        code, output, seconds, "No images under s3://fruit/Nothing/here", "Check --input", exit_code=2
    )


def test_no_file_matches_the_pattern_in_keys_mode(s3, tmp_path):
    local_s3.seed(s3.endpoint, "fruit", "Training", SAMPLE)
    code, output, seconds = encode_cli(
        "--mode",
        "keys",
        "--input",
        "s3://fruit/Training",
        "--output",
        str(tmp_path / "o"),
        "--s3-endpoint",
        s3.endpoint,
        "--pattern",
        "*.png",
    )
    assert_one_clear_line(code, output, seconds, "match the pattern '*.png'", "--pattern", exit_code=2)


def test_no_file_matches_the_pattern_in_df_mode(s3, tmp_path, monkeypatch):
    """df mode checks it before Spark starts too: the listing stops at the first matching key."""
    monkeypatch.setattr("sparkyfruit.spark.session.start_session", lambda *a, **k: pytest.fail("Spark was started"))
    local_s3.seed(s3.endpoint, "fruit", "Training", SAMPLE)
    with pytest.raises(ConfigError, match=r"No images under s3://fruit/Training match the pattern '\*\.png'"):
        sparkyfruit.encode(
            run_config(
                mode="df",
                input="s3://fruit/Training",
                output=str(tmp_path / "o"),
                s3_endpoint=s3.endpoint,
                pattern="*.png",
            )
        )


@pytest.fixture(scope="module")
def authenticating_s3(tmp_path_factory):
    """A second server that checks credentials after its first 5 requests: an IAM user with a key and an S3
    policy, a bucket and one image are made before that."""
    server = local_s3.start(log_path=tmp_path_factory.mktemp("moto-auth") / "server.log", authenticate_after=5)
    try:
        iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1")
        iam.create_user(UserName="fruit")
        key = iam.create_access_key(UserName="fruit")["AccessKey"]
        iam.put_user_policy(
            UserName="fruit",
            PolicyName="s3",
            PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
            ),
        )
        client = local_s3.client(server.endpoint)
        client.create_bucket(Bucket="locked")
        client.put_object(Bucket="locked", Key="Training/Kiwi/1.jpg", Body=next(SAMPLE.rglob("*.jpg")).read_bytes())
        yield server, key
    finally:
        server.stop()


@pytest.mark.parametrize("mode", MODES)
def test_wrong_credentials(authenticating_s3, tmp_path, monkeypatch, mode):
    server, key = authenticating_s3
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    code, output, seconds = encode_cli(
        "--mode",
        mode,
        "--input",
        "s3://locked/Training",
        "--output",
        str(tmp_path / "o"),
        "--s3-endpoint",
        server.endpoint,
    )
    assert_one_clear_line(
        code, output, seconds, "S3 refused to list bucket 'locked'", "InvalidAccessKeyId", "Check the access key"
    )
    assert "wrong-secret" not in output

    # the same check with the user's real key gets through: it was the key that was refused
    from sparkyfruit import locations, storage
    from sparkyfruit.config import S3Settings

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    assert storage.has_image(
        locations.parse_location("s3://locked/Training"),
        locations.default_pattern(),
        S3Settings(s3_endpoint=server.endpoint),
    )
