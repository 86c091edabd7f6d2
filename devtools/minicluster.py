"""A one-node HDFS and a one-node YARN in one JVM, from Hadoop's own `hadoop-client-minicluster` at the
Hadoop version of the installed pyspark, for tests. `start(folder)` returns a MiniCluster whose
`conf_dir` is a HADOOP_CONF_DIR that Spark reads; `stop()` kills the JVM by pid (YARN stops its
containers on the way out).

The jars are resolved once with the Ivy that pyspark ships (Spark's own resolver for --packages) into
~/.cache/sparkyfruit/minicluster/hadoop-<version>/, and the launcher, devtools/MiniCluster.java, is compiled
there with javac at first use (the NodeManager loads one of its classes by name, so it must be on the class
path, which Java's source-file mode does not give).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devtools.server_log import log_size, wait_for_line

LAUNCHER = Path(__file__).with_name("MiniCluster.java")
READY_LINE = re.compile(r"MINICLUSTER READY (\{.*\})")

# Beyond the shaded minicluster jar (pyspark already has hadoop-client-api and -runtime, and its own
# copies of what the minicluster's POM adds), MiniYARNCluster loads JUnit 5's API and the NameNode
# Bouncy Castle. Versions that Maven Central serves and that start both clusters.
EXTRA_PACKAGES = (
    ("org.junit.jupiter", "junit-jupiter-api", "5.10.2", True),
    ("org.bouncycastle", "bcpkix-jdk18on", "1.80", True),  # brings bcutil and bcprov
)


# the daemons' warnings, and what the tests look for when a container misbehaves: localization and the
# NodeManager's memory monitor
LOG_CONFIG = """\
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss.SSS} %p %c{1}: %m%n
logger.localizer.name = org.apache.hadoop.yarn.server.nodemanager.containermanager.localizer
logger.localizer.level = info
logger.monitor.name = org.apache.hadoop.yarn.server.nodemanager.containermanager.monitor
logger.monitor.level = info
logger.container.name = org.apache.hadoop.yarn.server.nodemanager.containermanager.container
logger.container.level = info
"""


@dataclass
class MiniCluster:
    process: subprocess.Popen
    folder: Path
    conf_dir: Path  # HADOOP_CONF_DIR: core-site.xml (fs.defaultFS = this HDFS), hdfs-site.xml, yarn-site.xml
    default_fs: str  # hdfs://localhost:PORT
    resource_manager: str  # host:port of the ResourceManager's client RPC
    web: str  # the ResourceManager's web UI and REST API
    log_dirs: list[Path] = field(default_factory=list)  # the NodeManager's container log folders

    @property
    def env(self) -> dict[str, str]:
        """The environment a Spark client needs to find this cluster."""
        return {"HADOOP_CONF_DIR": str(self.conf_dir), "YARN_CONF_DIR": str(self.conf_dir)}

    def applications(self) -> list[dict]:
        """The ResourceManager's applications, from its REST API."""
        with urllib.request.urlopen(f"{self.web}/ws/v1/cluster/apps", timeout=10) as response:
            return (json.load(response).get("apps") or {}).get("app", [])

    def container_logs(self, application_id: str) -> dict[str, str]:
        """{container id/file name: text} of every log file the application's containers left."""
        logs = {}
        for folder in self.log_dirs:
            for path in sorted((folder / application_id).glob("container_*/*")):
                if path.is_file():
                    logs[f"{path.parent.name}/{path.name}"] = path.read_text(errors="replace")
        return logs

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its shutdown hook stops YARN, then HDFS
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # and anything of the group still there
        except ProcessLookupError:
            pass
        self.process.wait(timeout=15)


def ivy_module(hadoop_version: str) -> str:
    """The ivy.xml that names what the launcher needs: the minicluster jar alone (its dependencies are in
    pyspark), and the extras with theirs."""
    dependencies = [
        f'<dependency org="org.apache.hadoop" name="hadoop-client-minicluster" rev="{hadoop_version}" '
        'transitive="false"/>'
    ]
    for group, name, version, transitive in EXTRA_PACKAGES:
        dependencies.append(
            f'<dependency org="{group}" name="{name}" rev="{version}" transitive="{str(transitive).lower()}"/>'
        )
    return (
        '<ivy-module version="2.0"><info organisation="sparkyfruit" module="minicluster"/><dependencies>'
        + "".join(dependencies)
        + "</dependencies></ivy-module>\n"
    )


