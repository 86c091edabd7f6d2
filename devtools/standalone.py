"""A Spark standalone cluster on 127.0.0.1 (a master and N workers) started with Spark's own launcher
(`bin/spark-class` of the installed pyspark), for tests. Stop it with `stop()`: kills every pid."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devtools.server_log import log_size, wait_for_line

# Spark logs both through Utils.startServiceOnPort / Master.onStart, in 3.5 and 4.x alike.
MASTER_URL_LINE = re.compile(r"Starting Spark master at (spark://\S+)")
MASTER_UI_LINE = re.compile(r"Successfully started service 'MasterUI' on port (\d+)")


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
    """Start a master and `workers` workers; wait until every worker has registered.

    The master binds ports it picks itself (port 0) and we read them from its log: a port chosen here and
    handed over would be free only until someone else binds it (a worker's own RPC port once took the UI
    port we had chosen, and we then polled the worker)."""
    from sparkyfruit.spark.jars import spark_home

    spark_class = str(spark_home() / "bin" / "spark-class")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    cluster = StandaloneCluster("", "")
    deadline = time.monotonic() + timeout

    def launch(name: str, *args: str) -> None:
        log = open(folder / f"{name}.log", "ab")
        cluster.processes.append(
            subprocess.Popen(
                [spark_class, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        )

    def check_alive() -> None:
        if any(process.poll() is not None for process in cluster.processes):
            raise RuntimeError(f"a Spark daemon exited early; logs in {folder}")

    try:
        master_log = folder / "master.log"
        since = log_size(master_log)
        launch(
            "master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0"
        )
        cluster.master_url = wait_for_line(master_log, since, MASTER_URL_LINE, check_alive, deadline).group(1)
        ui_port = wait_for_line(master_log, since, MASTER_UI_LINE, check_alive, deadline).group(1)
        cluster.ui_url = f"http://127.0.0.1:{ui_port}"
        for index in range(workers):
            work = folder / f"worker-{index}"
            work.mkdir(parents=True, exist_ok=True)
            launch(
                f"worker-{index}",
                "org.apache.spark.deploy.worker.Worker",
                cluster.master_url,
                "--host",
                "127.0.0.1",
                "--cores",
                str(cores),
                "--memory",
                memory,
                "--webui-port",
                "0",
                "--work-dir",
                str(work),
            )
        while time.monotonic() < deadline:
            try:
                if cluster.alive_workers() == workers:
                    return cluster
            except OSError:
                pass
            check_alive()
            time.sleep(0.5)
        raise RuntimeError(f"{workers} workers did not register within {timeout} s; logs in {folder}")
    except BaseException:
        cluster.stop()
        raise
