"""Every backbone of the installed keras.applications, built with random weights: its pooled dimension,
parameters and Keras's default size (the input of the network with its classifier), against sparkyfruit's
cache (models.BACKBONES), and how long the build takes. The test suite checks one member of each family;
this is the full list.

    python -m benchmarks.backbones [--size 100]

Prints a table (a mismatch is marked and makes the exit code 1) and writes JSON to
benchmarks/results/backbones.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100, help="input side of the pooled build")
    args = parser.parse_args()
    from sparkyfruit import models

    models.import_tensorflow()
    import keras

    rows, mismatches = [], 0
    for name, (application, module) in models.installed_backbones().items():
        started = time.perf_counter()
        size = max(args.size, models.BACKBONES[name].min_size if name in models.BACKBONES else args.size)
        built, _ = models.build_model(models.ModelSpec(name, 1.0, size, models.RANDOM, 1))
        seconds = time.perf_counter() - started
        with_top = getattr(keras.applications, application)(weights=None)
        row = {
            "name": name,
            "module": module,
            "dim": int(built.output_shape[-1]),
            "parameters": built.count_params(),
            "default_size": with_top.input_shape[1],  # None: the classifier takes any size (MobileNetV3)
            "build_s": round(seconds, 2),
        }
        cached = models.BACKBONES.get(name)
        row["matches_cache"] = cached is not None and (
            cached.keras_module,
            cached.dim,
            cached.parameters,
            row["default_size"] or cached.default_size,
        ) == (module, row["dim"], row["parameters"], cached.default_size)
        mismatches += not row["matches_cache"]
        rows.append(row)
        del built, with_top
        keras.backend.clear_session()
    print(f"{'name':<22} {'dim':>5} {'size':>5} {'parameters':>12} {'build s':>8}  cache")
    for row in rows:
        print(
            f"{row['name']:<22} {row['dim']:>5} {row['default_size'] or '-':>5} {row['parameters']:>12,} "
            f"{row['build_s']:>8.2f}  {'ok' if row['matches_cache'] else 'DIFFERS'}"
        )
    print(
        f"{len(rows)} backbones, {sum(r['build_s'] for r in rows):.0f} s of builds, {mismatches} differ from the cache"
    )
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "backbones.json").write_text(
        json.dumps({"keras": keras.__version__, "cores": os.cpu_count(), "backbones": rows}, indent=1)
    )
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
