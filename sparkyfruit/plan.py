"""`sparkyfruit plan`: what an encode would take, predicted before it runs: its images and bytes, shards and
tasks, S3 requests and their price, the output's size, the driver's memory for the listing, and the wall
time here and on N cores. It writes nothing and starts no Spark.

How (docs/performance.md, "How plan predicts", has the constants and where they come from):
- The input is listed by encode's own listing (sources.keys.list_keys): the same images, sizes and keys.
- A sample of those images, spread over the listing, is read, decoded and encoded in this process by the
  network and engine that encode would use, on one thread, as one task slot (a core) runs them: seconds per
  image for each step, after a warm-up batch. The reads are timed one at a time; where the S3 server shares
  this machine's cores (an endpoint on 127.0.0.1), its time is CPU the run pays too.
- A run's wall time is its fixed cost (start-up, the network's load, the manifest) plus the listing, plus the
  images' slot seconds over the cores, plus a fixed cost per shard, with the shards cut as encode cuts them
  (shards.Sizing). The images' part cannot go faster than S3's request rate per prefix allows.
- The fixed costs (start-up, manifest, a shard's job and commit) and the cost of the cores working together
  are constants measured on this machine by `python -m benchmarks.plan_accuracy`.
- The calibration is kept in the cache, so that the encode it predicts prints the prediction beside its
  real time.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sparkyfruit import locations, models, shards
from sparkyfruit.config import RunConfig
from sparkyfruit.errors import ConfigError

# S3 Standard's list prices in us-east-1 (aws.amazon.com/s3/pricing, requests and data retrievals), USD per
# 1,000 requests: GET (and HEAD), and LIST (priced with PUT, COPY and POST). --get-price/--list-price override.
GET_PRICE_PER_1000 = 0.0004
LIST_PRICE_PER_1000 = 0.005
# ListObjectsV2 returns up to this many keys per request
KEYS_PER_LIST_PAGE = 1000
# S3 serves at least this many GET/HEAD requests per second per partitioned prefix (AWS's documented rate)
GETS_PER_SECOND_PER_PREFIX = 5500
# the calibration: this many images at most, and at least this many seconds of the network's work
SAMPLE_IMAGES = 96
WARM_UP_BATCHES = 1
# An S3 server on this machine is timed while kept busy, as a run keeps it: reads of the sample, this many in
# flight at once, for this long (a server's pace drifts over seconds, so one pass over the sample is too short)
SERVER_SAMPLE_SECONDS = 2.5
SERVER_SAMPLE_IN_FLIGHT = 4

# Fitted on this 2-core machine to real runs (docs/performance.md, "How plan predicts"; refit them with
# `python -m benchmarks.plan_accuracy --n 2000 20000`). The fixed seconds of a local run besides its listing,
# the network's load and its shards (the process, the JVM and the session, the first task, the manifest):
FIXED_SECONDS = {"df": 10.5, "keys": 9.0}
# df mode from S3 also starts S3A (its jars, its file system) and Spark lists the input through it
S3A_FIXED_SECONDS = 4.0
# a shard's own cost (its Spark job, commit and record), per mode (docs/reliability.md: 0.36 and 0.45 s)
SHARD_SECONDS = {"df": 0.45, "keys": 0.36}
# what one image costs a run beyond its read, decode and network, per mode: the JVM's hand-off of its bytes to
# Python (df), the Arrow batches, the Parquet writing; seconds of one core
IMAGE_OVERHEAD_SECONDS = {"df": 0.0006, "keys": 0.0002}
# the cores of a run do not add up to cores x one slot: the JVM and the driver take a share
CORE_EFFICIENCY = 0.95
# An S3 server on this machine (an endpoint on 127.0.0.1, such as the tests' moto) answers one request at a
# time: the images go at its pace, an image costing this many of its GETs timed while busy (df mode's S3A
# sends a HEAD and a GET per file, each heavier for the server than obstore's GET; in a run the server also
# shares the cores with the workers)
LOCAL_SERVER_READS_PER_IMAGE = {"df": 2.6, "keys": 1.0}
# A remote S3 (AWS) costs the run only its client's CPU per image: S3A's (df mode) is taken as this many
# times obstore's (keys mode), which benchmarks/s3_get_cpu.py measured; not measured for S3A here
S3A_CLIENT_CPU_FACTOR = 2.0


@dataclass(frozen=True)
class Prices:
    """USD per 1,000 requests."""

    get_per_1000: float = GET_PRICE_PER_1000
    list_per_1000: float = LIST_PRICE_PER_1000


@dataclass
class Calibration:
    """One task slot's seconds per image, measured on a sample of the input, and what a row costs."""

    images: int  # sampled, read and encoded
    read_seconds: float  # one read's wall time, one at a time
    read_cpu_seconds: float  # this process's CPU per read
    decode_seconds: float
    network_seconds: float  # one thread, batches of batch_size, after the warm-up
    load_seconds: float  # loading the network (the converted model, or TensorFlow's)
    row_bytes: float  # Parquet bytes per row, written as encode writes them
    listing_bytes: float  # the driver's memory per listed image
    engine: str
    server_shares_cores: bool  # the S3 endpoint is on this machine: its time is CPU the run pays
    server_read_seconds: float = 0.0  # such a server's seconds per GET while kept busy (0 when it is elsewhere)

    def slot_seconds(self, mode: str, from_s3: bool) -> float:
        """One core's seconds per image in a run of `mode`: its read's CPU, decode, network and overhead."""
        read = self.read_seconds
        if from_s3:
            read = self.read_cpu_seconds * (S3A_CLIENT_CPU_FACTOR if mode == "df" else 1.0)
        return read + self.decode_seconds + self.network_seconds + IMAGE_OVERHEAD_SECONDS[mode]

    def server_seconds(self, mode: str, from_s3: bool) -> float:
        """Seconds per image of an S3 server on this machine, which serves one request at a time (0 for
        another machine's, or for files)."""
        if not (from_s3 and self.server_shares_cores):
            return 0.0
        return self.server_read_seconds * LOCAL_SERVER_READS_PER_IMAGE[mode]


