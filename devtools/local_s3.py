"""A real S3 endpoint on 127.0.0.1: moto's server as a subprocess (HTTP, the same API AWS speaks).

Used by the test fixtures and by `make demo`. Always stop it with `stop()` (kills by pid).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

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


class ServerExited(RuntimeError):
    """moto's server stopped before it answered (most often: its port was taken meanwhile)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(port: int | None = None, log_path: str | os.PathLike | None = None, timeout: float = 30,
          authenticate_after: int | None = None) -> S3Server:
    """Start moto's server on 127.0.0.1 and wait until it answers. `authenticate_after=N`: after N requests
    the server checks credentials against its IAM users, as AWS does (moto's INITIAL_NO_AUTH_ACTION_COUNT).

    Without a `port`, a free one is picked; it is free only until another process binds it, so when moto
    exits at start-up (address in use) it is started again on another port, up to 3 times."""
    attempts = 1 if port else 3
    for attempt in range(1, attempts + 1):
        try:
            return _start_on(port or free_port(), log_path, timeout, authenticate_after)
        except ServerExited:
            if attempt == attempts:
                raise


def _start_on(port: int, log_path, timeout: float, authenticate_after: int | None) -> S3Server:
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    env = dict(os.environ)
    if authenticate_after is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(authenticate_after)
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    server = S3Server(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerExited(f"moto server on port {port} exited with code {process.returncode} (log: {log_path})")
        try:
            urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=1).read()
            return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"moto server did not answer on {server.endpoint} within {timeout} s")


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
