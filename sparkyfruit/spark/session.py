"""Starts, joins and stops the SparkSession of a run or a tool. The options come from options.py, the
packages from jars.py; here they meet the JVM: the class archive, the remembered S3A jars, spark-submit."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from sparkyfruit.config import RunConfig, S3Settings
from sparkyfruit.errors import ConfigError, SparkyfruitError
from sparkyfruit.spark.class_cache import (
    PACKAGE_OPTIONS,
    ClassArchive,
    cache_dir,
    class_archive,
    end_driver_jvm,
    packages_identity,
    remember_jars,
    serve_remembered_jars,
    use_remembered_jars,
)
from sparkyfruit.spark.driver_log import first_line, new_log_path, stderr_to, tail, unresolved_packages
from sparkyfruit.spark.jars import (
    keep_jars_off_python_path,
    local_jars,
    may_put_packages_on_class_path,
    may_serve_packages_as_jars,
    spark_defaults_set,
    spark_home,
    spark_submit_flags,
)
from sparkyfruit.spark.local_lock import held_alone
from sparkyfruit.spark.options import DAEMON_MODULE_KEY, profile_files_env, spark_options, tool_options
from sparkyfruit.spark.ship_env import EXECUTOR_PYTHON, ShippedEnvironment


class SessionError(SparkyfruitError):
    """The Spark driver could not start."""


@dataclass
class SessionHandle:
    spark: object  # pyspark.sql.SparkSession
    ui_url: str | None
    owned: bool  # True when this run started the session and must stop it
    log_path: Path | None = None  # where the driver JVM (and its Python workers) write their logs
    class_archive: ClassArchive | None = None

    def stop(self) -> None:
        if not self.owned:
            return
        _stop_without_waiting_for_accumulators(self.spark)
        if self.class_archive is not None and self.class_archive.recording is not None:
            self.class_archive.finish(end_driver_jvm())
        else:
            # the JVM exits while this process finishes, instead of after it (the next session in this
            # process starts its own JVM, with its own options)
            end_driver_jvm(wait=False)


def _stop_without_waiting_for_accumulators(spark) -> None:
    """spark.stop(), then the shutdown of pyspark's accumulator server in the background: its connection's
    loop looks for the shutdown once a second, so waiting for it adds up to a second to every run's end. The
    thread is a daemon: a process that exits does not wait for it."""
    context = spark.sparkContext
    server, context._accumulatorServer = getattr(context, "_accumulatorServer", None), None  # stop() skips it
    if server is not None:
        # the JVM may exit before the loop sees the shutdown: its connection then ends, and the loop's read
        # of it fails; that is the expected end, not an error to print
        server.handle_error = _ignore_request_error
    spark.stop()
    if server is not None:
        threading.Thread(target=server.shutdown, name="sparkyfruit-accumulators-stop", daemon=True).start()


def _ignore_request_error(request, client_address) -> None:
    """socketserver's handle_error, which would print a traceback to stderr."""


def start_session(
    config: RunConfig, existing=None, shipped: ShippedEnvironment | None = None, announce=None
) -> SessionHandle:
    """Start (or join) the SparkSession for a run. A given session, or one that already runs in this
    process (a notebook, a test fixture), is reused and left running; its S3A settings are updated.
    `shipped`: the packed environment the executors run from (--ship-env). `announce(text)` is told when the
    start waits for another run's download of Spark's packages."""
    from pyspark.sql import SparkSession

    options = spark_options(config)
    active = existing or SparkSession.getActiveSession()
    submitted = launched_by_spark_submit()
    if submitted:
        # spark-submit already started the JVM with its own --master, --packages and JVM options: those win
        for key in ("spark.master", *PACKAGE_OPTIONS, "spark.driver.extraJavaOptions"):
            options.pop(key, None)
    if submitted or spark_defaults_set("spark.driver.memory"):
        options.pop("spark.driver.memory", None)  # the heap the user gave Spark wins
    if (active is not None or submitted) and shipped is not None:
        raise ConfigError(
            "--ship-env needs to start Spark itself, and a Spark session is already running here "
            "(spark-submit, a notebook).",
            f"Pass --archives {shipped.spark_archive} and set PYSPARK_PYTHON={EXECUTOR_PYTHON} when starting Spark "
            "(see docs/cluster.md), and leave --ship-env off.",
        )
    if active is not None:
        return _join(active, options, config)

    _prepare_environment(config, shipped, options)
    if config.master_is_yarn and not submitted:
        from sparkyfruit.spark.yarn import spark_jars_archive

        if jars_on_hdfs := spark_jars_archive():
            options["spark.yarn.archive"] = jars_on_hdfs
    use_caches = config.jvm_class_cache and not submitted
    packages = packages_identity(options)
    identity, resolving, remember = packages, False, False
    if use_caches and may_put_packages_on_class_path(options, config):
        identity, resolving = use_remembered_jars(options, packages)
        remember = resolving
    elif use_caches and may_serve_packages_as_jars(options, config):
        # the driver's own class path is the same either way, and so is its class archive
        remember = not serve_remembered_jars(options, packages)
    archive = class_archive(spark_home(), identity) if use_caches and not resolving else None
    log_path = new_log_path()
    spark = _start(options, archive, log_path, announce)
    spark.sparkContext.setLogLevel("WARN")
    keep_jars_off_python_path(spark.sparkContext)
    if remember:
        resolved = local_jars(spark.sparkContext.getConf().get("spark.jars", ""))
        if resolved:
            remember_jars(packages, resolved)
    if submitted:
        _check_submitted_jars(spark, config)
    if shipped is not None:
        spark.sparkContext.addPyFile(str(shipped.code))
    if DAEMON_MODULE_KEY in options:
        _start_python_workers(spark.sparkContext)
    return SessionHandle(spark, spark.sparkContext.uiWebUrl, owned=True, log_path=log_path, class_archive=archive)


