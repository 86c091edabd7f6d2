"""Which Maven packages a run adds to Spark, read from the installed Spark's own jar names (no JVM)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sparkyfruit.config import RunConfig
from sparkyfruit.errors import ConfigError


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
            "jars/).",
            "Install pyspark from PyPI, or point SPARK_HOME at a Spark built with Hadoop 3.",
        )
    return found[0]


def s3a_packages(hadoop_version: str) -> str:
    """Maven coordinates for S3A; hadoop-aws pulls the AWS SDK bundle it was built with (v1 for 3.3, v2 for 3.4+)."""
    return f"org.apache.hadoop:hadoop-aws:{hadoop_version}"


def spark_build(home: Path | None = None) -> tuple[str, str]:
    """(Scala binary version, Spark version) of the installed Spark, read from its spark-core jar's name."""
    found = _versions_in_jar_names(home, r"spark-core_(\d+\.\d+)-(\d+\.\d+\.\d+.*)\.jar")
    if found is None:
        raise ConfigError(
            f"Cannot tell which Spark is installed at {home or spark_home()} (no spark-core_*.jar in its jars/).",
            "Install pyspark from PyPI, or point SPARK_HOME at a Spark distribution.",
        )
    return found[0], found[1]


def required_packages(config: RunConfig) -> tuple[list[str], tuple[str, ...]]:
    """The Maven packages this run adds to Spark, and the dependencies of theirs to leave out: S3A at Spark's
    Hadoop version."""
    if not config.needs_s3a:
        return [], ()
    return [s3a_packages(bundled_hadoop_version())], ()


def spark_submit_flags(config: RunConfig) -> str:
    """The spark-submit flags that bring the jars this run needs."""
    packages, excludes = required_packages(config)
    flags = f"--packages {','.join(packages)}"
    return f"{flags} --exclude-packages {','.join(excludes)}" if excludes else flags


def local_jars(spark_jars: str) -> list[str]:
    """Local paths of the jars in a `spark.jars` value (spark-submit puts the resolved packages there)."""
    paths = []
    for entry in filter(None, spark_jars.split(",")):
        parts = urlsplit(entry)
        if parts.scheme in ("", "file") and not parts.netloc:
            paths.append(unquote(parts.path) if parts.scheme else entry)
    return paths


def spark_defaults_set(key: str) -> bool:
    """Whether spark-defaults.conf sets `key` (what it sets wins over sparkyfruit's own choice)."""
    folder = Path(os.environ["SPARK_CONF_DIR"]) if os.environ.get("SPARK_CONF_DIR") else spark_home() / "conf"
    try:
        text = (folder / "spark-defaults.conf").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(line.split(None, 1)[0:1] == [key] for line in text.splitlines())


def keep_jars_off_python_path(context) -> None:
    """spark-submit also ships `spark.jars.packages` jars as Python files (for spark-packages that carry
    Python code) and puts them on sys.path, in the driver and in every worker. Ours are Java only, and with
    the large AWS SDK bundle there, every later import miss and metadata lookup scans it."""
    sys.path[:] = [entry for entry in sys.path if not entry.endswith(".jar")]
    context._python_includes[:] = [name for name in context._python_includes if not name.endswith(".jar")]


def may_serve_packages_as_jars(options: dict[str, str], config: RunConfig) -> bool:
    """On a cluster master other than YARN (whose cache ships a jar once), and not over the `spark.jars` that
    spark-defaults.conf sets."""
    return (
        "spark.jars.packages" in options
        and not config.master_is_local
        and not config.master_is_yarn
        and not spark_defaults_set("spark.jars")
    )


def may_put_packages_on_class_path(options: dict[str, str], config: RunConfig) -> bool:
    """Only on a local master (one JVM), and not over a class path that spark-defaults.conf sets."""
    # spark-defaults.conf's driver class path would be replaced by ours: keep packages then
    return (
        "spark.jars.packages" in options
        and config.master_is_local
        and not spark_defaults_set("spark.driver.extraClassPath")
    )
