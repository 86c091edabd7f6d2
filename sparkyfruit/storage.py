"""I/O on locations: the boto3 client factory, listing, small-object read/write/delete, pyarrow's S3.

What a location is (parsing, labels, globs) lives in locations.py; this module only talks to S3, HDFS
(through hdfs-native, which speaks the name node's protocol: no JVM) and the local file system.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from sparkyfruit.errors import ConfigError, StorageError
from sparkyfruit.locations import Location, compile_pattern
from sparkyfruit.s3_settings import S3Settings

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
    if location.is_hdfs:
        return next(_iter_hdfs_files(location, regex), None) is not None
    if location.is_local:
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

    where = f"bucket {bucket!r} at {s3.s3_endpoint or 'AWS S3'}"
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
            return StorageError(
                f"Could not connect to {s3.s3_endpoint} to {action} bucket {bucket!r}.",
                "Check --s3-endpoint (scheme, host, port) and that the server is running.",
            )
        return StorageError(
            f"Could not connect to AWS S3 to {action} bucket {bucket!r}.",
            "Check this machine's network (and any proxy); for an S3-compatible server, pass --s3-endpoint.",
        )
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


def list_image_objects(
    location: Location, pattern: str, s3: S3Settings, limit: int | None = None
) -> list[tuple[str, int | None, str | None]]:
    """`list_images` with each S3 object's size and ETag from the same listing (None, None for local files:
    nothing uses them there, and a stat per file would cost on big folders): keys mode's GETs need no
    HEAD, and an object replaced after the listing is noticed (If-Match)."""
    regex = compile_pattern(pattern)
    if location.is_s3:
        found = _iter_s3_keys(location, regex, s3)
    else:
        found = _iter_hdfs_files(location, regex) if location.is_hdfs else _iter_local_files(location, regex)
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


def _iter_hdfs_files(location: Location, regex: re.Pattern[str]) -> Iterator[tuple[str, None, None]]:
    for relative in _hdfs_files(location):
        if not _hidden(relative) and regex.fullmatch(relative.rsplit("/", 1)[-1]):
            yield location.child(relative).uri, None, None


def _hdfs_files(location: Location) -> list[str]:
    """Every file under an HDFS location, relative to it (one recursive listing)."""
    root = location.path.rstrip("/")
    found = hdfs_call(location, "list", lambda client: list(client.list_status(location.path, True))) or []
    return [status.path[len(root) + 1 :] for status in found if not status.isdir]


# ---------------------------------------------------------------- HDFS


@functools.lru_cache(maxsize=8)
def hdfs_client(name_node: str):
    """An hdfs-native client for `hdfs://name_node` ("" for the default file system of HADOOP_CONF_DIR)."""
    from hdfs_native import Client

    return Client(f"hdfs://{name_node}" if name_node else None)


def default_file_system() -> str | None:
    """fs.defaultFS of HADOOP_CONF_DIR's core-site.xml (YARN_CONF_DIR as Spark's fallback), if set."""
    import xml.etree.ElementTree as ElementTree

    folder = os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")
    if not folder:
        return None
    try:
        root = ElementTree.parse(Path(folder) / "core-site.xml").getroot()
    except (OSError, ElementTree.ParseError):
        return None
    for prop in root.iter("property"):
        if (prop.findtext("name") or "").strip() == "fs.defaultFS":
            return (prop.findtext("value") or "").strip() or None
    return None


def hdfs_call(location: Location, action: str, call):
    """`call(client)` with the client for `location`'s name node: a missing path gives None, a closed port or
    any other failure one StorageError."""
    name_node = location.bucket or urlsplit(default_file_system() or "").netloc
    if location.bucket:
        hint = f"Check that the name node {location.bucket} is up and reachable from here."
    else:
        hint = (
            "hdfs:///path means the default file system of HADOOP_CONF_DIR's core-site.xml (fs.defaultFS): set "
            "HADOOP_CONF_DIR to the cluster's configuration folder, or write hdfs://namenode:8020/path."
        )
    # hdfs-native retries a refused connection for minutes: a closed port is told at once
    if ":" in name_node and not _name_node_listens(name_node):
        raise StorageError(f"Could not {action} {location.uri}: nothing listens at {name_node}.", hint)
    try:
        return call(hdfs_client(location.bucket))
    except FileNotFoundError:
        return None
    except Exception as exc:  # hdfs-native raises OSError, RuntimeError and others: one clear error
        raise StorageError(f"Could not {action} {location.uri}: {exc}", hint) from None


@functools.lru_cache(maxsize=8)
def _name_node_listens(host_and_port: str) -> bool:
    return _reachable(f"hdfs://{host_and_port}")


# ---------------------------------------------------------------- outputs and small objects


def is_local_file(location: Location) -> bool:
    return location.is_local and os.path.isfile(location.path)


def list_files(location: Location, s3: S3Settings, starting_with: str = "") -> list[str]:
    """The names, relative to `location` and sorted, of every file (or S3 object) under it, hidden ones
    included; with `starting_with` (a name start without "/"), only the files directly under it whose names
    start so (on S3 one listing of that prefix, not of the whole output). Folders themselves (and S3's
    zero-byte "folder/" markers) are not files."""
    if location.is_hdfs:
        return sorted(name for name in _hdfs_files(location) if _starts(name, starting_with))
    if location.is_local:
        if starting_with:
            found = os.listdir(location.path) if os.path.isdir(location.path) else []
            return sorted(n for n in found if n.startswith(starting_with) and os.path.isfile(location.child(n).path))
        names = []
        for root, _, files in os.walk(location.path):
            names += [os.path.relpath(os.path.join(root, name), location.path) for name in files]
        return sorted(names)
    folder = f"{location.key}/" if location.key else ""
    prefix = folder + starting_with
    try:
        pages = s3_client(s3).get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix)
        return sorted(
            obj["Key"][len(folder) :]
            for page in pages
            for obj in page.get("Contents", [])
            if not obj["Key"].endswith("/") and _starts(obj["Key"][len(folder) :], starting_with)
        )
    except Exception as exc:
        raise describe_s3_failure(exc, s3, location.bucket, "list") from exc


def _starts(name: str, starting_with: str) -> bool:
    return not starting_with or ("/" not in name and name.startswith(starting_with))


def read_text(location: Location, s3: S3Settings) -> str | None:
    """A small text object, or None when it does not exist."""
    data = read_bytes(location, s3)
    return None if data is None else data.decode("utf-8")


def read_bytes(location: Location, s3: S3Settings) -> bytes | None:
    """A small file or object, or None when it does not exist."""
    if location.is_hdfs:

        def read(client):
            with client.read(location.path) as reader:
                return reader.read()

        return hdfs_call(location, "read", read)
    if location.is_local:
        path = Path(location.path)
        return path.read_bytes() if path.is_file() else None
    client = s3_client(s3)
    try:
        return client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None
    except Exception as exc:
        raise describe_s3_failure(exc, s3, location.bucket, "read from") from exc


def write_text(location: Location, text: str, s3: S3Settings) -> None:
    if location.is_hdfs:
        from hdfs_native import WriteOptions

        def write(client):
            partial = location.path + ".tmp"
            with client.create(partial, WriteOptions(overwrite=True, create_parent=True)) as writer:
                writer.write(text.encode("utf-8"))
            client.rename(partial, location.path, overwrite=True)  # atomic, as below

        hdfs_call(location, "write", write)
        return
    if location.is_local:
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


def create_new(location: Location, text: str, s3: S3Settings) -> bool:
    """Write a small file only if nothing is at `location` yet, as one atomic step of the store: O_EXCL
    locally, a create without overwrite on HDFS, a PUT with `If-None-Match: *` on S3 (put_conditional).
    Returns False when something was already there (nothing is written then)."""
    data = text.encode("utf-8")
    if location.is_hdfs:
        from hdfs_native import WriteOptions

        def create(client):
            try:
                with client.create(location.path, WriteOptions(overwrite=False, create_parent=True)) as writer:
                    writer.write(data)
            except Exception as exc:  # hdfs-native's error for an existing file is not a FileExistsError
                try:
                    client.get_file_info(location.path)
                except FileNotFoundError:
                    raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
                return "exists"
            return "created"

        return hdfs_call(location, "create", create) == "created"
    if location.is_local:
        Path(location.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(location.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        return True
    return put_conditional(location, text, s3, if_match=None) is not None


# S3's answers to a conditional request whose condition does not hold: 412, or 409 while another conditional
# write to the key is under way
_CONDITION_FAILED = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


def put_conditional(location: Location, text: str, s3: S3Settings, *, if_match: str | None) -> str | None:
    """PUT a small S3 object only if it is absent (`if_match` None) or still the version whose ETag is
    `if_match`. Returns the new ETag, or None when the condition did not hold (nothing was written)."""
    client = s3_client(s3)
    condition = {"IfNoneMatch": "*"} if if_match is None else {"IfMatch": if_match}
    data = text.encode("utf-8")
    answer = _if_condition_holds(
        lambda: client.put_object(Bucket=location.bucket, Key=location.key, Body=data, **condition),
        location,
        s3,
        "write to",
    )
    return None if answer is None else answer["ETag"]


def _if_condition_holds(request, location: Location, s3: S3Settings, action: str):
    """The answer of a conditional S3 request, or None when its condition did not hold (or the key is gone);
    any other failure is a StorageError."""
    from botocore.exceptions import ClientError

    try:
        return request()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _CONDITION_FAILED + ("NoSuchKey",):
            return None
        raise describe_s3_failure(exc, s3, location.bucket, action) from exc
    except Exception as exc:
        raise describe_s3_failure(exc, s3, location.bucket, action) from exc


def read_with_etag(location: Location, s3: S3Settings) -> tuple[str | None, str | None]:
    """A small S3 object's text and ETag, or (None, None) when it does not exist."""
    client = s3_client(s3)
    try:
        answer = client.get_object(Bucket=location.bucket, Key=location.key)
        return answer["Body"].read().decode("utf-8", "replace"), answer["ETag"]
    except client.exceptions.NoSuchKey:
        return None, None
    except Exception as exc:
        raise describe_s3_failure(exc, s3, location.bucket, "read from") from exc


