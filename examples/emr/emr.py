"""Run sparkyfruit on AWS EMR 7.x (Spark 3.5 on YARN). See docs/cluster.md for the walk-through.

    # once: build the wheel, then create a cluster that installs it on every node, runs one encode step
    # and terminates itself when the step is done (or after --idle-timeout without work)
    python -m pip wheel --no-deps -w dist .
    python examples/emr/emr.py create --bucket my-bucket --wheel dist/sparkyfruit-0.1.0-py3-none-any.whl \\
        --input s3://my-bucket/fruits-360/Training --output s3://my-bucket/features/mobilenet_v2

    python examples/emr/emr.py add-step --cluster-id j-XXXX --input s3://... --output s3://...   # a kept cluster
    python examples/emr/emr.py status --cluster-id j-XXXX

Credentials: the standard AWS chain on this machine (env, ~/.aws, SSO). On the cluster, S3 access comes from
the instance role (EMR_EC2_DefaultRole); no key is written into any config, script or step.
Arguments after `--` go to `sparkyfruit encode` unchanged (e.g. -- --mode keys --model resnet50).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_RELEASE = "emr-7.5.0"  # Spark 3.5.2, Hadoop 3.4, Amazon Linux 2023
DEFAULT_INSTANCE_TYPE = "m5.xlarge"  # 4 vCPU, 16 GiB
PREFIX = "/opt/sparkyfruit"  # where bootstrap.sh installs the venv on every node
PYTHON = f"{PREFIX}/bin/python"
BOOTSTRAP = Path(__file__).with_name("bootstrap.sh")


def encode_step(
    input_uri: str,
    output_uri: str,
    extra: list[str] | None = None,
    deploy_mode: str = "cluster",
    action_on_failure: str = "CONTINUE",
) -> dict:
    """An EMR step that runs `sparkyfruit encode` through spark-submit on YARN. EMRFS serves s3:// on EMR,
    so Spark is told to use it (--spark-s3-scheme s3) instead of pulling S3A."""
    for what, uri in (("--input", input_uri), ("--output", output_uri)):
        if not uri.startswith("s3://"):
            raise ValueError(f"{what} must be an s3:// URI on EMR; got {uri!r}.")
    if deploy_mode not in ("cluster", "client"):
        raise ValueError(f"deploy mode must be cluster or client; got {deploy_mode!r}.")
    args = [
        "spark-submit",
        "--deploy-mode",
        deploy_mode,
        # driver (in cluster mode: the YARN application master) and executors run the bootstrap's venv
        "--conf",
        f"spark.pyspark.python={PYTHON}",
        "--conf",
        f"spark.pyspark.driver.python={PYTHON}",
        "--conf",
        f"spark.yarn.appMasterEnv.PYSPARK_PYTHON={PYTHON}",
        "--conf",
        f"spark.executorEnv.PYSPARK_PYTHON={PYTHON}",
        f"{PREFIX}/submit.py",
        "encode",
        "--input",
        input_uri,
        "--output",
        output_uri,
        "--spark-s3-scheme",
        "s3",
        *(extra or []),
    ]
    return {
        "Name": f"sparkyfruit encode {input_uri} -> {output_uri}",
        "ActionOnFailure": action_on_failure,
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
    }


def bootstrap_action(script_uri: str, wheel_uri: str, pyspark_spec: str = "3.5.*") -> dict:
    return {
        "Name": "install sparkyfruit",
        "ScriptBootstrapAction": {"Path": script_uri, "Args": [wheel_uri, pyspark_spec]},
    }


def cluster_request(
    *,
    name: str,
    bootstrap: dict,
    steps: list[dict],
    log_uri: str,
    release: str = DEFAULT_RELEASE,
    instance_type: str = DEFAULT_INSTANCE_TYPE,
    core_count: int = 2,
    idle_timeout: int = 3600,
    keep_alive: bool = False,
    subnet_id: str | None = None,
    key_name: str | None = None,
) -> dict:
    """The run_job_flow request. Without keep_alive the cluster ends when its last step ends; with it,
    it ends after idle_timeout seconds without work (EMR's auto-termination)."""
    if not 60 <= idle_timeout <= 7 * 24 * 3600:
        raise ValueError(f"idle timeout must be 60 s to 7 days; got {idle_timeout}.")
    instances: dict = {
        "InstanceGroups": [
            {"Name": "primary", "InstanceRole": "MASTER", "InstanceType": instance_type, "InstanceCount": 1},
            {"Name": "core", "InstanceRole": "CORE", "InstanceType": instance_type, "InstanceCount": core_count},
        ],
        "KeepJobFlowAliveWhenNoSteps": keep_alive,
        "TerminationProtected": False,
    }
    if subnet_id:
        instances["Ec2SubnetId"] = subnet_id
    if key_name:
        instances["Ec2KeyName"] = key_name  # for the SSH tunnel to the Spark UI
    return {
        "Name": name,
        "ReleaseLabel": release,
        "Applications": [{"Name": "Spark"}],
        "Instances": instances,
        "BootstrapActions": [bootstrap],
        "Steps": steps,
        "LogUri": log_uri,
        "JobFlowRole": "EMR_EC2_DefaultRole",  # instance profile: S3 access without keys
        "ServiceRole": "EMR_DefaultRole",
        "AutoTerminationPolicy": {"IdleTimeout": idle_timeout},
        "VisibleToAllUsers": True,
        "Tags": [{"Key": "app", "Value": "sparkyfruit"}],
    }


def upload(s3, bucket: str, wheel: Path, prefix: str = "sparkyfruit") -> tuple[str, str]:
    """Put bootstrap.sh and the wheel where every node can fetch them; returns (script URI, wheel URI)."""
    if not wheel.is_file() or wheel.suffix != ".whl":
        raise ValueError(
            f"--wheel must be a built wheel file; got {str(wheel)!r}. Build it with "
            "`python -m pip wheel --no-deps -w dist .`."
        )
    s3.upload_file(str(BOOTSTRAP), bucket, f"{prefix}/bootstrap.sh")
    s3.upload_file(str(wheel), bucket, f"{prefix}/{wheel.name}")
    return f"s3://{bucket}/{prefix}/bootstrap.sh", f"s3://{bucket}/{prefix}/{wheel.name}"


def console_url(region: str, cluster_id: str) -> str:
    return f"https://console.aws.amazon.com/emr/home?region={region}#/clusterDetails/{cluster_id}"


def main(argv: list[str] | None = None, session=None) -> int:
    import boto3

    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default=None)
    parser.add_argument("--endpoint-url", default=None, help="an S3/EMR-compatible endpoint (tests)")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="upload, create the cluster, run one encode step")
    create.add_argument("--bucket", required=True, help="where the wheel, bootstrap script and logs go")
    create.add_argument("--wheel", required=True, type=Path)
    create.add_argument("--name", default="sparkyfruit")
    create.add_argument("--release", default=DEFAULT_RELEASE)
    create.add_argument("--instance-type", default=DEFAULT_INSTANCE_TYPE)
    create.add_argument("--core-count", type=int, default=2)
    create.add_argument("--idle-timeout", type=int, default=3600, help="seconds without work before it ends")
    create.add_argument("--keep-alive", action="store_true", help="keep the cluster after the step (until idle)")
    create.add_argument("--pyspark", default="3.5.*", help="pip spec matching the release's Spark")
    create.add_argument("--subnet-id")
    create.add_argument("--key-name", help="EC2 key pair, for an SSH tunnel to the Spark UI")
    for command in (create, step := commands.add_parser("add-step", help="run encode on a kept cluster")):
        command.add_argument("--input", required=True)
        command.add_argument("--output", required=True)
        command.add_argument("--deploy-mode", default="cluster", choices=["cluster", "client"])
    step.add_argument("--cluster-id", required=True)
    status = commands.add_parser("status", help="cluster state and its steps")
    status.add_argument("--cluster-id", required=True)
    args = parser.parse_args(argv)

    session = session or boto3.session.Session(region_name=args.region)
    region = session.region_name or "us-east-1"
    emr = session.client("emr", region_name=region, endpoint_url=args.endpoint_url)
    try:
        if args.command == "create":
            s3 = session.client("s3", region_name=region, endpoint_url=args.endpoint_url)
            script_uri, wheel_uri = upload(s3, args.bucket, args.wheel)
            request = cluster_request(
                name=args.name,
                release=args.release,
                instance_type=args.instance_type,
                core_count=args.core_count,
                bootstrap=bootstrap_action(script_uri, wheel_uri, args.pyspark),
                steps=[
                    encode_step(
                        args.input,
                        args.output,
                        extra,
                        args.deploy_mode,
                        "CONTINUE" if args.keep_alive else "TERMINATE_CLUSTER",
                    )
                ],
                log_uri=f"s3://{args.bucket}/sparkyfruit/logs/",
                idle_timeout=args.idle_timeout,
                keep_alive=args.keep_alive,
                subnet_id=args.subnet_id,
                key_name=args.key_name,
            )
            cluster_id = emr.run_job_flow(**request)["JobFlowId"]
            print(
                f"cluster {cluster_id} starting ({args.release}, 1 primary + {args.core_count} core "
                f"{args.instance_type}); logs in s3://{args.bucket}/sparkyfruit/logs/{cluster_id}/"
            )
            print(f"console, Spark History Server link: {console_url(region, cluster_id)}")
        elif args.command == "add-step":
            ids = emr.add_job_flow_steps(
                JobFlowId=args.cluster_id, Steps=[encode_step(args.input, args.output, extra, args.deploy_mode)]
            )
            print(f"step {ids['StepIds'][0]} added to {args.cluster_id}")
        else:
            cluster = emr.describe_cluster(ClusterId=args.cluster_id)["Cluster"]
            print(f"{args.cluster_id}: {cluster['Status']['State']}")
            for item in emr.list_steps(ClusterId=args.cluster_id)["Steps"]:
                print(f"  {item['Id']} {item['Status']['State']}: {item['Name']}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
