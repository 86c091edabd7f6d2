"""Builds the SparkSession a run needs: master, S3A connector matched to Spark's own Hadoop, S3A settings,
Arrow batch size, quiet logs. Credentials are never set here: S3A's provider chain finds them."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sparkyfruit.class_cache import ClassArchive, class_archive, remember_jars, remembered_jars
from sparkyfruit.config import RunConfig, S3Settings
from sparkyfruit.errors import ConfigError, SparkyfruitError
from sparkyfruit.ship_env import EXECUTOR_PYTHON, ShippedEnvironment

APP_NAME = "sparkyfruit"
LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")


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
        self.spark.stop()
        if self.class_archive is not None and self.class_archive.recording is not None:
            self.class_archive.finish(_end_driver_jvm())


def _end_driver_jvm() -> int | None:
    """Let the driver JVM exit now (it does when its stdin closes) and return its exit code. A JVM that
    records a class archive writes it while exiting, which must be complete before the archive is used.
    pyspark launches a new JVM for the next session in this process."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    process = getattr(gateway, "proc", None)
    SparkContext._gateway = None
    SparkContext._jvm = None
    if process is None:
        return None
    try:
        gateway.shutdown()
    except Exception:  # the gateway may already be gone; the JVM's exit code decides
        pass
    process.stdin.close()
    try:
        return process.wait(timeout=120)
    except Exception:
        return None


def spark_home() -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home())


def _versions_in_jar_names(home: Path | None, pattern: str) -> tuple[str, ...] | None:
    """The groups of `pattern` in the first matching jar name of a Spark's jars/ folder (no JVM needed)."""
    jars = (home or spark_home()) / "jars"
    for name in sorted(os.listdir(jars)) if jars.is_dir() else []:
        match = re.fullmatch(pattern, name)
        if match:
            return match.groups()
    return None


def bundled_hadoop_version(home: Path | None = None) -> str:
    """The Hadoop version inside the installed Spark, read from its jar names.

    hadoop-aws must match it exactly: S3A is compiled against one Hadoop release.
    """
    found = _versions_in_jar_names(home, r"hadoop-(?:client-api|common)-(\d+\.\d+\.\d+)\.jar")
    if found is None:
        raise ConfigError(
            f"Cannot tell which Hadoop the Spark at {home or spark_home()} bundles (no hadoop-client-api-*.jar in its "
            "jars/).", "Install pyspark from PyPI, or point SPARK_HOME at a Spark built with Hadoop 3.",
        )
    return found[0]


def s3a_packages(hadoop_version: str) -> str:
    """Maven coordinates for S3A; hadoop-aws pulls the AWS SDK bundle it was built with (v1 for 3.3, v2 for 3.4+)."""
    return f"org.apache.hadoop:hadoop-aws:{hadoop_version}"


def spark_build(home: Path | None = None) -> tuple[str, str]:
    """(Scala binary version, Spark version) of the installed Spark, read from its spark-core jar's name."""
    found = _versions_in_jar_names(home, r"spark-core_(\d+\.\d+)-(\d+\.\d+\.\d+.*)\.jar")
    if found is None:
        raise ConfigError(f"Cannot tell which Spark is installed at {home or spark_home()} (no spark-core_*.jar in "
                          "its jars/).", "Install pyspark from PyPI, or point SPARK_HOME at a Spark distribution.")
    return found[0], found[1]


def hadoop_cloud_package(home: Path | None = None) -> str:
    """Spark's own module for cloud committers, at exactly Spark's version (it builds on Spark internals)."""
    scala, version = spark_build(home)
    return f"org.apache.spark:spark-hadoop-cloud_{scala}:{version}"


# spark-hadoop-cloud also depends on connectors for GCS, Azure and others, and on Jackson and Jetty versions
# that Spark already has: the magic committer needs only the module's own jar (plus hadoop-aws, pulled anyway)
HADOOP_CLOUD_EXCLUDES = (
    "org.apache.hadoop:hadoop-client-runtime", "org.apache.hadoop:hadoop-azure", "org.apache.hadoop:hadoop-huaweicloud",
    "org.apache.hadoop:hadoop-cloud-storage", "com.google.cloud.bigdataoss:gcs-connector", "joda-time:joda-time",
    "com.fasterxml.jackson.core:jackson-databind", "com.fasterxml.jackson.core:jackson-annotations",
    "com.fasterxml.jackson.dataformat:jackson-dataformat-cbor", "org.apache.httpcomponents:httpclient",
    "org.apache.httpcomponents:httpcore", "org.eclipse.jetty:jetty-util", "org.eclipse.jetty:jetty-util-ajax",
    "com.squareup.okhttp3:okhttp", "com.squareup.okio:okio",
)
COMMIT_PROTOCOL = "org.apache.spark.internal.io.cloud.PathOutputCommitProtocol"
# Spark's Parquet writer insists on a ParquetOutputCommitter; this one hands the work to the S3A committer
PARQUET_COMMITTER = "org.apache.spark.internal.io.cloud.BindingParquetOutputCommitter"