def resolve_jars(timeout: float = 600) -> list[Path]:
    """The minicluster's jars for this pyspark's Hadoop, fetched once through pyspark's own Ivy."""
    from sparkyfruit.spark.class_cache import cache_dir
    from sparkyfruit.spark.jars import bundled_hadoop_version, spark_home

    version = bundled_hadoop_version()
    folder = cache_dir() / "minicluster" / f"hadoop-{version}"
    done = folder / "resolved"  # holds the ivy.xml it was resolved from: another list of jars resolves again
    if not done.is_file() or done.read_text() != ivy_module(version):
        ivy = next((spark_home() / "jars").glob("ivy-*.jar"))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "ivy.xml").write_text(ivy_module(version))
        result = subprocess.run(
            [
                "java",
                "-jar",
                str(ivy),
                "-ivy",
                str(folder / "ivy.xml"),
                "-cache",
                str(folder / "ivy-cache"),
                "-retrieve",
                str(folder / "lib" / "[artifact]-[revision](-[classifier]).[ext]"),
                "-types",
                "jar",
                "bundle",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"Ivy could not fetch the minicluster's jars:\n{result.stdout[-3000:]}{result.stderr}")
        done.write_text(ivy_module(version))
    return sorted((folder / "lib").glob("*.jar"))


def compile_launcher(jars: list[Path]) -> Path:
    """The folder of the launcher's classes, compiled once per source text and Hadoop version."""
    import hashlib

    source = LAUNCHER.read_bytes()
    classes = jars[0].parent.parent / f"classes-{hashlib.sha256(source).hexdigest()[:16]}"
    if not (classes / "MiniCluster.class").is_file():
        partial = classes.with_name(f"{classes.name}.{os.getpid()}.partial")
        partial.mkdir(parents=True, exist_ok=True)
        class_path = os.pathsep.join([*map(str, jars), str(spark_jars() / "*")])
        result = subprocess.run(
            ["javac", "-nowarn", "-d", str(partial), "-cp", class_path, str(LAUNCHER)], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"javac could not compile {LAUNCHER}:\n{result.stdout}{result.stderr}")
        # read by every `new Configuration()` in the minicluster's JVM, the NodeManager's local FileContext too
        (partial / "core-site.xml").write_text(
            "<configuration><property><name>fs.AbstractFileSystem.file.impl</name>"
            "<value>MiniCluster$NioLocalFs</value></property></configuration>\n"
        )
        os.replace(partial, classes)
    return classes


def spark_jars() -> Path:
    from sparkyfruit.spark.jars import spark_home

    return spark_home() / "jars"


def start(folder: Path, memory_mb: int = 8192, vcores: int = 8, timeout: float = 180) -> MiniCluster:
    """Start HDFS and YARN in one JVM under `folder`; wait until both are up and their ports reported.

    `memory_mb`, `vcores`: what the one NodeManager offers (an application master and two one-core
    executors with their Python workers fit in the default)."""
    jars = resolve_jars()
    class_path = os.pathsep.join([str(compile_launcher(jars)), *map(str, jars), str(spark_jars() / "*")])
    folder.mkdir(parents=True, exist_ok=True)
    conf_dir = folder / "conf"
    log = folder / "minicluster.log"
    since = log_size(log)
    log_config = folder / "log4j2.properties"
    log_config.write_text(LOG_CONFIG)
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [
                "java",
                "-Xmx1g",
                f"-Dlog4j2.configurationFile={log_config.as_uri()}",
                "-cp",
                class_path,
                "MiniCluster",
                str(folder),
                str(conf_dir),
                str(memory_mb),
                str(vcores),
            ],
            cwd=folder,  # MiniYARNCluster keeps its folders under ./target
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"the minicluster JVM exited ({process.returncode}); its log: {log}")

    try:
        ready = json.loads(wait_for_line(log, since, READY_LINE, check_alive, time.monotonic() + timeout).group(1))
    except BaseException:
        cluster = MiniCluster(process, folder, conf_dir, "", "", "")
        cluster.stop()
        raise
    return MiniCluster(
        process,
        folder,
        conf_dir,
        ready["default_fs"],
        ready["resource_manager"],
        ready["web"],
        [Path(part) for part in ready["log_dirs"].split(",") if part],
    )
