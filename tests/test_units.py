"""Fast tests of pure pieces: the one-line summary of a Spark failure, the stratified split, a batch's rows
and vectors as Arrow, and the options a run gives Spark."""

from __future__ import annotations

import io
import os

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from sparkyfruit import shards
from sparkyfruit.errors import failure_summary
from sparkyfruit.evaluate import stratified_split
from sparkyfruit.featurize import EMPTY_FILE_ERROR, _features_array, decode_image, featurize_batch
from sparkyfruit.models import ModelSpec
from sparkyfruit.s3_settings import S3Settings
from sparkyfruit.shards import task_count
from sparkyfruit.spark.options import DAEMON_MODULE_KEY, is_python_worker, spark_options, tool_options
from tests.helpers import SAMPLE, run_config


def test_failure_summary_keeps_the_innermost_cause_and_the_file():
    text = (
        "An error occurred while calling o123.parquet.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 1.0 failed\n"
        "Caused by: org.apache.spark.SparkException: Encountered error while reading file "
        "s3a://fruit/Training/Kiwi/1.jpg. Details:\n"
        "Caused by: java.io.EOFException: Premature end of Content-Length delimited message body\n"
        "\tat org.apache.http.impl.io.ContentLengthInputStream.read(ContentLengthInputStream.java:178)\n"
        "JVM stacktrace:\norg.apache.spark.SparkException: outer\n"
    )
    summary = failure_summary(Exception(text))
    assert summary.startswith("java.io.EOFException: Premature end of Content-Length delimited message body")
    assert summary.endswith("(while reading s3a://fruit/Training/Kiwi/1.jpg)")
    assert failure_summary(ValueError("")) == "ValueError"


def test_stratified_split_holds_out_the_same_share_of_every_label_and_is_seeded():
    labels = ["a"] * 10 + ["b"] * 4 + ["c"]
    train, test = stratified_split(labels, 0.5, seed=0)
    assert sorted(train + test) == list(range(15)) and not set(train) & set(test)
    held = [labels[i] for i in test]
    assert held.count("a") == 5 and held.count("b") == 2 and held.count("c") == 0  # one image: train only
    assert stratified_split(labels, 0.5, seed=0) == (train, test)
    assert stratified_split(labels, 0.5, seed=1) != (train, test)


class FakeEncoder:
    """The network's place taken by the mean of each image: featurize_batch's own logic under test."""

    spec = ModelSpec("mobilenet", 0.25, 8, "none", batch_size=2)
    dim = 3

    def encode(self, images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1).mean(axis=1, keepdims=True).repeat(3, axis=1)


def jpeg(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_featurize_batch_gives_vectors_to_good_rows_and_an_error_to_each_bad_one():
    contents = [jpeg((255, 255, 255)), b"", b"<html>", None, jpeg((0, 0, 0))]
    errors = [None, None, None, "cannot read image: gone", None]
    result = featurize_batch(FakeEncoder(), contents, errors)
    assert result["decoded_rows"] == [0, 4]
    assert result["errors"][:2] == [None, EMPTY_FILE_ERROR] and result["errors"][4] is None
    assert result["errors"][2].startswith("cannot decode image: not an image file")
    assert result["errors"][3] == "cannot read image: gone"  # the source's reason is kept
    assert result["vectors"].shape == (2, 3) and result["vectors"][0, 0] > 250 > 5 > result["vectors"][1, 0]

    column = _features_array(5, result)
    assert column.type == pa.list_(pa.float32())
    values = column.to_pylist()
    assert values[1] is None and values[2] is None and values[3] is None
    assert values[0] == pytest.approx(list(result["vectors"][0])) and len(values[4]) == 3


def pillow_pixels(content: bytes, size: int) -> np.ndarray:
    """What keras.utils.load_img(..., target_size=(size, size), interpolation="bilinear") gives, as uint8."""
    with Image.open(io.BytesIO(content)) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR))


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("size", [100, 224, 64])
def test_decode_gives_pillows_pixels_for_every_kind_of_image(size):
    """The libjpeg-turbo path (simplejpeg) must not change a vector: the sample's JPEGs, at their own size (into
    the batch's buffer) and resized, and the kinds it leaves to Pillow (CMYK JPEG, PNG), all equal Pillow's."""
    rng = np.random.RandomState(0)
    noise = Image.fromarray(rng.randint(0, 255, (70, 90, 3), np.uint8))
    contents = [path.read_bytes() for path in sorted(SAMPLE.rglob("*.jpg"))[::6]]
    contents += [
        encoded(noise, "JPEG", quality=90),
        encoded(noise.convert("L"), "JPEG"),
        encoded(noise.convert("CMYK"), "JPEG"),
        encoded(noise, "JPEG", progressive=True),
        encoded(noise, "PNG"),
        encoded(noise.convert("RGBA"), "PNG"),
    ]
    buffer = np.zeros((len(contents), size, size, 3), np.uint8)
    for index, content in enumerate(contents):
        expected = pillow_pixels(content, size)
        assert np.array_equal(decode_image(content, size), expected), index
        row = buffer[index]
        assert decode_image(content, size, out=row) is row
        assert np.array_equal(buffer[index], expected), index


