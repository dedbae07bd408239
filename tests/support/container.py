"""The project image for tests: built (or found up to date) by docker/build.sh, once per test
session, and commands run in it with the engine that built it (docker, or podman with
docker/podman.conf). Any test module that needs the image uses `project_image()`; the build
script itself skips the build while nothing the image is built from has changed."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_SH = REPO / "docker" / "build.sh"
TAG = "sslmae:dev"
NO_ENGINE = 3  # build.sh's exit status when no container engine can be used here
BUILD_TIMEOUT = 45 * 60


@dataclass(frozen=True)
class Image:
    engine: str
    tag: str
    build_seconds: float
    build_log: str

    def env(self) -> dict:
        env = dict(os.environ)
        if self.engine == "podman":
            env.setdefault("CONTAINERS_CONF", str(REPO / "docker" / "podman.conf"))
        return env

    def engine_cmd(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([self.engine, *args], env=self.env(), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{self.engine} {' '.join(args)} exited {proc.returncode}\n"
                                 f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc

    def run(self, *cmd: str, user: str | None = None, timeout: float = 300, check: bool = True,
            tag: str | None = None) -> subprocess.CompletedProcess:
        """`ENGINE run --rm [--user U] TAG CMD...` (no CMD: the image's default command)."""
        args = ["run", "--rm"] + (["--user", user] if user else []) + [tag or self.tag, *cmd]
        return self.engine_cmd(*args, timeout=timeout, check=check)

    def inspect(self, tag: str | None = None) -> dict:
        (info,) = json.loads(self.engine_cmd("image", "inspect", tag or self.tag).stdout)
        return info

    def history(self, tag: str | None = None) -> list[dict]:
        """The image's history, oldest first: [{'size': bytes, 'created_by': str}], empty layers too."""
        out = self.engine_cmd("history", "--no-trunc", "--human=false", "--format", "{{json .}}",
                              tag or self.tag).stdout
        # podman prints one JSON array, docker one JSON object a line
        text = out.strip()
        rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines()]
        entries = []
        for row in reversed(rows):  # the engines list the newest first
            size = row.get("Size", row.get("size"))
            entries.append({"size": int(size), "created_by": row.get("CreatedBy", row.get("createdBy", ""))})
        return entries


def build(*args: str, timeout: float = BUILD_TIMEOUT, root: Path = REPO) -> subprocess.CompletedProcess:
    """docker/build.sh ARGS (from `root`, a copy of the repo or the repo), its output captured."""
    return subprocess.run(["bash", str(root / "docker" / "build.sh"), *args], cwd=root, capture_output=True,
                          text=True, timeout=timeout)


@functools.cache
def _build_once() -> Image | str | AssertionError:
    """An Image, a reason to skip, or the failure (kept, so a failed build is not retried)."""
    t0 = time.monotonic()
    proc = build("--tag", TAG)
    seconds = time.monotonic() - t0
    if proc.returncode == NO_ENGINE:
        return proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no container engine"
    if proc.returncode != 0:
        return AssertionError(f"docker/build.sh exited {proc.returncode}\n{proc.stderr[-8000:]}")
    engine = dict(kv.split("=", 1) for kv in proc.stdout.split() if "=" in kv)["engine"]
    return Image(engine=engine, tag=TAG, build_seconds=seconds, build_log=proc.stderr)


def project_image() -> Image:
    """The project image, built at most once per session; skips the test where no engine works."""
    got = _build_once()
    if isinstance(got, str):
        pytest.skip(f"no container engine for the image tests: {got}")
    if isinstance(got, AssertionError):
        raise got
    return got
