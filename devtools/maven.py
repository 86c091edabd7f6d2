"""Whether Maven Central serves Spark's spark-hadoop-cloud module at the installed Spark's version: the
S3A magic committer needs it. The Maven Central served to our CI lacks some versions (e.g. 4.3.0 on
2026-11-26), so the tests and the demo ask first and fall back to --s3-committer file, saying why."""

from __future__ import annotations

import functools
import urllib.error
import urllib.request


@functools.lru_cache(maxsize=1)
def s3_committer_here() -> tuple[str, str]:
    """('magic' or 'file', the reason), from one HEAD request for the module's POM."""
    from sparkyfruit.spark.jars import hadoop_cloud_package

    group, artifact, version = hadoop_cloud_package().split(":")
    url = f"https://repo1.maven.org/maven2/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.pom"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=20):
            return "magic", f"{artifact}:{version} is on Maven Central"
    except urllib.error.HTTPError as exc:
        return "file", f"{artifact}:{version} is not served by Maven Central here (HTTP {exc.code} for {url})"
    except OSError as exc:
        return "file", f"Maven Central is not reachable for {artifact}:{version} ({exc})"
