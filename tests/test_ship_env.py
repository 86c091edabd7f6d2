"""--ship-env's archive: built per environment content, reused, and sparkyfruit's code shipped beside it.
(The real pack + cluster run is in tests/test_cluster.py.)"""

from __future__ import annotations

import functools
import sys
import zipfile

import pytest

from sparkyfruit.errors import ConfigError
from sparkyfruit.spark import ship_env


def _recorded_pack(packed: list, archive, without=()):
    """A stand-in for ship_env._pack: notes what it was told to leave out, writes a one-byte archive."""
    packed.append(without)
    archive.write_bytes(b"x")
    return 1.0, []


def test_outside_a_virtualenv_it_says_what_to_do(monkeypatch):
    monkeypatch.setattr(sys, "prefix", sys.base_prefix)
    with pytest.raises(ConfigError, match="packs a virtual environment, and this Python is not one"):
        ship_env.ship()


def test_a_packed_environment_is_reused_and_the_code_zip_is_importable(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    key = ship_env.environment_key()
    assert key == ship_env.environment_key()  # stable for the same environment
    cached = tmp_path / "sparkyfruit" / "environments" / f"env-{key}.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"packed before")
    monkeypatch.setattr(ship_env, "_pack", lambda archive, without=(): pytest.fail("packed again"))
    shipped = ship_env.ship()
    assert shipped.archive == cached and shipped.built_seconds is None and shipped.size_bytes == 13
    assert shipped.spark_archive == f"{cached}#environment"
    names = zipfile.ZipFile(shipped.code).namelist()
    assert "sparkyfruit/__init__.py" in names and "sparkyfruit/featurize.py" in names
    assert not any("__pycache__" in name for name in names)


def test_the_key_is_the_same_from_any_folder_and_two_runs_at_once_pack_once(tmp_path, monkeypatch):
    """The checkout's sparkyfruit.egg-info (on sys.path here: pytest's pythonpath) is not part of the environment,
    so a run from the checkout and one from elsewhere share the archive; a run that starts while another packs
    waits for it instead of packing the same 750 MB again."""
    import subprocess
    import threading
    import time

    elsewhere = subprocess.run(
        [sys.executable, "-c", "from sparkyfruit.spark.ship_env import environment_key; print(environment_key())"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert elsewhere.stdout.strip() == ship_env.environment_key()

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    packed, packing, said = [], threading.Event(), []

    def slow_pack(archive, without=()):
        packed.append(archive)
        packing.set()
        time.sleep(1.0)
        archive.write_bytes(b"packed once")
        return 1.0, []

    monkeypatch.setattr(ship_env, "_pack", slow_pack)
    first, second = [], []
    packer = threading.Thread(target=lambda: first.append(ship_env.ship()))
    packer.start()
    assert packing.wait(timeout=30)
    waiter = threading.Thread(target=lambda: second.append(ship_env.ship(announce=said.append)))
    waiter.start()
    for run in (packer, waiter):
        run.join(timeout=30)
    assert len(packed) == 1 and first[0].built_seconds == 1.0 and second[0].built_seconds is None
    assert said == ["Another run is packing this Python environment for the executors; waiting for it..."]
    assert first[0].archive.read_bytes() == second[0].archive.read_bytes() == b"packed once"


def test_a_yarn_ship_env_whose_name_node_does_not_answer_stops_at_once(tmp_path, monkeypatch):
    """--ship-env on YARN keeps the archive on the default HDFS; a closed name node port is one error, not
    minutes of hdfs-native's retries."""
    import time

    from sparkyfruit.errors import StorageError
    from sparkyfruit.spark.yarn import keep_on_hdfs

    (tmp_path / "core-site.xml").write_text(
        "<configuration><property><name>fs.defaultFS</name><value>hdfs://127.0.0.1:1</value></property></configuration>"
    )
    monkeypatch.setenv("HADOOP_CONF_DIR", str(tmp_path))
    archive = tmp_path / "env-x.tar.gz"
    archive.write_bytes(b"x")
    started = time.monotonic()
    with pytest.raises(StorageError) as raised:
        keep_on_hdfs(archive, "environments", "the environment")
    assert time.monotonic() - started < 10
    assert "nothing listens at 127.0.0.1:1" in raised.value.args[0]
    assert "/.sparkyfruit/environments/env-x.tar.gz" in raised.value.args[0]


def test_files_that_hold_credentials_are_never_packed(tmp_path):
    """The archive is kept on the cluster's HDFS, readable by all its users: pip's and netrc's files, and any
    file under etc/ naming a URL with a password, stay home; the rest of etc/ goes."""
    import subprocess
    import tarfile

    prefix = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    site = next((prefix / "lib").glob("python*/site-packages"))
    planted = {
        "pip.conf": "[global]\nindex-url = https://me:s3cret@pypi.example.com/simple\n",
        ".pypirc": "[pypi]\npassword = s3cret\n",
        f"{site.relative_to(prefix)}/somepkg/.netrc": "machine example.com login me password s3cret\n",
        "etc/jupyter/servers.json": '{"url": "https://me:s3cret@hub.example.com/"}\n',
    }
    kept = {
        "etc/jupyter/settings.json": '{"url": "https://hub.example.com/"}\n',
        f"{site.relative_to(prefix)}/ok.py": "",
    }
    for name, text in {**planted, **kept}.items():
        (prefix / name).parent.mkdir(parents=True, exist_ok=True)
        (prefix / name).write_text(text)
    seconds, left_out = ship_env._pack(tmp_path / "env.tar.gz", prefix)
    assert sorted(left_out) == sorted(planted)
    with tarfile.open(tmp_path / "env.tar.gz") as archive:
        names = set(archive.getnames())
        packed = b"".join(archive.extractfile(m).read() for m in archive.getmembers() if m.isfile())
    assert not names & set(planted) and set(kept) <= names and "bin/python" in names
    assert b"s3cret" not in packed


def test_a_private_ship_env_on_yarn_is_uploaded_with_the_run_and_never_kept_on_hdfs(tmp_path, monkeypatch):
    from sparkyfruit.config import RunConfig
    from sparkyfruit.spark import yarn
    from tests.helpers import SAMPLE

    settings = dict(input=str(SAMPLE), output="hdfs://namenode:8020/out", master="yarn", ship_env=True)
    assert RunConfig(**settings).env_kept_on_hdfs
    assert not RunConfig(**settings, ship_env_private=True).env_kept_on_hdfs
    monkeypatch.setenv("SPARKYFRUIT_SHIP_ENV_PRIVATE", "true")
    assert not RunConfig(**settings).env_kept_on_hdfs
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cached = tmp_path / "sparkyfruit" / "environments" / f"env-{ship_env.environment_key()}.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"packed before")
    monkeypatch.setattr(yarn, "keep_on_hdfs", lambda *a, **k: pytest.fail("kept on HDFS"))
    shipped = ship_env.ship(keep_on_hdfs=False)
    assert shipped.on_cluster is None and shipped.spark_archive == f"{cached}#environment"


def test_executors_on_litert_get_the_environment_without_tensorflow(tmp_path, monkeypatch):
    """WITHOUT_TENSORFLOW leaves out TensorFlow's package, its metadata and libclang, and nothing else; the two
    archives are cached side by side under their own names."""
    import subprocess
    import tarfile

    prefix = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    site = next((prefix / "lib").glob("python*/site-packages")).relative_to(prefix)
    left_out = [
        f"{site}/tensorflow/__init__.py",
        f"{site}/tensorflow/python/ops/nn.py",
        f"{site}/tensorflow_cpu-2.21.0.dist-info/RECORD",
        f"{site}/clang/cindex.py",
        f"{site}/libclang-18.1.1.dist-info/RECORD",
    ]
    kept = [f"{site}/ai_edge_litert/interpreter.py", f"{site}/keras/__init__.py", f"{site}/tensorflow_helper.py"]
    for name in left_out + kept:
        (prefix / name).parent.mkdir(parents=True, exist_ok=True)
        (prefix / name).write_text("")
    ship_env._pack(tmp_path / "whole.tar.gz", prefix)
    ship_env._pack(tmp_path / "lean.tar.gz", prefix, without=ship_env.WITHOUT_TENSORFLOW)
    with tarfile.open(tmp_path / "whole.tar.gz") as whole, tarfile.open(tmp_path / "lean.tar.gz") as lean:
        whole_names, lean_names = set(whole.getnames()), set(lean.getnames())
    assert set(left_out + kept) <= whole_names
    assert set(kept) <= lean_names and not set(left_out) & lean_names
    assert whole_names - lean_names == set(left_out)

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    packed: list = []
    monkeypatch.setattr(ship_env, "_pack", functools.partial(_recorded_pack, packed))
    whole_env, lean_env = ship_env.ship(), ship_env.ship(with_tensorflow=False)
    assert packed == [(), ship_env.WITHOUT_TENSORFLOW]
    assert whole_env.with_tensorflow and not lean_env.with_tensorflow
    assert "without TensorFlow" in lean_env.summary and "without" not in whole_env.summary
    assert whole_env.summary.endswith("(0 MB; packed in 1 s)")
    assert lean_env.archive == whole_env.archive.with_name(
        whole_env.archive.name[: -len(".tar.gz")] + "-without-tensorflow.tar.gz"
    )


def test_the_command_for_cluster_deploy_mode_prints_the_whole_archive(tmp_path, monkeypatch, capsys):
    """`python -m sparkyfruit.spark.ship_env` (docs/cluster.md's EMR step): the whole environment, its path on
    stdout (here the local file: no HDFS is the default file system); outside a venv one line and exit 2."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    packed: list = []
    monkeypatch.setattr(ship_env, "_pack", functools.partial(_recorded_pack, packed))
    assert ship_env.main() == 0
    printed = capsys.readouterr()
    assert packed == [()] and printed.out == f"{ship_env.ship().archive}\n"
    assert "Packing this Python environment for the executors" in printed.err

    monkeypatch.setattr(sys, "prefix", sys.base_prefix)
    assert ship_env.main() == 2
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.startswith("error: --ship-env packs a virtual environment")
    assert len(printed.err.splitlines()) == 1