def magic_committer_options() -> dict[str, str]:
    """Parquet files written to s3a:// are uploaded as pending multipart uploads and completed only when the
    job commits: no copy-and-delete "rename" of every file, and no partial files visible after a failure."""
    return {
        "spark.sql.sources.commitProtocolClass": COMMIT_PROTOCOL,
        "spark.sql.parquet.output.committer.class": PARQUET_COMMITTER,
        "spark.hadoop.mapreduce.outputcommitter.factory.scheme.s3a": "org.apache.hadoop.fs.s3a.commit.S3ACommitterFactory",
        "spark.hadoop.fs.s3a.committer.name": "magic",
        "spark.hadoop.fs.s3a.committer.magic.enabled": "true",
    }


def s3a_options(s3: S3Settings) -> dict[str, str]:
    """Hadoop S3A settings (without the `spark.hadoop.` prefix). No credentials: S3A's default provider chain
    reads env vars and instance roles; a named profile goes through the SDK's profile provider."""
    options = {
        "fs.s3a.attempts.maximum": str(s3.s3_max_attempts),
        "fs.s3a.retry.limit": str(s3.s3_max_attempts),
        "fs.s3a.connection.establish.timeout": f"{int(s3.s3_connect_timeout * 1000)}",
        "fs.s3a.connection.timeout": f"{int(s3.s3_read_timeout * 1000)}",
        # Hadoop 3.4.3+ reads through the "analytics" stream by default, which fails a file on the first GET
        # whose body is cut short (tests/test_faults.py); the classic stream re-opens and retries the read
        # under fs.s3a.retry.*, at about the same speed (benchmarks/s3a_stream.py).
        # Hadoop before 3.4.3 has only the classic stream and ignores the key.
        "fs.s3a.input.stream.type": "classic",
    }
    if s3.s3_endpoint:
        options["fs.s3a.endpoint"] = s3.s3_endpoint
        options["fs.s3a.path.style.access"] = "true"
        options["fs.s3a.connection.ssl.enabled"] = str(s3.s3_endpoint.startswith("https://")).lower()
    if s3.effective_region:
        options["fs.s3a.endpoint.region"] = s3.effective_region
    if s3.profile:
        options["fs.s3a.aws.credentials.provider"] = _profile_provider(bundled_hadoop_version())
    return options


def _profile_provider(hadoop_version: str) -> str:
    major, minor = (int(x) for x in hadoop_version.split(".")[:2])
    if (major, minor) >= (3, 4):
        return "software.amazon.awssdk.auth.credentials.ProfileCredentialsProvider"
    return "com.amazonaws.auth.profile.ProfileCredentialsProvider"


def spark_options(config: RunConfig) -> dict[str, str]:
    """Every Spark setting a run makes, as one dict (handy to test and to show)."""
    java_options = [
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}",
        f"-XX:ErrorFile={_log_folder() / 'hs_err_pid%p.log'}",  # a JVM crash report beside the driver log, not in the cwd
    ]
    if config.master_is_local:
        # The local driver JVM is also the executor; its C2 JIT burns about 6 CPU-seconds at start-up,
        # taken from TensorFlow on a small machine. C1 alone halves the JVM's CPU (measured: 13 -> 7 s
        # for a 10-image run), and the JVM is not the bottleneck of this job.
        java_options.append("-XX:TieredStopAtLevel=1")
    options = {
        "spark.app.name": APP_NAME,
        "spark.master": config.master,
        # one Arrow batch per model call: bounded memory, no re-batching in Python
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(config.batch_size),
        "spark.python.worker.reuse": "true",
        "spark.ui.showConsoleProgress": "false",  # our own progress bar replaces it
        "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
        "spark.driver.extraJavaOptions": " ".join(java_options),
        # Spark packs small files into one task up to 128 MB, charging 4 MB per file: 32 images of
        # 5 KB per task, and per-task costs (Python gc, scheduling) dominate. Charge about one image.
        "spark.sql.files.openCostInBytes": str(16 * 1024),
        "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
    }
    packages, excludes = required_packages(config)
    if packages:
        options["spark.jars.packages"] = ",".join(packages)
    if excludes:
        options["spark.jars.excludes"] = ",".join(excludes)
    if config.needs_s3a:
        options.update({f"spark.hadoop.{key}": value for key, value in s3a_options(config).items()})
        if config.profile:
            options["spark.executorEnv.AWS_PROFILE"] = config.profile
            options.update({f"spark.executorEnv.{name}": value for name, value in _profile_files_env().items()})
    if config.uses_magic_committer:
        options.update(magic_committer_options())
    return options


