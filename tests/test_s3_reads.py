"""keys mode's reader (sparkyfruit/s3_reads.py) against the local S3 server, without Spark: whole objects,
object_store's own retries through the fault proxy, and one short reason for each way a GET can fail."""

from __future__ import annotations

import os

import pytest

from devtools import local_s3
from devtools.fault_proxy import FaultProxy
from sparkyfruit.s3_reads import ObjectReadError, object_reader
from sparkyfruit.s3_settings import S3Settings

pytestmark = pytest.mark.s3


@pytest.fixture
def bucket(s3):
    client = local_s3.client(s3.endpoint)
    client.create_bucket(Bucket="reads")
    bodies = {f"k/{i}.jpg": os.urandom(5000 + i) for i in range(30)}
    for key, body in bodies.items():
        client.put_object(Bucket="reads", Key=key, Body=body)
    etags = {key: client.head_object(Bucket="reads", Key=key)["ETag"] for key in bodies}
    return client, bodies, etags


def test_every_fault_kind_is_retried_to_the_whole_object(s3, bucket):
    _, bodies, etags = bucket
    proxy = FaultProxy(int(s3.endpoint.rsplit(":", 1)[1]), fraction=0.4, seed=3).start()
    try:
        reader = object_reader(S3Settings(s3_endpoint=proxy.endpoint))
        futures = {key: reader.get("reads", key, etags[key]) for key in bodies}
        assert {key: future.result(60) for key, future in futures.items()} == bodies
    finally:
        proxy.stop()
    assert all(proxy.counts[kind] > 0 for kind in ("slowdown", "reset", "truncate")), proxy.counts
    assert proxy.counts["HEAD"] == 0, proxy.counts


def test_each_failure_is_one_short_line_that_says_why(s3, bucket):
    client, bodies, etags = bucket
    client.put_object(Bucket="reads", Key="k/0.jpg", Body=b"replaced")  # after the "listing" above
    client.delete_object(Bucket="reads", Key="k/1.jpg")
    broken = FaultProxy(int(s3.endpoint.rsplit(":", 1)[1]), fraction=0.0, always_fail=("k/2.jpg",)).start()
    try:
        reader = object_reader(S3Settings(s3_endpoint=broken.endpoint, s3_max_attempts=2))
        reasons = {}
        for key in ("k/0.jpg", "k/1.jpg", "k/2.jpg"):
            with pytest.raises(ObjectReadError) as failure:
                reader.get("reads", key, etags[key]).result(60)
            reasons[key] = str(failure.value)
    finally:
        broken.stop()
    assert reasons["k/0.jpg"] == "the object was replaced after it was listed (its ETag no longer matches)"
    assert reasons["k/1.jpg"] == "the object was removed after it was listed"
    assert "500" in reasons["k/2.jpg"] and "InternalError: We encountered an internal error" in reasons["k/2.jpg"]
    assert broken.counts["always_fail"] == 2  # s3_max_attempts attempts in all
    assert all("\n" not in reason and len(reason) < 450 for reason in reasons.values()), reasons


def test_fetch_batches_gives_each_row_its_bytes_or_its_reason(s3, bucket, tmp_path):
    import pyarrow as pa

    from sparkyfruit.sources.keys import fetch_batches

    _, bodies, etags = bucket
    local = tmp_path / "local.jpg"
    local.write_bytes(b"local bytes")
    keys = sorted(bodies)[:5]
    rows = [(f"s3://reads/{key}", etags[key]) for key in keys]
    rows += [(str(local), None), ("s3://reads/k/missing.jpg", '"0"'), (str(tmp_path / "gone.jpg"), None)]
    batches = [
        pa.RecordBatch.from_pydict(
            {
                "path": [path for path, _ in part],
                "label": ["k"] * len(part),
                "size": [0] * len(part),
                "etag": [etag for _, etag in part],
            }
        )
        for part in (rows[:3], rows[3:])  # the second batch's GETs start before the first is handed on
    ]
    out = list(fetch_batches(S3Settings(s3_endpoint=s3.endpoint, s3_max_attempts=1))(iter(batches)))
    assert [batch.num_rows for batch in out] == [3, 5]
    table = pa.Table.from_batches(out).to_pydict()
    assert table["path"] == [path for path, _ in rows]
    assert table["content"][:5] == [bodies[key] for key in keys] and table["content"][5] == b"local bytes"
    assert table["error"][:6] == [None] * 6 and table["content"][6:] == [None, None]
    assert table["error"][6] == "cannot read image: the object was removed after it was listed"
    assert table["error"][7].startswith("cannot read image: FileNotFoundError: ")
