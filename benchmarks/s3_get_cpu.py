"""Client CPU per S3 GET of a small object: the candidates for keys mode's reads, side by side in one run.

Each client runs in a fresh process and GETs the same --n objects (5 KB JPEGs, the benchmark images) from
the local S3 server with --concurrency requests in flight; the figure is that process's own CPU time
(user + system, all threads, Rust's included) over the GETs alone, after a warm-up, divided by --n. The S3
server's CPU is reported beside it: it runs on the same cores.

    python -m benchmarks.s3_get_cpu [--n 1000] [--concurrency 16] [--repeats 3]

Prints a table and writes JSON to benchmarks/results/s3_get_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "getcpu"
WARM_UP = 50

# name -> what it is, as printed in the table
CLIENTS = {
    "s3transfer": "s3transfer TransferManager (keys mode through 0.1)",
    "boto3-threads": "boto3 get_object in a thread pool",
    "pyarrow": "pyarrow.fs.S3FileSystem in a thread pool",
    "obstore-async": "obstore get_async, one event loop",
    "obstore-keys": "keys mode's reader: obstore (sparkyfruit/s3_reads.py)",
}


def objects(endpoint: str) -> list[tuple[str, int, str]]:
    from devtools import local_s3

    client = local_s3.client(endpoint)
    listed = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        listed += [(item["Key"], item["Size"], item["ETag"]) for item in page.get("Contents", [])]
    return sorted(listed)


def cpu() -> float:
    times = os.times()
    return times.user + times.system


def run_client(name: str, endpoint: str, concurrency: int, n: int) -> dict:
    """In the child process: warm up, then GET every object once; CPU and wall of the GETs alone."""
    from sparkyfruit.s3_settings import S3Settings

    listed = objects(endpoint)[: WARM_UP + n]
    warm, measured = listed[:WARM_UP], listed[WARM_UP:]
    settings = S3Settings(s3_endpoint=endpoint, fetch_concurrency=concurrency)
    get_all = _client(name, settings, concurrency)
    get_all(warm)
    started_cpu, started = cpu(), time.perf_counter()
    sizes = get_all(measured)
    wall, spent = time.perf_counter() - started, cpu() - started_cpu
    assert len(sizes) == len(measured) and all(size == item[1] for size, item in zip(sizes, measured)), name
    return {"client": name, "gets": len(measured), "cpu_ms_per_get": 1000 * spent / len(measured), "wall_s": wall}


def _client(name: str, settings, concurrency: int):
    """A function that GETs a list of (key, size, etag) and returns the byte counts, for one client."""
    from sparkyfruit import storage

    if name == "s3transfer":
        import io

        from s3transfer.manager import TransferConfig, TransferManager
        from s3transfer.subscribers import BaseSubscriber

        class Listed(BaseSubscriber):  # size and ETag from the listing: no HEAD before each GET
            def __init__(self, size, etag):
                self.size, self.etag = size, etag

            def on_queued(self, future, **kwargs):
                future.meta.provide_transfer_size(self.size)
                future.meta.provide_object_etag(self.etag)

        manager = TransferManager(
            storage.s3_client(settings),
            TransferConfig(max_request_concurrency=concurrency, num_download_attempts=settings.s3_max_attempts),
        )

        def get_all(items):
            buffers = [io.BytesIO() for _ in items]
            futures = [
                manager.download(BUCKET, key, buffer, subscribers=[Listed(size, etag)])
                for (key, size, etag), buffer in zip(items, buffers)
            ]
            for future in futures:
                future.result()
            return [len(buffer.getvalue()) for buffer in buffers]

        return get_all
    if name == "boto3-threads":
        client = storage.s3_client(settings)
        pool = ThreadPoolExecutor(concurrency)
        return lambda items: list(
            pool.map(lambda item: len(client.get_object(Bucket=BUCKET, Key=item[0])["Body"].read()), items)
        )
    if name == "pyarrow":
        from pyarrow import fs

        s3 = fs.S3FileSystem(
            endpoint_override=settings.s3_endpoint, scheme="http", region="us-east-1", allow_bucket_creation=False
        )
        pool = ThreadPoolExecutor(concurrency)

        def read(item):
            with s3.open_input_stream(f"{BUCKET}/{item[0]}") as stream:  # a stream needs no size: no HEAD
                return len(stream.read())

        return lambda items: list(pool.map(read, items))
    if name == "obstore-async":
        import asyncio

        import obstore
        from obstore.store import S3Store

        store = S3Store(
            BUCKET,
            endpoint=settings.s3_endpoint,
            region="us-east-1",
            client_options={"allow_http": True},
            virtual_hosted_style_request=False,
        )

        async def get_all_async(items):
            limit = asyncio.Semaphore(concurrency)

            async def one(key):
                async with limit:
                    result = await obstore.get_async(store, key)
                    return len(await result.bytes_async())

            return await asyncio.gather(*(one(key) for key, _, _ in items))

        return lambda items: asyncio.run(get_all_async(items))
    if name == "obstore-keys":
        from sparkyfruit.s3_reads import object_reader

        reader = object_reader(settings)

        def get_all(items):
            futures = []
            for start in range(0, len(items), 64):  # as keys mode: one hand-over per batch of 64
                futures += reader.get_many([(BUCKET, key, etag) for key, _, etag in items[start : start + 64]])
            return [len(future.result()) for future in futures]

        return get_all
    raise SystemExit(f"unknown client {name!r}; choose from {', '.join(CLIENTS)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="runs per client; the least CPU counts")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "s3_get_cpu.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_client(args.child, args.endpoint, args.concurrency, args.n)))
        return

    import psutil
    from rich.console import Console
    from rich.table import Table

    from benchmarks.data import make_images
    from benchmarks.featurize import machine, upload
    from devtools import local_s3

    os.environ.update(local_s3.FAKE_CREDENTIALS)  # the local server only: never real AWS
    work = Path(tempfile.mkdtemp(prefix="sparkyfruit-getcpu-"))
    make_images(args.n + WARM_UP, work / "images")
    server = local_s3.start(log_path=work / "s3.log")
    results = []
    try:
        local_s3.client(server.endpoint).create_bucket(Bucket=BUCKET)
        upload(server.endpoint, BUCKET, "images", work / "images")
        server_process = psutil.Process(server.pid)
        for name in args.clients.split(","):
            runs = []
            for _ in range(args.repeats):
                before = sum(server_process.cpu_times()[:2])
                child = subprocess.run(
                    [sys.executable, "-m", "benchmarks.s3_get_cpu", "--child", name, "--endpoint", server.endpoint]
                    + ["--n", str(args.n), "--concurrency", str(args.concurrency)],
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                )
                if child.returncode != 0:
                    raise RuntimeError(f"{name} failed:\n{child.stderr[-3000:]}")
                run = json.loads(child.stdout.strip().splitlines()[-1])
                run["s3_server_cpu_ms_per_get"] = (
                    1000 * (sum(server_process.cpu_times()[:2]) - before) / (args.n + WARM_UP)
                )
                runs.append(run)
            best = dict(min(runs, key=lambda run: run["cpu_ms_per_get"]))
            best["cpu_ms_per_get_runs"] = [round(run["cpu_ms_per_get"], 3) for run in runs]
            results.append(best)
            print(f"{name}: {best['cpu_ms_per_get']:.2f} ms CPU per GET ({best['cpu_ms_per_get_runs']})", flush=True)
    finally:
        server.stop()
    report = {
        "machine": machine(),
        "n": args.n,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "results": results,
        "command": " ".join(["python -m benchmarks.s3_get_cpu", *sys.argv[1:]]),
    }
    table = Table(
        title=f"client CPU per GET: {args.n} GETs of a 5 KB object, {args.concurrency} in flight, local S3 server "
        f"(the least of {args.repeats} runs)"
    )
    for column in ("client", "what", "client CPU ms/GET", "GETs/s (wall)", "S3 server CPU ms/GET"):
        table.add_column(column, justify="left" if column in ("client", "what") else "right")
    for result in results:
        table.add_row(
            result["client"],
            CLIENTS[result["client"]],
            f"{result['cpu_ms_per_get']:.2f}",
            f"{result['gets'] / result['wall_s']:.0f}",
            f"{result['s3_server_cpu_ms_per_get']:.2f}",
        )
    Console(width=150).print(table)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(f"JSON: {args.output}")


if __name__ == "__main__":
    main()
