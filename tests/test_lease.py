"""One writer at a time: the output's lease, on a local folder (flock) and on S3 (conditional PUTs to the
local S3 server), and what a second run is told."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import local_s3
from sparkyfruit import lease, locations, output_format, processes, storage
from sparkyfruit.errors import ConfigError
from sparkyfruit.s3_settings import S3Settings
from tests.helpers import cli, encode_args


@pytest.fixture
def s3_output(s3):
    """A prefix on the local S3 server, and its S3 settings."""
    local_s3.client(s3.endpoint).create_bucket(Bucket="leases")
    return locations.parse_location("s3://leases/out"), S3Settings(s3_endpoint=s3.endpoint)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def output(request, tmp_path):
    """An output location (a local folder, or a prefix on the local S3 server) and its S3 settings."""
    if request.param == "local":
        return locations.parse_location(str(tmp_path / "out")), S3Settings()
    return request.getfixturevalue("s3_output")


def lease_record(location, s3) -> lease.LeaseRecord | None:
    text = storage.read_text(location.child(output_format.LEASE_NAME), s3)
    return None if text is None else lease.LeaseRecord.parse(text)


def test_a_second_holder_is_refused_and_the_lease_goes_with_the_first(output):
    location, s3 = output
    with lease.hold(location, s3, takeover=False) as held:
        record = lease_record(location, s3)
        assert (record.pid, record.token) == (held.record.pid, held.record.token)
        with pytest.raises(lease.LeaseHeldError) as refused:
            with lease.hold(location, s3, takeover=True):  # a live holder is never taken over
                pytest.fail("two holders")
        assert refused.value.exit_code == 1
        assert f"pid {record.pid}" in refused.value.message and record.since in refused.value.message
        assert lease_record(location, s3).token == held.record.token  # the refused run changed nothing
    assert lease_record(location, s3) is None  # released
    assert location.is_s3 or not Path(location.path).exists()  # with the folder it made
    with lease.hold(location, s3, takeover=False):  # free again
        pass


def _write_lease(location, s3, **changes) -> lease.LeaseRecord:
    record = dataclasses.replace(lease.LeaseRecord.of_this_process("encode"), **changes)
    storage.write_text(location.child(output_format.LEASE_NAME), record.to_json(), s3)
    return record


def dead_pid() -> int:
    """The pid of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_dead_runs_lease_is_taken_over_only_when_asked(output):
    location, s3 = output
    dead = _write_lease(location, s3, pid=dead_pid(), process_started=1)
    with pytest.raises(ConfigError) as refused:
        with lease.hold(location, s3, takeover=False):
            pytest.fail("took a dead run's lease without --resume or --overwrite")
    assert "--resume" in refused.value.hint and f"pid {dead.pid}" in refused.value.message
    with lease.hold(location, s3, takeover=True) as held:
        assert lease_record(location, s3).token == held.record.token


@pytest.mark.s3
def test_another_hosts_lease_holds_until_it_expires(s3_output):
    """S3 (a local folder's lease is a flock: there the lock, not the host or age, decides)."""
    location, s3 = s3_output
    fresh = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    _write_lease(location, s3, host="elsewhere", renewed_at=fresh)
    with pytest.raises(lease.LeaseHeldError, match="host elsewhere"):
        with lease.hold(location, s3, takeover=True):
            pytest.fail("took a live lease of another host")
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=lease.EXPIRY_SECONDS + 5)).isoformat(timespec="seconds")
    _write_lease(location, s3, host="elsewhere", renewed_at=old)
    with lease.hold(location, s3, takeover=True) as held:
        assert lease_record(location, s3).host == held.record.host != "elsewhere"


@pytest.mark.s3
def test_renewal_keeps_it_and_notices_a_takeover(s3_output):
    location, s3 = s3_output
    with lease.hold(location, s3, takeover=False) as held:
        before = held._etag
        held._renew()
        assert held._etag != before and not held._lost
        held.check()
        _write_lease(location, s3, host="elsewhere")  # another run took it over while this one stalled
        held._renew()
        with pytest.raises(lease.LeaseLostError, match="taken over"):
            held.check()
    assert lease_record(location, s3).host == "elsewhere"  # a lost lease is not removed by its old holder


