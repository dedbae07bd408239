"""The pipeline image itself (docker/Dockerfile, built by docker/build.sh once per session and
reused while docker/ and the sources are unchanged): what a Kubeflow pod gets. Skipped, with the
reason, where no container engine can be used (no docker daemon and podman cannot be installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from tests.support.container import REPO, Image, build, project_image

pytestmark = pytest.mark.container

REQUIREMENTS = REPO / "docker" / "requirements.txt"
PACKAGES = ("sslmae", "components", "pipelines")
COMPILERS = ("cc", "gcc", "g++", "c++", "clang", "make", "cmake", "gfortran", "as", "ld")
LAST_LAYER_MAX = 20_000_000  # bytes: the sslmae package (about 1 MB)
DEPS_LAYER_MIN = 200_000_000  # the dependencies: hundreds of MB


@pytest.fixture(scope="session")
def image() -> Image:
    return project_image()


def pins() -> dict[str, str]:
    """{normalised name: version} from docker/requirements.txt."""
    out = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line)
            assert m, f"docker/requirements.txt: not an exact pin: {line!r}"
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def repo_modules() -> list[str]:
    """Every module of the three packages, from the source files of the repo."""
    mods = []
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            rel = f.relative_to(REPO).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            if "__pycache__" not in parts and rel.name != "__main__":
                mods.append(".".join(parts))
    return mods


def content_layers(history: list[dict]) -> list[dict]:
    return [h for h in history if h["size"] > 0]


def test_runs_as_uid_10001_in_group_0(image):
    assert image.inspect()["Config"]["User"] == "10001:0"
    assert image.run("id", "-u").stdout.split() == ["10001"]
    assert image.run("id", "-g").stdout.split() == ["0"]
    # its folders and the KFP launcher's artifact roots are writable by that user
    probe = "for d in /workspace /home/sslmae /gcs /minio /s3; do touch $d/probe && echo ok $d; done; pwd"
    out = image.run("sh", "-c", probe).stdout.split("\n")
    assert out[:5] == [f"ok {d}" for d in ("/workspace", "/home/sslmae", "/gcs", "/minio", "/s3")], out
    assert out[5] == "/workspace"


def test_default_command_is_the_cli_help(image):
    info = image.inspect()["Config"]
    assert info["Cmd"] == ["sslmae", "--help"]
    assert not info.get("Entrypoint"), "KFP sets every pod's command: no ENTRYPOINT"
    default = image.run()
    explicit = image.run("sslmae", "--help")
    assert "usage: sslmae" in default.stdout, default.stdout
    assert default.stdout == explicit.stdout


def test_kfp_executor_and_every_module_import(image):
    """What a pod runs: `python3 -m kfp.dsl.executor_main` and every module of sslmae, components and
    pipelines, imported from the installed wheel (the image holds no source tree)."""
    mods = repo_modules()
    assert "components.train" in mods and "pipelines.training" in mods, mods
    probe = ("import importlib, sys\n"
             f"mods = {mods!r}\n"
             "for m in mods:\n"
             "    mod = importlib.import_module(m)\n"
             "    assert '/site-packages/' in mod.__file__, (m, mod.__file__)\n"
             "print(len(mods), 'modules from', importlib.import_module('sslmae').__file__)\n")
    out = image.run("python3", "-c", probe).stdout
    assert out.startswith(f"{len(mods)} modules from /"), out
    executor = image.run("python3", "-m", "kfp.dsl.executor_main", "--help")
    assert "--executor_input" in executor.stdout + executor.stderr
    assert image.run("python3", "-c", "import components.train, pipelines.training; "
                     "print(components.train.__name__)").stdout.strip() == "components.train"


def test_pins_are_what_is_installed(image):
    want = pins()
    probe = ("import importlib.metadata as md, json, sys\n"
             "names = sys.argv[1:]\n"
             "print(json.dumps({n: md.version(n) for n in names}))\n")
    have = json.loads(image.run("python3", "-c", probe, *want, "torch", "torchvision").stdout)
    wrong = {n: (v, have[n]) for n, v in want.items() if have[n] != v}
    assert not wrong, f"pinned vs installed: {wrong}"
    # torch and torchvision come with the base: the versions the project is tested with (Makefile's pins)
    tested = dict(re.findall(r"(torch|torchvision)==(\d+\.\d+\.\d+)", (REPO / "Makefile").read_text()))
    for name in ("torch", "torchvision"):
        assert have[name].split("+")[0] == tested[name], (name, have[name], tested[name])


def test_no_compiler_no_wheel_no_source_tree(image):
    script = ("for c in " + " ".join(COMPILERS) + "; do command -v $c; done; "
              "ls -d /build /staged /wheel /wheels /root/.cache/pip 2>/dev/null; "
              # wheels, except the interpreter's own (ensurepip's bundle, Debian's python3-venv)
              "find / -xdev -name '*.whl' -not -path '*/ensurepip/*' -not -path '/usr/share/python-wheels/*' "
              "2>/dev/null | head; true")
    found = image.run("sh", "-c", script, user="0").stdout.split()
    assert not found, f"in the final image: {found}"


def test_dependencies_and_code_in_separate_layers(image):
    history = image.history()
    layers = content_layers(history)
    last = layers[-1]
    assert "COPY" in last["created_by"], f"the last layer is the sslmae package copied from its stage: {last}"
    assert last["size"] < LAST_LAYER_MAX, f"the last layer (the sslmae package) is {last['size']} bytes"
    (deps,) = [h for h in layers if "install.sh deps" in h["created_by"]]
    assert deps["size"] > DEPS_LAYER_MIN, deps
    assert layers.index(deps) < len(layers) - 1


def _stable_build(image: Image) -> tuple[subprocess.CompletedProcess, float]:
    """build.sh on sources that do not change meanwhile: (its run, seconds). Someone editing the
    tree during the session moves the content hash; then the build is repeated, up to 3 times."""
    for _ in range(3):
        before = build("--print-hash").stdout.strip()
        t0 = time.monotonic()
        proc = build("--tag", image.tag, timeout=900)
        seconds = time.monotonic() - t0
        assert proc.returncode == 0, proc.stderr[-6000:]
        if build("--print-hash").stdout.strip() == before:
            return proc, seconds
    pytest.fail("the sources kept changing during the build")


def test_labels_record_the_content_and_the_base(image):
    proc, _ = _stable_build(image)
    now = dict(kv.split("=", 1) for kv in proc.stdout.split())["hash"]
    assert re.fullmatch(r"[0-9a-f]{64}", now) and now == build("--print-hash").stdout.strip()
    labels = image.inspect()["Config"]["Labels"]
    assert labels["org.sslmae.content-hash"] == now, "the image is older than the sources"
    assert labels["org.sslmae.base-image"], labels


def test_unchanged_sources_reuse_the_image(image):
    for _ in range(3):
        _stable_build(image)  # up to date with the sources as they are now
        content, before = build("--print-hash").stdout.strip(), image.inspect()["Id"]
        t0 = time.monotonic()
        again = build("--tag", image.tag, timeout=900)
        seconds = time.monotonic() - t0
        if build("--print-hash").stdout.strip() == content:
            break
    else:
        pytest.fail("the sources kept changing during the test")
    assert again.returncode == 0 and "up to date" in again.stderr, again.stderr
    assert seconds < 60, f"finding the image up to date took {seconds:.0f} s"
    assert image.inspect()["Id"] == before


@pytest.mark.slow
def test_a_code_change_rebuilds_only_the_last_layer(image, tmp_path):
    """A copy of the build context with one comment changed in sslmae/: the build reuses every
    cached layer (base, dependencies, user) and adds one thin layer, in about a minute."""
    src = tmp_path / "repo"
    for rel in ("docker", "sslmae", "components", "pipelines", "pyproject.toml", "README.md", ".dockerignore"):
        if (REPO / rel).is_dir():
            shutil.copytree(REPO / rel, src / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (REPO / rel).exists():
            shutil.copy2(REPO / rel, src / rel)
    init = src / "sslmae" / "__init__.py"
    init.write_text(init.read_text() + "\n# a code change\n")
    tag = "localhost/sslmae-test:code-change"
    base = image.inspect()["Config"]["Labels"]["org.sslmae.base-image"]
    kind = "local" if base.startswith("localhost/sslmae-base:") else "production"
    t0 = time.monotonic()
    proc = build("--tag", tag, "--base", kind, "--engine", image.engine, root=src, timeout=900)
    seconds = time.monotonic() - t0
    try:
        assert proc.returncode == 0, proc.stderr[-6000:]
        old, new = image.inspect()["RootFS"]["Layers"], image.inspect(tag)["RootFS"]["Layers"]
        assert new[:-1] == old[:-1], "a code change rebuilt more than the last layer"
        assert new[-1] != old[-1]
        last = content_layers(image.history(tag))[-1]
        assert last["size"] < LAST_LAYER_MAX, last
        assert image.run("python3", "-c", "import sslmae, inspect; print(inspect.getsource(sslmae))",
                         tag=tag).stdout.rstrip().endswith("# a code change")
        assert seconds < 300, f"a code-only rebuild took {seconds:.0f} s"
    finally:
        image.engine_cmd("rmi", tag, check=False)


def test_the_image_serves_a_model_and_stops_cleanly(image, tmp_path):
    """What the InferenceService's predictor runs: `sslmae serve` in the image, on the host's network,
    answers a v2 request; SIGTERM (what Kubernetes sends) ends it with exit status 0."""
    from sslmae.config import load_config
    from sslmae.kubeflow.services import free_port
    from sslmae.model.simmim import SimMIMSSLMAE
    from sslmae.train.model_file import save_model
    from tests.support.model_server import get_ready, png, post, v2_body

    cfg = load_config(None, ["model.backbone=micro", "model.patch_size=4", "model.mask_patch_size=8",
                             "data.img_size=32"])
    net = SimMIMSSLMAE(num_classes=3, backbone="micro", img_size=32, patch_size=4, mask_patch_size=8)
    save_model(tmp_path / "model.pt", net, cfg, ["a", "b", "c"])
    tmp_path.chmod(0o755)
    (tmp_path / "model.pt").chmod(0o644)
    port = free_port()
    cid = image.engine_cmd("run", "-d", "--network", "host", "-v", f"{tmp_path}:/models:ro", image.tag, "sslmae",
                           "serve", "--model", "/models/model.pt", "--port", str(port)).stdout.strip()
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while get_ready(url) != 200:
            assert time.monotonic() < deadline, image.engine_cmd("logs", cid, check=False).stderr[-3000:]
            time.sleep(1)
        status, answer = post(f"{url}/v2/models/sslmae/infer", v2_body(png()))
        assert status == 200 and answer["outputs"][0]["shape"] == [1, 3], answer
        image.engine_cmd("stop", "-t", "30", cid)
        (info,) = json.loads(image.engine_cmd("inspect", cid).stdout)
        assert info["State"]["ExitCode"] == 0, image.engine_cmd("logs", cid, check=False).stderr[-3000:]
    finally:
        image.engine_cmd("rm", "-f", cid, check=False)
