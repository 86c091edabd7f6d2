#!/bin/bash
# EMR bootstrap action: install sparkyfruit into its own virtualenv on every node (primary, core, task).
# EMR runs it on each node before Spark is installed, as the hadoop user with sudo.
#
#   bootstrap.sh s3://BUCKET/sparkyfruit/sparkyfruit-X.Y.Z-py3-none-any.whl [PYSPARK_SPEC]
#
# PYSPARK_SPEC must match the release's Spark (EMR 7.x ships Spark 3.5): default "3.5.*". Under
# spark-submit EMR's own pyspark comes first on the Python path; this pin only keeps pip from pulling 4.x.
# No credentials here: `aws s3 cp` uses the instance role (EMR_EC2_DefaultRole).
set -euo pipefail

WHEEL_URI="${1:?usage: bootstrap.sh s3://bucket/path/sparkyfruit-X.Y.Z-py3-none-any.whl [pyspark spec, e.g. 3.5.*]}"
PYSPARK_SPEC="${2:-3.5.*}"
PREFIX="${SPARKYFRUIT_PREFIX:-/opt/sparkyfruit}"
PYTHON="${SPARKYFRUIT_PYTHON:-python3.11}"  # TensorFlow 2.16+ needs 3.9+; Amazon Linux 2023 has 3.9 and 3.11

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    sudo dnf install -y python3.11
fi
download="$(mktemp -d)"
aws s3 cp --only-show-errors "$WHEEL_URI" "$download/"
sudo "$PYTHON" -m venv "$PREFIX"
sudo "$PREFIX/bin/python" -m pip install --quiet --upgrade pip
sudo "$PREFIX/bin/python" -m pip install --quiet "$download"/*.whl "pyspark==$PYSPARK_SPEC"
# a fixed path for the spark-submit step, whatever the Python version inside the venv
sudo ln -sf "$("$PREFIX/bin/python" -m sparkyfruit.submit)" "$PREFIX/submit.py"
"$PREFIX/bin/sparkyfruit" --version