@pytest.mark.s3
def test_a_live_process_on_this_host_holds_its_lease(s3_output):
    """S3: this host's holder is alive while its pid runs with the same start time, dead at once after."""
    location, settings = s3_output
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lease(location, settings, pid=sleeper.pid, process_started=processes.start_time(sleeper.pid))
        with pytest.raises(lease.LeaseHeldError, match=f"pid {sleeper.pid}"):
            with lease.hold(location, settings, takeover=True):
                pytest.fail("took a live process's lease")
    finally:
        sleeper.kill()
        sleeper.wait()
    with lease.hold(location, settings, takeover=True):
        pass


def test_a_second_encode_stops_before_spark_naming_the_holder(tmp_path, no_spark_start, images):
    out = tmp_path / "out"
    with lease.hold(locations.parse_location(str(out)), S3Settings(), takeover=False) as held:
        result = cli(*encode_args(images, str(out)))
    assert result.exit_code == 1, result.output
    assert "Another run is writing to" in result.output and f"pid {held.record.pid}" in result.output
    assert not out.exists()  # nothing was written


def test_the_lease_counts_as_sparkyfruits_own():
    assert output_format.foreign_files([output_format.LEASE_NAME]) == []
    # a user's Parquet table stays foreign beside nothing but the lease's temporary name
    assert output_format.foreign_files(["data.csv", output_format.LEASE_NAME]) == ["data.csv"]
    assert json.loads(lease.LeaseRecord.of_this_process("encode").to_json())["command"] == "encode"


@pytest.mark.integration
@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_two_writers_started_together_one_writes_and_the_other_is_told(tmp_path, where, request):
    """Two real encode processes into one output: the one that takes the lease writes every image once; the
    other exits 1 before its Spark starts, naming the holder; the lease is gone when the first ends."""
    import os
    import time

    from tests.helpers import SAMPLE, SCRIPT, read_output

    extra = ["--mode", "keys"]
    if where == "s3":
        server = request.getfixturevalue("s3")
        local_s3.client(server.endpoint).create_bucket(Bucket="leases")
        out = "s3://leases/two"
        extra = [*extra, "--s3-endpoint", server.endpoint]
        settings = S3Settings(s3_endpoint=server.endpoint)
    else:
        out, settings = str(tmp_path / "two"), S3Settings()
    location = locations.parse_location(out)
    env = {**os.environ, "COLUMNS": "200", "SPARKYFRUIT_MASTER": "local[2]"}
    command = [SCRIPT, *encode_args(str(SAMPLE), out, *extra, "--limit", "48")]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while lease_record(location, settings) is None and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        holder = lease_record(location, settings)
        assert holder is not None and holder.pid == first.pid, first.stderr.read() if first.poll() is not None else ""
        second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 1, second.stderr
        told = f"Another run is writing to {location.shown} (host {holder.host}, pid {first.pid}, since"
        assert told in second.stderr and "Spark UI" not in second.stderr  # stopped before its Spark started
        stdout, stderr = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, stderr[-3000:]
    assert "done: 48 images, 48 ok" in stdout
    assert lease_record(location, settings) is None
    if where == "local":
        import pyarrow.dataset as ds

        paths = ds.dataset(out, format="parquet").to_table(columns=["path"]).column("path").to_pylist()
        assert len(paths) == len(set(paths)) == len(read_output(out)) == 48


def test_inspect_of_an_output_being_written_names_the_run(output):
    """inspect (and every tool that reads an output) says a live run is writing it, with how far it got."""
    import sparkyfruit
    from sparkyfruit.errors import NotAnOutputError

    location, s3 = output
    with lease.hold(location, s3, takeover=False) as held:
        with pytest.raises(NotAnOutputError, match=f"is being written now by a run \\(host {held.record.host}, pid"):
            sparkyfruit.inspect(location.uri, s3=s3)
    _write_lease(location, s3, pid=dead_pid(), process_started=1)  # what a killed run leaves
    with pytest.raises(NotAnOutputError, match="did not finish"):
        sparkyfruit.inspect(location.uri, s3=s3)
