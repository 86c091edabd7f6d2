"""A class-data-sharing archive (AppCDS) of the driver JVM's classes, so later runs start faster.

Spark's driver loads thousands of classes at start-up; mapping them from an archive instead of parsing the
jars again shortens every start (docs/performance.md, cold start rows of benchmarks/featurize.py). The
first run with a given Java, Spark installation and set of packages records the archive as its JVM
exits; every later run with the same ones maps it. The folder keeps the few most recently used.

Recording costs the run that does it tens of seconds as its JVM exits (writing some 200 MB), after its
output is done. So it is not the first run with a set of jars that records, but the second: a one-off run,
or a throw-away virtualenv, never pays for an archive it would not use. The first run leaves a marker.

A truncated archive crashes the JVM, so the JVM records into a temporary file that is renamed into
place only after the JVM has exited cleanly.

Also kept here: the jars Ivy resolved for `spark.jars.packages` (S3A and its AWS SDK bundle), so that a
later local run can put them on the driver's class path instead of resolving them again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sparkyfruit import processes

# archives kept in the cache folder, most recently used first (each about 180-210 MB)
MAX_ARCHIVES = 2
# markers of identities seen once (empty files), most recently used first
MAX_MARKERS = 20


@dataclass
class ClassArchive:
    java_option: str  # what to add to the driver's JVM options
    recording: Path | None = None  # the temporary file the JVM writes at exit, when this run records
    final: Path | None = None

    def finish(self, exit_code: int | None) -> None:
        """Called once the driver JVM has exited: keep a recording only if the JVM ended cleanly."""
        if self.recording is None:
            return
        if exit_code == 0 and self.recording.is_file() and self.recording.stat().st_size > 0:
            os.replace(self.recording, self.final)
        else:
            self.recording.unlink(missing_ok=True)

    def discard(self) -> None:
        """The JVM did not start with this archive: remove it so the next run records a fresh one."""
        for path in (self.recording, self.final):
            if path is not None:
                path.unlink(missing_ok=True)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sparkyfruit"


def java_home() -> Path | None:
    """The Java that spark-submit will run: $JAVA_HOME, else `java` on PATH (as bin/spark-class picks it)."""
    if os.environ.get("JAVA_HOME"):
        java = Path(os.environ["JAVA_HOME"]) / "bin" / "java"
    else:
        found = shutil.which("java")
        if not found:
            return None
        java = Path(found)
    java = java.resolve()
    return java.parent.parent if java.is_file() else None


def class_archive(spark_home: Path, packages: str | None) -> ClassArchive | None:
    """The archive option for this Java + Spark + packages, or None where the JVM cannot use one (no base
    CDS archive in the JDK: recording would stop the JVM from starting)."""
    home = java_home()
    if home is None:
        return None
    libjvm = next(iter(sorted(home.glob("lib/*/libjvm.so")) + sorted(home.glob("lib/*/libjvm.dylib"))), None)
    if libjvm is None or not (libjvm.parent / "classes.jsa").is_file():
        return None
    # what the JVM checks before it maps an archive: the same JVM, and every jar of the class path at the
    # same path with the same size and modification time (a venv elsewhere, or reinstalled, has others)
    jars = sorted((spark_home / "jars").glob("*.jar"))
    identity = "\n".join(
        [
            str(libjvm),
            str(libjvm.stat().st_mtime_ns),
            *(f"{jar.resolve()}:{jar.stat().st_size}:{jar.stat().st_mtime_ns}" for jar in jars),
            packages or "",
        ]
    )
    key = hashlib.sha256(identity.encode()).hexdigest()[:20]
    folder = cache_dir()
    if any(character.isspace() for character in str(folder)):
        return None  # Spark splits extraJavaOptions at whitespace
    final = folder / f"driver-classes-{key}.jsa"
    if final.is_file():
        os.utime(final)  # recently used: the last to be pruned
        return ClassArchive(f"-XX:SharedArchiveFile={final}", final=final)
    seen = folder / f"driver-classes-{key}.seen"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not seen.is_file():  # the first run with these jars: remember them, record next time
            seen.touch()
            _prune(folder, keep=MAX_MARKERS, pattern="driver-classes-*.seen")
            return None
    except OSError:
        return None
    _remove_abandoned_recordings(folder)
    _prune(folder, keep=MAX_ARCHIVES - 1)  # room for the one this run records
    recording = folder / f".driver-classes-{key}.{os.getpid()}.recording"
    return ClassArchive(f"-XX:ArchiveClassesAtExit={recording}", recording=recording, final=final)


def _prune(folder: Path, keep: int, pattern: str = "driver-classes-*.jsa") -> None:
    """Keep the `keep` most recently used archives (or markers): each virtualenv (and each set of S3A jars)
    has its own, each large, and one for a venv that is gone is never used again."""
    archives = sorted(folder.glob(pattern), key=lambda path: path.stat().st_mtime, reverse=True)
    for stale in archives[keep:]:
        stale.unlink(missing_ok=True)


def _remove_abandoned_recordings(folder: Path) -> None:
    """Recordings of runs that were killed before their JVM exited: never complete, never renamed."""
    for path in folder.glob(".driver-classes-*.recording"):
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not processes.is_running(int(pid)):
            path.unlink(missing_ok=True)


def _resolved_jars_file(packages: str) -> Path:
    return cache_dir() / f"resolved-jars-{hashlib.sha256(packages.encode()).hexdigest()[:20]}.json"


def remembered_jars(packages: str) -> list[str] | None:
    """The local jars an earlier run's Ivy resolved for these packages, if every one is still there."""
    try:
        jars = json.loads(_resolved_jars_file(packages).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not jars or not all(isinstance(jar, str) and Path(jar).is_file() for jar in jars):
        return None
    return jars


def remember_jars(packages: str, jars: list[str]) -> None:
    """Written whole or not at all: a half-written list would fail the JVM's start on the next run."""
    target = _resolved_jars_file(packages)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}")
        partial.write_text(json.dumps(jars), encoding="utf-8")
        os.replace(partial, target)
    except OSError:
        pass  # only a later run's speed depends on it


