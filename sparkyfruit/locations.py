"""Where data lives, as values: Location (S3 or a local path), URI parsing, labels and file-name globs.

Pure: no I/O and no boto3. Three kinds of location exist: S3 (`s3://` or `s3a://`), HDFS (`hdfs://namenode:port/path`,
or `hdfs:///path` on the default file system that HADOOP_CONF_DIR names) and the local file system (a plain path
or `file://`). Image paths in outputs are canonical URIs, `s3://bucket/key`, `hdfs://namenode:port/path` or
`file:///abs/path`, whatever scheme the user typed, so the two source modes produce identical `path` columns.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass

from sparkyfruit.errors import ConfigError

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")


@dataclass(frozen=True)
class Location:
    """A parsed input or output location."""

    scheme: str  # "s3", "hdfs" or "file"
    bucket: str = ""  # S3 bucket; for HDFS the name node (host:port or a nameservice), "" for the default one
    key: str = ""  # S3 prefix without leading slash; "" for the bucket root
    path: str = ""  # absolute path (local, or inside HDFS)

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def is_hdfs(self) -> bool:
        return self.scheme == "hdfs"

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    @property
    def uri(self) -> str:
        """Canonical URI, as written into outputs."""
        if self.is_s3:
            return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"
        if self.is_hdfs:
            return f"hdfs://{self.bucket}{self.path}"
        return f"file://{self.path}"

    @property
    def shown(self) -> str:
        """How the location is written back to the user: the plain path for a local one."""
        return self.path if self.is_local else self.uri

    def spark_uri(self, s3_scheme: str = "s3a") -> str:
        """The URI Spark/Hadoop reads and writes. S3 goes through the S3A connector (`s3a`), or on EMR
        through EMRFS (`s3`)."""
        if self.is_s3:
            return f"{s3_scheme}://{self.bucket}/{self.key}" if self.key else f"{s3_scheme}://{self.bucket}/"
        return self.uri

    def child(self, name: str) -> Location:
        if self.is_s3:
            return Location("s3", self.bucket, f"{self.key.rstrip('/')}/{name}".lstrip("/"))
        return Location(self.scheme, self.bucket, path=os.path.join(self.path, name))

    def contains(self, other: Location) -> bool:
        """Whether `other` is this location or lies under it (same store)."""
        if (self.scheme, self.bucket) != (other.scheme, other.bucket):
            return False
        inner, outer = (other.key, self.key) if self.is_s3 else (other.path.strip("/"), self.path.strip("/"))
        return not outer or inner == outer or inner.startswith(outer + "/")


def is_s3_uri(text: str) -> bool:
    """Whether a setting names an S3 location (s3:// or s3a://), before it is parsed."""
    return text.strip().lower().startswith(("s3://", "s3a://"))


def parse_location(text: str, what: str = "path") -> Location:
    """Parse `s3://`, `s3a://`, `file://` or a plain (absolute or relative) path. Keys and paths are taken
    as written: an image may be named `what?.jpg` or `#1.jpg`, so nothing is read as a URL query or
    fragment."""
    raw = (text or "").strip()
    if not raw:
        raise ConfigError(f"{what} is empty.", "Give an s3://bucket/prefix URI or a local folder.")
    if "://" not in raw:
        return Location("file", path=os.path.abspath(os.path.expanduser(raw)))
    written_scheme, rest = raw.split("://", 1)
    host, _, tail = rest.partition("/")
    scheme = written_scheme.lower()
    if scheme in ("s3", "s3a"):
        bucket = host
        if not bucket or not re.fullmatch(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", bucket):
            raise ConfigError(
                f"{what} has no valid bucket name: {raw!r}.",
                "Write it as s3://bucket/prefix (bucket names are 3-63 lowercase letters, digits, '.', '-').",
            )
        return Location("s3", bucket=bucket, key=tail.strip("/"))
    if scheme == "hdfs":
        if "//" in tail or "/../" in f"/{tail}/" or "/./" in f"/{tail}/":
            raise ConfigError(f"{what} is not a plain HDFS path: {raw!r}.", "Write it as hdfs://namenode:8020/path.")
        return Location("hdfs", bucket=host, path="/" + tail.strip("/"))
    if scheme == "file":
        if host not in ("", "localhost"):
            raise ConfigError(f"{what} names a remote host in a file URI: {raw!r}.", "Use file:///absolute/path.")
        return Location("file", path=os.path.abspath("/" + tail))
    raise ConfigError(
        f"{what} has an unsupported scheme {written_scheme!r}: {raw!r}.",
        "Use s3://bucket/prefix, s3a://bucket/prefix, hdfs://namenode:port/path, file:///path or a plain local path.",
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