@dataclass
class Prediction:
    """The wall time of the run on `cores`."""

    cores: int
    seconds: float
    fixed_seconds: float  # start-up, listing, the network's load, the manifest
    images_seconds: float  # the images over the cores (or S3's request rate, where that is lower)
    shards_seconds: float
    request_limited: bool  # S3's request rate per prefix, not the cores, sets the images' speed


@dataclass
class Plan:
    """What `sparkyfruit plan` prints."""

    input: str
    mode: str
    network: str
    image_size: int
    engine: str
    images: int
    bytes: int | None  # None where the listing has no sizes (HDFS)
    prefixes: int  # the label folders (S3 partitions its request rate by prefix)
    shards: int
    tasks: int
    list_requests: int
    get_requests: int
    prices: Prices
    request_cost_usd: float
    output_bytes: int
    driver_listing_bytes: int
    here: Prediction
    there: Prediction | None  # on --cores, where given
    suggested_shard_size: int
    target_seconds: float | None = None
    cores_for_target: int | None = None
    warnings: list[str] = field(default_factory=list)
    calibration: Calibration | None = None
    planning_seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


# encode's settings need an output; a plan's is never created, listed or written
NEVER_WRITTEN_OUTPUT = "sparkyfruit-plan-writes-nothing"


def settings_of(config_file: str | Path | None, flags: dict) -> RunConfig:
    """The settings of the encode to plan: encode's `flags` ({setting: value}) over env, the --config file
    and defaults, with an output that the plan never touches. Raises ConfigError."""
    import tempfile

    output = str(Path(tempfile.gettempdir()) / NEVER_WRITTEN_OUTPUT)
    return RunConfig.load(config_file, **{**flags, "output": output})


def local_cores(master: str) -> int | None:
    """The task slots of a local master (local[*], local[N], local[N,F]); None for a cluster master."""
    if master == "local":
        return 1
    if not master.startswith("local["):
        return None
    inside = master[len("local[") : -1].split(",")[0].strip()
    return os.cpu_count() or 1 if inside == "*" else int(inside)


