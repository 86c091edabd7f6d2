"""sparkyfruit: images in S3 or a folder -> CNN feature vectors in Parquet, with Apache Spark.

Public API (heavy libraries load only inside these calls):

    from sparkyfruit import RunConfig, encode, inspect
    result = encode(RunConfig(mode="keys", input="s3://bucket/Training", output="out/"))
    summary = inspect("out/")
"""

__version__ = "0.1.0"

from sparkyfruit.config import RunConfig, S3Settings  # noqa: E402  (light: pydantic only)


def encode(config, spark=None):
    """Run one encode job; see sparkyfruit.pipeline.encode."""
    from sparkyfruit.pipeline import encode as _encode

    return _encode(config, spark=spark)


def inspect(output, s3=None):
    """Summarise a finished output without starting Spark; see sparkyfruit.inspection.inspect."""
    from sparkyfruit.inspection import inspect as _inspect

    return _inspect(output, s3=s3)


__all__ = ["RunConfig", "S3Settings", "encode", "inspect", "__version__"]
