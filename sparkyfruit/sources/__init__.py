"""Sources turn an input location into rows of (path, label, content, error) for the featurize stage.

keys mode lists first, on the driver and before Spark starts (keys.list_keys); df mode lets Spark list.
Each mode's Listing hands out one Source per shard (sparkyfruit.shards).
`error` is null unless the source itself could not read a file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sparkyfruit.errors import ConfigError


@dataclass
class Source:
    """What a source hands to the featurize stage.

    frame: a DataFrame of (path, label, content, error) rows, or of (path, label) rows when `fetch` is set.
    fetch: turns Arrow batches of (path, label) into (path, label, content, error) inside the featurize
        worker, so image bytes go from storage straight to the model without a trip through the JVM.
    listed: the image URIs of the shard, so the sink can account for every image when the frame drops
        some (Spark's file scan skips 0-byte files and files it cannot read).
    count: the number of images.
    """

    frame: object
    fetch: Callable[[Iterator], Iterator] | None
    listed: list[str]
    count: int


def no_images_error(config) -> ConfigError:
    """Nothing to encode: a usage error (exit 2), found by the listing before Spark starts."""
    return ConfigError(
        f"No images under {config.input_location.uri} match {describe_pattern(config.pattern)}.",
        "Check --input (bucket, prefix, folder) and --pattern; sub-folders are searched too.",
    )


def describe_pattern(pattern: str | None) -> str:
    """The --pattern as a user reads it: the glob given, or what the default selects."""
    return f"the pattern {pattern!r}" if pattern else "jpg, jpeg or png (any case)"
