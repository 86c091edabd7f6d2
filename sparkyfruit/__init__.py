"""sparkyfruit: images in S3 or a folder -> CNN feature vectors in Parquet, with Apache Spark.

Public API (heavy libraries load only inside these calls):

    from sparkyfruit import RunConfig, encode, inspect, similar
    result = encode(RunConfig(mode="keys", input="s3://bucket/Training", output="out/"))
    summary = inspect("out/")
    label = similar(["photo.jpg"], index="out/").answers[0].label
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


def similar(queries, index, s3=None, k=5):
    """Recognise images by their k nearest rows of an encode output, without Spark; see
    sparkyfruit.similar.similar."""
    from sparkyfruit.similar import similar as _similar

    return _similar(list(queries), index, s3 or S3Settings(), k=k)


__all__ = ["RunConfig", "S3Settings", "encode", "inspect", "similar", "__version__"]
