"""Messy real-world files: every one gets exactly one row, convertible images get vectors, the job never fails."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import sparkyfruit
from tests.helpers import SAMPLE, cli, encode_args, read_output, run_config

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims width x height pixels (a decompression bomb's calling card)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("messy") / "Kiwi"
    folder.mkdir()
    source = next((SAMPLE / "Kiwi").iterdir())
    rgb = Image.open(source).convert("RGB")
    files = {
        "good.jpg": source.read_bytes(),
        "zero.jpg": b"",
        "truncated.jpg": source.read_bytes()[: len(source.read_bytes()) // 3],
        "text.jpg": b"<html>not an image</html>",
        "rgba.png": encoded(rgb.convert("RGBA"), "PNG"),
        "gray.jpg": encoded(rgb.convert("L"), "JPEG"),
        "cmyk.jpg": encoded(rgb.convert("CMYK"), "JPEG"),
        "sixteen.png": encoded(Image.fromarray(np.asarray(rgb.convert("L"), dtype=np.uint16) * 257), "PNG"),
        "palette.png": encoded(rgb.convert("P"), "PNG"),
        "bomb.png": png_declaring(30000, 30000),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


CONVERTIBLE = {"good.jpg", "rgba.png", "gray.jpg", "cmyk.jpg", "sixteen.png", "palette.png"}
BROKEN = {"zero.jpg", "truncated.jpg", "text.jpg", "bomb.png"}


@pytest.mark.parametrize("mode", ["keys", "df"])
def test_every_file_is_accounted_for_and_only_broken_ones_fail(spark, messy_folder, tmp_path, mode):
    result = sparkyfruit.encode(run_config(mode=mode, input=str(messy_folder.parent), output=str(tmp_path / "out")))
    assert (result.rows, result.ok, result.failed) == (10, 6, 4)
    rows = read_output(tmp_path / "out")
    by_name = {path.rsplit("/", 1)[-1]: row for path, row in rows.items()}
    assert set(by_name) == CONVERTIBLE | BROKEN
    assert {label for label, _, _ in by_name.values()} == {"Kiwi"}  # a failed row keeps its label
    for name in CONVERTIBLE:
        label, features, error = by_name[name]
        assert error is None and len(features) == 256 and np.all(np.isfinite(features)), name
    for name in BROKEN:
        label, features, error = by_name[name]
        assert features is None and error, name
    assert "DecompressionBomb" in by_name["bomb.png"][2]
    # the same text for an empty file in both modes; no Python object reprs in any error
    from sparkyfruit.featurize import EMPTY_FILE_ERROR

    assert by_name["zero.jpg"][2] == EMPTY_FILE_ERROR
    assert by_name["text.jpg"][2] == "cannot decode image: not an image file (JPEG, PNG) that Pillow can read"
    assert by_name["truncated.jpg"][2].startswith("cannot decode image"), by_name["truncated.jpg"][2]
    assert not any(" object at 0x" in row[2] for row in by_name.values() if row[2])
    assert (result.manifest.counts.rows, result.manifest.counts.ok, result.manifest.counts.failed) == (10, 6, 4)
    summary = sparkyfruit.inspect(str(tmp_path / "out"))
    assert summary.failed == 4 and len(summary.failures) == 4

    # a data file of the table deleted after the run: inspect refuses the output, naming the file
    from sparkyfruit.errors import NotAnOutputError

    for part in (tmp_path / "out").glob("part-*.parquet"):
        part.unlink()
        break
    with pytest.raises(NotAnOutputError, match=f"lost a data file that its table names .*{part.name}"):
        sparkyfruit.inspect(str(tmp_path / "out"))


def test_a_run_where_every_image_fails_exits_1_and_keeps_its_rows(spark, messy_folder, tmp_path):
    """Exit 1 when no image could be encoded (say, executors denied every GET); --max-failed sets the share
    above which a run counts as failed. The output stays either way, with each row's error."""
    images = messy_folder.parent
    everything_fails = cli(*encode_args(images, tmp_path / "none", "--mode", "keys", "--pattern", "{zero,text}.jpg"))
    assert everything_fails.exit_code == 1, everything_fails.output
    assert "No image could be encoded: all 2 rows" in everything_fails.output
    assert sorted(read_output(tmp_path / "none")) == [f"{messy_folder.as_uri()}/{n}" for n in ("text.jpg", "zero.jpg")]

    some_fail = ["--mode", "keys", "--pattern", "{good,zero,text}.jpg"]
    over = cli(*encode_args(images, tmp_path / "over", *some_fail, "--max-failed", "0.5"))
    assert over.exit_code == 1 and "2 of 3 images failed (66.7%), more than --max-failed 0.5" in over.output
    within = cli(*encode_args(images, tmp_path / "within", *some_fail, "--max-failed", "0.7"))
    assert within.exit_code == 0 and "1 ok, 2 failed" in within.output, within.output
