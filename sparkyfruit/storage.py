"""Where data lives: URI parsing, the boto3 client factory, listing, and small-object I/O.

Two kinds of location exist: S3 (`s3://` or `s3a://`) and the local file system (a plain path or
`file://`). Image paths in outputs are canonical URIs: `s3://bucket/key` or `file:///abs/path`,
whatever scheme the user typed, so the two source modes produce identical `path` columns.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sparkyfruit.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from sparkyfruit.config import S3Settings

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")


@dataclass(frozen=True)
class Location:
    """A parsed input or output location."""

    scheme: str  # "s3" or "file"
    bucket: str = ""
    key: str = ""  # S3 prefix without leading slash; "" for the bucket root
    path: str = ""  # absolute local path

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def uri(self) -> str:
        """Canonical URI, as written into outputs."""
        if self.is_s3:
            return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"
        return f"file://{self.path}"

    def spark_uri(self, s3_scheme: str = "s3a") -> str:
        """The URI Spark/Hadoop reads and writes. S3 goes through the S3A connector (`s3a`), or on EMR
        through EMRFS (`s3`)."""
        if self.is_s3:
            return f"{s3_scheme}://{self.bucket}/{self.key}" if self.key else f"{s3_scheme}://{self.bucket}/"
        return f"file://{self.path}"

    def child(self, name: str) -> Location:
        if self.is_s3:
            return Location("s3", self.bucket, f"{self.key.rstrip('/')}/{name}".lstrip("/"))
        return Location("file", path=os.path.join(self.path, name))


def is_s3_uri(text: str) -> bool:
    """Whether a setting names an S3 location (s3:// or s3a://), before it is parsed."""
    return text.strip().lower().startswith(("s3://", "s3a://"))


def parse_location(text: str, what: str = "path") -> Location:
    """Parse `s3://`, `s3a://`, `file://` or a plain (absolute or relative) path."""
    raw = (text or "").strip()
    if not raw:
        raise ConfigError(f"{what} is empty.", "Give an s3://bucket/prefix URI or a local folder.")
    if "://" not in raw:
        return Location("file", path=os.path.abspath(os.path.expanduser(raw)))
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme in ("s3", "s3a"):
        bucket = parts.netloc
        if not bucket or not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise ConfigError(
                f"{what} has no valid bucket name: {raw!r}.",
                "Write it as s3://bucket/prefix (bucket names are 3-63 lowercase letters, digits, '.', '-').",
            )
        return Location("s3", bucket=bucket, key=parts.path.lstrip("/").rstrip("/"))
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"{what} names a remote host in a file URI: {raw!r}.", "Use file:///absolute/path.")
        return Location("file", path=os.path.abspath(parts.path))
    raise ConfigError(
        f"{what} has an unsupported scheme {parts.scheme!r}: {raw!r}.",
        "Use s3://bucket/prefix, s3a://bucket/prefix, file:///path or a plain local path.",
    )


def canonical_image_uri(hadoop_path: str) -> str:
    """Map the paths Hadoop reports (`s3a://b/k`, `file:/p`) onto canonical URIs (`s3://b/k`, `file:///p`)."""
    if hadoop_path.startswith("s3a://"):
        return "s3://" + hadoop_path[len("s3a://") :]
    if hadoop_path.startswith("file:") and not hadoop_path.startswith("file://"):
        return "file://" + hadoop_path[len("file:") :]
    return hadoop_path


def label_of(uri: str) -> str | None:
    """The label of an image is the name of its parent folder (None at a bucket or file-system root)."""
    parts = uri.split("://", 1)[-1].split("/")
    return parts[-2] if len(parts) >= 3 and parts[-2] else None


# ---------------------------------------------------------------- file-name patterns

def default_pattern() -> str:
    """Case-insensitive glob for jpg/jpeg/png, in the Hadoop glob syntax that `pathGlobFilter` takes."""
    alternatives = ["".join(f"[{c.lower()}{c.upper()}]" for c in ext) for ext in IMAGE_EXTENSIONS]
    return "*.{" + ",".join(alternatives) + "}"


