"""Sources turn an input location into DataFrame[path, label, content, error] (see featurize.SOURCE_SCHEMA).

Both return (DataFrame, listed image URIs or None, number of images); `error` is null unless the source
itself could not read a file. A source returns the listed URIs when its DataFrame may drop some of them
(Spark's file scan skips 0-byte files), so the sink can account for every image.
"""

from sparkyfruit.errors import StorageError


def no_images_error(config) -> StorageError:
    return StorageError(
        f"No images under {config.input_location.uri} match the pattern {config.file_pattern!r}.",
        "Check --input (bucket, prefix, folder) and --pattern; sub-folders are searched too.",
    )
