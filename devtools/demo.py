"""`make demo`: a local S3 server seeded with the bundled sample, both encode modes, inspect of both, then
`similar` recognising two new photos (sample images mirrored, turned and cropped) against the vectors.

Offline: uses the bundled ImageNet weights (MobileNet v1, alpha 0.25). Both outputs are local folders under
demo-out/, so they stay for the user to open after the demo; the S3 server is stopped by pid whatever
happens.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from devtools import local_s3

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "examples" / "images"
WEIGHTS = ROOT / "examples" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
OUT = ROOT / "demo-out"
SPARKYFRUIT = [str(Path(sys.executable).with_name("sparkyfruit"))]


def run(*args: str) -> None:
    print("\n$ sparkyfruit " + " ".join(args), flush=True)
    subprocess.run(SPARKYFRUIT + list(args), check=True)


def new_photos(folder: Path) -> list[Path]:
    """Two photos that are not in the sample: a banana and a kiwi from it, mirrored, turned and cropped."""
    from PIL import Image, ImageOps

    folder.mkdir()
    photos = []
    for label, name in (("Banana", "r_140_100.jpg"), ("Kiwi", "r_155_100.jpg")):
        with Image.open(IMAGES / label / name) as image:
            turned = ImageOps.mirror(image).rotate(15, fillcolor=(255, 255, 255)).crop((8, 8, 92, 92))
            photos.append(folder / f"{label.lower()}.jpg")
            turned.resize((100, 100)).save(photos[-1], quality=90)
    return photos


def main() -> int:
    os.environ.update(local_s3.FAKE_CREDENTIALS)
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    server = local_s3.start(log_path=OUT / "s3-server.log")
    started = time.monotonic()
    try:
        count = local_s3.seed(server.endpoint, "fruits", "Training", IMAGES)
        print(f"S3 server on {server.endpoint} (pid {server.pid}); uploaded {count} images to s3://fruits/Training")
        common = [
            "--model",
            "mobilenet",
            "--alpha",
            "0.25",
            "--weights",
            str(WEIGHTS.relative_to(ROOT)),
            "--s3-endpoint",
            server.endpoint,
            "--input",
            "s3://fruits/Training",
        ]
        for mode in ("keys", "df"):
            run("encode", "--mode", mode, *common, "--output", f"demo-out/{mode}")
        for mode in ("keys", "df"):
            run("inspect", f"demo-out/{mode}")
        photos = new_photos(OUT / "photos")
        run("similar", *(str(photo.relative_to(ROOT)) for photo in photos), "--index", "demo-out/keys", "--k", "3")
        print(
            f"\ndemo finished in {time.monotonic() - started:.0f} s. Its outputs stay in demo-out/keys and "
            "demo-out/df. Next, try:\n"
            "  source .venv/bin/activate        # puts `sparkyfruit` on your PATH (or call .venv/bin/sparkyfruit)\n"
            "  sparkyfruit evaluate demo-out/keys\n"
            "  sparkyfruit similar path/to/your/fruit.jpg --index demo-out/keys\n"
            "  sparkyfruit inspect demo-out/df --plot demo-out/df.png"
        )
        return 0
    except subprocess.CalledProcessError as exc:
        print(f"\ndemo failed: a command exited with {exc.returncode}", file=sys.stderr)
        return 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