def _expand_braces(pattern: str) -> list[str]:
    """Expand Hadoop glob `{a,b}` alternations (possibly nested) into plain fnmatch patterns."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth = 0
    for end in range(start, len(pattern)):
        depth += {"{": 1, "}": -1}.get(pattern[end], 0)
        if depth == 0:
            break
    else:
        raise ConfigError(f"--pattern has an unclosed '{{': {pattern!r}.", "Close every '{' with '}'.")
    body, options, level, current = pattern[start + 1 : end], [], 0, ""
    for char in body:
        if char == "," and level == 0:
            options.append(current)
            current = ""
            continue
        level += {"{": 1, "}": -1}.get(char, 0)
        current += char
    options.append(current)
    return [x for option in options for x in _expand_braces(pattern[:start] + option + pattern[end + 1 :])]


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a file-name glob (`*`, `?`, `[abc]`, `{a,b}`; case-sensitive) into one regex.

    The same pattern goes to Spark's `pathGlobFilter` in df mode, so both modes select the same files.
    """
    if "/" in pattern:
        raise ConfigError(
            f"--pattern matches file names only and cannot contain '/': {pattern!r}.",
            "Point --input at the folder instead, e.g. --input s3://bucket/Training --pattern '*.jpg'.",
        )
    regexes = [fnmatch.translate(p.replace("[^", "[!")) for p in _expand_braces(pattern)]
    return re.compile("|".join(f"(?:{r})" for r in regexes))


# ---------------------------------------------------------------- S3 client

def aws_session(s3: S3Settings):
    """A boto3 session: the named profile, or the standard credential chain."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(profile_name=s3.profile) if s3.profile else boto3.Session()
    except ProfileNotFound:
        raise ConfigError(
            f"--profile {s3.profile!r} is not in the AWS config or credentials files.",
            "Check ~/.aws/config and ~/.aws/credentials (or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE).",
        ) from None


def s3_client(s3: S3Settings):
    """A boto3 S3 client: standard credential chain (or a named profile), retries by botocore's own mode."""
    from botocore.config import Config

    session = aws_session(s3)
    config = Config(
        retries={"mode": s3.s3_retry_mode, "max_attempts": s3.s3_max_attempts},
        connect_timeout=s3.s3_connect_timeout,
        read_timeout=s3.s3_read_timeout,
        max_pool_connections=max(10, s3.fetch_concurrency),
        s3={"addressing_style": "path"} if s3.s3_endpoint else None,
    )
    return session.client("s3", endpoint_url=s3.s3_endpoint, region_name=s3.effective_region, config=config)


PREFLIGHT_ATTEMPTS = 2


def has_image(location: Location, pattern: str, s3: S3Settings) -> bool:
    """Whether at least one file under `location` matches `pattern`: the listing stops at the first.

    On S3 it runs with few attempts, before Spark starts: a closed port, a missing bucket or wrong
    credentials fail in seconds with a message that names them, instead of after a JVM start and every
    retry of the configured mode. The run itself keeps the configured retries."""
    regex = compile_pattern(pattern)
    if not location.is_s3:
        return next(_iter_local_files(location, regex), None) is not None
    quick = s3.s3_only().model_copy(update={"s3_max_attempts": min(PREFLIGHT_ATTEMPTS, s3.s3_max_attempts)})
    return next(_iter_s3_keys(location, regex, quick), None) is not None


def describe_s3_failure(exc: Exception, s3: S3Settings, bucket: str, action: str) -> StorageError:
    """Turn a botocore exception into an error that names the endpoint and bucket and says what to check."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    where = f"bucket {bucket!r} at {s3.endpoint_for_display or 'AWS S3'}"
    if isinstance(exc, NoCredentialsError) and s3.s3_endpoint and not _reachable(s3.s3_endpoint):
        # botocore looks for credentials before it connects: the closed port is the first thing to fix
        exc = EndpointConnectionError(endpoint_url=s3.s3_endpoint)
    if isinstance(exc, NoCredentialsError):
        return StorageError(
            f"No AWS credentials found while trying to {action} {where}.",
            "Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, pass --profile, or run where an instance role applies.",
        )
    if isinstance(exc, EndpointConnectionError):
        if s3.s3_endpoint:
            return StorageError(f"Could not connect to {s3.endpoint_for_display} to {action} bucket {bucket!r}.",
                                "Check --s3-endpoint (scheme, host, port) and that the server is running.")
        return StorageError(f"Could not connect to AWS S3 to {action} bucket {bucket!r}.",
                            "Check this machine's network (and any proxy); for an S3-compatible server, pass "
                            "--s3-endpoint.")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "?")
        hints = {
            "NoSuchBucket": "Check the bucket name; create it first if it should exist.",
            "404": "Check the bucket name; create it first if it should exist.",
            "AccessDenied": "Check the credentials and the bucket policy.",
            "403": "Check the credentials and the bucket policy.",
            "InvalidAccessKeyId": "Check the access key (env, --profile, or instance role).",
            "SignatureDoesNotMatch": "Check the secret key and --s3-region.",
        }
        return StorageError(f"S3 refused to {action} {where}: {code}.", hints.get(code, "Check the S3 settings."))
    return StorageError(f"Failed to {action} {where}: {type(exc).__name__}: {exc}", "Check the S3 settings.")


def _reachable(endpoint: str) -> bool:
    """Whether a TCP connection to the endpoint's host and port opens (one try, two seconds)."""
    import socket

    parts = urlsplit(endpoint)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=2):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- listing

