"""examples/emr: the step and cluster definitions, the bootstrap script (run against stub commands), and the
boto3 calls against the local moto server. What needs real AWS is listed in docs/cluster.md."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from devtools import local_s3
from tests.helpers import ROOT

spec = importlib.util.spec_from_file_location("emr_example", ROOT / "examples" / "emr" / "emr.py")
emr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(emr)


def test_encode_step_runs_the_bootstrapped_venv_through_spark_submit_on_emrfs():
    step = emr.encode_step("s3://b/Training", "s3://b/features", ["--mode", "keys"])
    args = step["HadoopJarStep"]["Args"]
    assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
    assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
    confs = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--conf")
    assert confs == {
        "spark.pyspark.python": "/opt/sparkyfruit/bin/python",
        "spark.pyspark.driver.python": "/opt/sparkyfruit/bin/python",
        "spark.yarn.appMasterEnv.PYSPARK_PYTHON": "/opt/sparkyfruit/bin/python",
        "spark.executorEnv.PYSPARK_PYTHON": "/opt/sparkyfruit/bin/python",
    }
    command = args[args.index("/opt/sparkyfruit/submit.py") + 1 :]
    assert command == [
        "encode",
        "--input",
        "s3://b/Training",
        "--output",
        "s3://b/features",
        "--spark-s3-scheme",
        "s3",
        "--mode",
        "keys",
    ]


def test_the_step_arguments_are_accepted_by_sparkyfruits_own_cli(tmp_path):
    """The options the step passes exist in this version of the CLI (a renamed flag would break EMR runs)."""
    from typer.testing import CliRunner

    from sparkyfruit.cli import app

    args = emr.encode_step("s3://fruit/Training", "s3://fruit/features")["HadoopJarStep"]["Args"]
    command = args[args.index("/opt/sparkyfruit/submit.py") + 1 :]
    # a bad value added last stops at the config checks, before any S3 call: every option before it parsed
    result = CliRunner().invoke(app, [*command, "--batch-size", "0"])
    assert result.exit_code == 2 and "--batch-size must be between 1 and 4096; got 0" in result.output, result.output


@pytest.mark.parametrize("bad", ["/local/folder", "s3a://b/x", "hdfs:///x"])
def test_steps_refuse_non_s3_locations(bad):
    with pytest.raises(ValueError, match="must be an s3:// URI on EMR"):
        emr.encode_step(bad, "s3://b/features")


def test_cluster_request_uses_roles_and_ends_itself():
    request = emr.cluster_request(
        name="n",
        bootstrap=emr.bootstrap_action("s3://b/boot.sh", "s3://b/w.whl"),
        steps=[emr.encode_step("s3://b/in", "s3://b/out")],
        log_uri="s3://b/logs/",
    )
    assert request["ReleaseLabel"].startswith("emr-7.")
    assert request["Applications"] == [{"Name": "Spark"}]
    assert request["JobFlowRole"] == "EMR_EC2_DefaultRole" and request["ServiceRole"] == "EMR_DefaultRole"
    assert request["Instances"]["KeepJobFlowAliveWhenNoSteps"] is False
    assert request["AutoTerminationPolicy"] == {"IdleTimeout": 3600}
    assert request["BootstrapActions"][0]["ScriptBootstrapAction"]["Args"] == ["s3://b/w.whl", "3.5.*"]
    text = json.dumps(request).lower()
    assert "secret" not in text and "accesskey" not in text and "access_key" not in text
    with pytest.raises(ValueError, match="idle timeout"):
        emr.cluster_request(name="n", bootstrap={}, steps=[], log_uri="s3://b/", idle_timeout=10)


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_bootstrap_installs_the_wheel_into_a_venv_with_stubbed_node_commands(tmp_path):
    """bootstrap.sh on a fake node: sudo, dnf, aws and python are stubs that record what they are asked."""
    bin_dir, calls, prefix = tmp_path / "bin", tmp_path / "calls.log", tmp_path / "opt" / "sparkyfruit"
    bin_dir.mkdir()
    _stub(bin_dir, "sudo", 'exec "$@"\n')
    _stub(bin_dir, "dnf", f'echo "dnf $*" >> {calls}\n')
    _stub(bin_dir, "aws", f'echo "aws $*" >> {calls}\ntouch "${{@: -1}}/sparkyfruit-0.1.0-py3-none-any.whl"\n')
    venv_python = (
        f'echo "venv-python $*" >> {calls}\n'
        'if [ "$2" = "sparkyfruit.submit" ]; then echo /site/sparkyfruit/submit.py; fi\n'
    )
    _stub(
        bin_dir,
        "python3.11",
        f"""echo "python3.11 $*" >> {calls}
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin"
  printf '%s\\n' '#!/bin/bash' '{venv_python}' > "$3/bin/python"
  printf '%s\\n' '#!/bin/bash' 'echo "sparkyfruit $*" >> {calls}' > "$3/bin/sparkyfruit"
  chmod +x "$3/bin/python" "$3/bin/sparkyfruit"