def test_a_truncated_jpeg_is_an_error_row_not_a_grey_image():
    whole = (SAMPLE / "Avocado").glob("*.jpg").__next__().read_bytes()
    result = featurize_batch(FakeEncoder(), [whole[: len(whole) // 2], whole], [None, None])
    assert result["decoded_rows"] == [1]
    assert result["errors"][0].startswith("cannot decode image: OSError") and "truncated" in result["errors"][0]


def test_a_jpeg_that_declares_a_huge_size_meets_pillows_bomb_limit_not_a_huge_allocation(monkeypatch):
    """simplejpeg would allocate the declared 2.7 GB before it finds the data short: it must not be called."""
    import simplejpeg

    def refuse(*args, **kwargs):
        raise AssertionError("simplejpeg.decode_jpeg called for a decompression bomb")

    monkeypatch.setattr(simplejpeg, "decode_jpeg", refuse)
    small = encoded(Image.new("RGB", (16, 16), (200, 10, 10)), "JPEG")
    frame = small.index(b"\xff\xc0")  # SOF0: length (2), precision (1), height (2), width (2)
    bomb = small[: frame + 5] + (30000).to_bytes(2, "big") * 2 + small[frame + 9 :]
    result = featurize_batch(FakeEncoder(), [bomb], [None])
    assert result["decoded_rows"] == []
    assert result["errors"][0].startswith("cannot decode image: DecompressionBombError"), result["errors"][0]


@pytest.mark.slow
def test_the_encoder_traces_its_network_once_for_every_batch_size():
    """A task's last batch is smaller than the rest: it must reuse the graph, and give Keras's own vectors."""
    from sparkyfruit.engines import TensorFlowEncoder as Encoder

    # all cores: this process may build other networks after this test, with the thread pools set here
    encoder = Encoder(ModelSpec("mobilenet", 0.25, 32, "none", batch_size=8), threads=os.cpu_count())
    images = np.random.RandomState(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    for rows in (8, 3, 1, 8):
        expected = encoder.model.predict_on_batch(encoder.preprocess(images[:rows].copy()))
        np.testing.assert_allclose(encoder.encode(images[:rows].copy()), expected, atol=1e-6)
    assert encoder._forward.experimental_get_tracing_count() == 1


def test_tasks_hold_at_most_images_per_task_and_every_core_gets_two():
    assert task_count(192, 2, 1024) == 4 and task_count(3, 2, 1024) == 3 and task_count(1, 8, 1024) == 1
    assert task_count(100_000, 2, 1024) == 98 and task_count(10_240, 16, 1024) == 32
    assert task_count(100_000, 2, 100_000) == 4


def test_spark_options_of_a_local_run_and_of_a_tool(tmp_path):
    options = spark_options(run_config(input=str(SAMPLE), output=str(tmp_path / "o"), batch_size=16))
    assert options["spark.master"] == "local[2]"
    assert options["spark.sql.execution.arrow.maxRecordsPerBatch"] == "16"
    assert "-XX:TieredStopAtLevel=1" in options["spark.driver.extraJavaOptions"]
    assert "spark.jars.packages" not in options  # nothing on S3: no S3A
    assert not any("secret" in key.lower() or "access.key" in key for key in options)
    # the session's credentials (conftest's aws_env) are in the environment, and in no value that reaches Spark
    secrets = [os.environ["AWS_SECRET_ACCESS_KEY"], os.environ["AWS_ACCESS_KEY_ID"]]
    assert not [value for value in options.values() if any(secret in value for secret in secrets)]
    tool = tool_options(S3Settings(s3_endpoint="http://127.0.0.1:9"), "sparkyfruit-reduce", uses_s3=True)
    assert tool["spark.master"] == "local[*]" and "hadoop-aws" in tool["spark.jars.packages"]
    assert tool["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9"
    assert not [value for value in tool.values() if any(secret in value for secret in secrets)]


def test_a_python_worker_is_found_by_its_module_and_the_local_jvm_is_not(tmp_path):
    options = spark_options(run_config(input=str(SAMPLE), output=str(tmp_path / "o")))
    daemon = options[DAEMON_MODULE_KEY]
    assert is_python_worker(["/usr/bin/python3", "-m", daemon, "pyspark.worker"])
    assert is_python_worker(["python", "-m", "pyspark.daemon"])
    # the JVM that a local run starts names the daemon module in its command line, and is not a worker
    jvm = ["java", "-cp", "jars/*", "org.apache.spark.deploy.SparkSubmit", "--conf", f"{DAEMON_MODULE_KEY}={daemon}"]
    assert not is_python_worker(jvm)


def test_progress_counts_images_never_past_the_total_and_shows_a_rate():
    from types import SimpleNamespace

    from sparkyfruit.spark.progress import SparkProgress, images_column

    class Context:
        def accumulator(self, value):
            return SimpleNamespace(value=value)

        def setJobGroup(self, group, description):
            self.group = group

    progress = SparkProgress(Context(), "encoding", total=200, enabled=False)
    progress.counter.value = 150
    assert progress.done == 150
    progress.counter.value = 250  # a retried task added its rows twice
    assert progress.done == 200
    column = images_column()
    assert column.render(SimpleNamespace(speed=None, completed=150, elapsed=3.0)).plain == "50/s"
    assert column.render(SimpleNamespace(speed=None, completed=0, elapsed=1.0)).plain == "-/s"


def test_shards_cover_what_is_not_done_once_each_and_skip_what_is_done():
    listing = [f"file:///in/{index:03d}.jpg" for index in range(10)]
    plan = shards.plan(listing, set(), 4)
    assert [(s.number, s.start, s.stop, s.skip) for s in plan] == [(1, 0, 4, []), (2, 4, 8, []), (3, 8, 10, [])]
    done = {listing[0], listing[2], listing[3], listing[9]}  # 2 and 3 lie inside the first shard's range
    plan = shards.plan(listing, done, 3, first_number=5)
    assert [(s.number, s.start, s.stop, s.skip, s.size) for s in plan] == [(5, 1, 6, [2, 3], 3), (6, 6, 9, [], 3)]
    covered = [listing[p] for shard in plan for p in shard.positions()]
    assert sorted(covered) == sorted(set(listing) - done) and len(covered) == len(set(covered))
    assert shards.plan(listing, set(listing), 3) == []


def test_shards_follow_the_measured_rate_and_tasks_stay_short():
    sizing = shards.Sizing(setting=None, parallelism=2, images_per_task=1024)
    # before any rate: a few small tasks per core, so the first commit and progress come early
    assert (sizing.shard_images(), sizing.task_images()) == (2 * 2 * 16, 16)
    sizing.observe(64, 2.0)  # the tasks spent 2 s on 64 images: 32 per second per core
    assert sizing.task_images() == 32 * shards.TASK_SECONDS
    assert sizing.shard_images() == 2 * 32 * shards.SHARD_SECONDS
    sizing.observe(45_000 - 64, 60.0 - 2.0)  # a fast network: tasks are capped by images_per_task
    assert sizing.task_images() == 1024 and sizing.shard_images() == 2 * 750 * shards.SHARD_SECONDS
    slow = shards.Sizing(setting=None, parallelism=200, images_per_task=1024, slot_rate=0.01)
    assert slow.task_images() == 1 and slow.shard_images() == 2 * 200  # every core still gets two tasks
    fixed = shards.Sizing(setting=96, parallelism=200, images_per_task=512, slot_rate=1.0)
    assert (fixed.shard_images(), fixed.task_images()) == (96, 512)  # a setting is taken as given


def test_df_tasks_cut_up_front_make_shards_of_the_set_size_when_they_can():
    # two tasks per core, made a divisor of the shard: every shard is whole tasks and exactly its size
    assert shards.whole_task_images(32, 2, 1024) == 8
    assert shards.whole_task_images(30, 2, 1024) == 6  # 8 does not divide 30; 6 does
    assert shards.whole_task_images(10_000, 2, 1024) == 1000  # none above images_per_task
    assert shards.whole_task_images(10_007, 2, 1024) == 1001  # a prime: no close divisor, shards of 10,010
    assert shards.whole_task_images(3, 8, 1024) == 1


def test_a_planned_scan_gives_each_shard_whole_consecutive_tasks():
    from sparkyfruit.sources.df import PlannedScan

    planned = PlannedScan(None, [["a", "b"], ["c", "d"], ["e", "f"], ["g"]])
    assert planned.take(4) == ([0, 1], ["a", "b", "c", "d"])
    assert planned.take(1) == ([2], ["e", "f"])  # at least one task, though larger than asked
    assert planned.take(100) == ([3], ["g"])
    assert planned.take(4) is None
    # images that no task reads (the scan leaves out 0-byte files) go with the first shard, for error rows
    planned = PlannedScan(None, [["a"], ["b"]], unplanned=["z"])
    assert planned.take(1) == ([0], ["a", "z"])
    assert planned.take(1) == ([1], ["b"])
    assert planned.take(1) is None
    only_unplanned = PlannedScan(None, [], unplanned=["y", "z"])
    assert only_unplanned.take(5) == ([], ["y", "z"]) and only_unplanned.take(5) is None
    assert only_unplanned.run([]) == []


def test_the_planner_cuts_each_shard_when_asked_as_plan_does():
    listing = [f"file:///in/{index:03d}.jpg" for index in range(10)]
    done = {listing[0], listing[2], listing[3], listing[9]}
    planner = shards.Planner(listing, done, first_number=5)
    assert planner.remaining == 6
    cut = [planner.next(size) for size in (1, 4, 3)]
    assert [(s.number, s.start, s.stop, s.skip, s.size) for s in cut[:2]] == [(5, 1, 2, [], 1), (6, 4, 8, [], 4)]
    assert cut[2].size == 1 and planner.remaining == 0 and planner.next(3) is None