def required_packages(config: RunConfig) -> tuple[list[str], tuple[str, ...]]:
    """The Maven packages this run adds to Spark, and the dependencies of theirs to leave out: S3A at Spark's
    Hadoop version, and for the magic committer Spark's spark-hadoop-cloud module."""
    if not config.needs_s3a:
        return [], ()
    if config.uses_magic_committer:
        return [s3a_packages(bundled_hadoop_version()), hadoop_cloud_package()], HADOOP_CLOUD_EXCLUDES
    return [s3a_packages(bundled_hadoop_version())], ()


def _profile_files_env() -> dict[str, str]:
    """Where the profile's files are, for the JVM: boto3 and the v2 SDK read AWS_SHARED_CREDENTIALS_FILE,
    the v1 SDK (Hadoop 3.3's S3A) reads AWS_CREDENTIAL_PROFILES_FILE for the same file."""
    env = {name: os.environ[name] for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE") if name in os.environ}
    if "AWS_SHARED_CREDENTIALS_FILE" in env:
        env.setdefault("AWS_CREDENTIAL_PROFILES_FILE", os.environ.get("AWS_CREDENTIAL_PROFILES_FILE",
                                                                      env["AWS_SHARED_CREDENTIALS_FILE"]))
    return env


def start_session(config: RunConfig, existing=None, shipped: ShippedEnvironment | None = None) -> SessionHandle:
    """Start (or join) the SparkSession for a run. A given session, or one that already runs in this
    process (a notebook, a test fixture), is reused and left running; its S3A settings are updated.
    `shipped`: the packed environment the executors run from (--ship-env)."""
    from pyspark.sql import SparkSession

    options = spark_options(config)
    active = existing or SparkSession.getActiveSession()
    submitted = launched_by_spark_submit()
    if submitted:
        # spark-submit already started the JVM with its own --master, --packages and JVM options: those win
        for key in ("spark.master", "spark.jars.packages", "spark.jars.excludes", "spark.driver.extraJavaOptions"):
            options.pop(key, None)
    if (active is not None or submitted) and shipped is not None:
        raise ConfigError(
            "--ship-env needs to start Spark itself, and a Spark session is already running here "
            "(spark-submit, a notebook).",
            f"Pass --archives {shipped.spark_archive} and set PYSPARK_PYTHON={EXECUTOR_PYTHON} when starting Spark "
            "(see docs/cluster.md), and leave --ship-env off.",
        )
    if active is not None:
        return _join(active, options, config)

    if config.profile:
        os.environ["AWS_PROFILE"] = config.profile  # the driver JVM inherits it for S3A's profile provider
        os.environ.update(_profile_files_env())
    if shipped is not None:
        options["spark.archives"] = shipped.spark_archive
        # pyspark reads the executors' Python from this variable when the context starts
        os.environ["PYSPARK_PYTHON"] = EXECUTOR_PYTHON
    elif config.master_is_local:
        # pyspark starts local workers with $PYSPARK_PYTHON or a bare "python3" from PATH, which may lack
        # our packages (a venv that is not activated); this interpreter has them.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    use_caches = config.jvm_class_cache and not submitted
    packages = ";".join(options.get(key, "") for key in ("spark.jars.packages", "spark.jars.excludes"))
    identity, resolving = packages, False
    if use_caches and _may_put_packages_on_class_path(options, config):
        jars = remembered_jars(packages)
        if jars is None:
            resolving = True  # the last run to use the packages: a class archive of it would never be mapped
        else:
            # The local driver JVM is also the executor: jars on its class path need no Ivy resolution and no
            # copy into the application's file folder at the first task (686 MB for the AWS SDK v2 bundle);
            # measured: 10-image df run from S3 12.5-12.7 s -> 9.7-10.1 s
            for key in ("spark.jars.packages", "spark.jars.excludes"):
                options.pop(key, None)
            options["spark.driver.extraClassPath"] = os.pathsep.join(jars)
            identity = ";".join([packages, *(f"{jar}:{os.path.getsize(jar)}" for jar in jars)])
    archive = class_archive(spark_home(), identity) if use_caches and not resolving else None
    log_path = _new_log_path()
    try:
        try:
            spark = _launch(options, archive, log_path)
        except Exception:
            if archive is None or _unresolved_packages(log_path):
                raise
            archive.discard()  # a damaged or foreign archive must not keep Spark from starting
            archive = None
            spark = _launch(options, None, log_path)
    except Exception as exc:
        unresolved = _unresolved_packages(log_path)
        if config.uses_magic_committer and any("spark-hadoop-cloud" in name for name in unresolved):
            raise ConfigError(
                f"Spark could not fetch {hadoop_cloud_package()} (Maven: not found), the module the S3A magic "
                f"committer needs to write --output {config.output_location.uri}.",
                "Make it reachable (a Maven mirror: spark.jars.repositories or spark.jars.ivySettings in "
                "spark-defaults.conf), or pass --s3-committer file to commit by renames (slower on S3, not atomic).",
            ) from None
        raise SessionError(
            f"Spark did not start: {_first_line(exc)}. Last lines of its log ({log_path}):\n{_tail(log_path)}",
            "Check Java 17+ (JAVA_HOME), --master, and that Maven Central is reachable for the S3A jars.",
        ) from None
    spark.sparkContext.setLogLevel("WARN")
    _keep_jars_off_python_path(spark.sparkContext)
    if resolving:
        resolved = _local_jars(spark.sparkContext.getConf().get("spark.jars", ""))
        if resolved:
            remember_jars(packages, resolved)
    if submitted and config.needs_s3a and not _jvm_has_class(spark, "org.apache.hadoop.fs.s3a.S3AFileSystem"):
        spark.stop()
        raise ConfigError(
            "This run reads or writes S3 through S3A, and the spark-submit that started it has no S3A connector.",
            f"Add {spark_submit_flags(config)} to spark-submit (on EMR: --spark-s3-scheme s3 uses EMRFS instead).",
        )
    if submitted and config.uses_magic_committer and not _jvm_has_class(spark, COMMIT_PROTOCOL):
        spark.stop()
        raise _no_committer_module(config, "the spark-submit that started this run",
                                   f"Add {spark_submit_flags(config)} to spark-submit")
    if shipped is not None:
        spark.sparkContext.addPyFile(str(shipped.code))
    return SessionHandle(spark, spark.sparkContext.uiWebUrl, owned=True, log_path=log_path, class_archive=archive)


def _join(active, options: dict[str, str], config: RunConfig) -> SessionHandle:
    """Use a session this run did not start: set what can change at run time, check what cannot."""
    hadoop = active.sparkContext._jsc.hadoopConfiguration()
    for key, value in options.items():  # only these can change at run time; the rest is fixed at start
        if key.startswith("spark.hadoop."):
            hadoop.set(key[len("spark.hadoop.") :], value)
        elif key.startswith("spark.sql."):
            active.conf.set(key, value)
    for key, ours in (("spark.sql.sources.commitProtocolClass", COMMIT_PROTOCOL),
                      ("spark.sql.parquet.output.committer.class", PARQUET_COMMITTER)):
        if key not in options and active.conf.get(key, None) == ours:
            active.conf.unset(key)  # an earlier run's committer, not wanted by this one
    if config.uses_magic_committer and not _jvm_has_class(active, COMMIT_PROTOCOL):
        packages, excludes = required_packages(config)
        raise _no_committer_module(
            config, "the Spark session already running here",
            f"Start that session with spark.jars.packages={','.join(packages)} and "
            f"spark.jars.excludes={','.join(excludes)}",
        )
    return SessionHandle(active, active.sparkContext.uiWebUrl, owned=False)


def _no_committer_module(config: RunConfig, started_by: str, fix: str) -> ConfigError:
    return ConfigError(
        f"The S3A magic committer (--s3-committer magic) for --output {config.output_location.uri} needs "
        f"Spark's spark-hadoop-cloud module, and {started_by} has none.", f"{fix}, or pass --s3-committer file.",
    )


def _may_put_packages_on_class_path(options: dict[str, str], config: RunConfig) -> bool:
    """Only on a local master (one JVM), and not over a class path that spark-defaults.conf sets."""
    return "spark.jars.packages" in options and config.master_is_local \
        and not _defaults_set_driver_class_path()


def _launch(options: dict[str, str], archive: ClassArchive | None, log_path: Path):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in options.items():
        if key == "spark.driver.extraJavaOptions" and archive is not None:
            # JVM log lines (e.g. classes an archive skips) go to stdout by default: keep them in the log file
            value = f"{value} {archive.java_option} -Xlog:all=off:stdout -Xlog:all=warning:stderr"
        builder = builder.config(key, value)
    with _stderr_to(log_path):  # the JVM inherits this stderr: Ivy reports, Spark and TF logs go there
        return builder.getOrCreate()


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
    options = {
        "spark.app.name": app_name,
        "spark.master": "local[*]",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} -XX:TieredStopAtLevel=1",
    }
    if uses_s3 and s3.spark_s3_scheme == "s3a":
        options["spark.jars.packages"] = s3a_packages(bundled_hadoop_version())
        options.update({f"spark.hadoop.{key}": value for key, value in s3a_options(s3).items()})
    log_path = _new_log_path()
    try:
        spark = _launch(options, None, log_path)
    except Exception as exc:
        raise SessionError(f"Spark did not start: {_first_line(exc)}. See its log: {log_path}",
                           "Check Java 17+ (JAVA_HOME).") from None
    spark.sparkContext.setLogLevel("WARN")
    _keep_jars_off_python_path(spark.sparkContext)
    return SessionHandle(spark, spark.sparkContext.uiWebUrl, owned=True, log_path=log_path)


