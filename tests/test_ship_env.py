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
