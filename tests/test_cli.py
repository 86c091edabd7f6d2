"""The command line without Spark: bad usage is one clear line and exit 2; inspect needs no JVM."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparkyfruit.cli import app
from tests.helpers import SAMPLE, WEIGHTS

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(
            ["--model", "vgg17"],
            "Unknown --model 'vgg17': not a backbone of keras.applications, nor a .keras/.h5 file. "
            "Did you mean vgg19 or vgg16?",
            marks=pytest.mark.slow,  # a name outside the cache is looked up in the installed Keras
        ),
        (["--mode", "stream"], "Unknown --mode 'stream'."),
        (["--batch-size", "-5"], "--batch-size must be between 1 and 4096; got -5."),
        (["--weights", "/nowhere/w.h5"], "--weights file is missing or unreadable: '/nowhere/w.h5'."),
        (["--input", "ftp://host/images"], "--input has an unsupported scheme 'ftp'"),
        (["--output", "gs://bucket/out"], "--output has an unsupported scheme 'gs'"),
        (["--input", "/no/such/folder"], "--input folder does not exist: '/no/such/folder'."),
        (
            ["--input", str(SAMPLE / "Banana" / "10_100.jpg")],
            f"--input is a file, not a folder: '{SAMPLE / 'Banana' / '10_100.jpg'}'. Give the folder of images",
        ),
        (
            ["--input", "hdfs://namenode:8020/Training", "--mode", "keys"],
            "--mode keys reads S3 objects or local files, and --input is on HDFS",
        ),
        (["--output", "hdfs://namenode:8020/a//b"], "--output is not a plain HDFS path"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(tmp_path, args, message):
    base = {"--input": str(SAMPLE), "--output": str(tmp_path / "out")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    code, output = invoke("encode", *[x for pair in base.items() for x in pair])
    assert code == 2
    assert message in " ".join(output.split())
    assert "Traceback" not in output
    assert not (tmp_path / "out").exists()


def test_hdfs_locations_parse_to_canonical_uris_and_nest():
    from sparkyfruit.locations import parse_location

    named, default = parse_location("hdfs://nn:8020/data/Training/"), parse_location("HDFS:///data")
    assert (named.uri, named.spark_uri(), named.shown) == ("hdfs://nn:8020/data/Training",) * 3
    assert default.uri == "hdfs:///data" and default.is_hdfs and not default.is_local and not default.is_s3
    assert named.child("Kiwi/1.jpg").uri == "hdfs://nn:8020/data/Training/Kiwi/1.jpg"
    assert parse_location("hdfs://nn:8020/data").contains(named)
    assert not default.contains(named)  # another name node (or not the same one, as far as we can tell)
    assert not parse_location("hdfs://nn:8020/dat").contains(named)


def test_inspect_of_an_unreachable_hdfs_output_is_one_line_and_exit_1():
    code, output = invoke("inspect", "hdfs://127.0.0.1:1/features")
    assert code == 1, output
    assert "Could not read hdfs://127.0.0.1:1/features/_sparkyfruit.json: nothing listens at 127.0.0.1:1." in " ".join(
        output.split()
    )
    assert "Check that the name node 127.0.0.1:1 is up" in " ".join(output.split())
    assert "Traceback" not in output


def test_existing_output_is_refused_and_left_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    code, output = invoke(
        "encode",
        "--input",
        str(SAMPLE),
        "--output",
        str(out),
        "--weights",
        str(WEIGHTS),
        "--model",
        "mobilenet",
        "--alpha",
        "0.25",
    )
    assert code == 2
    assert "holds files that sparkyfruit did not write (keep.txt); nothing was touched" in " ".join(output.split())
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "precious"


def test_output_inside_input_is_refused(tmp_path):
    (tmp_path / "Kiwi").mkdir()
    code, output = invoke("encode", "--input", str(tmp_path), "--output", str(tmp_path / "features"))
    assert code == 2 and "lies inside --input" in output


def test_env_setting_is_validated_like_a_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKYFRUIT_LIMIT", "many")
    code, output = invoke("encode", "--input", str(SAMPLE), "--output", str(tmp_path / "o"))
    assert code == 2 and "Invalid --limit" in output and "SPARKYFRUIT_LIMIT" in output


def test_inspect_of_a_folder_that_is_not_an_output(tmp_path):
    (tmp_path / "part-0.parquet").write_bytes(b"PAR1")
    code, output = invoke("inspect", str(tmp_path))
    # a part file alone is what any Spark job writes: nothing of sparkyfruit's says the folder is ours
    assert code == 1 and "is not a sparkyfruit output: it has no _sparkyfruit.json and holds part-0.parquet" in output
    code, output = invoke("inspect", str(tmp_path / "missing"))
    assert code == 1 and "does not exist or is empty" in output


def test_help_and_version_do_not_load_spark_or_tensorflow():
    code = (
        "import sys\n"
        "from sparkyfruit.cli import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0 and 'encode' in r.output, r.output\n"
        "r = CliRunner().invoke(app, ['encode', '--help'], env={'COLUMNS': '200'})\n"
        "assert '--s3-endpoint' in r.output and 'hdfs://namenode/path' in r.output, r.output\n"
        "r = CliRunner().invoke(app, ['--version']); assert 'sparkyfruit 0.1' in r.output, r.output\n"
        "assert 'pyspark 4' in r.output or 'pyspark 3' in r.output, r.output\n"
        "assert 'tensorflow 2' in r.output and 'python 3' in r.output, r.output\n"
        "heavy = [m for m in ('pyspark', 'tensorflow', 'keras', 'py4j') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_installed_console_script_reports_bad_usage_without_traceback(tmp_path):
    script = Path(sys.executable).with_name("sparkyfruit")
    result = subprocess.run(
        [str(script), "encode", "--input", str(SAMPLE), "--output", str(tmp_path / "o"), "--model", "alexnet"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: Unknown --model 'alexnet'")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.s3
def test_keys_mode_reports_an_empty_prefix(s3, tmp_path):
    from devtools import local_s3

    local_s3.client(s3.endpoint).create_bucket(Bucket="empty")
    code, output = invoke(
        "encode",
        "--mode",
        "keys",
        "--input",
        "s3://empty/Training",
        "--output",
        str(tmp_path / "o"),
        "--s3-endpoint",
        s3.endpoint,
    )
    assert code == 2 and "No images under s3://empty/Training match jpg, jpeg or png (any case)" in output
