"""--ship-env: this Python environment, packed with venv-pack for the executors of a cluster.

Spark's "Python Package Management" way: the archive goes out as `spark.archives=ENV.tar.gz#environment`,
every executor unpacks it into its working directory and starts `./environment/bin/python`. The archive is
built once per environment content (the RECORD of every installed distribution, which lists each file's
hash) and kept in ~/.cache/sparkyfruit/environments. sparkyfruit's own code travels beside it as a zip on
the executors' Python path, so an editable install (`pip install -e .`) works on the cluster too.

Executors that run the LiteRT engine never import TensorFlow (engines.py), so their archive leaves it out
(WITHOUT_TENSORFLOW): about half of the environment, which every executor or node would otherwise fetch and
unpack. The TensorFlow engine, and a driver in the cluster (cluster deploy mode, which converts the network
there), get the whole environment: `python -m sparkyfruit.spark.ship_env` packs it and prints where
spark-submit's `--archives` finds it (docs/cluster.md).

On YARN with HDFS as the default file system, the archive is kept on HDFS once per environment (yarn.py),
where every user of the cluster can read it: files that hold credentials (CREDENTIAL_FILES, and any file
under etc/ that names a URL with a password) are never packed.
"""

from __future__ import annotations

import glob
import hashlib
import os
import platform
import re
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from sparkyfruit.errors import ConfigError
from sparkyfruit.spark.class_cache import cache_dir
from sparkyfruit.spark.local_lock import held_alone

