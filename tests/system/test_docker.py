"""The image's inputs, without a container engine: the pins agree with pyproject, docker/build.sh's
content hash follows the build context, and docker/install.sh's commands run for real in this
venv (the sslmae wheel built from the sources, installed offline into a folder, every module
imported from there). The image itself is tested in tests/system/test_image.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.container import build

REPO = Path(__file__).resolve().parents[2]
INSTALL_SH = REPO / "docker" / "install.sh"
REQUIREMENTS = REPO / "docker" / "requirements.txt"
PACKAGES = ("sslmae", "components", "pipelines")  # what pyproject's packages.find includes
FROM_BASE_IMAGE = {"torch", "torchvision"}


def read_pins() -> dict[str, tuple[str, str]]:
    """{normalised name: (requirement as written, version)} from docker/requirements.txt."""
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([\w.+!-]+)", line)
        assert m, f"docker/requirements.txt: not an exact pin: {line!r}"
        pins[m.group(1).lower().replace("_", "-")] = (line, m.group(3))
    return pins


def copy_sources(dest: Path, extra: tuple[str, ...] = ()) -> Path:
    """pyproject.toml, README.md and the three packages (what the sslmae wheel is built from)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in ("pyproject.toml", "README.md", *PACKAGES, *extra):
        if (REPO / rel).is_dir():
            shutil.copytree(REPO / rel, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (REPO / rel).exists():
            shutil.copy2(REPO / rel, dest / rel)
    return dest


# ---------------------------------------------------------------- the pins

def test_requirements_agree_with_pyproject():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = read_pins()
    assert not set(pins) & FROM_BASE_IMAGE, "torch and torchvision come with the base image"
    deps = project["dependencies"] + project["optional-dependencies"]["pipeline"]
    for dep in deps:
        m = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*)", dep)
        name, spec = m.group(1).lower().replace("_", "-"), m.group(3).strip()
        if name in FROM_BASE_IMAGE:
            continue
        assert name in pins, f"pyproject needs {dep}; the image would lack it"
        if spec.startswith("=="):
            assert pins[name][1] == spec[2:], f"{dep} vs docker/requirements.txt {pins[name][0]}"


# ---------------------------------------------------------------- build.sh's content hash

def test_content_hash_follows_the_build_context(tmp_path):
    """A changed source file changes the hash (the image is rebuilt); caches and files outside
    the build context do not (the image is reused)."""
    src = copy_sources(tmp_path / "repo", extra=("docker", ".dockerignore"))

    def digest() -> str:
        proc = build("--print-hash", str(src), timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    first = digest()
    assert re.fullmatch(r"[0-9a-f]{64}", first) and digest() == first
    (src / "sslmae" / "__pycache__").mkdir(exist_ok=True)
    (src / "sslmae" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"cache")
    (src / "tests").mkdir()
    (src / "tests" / "test_x.py").write_text("x = 1\n")
    (src / "params.yaml").write_text("a: 1\n")
    assert digest() == first, "caches, tests and params are not in the image"
    for rel in ("sslmae/__init__.py", "components/train.py", "docker/requirements.txt", "pyproject.toml"):
        path = src / rel
        saved = path.read_bytes()
        path.write_bytes(saved + b"\n# changed\n")
        assert digest() != first, f"a change to {rel} must rebuild the image"
        path.write_bytes(saved)
    assert digest() == first


# ---------------------------------------------------------------- install.sh, for real, in this venv

def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHON=sys.executable, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    env.update(extra)
    return env


def _run(cmd, cwd, env, timeout=900):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`install.sh project` on a copy of the sources (what the image's project stage gets)."""
    tmp = tmp_path_factory.mktemp("image")
    copy_sources(tmp / "src")
    # relative paths, as a bare `src` must not be taken for a PyPI project of that name
    _run(["bash", str(INSTALL_SH), "project", "src", "wheels"], tmp, _env())
    (wheel,) = (tmp / "wheels").glob("sslmae-*.whl")
    return tmp, tmp / "wheels", wheel


@pytest.mark.slow
def test_install_sh_builds_a_complete_sslmae_wheel(built):
    _, _, wheel = built
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {f.relative_to(REPO).as_posix() for pkg in PACKAGES for f in (REPO / pkg).rglob("*.py")
               if "__pycache__" not in f.parts}
    assert {"sslmae/__init__.py", "components/train.py", "pipelines/training.py"} <= sources
    assert sources <= names, f"left out of the wheel: {sorted(sources - names)}"
    assert not [n for n in names if n.startswith("tests/")]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert re.search(r"^sslmae\s*=\s*sslmae\.cli\.main:main$", zipfile.ZipFile(wheel).read(entry_points).decode(), re.M)


@pytest.mark.slow
def test_install_sh_installs_offline_and_every_module_imports_from_there(built):
    tmp, wheels, _ = built
    target = tmp / "site"
    _run(["bash", str(INSTALL_SH), "install", str(wheels), "--no-deps", "--target", str(target)], tmp, _env())
    env = _env(PYTHONPATH=str(target), PATH=f"{target / 'bin'}{os.pathsep}{_env()['PATH']}")
    probe = ("import sslmae, components.train, pipelines.training; "
             "print(sslmae.__file__); print(components.train.__file__); print(pipelines.training.__file__)")
    out = _run([sys.executable, "-c", probe], tmp, env).stdout.split()
    assert len(out) == 3 and all(Path(p).is_relative_to(target) for p in out), out
    # the final stage's own check: pins installed, kfp's executor, every module, the CLI
    check = _run(["bash", str(INSTALL_SH), "check"], tmp, env)
    assert f"from {target}" in check.stdout, check.stdout
