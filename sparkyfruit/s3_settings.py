"""How to reach S3: the settings that every command touching S3 shares (encode's RunConfig extends them).

Precedence as for every setting: flag > env `SPARKYFRUIT_<NAME>` > TOML file (--config) > default.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sparkyfruit.errors import ConfigError

ENV_PREFIX = "SPARKYFRUIT_"


class S3Settings(BaseSettings):
    """How to reach S3: shared by every command that touches it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, use_attribute_docstrings=True
    )

    s3_endpoint: str | None = None
    """S3 endpoint URL for S3-compatible servers, e.g. http://127.0.0.1:9000. Unset: AWS S3."""
    s3_region: str | None = None
    """Region of the bucket. Unset: the AWS default chain (us-east-1 for a custom endpoint)."""
    profile: str | None = None
    """AWS profile from ~/.aws; unset: the standard credential chain (env vars, files, instance role)."""
    s3_retry_mode: Literal["standard", "adaptive", "legacy"] = "standard"
    """botocore retry mode for boto3's S3 calls (listing, manifests, weights); keys mode's GETs go through
    obstore, whose one policy is exponential backoff with jitter."""
    s3_max_attempts: int = 10
    """Attempts per S3 request (botocore, obstore and S3A), first try included."""
    s3_connect_timeout: float = 10.0
    """Seconds to wait for a TCP connection to S3."""
    s3_read_timeout: float = 60.0
    """Seconds to wait for S3 to answer a request (keys mode's GETs: for the whole GET)."""
    fetch_concurrency: int = 16
    """Concurrent GETs per Spark task in keys mode."""
    spark_s3_scheme: Literal["s3a", "s3"] = "s3a"
    """How Spark itself reaches S3: 's3a' (Hadoop's S3A connector, pulled at Spark's Hadoop version) or 's3'
    (EMRFS, built into AWS EMR; nothing pulled). Inputs and outputs are written s3:// either way."""

    @field_validator("s3_endpoint")
    @classmethod
    def _endpoint_is_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(
                f"--s3-endpoint must be an http(s) URL; got {endpoint_shown(value)!r}.",
                "Write it like http://127.0.0.1:9000 or https://s3.example.com.",
            )
        if "@" in parts.netloc:
            # refused, not stripped: a URL with keys in it gets copied (shell history, scripts, notebooks),
            # and Spark's UI would show fs.s3a.endpoint to anyone who can open it
            raise ConfigError(
                f"--s3-endpoint {endpoint_shown(value)} holds a user name or password; sparkyfruit takes no keys "
                "in a URL, which Spark's UI and logs would show.",
                "Give the bare URL (like http://127.0.0.1:9000), and the keys with --profile or the environment "
                "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).",
            )
        return value.rstrip("/")

    @field_validator("s3_max_attempts", "fetch_concurrency")
    @classmethod
    def _positive(cls, value: int, info) -> int:
        if value < 1:
            raise ConfigError(
                f"{info.field_name} must be at least 1; got {value}.",
                f"Set {ENV_PREFIX}{info.field_name.upper()} or '{info.field_name}' in the --config file.",
            )
        return value

    @property
    def effective_region(self) -> str | None:
        return self.s3_region or ("us-east-1" if self.s3_endpoint else None)

    def s3_only(self) -> S3Settings:
        return S3Settings.model_construct(**{name: getattr(self, name) for name in S3Settings.model_fields})


def endpoint_shown(value: str) -> str:
    """An endpoint URL as it may be printed: any user:password part replaced by ***."""
    parts = urlsplit(value)
    if "@" not in parts.netloc:
        return value
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))
