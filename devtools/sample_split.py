"""The bundled sample split for recognition: the even-numbered images of each class (the number in a
Fruits-360 file name, `r_12_100.jpg` -> 12) make an index, the odd-numbered ones query it. Used by the
recognition test, the demo and benchmarks/similar.py."""

from __future__ import annotations

import re
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "images"


def image_number(image: Path) -> int:
    return int(re.fullmatch(r"(?:r_)?(\d+)_100\.jpg", image.name).group(1))


def split_even_odd(folder: Path) -> tuple[Path, list[Path]]:
    """A folder under `folder` with links to the even-numbered images of each class, and the odd-numbered
    images themselves."""
    even, odd = folder / "even", []
    for image in sorted(SAMPLE.glob("*/*.jpg")):
        if image_number(image) % 2 == 0:
            (even / image.parent.name).mkdir(parents=True, exist_ok=True)
            (even / image.parent.name / image.name).symlink_to(image)
        else:
            odd.append(image)
    return even, odd
