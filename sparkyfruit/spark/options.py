"""Settings -> Spark and Hadoop options, as plain dicts (pure: nothing starts, nothing is read but the
jar names of the installed Spark). Credentials are never set here: S3A's provider chain finds them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sparkyfruit.config import RunConfig, S3Settings
from sparkyfruit.spark import driver_log, jars

APP_NAME = "sparkyfruit"
DAEMON_MODULE_KEY = "spark.python.daemon.module"
WORKER_DAEMON_MODULE = "sparkyfruit.spark.worker_daemon"  # its value on a local master (spark/worker_daemon.py)
# what a Spark Python worker's command line runs: a daemon (sparkyfruit's, or pyspark's where Spark starts
# its own) and its forks, or a worker started without a daemon
PYTHON_WORKER_MODULES = (WORKER_DAEMON_MODULE, "pyspark.daemon", "pyspark.worker")


def is_python_worker(argv: list[str]) -> bool:
    """Whether a process's argv is a Spark Python worker's (``python -m`` one of PYTHON_WORKER_MODULES): how
    benchmarks and tests find the workers. The module is matched as ``-m``'s argument, not anywhere in the
    command: the local JVM's own command line names the daemon module in its ``--conf``."""
    return any(flag == "-m" and module in PYTHON_WORKER_MODULES for flag, module in zip(argv, argv[1:]))


LOG4J_CONFIG = Path(__file__).parent.parent / "log4j2.properties"


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
        options["fs.s3a.aws.credentials.provider"] = _profile_provider(jars.bundled_hadoop_version())
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
        # a JVM crash report beside the driver log, not in the current folder
        f"-XX:ErrorFile={driver_log.log_folder() / 'hs_err_pid%p.log'}",
    ]
    if config.master_is_local:
        # The local driver JVM is also the executor. Its C2 JIT compiler spends CPU at start-up that TensorFlow
        # needs on a small machine: the run takes seconds longer, and C2's faster code for the Parquet write
        # repays that only over tens of thousands of images (docs/performance.md).
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
        "spark.driver.memory": config.driver_memory,  # read only when this process starts the JVM
        # Spark charges every file 4 MB when it packs files into tasks, which for small images means few
        # images per file split and per-task costs that dominate: charge about one small image.
        "spark.sql.files.openCostInBytes": str(16 * 1024),
        "spark.executorEnv.TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if workers_run_this_python(config) and not jars.spark_defaults_set(DAEMON_MODULE_KEY):
        # each worker starts with pyspark, sparkyfruit and the engine imported (spark/worker_daemon.py)
        options[DAEMON_MODULE_KEY] = WORKER_DAEMON_MODULE
    packages, excludes = jars.required_packages(config)
    if packages:
        options["spark.jars.packages"] = ",".join(packages)
    if excludes:
        options["spark.jars.excludes"] = ",".join(excludes)
    if config.needs_s3a:
        options.update({f"spark.hadoop.{key}": value for key, value in s3a_options(config).items()})
    if config.profile:
        # the executors' boto3 (keys mode) and S3A read the same profile; on YARN they inherit no environment
        options["spark.executorEnv.AWS_PROFILE"] = config.profile
        options.update({f"spark.executorEnv.{name}": value for name, value in profile_files_env().items()})
    return options


def workers_run_this_python(config: RunConfig) -> bool:
    """A local master whose workers run this interpreter (session.py sets PYSPARK_PYTHON to it unless the
    user chose another), so they import the sparkyfruit that this process imports."""
    return config.master_is_local and os.environ.get("PYSPARK_PYTHON", sys.executable) == sys.executable


def profile_files_env() -> dict[str, str]:
    """Where the profile's files are, for the JVM: boto3 and the v2 SDK read AWS_SHARED_CREDENTIALS_FILE,
    the v1 SDK (Hadoop 3.3's S3A) reads AWS_CREDENTIAL_PROFILES_FILE for the same file."""
    env = {name: os.environ[name] for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE") if name in os.environ}
    if "AWS_SHARED_CREDENTIALS_FILE" in env:
        env.setdefault(
            "AWS_CREDENTIAL_PROFILES_FILE",
            os.environ.get("AWS_CREDENTIAL_PROFILES_FILE", env["AWS_SHARED_CREDENTIALS_FILE"]),
        )
    return env


def tool_options(s3: S3Settings, app_name: str, uses_s3: bool) -> dict[str, str]:
    """The options of a local session for a command that post-processes an output (reduce, evaluate's
    logistic probe): all cores, quiet logs, S3A when a location is on S3."""
    options = {
        "spark.app.name": app_name,
        "spark.master": "local[*]",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()} -XX:TieredStopAtLevel=1",
    }
    if uses_s3 and s3.spark_s3_scheme == "s3a":
        options["spark.jars.packages"] = jars.s3a_packages(jars.bundled_hadoop_version())
        options.update({f"spark.hadoop.{key}": value for key, value in s3a_options(s3).items()})
    return options