def plan(
    config: RunConfig,
    *,
    cores: int | None = None,
    target_seconds: float | None = None,
    prices: Prices = Prices(),
    sample_images: int = SAMPLE_IMAGES,
    announce=None,
) -> Plan:
    """Predict what `sparkyfruit encode` with `config` would take, here and on `cores`.

    Parameters
    ----------
    config: the encode's settings (its output is never touched).
    cores: the cores to predict for besides this master's (required for a cluster master).
    target_seconds: a wall time to reach: the plan says how many cores would.
    prices: S3 request prices, USD per 1,000.
    sample_images: the most images the calibration reads and encodes.
    announce: a print function, told what is being measured.

    Returns
    -------
    Plan. Raises ConfigError or StorageError, as encode would, for an input it cannot list.

    Example
    -------
    >>> result = plan(RunConfig(input="s3://b/Training", output="s3://b/out", mode="keys"), cores=64)
    >>> result.get_requests, result.there.seconds  # one GET an image; the wall time on 64 cores
    """
    from sparkyfruit.sources import keys as keys_source

    started = time.monotonic()
    here_cores = local_cores(config.master)
    if here_cores is None and cores is None:
        raise ConfigError(
            f"plan cannot ask --master {config.master} how many cores it gives without starting Spark.",
            "Give --cores N, the task slots of that cluster.",
        )
    if cores is not None and cores < 1:
        raise ConfigError(f"--cores must be at least 1; got {cores}.", "Give the cluster's task slots.")
    if announce:
        announce(f"Listing {config.input_location.uri} as encode would...")
    listed_at = time.monotonic()
    images = keys_source.list_keys(config)
    if config.input_location.is_local:  # a folder's listing has no sizes: its files' sizes, for the bytes
        images = [(uri, os.path.getsize(locations.parse_location(uri).path), etag) for uri, _, etag in images]
    listing_seconds = time.monotonic() - listed_at
    calibration = calibrate(config, images, sample_images, announce)
    result = predict(
        config,
        images,
        calibration,
        here_cores=here_cores or cores,
        cores=cores,
        target_seconds=target_seconds,
        prices=prices,
        listing_seconds=listing_seconds,
        started=started,
    )
    remember(config, result, listing_seconds)
    return result


def predict(
    config: RunConfig,
    images: list[tuple[str, int | None, str | None]],
    calibration: Calibration,
    *,
    here_cores: int,
    cores: int | None,
    target_seconds: float | None,
    prices: Prices,
    listing_seconds: float,
    started: float | None = None,
) -> Plan:
    """The plan of `images` from a calibration: arithmetic only, no I/O."""
    from_s3 = config.input_location.is_s3
    count = len(images)
    sizes = [size for _, size, _ in images]
    prefixes = len({uri.rsplit("/", 1)[0] for uri, _, _ in images}) or 1
    fixed = fixed_seconds(config) + listing_seconds + calibration.load_seconds
    slot = calibration.slot_seconds(config.mode, from_s3)
    server = calibration.server_seconds(config.mode, from_s3)
    shard_sizes = shard_plan(count, here_cores, slot, config.shard_size, config.images_per_task)
    here = _prediction(count, here_cores, slot, fixed, shard_sizes, config, prefixes, server)
    there = None
    if cores is not None:
        there_shards = shard_plan(count, cores, slot, config.shard_size, config.images_per_task)
        there = _prediction(count, cores, slot, fixed, there_shards, config, prefixes, server)
    wanted_cores = None
    warnings = []
    if server and count * server > count * slot / (here_cores * CORE_EFFICIENCY):
        warnings.append(
            f"The S3 server at {config.s3_endpoint} runs on this machine and answers one request at a time: it, "
            "not the cores, sets the speed here."
        )
    if target_seconds is not None:
        wanted_cores = cores_for(target_seconds, count, slot, fixed, config, prefixes, server)
        if wanted_cores is None:
            warnings.append(
                f"No number of cores reaches {duration_text(target_seconds)}: the fixed costs "
                f"({here.fixed_seconds:.0f} s) and S3's request rate per prefix leave too little time."
            )
    for prediction in (here, there):
        if prediction is not None and prediction.request_limited and from_s3:
            warnings.append(
                f"On {prediction.cores} cores S3's request rate ({GETS_PER_SECOND_PER_PREFIX:,} GET/s per prefix, "
                f"{prefixes} prefixes), not the cores, sets the speed."
            )
    list_requests = math.ceil(count / KEYS_PER_LIST_PAGE) if from_s3 else 0
    get_requests = count if from_s3 else 0
    return Plan(
        input=config.input_location.uri,
        mode=config.mode,
        network=config.model_label,
        image_size=config.image_size,
        engine=calibration.engine,
        images=count,
        bytes=sum(sizes) if all(size is not None for size in sizes) else None,
        prefixes=prefixes,
        shards=len(shard_sizes),
        tasks=sum(_tasks_of(size, here_cores, slot, config) for size in shard_sizes),
        list_requests=list_requests,
        get_requests=get_requests,
        prices=prices,
        request_cost_usd=get_requests / 1000 * prices.get_per_1000 + list_requests / 1000 * prices.list_per_1000,
        output_bytes=int(calibration.row_bytes * count),
        driver_listing_bytes=int(calibration.listing_bytes * count),
        here=here,
        there=there,
        suggested_shard_size=min(count, suggested_shard_size(cores or here_cores, slot)),
        target_seconds=target_seconds,
        cores_for_target=wanted_cores,
        warnings=warnings,
        calibration=calibration,
        planning_seconds=time.monotonic() - started if started is not None else 0.0,
    )


