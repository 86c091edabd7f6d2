# Quick start: `make demo` and `make test`. Both create .venv and install what they need.
# `make test` is the default set (minutes); `make test-integration` the cases that need processes or machines
# of their own. `make test PYSPARK=3.5.8` runs a set against pyspark 3.5.8 in its own .venv-pyspark3.5.8.
PYTHON ?= python3
PYSPARK ?=
ifeq ($(PYSPARK),)
VENV := .venv
PYSPARK_PIN :=
else
VENV := .venv-pyspark$(PYSPARK)
PYSPARK_PIN := "pyspark==$(PYSPARK).*"
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# the default set (a marker expression); TEST_SET="..." picks another
TEST_SET ?= not integration
# the default set on two pytest workers (pytest-xdist), a module each at a time: each has its own Spark session
# and S3 server, and one computes while the other waits on its JVM (TEST_WORKERS=0: one process)
TEST_WORKERS ?= 2

.PHONY: install demo lint test test-integration test-fast bench bench-scale bench-engines bench-plan clean

$(STAMP): pyproject.toml
	@echo "Installing sparkyfruit and its dependencies (pyspark, tensorflow-cpu: about 2.7 GB) into $(VENV), once..."
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(PYSPARK_PIN) -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m devtools.demo

# ruff (pyproject.toml [tool.ruff]): lint and format check; `make test` runs it first
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# lint, then the default set: every module, both modes, S3, faults, resume, similar, models, the CLI's
# errors (docs/development.md: the sets and their times)
test: lint
	$(BIN)/python -m pytest -m "$(TEST_SET)" -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# runs with processes or machines of their own: the console script starting Spark, SIGINT and SIGKILL of
# process groups, the standalone cluster, YARN and HDFS, memory bounds, every backbone built. Two pytest
# workers (pytest-xdist), a module each at a time: those runs mostly wait on JVMs, clusters and signals. The
# modules go in collection order (tests/conftest.py puts the cluster modules, the longest, first), not by
# their number of tests
INTEGRATION_WORKERS ?= 2
test-integration: $(STAMP)
	$(BIN)/python -m pytest -m integration -n $(INTEGRATION_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# unit and CLI tests only: no Spark, no TensorFlow (a test that imports either fails here), seconds
test-fast: $(STAMP)
	SPARKYFRUIT_LIGHT_TESTS=1 $(BIN)/python -m pytest -m "not spark and not slow and not integration" $(PYTEST_ARGS)

# side by side in one run: the client CPU per S3 GET of each candidate client; the raw model limit, both
# modes and the peers (Ray Data, Daft) at 224 and 100 px, from a folder and the local S3 server; then at
# 100 px the overhead per image with MobileNetV2 and MobileNet v1 0.25 and the start-up split; `similar`'s
# search (NumPy against faiss), latency and accuracy; every backbone of keras.applications built (about 100 minutes)
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python -m benchmarks.s3_get_cpu
	$(BIN)/python -m benchmarks.featurize $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.overhead
	$(BIN)/python -m benchmarks.similar
	$(BIN)/python -m benchmarks.backbones

# N = 10,000 and 100,000 at 100 px from a folder and the local S3 server, the cost of a shard, listing a
# million files, inspect/evaluate on a million rows (about an hour here)
bench-scale: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python -m benchmarks.scale $(BENCH_ARGS)

# every backbone of keras.applications at 100 and 224 px, run by TensorFlow, LiteRT (XNNPACK), ONNX Runtime and
# OpenVINO: conversion, images/s, difference to TensorFlow's vectors (hours here; --models for a few;
# BENCH_ARGS="--jobs 2" runs two backbones at once, about 75 minutes here, where tf2onnx may run out of memory
# on the largest); then one process with N threads against N processes with one thread each
bench-engines: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python -m benchmarks.engines $(BENCH_ARGS)
	$(BIN)/python -m benchmarks.engine_threads

# `sparkyfruit plan`'s prediction against the real encode: both modes, folder and local S3, 100 and 224 px
# (N = 2,000; BENCH_ARGS="--n 2000 20000" adds N = 20,000, about an hour more here)
bench-plan: $(STAMP)
	$(BIN)/python -m benchmarks.plan_accuracy $(BENCH_ARGS)

clean:
	rm -rf .venv .venv-pyspark* demo-out .pytest_cache .cache build *.egg-info