def delete_conditional(location: Location, etag: str, s3: S3Settings) -> bool:
    """Delete an S3 object only if it is still the version `etag`; False when it is not (it stays)."""
    client = s3_client(s3)
    answer = _if_condition_holds(
        lambda: client.delete_object(Bucket=location.bucket, Key=location.key, IfMatch=etag),
        location,
        s3,
        "delete from",
    )
    return answer is not None


def download(location: Location, target: Path, s3: S3Settings) -> Path:
    """Copy one S3 object to a local file (used for s3:// weights)."""
    client = s3_client(s3)
    try:
        client.download_file(location.bucket, location.key, str(target))
    except Exception as exc:
        raise describe_s3_failure(exc, s3, location.bucket, f"download {location.key!r} from") from exc
    return target


def resolved_credentials(s3: S3Settings):
    """The credentials boto3's chain (or --profile) resolves now, frozen (access_key, secret_key, token), or
    None: for the clients that take keys rather than a chain (pyarrow's S3, deltalake's object_store)."""
    credentials = aws_session(s3).get_credentials()
    return credentials.get_frozen_credentials() if credentials is not None else None


def pyarrow_path(location: Location) -> str:
    """The location's path inside its pyarrow file system (S3: bucket/key)."""
    return f"{location.bucket}/{location.key}".rstrip("/") if location.is_s3 else location.path


