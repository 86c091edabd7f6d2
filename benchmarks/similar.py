"""`sparkyfruit similar`, measured: the search structure's crossover, latency against large indexes, and
recognition accuracy on the bundled sample.

1. **Search.** Exact top-k cosine search over N unit vectors for Q queries: NumPy (one float32 matrix
   product and argpartition, what `similar` uses) against faiss-cpu's flat inner-product index (building
   it, and searching it), best of --repeats, at 256-d (MobileNet 0.25) and 1280-d (MobileNetV2).
2. **Latency.** Indexes of 10,000 and 100,000 rows (256-d vectors of the bundled network's: the sample's
   real vectors plus noise, written as an encode output with its manifest), queried with 1 and 100 sample
   images: the whole `sparkyfruit similar` command (a fresh process: imports, network, index, encode,
   search), and in one process that has built the network: loading the index, encoding, searching.
3. **Accuracy.** An index of the even-numbered images of each class in examples/images (a real encode
   with the bundled ImageNet weights, at 224 and at 100 px), queried with the odd-numbered ones: top-1
   label accuracy of the predicted label with --k 1 and --k 5.

    python -m benchmarks.similar [--repeats 3] [--skip-faiss] [--parts search accuracy latency]

Prints tables and writes JSON to benchmarks/results/similar.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "images"  # the latency's queries
WEIGHTS = ROOT / "examples" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
SEARCH_SIZES = {256: (1_000, 10_000, 100_000, 1_000_000), 1280: (1_000, 10_000, 100_000)}
QUERY_COUNTS = (1, 100)
ACCURACY_SIZES = (224, 100)  # the default --image-size of mobilenet (its weights' own), and Fruits-360's
HNSW_SIZES = (100_000,)  # faiss's graph index (approximate); its build takes minutes at 1,000,000 here
CLUSTERS = 1_000  # the synthetic vectors lie around this many centres, as image features lie around classes
INDEX_SIZES = (10_000, 100_000)
K = 5


def best_of(repeats: int, action) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def search(repeats: int, skip_faiss: bool) -> list[dict]:
    from sparkyfruit.similar import NearestRows

    generator = np.random.default_rng(0)
    rows = []
    for dim, sizes in SEARCH_SIZES.items():
        for n in sizes:
            rows += _search_size(NearestRows(clustered(generator, n, dim)), repeats, skip_faiss)
    return rows


def clustered(generator, n: int, dim: int) -> np.ndarray:
    """n vectors around CLUSTERS random centres (exact search's time does not depend on the data; an
    approximate index's recall does, and uniform noise in 256-d is its worst case, unlike image features)."""
    centres = generator.standard_normal((CLUSTERS, dim), dtype=np.float32)
    return centres[generator.integers(0, CLUSTERS, n)] + 0.5 * generator.standard_normal((n, dim), dtype=np.float32)


def _search_size(nearest, repeats: int, skip_faiss: bool) -> list[dict]:
    """Every query count against one index: NumPy, and faiss's indexes built once for them."""
    generator = np.random.default_rng(len(nearest.unit))
    flat = hnsw = None
    built_ms = {}
    if not skip_faiss:
        import faiss

        built_ms["flat"] = 1e3 * best_of(repeats, lambda: _flat_index(faiss, nearest.unit))
        flat = _flat_index(faiss, nearest.unit)
        if len(nearest.unit) in HNSW_SIZES and nearest.unit.shape[1] == 256:
            started = time.perf_counter()
            hnsw = _hnsw_index(faiss, nearest.unit)
            built_ms["hnsw"] = 1e3 * (time.perf_counter() - started)
    rows = []
    for q in QUERY_COUNTS:
        rows.append(_search_row(nearest, flat, hnsw, built_ms, q, repeats, generator))
        print(rows[-1], flush=True)
    return rows


def _search_row(nearest, flat, hnsw, built_ms, q, repeats, generator) -> dict:
    picked = nearest.unit[generator.integers(0, len(nearest.unit), q)]  # new points near the index's own
    queries = _unit(picked + 0.05 * generator.standard_normal(picked.shape, dtype=np.float32))
    row = {"dim": nearest.unit.shape[1], "rows": len(nearest.unit), "queries": q}
    row["numpy_ms"] = 1e3 * best_of(repeats, lambda: nearest.search(queries, K))
    exact = nearest.search(queries, K)[1]
    if flat is not None:
        row["faiss_flat_build_ms"] = built_ms["flat"]
        row["faiss_flat_search_ms"] = 1e3 * best_of(repeats, lambda: flat.search(queries, K))
        row["faiss_flat_same_rows"] = bool(np.array_equal(np.sort(flat.search(queries, K)[1]), np.sort(exact)))
    if hnsw is not None:
        row["faiss_hnsw_build_ms"] = built_ms["hnsw"]
        row["faiss_hnsw_search_ms"] = 1e3 * best_of(repeats, lambda: hnsw.search(queries, K))
        found = hnsw.search(queries, K)[1]
        row["faiss_hnsw_recall"] = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, exact)]))
    return row