def _prediction(
    count: int,
    cores: int,
    slot: float,
    fixed: float,
    shard_sizes: list[int],
    config: RunConfig,
    prefixes: int,
    server: float = 0.0,
) -> Prediction:
    """The wall time of `count` images on `cores`: whichever is slowest of the cores, S3's request rate per
    prefix, and an S3 server on this machine (`server` seconds per image, one request at a time)."""
    by_cores = max(count * slot / (cores * CORE_EFFICIENCY), count * server)
    by_requests = count / (GETS_PER_SECOND_PER_PREFIX * prefixes) if config.input_location.is_s3 else 0.0
    shards_seconds = len(shard_sizes) * SHARD_SECONDS[config.mode]
    images_seconds = max(by_cores, by_requests)
    return Prediction(
        cores=cores,
        seconds=fixed + images_seconds + shards_seconds,
        fixed_seconds=fixed,
        images_seconds=images_seconds,
        shards_seconds=shards_seconds,
        request_limited=by_requests > by_cores,
    )


def shard_plan(count: int, cores: int, slot: float, setting: int | None, images_per_task: int) -> list[int]:
    """The shard sizes encode would cut for `count` images on `cores`, each slot encoding one image per
    `slot` seconds (shards.Sizing, fed the rate it would observe)."""
    sizing = shards.Sizing(setting, cores, images_per_task)
    sizes, left = [], count
    while left > 0:
        size = min(left, sizing.shard_images())
        sizes.append(size)
        sizing.observe(size, size * slot)
        left -= size
    return sizes


def _tasks_of(shard_images: int, cores: int, slot: float, config: RunConfig) -> int:
    per_task = shards.Sizing(config.shard_size, cores, config.images_per_task, slot_rate=1 / slot).task_images()
    return shards.task_count(shard_images, cores, per_task)


def suggested_shard_size(cores: int, slot: float) -> int:
    """About shards.SHARD_SECONDS of the cluster's work: what encode's default sizing converges to."""
    return max(1, int(cores / slot * shards.SHARD_SECONDS))


