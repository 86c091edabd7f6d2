"""The Python daemon of a local run's workers (`spark.python.daemon.module`): pyspark's own daemon, started so
that each worker it forks begins with its imports done.

pyspark starts one daemon per executor and forks a worker from it for each task slot. By default every
worker then imports pyspark from `SPARK_HOME/python/lib/pyspark.zip`, where Python cannot cache compiled
bytecode, so each worker compiles pyspark from source; and then each worker imports sparkyfruit, NumPy and
the engine on its own, all before its first image. This daemon imports them once, before it forks:

- pyspark from the installed package (the same release as that zip, whose bytecode is cached);
- pyspark's worker module, and sparkyfruit's task code with NumPy, the JPEG decoder and LiteRT.

A process that forks must hold no other threads, so only modules that start none are imported here (pyarrow
and pandas do; workers import them after the fork). NumPy starts OpenBLAS's threads unless
OPENBLAS_NUM_THREADS is 1, which this daemon sets for its workers where nothing else set it (the network
runs on its engine's own threads, never on NumPy's); where it is set above 1, nothing is preloaded.

Only a local master uses it (spark/options.py): there the workers run this very Python, which has sparkyfruit.
"""

from __future__ import annotations

import os
import sys

# what every worker of an encode imports before its first image, in that order; each starts no thread
PRELOADED = ("pyspark.worker", "sparkyfruit.featurize")


def without_bundled_pyspark_zip(path: list[str]) -> list[str]:
    """`path` (sys.path) without the pyspark.zip that ships inside an installed pyspark package
    (`<site-packages>/pyspark/python/lib/pyspark.zip`), whose package then imports instead. A pyspark.zip of a
    separate Spark (SPARK_HOME elsewhere) stays: it may be another release than the installed package."""
    kept = []
    for entry in path:
        package = os.path.dirname(os.path.dirname(os.path.dirname(entry)))
        bundled = (
            os.path.basename(entry) == "pyspark.zip"
            and os.path.basename(package) == "pyspark"
            and os.path.isfile(os.path.join(package, "__init__.py"))
            and os.path.dirname(package) in path
        )
        if not bundled:
            kept.append(entry)
    return kept


def preload() -> None:
    """Import PRELOADED, unless NumPy would start threads (OPENBLAS_NUM_THREADS set above 1): pyspark's worker
    module imports NumPy too, on some releases."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if os.environ["OPENBLAS_NUM_THREADS"] != "1":
        return
    for name in PRELOADED:
        try:
            __import__(name)
        except Exception:  # noqa: BLE001 - the worker imports it again after the fork, and reports what fails
            return


def main() -> None:
    sys.path[:] = without_bundled_pyspark_zip(sys.path)
    preload()
    from sparkyfruit.timeline import mark

    mark("worker daemon preloaded")
    from pyspark.daemon import manager

    manager()


if __name__ == "__main__":
    main()
