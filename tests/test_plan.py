"""`sparkyfruit plan`: the encode's listing, a calibration on a sample of its images, and the arithmetic of
shards, requests, prices, output size and time. How close its time comes to real runs is measured by
`python -m benchmarks.plan_accuracy` (docs/performance.md), not asserted here."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from sparkyfruit import plan
from sparkyfruit.config import RunConfig
from sparkyfruit.errors import ConfigError
from sparkyfruit.shards import Sizing
from tests.helpers import REAL_MODEL, SAMPLE, cli


def calibration(**changes) -> plan.Calibration:
    """One core's costs per image, as a calibration would measure them (4 ms an image in all, from a folder)."""
    values = dict(
        images=96,
        read_seconds=0.0005,
        read_cpu_seconds=0.0002,
        decode_seconds=0.001,
        network_seconds=0.0025,
        load_seconds=0.5,
        row_bytes=1100.0,
        listing_bytes=200.0,
        engine="litert 2.3.0",
        server_shares_cores=False,
    )
    return plan.Calibration(**{**values, **changes})


def listing(count: int, prefixes: int = 4, bucket: str | None = None) -> list[tuple[str, int, str | None]]:
    root = f"s3://{bucket}/Training" if bucket else "file:///data/Training"
    return [(f"{root}/label{index % prefixes}/{index}.jpg", 5000, None) for index in range(count)]


def config(source: str = str(SAMPLE), **settings) -> RunConfig:
    return RunConfig(input=source, output="/tmp/never-written", mode=settings.pop("mode", "keys"), **settings)


def predicted(images, calibrated, cores=None, target=None, **settings) -> plan.Plan:
    return plan.predict(
        config(**settings),
        images,
        calibrated,
        here_cores=2,
        cores=cores,
        target_seconds=target,
        prices=plan.Prices(),
        listing_seconds=1.0,
    )


def test_the_time_is_fixed_costs_plus_the_images_over_the_cores_plus_the_shards():
    result = predicted(listing(20_000), calibration(), cores=64)
    slot = 0.0005 + 0.001 + 0.0025 + plan.IMAGE_OVERHEAD_SECONDS["keys"]
    here = result.here
    assert here.fixed_seconds == pytest.approx(plan.FIXED_SECONDS["keys"] + 1.0 + 0.5)
    assert here.images_seconds == pytest.approx(20_000 * slot / (2 * plan.CORE_EFFICIENCY))
    assert here.seconds == pytest.approx(here.fixed_seconds + here.images_seconds + here.shards_seconds)
    # the shards are cut as encode's Sizing cuts them, fed the rate it would observe
    sizing, sizes = Sizing(None, 2, 1024), []
    while sum(sizes) < 20_000:
        sizes.append(min(20_000 - sum(sizes), sizing.shard_images()))
        sizing.observe(sizes[-1], sizes[-1] * slot)
    assert result.shards == len(sizes) and here.shards_seconds == pytest.approx(len(sizes) * 0.36)
    assert result.there.cores == 64 and result.there.seconds < here.seconds
    assert result.output_bytes == 20_000 * 1100 and result.driver_listing_bytes == 20_000 * 200
    assert result.bytes == 20_000 * 5000 and result.prefixes == 4 and not result.warnings


def test_s3_requests_their_price_and_the_request_rate_per_prefix():
    images = listing(4_000, prefixes=1, bucket="fruit")
    result = predicted(images, calibration(), source="s3://fruit/Training", cores=4_096)
    assert (result.list_requests, result.get_requests) == (4, 4_000)
    assert result.request_cost_usd == pytest.approx(4_000 / 1000 * 0.0004 + 4 / 1000 * 0.005)
    # on 4,096 cores one prefix's 5,500 GET/s, not the cores, sets the speed: said, and in the time
    assert result.there.request_limited and not result.here.request_limited
    assert result.there.images_seconds == pytest.approx(4_000 / 5_500)
    assert any("S3's request rate" in warning and "1 prefixes" in warning for warning in result.warnings)
    # an S3 server on this machine answers one request at a time: where it is slower than the cores, it sets
    # the images' time, and the plan says so; another machine's S3 costs only the client's CPU
    assert calibration().server_seconds("keys", True) == 0.0
    local = calibration(server_shares_cores=True, read_seconds=0.009, server_read_seconds=0.005)
    assert local.server_seconds("keys", True) == pytest.approx(0.005)
    assert local.server_seconds("df", True) == pytest.approx(0.005 * plan.LOCAL_SERVER_READS_PER_IMAGE["df"])
    served = predicted(images, local, source="s3://fruit/Training", s3_endpoint="http://127.0.0.1:9000")
    assert served.here.images_seconds == pytest.approx(4_000 * 0.005)
    assert any("runs on this machine and answers one request at a time" in warning for warning in served.warnings)


