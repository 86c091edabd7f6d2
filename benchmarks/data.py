"""Benchmark inputs: N distinct images made from the 192-image sample by flips, rotations and crops."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "images"
VARIANTS = [
    lambda im: im,
    ImageOps.mirror,
    ImageOps.flip,
    lambda im: im.rotate(90),
    lambda im: im.rotate(180),
    lambda im: im.rotate(270),
    lambda im: ImageOps.mirror(im.rotate(90)),
    lambda im: ImageOps.flip(im.rotate(90)),
]


def make_images(n: int, folder: Path) -> list[Path]:
    """Write n JPEGs under folder/<label>/; returns their paths (deterministic)."""
    sources = sorted(p for p in SAMPLE.rglob("*.jpg"))
    written = []
    for index in range(n):
        source = sources[index % len(sources)]
        variant = (index // len(sources)) % len(VARIANTS)
        shift = index // (len(sources) * len(VARIANTS))  # beyond 1536 images: also crop a few pixels
        with Image.open(source) as image:
            image = VARIANTS[variant](image.convert("RGB"))
            if shift:
                image = image.crop((shift % 7, shift % 5, 100 - shift % 3, 100 - shift % 4)).resize((100, 100))
            target = folder / source.parent.name / f"{index:06d}_{source.stem}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=92)
            target.write_bytes(buffer.getvalue())
            written.append(target)
    return written
