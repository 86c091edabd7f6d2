"""A real S3 endpoint on 127.0.0.1: moto's server as a subprocess (HTTP, the same API AWS speaks).

Used by the test fixtures and by `make demo`. Always stop it with `stop()` (kills by pid).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devtools.server_log import log_size, wait_for_line

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sparkyfruit-test-key",
    "AWS_SECRET_ACCESS_KEY": "sparkyfruit-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Server:
    process: subprocess.Popen
    endpoint: str

    @property
    def pid(self) -> int:
        return self.process.pid

    def reset(self) -> None:
        """Drop every bucket and object (moto's own reset API)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=10).read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


# what moto's server (werkzeug) prints once it listens; it binds a port of its own choosing (-p 0)
LISTENING_LINE = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")


def start(log_path: str | os.PathLike, timeout: float = 30, authenticate_after: int | None = None) -> S3Server:
    """Start moto's server on 127.0.0.1 and wait until it answers. `authenticate_after=N`: after N requests
    the server checks credentials against its IAM users, as AWS does (moto's INITIAL_NO_AUTH_ACTION_COUNT).
    The port is the one moto binds and reports in its log."""
    log_path = Path(log_path)
    since = log_size(log_path)
    env = dict(os.environ)
    if authenticate_after is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(authenticate_after)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def check_alive() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with code {process.returncode} (log: {log_path})")

    deadline = time.monotonic() + timeout
    try:
        port = wait_for_line(log_path, since, LISTENING_LINE, check_alive, deadline).group(1)
        server = S3Server(process, f"http://127.0.0.1:{port}")
        while True:
            check_alive()
            try:
                urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=1).read()
                return server
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not answer on {server.endpoint} within {timeout} s") from None
                time.sleep(0.2)
    except BaseException:
        S3Server(process, "").stop()
        raise


def client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def seed(endpoint: str, bucket: str, prefix: str, folder: str | os.PathLike) -> int:
    """Create `bucket` and upload every file under `folder` to `prefix/<relative path>`; returns the count."""
    s3 = client(endpoint)
    try:
        s3.create_bucket(Bucket=bucket)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    count = 0
    root = Path(folder)
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            key = f"{prefix.strip('/')}/{path.relative_to(root).as_posix()}".lstrip("/")
            s3.upload_file(str(path), bucket, key)
            count += 1
    return count
