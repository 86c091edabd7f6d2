"""`make demo`: a local S3 server seeded with the bundled sample, both encode modes, inspect of both.

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
        print(
            f"\ndemo finished in {time.monotonic() - started:.0f} s. Its outputs stay in demo-out/keys and "
            "demo-out/df. Next, try:\n"
            "  source .venv/bin/activate        # puts `sparkyfruit` on your PATH (or call .venv/bin/sparkyfruit)\n"
            "  sparkyfruit evaluate demo-out/keys\n"
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
