"""`sparkyfruit similar`: the bundled sample recognised by its nearest rows, per-query errors, and an index
that only its own network can query."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import sparkyfruit
from devtools.sample_split import split_even_odd
from sparkyfruit import locations, models, output_format
from sparkyfruit.cli import app
from sparkyfruit.errors import ConfigError
from sparkyfruit.reduce import reduce
from sparkyfruit.s3_settings import S3Settings
from sparkyfruit.similar import NearestRows, encoder_for_manifest, similar, vote
from tests.helpers import WEIGHTS, run_config


def test_nearest_rows_are_the_exact_cosine_ranking():
    generator = np.random.default_rng(0)
    index, queries = generator.standard_normal((500, 16)), generator.standard_normal((7, 16))
    similarities, rows = NearestRows(index).search(queries, 5)
    unit = index / np.linalg.norm(index, axis=1, keepdims=True)
    expected = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    np.testing.assert_array_equal(rows, np.argsort(-expected, axis=1)[:, :5])
    np.testing.assert_allclose(similarities, np.sort(expected, axis=1)[:, ::-1][:, :5], rtol=1e-5)
    assert NearestRows(index[:3]).search(queries, 5)[1].shape == (7, 3)  # k beyond the rows: every row


def test_the_vote_weighs_by_similarity_and_breaks_ties_by_the_nearest():
    assert vote(["Kiwi", "Lemon", "Lemon"], np.array([0.9, 0.5, 0.5])) == "Lemon"
    assert vote(["Kiwi", "Lemon", "Lemon"], np.array([0.9, 0.4, 0.4])) == "Kiwi"
    assert vote(["Kiwi", "Lemon"], np.array([0.7, 0.7])) == "Kiwi"


@pytest.fixture(scope="module")
def sample_index(spark, tmp_path_factory):
    """An index of the even-numbered sample images (real ImageNet weights), one broken file among them, and
    the odd-numbered images to query it with."""
    work = tmp_path_factory.mktemp("similar")
    even, odd = split_even_odd(work)
    (even / "Banana" / "0_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    index = work / "index"
    sparkyfruit.encode(run_config(mode="keys", input=str(even), output=str(index)))
    manifest = output_format.finished_output(locations.parse_location(str(index)), S3Settings()).manifest
    return index, odd, manifest, encoder_for_manifest(manifest, S3Settings())


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 5])
def test_similar_recognises_the_odd_numbered_fruit_from_the_even_ones(sample_index, k):
    index, odd, manifest, encoder = sample_index
    assert (manifest.counts.ok, manifest.counts.failed, len(odd)) == (101, 1, 91)
    answers = similar([str(image) for image in odd], str(index), S3Settings(), k=k, encoder=encoder).answers
    accuracy = sum(answer.label == Path(answer.query).parent.name for answer in answers) / len(answers)
    assert accuracy >= 0.95, [(a.query, a.label) for a in answers if a.label != Path(a.query).parent.name]
    assert all(len(answer.neighbors) == k for answer in answers)


@pytest.mark.spark
@pytest.mark.slow
def test_an_index_row_that_failed_is_never_a_neighbour(sample_index):
    index, odd, manifest, encoder = sample_index
    (answer,) = similar([str(odd[0])], str(index), S3Settings(), k=1000, encoder=encoder).answers
    assert len(answer.neighbors) == manifest.counts.ok == 101
    assert not any(neighbor.path.endswith("0_broken.jpg") for neighbor in answer.neighbors)
    similarities = [neighbor.similarity for neighbor in answer.neighbors]
    assert similarities == sorted(similarities, reverse=True) and similarities[0] <= 1.0 + 1e-6


@pytest.mark.spark
@pytest.mark.slow
def test_similar_json_answers_each_query_and_reports_the_one_it_cannot_decode(sample_index, tmp_path):
    index, odd, manifest, _ = sample_index
    broken = tmp_path / "photo.jpg"
    broken.write_bytes(b"not an image")
    queries = [str(odd[0]), str(broken), str(odd[-1])]
    result = CliRunner().invoke(app, ["similar", *queries, "--index", str(index), "--k", "3", "--json"])
    assert result.exit_code == 1, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == queries
    first, failed, last = lines
    assert first["label"] == odd[0].parent.name and last["label"] == odd[-1].parent.name
    assert [set(n) for n in first["neighbors"]] == [{"path", "label", "similarity"}] * 3
    assert failed["label"] is None and failed["neighbors"] == [] and failed["error"].startswith("cannot decode image")
    assert "1 of 3 query images could not be read or decoded" in result.stderr
    # what ran, named: the network, its weights file and that file's sha256
    weights_file = f"file://{WEIGHTS.resolve()}"
    assert f"Network: mobilenet, weights {weights_file} (sha256 {manifest.weights_sha256[:12]}...)" in result.stderr


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.s3
def test_queries_can_be_s3_keys_and_prefixes(sample_index, fruit_bucket, s3_server):
    index, _, _, encoder = sample_index
    s3 = S3Settings(s3_endpoint=s3_server.endpoint)
    key = f"{fruit_bucket}/Kiwi/r_155_100.jpg"
    answers = similar([key, f"{fruit_bucket}/Lemon/", f"{fruit_bucket}/Kiwi/gone.jpg"], str(index), s3, encoder=encoder)
    assert answers.answers[0].query == key and answers.answers[0].label == "Kiwi"
    lemons = answers.answers[1:-1]
    assert len(lemons) == 24 and all(answer.label == "Lemon" for answer in lemons)
    assert answers.answers[-1].error == "cannot read image: no such file or object" and answers.failed == 1


@pytest.mark.spark
@pytest.mark.slow
def test_only_the_indexs_own_network_can_query_it(sample_index, spark, tmp_path):
    index, odd, manifest, _ = sample_index
    # its queries are encoded by the engine that made it, and an index of TensorFlow's by TensorFlow
    assert (
        manifest.engine == "litert" and type(encoder_for_manifest(manifest, S3Settings())).__name__ == "LiteRTEncoder"
    )
    on_tensorflow = dataclasses.replace(manifest, engine="tensorflow")
    assert type(encoder_for_manifest(on_tensorflow, S3Settings())).__name__ == "TensorFlowEncoder"
    other = dataclasses.replace(manifest, weights_sha256="0" * 64)  # the weights file changed since
    with pytest.raises(ConfigError, match="are not the ones this output was encoded with"):
        encoder_for_manifest(other, S3Settings())
    # a manifest is not trusted to name what runs: a saved model only with its sha256, and only a model file
    unrecorded = dataclasses.replace(manifest, model="s3://models/planted.keras", weights_sha256=None)
    with pytest.raises(ConfigError, match="names the saved model s3://models/planted.keras without its sha256"):
        encoder_for_manifest(unrecorded, S3Settings())
    planted = tmp_path / "planted.keras"
    planted.write_bytes(b"not a model")
    recorded = dataclasses.replace(manifest, model=str(planted), model_sha256=models.sha256_of(planted))
    with pytest.raises(ConfigError, match="--model planted.keras is not a Keras model file"):
        encoder_for_manifest(recorded, S3Settings())
    reduce(str(index), str(tmp_path / "pca"), S3Settings(), k=4, spark=spark)
    result = CliRunner().invoke(app, ["similar", str(odd[0]), "--index", str(tmp_path / "pca")])
    assert result.exit_code == 2 and "is a `reduce` output" in result.output, result.output
    missing = CliRunner().invoke(app, ["similar", str(odd[0]), "--index", str(tmp_path / "nothing")])
    assert missing.exit_code == 1 and "does not exist or is empty" in missing.output, missing.output