def _flat_index(faiss, unit):
    index = faiss.IndexFlatIP(unit.shape[1])
    index.add(unit)
    return index


def _hnsw_index(faiss, unit):
    index = faiss.IndexHNSWFlat(unit.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = 64
    index.add(unit)
    return index


def _unit(matrix):
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def encode_sample(folder: Path, output: Path, image_size: int) -> None:
    from sparkyfruit.config import RunConfig
    from sparkyfruit.pipeline import encode

    encode(
        RunConfig(
            mode="keys",
            input=str(folder),
            output=str(output),
            model="mobilenet",
            alpha=0.25,
            weights=str(WEIGHTS),
            image_size=image_size,
            overwrite=True,
            quiet=True,
        )
    )


def accuracy(work: Path) -> tuple[list[dict], Path]:
    """The even/odd split at the network's own size (224, the default) and at the images' (100). Returns the
    rows and the 224 px index."""
    from devtools.sample_split import split_even_odd
    from sparkyfruit import locations, output_format
    from sparkyfruit.s3_settings import S3Settings
    from sparkyfruit.similar import encoder_for_manifest, similar

    even, found = split_even_odd(work)
    odd = [str(image) for image in found]
    rows = []
    for size in ACCURACY_SIZES:
        index = work / f"even-index-{size}"
        encode_sample(even, index, size)
        manifest = output_format.finished_output(locations.parse_location(str(index)), S3Settings()).manifest
        encoder = encoder_for_manifest(manifest, S3Settings())
        row = {"image_size": size, "index_rows": manifest.counts.ok, "queries": len(odd)}
        for k in (1, 5):
            answers = similar(odd, str(index), S3Settings(), k=k, encoder=encoder).answers
            hits = sum(answer.label == Path(answer.query).parent.name for answer in answers)
            row[f"accuracy_k{k}"] = hits / len(answers)
        rows.append(row)
    return rows, work / f"even-index-{ACCURACY_SIZES[0]}"


def synthetic_index(source: Path, rows: int, target: Path) -> Path:
    """An encode output of `rows` rows: the source output's vectors, repeated with noise, and its manifest
    with the new counts."""
    import dataclasses

    import pyarrow as pa
    import pyarrow.parquet as pq

    from sparkyfruit import locations, output_format
    from sparkyfruit.s3_settings import S3Settings

    loaded = output_format.load_vectors(output_format.finished_output(str(source), S3Settings()))
    generator = np.random.default_rng(1)
    picks = generator.integers(0, len(loaded.paths), rows)
    vectors = loaded.vectors[picks] + generator.normal(0, 0.05, (rows, loaded.vectors.shape[1])).astype(np.float32)
    target.mkdir(parents=True)
    table = pa.table(
        {
            "path": [f"file:///synthetic/{loaded.labels[p]}/{i}.jpg" for i, p in enumerate(picks)],
            "label": [loaded.labels[p] for p in picks],
            "features": pa.ListArray.from_arrays(
                pa.array(np.arange(rows + 1, dtype=np.int32) * vectors.shape[1]),
                pa.array(np.maximum(vectors, 0).reshape(-1)),
            ),
            "error": pa.nulls(rows, pa.string()),
        }
    )
    pq.write_table(table, target / "part-00000-synthetic.parquet")
    manifest = output_format.finished_output(locations.parse_location(str(source)), S3Settings()).manifest
    manifest = dataclasses.replace(manifest, output=f"file://{target}", counts=output_format.Counts(rows, rows, 0))
    output_format.write_manifest(locations.parse_location(str(target)), manifest, S3Settings())
    return target


def latency(work: Path, source: Path, repeats: int) -> list[dict]:
    from sparkyfruit import locations, output_format
    from sparkyfruit.s3_settings import S3Settings
    from sparkyfruit.similar import encoder_for_manifest, similar

    queries = sorted(str(image) for image in SAMPLE.glob("*/*.jpg"))[:100]
    sparkyfruit = str(Path(sys.executable).with_name("sparkyfruit"))
    rows = []
    for size in INDEX_SIZES:
        index = synthetic_index(source, size, work / f"index-{size}")
        manifest = output_format.finished_output(locations.parse_location(str(index)), S3Settings()).manifest
        encoder = encoder_for_manifest(manifest, S3Settings())
        similar(queries[:1], str(index), S3Settings(), k=K, encoder=encoder)  # the network's first trace
        for count in QUERY_COUNTS:
            command = [sparkyfruit, "similar", *queries[:count], "--index", str(index), "--json"]
            cli = best_of(repeats, lambda command=command: subprocess.run(command, check=True, capture_output=True))
            parts = []
            for _ in range(repeats):
                parts.append(similar(queries[:count], str(index), S3Settings(), k=K, encoder=encoder).seconds)
            fastest = min(parts, key=lambda seconds: sum(seconds.values()))
            row = {"index_rows": size, "queries": count, "command_s": cli, **{f"{k}_s": v for k, v in fastest.items()}}
            rows.append(row)
            print(row, flush=True)
    return rows


PARTS = ("search", "accuracy", "latency")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-faiss", action="store_true")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="what to measure")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = Path(tempfile.mkdtemp(prefix="sparkyfruit-similar-bench-"))
    results: dict = {"cores": os.cpu_count()}
    try:
        if "search" in args.parts:
            results["search"] = search(args.repeats, args.skip_faiss)
        if "accuracy" in args.parts or "latency" in args.parts:
            results["accuracy"], index = accuracy(work)
        if "latency" in args.parts:
            results["latency"] = latency(work, index, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    nan = float("nan")
    if "search" in results:
        print(f"\nsearch, top-{K} (ms, best of {args.repeats}); faiss flat is exact, HNSW approximate (recall@{K})")
        print(
            f"{'dim':>5} {'rows':>9} {'queries':>7} {'numpy':>9} {'flat build':>10} {'flat search':>11} "
            f"{'hnsw build':>10} {'hnsw search':>11} {'recall':>6}"
        )
        for row in results["search"]:
            print(
                f"{row['dim']:>5} {row['rows']:>9,} {row['queries']:>7} {row['numpy_ms']:>9.2f} "
                f"{row.get('faiss_flat_build_ms', nan):>10.2f} {row.get('faiss_flat_search_ms', nan):>11.2f} "
                f"{row.get('faiss_hnsw_build_ms', nan):>10.0f} {row.get('faiss_hnsw_search_ms', nan):>11.2f} "
                f"{row.get('faiss_hnsw_recall', nan):>6.3f}"
            )
    if "accuracy" in results:
        print("\naccuracy on the sample: the even-numbered images index, the odd-numbered ones query")
        for row in results["accuracy"]:
            print(
                f"  {row['image_size']} px, {row['index_rows']} rows, {row['queries']} queries: "
                f"--k 1 {row['accuracy_k1']:.3f}, --k 5 {row['accuracy_k5']:.3f}"
            )
    if "latency" in results:
        print(
            "\nlatency (s): the whole command (a fresh process: imports, network, index, queries), and in one "
            "process whose network is built: load (the index's vectors), encode, search"
        )
        print(f"{'index rows':>10} {'queries':>7} {'command':>8} {'load':>7} {'encode':>7} {'search':>7}")
        for row in results["latency"]:
            print(
                f"{row['index_rows']:>10,} {row['queries']:>7} {row['command_s']:>8.2f} {row['load_s']:>7.3f} "
                f"{row['encode_s']:>7.3f} {row['search_s']:>7.4f}"
            )
    results_folder = ROOT / "benchmarks" / "results"
    results_folder.mkdir(exist_ok=True)
    (results_folder / "similar.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
