"""Shared fixtures: a real S3 server (moto over HTTP on 127.0.0.1), one real local Spark session for the whole
run, the sample encoded once in both modes, and a test cache that outlives the session."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools import local_s3
from tests.helpers import BROKEN_SAMPLE_FILE, MASTER, ROOT, SAMPLE, SAMPLE_BUCKET, read_output

# What sparkyfruit builds from content and keeps in its cache folder: the packed environment (--ship-env),
# the Spark jars zip for YARN, the minicluster's jars and launcher, JVM class archives, the resolved S3A jars.
# Each entry is named by a digest of what it was built from (sparkyfruit/spark/class_cache.py, ship_env.py,
# yarn.py, devtools/minicluster.py), so a stale one is never used and the folder can outlive the session.
TEST_CACHE = Path(os.environ.get("SPARKYFRUIT_TEST_CACHE") or ROOT / ".cache" / "tests")


def pytest_report_header(config):
    return f"sparkyfruit's test cache (kept between runs, keyed by content): {TEST_CACHE}"


# The modules that start a cluster of their own are the integration set's longest (minutes each): they go first,
# so that the two pytest-xdist workers (`make test-integration`, --no-loadscope-reorder) end near together
# instead of one starting the YARN module when the other is almost done.
LONGEST_FIRST = ("yarn", "cluster")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        names = {marker.name for marker in item.iter_markers()}
        return next((index for index, name in enumerate(LONGEST_FIRST) if name in names), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: each module keeps its own order


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
def class_cache_home():
    """sparkyfruit's cache folder (XDG_CACHE_HOME/sparkyfruit) is the per-checkout test cache, never the
    user's ~/.cache. Tests of the cache itself point XDG_CACHE_HOME at a folder of their own."""
    saved = os.environ.get("XDG_CACHE_HOME")
    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    os.environ["XDG_CACHE_HOME"] = str(TEST_CACHE)
    yield TEST_CACHE
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved


def heavy_parts_loaded() -> set[str]:
    """TensorFlow or Keras imported, or a Spark JVM started, in this process."""
    loaded = {name for name in ("tensorflow", "keras") if name in sys.modules}
    if "pyspark" in sys.modules and getattr(sys.modules["pyspark"].SparkContext, "_gateway", None) is not None:
        loaded.add("a Spark JVM")
    return loaded


@pytest.fixture(autouse=True)
def light_set_stays_light(request):
    """`make test-fast` promises no Spark and no TensorFlow: under it (SPARKYFRUIT_LIGHT_TESTS=1), a test that
    imports TensorFlow or starts a JVM fails and says which."""
    if not os.environ.get("SPARKYFRUIT_LIGHT_TESTS"):
        yield
        return
    before = heavy_parts_loaded()
    yield
    pulled = sorted(heavy_parts_loaded() - before)
    if pulled:
        pytest.fail(f"{request.node.nodeid} loaded {', '.join(pulled)}: mark it slow to keep it out of test-fast")


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
    """One local Spark session for the whole run, with S3A pointed at the test server. Runs in this process
    (sparkyfruit.encode, and the CLI through typer's runner) join it instead of starting their own."""
    from sparkyfruit.config import RunConfig
    from sparkyfruit.spark.session import start_session

    # df mode from S3: the session gets S3A
    config = RunConfig(
        mode="df",
        input="s3://fixture/in",
        output="s3://fixture/out",
        master=MASTER,
        s3_endpoint=s3_server.endpoint,
        jvm_class_cache=False,
    )
    handle = start_session(config)
    yield handle.spark
    handle.stop()


@dataclass
class SampleOutputs:
    """The 192 sample images and one undecodable Kiwi, encoded once from the S3 server in each mode (real
    ImageNet weights, 224 px) into local folders. Tests only read them: a test that changes an output makes
    its own."""

    results: dict  # mode -> RunResult
    folders: dict[str, Path]  # mode -> the output folder
    rows: dict[str, dict[str, tuple]]  # mode -> read_output(folder)

    @property
    def keys(self) -> Path:
        return self.folders["keys"]


@pytest.fixture(scope="session")
def sample_outputs(spark, s3_server, tmp_path_factory) -> SampleOutputs:
    import sparkyfruit
    from tests.helpers import run_config

    client = local_s3.client(s3_server.endpoint)
    local_s3.seed(s3_server.endpoint, SAMPLE_BUCKET, "Training", SAMPLE)
    client.put_object(Bucket=SAMPLE_BUCKET, Key=f"Training/{BROKEN_SAMPLE_FILE}", Body=b"not an image")
    results, folders, rows = {}, {}, {}
    for mode in ("keys", "df"):
        out = tmp_path_factory.mktemp(f"sample-{mode}") / "features"
        config = run_config(
            mode=mode, input=f"s3://{SAMPLE_BUCKET}/Training", output=str(out), s3_endpoint=s3_server.endpoint
        )
        results[mode], folders[mode], rows[mode] = sparkyfruit.encode(config), out, read_output(out)
    return SampleOutputs(results, folders, rows)


@pytest.fixture
def no_spark_start(monkeypatch):
    """Fails the test if anything starts (or joins) a Spark session: what is checked before Spark must stay
    there."""
    monkeypatch.setattr("sparkyfruit.spark.session.start_session", lambda *a, **k: pytest.fail("Spark was started"))


@pytest.fixture
def images(tmp_path):
    (tmp_path / "images").mkdir()
    return str(tmp_path / "images")
