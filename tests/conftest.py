"""Shared fixtures: a real S3 server (moto over HTTP on 127.0.0.1) and one real local Spark session."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from devtools import local_s3
from devtools.maven import s3_committer_here

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "images"  # byte-for-byte copy of ../shared/data/fruits-360-sample (192 images)
WEIGHTS = ROOT / "examples" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
MASTER = "local[2]"


def pytest_report_header(config):
    committer, why = s3_committer_here()
    return f"S3 outputs are committed with --s3-committer {committer}: {why}"


@pytest.fixture(scope="session", autouse=True)
def aws_env():
    """Fake credentials for the whole session: nothing here may ever reach real AWS."""
    saved = {name: os.environ.get(name) for name in [*local_s3.FAKE_CREDENTIALS, "AWS_PROFILE", "AWS_SESSION_TOKEN"]}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.update(local_s3.FAKE_CREDENTIALS)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session", autouse=True)
def class_cache_home(tmp_path_factory):
    """JVM class archives that CLI runs record (sparkyfruit/class_cache.py) go to a folder of this session,
    not the user's ~/.cache."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield Path(os.environ["XDG_CACHE_HOME"])
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    server = local_s3.start(log_path=tmp_path_factory.mktemp("moto") / "server.log")
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server):
    """The S3 server with every bucket removed before the test."""
    s3_server.reset()
    return s3_server


@pytest.fixture
def fruit_bucket(s3):
    """s3://fruit/Training/<label>/<file>.jpg with the 192 sample images."""
    assert local_s3.seed(s3.endpoint, "fruit", "Training", SAMPLE) == 192
    return "s3://fruit/Training"


@pytest.fixture(scope="session")
def spark(s3_server, tmp_path_factory):
    """One local Spark session for the whole run, with S3A pointed at the test server."""
    from sparkyfruit.config import RunConfig
    from sparkyfruit.session import start_session

    # an S3 output: the session gets S3A and, where Maven serves it, the magic committer's module
    config = RunConfig(
        input="s3://fixture/in", output="s3://fixture/out", master=MASTER, s3_endpoint=s3_server.endpoint,
        jvm_class_cache=False, s3_committer=s3_committer_here()[0],
    )
    handle = start_session(config)
    yield handle.spark
    handle.stop()


def run_config(**overrides):
    """Settings for the real-weights model used throughout the tests (MobileNet v1 0.25, 256-d)."""
    from sparkyfruit.config import RunConfig

    settings = dict(model="mobilenet", alpha=0.25, weights=str(WEIGHTS), master=MASTER, quiet=True,
                    s3_committer=s3_committer_here()[0])
    settings.update(overrides)
    return RunConfig(**settings)


def read_output(path) -> dict[str, tuple]:
    """{path: (label, features as a tuple or None, error)} from an output's Parquet files."""
    import pyarrow.dataset as ds

    table = ds.dataset(str(path), format="parquet").to_table()
    return {
        row["path"]: (row["label"], row["features"], row["error"])
        for row in table.to_pylist()
    }


def spark_environment_while_running(process: subprocess.Popen, stderr_lines: list[str]) -> str:
    """Read stderr until the Spark UI link appears, then fetch the running application's environment."""
    ui = None
    for line in process.stderr:
        stderr_lines.append(line)
        if line.startswith("Spark UI: "):
            ui = line.split(" ", 2)[2].strip()
            break
    assert ui, "".join(stderr_lines)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("the run ended before its Spark UI was read:\n" + "".join(stderr_lines)
                                 + process.stderr.read())
        try:
            with urllib.request.urlopen(f"{ui}/api/v1/applications", timeout=5) as response:
                app_id = json.load(response)[0]["id"]
            with urllib.request.urlopen(f"{ui}/api/v1/applications/{app_id}/environment", timeout=5) as response:
                return response.read().decode()
        except (OSError, IndexError, KeyError):
            time.sleep(0.2)
    raise AssertionError("the Spark UI did not answer while the run was going")