def _start_python_workers(context) -> threading.Thread:
    """Start the workers' Python daemon (spark/worker_daemon.py) and one worker while the driver lists and
    plans the first shard: a one-task job, from a background thread. pyspark's SQL runners add
    SPARK_SIMPLIFIED_TRACEBACK to a Python function's environment, and a daemon serves one environment: with
    it in the context's environment too, this job's daemon and worker are the ones the Arrow tasks then use."""
    context.environment["SPARK_SIMPLIFIED_TRACEBACK"] = "1"

    def start() -> None:
        context.setJobDescription("sparkyfruit: start the Python workers")
        # a session stopped meanwhile ends the job; a worker that cannot start fails the run's own job, which
        # reports it
        with contextlib.suppress(Exception):
            context.runJob(context.parallelize([0], 1), _count)

    thread = threading.Thread(target=start, name="sparkyfruit-start-workers", daemon=True)
    thread.start()
    return thread


def _count(rows) -> list[int]:
    """The warm-up task: it reads its input to the end, as a worker must to be reused (pyspark's worker
    exits after a task that left input unread)."""
    return [sum(1 for _ in rows)]


def _prepare_environment(config: RunConfig, shipped: ShippedEnvironment | None, options: dict[str, str]) -> None:
    """What the driver JVM and the Python workers inherit from this process."""
    if config.profile:
        os.environ["AWS_PROFILE"] = config.profile  # the driver JVM inherits it for S3A's profile provider
        os.environ.update(profile_files_env())
    if shipped is not None:
        # On YARN, spark.archives is localized by YARN and then fetched and unpacked again by every executor
        # for its first task; spark.yarn.dist.archives is YARN's localization alone, which a NodeManager keeps
        # for later applications when the archive is public (yarn.py).
        options["spark.yarn.dist.archives" if config.master_is_yarn else "spark.archives"] = shipped.spark_archive
        # pyspark reads the executors' Python from this variable when the context starts
        os.environ["PYSPARK_PYTHON"] = EXECUTOR_PYTHON
    elif config.master_is_local:
        # pyspark starts local workers with $PYSPARK_PYTHON or a bare "python3" from PATH, which may lack
        # our packages (a venv that is not activated); this interpreter has them.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _start(options: dict[str, str], archive: ClassArchive | None, log_path: Path, announce=None):
    """Launch the driver; a class archive that keeps it from starting is dropped, and a failure becomes one
    clear error that quotes the log."""
    try:
        try:
            spark = _launch(options, archive, log_path, announce)
        except Exception:
            if archive is None or unresolved_packages(log_path):
                raise
            archive.discard()  # a damaged or foreign archive must not keep Spark from starting
            archive = None
            spark = _launch(options, None, log_path, announce)
    except Exception as exc:
        raise SessionError(
            f"Spark did not start: {first_line(exc)}. Last lines of its log ({log_path}):\n{tail(log_path)}",
            "Check Java 17+ (JAVA_HOME), --master, and that Maven Central is reachable for the S3A jars.",
        ) from None
    return spark


