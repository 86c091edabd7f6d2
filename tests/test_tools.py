"""reduce, evaluate, inspect --plot and config show, end to end on the sample (real ImageNet weights, 224 px)."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

import sparkyfruit
from sparkyfruit.cli import app

pytestmark = [pytest.mark.spark, pytest.mark.slow]
runner = CliRunner()


@pytest.fixture
def encoded(sample_outputs):
    """The shared sample output (keys mode): 192 images and one undecodable Kiwi."""
    return sample_outputs.keys


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_evaluate_nearest_centroid_reaches_95_percent(encoded):
    code, output = cli("evaluate", str(encoded), "--json")
    assert code == 0, output
    report = json.loads(output)
    assert report["method"] == "centroid" and report["accuracy"] >= 0.95
    assert report["train"] + report["test"] == 192 and report["test"] == 8 * 12  # stratified: half of each class
    assert len(report["per_class"]) == 8 and all(v["support"] == 12 for v in report["per_class"].values())
    code, text = cli("evaluate", str(encoded))
    assert code == 0 and "accuracy" in text and "precision" in text and "Kiwi" in text


def test_evaluate_with_spark_logistic_regression_says_that_it_starts_spark(encoded, spark):
    # the CLI joins the test session (the active one) where a user's run would start its own
    result = runner.invoke(app, ["evaluate", str(encoded), "--method", "logistic", "--json"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accuracy"] >= 0.95 and report["method"] == "logistic"
    assert "--method logistic fits Spark ML's logistic regression: starting Spark (a JVM)" in result.stderr


def test_reduce_keeps_failed_rows_and_evaluates_on_pca_features(encoded, tmp_path, spark):
    code, output = cli("reduce", str(encoded), "--output", str(tmp_path / "pca"), "--variance", "0.95")
    assert code == 0, output
    manifest = json.loads((tmp_path / "pca" / "_sparkyfruit.json").read_text())
    assert manifest["explained_variance"] >= 0.95 and 1 <= manifest["k"] < 256
    assert manifest["source_manifest"]["model"] == "mobilenet" and manifest["counts"] == {
        "rows": 193,
        "ok": 192,
        "failed": 1,
    }
    import pyarrow.dataset as ds

    table = ds.dataset(str(tmp_path / "pca"), format="parquet").to_table().to_pylist()
    assert len(table) == 193
    broken = [row for row in table if row["path"].endswith("broken.jpg")]
    assert broken[0]["pca_features"] is None and "cannot decode" in broken[0]["error"]
    assert all(len(row["pca_features"]) == manifest["k"] for row in table if row["error"] is None)

    from pyspark.ml.feature import PCAModel

    model = PCAModel.load(str(tmp_path / "pca" / "_pca_model"))  # projects new images the same way
    assert model.getK() == manifest["k"]

    code, output = cli("evaluate", str(tmp_path / "pca"), "--json")
    assert code == 0 and json.loads(output)["column"] == "pca_features" and json.loads(output)["accuracy"] >= 0.95

    # inspect, and its plot, read a reduce output as what it is
    code, output = cli("inspect", str(tmp_path / "pca"), "--json", "--plot", str(tmp_path / "pca.png"))
    assert code == 0, output
    summary = json.loads(output)
    assert (summary["column"], summary["dim"], summary["rows"], summary["failed"]) == (
        "pca_features",
        manifest["k"],
        193,
        1,
    )
    assert summary["model"] == "mobilenet" and (tmp_path / "pca.png").stat().st_size > 30_000
    code, output = cli("reduce", str(tmp_path / "pca"), "--output", str(tmp_path / "again"), "--k", "2")
    assert code == 1 and "is a reduce output; reduce works on an encode output" in output

    code, output = cli("reduce", str(encoded), "--output", str(tmp_path / "pca16"), "--k", "16")
    assert code == 0, output
    assert len(read_output_pca(tmp_path / "pca16")[0]) == 16


def read_output_pca(path):
    import pyarrow.dataset as ds

    return [v for v in ds.dataset(str(path), format="parquet").to_table().column("pca_features").to_pylist() if v]


def test_reduce_refuses_bad_requests(encoded, tmp_path):
    code, output = cli("reduce", str(encoded), "--output", str(tmp_path / "p"))
    assert code == 2 and "exactly one of --k N or --variance F" in output
    code, output = cli("reduce", str(encoded), "--output", str(tmp_path / "p"), "--k", "999")
    assert code == 2 and "more than the vectors' 256 dimensions" in output
    code, output = cli("reduce", str(tmp_path), "--output", str(tmp_path / "p"), "--k", "2")
    assert code == 1 and "does not exist or is empty" in output
    # onto an existing output: reduce has no --resume, so it is not offered
    code, output = cli("reduce", str(encoded), "--output", str(encoded), "--k", "2")
    assert code == 2 and "already holds a sparkyfruit output; nothing was touched" in " ".join(output.split())
    assert "--overwrite" in output and "--resume" not in output


def test_the_plot_counts_a_failed_image_once(encoded):
    from sparkyfruit.config import S3Settings
    from sparkyfruit.output_format import finished_output, load_vectors
    from sparkyfruit.plot import bar_rows

    loaded = load_vectors(finished_output(str(encoded), S3Settings()))
    rows = dict(bar_rows(loaded.labels, sparkyfruit.inspect(str(encoded)).failed))
    assert rows["Kiwi"] == 24 and rows["failed"] == 1 and sum(rows.values()) == 193  # broken.jpg is a Kiwi


def test_a_sample_of_the_vectors_is_the_same_each_time_and_says_it_is_one(encoded):
    from sparkyfruit.config import S3Settings
    from sparkyfruit.output_format import finished_output, load_vectors

    stored = finished_output(str(encoded), S3Settings())
    whole = load_vectors(stored)
    sample = load_vectors(stored, at_most=60)
    assert (whole.rows, len(whole.paths), whole.sampled) == (192, 192, False)
    assert sample.rows == 192 and sample.sampled and 30 < len(sample.paths) < 100
    assert load_vectors(stored, at_most=60).paths == sample.paths  # the same sample
    assert sample.paths == sorted(sample.paths) and set(sample.paths) <= set(whole.paths)
    row = whole.paths.index(sample.paths[0])
    assert (sample.vectors[0] == whole.vectors[row]).all() and sample.labels[0] == whole.labels[row]


def test_an_outputs_state_is_read_in_one_call_with_one_read_of_its_log(encoded, monkeypatch):
    from sparkyfruit import delta, output_format
    from sparkyfruit.config import S3Settings

    opened = []
    real_open = delta._open
    monkeypatch.setattr(delta, "_open", lambda *args, **kwargs: opened.append(args) or real_open(*args, **kwargs))
    summary = sparkyfruit.inspect(str(encoded))
    assert len(opened) == 1 and summary.table.startswith("Delta Lake, version ")
    stored = output_format.finished_output(str(encoded), S3Settings())
    assert len(opened) == 2 and [shard.number for shard in stored.shards] == [1, 2]  # shards: the same read
    assert stored.files == stored.table.files and len(stored.files) == int(summary.table.split(", ")[-1].split()[0])
    assert len(opened) == 2


def test_inspect_plot_writes_a_readable_png(encoded, tmp_path):
    target = tmp_path / "figure.png"
    code, output = cli("inspect", str(encoded), "--plot", str(target))
    assert code == 0, output
    assert target.stat().st_size > 30_000
    with Image.open(target) as image:
        assert image.size == (1600, 700)
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert len(colours) > 50  # points, bars, text: not a blank canvas
    code, output = cli("inspect", str(encoded), "--plot", str(tmp_path / "figure.jpg"))
    assert code == 2 and "--plot writes a PNG" in output


def test_config_show_reports_each_value_and_where_it_comes_from(tmp_path, monkeypatch):
    settings = tmp_path / "run.toml"
    settings.write_text('model = "resnet50"\nbatch_size = 16\ns3_endpoint = "http://user:pass@127.0.0.1:9000"\n')
    monkeypatch.setenv("SPARKYFRUIT_BATCH_SIZE", "32")
    code, output = cli("config", "show", "--config", str(settings), "--json")
    assert code == 0, output
    rows = {row["name"]: row for row in json.loads(output)}
    assert rows["model"]["value"] == "resnet50" and rows["model"]["source"].startswith("file ")
    assert rows["batch_size"]["value"] == "32" and rows["batch_size"]["source"] == "env SPARKYFRUIT_BATCH_SIZE"
    assert rows["image_size"] == {**rows["image_size"], "value": None, "source": "default"}  # the network's own
    assert rows["s3_endpoint"]["value"] == "http://***@127.0.0.1:9000" and "pass" not in output
    code, output = cli("config", "show", "--config", str(tmp_path / "missing.toml"))
    assert code == 2 and "--config file not found" in output


def test_config_show_takes_encodes_flags_and_shows_what_they_change(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARKYFRUIT_BATCH_SIZE", "32")
    code, output = cli("config", "show", "--batch-size", "8", "--model", "resnet50", "--overwrite", "--json")
    assert code == 0, output
    rows = {row["name"]: row for row in json.loads(output)}
    assert (rows["batch_size"]["value"], rows["batch_size"]["source"]) == (8, "flag --batch-size")
    assert (rows["model"]["value"], rows["overwrite"]["value"]) == ("resnet50", True)
    assert rows["mode"]["source"] == "default"
    code, output = cli("config", "show", "--batch-sise", "8")
    assert code == 2 and "config show takes encode's flags; No such option: --batch-sise" in output, output