ALIAS = "environment"
EXECUTOR_PYTHON = f"./{ALIAS}/bin/python"
# the executors run their own Spark: pyspark's jars (most of the venv's size) stay home
EXCLUDE = ["lib/python*/site-packages/pyspark/jars/*"]
# files that hold index or host passwords, wherever they are in the environment: never packed
CREDENTIAL_FILES = ("pip.conf", "pip.ini", ".netrc", ".pypirc")
# a URL with a user and password in it (https://user:token@index.example.com/simple)
PASSWORD_IN_URL = re.compile(rb"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
# TensorFlow and what only it uses (libclang), for executors that run the LiteRT engine
WITHOUT_TENSORFLOW = [
    f"lib/python*/site-packages/{package}/*"
    for package in ("tensorflow", "tensorflow*.dist-info", "clang", "libclang*.dist-info")
]
# the archive's content rules, part of its cache key: an archive packed under older rules is packed again
PACKING_RULES = (
    f"exclude {EXCLUDE}, credentials {CREDENTIAL_FILES}, etc/ files with {PASSWORD_IN_URL.pattern!r}, "
    f"without TensorFlow {WITHOUT_TENSORFLOW}"
)


@dataclass
class ShippedEnvironment:
    archive: Path
    code: Path  # sparkyfruit's package as a zip for the executors' Python path
    size_bytes: int
    with_tensorflow: bool
    built_seconds: float | None  # None when the cached archive was reused
    on_cluster: str | None = None  # the archive's copy on the cluster's file system (YARN with HDFS)
    uploaded_seconds: float | None = None  # None when that copy was there already

    @property
    def shipped_from(self) -> str:
        return self.on_cluster or str(self.archive)

    @property
    def summary(self) -> str:
        """The run's line about it: where from, how large, without what, and what was done now."""
        done = [f"packed in {self.built_seconds:.0f} s"] if self.built_seconds else []
        done += [f"copied in {self.uploaded_seconds:.0f} s"] if self.uploaded_seconds else []
        without = "" if self.with_tensorflow else ", without TensorFlow, which the LiteRT engine does not need"
        return f"{self.shipped_from} ({self.size_bytes / 2**20:.0f} MB{without}; {', '.join(done) or 'cached'})"

    @property
    def spark_archive(self) -> str:
        return f"{self.shipped_from}#{ALIAS}"


def environment_key() -> str:
    """The archive's cache key: this Python, the packing rules and the RECORD of every distribution installed in
    the environment's own site-packages, which is what venv-pack packs. Distributions that are only on
    sys.path (a checkout's .egg-info beside the current folder) are not part of the environment, so the key is
    the same from any working folder."""
    import sysconfig
    from importlib import metadata

    digest = hashlib.sha256()
    digest.update(f"{sys.version}|{platform.machine()}|{sys.prefix}|{PACKING_RULES}".encode())
    site_packages = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    entries = sorted(
        (dist.metadata["Name"] or "", dist.version, dist.read_text("RECORD") or "")
        for dist in metadata.distributions(path=site_packages)
    )
    for entry in entries:
        digest.update("\0".join(entry).encode())
    return digest.hexdigest()[:20]


def ship(announce=None, keep_on_hdfs: bool = False, with_tensorflow: bool = True) -> ShippedEnvironment:
    """The packed environment (built now, or reused) and a fresh zip of sparkyfruit's code.

    Parameters
    ----------
    announce : callable, optional
        Told one line before a slow build starts, or while waiting for another run's.
    keep_on_hdfs : bool
        YARN: keep one copy on the cluster's default HDFS, readable by all its users; otherwise Spark uploads
        the archive with each run.
    with_tensorflow : bool
        False for executors that run the LiteRT engine: the archive leaves TensorFlow out (a second archive,
        cached beside the whole one).

    Returns
    -------
    ShippedEnvironment
        The archive, the code zip, and what was built or copied now.
    """
    if sys.prefix == sys.base_prefix:
        raise ConfigError(
            f"--ship-env packs a virtual environment, and this Python is not one ({sys.executable}).",
            "Run sparkyfruit from a venv (python -m venv; pip install sparkyfruit), or install sparkyfruit on "
            "every node and leave --ship-env off.",
        )
    folder = cache_dir() / "environments"
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"env-{environment_key()}{'' if with_tensorflow else '-without-tensorflow'}.tar.gz"
    built_seconds = None
    # one packer per archive: a second run that starts meanwhile waits for it and reuses its archive
    waiting = "Another run is packing this Python environment for the executors; waiting for it..."
    with held_alone(archive.with_name(f".{archive.name}.lock"), announce, waiting):
        if not archive.is_file():
            if announce:
                left_out_now = "" if with_tensorflow else ", without TensorFlow"
                announce(
                    f"Packing this Python environment for the executors ({sys.prefix}{left_out_now}), "
                    "once per environment..."
                )
            built_seconds, left_out = _pack(archive, without=() if with_tensorflow else WITHOUT_TENSORFLOW)
            if announce and left_out:
                announce(f"Left out of the executors' environment, as they hold credentials: {', '.join(left_out)}")
    shipped = ShippedEnvironment(archive, _code_zip(), archive.stat().st_size, with_tensorflow, built_seconds)
    if keep_on_hdfs:
        from sparkyfruit.spark import yarn as yarn_cache

        what = "the executors' Python environment"
        shipped.on_cluster, shipped.uploaded_seconds = yarn_cache.keep_on_hdfs(archive, "environments", what, announce)
    return shipped


def holds_credentials(source: str, target: str) -> bool:
    """Whether a file of the environment (its path, and its path inside the archive) holds credentials: it
    is named in CREDENTIAL_FILES, or it is under etc/ and names a URL with a password."""
    if os.path.basename(target) in CREDENTIAL_FILES:
        return True
    if not target.startswith("etc/") or os.path.islink(source) or not os.path.isfile(source):
        return False
    return PASSWORD_IN_URL.search(Path(source).read_bytes()) is not None


def _pack(archive: Path, prefix: Path | None = None, without=()) -> tuple[float, list[str]]:
    """Pack the environment at `prefix` (this one's by default) into `archive`, without EXCLUDE, the patterns
    `without` and the files that hold credentials. Returns the seconds it took and the files left out as
    holding credentials (their archive paths)."""
    import venv_pack

    prefix = Path(prefix or sys.prefix)
    started = time.monotonic()
    partial = archive.with_name(f".{archive.name}.{os.getpid()}.partial")
    try:
        environment = venv_pack.Env(str(prefix))  # venv-pack's one walk of the environment's files
        for pattern in [*EXCLUDE, *without]:
            environment = environment.exclude(pattern)
        left_out = sorted(file.target for file in environment.files if holds_credentials(*file))
        for target in left_out:
            environment = environment.exclude(glob.escape(target))
        environment.pack(output=str(partial), format="tar.gz", compress_level=1, force=True)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(
            f"Could not pack this Python environment ({prefix}) for the executors: {exc}",
            "Fix what venv-pack reports, or install sparkyfruit on every node and leave --ship-env off.",
        ) from None
    os.replace(partial, archive)
    return time.monotonic() - started, left_out


def _code_zip() -> Path:
    package = Path(__file__).resolve().parent.parent  # the whole sparkyfruit package
    target = Path(tempfile.mkdtemp(prefix="sparkyfruit-code-")) / "sparkyfruit.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(package.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                bundle.write(path, Path("sparkyfruit") / path.relative_to(package))
    return target


def main() -> int:
    """`python -m sparkyfruit.spark.ship_env`: the whole environment (TensorFlow included: a driver in the
    cluster converts the network), packed once, and on stdout the archive for spark-submit's `--archives`: its
    copy on the default HDFS where HADOOP_CONF_DIR names one, else the local file. Progress goes to stderr,
    and an error as one line with its exit code."""
    from sparkyfruit.errors import SparkyfruitError

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        shipped = ship(announce=say, keep_on_hdfs=True)
    except SparkyfruitError as error:
        say(f"error: {error}")
        return error.exit_code
    print(shipped.shipped_from)
    return 0


if __name__ == "__main__":
    sys.exit(main())