def list_images(location: Location, pattern: str, s3: S3Settings, limit: int | None = None) -> list[str]:
    """Canonical URIs of the images under `location` whose file name matches `pattern`, sorted.

    Sorted by UTF-8 code points (S3's own listing order), so `limit` takes the same first N in both modes.
    """
    return [uri for uri, _, _ in list_image_objects(location, pattern, s3, limit)]


def list_image_objects(location: Location, pattern: str, s3: S3Settings,
                       limit: int | None = None) -> list[tuple[str, int | None, str | None]]:
    """`list_images` with each S3 object's size and ETag from the same listing (None, None for local files:
    nothing uses them there, and a stat per file would cost on big folders): keys mode's GETs need no
    HEAD, and an object replaced after the listing is noticed (If-Match)."""
    regex = compile_pattern(pattern)
    found = _iter_s3_keys(location, regex, s3) if location.is_s3 else _iter_local_files(location, regex)
    images: list[tuple[str, int | None, str | None]] = []
    for image in found:
        images.append(image)
        if limit is not None and location.is_s3 and len(images) >= limit:
            break  # S3 lists in sorted order already: stop paginating early
    images.sort(key=lambda image: image[0].encode("utf-8"))
    return images[:limit] if limit is not None else images


def _hidden(relative_path: str) -> bool:
    """Spark's file index skips names starting with '_' or '.' (e.g. _SUCCESS, .DS_Store); so do we."""
    return any(part.startswith(("_", ".")) for part in relative_path.split("/"))


def _iter_s3_keys(location: Location, regex: re.Pattern[str], s3: S3Settings) -> Iterator[tuple[str, int, str]]:
    client = s3_client(s3)
    prefix = f"{location.key}/" if location.key else ""
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                relative = key[len(prefix) :]
                if not key.endswith("/") and not _hidden(relative) and regex.fullmatch(key.rsplit("/", 1)[-1]):
                    yield f"s3://{location.bucket}/{key}", obj["Size"], obj.get("ETag")
    except Exception as exc:  # botocore raises several unrelated types; all become one clear error
        raise describe_s3_failure(exc, s3, location.bucket, "list") from exc


def _iter_local_files(location: Location, regex: re.Pattern[str]) -> Iterator[tuple[str, None, None]]:
    for root, dirs, files in os.walk(location.path):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for name in files:
            if not _hidden(name) and regex.fullmatch(name):
                yield "file://" + os.path.join(root, name), None, None


def s3_downloads(s3: S3Settings):
    """A transfer manager for many small GETs (keys mode, on executors). s3transfer also retries a body that
    breaks off mid-stream, which botocore's retry modes do not cover (they retry until the headers arrive)."""
    from s3transfer.manager import TransferConfig, TransferManager

    config = TransferConfig(
        max_request_concurrency=s3.fetch_concurrency,
        num_download_attempts=s3.s3_max_attempts,
        multipart_threshold=64 * 2**20,  # images: one GET each
    )
    return TransferManager(s3_client(s3), config)


# ---------------------------------------------------------------- outputs and small objects

