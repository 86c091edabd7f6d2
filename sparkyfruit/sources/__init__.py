"""Sources turn an input location into DataFrame[path, label, content, error] (see featurize.SOURCE_SCHEMA).

Both return (DataFrame, number of images); `error` is null unless the source itself could not read a file.
"""

from sparkyfruit.errors import StorageError


def no_images_error(config) -> StorageError:
    return StorageError(
        f"No images under {config.input_location.uri} match the pattern {config.file_pattern!r}.",
        "Check --input (bucket, prefix, folder) and --pattern; sub-folders are searched too.",
    )
