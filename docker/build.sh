#!/usr/bin/env bash
# Build the pipeline image from docker/Dockerfile, once: the image is labelled with a content hash
# of what it is built from, and a build is skipped while an image with that label exists.
#
#   docker/build.sh [--tag TAG] [--base auto|production|local] [--engine docker|podman] [--force]
#   docker/build.sh --print-hash [DIR]      the content hash of DIR (default: the repository)
#
#   --tag     the image to make (default sslmae:dev)
#   --base    production: the CUDA PyTorch runtime image, docker/Dockerfile's BASE_IMAGE default
#                         (or $BASE_IMAGE), pulled from its registry;
#             local:      a base made on this machine: Debian bookworm (debootstrap from the Debian
#                         mirror apt uses) with python3 and a venv holding the pinned torch and
#                         torchvision, downloaded by this machine's pip (its own index and wheel
#                         folders); for machines that reach no image registry;
#             auto:       (default) the base the current image was built on when it is still here,
#                         else production when it can be pulled, else local (said so, loudly).
#   --engine  docker where a docker engine answers (`docker info`), else podman, installed with
#             apt-get when missing (as root), run with docker/podman.conf (CONTAINERS_CONF wins);
#             default $SSLMAE_ENGINE when set
#   --force   build even when the image is up to date
#
# The content hash covers docker/, .dockerignore, pyproject.toml, README.md, sslmae/, components/
# and pipelines/ (caches left out): everything the build context holds, and the build's own files.
# Layers are cached by the engine: a code change rebuilds only the last layer (the sslmae package).
# Progress goes to stderr; the last line on stdout is `engine=ENGINE image=TAG hash=HASH`.
# Exit status: 0 built or up to date, 1 the build failed, 2 usage, 3 no container engine usable
# here (tests skip on 3).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TAG=sslmae:dev
BASE=auto
ENGINE=${SSLMAE_ENGINE:-}
FORCE=0
PYTHON=${PYTHON:-python3}
# The local base: torch and torchvision as the Makefile pins them (the versions the project is
# tested with, and the production base's torch).
LOCAL_TORCH="torch==2.14.1 torchvision==0.29.1"
DEBIAN_SUITE=bookworm
DEBIAN_IMAGE=localhost/sslmae-debian:$DEBIAN_SUITE
LOCAL_BASE=localhost/sslmae-base:$DEBIAN_SUITE-torch2.14.1
HASH_PATHS=(docker .dockerignore pyproject.toml README.md sslmae components pipelines)

say() { echo "build.sh: $*" >&2; }
die() { local code=$1; shift; say "$*"; exit "$code"; }
usage() { sed -n '4,27p' "${BASH_SOURCE[0]}" >&2; exit 2; }

content_hash() {
    local dir=$1 paths=() p
    for p in "${HASH_PATHS[@]}"; do
        [ -e "$dir/$p" ] && paths+=("$p")
    done
    (
        cd "$dir"
        find "${paths[@]}" \( -name __pycache__ -o -name '*.egg-info' -o -name .pytest_cache \
            -o -name .mypy_cache -o -name .ruff_cache \) -prune -o -type f ! -name '*.py[cod]' -print \
            | LC_ALL=C sort | xargs -r -d '\n' sha256sum
    ) | sha256sum | cut -c1-64
}

while [ $# -gt 0 ]; do
    case $1 in
        --tag) TAG=${2:?--tag TAG}; shift 2 ;;
        --base) BASE=${2:?--base auto|production|local}; shift 2 ;;
        --engine) ENGINE=${2:?--engine docker|podman}; shift 2 ;;
        --force) FORCE=1; shift ;;
        --print-hash) content_hash "${2:-$ROOT}"; exit 0 ;;
        -h | --help) usage ;;
        *) say "unknown argument: $1"; usage ;;
    esac
done
case $BASE in auto | production | local) ;; *) say "--base: auto, production or local, not $BASE"; usage ;; esac
cd "$ROOT"

# ---------------------------------------------------------------- the engine

