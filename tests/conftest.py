"""Shared fixtures: a real S3 server (moto over HTTP on 127.0.0.1) and one real local Spark session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devtools import local_s3
from devtools.maven import s3_committer_here
from tests.helpers import MASTER, SAMPLE


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
    """JVM class archives that CLI runs record (sparkyfruit/spark/class_cache.py) go to a folder of this session,
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
    from sparkyfruit.spark.session import start_session

    # an S3 output: the session gets S3A and, where Maven serves it, the magic committer's module
    config = RunConfig(
        input="s3://fixture/in",
        output="s3://fixture/out",
        master=MASTER,
        s3_endpoint=s3_server.endpoint,
        jvm_class_cache=False,
        s3_committer=s3_committer_here()[0],
    )
    handle = start_session(config)
    yield handle.spark
    handle.stop()


@pytest.fixture
def images(tmp_path):
    (tmp_path / "images").mkdir()
    return str(tmp_path / "images")