def spark_submit_flags(config: RunConfig) -> str:
    """The spark-submit flags that bring the jars this run needs."""
    packages, excludes = required_packages(config)
    flags = f"--packages {','.join(packages)}"
    return f"{flags} --exclude-packages {','.join(excludes)}" if excludes else flags


def _unresolved_packages(log_path: Path) -> list[str]:
    """The Maven modules Spark's Ivy could not resolve, from the driver log ("group#artifact;version")."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return re.findall(r"unresolved dependency: ([^:\s]+#[^;\s]+;[^:\s]+): not found", text)


def _local_jars(spark_jars: str) -> list[str]:
    """Local paths of the jars in a `spark.jars` value (spark-submit puts the resolved packages there)."""
    paths = []
    for entry in filter(None, spark_jars.split(",")):
        parts = urlsplit(entry)
        if parts.scheme in ("", "file") and not parts.netloc:
            paths.append(unquote(parts.path) if parts.scheme else entry)
    return paths


def _defaults_set_driver_class_path() -> bool:
    """Whether spark-defaults.conf sets the driver's class path: ours would replace it, so keep packages."""
    folder = Path(os.environ["SPARK_CONF_DIR"]) if os.environ.get("SPARK_CONF_DIR") else spark_home() / "conf"
    try:
        text = (folder / "spark-defaults.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(line.split(None, 1)[0:1] == ["spark.driver.extraClassPath"] for line in text.splitlines())


def launched_by_spark_submit() -> bool:
    """spark-submit (and the pyspark shell) start the JVM first and hand its port to Python."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _jvm_has_class(spark, name: str) -> bool:
    try:
        spark.sparkContext._jvm.org.apache.spark.util.Utils.classForName(name, True, False)
        return True
    except Exception:
        return False


def _keep_jars_off_python_path(context) -> None:
    """spark-submit also ships `spark.jars.packages` jars as Python files (for spark-packages that carry
    Python code) and puts them on sys.path, in the driver and in every worker. Ours are Java only, and with
    the 690 MB AWS SDK bundle there, every later import miss and metadata lookup scans it (measured: 8.7 s
    for one importlib.metadata.version call)."""
    sys.path[:] = [entry for entry in sys.path if not entry.endswith(".jar")]
    context._python_includes[:] = [name for name in context._python_includes if not name.endswith(".jar")]


def _log_folder() -> Path:
    return Path(tempfile.gettempdir()) / "sparkyfruit-logs"


def _new_log_path() -> Path:
    folder = _log_folder()
    folder.mkdir(exist_ok=True)
    return folder / f"driver-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


@contextlib.contextmanager
def _stderr_to(path: Path):
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(path, "ab") as log:
            os.dup2(log.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _first_line(exc: Exception) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])
