# Two commands for a new user: `make run` and `make test`. Both install into .venv first;
# the install is skipped when pyproject.toml has not changed since the last one.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch 2.14.1 + torchvision 0.29.1: the pair timm needs; pinned so pip takes the local wheels
TORCH := torch==2.14.1 torchvision==0.29.1
export DVC_NO_ANALYTICS := 1
export PYTHONHASHSEED := 0

.PHONY: install run serve test test-fast clean chromium image run-containers

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[pipeline,dev]' $(TORCH)
	touch $(STAMP)

# The main job: the DVC pipeline (synth -> ingest -> split -> trials -> select -> evaluate ->
# register -> promote -> report) on the embedded dataset.
run: install
	test -d .git || (git init -q && git add -A && git -c user.name=sslmae -c user.email=sslmae@localhost commit -qm "initial")
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc metrics show

# The local registry's champion (what `make run` promoted) on KServe's model server at http://127.0.0.1:$(PORT):
# POST /v2/models/sslmae/infer (v2) or /v1/models/sslmae:predict (v1); README "Serving" has a request.
PORT ?= 8080
MODEL ?= models:/sslmae@champion
serve: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sslmae serve --model $(MODEL) --port $(PORT)

# Debian's Chromium renders the HTML report in a test (skipped, with a reason, where it cannot be installed)
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium not installed: the report's browser test will be skipped"

# The pipeline image (docker/Dockerfile) as sslmae:dev, with docker where a docker engine answers, else
# podman (installed with apt-get when missing). Skipped while nothing it is built from has changed.
# BASE=auto|production|local: production is the CUDA PyTorch runtime image; local is Debian plus the
# pinned torch, made here, for machines that reach no image registry; auto (the default) takes
# production when it can be pulled, else local. docker/build.sh has the details.
BASE ?= auto
IMAGE ?= sslmae:dev
image:
	bash docker/build.sh --tag $(IMAGE) --base $(BASE)

# The whole Kubeflow DAG on the embedded synthetic data, every step in $(IMAGE) through kfp's DockerRunner
# (docker, else podman's Docker API, started and stopped here), with an MLflow server the containers reach
# ($MLFLOW_TRACKING_URI when it is http(s), else one started on runs/kfp-containers/mlflow and stopped after).
run-containers: install image
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/sslmae pipeline run-containers --image $(IMAGE)

# Every test, by scope (tests/unit, integration, system, data); pytest prints the slowest 20.
# TEST_WORKERS pytest-xdist workers (default 2, a CI machine's cores): most of a test's time is one
# process importing torch or waiting on another, so two workers on two cores finish in far less time.
# The container tests share one worker (the image is built once); TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
test: install chromium
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

# The inner loop: the unit tests alone (pure functions, model contracts, config, dvc.yaml), well under 2 minutes.
test-fast: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q tests/unit

clean:
	rm -rf data runs .dvc/cache .dvc/tmp