fi
""",
    )
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SPARKYFRUIT_PREFIX": str(prefix), "HOME": str(tmp_path)}
    script = ROOT / "examples" / "emr" / "bootstrap.sh"
    result = subprocess.run(
        ["bash", str(script), "s3://b/sparkyfruit/sparkyfruit-0.1.0-py3-none-any.whl"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    log = calls.read_text().splitlines()
    assert not any(line.startswith("dnf") for line in log)  # python3.11 was there already
    assert log[0].startswith("aws s3 cp --only-show-errors s3://b/sparkyfruit/sparkyfruit-0.1.0-py3-none-any.whl ")
    assert f"python3.11 -m venv {prefix}" in log
    install = next(line for line in log if "pip install --quiet" in line and ".whl" in line)
    assert install.endswith("sparkyfruit-0.1.0-py3-none-any.whl pyspark==3.5.*")
    assert os.readlink(prefix / "submit.py") == "/site/sparkyfruit/submit.py"
    assert log[-1] == "sparkyfruit --version"

    missing = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode != 0 and "usage: bootstrap.sh s3://" in missing.stderr


@pytest.mark.s3
def test_create_uploads_and_starts_a_cluster_on_the_local_server(s3, tmp_path, capsys):
    """The boto3 calls of `emr.py create` and `add-step`, against moto's server over HTTP."""
    client = local_s3.client(s3.endpoint)
    client.create_bucket(Bucket="emr-bucket")
    wheel = tmp_path / "sparkyfruit-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel bytes")
    common = ["--endpoint-url", s3.endpoint, "--region", "us-east-1"]
    code = emr.main(
        [
            *common,
            "create",
            "--bucket",
            "emr-bucket",
            "--wheel",
            str(wheel),
            "--input",
            "s3://emr-bucket/Training",
            "--output",
            "s3://emr-bucket/features",
            "--",
            "--mode",
            "keys",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    cluster_id = printed.split()[1]
    assert cluster_id.startswith("j-") and "clusterDetails/" + cluster_id in printed

    keys = {item["Key"] for item in client.list_objects_v2(Bucket="emr-bucket")["Contents"]}
    assert keys == {"sparkyfruit/bootstrap.sh", "sparkyfruit/sparkyfruit-0.1.0-py3-none-any.whl"}
    uploaded = client.get_object(Bucket="emr-bucket", Key="sparkyfruit/bootstrap.sh")["Body"].read()
    assert uploaded == (ROOT / "examples" / "emr" / "bootstrap.sh").read_bytes()

    import boto3

    service = boto3.client("emr", endpoint_url=s3.endpoint, region_name="us-east-1")
    cluster = service.describe_cluster(ClusterId=cluster_id)["Cluster"]
    assert cluster["ReleaseLabel"] == emr.DEFAULT_RELEASE and cluster["AutoTerminate"] is True
    actions = service.list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"]
    assert actions[0]["ScriptPath"] == "s3://emr-bucket/sparkyfruit/bootstrap.sh"
    assert actions[0]["Args"] == ["s3://emr-bucket/sparkyfruit/sparkyfruit-0.1.0-py3-none-any.whl", "3.5.*"]
    step_args = service.list_steps(ClusterId=cluster_id)["Steps"][0]["Config"]["Args"]
    assert step_args[-2:] == ["--mode", "keys"] and "s3://emr-bucket/features" in step_args

    assert (
        emr.main(
            [
                *common,
                "add-step",
                "--cluster-id",
                cluster_id,
                "--input",
                "s3://emr-bucket/Test",
                "--output",
                "s3://emr-bucket/features-test",
            ]
        )
        == 0
    )
    assert len(service.list_steps(ClusterId=cluster_id)["Steps"]) == 2
    assert emr.main([*common, "status", "--cluster-id", cluster_id]) == 0
    assert "sparkyfruit encode s3://emr-bucket/Test" in capsys.readouterr().out

    assert (
        emr.main(
            [
                *common,
                "create",
                "--bucket",
                "emr-bucket",
                "--wheel",
                str(tmp_path / "missing.whl"),
                "--input",
                "s3://emr-bucket/Training",
                "--output",
                "s3://emr-bucket/features",
            ]
        )
        == 2
    )
