"""A crash costs one shard: SIGKILL to the whole process group of an encode (driver, JVM, Python workers)
after a shard has committed, then --resume, killed again, then --resume to the end, equals one clean run:
the same paths, the same vectors, no duplicates, none missing. A local and an S3 output, each mode once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

import sparkyfruit
from devtools import local_s3
from sparkyfruit import locations, output_format
from sparkyfruit.s3_settings import S3Settings
from tests.helpers import SCRIPT, copies_of_sample, encode_args, group_is_gone, run_config, start_in_own_group

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]
COPIES = 2  # 384 images
SHARD_SIZE = 32  # 12 shards, each a Spark job and a commit: a kill lands with most of the run to go
SIZE = ["--batch-size", "16"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return copies_of_sample(tmp_path_factory.mktemp("checkpoint-images"), COPIES)


@pytest.fixture(scope="module")
def clean_run(spark, inputs, tmp_path_factory):
    """One uninterrupted run of the same images, the reference (vectors are the same in both modes)."""
    out = tmp_path_factory.mktemp("clean") / "out"
    sparkyfruit.encode(run_config(mode="keys", input=str(inputs), output=str(out), batch_size=16))
    table = output_format.open_dataset(locations.parse_location(str(out)), S3Settings()).to_table()
    return {row["path"]: row["features"] for row in table.to_pylist()}


class Output:
    """The output under test, local or on the S3 server, read the way sparkyfruit reads it."""

    def __init__(self, uri: str, s3: S3Settings):
        self.uri, self.s3 = uri, s3
        self.location = locations.parse_location(uri)

    def shards_recorded(self) -> int:
        """The shards committed: each is one entry of the Delta log."""
        names = sparkyfruit.storage.list_files(self.location, self.s3)
        return sum(1 for name in names if re.fullmatch(r"_delta_log/\d{20}\.json", name))

    def finished(self) -> bool:
        return output_format.read_manifest(self.location, self.s3) is not None

    def rows(self) -> list[dict]:
        return output_format.open_dataset(self.location, self.s3).to_table().to_pylist()


def kill_after_new_shards(command: list[str], output: Output, at_least: int) -> None:
    """Start `command`, SIGKILL its whole process group once the output records `at_least` shards."""
    process = start_in_own_group(command)
    deadline = time.monotonic() + 240
    while output.shards_recorded() < at_least:
        assert process.poll() is None, f"the run ended before it was killed:\n{process.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "no shard was recorded in time"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert group_is_gone(process.pid, within=30)
    assert not output.finished(), "the run finished before the kill: the test proves nothing"


@pytest.mark.parametrize(
    ("mode", "where"),
    # each mode and each kind of output once: the mode decides how the input is read, the output where the
    # lease and the Delta log live; a crash and its resume meet the two independently
    [("keys", "local"), ("df", "s3")],
)
def test_killed_twice_and_resumed_equals_one_clean_run(s3, inputs, clean_run, tmp_path, monkeypatch, mode, where):
    if where == "s3":
        local_s3.client(s3.endpoint).create_bucket(Bucket="checkpoints")
        output = Output("s3://checkpoints/vectors", S3Settings(s3_endpoint=s3.endpoint))
        extra = ["--s3-endpoint", s3.endpoint]
    else:
        output = Output(str(tmp_path / "out"), S3Settings())
        extra = []
    command = [SCRIPT, *encode_args(str(inputs), output.uri, "--master", "local[2]", "--mode", mode, *SIZE, *extra)]
    monkeypatch.setenv("SPARKYFRUIT_SHARD_SIZE", str(SHARD_SIZE))

    kill_after_new_shards(command, output, at_least=1)
    first = output.shards_recorded()
    inspect = subprocess.run(
        [SCRIPT, "inspect", output.uri, *(["--s3-endpoint", s3.endpoint] if where == "s3" else [])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert inspect.returncode == 1, inspect.stdout + inspect.stderr
    assert f"is unfinished: {first} of 12 shards, {first * SHARD_SIZE} of 384 images" in inspect.stderr
    assert "Continue it: rerun that encode with --resume" in inspect.stderr

    kill_after_new_shards([*command, "--resume"], output, at_least=first + 1)
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed: added" in resumed.stdout and "the output now has 384 (384 ok, 0 failed)" in resumed.stdout

    rows = output.rows()
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)) == 384  # no duplicates, none missing
    assert set(paths) == set(clean_run)
    for row in rows:
        assert row["error"] is None
        np.testing.assert_allclose(row["features"], clean_run[row["path"]], atol=1e-5)
    assert output.shards_recorded() == 12
    summary = sparkyfruit.inspect(output.uri, output.s3)
    assert (summary.rows, summary.failed) == (384, 0)
