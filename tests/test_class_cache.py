"""The driver JVM's class archive (AppCDS): recorded once, by the second run with a set of jars, mapped
later, never able to stop Spark starting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparkyfruit.spark import class_cache
from sparkyfruit.spark.jars import spark_home
from tests.helpers import SAMPLE, SCRIPT, encode_args, spark_environment_while_running


def fake_jdk(root: Path, base_archive: bool) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "java").write_text("#!/bin/sh\n")
    (root / "bin" / "java").chmod(0o755)
    (root / "lib" / "server").mkdir(parents=True)
    (root / "lib" / "server" / "libjvm.so").write_bytes(b"")
    if base_archive:
        (root / "lib" / "server" / "classes.jsa").write_bytes(b"")
    return root


def test_no_archive_without_the_jdks_base_archive(tmp_path, monkeypatch):
    """Recording on a JDK without classes.jsa would stop the JVM from starting."""
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path / "jdk", base_archive=False)))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert class_cache.class_archive(spark_home(), None) is None


def recording_archive(packages: str | None = None) -> class_cache.ClassArchive:
    """The archive of the second run with these jars, which records (the first only leaves its marker)."""
    class_cache.class_archive(spark_home(), packages)
    archive = class_cache.class_archive(spark_home(), packages)
    assert archive is not None and archive.recording is not None
    return archive


def test_the_second_run_records_then_later_ones_map_and_the_key_has_the_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path / "jdk", base_archive=True)))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # a one-off run (or a throw-away venv) pays nothing: the first run with a set of jars records nothing
    assert class_cache.class_archive(spark_home(), None) is None
    assert len(list((tmp_path / "cache" / "sparkyfruit").glob("driver-classes-*.seen"))) == 1
    first = class_cache.class_archive(spark_home(), None)
    assert first.java_option == f"-XX:ArchiveClassesAtExit={first.recording}"
    first.recording.write_bytes(b"classes")
    first.finish(exit_code=0)
    assert first.final.read_bytes() == b"classes" and not first.recording.exists()

    again = class_cache.class_archive(spark_home(), None)
    assert again.recording is None and again.java_option == f"-XX:SharedArchiveFile={first.final}"
    assert class_cache.class_archive(spark_home(), "org.apache.hadoop:hadoop-aws:3.5.0") is None  # new jars
    with_s3a = class_cache.class_archive(spark_home(), "org.apache.hadoop:hadoop-aws:3.5.0")
    assert with_s3a.recording is not None and with_s3a.final != first.final


def test_the_cache_keeps_the_most_recently_used_archives(tmp_path, monkeypatch):
    """Each virtualenv records its own archive (the JVM checks every jar's path, size and time): the folder
    keeps MAX_ARCHIVES, the least recently used go first, and an archive a run maps counts as used."""
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path / "jdk", base_archive=True)))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mine = recording_archive()
    mine.recording.write_bytes(b"classes")
    mine.finish(exit_code=0)
    folder = mine.final.parent
    others = [folder / f"driver-classes-other{index}.jsa" for index in range(4)]
    for age, path in enumerate(others):
        path.write_bytes(b"x")
        os.utime(path, (1_000_000 - age, 1_000_000 - age))  # other0 the newest of them, all older than mine
    os.utime(mine.final, (900_000, 900_000))
    assert class_cache.class_archive(spark_home(), None).recording is None  # mapped: now the newest
    recording_archive("org.apache.hadoop:hadoop-aws:3.5.0")  # records a new one: room for it is made
    kept = sorted(path.name for path in folder.glob("driver-classes-*.jsa"))
    assert kept == [mine.final.name] and class_cache.MAX_ARCHIVES == 2


def test_a_recording_is_kept_only_after_a_clean_exit(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path / "jdk", base_archive=True)))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    archive = recording_archive()
    archive.recording.write_bytes(b"half")
    archive.finish(exit_code=134)
    assert not archive.recording.exists() and not archive.final.exists()


def test_recordings_of_dead_processes_are_removed(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(fake_jdk(tmp_path / "jdk", base_archive=True)))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "sparkyfruit"
    folder.mkdir(parents=True)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = folder / f".driver-classes-abc.{finished.stdout.strip()}.recording"
    in_progress = folder / f".driver-classes-abc.{os.getpid()}.recording"
    abandoned.write_bytes(b"x")
    in_progress.write_bytes(b"x")
    recording_archive()
    assert not abandoned.exists() and in_progress.exists()


def encode(tmp_path: Path, output: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    script = SCRIPT
    env = {**os.environ, "COLUMNS": "200", "XDG_CACHE_HOME": str(tmp_path / "cache"), **(extra_env or {})}
    return subprocess.run(
        [
            script,
            *encode_args(str(SAMPLE), str(tmp_path / output)),
            "--limit",
            "8",
            "--master",
            "local[2]",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )


@pytest.mark.integration
@pytest.mark.spark
@pytest.mark.slow
def test_the_second_run_records_the_archive_and_the_next_run_maps_it(tmp_path):
    # the first run with these jars only leaves its marker: a one-off run pays nothing after its output
    once = encode(tmp_path, "once")
    assert once.returncode == 0, once.stderr
    assert "Saving the Spark driver's classes" not in once.stdout + once.stderr
    assert not list((tmp_path / "cache" / "sparkyfruit").glob("driver-classes-*.jsa"))
    first = encode(tmp_path, "first")
    assert first.returncode == 0, first.stderr
    assert "Saving the Spark driver's classes" in first.stdout + first.stderr
    folder = tmp_path / "cache" / "sparkyfruit"
    archives = list(folder.glob("driver-classes-*.jsa"))
    assert len(archives) == 1 and archives[0].stat().st_size > 10_000_000
    assert not list(folder.glob(".*.recording"))

    # the JVM logs where each class came from; "(top)" is the archive layer that sparkyfruit recorded
    class_log = tmp_path / "classes.log"
    second = encode(tmp_path, "second", {"JAVA_TOOL_OPTIONS": f"-Xlog:class+load=info:file={class_log}"})
    assert second.returncode == 0, second.stderr
    assert "Saving the Spark driver's classes" not in second.stdout + second.stderr
    assert "source: shared objects file (top)" in class_log.read_text()

    # a truncated archive (a full disk, a copy cut short) crashes a JVM that maps it: the run must go on
    archive = archives[0]
    archive.chmod(0o644)
    archive.write_bytes(archive.read_bytes()[:20_000_000])
    third = encode(tmp_path, "third")
    assert third.returncode == 0, third.stderr
    assert "done: 8 images, 8 ok" in third.stdout
    assert not archive.exists()  # discarded: the next run records a fresh one
    assert not list(tmp_path.glob("hs_err_pid*.log"))  # the crash report went beside the driver log


def test_resolved_jars_are_remembered_whole_and_forgotten_when_one_is_gone(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    jars = [tmp_path / "hadoop-aws.jar", tmp_path / "bundle.jar"]
    for jar in jars:
        jar.write_bytes(b"jar")
    assert class_cache.remembered_jars("org.apache.hadoop:hadoop-aws:3.5.0;") is None
    class_cache.remember_jars("org.apache.hadoop:hadoop-aws:3.5.0;", [str(jar) for jar in jars])
    assert class_cache.remembered_jars("org.apache.hadoop:hadoop-aws:3.5.0;") == [str(jar) for jar in jars]
    assert class_cache.remembered_jars("org.apache.hadoop:hadoop-aws:3.4.1;") is None  # other packages
    assert not list((tmp_path / "cache" / "sparkyfruit").glob(".*"))  # no partial file left behind
    jars[1].unlink()
    assert class_cache.remembered_jars("org.apache.hadoop:hadoop-aws:3.5.0;") is None


def test_a_cluster_master_other_than_yarn_gets_the_remembered_jars_as_jars_not_packages(tmp_path, monkeypatch):
    """spark-submit ships the jars of packages as Python files too, which a standalone executor fetches a
    second time: once an earlier run resolved them, such a master gets them once, as spark.jars."""
    from sparkyfruit.spark.jars import local_jars, may_serve_packages_as_jars
    from tests.helpers import run_config

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    options = {"spark.jars.packages": "org.apache.hadoop:hadoop-aws:3.5.0", "spark.master": "spark://host:7077"}
    packages = class_cache.packages_identity(options)
    assert packages == "org.apache.hadoop:hadoop-aws:3.5.0;"
    assert not class_cache.serve_remembered_jars(options, packages)  # nothing resolved yet: the packages stay
    assert options["spark.jars.packages"] == "org.apache.hadoop:hadoop-aws:3.5.0" and "spark.jars" not in options
    jars = [tmp_path / "hadoop aws.jar", tmp_path / "bundle.jar"]
    for jar in jars:
        jar.write_bytes(b"jar")
    class_cache.remember_jars(packages, [str(jar) for jar in jars])
    assert class_cache.serve_remembered_jars(options, packages)
    assert options == {"spark.master": "spark://host:7077", "spark.jars": ",".join(jar.as_uri() for jar in jars)}
    assert local_jars(options["spark.jars"]) == [str(jar) for jar in jars]

    def df_from_s3(master: str):
        return run_config(input="s3://fruit/in", output=str(tmp_path / "out"), mode="df", master=master)

    with_packages = {"spark.jars.packages": "org.apache.hadoop:hadoop-aws:3.5.0"}
    assert may_serve_packages_as_jars(with_packages, df_from_s3("spark://host:7077"))
    assert may_serve_packages_as_jars(with_packages, df_from_s3("k8s://https://host:443"))
    assert not may_serve_packages_as_jars(with_packages, df_from_s3("local[2]"))  # the class path instead
    assert not may_serve_packages_as_jars(with_packages, df_from_s3("yarn"))  # its cache ships a jar once
    assert not may_serve_packages_as_jars({}, df_from_s3("spark://host:7077"))
    (tmp_path / "spark-defaults.conf").write_text("spark.jars /opt/jdbc.jar\n")  # the user's jars win
    assert not may_serve_packages_as_jars(with_packages, df_from_s3("spark://host:7077"))


def test_the_jar_list_comes_from_spark_jars_and_spark_defaults_keep_their_class_path(tmp_path, monkeypatch):
    from sparkyfruit.spark.jars import local_jars, spark_defaults_set

    assert local_jars(
        "file:///root/.ivy2.5.2/jars/a%20b.jar,/opt/x.jar,spark://host:1/jars/c.jar,,hdfs://nn/d.jar"
    ) == ["/root/.ivy2.5.2/jars/a b.jar", "/opt/x.jar"]
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    assert not spark_defaults_set("spark.driver.extraClassPath")
    (tmp_path / "spark-defaults.conf").write_text("spark.driver.memory 4g\n# spark.driver.extraClassPath /x\n")
    assert spark_defaults_set("spark.driver.memory")
    assert not spark_defaults_set("spark.driver.extraClassPath")
    (tmp_path / "spark-defaults.conf").write_text("spark.driver.extraClassPath   /opt/jdbc.jar\n")
    assert spark_defaults_set("spark.driver.extraClassPath") and not spark_defaults_set("spark.driver.memory")


@pytest.mark.integration
@pytest.mark.s3
@pytest.mark.spark
@pytest.mark.slow
def test_later_local_runs_put_the_resolved_s3a_jars_on_the_driver_class_path(s3, tmp_path):
    """The first run resolves S3A through Ivy and remembers the jars; the next one starts the driver JVM
    with them on its class path (the Spark UI lists them as "System Classpath", no spark.jars.packages)."""
    from devtools import local_s3

    local_s3.seed(s3.endpoint, "fruit", "Training", SAMPLE)
    script = SCRIPT
    env = {**os.environ, "COLUMNS": "200", "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def command(output: str) -> list[str]:
        return [
            script,
            *encode_args("s3://fruit/Training", str(tmp_path / output)),
            "--limit",
            "4",
            "--master",
            "local[2]",
            "--s3-endpoint",
            s3.endpoint,
        ]

    first = subprocess.run(command("first"), capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    remembered = list((tmp_path / "cache" / "sparkyfruit").glob("resolved-jars-*.json"))
    assert len(remembered) == 1 and "hadoop-aws" in remembered[0].read_text()

    process = subprocess.Popen(
        command("second"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    stderr_lines: list[str] = []
    try:
        environment = json.loads(spark_environment_while_running(process, stderr_lines))
        stdout, rest = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, ("".join(stderr_lines) + rest)[-3000:]
    assert "done: 4 images, 4 ok" in stdout
    system = [path for path, source in environment["classpathEntries"] if source == "System Classpath"]
    assert any("hadoop-aws" in path for path in system), system
    assert "spark.jars.packages" not in dict(environment["sparkProperties"])