def pyarrow_filesystem(location: Location, s3: S3Settings):
    """A pyarrow file system and the path inside it, for reading outputs without a JVM."""
    from pyarrow import fs

    if location.is_local:
        return fs.LocalFileSystem(), location.path
    if location.is_hdfs:
        from hdfs_native.fsspec import HdfsFileSystem

        host, _, port = location.bucket.partition(":")
        filesystem = HdfsFileSystem(host or None, int(port) if port else None)
        return fs.PyFileSystem(fs.FSSpecHandler(filesystem)), location.path
    frozen = resolved_credentials(s3)
    kwargs = {}
    if frozen is not None:
        kwargs = {"access_key": frozen.access_key, "secret_key": frozen.secret_key, "session_token": frozen.token}
    if s3.s3_endpoint:
        parts = urlsplit(s3.s3_endpoint)
        kwargs.update(endpoint_override=parts.netloc, scheme=parts.scheme or "https", force_virtual_addressing=False)
    filesystem = fs.S3FileSystem(region=s3.effective_region, **kwargs)
    return filesystem, pyarrow_path(location)


def delete(location: Location, s3: S3Settings) -> None:
    """Remove one file or object if it exists."""
    if location.is_hdfs:
        hdfs_call(location, "delete", lambda client: client.delete(location.path))
        return
    if location.is_local:
        Path(location.path).unlink(missing_ok=True)
        return
    try:
        s3_client(s3).delete_object(Bucket=location.bucket, Key=location.key)
    except Exception as exc:
        raise describe_s3_failure(exc, s3, location.bucket, "delete from") from exc


