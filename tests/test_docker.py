"""The pipeline image, proved without Docker: the Dockerfile's stages (CUDA PyTorch runtime base,
non-root, no build tools in the final stage, every install through docker/install.sh), the build
context that .dockerignore lets through, the pins, and docker/install.sh's own commands run in
this venv: the sslmae wheel built from the build context, installed offline into a folder and
imported from there, as Kubeflow's pods import it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "docker" / "Dockerfile"
INSTALL_SH = REPO / "docker" / "install.sh"
REQUIREMENTS = REPO / "docker" / "requirements.txt"
PACKAGES = ("sslmae", "components", "pipelines")  # what pyproject's packages.find includes
FROM_BASE_IMAGE = {"torch", "torchvision"}
# the runtime pins the image needs (brief: top-level only; torch/torchvision come from the base)
EXPECTED_PINS = {"timm", "lightning", "mlflow", "kfp", "kfp-kubernetes", "dvc", "boto3", "pandas", "pyarrow",
                 "scikit-learn", "pillow", "pyyaml", "matplotlib", "safetensors", "numpy", "kubernetes"}
BUILD_TOOLS = re.compile(r"(?<![\w.-])(build-essential|gcc|g\+\+|clang|make|cmake|ninja-build|gfortran|cpp|"
                         r"libc6-dev|python3?-dev|python3\.\d+-dev)(?![\w.-])")
CUDA_RUNTIME = re.compile(r"^pytorch/pytorch:(?P<torch>\d+\.\d+\.\d+)-cuda\d+\.\d+-cudnn\d+-runtime$")


# ---------------------------------------------------------------- Dockerfile parsing

def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not buf and not line):
            continue
        if line.endswith("\\"):
            buf += line[:-1].strip() + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages(text: str) -> tuple[dict, list[dict]]:
    """Global ARG defaults and the stages: {'image', 'name', 'steps': [(INSTR, args), ...]}."""
    args, found = {}, []
    for instr, rest in instructions(text):
        if instr == "FROM":
            parts = [p for p in rest.split() if not p.startswith("--")]
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), parts[0])
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None
            found.append({"image": image, "name": name, "steps": []})
        elif not found:
            if instr == "ARG":
                key, _, default = rest.partition("=")
                args[key.strip()] = default.strip().strip('"')
        else:
            found[-1]["steps"].append((instr, rest))
    return args, found


def runs(stage: dict) -> list[str]:
    return [rest for instr, rest in stage["steps"] if instr == "RUN"]


@pytest.fixture(scope="module")
def dockerfile():
    return stages(DOCKERFILE.read_text())


# ---------------------------------------------------------------- .dockerignore semantics

def _pattern(pat: str) -> re.Pattern:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over a relative path."""
    pat = pat.strip().strip("/")
    rx, i = "", 0
    while i < len(pat):
        if pat.startswith("**/", i):
            rx, i = rx + "(?:.*/)?", i + 3
        elif pat.startswith("**", i):
            rx, i = rx + ".*", i + 2
        elif pat[i] == "*":
            rx, i = rx + "[^/]*", i + 1
        elif pat[i] == "?":
            rx, i = rx + "[^/]", i + 1
        elif pat[i] == "[":
            j = pat.index("]", i)
            rx, i = rx + pat[i:j + 1], j + 1
        else:
            rx, i = rx + re.escape(pat[i]), i + 1
    return re.compile(rx)


