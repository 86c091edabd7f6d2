"""AWS keys given by env vars or by a profile never show up: not in stdout/stderr, the driver log, the
manifest, `inspect`, nor the Spark UI's environment page while the application runs."""

from __future__ import annotations

import os
import subprocess

import pytest

from devtools import local_s3
from tests.helpers import SAMPLE, SCRIPT, encode_args, spark_environment_while_running

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow, pytest.mark.s3]

ACCESS_KEY = "AKIASPARKYFRUITTEST1"
SECRET_KEY = "sparkyfruit/never-print-this/Secret+Key0123456789"


@pytest.mark.parametrize("mode, how", [("keys", "env"), ("df", "env"), ("df", "profile")])
def test_the_secret_key_appears_nowhere(s3, tmp_path, mode, how):
    local_s3.seed(s3.endpoint, "fruit", "Training", SAMPLE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        {
            "COLUMNS": "200",
            "SPARKYFRUIT_MASTER": "local[2]",
            "SPARKYFRUIT_DEBUG": "1",
            "TMPDIR": str(tmp_path),
            "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"],
        }
    )
    extra = []
    if how == "env":
        env.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    else:
        credentials = tmp_path / "credentials"
        credentials.write_text(f"[fruit]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
        env.update({"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(tmp_path / "config")})
        extra = ["--profile", "fruit"]
    out = tmp_path / "out"
    script = SCRIPT
    process = subprocess.Popen(
        [
            script,
            *encode_args("s3://fruit/Training", str(out), "--mode", mode),
            "--s3-endpoint",
            s3.endpoint,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    stderr_lines: list[str] = []
    try:
        environment = spark_environment_while_running(process, stderr_lines)
        stdout, rest = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = "".join(stderr_lines) + rest
    assert process.returncode == 0, stderr[-3000:]
    assert "done: 192 images, 192 ok" in stdout
    assert "spark.app.id" in environment or "sparkProperties" in environment  # the page really was read

    inspect = subprocess.run(
        [script, "inspect", str(out), "--json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert inspect.returncode == 0, inspect.stderr
    logs = sorted((tmp_path / f"sparkyfruit-{os.getuid()}" / "logs").glob("*.log"))
    assert logs, "the run wrote no driver log under its TMPDIR"
    places = {
        "stdout": stdout,
        "stderr": stderr,
        "Spark UI environment": environment,
        "manifest": (out / "_sparkyfruit.json").read_text(),
        "inspect": inspect.stdout + inspect.stderr,
        **{log.name: log.read_text(errors="replace") for log in logs},
    }
    for place, text in places.items():
        assert SECRET_KEY not in text, f"the secret key leaked into {place}"