apt_install() {  # apt_install PACKAGE...: as root with apt-get, else fail
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 1
    say "installing $* with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pick_engine() {
    if [ -z "$ENGINE" ]; then
        if command -v docker >/dev/null && timeout 30 docker info >/dev/null 2>&1; then
            ENGINE=docker
        else
            ENGINE=podman
        fi
    fi
    case $ENGINE in
        docker)
            timeout 30 docker info >/dev/null 2>&1 || die 3 "no docker engine answers (docker info)"
            export DOCKER_BUILDKIT=1 ;;
        podman)
            export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/docker/podman.conf}
            if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
                apt_install podman runc || die 3 "no container engine: no docker engine answers, and podman" \
                    "(with runc) is not installed and cannot be (needs root and apt-get)"
            fi
            local n u
            n=$(ulimit -n) u=$(ulimit -u)
            if { [ "$n" != unlimited ] && [ "$n" -lt 1024 ]; } || { [ "$u" != unlimited ] && [ "$u" -lt 1024 ]; }; then
                die 3 "podman: docker/podman.conf sets nofile and nproc to 1024, above this shell's limits" \
                    "(ulimit -n $n, ulimit -u $u); give a CONTAINERS_CONF with lower default_ulimits"
            fi
            local err
            err=$(podman info 2>&1 >/dev/null) || die 3 "podman does not work here: $err" ;;
        *) say "--engine: docker or podman, not $ENGINE"; usage ;;
    esac
}

image_exists() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

label() {  # label IMAGE KEY: the label's value, empty when absent
    local v
    v=$("$ENGINE" image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null) || return 0
    [ "$v" = "<no value>" ] || echo "$v"
}

# ---------------------------------------------------------------- the local base