def end_driver_jvm(wait: bool = True) -> int | None:
    """Let the driver JVM exit now (it does when its stdin closes) and, with `wait`, return its exit code. A
    JVM that records a class archive writes it while exiting, which must be complete before the archive is
    used. pyspark launches a new JVM for the next session in this process."""
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
    if not wait:
        return None
    try:
        return process.wait(timeout=120)
    except Exception:
        return None


# the options that have spark-submit resolve Maven packages (through Ivy) for a JVM it starts
PACKAGE_OPTIONS = ("spark.jars.packages", "spark.jars.excludes")


def packages_identity(options: dict[str, str]) -> str:
    """What names a run's Maven packages in this cache: its packages and their excludes."""
    return ";".join(options.get(key, "") for key in PACKAGE_OPTIONS)


def _drop_packages(options: dict[str, str]) -> None:
    for key in PACKAGE_OPTIONS:
        options.pop(key, None)


def serve_remembered_jars(options: dict[str, str], packages: str) -> bool:
    """On a cluster master other than YARN: the jars an earlier run resolved for `packages` go to the executors
    as `spark.jars` instead of `spark.jars.packages`. spark-submit ships the jars of packages as Python files
    as well, and outside YARN those go into `spark.files`: every executor then fetched the AWS SDK bundle
    (686 MB) twice. Returns whether it did (False: nothing remembered, the packages stay)."""
    jars = remembered_jars(packages)
    if jars is None:
        return False
    _drop_packages(options)
    options["spark.jars"] = ",".join(Path(jar).as_uri() for jar in jars)
    return True


def use_remembered_jars(options: dict[str, str], packages: str) -> tuple[str, bool]:
    """Put the jars an earlier run resolved on the driver's class path instead of resolving them again.
    Returns (the class archive's identity, whether this run resolves them: the last run to use the
    packages records no class archive, which would never be mapped)."""
    jars = remembered_jars(packages)
    if jars is None:
        return packages, True
    # The local driver JVM is also the executor: jars on its class path need no Ivy resolution and no copy
    # into the application's file folder at the first task (the AWS SDK bundle is large)
    _drop_packages(options)
    options["spark.driver.extraClassPath"] = os.pathsep.join(jars)
    return ";".join([packages, *(f"{jar}:{os.path.getsize(jar)}" for jar in jars)]), False