def delete_files(location: Location, names: list[str], s3: S3Settings) -> None:
    """Remove files (names relative to `location`, as list_files gives them), and local folders that
    they leave empty. Every delete's result is read: a file that stays raises a StorageError naming it."""
    if not names:
        return
    kept: list[tuple[str, str]] = []  # (name, why it stays)
    if location.is_hdfs:

        def remove(client):
            for name in names:
                path = f"{location.path.rstrip('/')}/{name}"
                try:
                    client.delete(path)
                except FileNotFoundError:
                    continue
                except Exception as exc:  # hdfs-native raises OSError, RuntimeError and others
                    kept.append((name, f"{type(exc).__name__}: {exc}"))

        hdfs_call(location, "delete from", remove)
    elif location.is_local:
        root = Path(location.path)
        for name in names:
            try:
                (root / name).unlink(missing_ok=True)
            except OSError as exc:
                kept.append((name, exc.strerror or type(exc).__name__))
        for folder in sorted({(root / name).parent for name in names}, key=lambda p: len(p.parts), reverse=True):
            while folder != root and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
                folder = folder.parent
    else:
        prefix = f"{location.key}/" if location.key else ""
        client = s3_client(s3)
        try:
            for start in range(0, len(names), 1000):  # DeleteObjects takes at most 1,000 keys
                batch = [{"Key": prefix + name} for name in names[start : start + 1000]]
                # Quiet: the answer lists only the keys that failed, each with S3's code
                answer = client.delete_objects(Bucket=location.bucket, Delete={"Objects": batch, "Quiet": True})
                kept += [
                    (error["Key"].removeprefix(prefix), error.get("Code") or error.get("Message") or "?")
                    for error in answer.get("Errors", [])
                ]
        except Exception as exc:
            raise describe_s3_failure(exc, s3, location.bucket, "delete from") from exc
    if kept:
        shown = ", ".join(f"{name} ({why})" for name, why in kept[:3])
        more = f" and {len(kept) - 3} more" if len(kept) > 3 else ""
        raise StorageError(
            f"Could not delete {len(kept)} of {len(names)} files in {location.uri}: {shown}{more}.",
            "Nothing was committed over them. Check the permissions on the output, then run the command again.",
        )