debian_mirror() {  # the Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org
    local m
    m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '
        /^URIs:/ { uri = $2 } /^Suites:/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+$/) s = 1 }
        /^$/ { if (uri ~ /\/debian\/?$/ && s) { print uri; exit } uri = ""; s = 0 }
        END { if (uri ~ /\/debian\/?$/ && s) print uri }' | head -1)
    [ -n "$m" ] || m=$(grep -hE '^deb\s+(\[[^]]*\]\s+)?https?://\S+/debian/?\s' /etc/apt/sources.list \
        /etc/apt/sources.list.d/*.list 2>/dev/null | sed -E 's/^deb\s+(\[[^]]*\]\s+)?(\S+).*/\2/' | head -1)
    echo "${SSLMAE_DEBIAN_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

make_debian_image() {
    image_exists "$DEBIAN_IMAGE" && return 0
    command -v debootstrap >/dev/null || apt_install debootstrap \
        || die 1 "the local base needs debootstrap (apt-get install debootstrap, as root)"
    [ "$(id -u)" = 0 ] || die 1 "the local base needs root (debootstrap)"
    local dir mirror t0=$SECONDS
    mirror=$(debian_mirror)
    dir=$(mktemp -d "${TMPDIR:-/var/tmp}/sslmae-rootfs.XXXXXX")
    say "debootstrap $DEBIAN_SUITE from $mirror into $dir"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$DEBIAN_SUITE" "$dir" "$mirror" \
        >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; rm -rf "$dir" "$dir.log"; die 1 "debootstrap failed"; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -c . | "$ENGINE" import - "$DEBIAN_IMAGE" >/dev/null
    rm -rf "$dir" "$dir.log"
    say "$DEBIAN_IMAGE made in $((SECONDS - t0)) s"
}

make_local_base() {
    image_exists "$LOCAL_BASE" && return 0
    make_debian_image
    local t0=$SECONDS wheels ctr pyver libc arch
    # the wheels are chosen for the base's Python and glibc, whatever this machine runs
    read -r pyver libc < <("$ENGINE" run --rm "$DEBIAN_IMAGE" python3 -c \
        'import platform, sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}", platform.libc_ver()[1])')
    arch=$(uname -m)
    wheels=$(mktemp -d "${TMPDIR:-/var/tmp}/sslmae-wheels.XXXXXX")
    say "downloading $LOCAL_TORCH and their dependencies for Python $pyver, glibc $libc ($arch) with this machine's pip"
    # pip takes a wheel only for a platform tag named here: every manylinux this glibc runs
    local platforms=() m
    for m in $(seq "${libc#*.}" -1 5); do platforms+=(--platform "manylinux_2_${m}_$arch"); done
    platforms+=(--platform "manylinux2014_$arch" --platform "manylinux2010_$arch" --platform "manylinux1_$arch")
    # shellcheck disable=SC2086
    "$PYTHON" -m pip download -qq --only-binary=:all: --dest "$wheels" --python-version "$pyver" \
        --implementation cp "${platforms[@]}" $LOCAL_TORCH \
        || { rm -rf "$wheels"; die 1 "pip could not download $LOCAL_TORCH"; }
    ctr=sslmae-base-$$
    # shellcheck disable=SC2086
    # mounted on /mnt (empty, and there already): no mount point is left in the image
    "$ENGINE" run --name "$ctr" -v "$wheels:/mnt:ro" "$DEBIAN_IMAGE" /bin/sh -euc "
        python3 -m venv /opt/venv
        /opt/venv/bin/pip install --quiet --no-cache-dir --no-index --find-links /mnt $LOCAL_TORCH
        /opt/venv/bin/python -c 'import torch, torchvision; print(\"torch\", torch.__version__, \"torchvision\", torchvision.__version__)'
        rm -rf /root/.cache" || { "$ENGINE" rm -f "$ctr" >/dev/null; rm -rf "$wheels"; die 1 "installing torch into the local base failed"; }
    "$ENGINE" commit --change 'ENV VIRTUAL_ENV=/opt/venv' \
        --change 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        "$ctr" "$LOCAL_BASE" >/dev/null
    "$ENGINE" rm "$ctr" >/dev/null
    rm -rf "$wheels"
    say "$LOCAL_BASE made in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- build

pick_engine
HASH=$(content_hash "$ROOT")
PRODUCTION_BASE=${BASE_IMAGE:-$(sed -n 's/^ARG BASE_IMAGE=//p' docker/Dockerfile | head -1)}
[ -n "$PRODUCTION_BASE" ] || die 1 "docker/Dockerfile has no ARG BASE_IMAGE default"
OLD_BASE=$(label "$TAG" org.sslmae.base-image)

if [ "$FORCE" = 0 ] && [ "$(label "$TAG" org.sslmae.content-hash)" = "$HASH" ] && {
    [ "$BASE" = auto ] || { [ "$BASE" = production ] && [ "$OLD_BASE" = "$PRODUCTION_BASE" ]; } ||
        { [ "$BASE" = local ] && [ "$OLD_BASE" = "$LOCAL_BASE" ]; }; }; then
    say "$TAG is up to date ($ENGINE; content ${HASH:0:12}; base $OLD_BASE): nothing to build"
    echo "engine=$ENGINE image=$TAG hash=$HASH"
    exit 0
fi

T0=$SECONDS
case $BASE in
    production)
        image_exists "$PRODUCTION_BASE" || "$ENGINE" pull "$PRODUCTION_BASE" >&2 \
            || die 1 "cannot pull $PRODUCTION_BASE (--base local builds on a base made here)"
        FROM=$PRODUCTION_BASE ;;
    local)
        make_local_base
        FROM=$LOCAL_BASE ;;
    auto)
        if [ -n "$OLD_BASE" ] && image_exists "$OLD_BASE"; then
            FROM=$OLD_BASE
        elif image_exists "$PRODUCTION_BASE" || "$ENGINE" pull "$PRODUCTION_BASE" >&2; then
            FROM=$PRODUCTION_BASE
        else
            say "NOTE: the production base $PRODUCTION_BASE cannot be pulled here; building on the local" \
                "base $LOCAL_BASE (Debian $DEBIAN_SUITE, $LOCAL_TORCH). --base production insists."
            make_local_base
            FROM=$LOCAL_BASE
        fi ;;
esac

SECRETS=()
CA=${SSLMAE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -s "$CA" ] && SECRETS=(--secret "id=host_ca,src=$CA")

say "building $TAG with $ENGINE on $FROM (content ${HASH:0:12})"
T1=$SECONDS
# The hash label is given here, not in the Dockerfile: an engine applies it to the final image
# only (no cached layer carries an older value, and no layer is rebuilt for it).
"$ENGINE" build -f docker/Dockerfile -t "$TAG" --build-arg "BASE_IMAGE=$FROM" \
    --label "org.sslmae.content-hash=$HASH" "${SECRETS[@]}" . >&2 || die 1 "$ENGINE build failed"
SIZE=$("$ENGINE" image inspect --format '{{.Size}}' "$TAG")
say "$TAG built in $((SECONDS - T1)) s (base ready after $((T1 - T0)) s); image $((SIZE / 1000000)) MB"
echo "engine=$ENGINE image=$TAG hash=$HASH"
