"""How a run's Spark session is made, mostly without starting one: the Spark and Hadoop options, the jars
pulled, the spark-submit flags; and, in the test session, that Ctrl-C cancels only the run's own jobs."""

import contextlib
import os

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


def test_only_a_local_run_whose_workers_run_this_python_starts_sparkyfruits_worker_daemon(tmp_path, monkeypatch):
    """The daemon module imports sparkyfruit before it forks: only where the workers run this very Python."""
    import sys

    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    local = RunConfig.load(input=str(tmp_path), output=str(tmp_path / "o"), master="local[2]")
    assert spark_options(local)["spark.python.daemon.module"] == "sparkyfruit.spark.worker_daemon"
    for master in ("yarn", "spark://127.0.0.1:7077"):
        cluster = RunConfig.load(input=str(tmp_path), output=str(tmp_path / "o"), master=master)
        assert "spark.python.daemon.module" not in spark_options(cluster), master
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    assert "spark.python.daemon.module" in spark_options(local)
    monkeypatch.setenv("PYSPARK_PYTHON", "/usr/bin/another-python3")
    assert "spark.python.daemon.module" not in spark_options(local)


def test_the_worker_daemon_drops_only_the_pyspark_zip_of_the_installed_package(tmp_path):
    """The installed package's own pyspark.zip is the same release (its bytecode is cached, the zip's is not);
    a separate Spark's zip, or one whose package is not on the path, stays."""
    from sparkyfruit.spark.worker_daemon import without_bundled_pyspark_zip

    site = tmp_path / "site-packages"
    (site / "pyspark" / "python" / "lib").mkdir(parents=True)
    (site / "pyspark" / "__init__.py").write_text("")
    bundled = str(site / "pyspark" / "python" / "lib" / "pyspark.zip")
    py4j = str(site / "pyspark" / "python" / "lib" / "py4j-0.10.9.9-src.zip")
    separate = str(tmp_path / "opt" / "spark" / "python" / "lib" / "pyspark.zip")
    assert without_bundled_pyspark_zip([bundled, py4j, "/work", str(site)]) == [py4j, "/work", str(site)]
    assert without_bundled_pyspark_zip([separate, str(site)]) == [separate, str(site)]
    assert without_bundled_pyspark_zip([bundled, "/work"]) == [bundled, "/work"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts the process's threads in /proc (Linux)")
@pytest.mark.parametrize("openblas_threads", [None, "4"])
def test_the_worker_daemon_preloads_without_a_thread_and_without_pysparks_zip(openblas_threads):
    """pyspark's daemon forks its workers, so it must hold no thread of its own when it does: the preloaded
    modules start none (NumPy's OpenBLAS would, unless OPENBLAS_NUM_THREADS is 1; set above 1, nothing is
    preloaded, and the daemon holds what pyspark's own would). pyspark comes from the installed package,
    though Spark puts its zip first on the workers' PYTHONPATH."""
    import json
    import subprocess
    import sys

    import pyspark

    package = os.path.dirname(pyspark.__file__)
    zips = [os.path.join(package, "python", "lib", name) for name in os.listdir(os.path.join(package, "python", "lib"))]
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    env["PYTHONPATH"] = os.pathsep.join([*sorted(zips), env.get("PYTHONPATH", "")])
    if openblas_threads:
        env["OPENBLAS_NUM_THREADS"] = openblas_threads
    report = (
        "print(json.dumps({'threads': len(os.listdir('/proc/self/task')), 'pyspark': sys.modules['pyspark'].__file__,"
        " 'loaded': [name for name in daemon.PRELOADED if name in sys.modules]}))\n"
    )
    ours = (
        "import json, os, sys\n"
        "from sparkyfruit.spark import worker_daemon as daemon\n"
        "sys.path[:] = daemon.without_bundled_pyspark_zip(sys.path)\n"
        "daemon.preload()\n"
        "import pyspark.daemon\n" + report
    )
    # pyspark's own daemon at the point where it forks (3.5 imports its worker module there, and so NumPy)
    stock = (
        "import json, os, sys\nimport pyspark.daemon\nfrom sparkyfruit.spark import worker_daemon as daemon\n" + report
    )
    seen = {}
    for name, probe in (("ours", ours), ("stock", stock)):
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        seen[name] = json.loads(result.stdout.splitlines()[-1])
    assert seen["ours"]["pyspark"] == pyspark.__file__, seen
    assert seen["stock"]["pyspark"] != pyspark.__file__ and ".zip" in seen["stock"]["pyspark"], seen
    if openblas_threads:
        assert seen["ours"]["threads"] == seen["stock"]["threads"], seen
        assert "sparkyfruit.featurize" not in seen["ours"]["loaded"], seen
    else:
        assert seen["ours"]["threads"] == 1, seen
        assert seen["ours"]["loaded"] == ["pyspark.worker", "sparkyfruit.featurize"], seen


@pytest.mark.spark
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="finds the daemon's children in /proc (Linux)")
@pytest.mark.parametrize("mode", ["keys", "df"])
def test_every_python_worker_of_a_run_runs_its_arrow_tasks(spark, images, tmp_path, mode):
    """A run's Python workers are forks of one daemon, sparkyfruit's, and each runs the run's Arrow tasks. A
    Python function around a Spark-only step (re-pickling the keys, collecting the reports) would run in a
    worker of its own beside the Arrow function's, in the same task."""
    import sparkyfruit
    from tests.helpers import child_pids, run_config

    _copy_sample_images(images, 6)
    with _workers_timeline(spark, tmp_path / "timeline.txt") as pids_of:  # a daemon of this run's own
        sparkyfruit.encode(run_config(mode=mode, input=images, output=str(tmp_path / mode), image_size=100))
        daemons, workers = pids_of("worker daemon preloaded"), pids_of("worker task started")
        assert len(daemons) == 1, (daemons, workers)
        forked = set(child_pids(next(iter(daemons))))  # workers are reused: each fork is still there
    assert workers and workers == forked, (workers, forked)


