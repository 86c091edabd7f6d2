"""Each shard is one Delta commit of exactly the files its tasks wrote: an S3 output works with the default
settings on every supported pyspark (no Hadoop committer is involved), its log names every data file in the
prefix and nothing else, and a plain Parquet reader of the prefix sees the table's rows."""

from __future__ import annotations

import json
import shutil

import pyarrow.dataset as ds
import pytest

import sparkyfruit
from devtools import local_s3
from sparkyfruit import delta, locations, output_format, storage
from tests.helpers import SAMPLE, run_config

pytestmark = [pytest.mark.s3, pytest.mark.spark, pytest.mark.slow]
CLASSES = sorted(p.name for p in SAMPLE.iterdir() if p.is_dir())[:2]


def data_keys(client, bucket: str, prefix: str) -> set[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])
    return {entry["Key"].removeprefix(f"{prefix}/") for entry in listed if entry["Key"].endswith(".parquet")}


@pytest.mark.parametrize("mode", ["df", "keys"])
def test_an_s3_output_is_a_delta_table_of_exactly_the_reported_files_also_on_resume(spark, s3, tmp_path, mode):
    client = local_s3.client(s3.endpoint)
    client.create_bucket(Bucket="features")
    images = tmp_path / "images"
    shutil.copytree(SAMPLE / CLASSES[0], images / CLASSES[0])
    settings = dict(mode=mode, input=str(images), output="s3://features/run", s3_endpoint=s3.endpoint)
    config = run_config(**settings)
    location = locations.parse_location("s3://features/run")

    first = sparkyfruit.encode(config)
    assert first.rows == 24
    first_files = data_keys(client, "features", "run")
    assert first_files and set(delta.read_table(location, config).files) == first_files

    shutil.copytree(SAMPLE / CLASSES[1], images / CLASSES[1])
    resumed = sparkyfruit.encode(run_config(**settings, resume=True))
    assert (resumed.added, resumed.rows, resumed.failed) == (24, 48, 0)
    files = data_keys(client, "features", "run")
    assert files > first_files and set(delta.read_table(location, config).files) == files
    # one commit per shard, each naming its run, shard and counts; two runs, two run ids
    shards = delta.read_table(location, config).shards
    assert sum(shard.images for shard in shards) == 48 and sum(shard.rows for shard in shards) == 48
    assert len({shard.run for shard in shards}) == 2 and len({shard.number for shard in shards}) == len(shards)
    log = [
        json.loads(line)
        for entry in client.list_objects_v2(Bucket="features", Prefix="run/_delta_log/")["Contents"]
        if entry["Key"].endswith(".json")
        for line in client.get_object(Bucket="features", Key=entry["Key"])["Body"].read().splitlines()
    ]
    infos = [action["commitInfo"] for action in log if "commitInfo" in action]
    assert all(info["sparkyfruit"]["version"] == sparkyfruit.__version__ for info in infos), infos
    # no committer's staging area or marker, and a plain reader of the prefix sees exactly the table's rows
    everything = [entry["Key"] for entry in client.list_objects_v2(Bucket="features", Prefix="run/")["Contents"]]
    assert not [key for key in everything if "__magic" in key or "_temporary" in key or "_SUCCESS" in key]
    filesystem, path = storage.pyarrow_filesystem(location, config)
    plain = ds.dataset(path, filesystem=filesystem, format="parquet").to_table(columns=["path"])
    table = output_format.open_dataset(location, config).to_table(columns=["path"])
    assert sorted(plain.column("path").to_pylist()) == sorted(table.column("path").to_pylist())
    assert len(set(table.column("path").to_pylist())) == 48
    summary = sparkyfruit.inspect("s3://features/run", s3=config.s3_only())
    assert (summary.rows, summary.ok) == (48, 48)
    assert summary.labels == {CLASSES[0]: 24, CLASSES[1]: 24}
    assert summary.table == f"Delta Lake, version {len(infos) - 1}, {len(files)} files"
