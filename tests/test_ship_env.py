"""--ship-env's archive: built per environment content, reused, and sparkyfruit's code shipped beside it.
(The real pack + cluster run is in tests/test_cluster.py.)"""

from __future__ import annotations

import sys
import zipfile

import pytest

from sparkyfruit.errors import ConfigError
from sparkyfruit.spark import ship_env


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
    monkeypatch.setattr(ship_env, "_pack", lambda archive: pytest.fail("packed again"))
    shipped = ship_env.ship()
    assert shipped.archive == cached and shipped.built_seconds is None and shipped.size_bytes == 13
    assert shipped.spark_archive == f"{cached}#environment"
    names = zipfile.ZipFile(shipped.code).namelist()
    assert "sparkyfruit/__init__.py" in names and "sparkyfruit/featurize.py" in names
    assert not any("__pycache__" in name for name in names)


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
