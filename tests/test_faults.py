"""S3 faults on the wire: a proxy in front of the real S3 server answers 503 SlowDown, resets connections
and cuts bodies short for a fraction of requests. Retries come from botocore's retry mode and S3A's
settings; the output must equal a fault-free run's."""

from __future__ import annotations

import numpy as np
import pytest

import sparkyfruit
from devtools import local_s3
from devtools.fault_proxy import KINDS, FaultProxy
from tests.helpers import BROKEN_SAMPLE_FILE, SAMPLE, read_output, run_config

pytestmark = [pytest.mark.spark, pytest.mark.slow, pytest.mark.s3]


def by_name(rows: dict) -> dict:
    """Outputs from different buckets compared by the key after the bucket."""
    return {path.split("/", 3)[3]: value for path, value in rows.items()}


@pytest.fixture
def reference(sample_outputs):
    """A fault-free keys-mode run of the 192 images from the S3 server: the shared sample output, less its
    undecodable file."""
    return {
        key: row for key, row in by_name(sample_outputs.rows["keys"]).items() if not key.endswith(BROKEN_SAMPLE_FILE)
    }


# over 20 s in df mode: S3A backs off between its retries (fs.s3a.retry.interval, Hadoop's default), and about
# 30 of the run's requests fail; the back-off is the behaviour under test
@pytest.mark.parametrize("mode", ["keys", "df"])
def test_both_modes_ride_out_15_percent_faulty_requests(spark, reference, s3, tmp_path, mode):
    # a bucket of its own: Hadoop caches one S3A client per bucket, and this one must go through the proxy
    bucket = f"faulty-{mode}"
    local_s3.seed(s3.endpoint, bucket, "Training", SAMPLE)
    out = tmp_path / "faulty"
    # cut bodies in df mode: Hadoop 3.4.3+'s default "analytics" S3A stream failed the file on the first one
    # ("Premature end of Content-Length delimited message body"); sparkyfruit sets the classic stream
    proxy = FaultProxy(int(s3.endpoint.rsplit(":", 1)[1]), fraction=0.15, kinds=KINDS, seed=7).start()
    try:
        result = sparkyfruit.encode(
            run_config(mode=mode, input=f"s3://{bucket}/Training", output=str(out), s3_endpoint=proxy.endpoint)
        )
    finally:
        proxy.stop()
    assert (result.rows, result.ok, result.failed) == (192, 192, 0)
    assert proxy.counts["requests"] >= 192 and proxy.faulty_fraction >= 0.10, proxy.counts
    assert all(proxy.counts[kind] > 0 for kind in KINDS), proxy.counts
    if mode == "keys":  # size and ETag come from the listing: one GET per image, no HEAD
        assert proxy.counts["HEAD"] == 0, proxy.counts

    actual = by_name(read_output(out))
    assert set(actual) == set(reference)
    for key, (label, features, error) in actual.items():
        assert error is None and label == reference[key][0]
        np.testing.assert_allclose(features, reference[key][1], atol=1e-5)


def test_keys_mode_gives_an_object_that_always_fails_an_error_row(spark, s3, tmp_path):
    bucket = "always-fail-keys"
    local_s3.seed(s3.endpoint, bucket, "Training", SAMPLE)
    broken = FaultProxy(int(s3.endpoint.rsplit(":", 1)[1]), fraction=0.0, always_fail=("Kiwi/",)).start()
    try:
        result = sparkyfruit.encode(
            run_config(
                mode="keys",
                input=f"s3://{bucket}/Training",
                output=str(tmp_path / "o"),
                s3_endpoint=broken.endpoint,
                s3_max_attempts=2,
            )
        )
    finally:
        broken.stop()
    rows = read_output(tmp_path / "o")
    kiwis = {path: row for path, row in rows.items() if "/Kiwi/" in path}
    assert (result.rows, result.failed) == (192, 24) and len(kiwis) == 24
    for _, features, error in kiwis.values():
        assert features is None and "cannot read image" in error and "InternalError" in error
        assert "\n" not in error and len(error) < 450, error  # one line, not obstore's debug dump
    assert all(row[2] is None for path, row in rows.items() if "/Kiwi/" not in path)


# over 20 s: each of the 11 objects that never answer is retried by S3A with its back-off before Spark skips it
def test_df_mode_gives_objects_it_cannot_read_error_rows_and_completes(spark, s3, tmp_path, monkeypatch):
    """Spark's binaryFile reader skips a file it cannot read (ignoreCorruptFiles, ignoreMissingFiles) and the
    sink gives every listed image it did not get an error row that says why: an object that always answers
    500, one whose every GET breaks off mid-body, and one deleted between the listing and the read."""
    from sparkyfruit.sources import df as df_source

    bucket = "unreadable-df"
    local_s3.seed(s3.endpoint, bucket, "Training", SAMPLE)
    deleted = "Training/Pineapple/" + sorted(p.name for p in (SAMPLE / "Pineapple").iterdir())[0]
    real_listing = df_source.list_images

    def list_then_delete(spark_session, config):
        listing = real_listing(spark_session, config)
        local_s3.client(s3.endpoint).delete_object(Bucket=bucket, Key=deleted)
        return listing

    monkeypatch.setattr(df_source, "list_images", list_then_delete)
    broken = FaultProxy(
        int(s3.endpoint.rsplit(":", 1)[1]), fraction=0.0, always_fail=("Kiwi/1",), always_deny=("Banana/2",)
    ).start()
    try:
        result = sparkyfruit.encode(
            run_config(
                mode="df",
                input=f"s3://{bucket}/Training",
                output=str(tmp_path / "o"),
                s3_endpoint=broken.endpoint,
                s3_max_attempts=2,
            )
        )
    finally:
        broken.stop()
    failing, denied, gone = 6, 5, 1  # Kiwi/1*, Banana/2* in the sample; one Pineapple
    assert (result.rows, result.failed) == (192, failing + denied + gone)
    assert broken.counts["always_fail"] > 0 and broken.counts["always_deny"] > 0, broken.counts
    errors = {path.split("/", 3)[3]: row[2] for path, row in read_output(tmp_path / "o").items() if row[2]}
    assert errors[deleted] == "cannot read image: the file was removed after it was listed"
    for key, error in errors.items():
        assert error.startswith("cannot read image: "), error
        if "/Kiwi/1" in key:
            assert "InternalError" in error or "500" in error, error
        if "/Banana/2" in key:
            assert "AccessDenied" in error or "403" in error, error
    assert sum("/Banana/2" in key for key in errors) == denied
    assert sparkyfruit.inspect(str(tmp_path / "o")).failed == failing + denied + gone