def test_stopping_a_session_leaves_pysparks_accumulator_server_to_stop_in_the_background(capsys):
    """pyspark's stop() would wait up to a second for the accumulator server's loop; the server is shut down
    after the JVM stops (no update can come then), in a daemon thread. The JVM may exit before the loop sees
    the shutdown, and the loop's failed read of the closed connection is then no traceback on stderr."""
    import threading
    from types import SimpleNamespace

    from sparkyfruit.spark.session import _stop_without_waiting_for_accumulators

    order = []
    shut = threading.Event()
    server = SimpleNamespace(shutdown=lambda: (order.append("server shut down"), shut.set()))
    context = SimpleNamespace(_accumulatorServer=server)
    spark = SimpleNamespace(
        sparkContext=context,
        stop=lambda: order.append(f"spark stopped, server left to it: {context._accumulatorServer is not None}"),
    )
    _stop_without_waiting_for_accumulators(spark)
    assert shut.wait(10)
    assert order == ["spark stopped, server left to it: False", "server shut down"]
    try:
        raise EOFError  # what pyspark's read_int raises on the closed connection
    except EOFError:
        server.handle_error(None, ("127.0.0.1", 1))  # socketserver calls it inside its except
    assert capsys.readouterr().err == ""


@pytest.mark.spark
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="finds the daemon's children in /proc (Linux)")
def test_the_python_worker_started_with_the_session_runs_the_runs_first_tasks(spark, images, tmp_path):
    """The session starts the workers' daemon and a worker while the driver plans; the run's Arrow tasks
    reuse that worker (same environment, so the same daemon; and a warm-up task that read its input)."""
    import sparkyfruit
    from sparkyfruit.spark.session import _start_python_workers
    from tests.helpers import child_pids, run_config

    _copy_sample_images(images, 4)
    with _workers_timeline(spark, tmp_path / "timeline.txt") as pids_of:
        _start_python_workers(spark.sparkContext).join(120)
        daemons = pids_of("worker daemon preloaded")
        assert len(daemons) == 1, daemons
        warm = set(child_pids(daemons.pop()))
        sparkyfruit.encode(run_config(mode="keys", input=images, output=str(tmp_path / "o"), image_size=100))
    workers = pids_of("worker task started")
    assert warm and workers & warm, (warm, workers)


def _copy_sample_images(folder, count: int) -> None:
    import shutil

    from tests.helpers import SAMPLE

    for source in sorted(SAMPLE.rglob("*.jpg"))[:count]:
        shutil.copy(source, folder)


@contextlib.contextmanager
def _workers_timeline(spark, path):
    """The session's Python functions write SPARKYFRUIT_TIMELINE events to `path` inside; a changed
    environment means a daemon of their own, as a new session's. Yields pids_of(event): the pids that wrote
    `event`."""

    def pids_of(event: str) -> set[int]:
        lines = path.read_text().splitlines() if path.exists() else []
        return {int(pid) for _, pid, written in (line.split(" ", 2) for line in lines) if written == event}

    environment = spark.sparkContext.environment
    environment["SPARKYFRUIT_TIMELINE"] = str(path)
    try:
        yield pids_of
    finally:
        del environment["SPARKYFRUIT_TIMELINE"]


def test_a_jvm_that_resolves_packages_starts_holding_the_users_ivy_lock_and_others_do_not(tmp_path, monkeypatch):
    """Two first runs on one machine resolved S3A's jars at once, and Ivy gave the later one a 0-byte SDK
    bundle: a launch with spark.jars.packages waits for this user's lock, a launch without packages does not."""
    import fcntl

    from pyspark.sql import SparkSession

    from sparkyfruit.spark import session

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    lock_file = tmp_path / "cache" / "sparkyfruit" / "ivy-resolution.lock"

    def lock_is_held() -> bool:
        if not lock_file.exists():
            return False
        with open(lock_file) as other:  # an open file of its own: flock conflicts with the launch's
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False

    held_while_starting = []

    class Builder:
        def config(self, key, value):
            return self

        def getOrCreate(self):
            held_while_starting.append(lock_is_held())
            return "a session"

    monkeypatch.setattr(SparkSession, "builder", Builder())
    packages = {"spark.jars.packages": "org.apache.hadoop:hadoop-aws:3.4.1"}
    assert session._launch(packages, None, tmp_path / "first.log") == "a session"
    assert session._launch({"spark.master": "local[1]"}, None, tmp_path / "second.log") == "a session"
    assert held_while_starting == [True, False]
    assert not lock_is_held()  # released once the JVM is up


def test_a_start_that_waits_for_another_runs_package_download_says_so(tmp_path, monkeypatch):
    import fcntl
    import threading

    from sparkyfruit.spark.session import one_package_resolution_at_a_time

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache" / "sparkyfruit").mkdir(parents=True)
    said, inside = [], threading.Event()

    def start() -> None:
        with one_package_resolution_at_a_time(True, said.append):
            inside.set()

    with open(tmp_path / "cache" / "sparkyfruit" / "ivy-resolution.lock", "w") as other_run:
        fcntl.flock(other_run, fcntl.LOCK_EX)  # another run's JVM is resolving
        starting = threading.Thread(target=start)
        starting.start()
        assert not inside.wait(1.0)  # it waits for the other run
    starting.join(timeout=30)  # the other run's lock is gone with its file
    assert inside.is_set()
    assert said == ["Another run on this machine is fetching Spark's packages (the S3A jars); waiting for it..."]