def test_the_cores_for_a_target_time_and_a_target_no_cores_reach():
    result = predicted(listing(100_000), calibration(), target=120)
    fewest = result.cores_for_target
    assert fewest is not None
    at = predicted(listing(100_000), calibration(), cores=fewest)
    below = predicted(listing(100_000), calibration(), cores=fewest - 1)
    assert at.there.seconds <= 120 < below.there.seconds
    hopeless = predicted(listing(100_000), calibration(), target=5)  # less than the fixed costs
    assert hopeless.cores_for_target is None and "No number of cores reaches 5 s" in hopeless.warnings[0]


@pytest.mark.parametrize(
    ("master", "cores"), [("local[*]", None), ("local[3]", 3), ("local[3,2]", 3), ("local", 1), ("yarn", None)]
)
def test_the_cores_of_a_master(master, cores, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 7)
    assert plan.local_cores(master) == (7 if master == "local[*]" else cores)


def test_durations_and_bad_plan_arguments():
    assert [plan.parse_duration(text) for text in ("90s", "15m", "1.5h", "42")] == [90, 900, 5400, 42]
    with pytest.raises(ConfigError, match="--in must be a duration such as 90s, 15m or 1h; got 'soon'"):
        plan.parse_duration("soon")
    result = cli("plan", "--input", SAMPLE, "--master", "yarn", *REAL_MODEL)
    assert result.exit_code == 2 and "Give --cores N" in result.output, result.output
    result = cli("plan", "--input", SAMPLE, "--bogus", "1")
    assert result.exit_code == 2, result.output
    assert "plan takes encode's flags; No such option: --bogus" in result.output


@pytest.mark.slow
def test_plan_of_the_sample_measures_it_writes_nothing_and_starts_no_spark(monkeypatch):
    """The real command: encode's listing of the sample, a calibration with the bundled network, a JSON plan;
    no output is made and Spark never starts."""
    monkeypatch.setattr("sparkyfruit.spark.session.start_session", lambda *a, **k: pytest.fail("Spark started"))
    args = ["plan", "--input", SAMPLE, "--mode", "keys", "--image-size", "100", *REAL_MODEL]
    result = cli(*args, "--cores", "64", "--in", "1m", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    sizes = sum(path.stat().st_size for path in SAMPLE.rglob("*.jpg"))
    assert (found["images"], found["bytes"], found["prefixes"], found["get_requests"]) == (192, sizes, 8, 0)
    calibrated = found["calibration"]
    assert calibrated["images"] == 96 and calibrated["network_seconds"] > 0 and calibrated["decode_seconds"] > 0
    assert 200 < calibrated["row_bytes"] < 256 * 4 * 2  # 256 float32s a row (snappy takes ReLU's zeros)
    assert calibrated["server_read_seconds"] == 0.0  # files: no server to time
    assert found["engine"].startswith("litert") and found["there"]["cores"] == 64
    assert found["here"]["seconds"] > found["here"]["fixed_seconds"] > 0
    assert found["cores_for_target"] == 1  # the sample takes seconds on one core
    table = cli(*args)
    assert table.exit_code == 0 and "time here (2 cores)" in table.stdout and "192 (" in table.stdout
    assert not (Path(tempfile.gettempdir()) / plan.NEVER_WRITTEN_OUTPUT).exists()  # the encode's --output


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.s3
def test_a_plan_from_s3_counts_requests_and_the_encode_after_it_shows_the_prediction(spark, fruit_bucket, s3, tmp_path):
    settings = ["--input", fruit_bucket, "--mode", "keys", "--limit", "48", "--s3-endpoint", s3.endpoint, *REAL_MODEL]
    planned = cli("plan", *settings, "--json")
    assert planned.exit_code == 0, planned.output
    found = json.loads(planned.stdout)
    assert (found["images"], found["list_requests"], found["get_requests"]) == (48, 1, 48)
    assert found["request_cost_usd"] == pytest.approx(48 / 1000 * 0.0004 + 1 / 1000 * 0.005)
    assert found["calibration"]["server_shares_cores"] is True  # the local server: its time is the run's CPU
    # timed while kept busy, for seconds: a GET costs the server less than one read's wall time, never nothing
    assert 0 < found["calibration"]["server_read_seconds"] < found["calibration"]["read_seconds"] * 1.5
    encoded = cli("encode", *settings, "--output", tmp_path / "o", "--master", "local[2]")
    assert encoded.exit_code == 0, encoded.output
    assert "done: 48 images" in encoded.stdout and "(plan predicted " in encoded.stdout, encoded.stdout
    # the output's size, predicted from the sample's rows written as the tasks write them
    written = sum(path.stat().st_size for path in (tmp_path / "o").glob("*.parquet"))
    assert 0.5 < found["output_bytes"] / written < 1.5, (found["output_bytes"], written)
