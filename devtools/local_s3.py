"""A real S3 endpoint on 127.0.0.1: moto's server as a subprocess (HTTP, the same API AWS speaks).

Used by the test fixtures and by `make demo`. Always stop it with `stop()` (kills by pid).

To try sparkyfruit against S3 by hand, start one from the repository's folder (Ctrl-C stops it):

    .venv/bin/python -m devtools.local_s3 --seed examples/images

It prints the endpoint, the test keys to export and an encode command that reads the seeded bucket.
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


def start(
    log_path: str | os.PathLike, timeout: float = 30, authenticate_after: int | None = None, port: int = 0
) -> S3Server:
    """Start moto's server on 127.0.0.1 and wait until it answers. `authenticate_after=N`: after N requests
    the server checks credentials against its IAM users, as AWS does (moto's INITIAL_NO_AUTH_ACTION_COUNT).
    `port` 0 (the tests'): the one moto binds itself and reports in its log."""
    log_path = Path(log_path)
    since = log_size(log_path)
    env = dict(os.environ)
    if authenticate_after is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(authenticate_after)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
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


def main(argv: list[str] | None = None) -> int:
    """`python -m devtools.local_s3`: a local S3 server for a try-out, seeded with a folder of images."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(
        prog="python -m devtools.local_s3", description="A local S3 server (moto) on 127.0.0.1 until Ctrl-C."
    )
    parser.add_argument("--port", type=int, default=9000, help="port to listen on (0: any free one); default 9000")
    parser.add_argument("--seed", metavar="FOLDER", help="upload the images under FOLDER (e.g. examples/images)")
    parser.add_argument("--bucket", default="fruit", help="bucket for --seed; default fruit")
    parser.add_argument("--prefix", default="Training", help="key prefix for --seed; default Training")
    args = parser.parse_args(argv)
    log = Path(tempfile.gettempdir()) / f"sparkyfruit-local-s3-{os.getpid()}.log"
    os.environ.update({name: os.environ.get(name, value) for name, value in FAKE_CREDENTIALS.items()})
    try:
        server = start(log, port=args.port)
    except RuntimeError as exc:
        print(f"error: the local S3 server did not start: {exc}. Try another --port.", file=sys.stderr)
        return 1
    try:
        lines = [f"Local S3 server: {server.endpoint} (pid {server.pid}, log {log}); Ctrl-C stops it."]
        if args.seed:
            count = seed(server.endpoint, args.bucket, args.prefix, args.seed)
            lines.append(f"Seeded s3://{args.bucket}/{args.prefix}/ with {count} images from {args.seed}.")
        lines += ["In another shell:", *(f"  export {name}={value}" for name, value in FAKE_CREDENTIALS.items())]
        source = f"s3://{args.bucket}/{args.prefix}" if args.seed else "s3://BUCKET/PREFIX"
        lines.append(
            f"  sparkyfruit encode --mode keys --input {source} --output out/from-s3 --s3-endpoint {server.endpoint}"
            " --model mobilenet --alpha 0.25 --weights examples/models/mobilenet_2_5_224_tf_no_top.h5"
        )
        print("\n".join(lines), flush=True)
        server.process.wait()
        return 1  # it stopped on its own
    except KeyboardInterrupt:
        return 130
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