def cores_for(
    target_seconds: float, count: int, slot: float, fixed: float, config: RunConfig, prefixes: int, server: float
) -> int | None:
    """The fewest cores that finish in `target_seconds`, or None where none can."""
    for cores in _doubling(1, 1 << 16):
        shard_sizes = shard_plan(count, cores, slot, config.shard_size, config.images_per_task)
        if _prediction(count, cores, slot, fixed, shard_sizes, config, prefixes, server).seconds <= target_seconds:
            low = max(1, cores // 2)
            for fewer in range(low, cores + 1):  # the exact count, between the last two doublings
                sizes = shard_plan(count, fewer, slot, config.shard_size, config.images_per_task)
                if _prediction(count, fewer, slot, fixed, sizes, config, prefixes, server).seconds <= target_seconds:
                    return fewer
    return None


def _doubling(start: int, stop: int):
    value = start
    while value <= stop:
        yield value
        value *= 2


def calibrate(
    config: RunConfig, images: list[tuple[str, int | None, str | None]], sample_images: int, announce=None
) -> Calibration:
    """Read, decode and encode a sample of `images` in this process as one task slot would: the engine encode
    would use (converted or loaded from the cache as encode does), one thread, batches of batch_size."""
    import numpy as np

    from sparkyfruit import engines, weights
    from sparkyfruit.featurize import decode_image

    step = max(1, len(images) // sample_images)
    sample = [uri for uri, _, _ in images[::step]][:sample_images]
    staged = weights.stage_for(config, announce)
    spec = models.ModelSpec.of(config.model, str(staged.file or models.RANDOM), config.batch_size, config)
    if announce:
        announce(f"Calibrating on {len(sample)} of the images, with the network encode would run...")
    with models.native_stderr_silenced():  # LiteRT's native INFO line, which workers keep to their logs
        engine = engines.prepare(spec, staged.sha256, config.engine)
        loaded_at = time.monotonic()
        encoder = engines.load_encoder(engines.worker_spec(spec, engine), threads=1)
        load_seconds = time.monotonic() - loaded_at
    read = _image_reader(config)
    read(sample[0])  # the client's start (a connection, credentials) is not a read's cost
    contents, read_walls, read_cpus = [], [], []
    for uri in sample:
        wall, cpu = time.perf_counter(), time.process_time()
        content = read(uri)
        read_walls.append(time.perf_counter() - wall)
        read_cpus.append(time.process_time() - cpu)
        if content:
            contents.append(content)
    if not contents:
        raise ConfigError(
            f"plan could read none of the {len(sample)} sampled images of {config.input_location.uri}.",
            "Check that the images can be read with these S3 settings.",
        )
    size = config.image_size
    decode_started = time.perf_counter()
    pixels = []
    for content in contents:
        try:
            pixels.append(decode_image(content, size))
        except Exception:  # noqa: BLE001 - a bad image is a row error in encode too; it costs its decode
            continue
    decode_seconds = (time.perf_counter() - decode_started) / len(contents)
    batch = np.stack(pixels).astype(np.float32) if pixels else np.zeros((1, size, size, 3), np.float32)
    step = config.batch_size
    with models.native_stderr_silenced():  # LiteRT says on its first call that it made its XNNPACK delegate
        for _ in range(WARM_UP_BATCHES):
            encoder.encode(batch[:step].copy())
    encoded_at = time.perf_counter()
    vectors = [encoder.encode(batch[start : start + step].copy()) for start in range(0, len(batch), step)]
    network_seconds = (time.perf_counter() - encoded_at) / len(batch)
    paths = [str(uri) for uri in sample[: len(batch)]]
    server_shares_cores = config.input_location.is_s3 and _endpoint_is_here(config.s3_endpoint)
    return Calibration(
        images=len(batch),
        # the median read: a few reads that waited on something else (a server's pause) would move a mean of
        # 96 by more than the run's own reads differ
        read_seconds=statistics.median(read_walls),
        read_cpu_seconds=statistics.median(read_cpus),
        decode_seconds=decode_seconds,
        network_seconds=network_seconds,
        load_seconds=load_seconds,
        row_bytes=_parquet_row_bytes(paths, np.concatenate(vectors)),
        listing_bytes=_listing_entry_bytes(images),
        engine=engine.label,
        server_shares_cores=server_shares_cores,
        server_read_seconds=_busy_server_read_seconds(read, sample) if server_shares_cores else 0.0,
    )


def _busy_server_read_seconds(read, sample: list[str]) -> float:
    """The seconds per GET of a server kept busy: SERVER_SAMPLE_IN_FLIGHT readers go round `sample` for
    SERVER_SAMPLE_SECONDS, so the server never waits on one client's turn, as it does not in a run."""
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    deadline = started + SERVER_SAMPLE_SECONDS

    def reads_of(first: int) -> int:
        done = 0
        while time.perf_counter() < deadline:
            read(sample[(first + done * SERVER_SAMPLE_IN_FLIGHT) % len(sample)])
            done += 1
        return done

    with ThreadPoolExecutor(SERVER_SAMPLE_IN_FLIGHT) as pool:
        reads = sum(pool.map(reads_of, range(SERVER_SAMPLE_IN_FLIGHT)))
    return (time.perf_counter() - started) / max(1, reads)


def _image_reader(config: RunConfig):
    """How a task reads one image, as a function of its URI giving its bytes (None where it cannot be read):
    from S3 keys mode's reader (obstore, sparkyfruit/s3_reads.py), elsewhere the file system."""
    from sparkyfruit import storage
    from sparkyfruit.errors import StorageError

    if config.input_location.is_s3:
        from sparkyfruit.s3_reads import ObjectReadError, object_reader

        reader = object_reader(config)

        def read(uri: str) -> bytes | None:
            location = locations.parse_location(uri)
            try:
                return reader.get(location.bucket, location.key).result()
            except ObjectReadError:
                return None  # an image encode cannot read either: a row error there, no work here

        return read

    def read_file(uri: str) -> bytes | None:
        try:
            return storage.read_bytes(locations.parse_location(uri), config)
        except (OSError, StorageError):
            return None

    return read_file


def _parquet_row_bytes(paths: list[str], vectors) -> float:
    """Parquet bytes per row of these rows, written as encode's tasks write them (parquet_files)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from sparkyfruit.parquet_files import arrow_schema

    schema = arrow_schema()
    table = pa.table(
        {
            "path": paths,
            "label": [locations.label_of(path) for path in paths],
            "features": [row.tolist() for row in vectors],
            "error": [None] * len(paths),
        },
        schema=schema,
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, use_dictionary=["label", "error"], compression="snappy")
    return sink.tell() / len(paths)


def _endpoint_is_here(endpoint: str | None) -> bool:
    from urllib.parse import urlsplit

    return bool(endpoint) and urlsplit(endpoint).hostname in ("127.0.0.1", "localhost", "::1")


def _listing_entry_bytes(images: list) -> float:
    """The driver's memory per listed image: an entry's tuple, its URI, size and ETag, and the list's pointer
    to it, averaged over up to 1,000 entries (the listing itself, in Python, as encode's driver holds it)."""
    sample = images[:: max(1, len(images) // 1000)]
    return sum(sum(sys.getsizeof(part) for part in (entry, *entry)) + 8 for entry in sample) / len(sample)


# ------------------------------------------------------------------ the calibration, kept for encode


def _cache_file(config: RunConfig) -> Path:
    """Where a plan's calibration is kept: one file per encode it predicts (input, network, mode, engine,
    batch, endpoint, pattern and limit)."""
    import hashlib

    from sparkyfruit.spark.class_cache import cache_dir

    identity = [
        config.input_location.uri,
        config.mode,
        config.model_label,
        config.alpha,
        config.image_size,
        config.weights_label,
        config.engine,
        config.batch_size,
        config.s3_endpoint,
        config.pattern,
        config.limit,
    ]
    key = hashlib.sha256(json.dumps(identity, default=str).encode()).hexdigest()[:20]
    return cache_dir() / "plans" / f"{key}.json"


def remember(config: RunConfig, result: Plan, listing_seconds: float) -> None:
    """Keep the calibration of `result` for the encode it predicts (`remembered_prediction`)."""
    path = _cache_file(config)
    kept = {"calibration": asdict(result.calibration), "listing_seconds": listing_seconds, "prefixes": result.prefixes}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(kept))
        os.replace(partial, path)
    except OSError:
        pass  # a read-only home: encode then prints no prediction


def remembered_prediction(config: RunConfig, images: int, cores: int) -> float | None:
    """The wall time a plan of this very encode predicted for `images` on `cores`, from its kept
    calibration; None where no plan was made for it."""
    try:
        kept = json.loads(_cache_file(config).read_text())
        calibration = Calibration(**kept["calibration"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    from_s3 = config.input_location.is_s3
    slot = calibration.slot_seconds(config.mode, from_s3)
    sizes = shard_plan(images, cores, slot, config.shard_size, config.images_per_task)
    fixed = fixed_seconds(config) + kept["listing_seconds"] + calibration.load_seconds
    server = calibration.server_seconds(config.mode, from_s3)
    return _prediction(images, cores, slot, fixed, sizes, config, kept["prefixes"], server).seconds


def fixed_seconds(config: RunConfig) -> float:
    """A run's fixed seconds besides its listing and the network's load (which the plan measures)."""
    s3a = S3A_FIXED_SECONDS if config.mode == "df" and config.input_location.is_s3 else 0.0
    return FIXED_SECONDS[config.mode] + s3a


def duration_text(seconds: float) -> str:
    """A duration as a person reads it: 42 s, 15.0 min, 1.5 h."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def parse_duration(text: str) -> float:
    """'90s', '15m', '1h', '1.5h' or a number of seconds -> seconds. Raises ConfigError."""
    units = {"s": 1, "m": 60, "min": 60, "h": 3600}
    stripped = text.strip().lower()
    for unit in sorted(units, key=len, reverse=True):
        if stripped.endswith(unit):
            number, scale = stripped[: -len(unit)], units[unit]
            break
    else:
        number, scale = stripped, 1
    try:
        value = float(number) * scale
    except ValueError:
        value = -1
    if value <= 0:
        raise ConfigError(f"--in must be a duration such as 90s, 15m or 1h; got {text!r}.", "For example --in 1h.")
    return value
