"""What a new user meets first, without Spark: --overwrite never deletes what is not ours, inspect and
evaluate say what a folder is, every mistake is one line with the right exit code, and help reads right."""

from __future__ import annotations

import json
import shutil
import socket

import pytest
from typer.testing import CliRunner

from devtools import local_s3
from sparkyfruit import locations, output_format, storage
from sparkyfruit.cli import app
from sparkyfruit.config import S3Settings
from tests.helpers import REAL_MODEL, SAMPLE

runner = CliRunner()


def invoke(*args: str, env: dict | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "400", **(env or {})})
    return result.exit_code, result.output


def assert_one_line(code: int, output: str, expected_code: int, *expected: str) -> None:
    assert code == expected_code, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output and "<_io." not in output, output
    for text in expected:
        assert text in output, output


def snapshot(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def finished_output(folder, extra: dict[str, str] | None = None):
    """A folder laid out as encode leaves it (the files' contents do not matter to the ownership check)."""
    folder.mkdir(parents=True)
    for name in [
        "part-00000-1a2b-c000.snappy.parquet",
        ".part-00000-1a2b-c000.snappy.parquet.crc",
        "_SUCCESS",
        "._SUCCESS.crc",
        "_sparkyfruit.json",
        "_temporary/0/_temporary/attempt_1/part-1.parquet",
        "_pca_model/metadata/part-00000",
    ]:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("{}")
    for name, text in (extra or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


# ---------------------------------------------------------------- --overwrite keeps what is not ours


def test_overwrite_of_a_folder_of_images_is_refused_and_nothing_is_deleted(tmp_path):
    images = tmp_path / "images"
    shutil.copytree(SAMPLE, images)
    (images / "NOTES.txt").write_text("my notes")
    before = snapshot(images)
    code, output = invoke("encode", "--input", str(SAMPLE), "--output", str(images), "--overwrite", *REAL_MODEL)
    assert_one_line(
        code,
        output,
        2,
        f"--output {images} holds files that sparkyfruit did not write (ATTRIBUTION.md, Apple Braeburn/",
        "nothing was touched",
        "Choose another --output",
    )
    assert snapshot(images) == before


def test_overwrite_of_an_output_with_one_foreign_file_is_refused(tmp_path):
    out = finished_output(tmp_path / "out", {"NOTES.txt": "mine"})
    before = snapshot(out)
    code, output = invoke("encode", "--input", str(SAMPLE), "--output", str(out), "--overwrite", *REAL_MODEL)
    assert_one_line(code, output, 2, "holds files that sparkyfruit did not write (NOTES.txt);")
    assert snapshot(out) == before


def test_an_output_of_our_own_files_is_replaceable_and_without_overwrite_refused(tmp_path):
    out = finished_output(tmp_path / "out")
    output_format.check_writable(locations.parse_location(str(out)), S3Settings(), overwrite=True)  # no error
    code, output = invoke("encode", "--input", str(SAMPLE), "--output", str(out), *REAL_MODEL)
    assert_one_line(
        code,
        output,
        2,
        "already holds a sparkyfruit output; nothing was touched",
        "Pass --overwrite to replace it, --resume to add new images to it,",
    )


def test_overwrite_of_a_spark_parquet_table_is_refused_and_nothing_is_deleted(tmp_path):
    """What Spark writes for a user's own table (part files, _SUCCESS, their checksums) carries no file of
    sparkyfruit's: --overwrite must not take it for an output of ours."""
    table = tmp_path / "customers"
    table.mkdir()
    for name in ["part-00000-5e1f-c000.snappy.parquet", "part-00001-5e1f-c000.snappy.parquet", "_SUCCESS"]:
        (table / name).write_bytes(b"PAR1 customer,revenue PAR1" if name.endswith(".parquet") else b"")
    (table / ".part-00000-5e1f-c000.snappy.parquet.crc").write_bytes(b"crc")
    before = snapshot(table)
    for extra in (["--overwrite"], []):
        code, output = invoke("encode", "--input", str(SAMPLE), "--output", str(table), *extra, *REAL_MODEL)
        assert_one_line(
            code,
            output,
            2,
            f"--output {table} holds files that sparkyfruit did not write (.part-00000-5e1f-c000.snappy.parquet.crc, "
            "_SUCCESS, part-00000-5e1f-c000.snappy.parquet and 1 more); nothing was touched.",
        )
    assert snapshot(table) == before


def test_overwrite_of_another_programs_delta_table_is_refused_and_nothing_is_deleted(tmp_path):
    """A Delta table has part files and a `_delta_log/` as ours has; only a log that sparkyfruit began is
    ours, so --overwrite must not take another program's table for an output of ours."""
    import pyarrow as pa
    from deltalake import write_deltalake

    table = tmp_path / "orders"
    write_deltalake(str(table), pa.table({"order": [1, 2], "revenue": [9.5, 3.0]}))
    before = snapshot(table)
    code, output = invoke("encode", "--input", str(SAMPLE), "--output", str(table), "--overwrite", *REAL_MODEL)
    assert_one_line(
        code, output, 2, f"--output {table} holds files that sparkyfruit did not write (_delta_log/000000000000"
    )
    assert snapshot(table) == before


def test_an_output_that_is_a_file_is_refused(tmp_path):
    notes = tmp_path / "README.md"
    notes.write_text("# mine")
    code, output = invoke("encode", "--input", str(SAMPLE), "--output", str(notes), "--overwrite", *REAL_MODEL)
    assert_one_line(code, output, 2, f"--output {notes} is a file, not a folder; nothing was touched.")
    assert notes.read_text() == "# mine"


@pytest.mark.s3
def test_overwrite_of_an_s3_prefix_with_a_foreign_object_is_refused(s3, tmp_path):
    client = local_s3.client(s3.endpoint)
    client.create_bucket(Bucket="work")
    for key in ["features/part-00000-x.snappy.parquet", "features/_sparkyfruit.json", "features/notes/plan.txt"]:
        client.put_object(Bucket="work", Key=key, Body=b"{}")
    code, output = invoke(
        "encode",
        "--input",
        str(SAMPLE),
        "--output",
        "s3://work/features",
        "--overwrite",
        "--s3-endpoint",
        s3.endpoint,
        *REAL_MODEL,
    )
    assert_one_line(
        code, output, 2, "--output s3://work/features holds files that sparkyfruit did not write (notes/plan.txt)"
    )
    keys = [obj["Key"] for obj in client.list_objects_v2(Bucket="work")["Contents"]]
    assert len(keys) == 3


def a_manifest() -> output_format.Manifest:
    return output_format.Manifest(
        created_at=output_format.now(),
        versions=output_format.library_versions(),
        mode="keys",
        input="file:///in",
        output="file:///out",
        model="mobilenet",
        alpha=0.25,
        image_size=224,
        weights="imagenet",
        weights_sha256=None,
        dim=256,
        counts=output_format.Counts(1, 1, 0),
        duration_seconds=1.0,
        config={},
    )


def test_a_manifest_reads_back_as_written_and_a_damaged_one_is_one_line(tmp_path):
    location = locations.parse_location(str(tmp_path))
    written = a_manifest()
    output_format.write_manifest(location, written, S3Settings())
    assert output_format.read_manifest(location, S3Settings()) == written
    (tmp_path / "_sparkyfruit.json").write_text(json.dumps({"format": output_format.ENCODE_FORMAT, "dim": 256}))
    code, output = invoke("inspect", str(tmp_path))
    assert_one_line(code, output, 1, "cannot be read as a sparkyfruit manifest", "rerun encode with --overwrite")


def test_reduce_overwrite_refuses_foreign_files_too(tmp_path):
    source = finished_output(tmp_path / "features")
    output_format.write_manifest(locations.parse_location(str(source)), a_manifest(), S3Settings())
    target = tmp_path / "pca"
    target.mkdir()
    (target / "keep.csv").write_text("1,2")
    code, output = invoke("reduce", str(source), "--output", str(target), "--k", "2", "--overwrite")
    assert_one_line(code, output, 2, "holds files that sparkyfruit did not write (keep.csv)")
    assert (target / "keep.csv").read_text() == "1,2"


# ---------------------------------------------------------------- what a folder is


@pytest.mark.parametrize("command", [["inspect"], ["evaluate"], ["inspect", "--plot", "x.png"]])
def test_a_folder_of_images_is_named_as_such(command, tmp_path):
    code, output = invoke(*command, str(SAMPLE))
    assert_one_line(
        code,
        output,
        1,
        f"{SAMPLE} is a folder of images, not a sparkyfruit output.",
        f"sparkyfruit encode --input {SAMPLE} --output OUT",
    )
    assert "--overwrite" not in output


def test_inspect_of_a_file_and_of_an_unfinished_output(tmp_path):
    notes = tmp_path / "README.md"
    notes.write_text("# hi")
    code, output = invoke("inspect", str(notes))
    assert_one_line(code, output, 1, f"{notes} is a file, not an output folder.")
    unfinished = finished_output(tmp_path / "out")
    (unfinished / "_sparkyfruit.json").unlink()
    # part files, _SUCCESS and work folders without any file of sparkyfruit's own are what a Spark job leaves
    # too: they are not ours, and nothing advises --overwrite for them
    code, output = invoke("inspect", str(unfinished))
    assert_one_line(code, output, 1, f"{unfinished} is not a sparkyfruit output: it has no _sparkyfruit.json")
    assert "--overwrite" not in output
    # what a run stopped after its first of 8 shards leaves (tests/test_checkpoints.py makes one for real)
    record = output_format.RunRecord(
        output_format.now(), "keys", "file:///in", "mobilenet", 0.25, 224, "file", None, 24, 192, 8
    )
    output_format.write_run_record(locations.parse_location(str(unfinished)), record, S3Settings())
    shard = output_format.ShardRecord(1, 24, 24, 0, [])
    output_format.write_shard_record(locations.parse_location(str(unfinished)), shard, S3Settings())
    code, output = invoke("inspect", str(unfinished))
    assert_one_line(
        code,
        output,
        1,
        f"{unfinished} is unfinished: 1 of 8 shards, 24 of 192 images.",
        "rerun that encode with --resume",
    )
    # --json: the unfinished state on stdout (a script can read how far it got), the line on stderr, exit 1
    as_json = runner.invoke(app, ["inspect", str(unfinished), "--json"], env={"COLUMNS": "400"})
    assert as_json.exit_code == 1 and "is unfinished: 1 of 8 shards" in as_json.stderr
    state = json.loads(as_json.stdout)
    assert (state["finished"], state["state"], state["output"]) == (False, "stopped", f"file://{unfinished}")
    assert (state["shards_committed"], state["shards"], state["images_committed"], state["images"]) == (1, 8, 24, 192)
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("1")
    code, output = invoke("evaluate", str(other))
    assert_one_line(
        code, output, 1, f"{other} is not a sparkyfruit output: it has no _sparkyfruit.json and holds data.csv."
    )


# ---------------------------------------------------------------- every mistake is one line


def test_no_matching_image_is_one_readable_line_before_spark(tmp_path, monkeypatch):
    import sparkyfruit.spark.session

    monkeypatch.setattr(sparkyfruit.spark.session, "start_session", lambda *a, **k: pytest.fail("Spark was started"))
    empty = tmp_path / "images" / "Kiwi"
    empty.mkdir(parents=True)
    (empty / "notes.txt").write_text("no image")
    for mode in ("df", "keys"):
        code, output = invoke(
            "encode", "--mode", mode, "--input", str(empty.parent), "--output", str(tmp_path / "o"), *REAL_MODEL
        )
        assert_one_line(code, output, 2, f"No images under file://{empty.parent} match jpg, jpeg or png (any case).")
        code, output = invoke(
            "encode",
            "--mode",
            mode,
            "--input",
            str(empty.parent),
            "--output",
            str(tmp_path / "o"),
            "--pattern",
            "*.[pP][nN][gG]",
            *REAL_MODEL,
        )
        assert_one_line(code, output, 2, "match the pattern '*.[pP][nN][gG]'")


@pytest.mark.s3
def test_no_credentials_and_a_closed_port_name_the_closed_port(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
        code, output = invoke(
            "encode",
            "--input",
            "s3://fruit/Training",
            "--output",
            str(tmp_path / "o"),
            "--s3-endpoint",
            endpoint,
            *REAL_MODEL,
            env={
                "AWS_ACCESS_KEY_ID": None,
                "AWS_SECRET_ACCESS_KEY": None,
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "AWS_CONFIG_FILE": str(tmp_path / "none"),
            },
        )
    assert_one_line(code, output, 1, f"Could not connect to {endpoint}", "Check --s3-endpoint")


def test_an_endpoint_is_named_only_when_one_was_given():
    from botocore.exceptions import EndpointConnectionError

    failure = EndpointConnectionError(endpoint_url="https://fruit.s3.amazonaws.com/")
    without = str(storage.describe_s3_failure(failure, S3Settings(), "fruit", "list"))
    assert (
        without.startswith("Could not connect to AWS S3 to list bucket 'fruit'.")
        and "Check --s3-endpoint" not in without
    )
    given = str(storage.describe_s3_failure(failure, S3Settings(s3_endpoint="http://127.0.0.1:9"), "fruit", "list"))
    assert "Could not connect to http://127.0.0.1:9" in given and "Check --s3-endpoint" in given


# ---------------------------------------------------------------- help pages


@pytest.mark.parametrize("command", ["encode", "inspect", "reduce", "evaluate", "config show"])
def test_help_pages_read_plainly(command):
    code, output = invoke(*command.split(), "--help")
    assert code == 0, output
    assert "<bool>" not in output and "{" not in output.splitlines()[0], output


def test_encode_help_shows_the_defaults_and_an_offline_example():
    code, output = invoke("encode", "--help")
    text = " ".join(output.split())
    for default in ("[default: df]", "[default: mobilenet_v2]", "[default: imagenet]"):
        assert default in text, output
    assert "--weights examples/models/mobilenet_2_5_224_tf_no_top.h5" in text
    code, output = invoke("reduce", "--help")
    assert output.splitlines()[0].strip() == "Usage: sparkyfruit reduce [OPTIONS] OUTPUT"


@pytest.mark.s3
def test_the_local_s3_server_starts_by_hand_seeded_and_stops_on_ctrl_c():
    """docs/development.md's try-out: `python -m devtools.local_s3 --seed examples/images` prints the endpoint
    and an encode command, serves the sample, and Ctrl-C (SIGINT to its group) stops it and moto."""
    import os
    import signal
    import sys

    from tests.helpers import group_is_gone, start_in_own_group

    process = start_in_own_group([sys.executable, "-m", "devtools.local_s3", "--port", "0", "--seed", str(SAMPLE)])
    try:
        lines = []
        while not any("sparkyfruit encode" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"it stopped before printing the command: {lines} {process.stderr.read()}"
            lines.append(line)
        endpoint = lines[0].split()[3]
        assert (
            lines[0].startswith("Local S3 server: http://127.0.0.1:")
            and "Seeded s3://fruit/Training/ with 192 images" in lines[1]
        )
        assert f"--input s3://fruit/Training --output out/from-s3 --s3-endpoint {endpoint}" in lines[-1]
        listed = local_s3.client(endpoint).list_objects_v2(Bucket="fruit", Prefix="Training/")
        assert listed["KeyCount"] == 192
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=20) == 130
        assert group_is_gone(process.pid, within=15), "moto outlived the Ctrl-C"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