def _check_submitted_jars(spark, config: RunConfig) -> None:
    """spark-submit chose the jars: stop with the flags to add if S3A is missing."""
    if config.needs_s3a and not _jvm_has_class(spark, "org.apache.hadoop.fs.s3a.S3AFileSystem"):
        spark.stop()
        raise ConfigError(
            "This run reads or writes S3 through S3A, and the spark-submit that started it has no S3A connector.",
            f"Add {spark_submit_flags(config)} to spark-submit (on EMR: --spark-s3-scheme s3 uses EMRFS instead).",
        )


def _join(active, options: dict[str, str], config: RunConfig) -> SessionHandle:
    """Use a session this run did not start: set what can change at run time, check what cannot."""
    hadoop = active.sparkContext._jsc.hadoopConfiguration()
    for key, value in options.items():  # only these can change at run time; the rest is fixed at start
        if key.startswith("spark.hadoop."):
            hadoop.set(key[len("spark.hadoop.") :], value)
        elif key.startswith("spark.sql."):
            active.conf.set(key, value)
    return SessionHandle(active, active.sparkContext.uiWebUrl, owned=False)


def _launch(options: dict[str, str], archive: ClassArchive | None, log_path: Path, announce=None):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in options.items():
        if key == "spark.driver.extraJavaOptions" and archive is not None:
            # JVM log lines (e.g. classes an archive skips) go to stdout by default: keep them in the log file
            value = f"{value} {archive.java_option} -Xlog:all=off:stdout -Xlog:all=warning:stderr"
        builder = builder.config(key, value)
    # The driver imports pandas while the JVM starts, instead of after: pyspark's first mapInArrow needs it
    # (require_minimum_pandas_version), and pyspark 4 imports it still earlier, when SparkConf's first values
    # go to the JVM (NumpyArrayConverter.can_convert imports pyspark.testing.utils).
    threading.Thread(target=_import_pandas, name="sparkyfruit-import-pandas", daemon=True).start()
    with one_package_resolution_at_a_time("spark.jars.packages" in options, announce), stderr_to(log_path):
        return builder.getOrCreate()  # the JVM inherits this stderr: Ivy reports, Spark and TF logs go there


def one_package_resolution_at_a_time(resolving: bool, announce=None):
    """While `resolving` (a JVM that spark-submit starts with --packages): this user's lock on Ivy's
    resolution. Ivy is not safe across processes: two first runs on one machine both downloaded S3A's SDK
    bundle (686 MB) into the same file, and the later one failed ("Downloaded file size (0) doesn't match
    expected Content Length"). The second run waits, then finds the jars in Ivy's cache."""
    if not resolving:
        return contextlib.nullcontext()
    waiting = "Another run on this machine is fetching Spark's packages (the S3A jars); waiting for it..."
    return held_alone(cache_dir() / "ivy-resolution.lock", announce, waiting)


def _import_pandas() -> None:
    with contextlib.suppress(Exception):  # pyspark reports a missing or broken pandas where it needs it
        import pandas  # noqa: F401


@contextlib.contextmanager
def tool_session(s3: S3Settings, app_name: str, uses_s3: bool, spark=None):
    """The SparkSession for a command that post-processes an output: the given or the active one (left
    running), else a local one started for the command and stopped after it."""
    from pyspark.sql import SparkSession

    if spark is not None or (spark := SparkSession.getActiveSession()) is not None:
        yield spark
        return
    handle = start_tool_session(s3, app_name, uses_s3)
    try:
        yield handle.spark
    finally:
        handle.stop()


def start_tool_session(s3: S3Settings, app_name: str, uses_s3: bool) -> SessionHandle:
    """A local session for the commands that post-process an output (reduce, evaluate's logistic probe):
    all cores, quiet logs, S3A when a location is on S3."""
    options = tool_options(s3, app_name, uses_s3)
    log_path = new_log_path()
    try:
        spark = _launch(options, None, log_path)
    except Exception as exc:
        raise SessionError(
            f"Spark did not start: {first_line(exc)}. See its log: {log_path}", "Check Java 17+ (JAVA_HOME)."
        ) from None
    spark.sparkContext.setLogLevel("WARN")
    keep_jars_off_python_path(spark.sparkContext)
    return SessionHandle(spark, spark.sparkContext.uiWebUrl, owned=True, log_path=log_path)


def launched_by_spark_submit() -> bool:
    """spark-submit (and the pyspark shell) start the JVM first and hand its port to Python."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _jvm_has_class(spark, name: str) -> bool:
    try:
        spark.sparkContext._jvm.org.apache.spark.util.Utils.classForName(name, True, False)
        return True
    except Exception:
        return False
