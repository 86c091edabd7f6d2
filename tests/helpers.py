"""Helpers shared by the tests: where the sample and the weights are, settings for the real-weights
model, and reading an output back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "images"  # byte-for-byte copy of ../shared/data/fruits-360-sample (192 images)
WEIGHTS = ROOT / "examples" / "models" / "mobilenet_2_5_224_tf_no_top.h5"
MASTER = "local[2]"
SCRIPT = str(Path(sys.executable).with_name("sparkyfruit"))  # the installed console script
REAL_MODEL = ["--model", "mobilenet", "--alpha", "0.25", "--weights", str(WEIGHTS)]
SAMPLE_BUCKET = "sample"  # where conftest's sample_outputs encode the sample from
BROKEN_SAMPLE_FILE = "Kiwi/broken.jpg"  # the one undecodable file beside the sample in those outputs


WORKER_HOOKS = ROOT / "tests" / "worker_hooks"  # the tests' faults inside Spark's Python workers


def worker_hooks_env(env: dict[str, str], **hooks: str) -> dict[str, str]:
    """`env` with tests/worker_hooks/ on the Python path (the workers inherit it, also on YARN, whose client
    passes the submitting environment's PYTHONPATH on) and `hooks`, e.g. SPARKYFRUIT_TEST_CRASH_WORKER_ONCE."""
    path = os.pathsep.join(filter(None, [str(WORKER_HOOKS), env.get("PYTHONPATH")]))
    return {**env, "PYTHONPATH": path, **hooks}


def encode_args(images, out, *extra: str) -> list[str]:
    """`encode --input IMAGES --output OUT` with the real-weights model (MobileNet v1 0.25), then `extra`."""
    return ["encode", "--input", str(images), "--output", str(out), *REAL_MODEL, *extra]


def cli(*args: str, env: dict | None = None):
    """The CLI in this process (typer's runner): a run joins the test session's Spark instead of starting one.
    Returns click's Result (exit_code, output, stdout, stderr)."""
    from typer.testing import CliRunner

    from sparkyfruit.cli import app

    return CliRunner().invoke(app, [str(arg) for arg in args], env={"COLUMNS": "400", **(env or {})})


def run_config(**overrides):
    """Settings for the real-weights model used throughout the tests (MobileNet v1 0.25, 256-d)."""
    from sparkyfruit.config import RunConfig

    settings = dict(model="mobilenet", alpha=0.25, weights=str(WEIGHTS), master=MASTER, quiet=True)
    settings.update(overrides)
    return RunConfig(**settings)


def read_output(path) -> dict[str, tuple]:
    """{path: (label, features as a tuple or None, error)} from an output's Parquet files."""
    import pyarrow.dataset as ds

    table = ds.dataset(str(path), format="parquet").to_table()
    return {row["path"]: (row["label"], row["features"], row["error"]) for row in table.to_pylist()}


def spark_environment_while_running(process: subprocess.Popen, stderr_lines: list[str]) -> str:
    """Read stderr until the Spark UI link appears, then fetch the running application's environment."""
    ui = None
    for line in process.stderr:
        stderr_lines.append(line)
        if line.startswith("Spark UI: "):
            ui = line.split(" ", 2)[2].strip()
            break
    assert ui, "".join(stderr_lines)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                "the run ended before its Spark UI was read:\n" + "".join(stderr_lines) + process.stderr.read()
            )
        try:
            with urllib.request.urlopen(f"{ui}/api/v1/applications", timeout=5) as response:
                app_id = json.load(response)[0]["id"]
            with urllib.request.urlopen(f"{ui}/api/v1/applications/{app_id}/environment", timeout=5) as response:
                return response.read().decode()
        except (OSError, IndexError, KeyError):
            time.sleep(0.2)
    raise AssertionError("the Spark UI did not answer while the run was going")


def copies_of_sample(folder: Path, copies: int) -> Path:
    """`copies` × the 192 sample images under `folder`, in the sample's class folders."""
    for copy in range(copies):
        for image in SAMPLE.rglob("*.jpg"):
            target = folder / image.parent.name / f"{copy}_{image.name}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(image.read_bytes())
    return folder


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc (Linux); none where `pid` is gone."""
    children: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as listed:
                children += [int(child) for child in listed.read().split()]
    except OSError:
        pass
    return children


def start_in_own_group(command: list[str]) -> subprocess.Popen:
    """A CLI run in a process group of its own (as a terminal starts it), so a signal reaches all of it:
    the driver, the JVM and the Python workers."""
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, env=env
    )


def group_is_gone(pgid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def seed_hdfs(name_node_uri: str, folder: str, source: Path = SAMPLE) -> int:
    """Copy the sample's class folders to `folder` on HDFS (through hdfs-native); returns the image count.

    The files are written 16 at a time: each close waits about 0.5 s, as the NameNode refuses the first
    `complete` of a file until the DataNode has reported its block, and hdfs-native retries after 500 ms."""
    from concurrent.futures import ThreadPoolExecutor

    from hdfs_native import Client, WriteOptions

    client = Client(name_node_uri)
    images = sorted(source.rglob("*.jpg"))

    def copy(image: Path) -> None:
        with client.create(f"{folder}/{image.parent.name}/{image.name}", WriteOptions(overwrite=True)) as writer:
            writer.write(image.read_bytes())

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(copy, images))  # list(): re-raises the first write that failed
    return len(images)


def by_label_and_name(output: dict[str, tuple]) -> dict[str, tuple]:
    """read_output's rows keyed by "label/file name", to compare outputs of one sample held in two stores."""
    return {"/".join(path.split("/")[-2:]): row for path, row in output.items()}
