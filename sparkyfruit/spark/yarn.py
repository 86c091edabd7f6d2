"""YARN: what Spark would upload into every application's staging folder, kept once on the cluster's HDFS.

Without `spark.yarn.archive`, a Spark started from pip's pyspark zips and uploads its whole jars/ folder
for each application, and --ship-env's archive goes the same way. Here both are copied once (per Spark
build, per environment) to hdfs:///user/<user>/.sparkyfruit/, readable by all: Spark then names them in
place, and each NodeManager unpacks them once and keeps them in its public cache for later applications.
Nothing happens when HADOOP_CONF_DIR's default file system is not HDFS, or spark-defaults.conf already
says where Spark's jars are.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import time
import zipfile
from pathlib import Path

from sparkyfruit.spark.class_cache import cache_dir
from sparkyfruit.spark.jars import spark_build, spark_defaults_set, spark_home


def default_fs_is_hdfs() -> bool:
    from sparkyfruit.storage import default_file_system

    return (default_file_system() or "").startswith("hdfs://")


def keep_on_hdfs(local: Path, folder: str, what: str, announce=None) -> tuple[str | None, float | None]:
    """(URI of `local`'s copy on the default HDFS, seconds spent copying it or None when it was there), or
    (None, None) when the default file system is not HDFS."""
    from hdfs_native import WriteOptions

    from sparkyfruit.locations import Location
    from sparkyfruit.storage import hdfs_call

    if not default_fs_is_hdfs():
        return None, None
    home = f"/user/{os.environ.get('HADOOP_USER_NAME') or getpass.getuser()}"
    target = f"{home}/.sparkyfruit/{folder}/{local.name}"

    def size_there(client) -> int:
        return client.get_file_info(target).length

    def copy(client) -> None:
        partial = f"{target}.{os.getpid()}.partial"
        with open(local, "rb") as source, client.create(partial, WriteOptions(overwrite=True, permission=0o644)) as out:
            while chunk := source.read(8 * 2**20):
                out.write(chunk)
        # readable by all, folders included: YARN caches a public file once per node for every application
        for path in (f"{home}/.sparkyfruit", f"{home}/.sparkyfruit/{folder}"):
            client.set_permission(path, 0o755)
        client.rename(partial, target, overwrite=True)

    # storage's one HDFS path: a name node that does not answer is told at once, not after minutes of retries
    location = Location("hdfs", path=target)
    if hdfs_call(location, f"check {what} in", size_there) == local.stat().st_size:
        return f"hdfs://{target}", None
    if announce:
        announce(f"Copying {what} to hdfs://{target}, once...")
    started = time.monotonic()
    hdfs_call(location, f"copy {what} to", copy)
    return f"hdfs://{target}", time.monotonic() - started


def spark_jars_archive(announce=None) -> str | None:
    """The `spark.yarn.archive` for this Spark's jars, kept on HDFS; None where Spark should do as it does
    (no HDFS, or spark-defaults.conf names the jars)."""
    if not default_fs_is_hdfs() or spark_defaults_set("spark.yarn.archive") or spark_defaults_set("spark.yarn.jars"):
        return None
    jars = sorted((spark_home() / "jars").glob("*.jar"))
    digest = hashlib.sha256("\0".join(f"{jar.name}:{jar.stat().st_size}" for jar in jars).encode()).hexdigest()[:16]
    local = cache_dir() / "spark-jars" / f"spark-{spark_build()[1]}-jars-{digest}.zip"
    if not local.is_file():
        local.parent.mkdir(parents=True, exist_ok=True)
        partial = local.with_name(f".{local.name}.{os.getpid()}.partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as bundle:  # jars are compressed already
            for jar in jars:
                bundle.write(jar, jar.name)
        os.replace(partial, local)
    return keep_on_hdfs(local, "spark-jars", "Spark's jars for YARN", announce)[0]
