"""A Spark standalone cluster on 127.0.0.1 (a master and N workers) started with Spark's own launcher
(`bin/spark-class` of the installed pyspark), for tests. Stop it with `stop()`: kills every pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devtools.local_s3 import free_port


@dataclass
class StandaloneCluster:
    master_url: str
    ui_url: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def alive_workers(self) -> int:
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=5) as response:
            state = json.load(response)
        return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


def start(folder: Path, workers: int = 2, cores: int = 1, memory: str = "2g", timeout: float = 90) -> StandaloneCluster:
    """Start a master and `workers` workers; wait until every worker has registered."""
    from sparkyfruit.session import spark_home

    spark_class = str(spark_home() / "bin" / "spark-class")
    port, ui_port = free_port(), free_port()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    cluster = StandaloneCluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}")

    def launch(name: str, *args: str) -> None:
        log = open(folder / f"{name}.log", "ab")
        cluster.processes.append(subprocess.Popen(
            [spark_class, *args], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        ))

    try:
        launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
               "--webui-port", str(ui_port))
        for index in range(workers):
            work = folder / f"worker-{index}"
            work.mkdir(parents=True, exist_ok=True)
            launch(f"worker-{index}", "org.apache.spark.deploy.worker.Worker", cluster.master_url,
                   "--host", "127.0.0.1", "--cores", str(cores), "--memory", memory, "--webui-port", "0",
                   "--work-dir", str(work))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if cluster.alive_workers() == workers:
                    return cluster
            except OSError:
                pass
            if any(process.poll() is not None for process in cluster.processes):
                raise RuntimeError(f"a Spark daemon exited early; logs in {folder}")
            time.sleep(0.5)
        raise RuntimeError(f"{workers} workers did not register within {timeout} s; logs in {folder}")
    except BaseException:
        cluster.stop()
        raise
