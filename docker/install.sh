#!/usr/bin/env bash
# Every install command of the pipeline image, in one place. docker/Dockerfile runs it
# (tests/system/test_image.py checks the image it makes).
#
#   install.sh deps    [REQUIREMENTS]         install every runtime dependency this Python does not
#                                             already have at the pinned version (torch and
#                                             torchvision come with the base image and are never
#                                             replaced)
#   install.sh project SRC WHEELS             the sslmae wheel (sslmae, components, pipelines)
#                                             built from the source tree SRC
#   install.sh install WHEELS [PIP_ARGS...]   every wheel in WHEELS, offline (--no-index: nothing
#                                             is fetched, nothing compiled)
#   install.sh check [REQUIREMENTS]           the pins are what is installed, and what
#                                             Kubeflow runs in a pod (kfp's executor, every module
#                                             of sslmae, components and pipelines, the CLI)
#                                             imports and starts
#
# REQUIREMENTS defaults to requirements.txt beside this script. PYTHON picks the interpreter
# (default python3: the one Kubeflow's component command runs). A CA bundle given to the build as
# the secret `host_ca` (/run/secrets/host_ca) is pip's CA bundle (for a proxy that re-signs TLS).
set -euo pipefail

PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The image's Python is the environment we mean to change (a no-op in a venv).
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
if [ -s /run/secrets/host_ca ]; then
    export PIP_CERT=/run/secrets/host_ca
fi

run() {
    echo "+ $*" >&2
    "$@"
}

usage() {
    sed -n '4,20p' "${BASH_SOURCE[0]}" >&2
    exit 2
}

deps() {
    local req=${1:-$HERE/requirements.txt}
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # Resolve the pins against what this Python already has (the base image's torch), refuse a
    # set that would replace torch, then install exactly that set.
    run "$PYTHON" -m pip install --dry-run --quiet --report "$tmp/report.json" -r "$req" >/dev/null
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
        echo "dependencies to install: $(wc -l <"$tmp/wanted.txt")" >&2
        # wheels where published; the few sdists (pure Python) are built without a compiler
        run "$PYTHON" -m pip install --quiet --no-deps -r "$tmp/wanted.txt"
    else
        echo "dependencies to install: none (this Python already has every pin)" >&2
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
import sslmae

# what a pod imports: kfp's executor and the clients, then every module of the three packages
modules = ["kfp.dsl.executor_main", "kfp.kubernetes", "kubernetes.client", "boto3", "mlflow", "dvc.api"]
for pkg in (sslmae, components, pipelines):
    modules += [pkg.__name__] + [m.name for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + ".")
                                 if not m.name.endswith(".__main__")]
for name in modules:
    importlib.import_module(name)
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