def dockerignore() -> list[tuple[bool, re.Pattern]]:
    rules = []
    for line in (REPO / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rules.append((line.startswith("!"), _pattern(line.lstrip("!"))))
    return rules


def excluded(path: str, rules) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    out = False
    for negated, rx in rules:
        if any(rx.fullmatch(c) for c in candidates):
            out = not negated
    return out


def repo_files() -> list[str]:
    """The repo's tracked and untracked (not git-ignored) files that exist in the work tree."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.splitlines()
    return sorted(f for f in set(listed) if (REPO / f).is_file())


def build_context() -> list[str]:
    rules = dockerignore()
    return [f for f in repo_files() if not excluded(f, rules)]


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


# ---------------------------------------------------------------- (a) the Dockerfile

def test_dockerfile_is_multi_stage_on_a_cuda_pytorch_runtime_base(dockerfile):
    args, found = dockerfile
    assert len(found) >= 2, "multi-stage: a builder and a final stage"
    base = found[-1]["image"]
    m = CUDA_RUNTIME.match(base)
    assert m, f"the final stage must start from a CUDA PyTorch runtime image, got {base!r}"
    assert "BASE_IMAGE" in args, "the base image is an ARG, so a build can pick another tag"
    assert all(s["image"] == base for s in found), "the builder uses the same base (same Python, same torch)"
    # the image's torch is the one the project is tested with (the Makefile's pin)
    makefile = (REPO / "Makefile").read_text()
    tested = re.search(r"torch==(\d+\.\d+\.\d+)", makefile)
    assert tested and m.group("torch") == tested.group(1), (m.group("torch"), tested and tested.group(1))


def test_final_stage_is_non_root_without_build_tools(dockerfile):
    _, found = dockerfile
    builder, final = found[0], found[-1]
    users = [rest for instr, rest in final["steps"] if instr == "USER"]
    assert users, "the final stage sets a USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users
    last_user = max(i for i, (instr, _) in enumerate(final["steps"]) if instr == "USER")
    assert all(instr != "RUN" for instr, _ in final["steps"][last_user + 1:]), "nothing runs as root after USER"
    for cmd in runs(final):
        assert "apt-get install" not in cmd and "apt install" not in cmd, f"final stage installs system packages: {cmd}"
        assert not BUILD_TOOLS.search(cmd), f"build tools in the final stage: {cmd}"
    assert any(BUILD_TOOLS.search(cmd) for cmd in runs(builder)), "the builder is where compilers go"
    # the wheels come from the builder, bind-mounted or copied
    assert any("from=builder" in cmd for cmd in runs(final)) or any(
        instr == "COPY" and "--from=builder" in rest for instr, rest in final["steps"])
    assert builder["name"] == "builder"


def test_every_install_goes_through_install_sh(dockerfile):
    _, found = dockerfile
    builder, final = found[0], found[-1]
    script = INSTALL_SH.read_text()
    subcommands = set(re.search(r"^\s*(.+)\)\s*\"\$cmd\"", script, re.M).group(1).replace(" ", "").split("|"))
    used = {}
    for stage in found:
        for cmd in runs(stage):
            for sub in re.findall(r"install\.sh\s+(\w+)", cmd):
                used.setdefault(stage["name"] or "final", []).append(sub)
            if "pip install" in cmd or "pip wheel" in cmd:
                pytest.fail(f"a pip command outside docker/install.sh: {cmd}")
    assert used.get("builder") == ["deps", "project"], used
    assert used.get("final") == ["install", "check"], used
    assert set(sum(used.values(), [])) <= subcommands, (used, subcommands)
    # install.sh is the repo's docker/install.sh, copied into both stages
    for stage in (builder, final):
        copies = [rest for instr, rest in stage["steps"] if instr == "COPY" and "--from" not in rest]
        assert any("docker/install.sh" in c.split()[:-1] for c in copies), copies
    subprocess.run(["bash", "-n", str(INSTALL_SH)], check=True)


def test_final_stage_runtime_settings(dockerfile):
    _, found = dockerfile
    final = found[-1]
    env = " ".join(rest for instr, rest in final["steps"] if instr == "ENV")
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", env), env
    assert [rest for instr, rest in final["steps"] if instr == "WORKDIR"], "a working folder"
    assert not [rest for instr, rest in final["steps"] if instr == "ENTRYPOINT"], "KFP sets the command"
    (cmd,) = [rest for instr, rest in final["steps"] if instr == "CMD"]
    assert json.loads(cmd) == ["sslmae", "--help"]
    # KFP's v2 launcher writes artifacts under /gcs, /minio, /s3: they must be writable for the non-root user
    assert any(all(p in c for p in ("/gcs", "/minio", "/s3")) for c in runs(final))


def test_copied_files_are_in_the_build_context(dockerfile):
    _, found = dockerfile
    rules = dockerignore()
    for stage in found:
        for instr, rest in stage["steps"]:
            if instr != "COPY" or "--from" in rest:
                continue
            for src in rest.split()[:-1]:
                if src == ".":
                    continue
                assert (REPO / src).exists(), src
                assert not excluded(src, rules), f".dockerignore drops {src}, which the Dockerfile copies"


# ---------------------------------------------------------------- (b) .dockerignore

def test_dockerignore_keeps_the_context_small():
    rules = dockerignore()
    for path in (".venv/bin/python", "data/dataset/manifest.parquet", "runs/grid/w0.3/model.pt", "mlruns/0/meta.yaml",
                 "mlflow.db", ".git/HEAD", "bench/results/loader.json", ".dvc/cache/files/md5/ab/cd", ".dvc/tmp/lock",
                 "tests/test_docker.py", "sslmae/__pycache__/cli.cpython-311.pyc", "sslmae.egg-info/PKG-INFO",
                 "components/__pycache__/train.cpython-311.pyc", ".pytest_cache/v/cache/nodeids", "dist/x.whl",
                 "build/lib/sslmae/cli.py", "dvc.yaml", "params.yaml", "Makefile"):
        assert excluded(path, rules), f"{path} would be sent to the Docker daemon"
    for path in ("pyproject.toml", "README.md", "sslmae/cli.py", "sslmae/report/html.py", "components/train.py",
                 "pipelines/training.py", "docker/install.sh", "docker/requirements.txt"):
        assert not excluded(path, rules), f"{path} is needed by the build"
    context = build_context()
    # every source file of the three packages reaches the builder
    sources = [f for f in repo_files() if f.split("/")[0] in PACKAGES and f.endswith(".py")]
    assert sources and set(sources) <= set(context), sorted(set(sources) - set(context))
    size = sum((REPO / f).stat().st_size for f in context)
    assert size < 5_000_000, f"build context of {size} bytes: {context}"


# ---------------------------------------------------------------- the pins

def test_requirements_pin_the_runtime_set_without_torch():
    pins = read_pins()
    assert set(pins) == EXPECTED_PINS, set(pins) ^ EXPECTED_PINS
    assert not set(pins) & FROM_BASE_IMAGE
    assert pins["dvc"][0].startswith("dvc[s3]==")


def test_requirements_agree_with_pyproject():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = read_pins()
    deps = project["dependencies"] + project["optional-dependencies"]["pipeline"]
    for dep in deps:
        m = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*)", dep)
        name, spec = m.group(1).lower().replace("_", "-"), m.group(3).strip()
        if name in FROM_BASE_IMAGE:
            continue
        assert name in pins, f"pyproject needs {dep}; the image would lack it"
        if spec.startswith("=="):
            assert pins[name][1] == spec[2:], f"{dep} vs docker/requirements.txt {pins[name][0]}"


# ---------------------------------------------------------------- (c) install.sh, for real, in this venv

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
    """`install.sh project` on a copy of the build context (what `COPY . src/` gets)."""
    tmp = tmp_path_factory.mktemp("image")
    src, wheels = tmp / "src", tmp / "wheels"
    context = build_context()
    for rel in context:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    # relative paths, as a bare `src` must not be taken for a PyPI project of that name
    _run(["bash", str(INSTALL_SH), "project", "src", "wheels"], tmp, _env())
    (wheel,) = wheels.glob("sslmae-*.whl")
    return tmp, wheels, wheel, context


@pytest.mark.slow
def test_install_sh_builds_a_complete_sslmae_wheel(built):
    _, _, wheel, context = built
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("sslmae/report/html.py", "sslmae/cli.py", "components/train.py", "components/__init__.py",
                   "pipelines/training.py", "sslmae/pipeline/pytorchjob.py"):
        assert needed in names, needed
    sources = {f for f in context if f.split("/")[0] in PACKAGES}
    assert sources <= names, f"left out of the wheel: {sorted(sources - names)}"
    assert not [n for n in names if n.startswith("tests/")]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert re.search(r"^sslmae\s*=\s*sslmae\.cli:main$", zipfile.ZipFile(wheel).read(entry_points).decode(), re.M)


@pytest.mark.slow
def test_install_sh_installs_offline_and_the_components_import_from_there(built):
    tmp, wheels, _, _ = built
    # the builder's dependency step, against this venv: it wheels only the pins this venv lacks
    _run(["bash", str(INSTALL_SH), "deps", str(wheels)], tmp, _env())
    target = tmp / "site"
    _run(["bash", str(INSTALL_SH), "install", str(wheels), "--no-deps", "--target", str(target)], tmp, _env())
    env = _env(PYTHONPATH=str(target), PATH=f"{target / 'bin'}{os.pathsep}{_env()['PATH']}")
    probe = ("import sslmae.cli, components.train, pipelines.training, sslmae.report.html as h; "
             "print(sslmae.cli.__file__); print(components.train.__file__); print(pipelines.training.__file__); "
             "print(h.__file__)")
    out = _run([sys.executable, "-c", probe], tmp, env).stdout.split()
    assert len(out) == 4 and all(Path(p).is_relative_to(target) for p in out), out
    # the final stage's own check: pins installed, kfp's executor, every component, the CLI
    check = _run(["bash", str(INSTALL_SH), "check"], tmp, env)
    assert f"from {target}" in check.stdout, check.stdout


@pytest.mark.slow
def test_requirement_pins_exist_on_the_index(tmp_path):
    _run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet",
          "-r", str(REQUIREMENTS)], tmp_path, _env())