def has_content(location: Location, s3: S3Settings) -> bool:
    """Whether an output location already holds anything (a non-empty folder or any object under the prefix)."""
    if not location.is_s3:
        path = Path(location.path)
        if path.is_file():
            return True
        return path.is_dir() and any(path.iterdir())
    client = s3_client(s3)
    prefix = f"{location.key}/" if location.key else ""
    try:
        response = client.list_objects_v2(Bucket=location.bucket, Prefix=prefix, MaxKeys=1)
    except Exception as exc:
        raise describe_s3_failure(exc, s3, location.bucket, "check the output in") from exc
    return response.get("KeyCount", 0) > 0


def is_local_file(location: Location) -> bool:
    return not location.is_s3 and os.path.isfile(location.path)


def list_files(location: Location, s3: S3Settings) -> list[str]:
    """The names, relative to `location` and sorted, of every file (or S3 object) under it, hidden ones
    included. Folders themselves (and S3's zero-byte "folder/" markers) are not files."""
    if not location.is_s3:
        names = []
        for root, _, files in os.walk(location.path):
            names += [os.path.relpath(os.path.join(root, name), location.path) for name in files]
        return sorted(names)
    prefix = f"{location.key}/" if location.key else ""
    try:
        pages = s3_client(s3).get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix)
        return sorted(obj["Key"][len(prefix):] for page in pages for obj in page.get("Contents", [])
                      if not obj["Key"].endswith("/"))
    except Exception as exc:
        raise describe_s3_failure(exc, s3, location.bucket, "list") from exc


def size_of(uri: str, s3: S3Settings) -> int | None:
    """The size in bytes of one file or object given by its canonical URI, or None if it is not there."""
    location = parse_location(uri)
    if not location.is_s3:
        return os.path.getsize(location.path) if os.path.isfile(location.path) else None
    client = s3_client(s3)
    try:
        return client.head_object(Bucket=location.bucket, Key=location.key)["ContentLength"]
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise describe_s3_failure(exc, s3, location.bucket, "read from") from exc


def read_text(location: Location, s3: S3Settings) -> str | None:
    """A small text object, or None when it does not exist."""
    if not location.is_s3:
        path = Path(location.path)
        return path.read_text(encoding="utf-8") if path.is_file() else None
    client = s3_client(s3)
    try:
        return client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read().decode("utf-8")
    except client.exceptions.NoSuchKey:
        return None
    except Exception as exc:
        raise describe_s3_failure(exc, s3, location.bucket, "read from") from exc


def write_text(location: Location, text: str, s3: S3Settings) -> None:
    if not location.is_s3:
        Path(location.path).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(location.path + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(location.path)  # atomic: a reader never sees half a manifest
        return
    client = s3_client(s3)
    try:
        client.put_object(Bucket=location.bucket, Key=location.key, Body=text.encode("utf-8"))
    except Exception as exc:
        raise describe_s3_failure(exc, s3, location.bucket, "write to") from exc


def download(location: Location, target: Path, s3: S3Settings) -> Path:
    """Copy one S3 object to a local file (used for s3:// weights)."""
    client = s3_client(s3)
    try:
        client.download_file(location.bucket, location.key, str(target))
    except Exception as exc:
        raise describe_s3_failure(exc, s3, location.bucket, f"download {location.key!r} from") from exc
    return target


def pyarrow_filesystem(location: Location, s3: S3Settings):
    """A pyarrow file system and the path inside it, for reading outputs without a JVM."""
    from pyarrow import fs

    if not location.is_s3:
        return fs.LocalFileSystem(), location.path
    credentials = aws_session(s3).get_credentials()
    kwargs = {}
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        kwargs = {"access_key": frozen.access_key, "secret_key": frozen.secret_key, "session_token": frozen.token}
    if s3.s3_endpoint:
        parts = urlsplit(s3.s3_endpoint)
        kwargs.update(endpoint_override=parts.netloc, scheme=parts.scheme or "https", force_virtual_addressing=False)
    filesystem = fs.S3FileSystem(region=s3.effective_region, **kwargs)
    return filesystem, f"{location.bucket}/{location.key}".rstrip("/")


def delete(location: Location, s3: S3Settings) -> None:
    """Remove one file or object if it exists."""
    if not location.is_s3:
        Path(location.path).unlink(missing_ok=True)
        return
    try:
        s3_client(s3).delete_object(Bucket=location.bucket, Key=location.key)
    except Exception as exc:
        raise describe_s3_failure(exc, s3, location.bucket, "delete from") from exc
