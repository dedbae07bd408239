#!/usr/bin/env bash
# Every install command of the pipeline image, in one place. docker/Dockerfile runs it, and
# tests/test_docker.py runs the same commands in a venv (no Docker needed there).
#
#   install.sh deps    WHEELS [REQUIREMENTS]  builder stage: a wheel of every runtime dependency
#                                             that this Python does not already have at the pinned
#                                             version (torch and torchvision come with the base
#                                             image and are never replaced)
#   install.sh project SRC WHEELS             builder stage: the sslmae wheel (sslmae, components,
#                                             pipelines) built from the source tree SRC
#   install.sh install WHEELS [PIP_ARGS...]   final stage: every wheel in WHEELS, offline
#                                             (--no-index: nothing is fetched, nothing compiled)
#   install.sh check [REQUIREMENTS]           final stage: the pins are what is installed, and what
#                                             Kubeflow runs in a pod (kfp's executor, every
#                                             component, the pipeline, the CLI) imports and starts
#
# REQUIREMENTS defaults to requirements.txt beside this script. PYTHON picks the interpreter
# (default python3: the one Kubeflow's component command runs).
set -euo pipefail

PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The image's Python is the environment we mean to change (a no-op in a venv).
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1

run() {
    echo "+ $*" >&2
    "$@"
}

usage() {
    sed -n '4,16p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

deps() {
    local wheels=${1:?install.sh deps WHEELS [REQUIREMENTS]} req=${2:-$HERE/requirements.txt}
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$wheels"
    # Resolve the pins against what this Python already has (the base image's torch), then
    # build or download exactly that set, so the final stage installs it offline.
    run "$PYTHON" -m pip install --dry-run --quiet --report "$tmp/report.json" -r "$req"
    "$PYTHON" - "$tmp/report.json" >"$tmp/wanted.txt" <<'PY'
import json
import sys

wanted = [(i["metadata"]["name"], i["metadata"]["version"]) for i in json.load(open(sys.argv[1]))["install"]]
base = [f"{n}=={v}" for n, v in wanted if n.lower().replace("_", "-") in ("torch", "torchvision")
        or n.lower().startswith("nvidia-")]
if base:
    sys.exit(f"install.sh deps: the pins would replace the base image's {', '.join(base)}; "
             "pick a base image whose torch satisfies them")
for n, v in wanted:
    print(f"{n}=={v}")
PY
    if [ -s "$tmp/wanted.txt" ]; then
        echo "dependency wheels: $(wc -l <"$tmp/wanted.txt")" >&2
        run "$PYTHON" -m pip wheel --no-deps --wheel-dir "$wheels" -r "$tmp/wanted.txt"
    else
        echo "dependency wheels: none (this Python already has every pin)" >&2
    fi
}

project() {
    local src=${1:?install.sh project SRC WHEELS} wheels=${2:?install.sh project SRC WHEELS}
    # an absolute path: a bare name (`src`) would make pip fetch a PyPI project of that name
    src=$(cd "$src" && pwd)
    [ -f "$src/pyproject.toml" ] || { echo "install.sh project: no pyproject.toml in $src" >&2; exit 2; }
    mkdir -p "$wheels"
    run "$PYTHON" -m pip wheel --no-deps --wheel-dir "$wheels" "$src"
}

install() {
    local wheels=${1:?install.sh install WHEELS [PIP_ARGS...]}
    shift
    run "$PYTHON" -m pip install --no-index --find-links "$wheels" "$@" "$wheels"/*.whl
}

check() {
    local req=${1:-$HERE/requirements.txt}
    run "$PYTHON" - "$req" <<'PY'
import importlib
import importlib.metadata as md
import pkgutil
import re
import sys

wrong = []
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line).groups()
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        have = "not installed"
    if have != version:
        wrong.append(f"{name}: pinned {version}, installed {have}")
if wrong:
    sys.exit("install.sh check: " + "; ".join(wrong))

import components
import pipelines

modules = ["kfp.dsl.executor_main", "kfp.kubernetes", "kubernetes.client", "boto3", "mlflow", "dvc.api",
           "sslmae.cli", "sslmae.pipeline.steps", "sslmae.pipeline.kfp_cli", "sslmae.pipeline.pytorchjob",
           "sslmae.tracking.registry", "sslmae.report.build", "pipelines.training"]
modules += [f"components.{m.name}" for m in pkgutil.iter_modules(components.__path__)]
for name in modules:
    importlib.import_module(name)
import sslmae
import torch
import torchvision

print(f"sslmae {sslmae.__version__} from {sslmae.__file__}; components from {components.__path__[0]}; "
      f"torch {torch.__version__} (CUDA {torch.version.cuda}), torchvision {torchvision.__version__}; "
      f"{len(modules)} modules import")
PY
    run "$PYTHON" -m kfp.dsl.executor_main --help >/dev/null
    run sslmae --help >/dev/null
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
    deps | project | install | check) "$cmd" "$@" ;;
    *) usage ;;
esac
