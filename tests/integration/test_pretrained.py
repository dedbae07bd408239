"""model.pretrained through the real loading code: what timm and huggingface_hub would have fetched,
laid out as a Hugging Face cache and read offline; an object of the tests' S3 server; a file behind
an HTTP server on 127.0.0.1; a training run that records which weights it started from; and the
one-line refusals (offline with an empty cache, an unknown name, keys that fit nothing), exit 2,
before any data is read."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file

from sslmae.config import load_config
from sslmae.model.backbone import build_backbone
from sslmae.model.weights_sources import fetch_weights
from sslmae.train.model_file import load_model
from tests.conftest import SSLMAE, tiny_overrides
from tests.support.s3server import upload

REV = "4f3e2d1c0b9a887766554433221100ffeeddccbb"  # a Hub commit id
LOAD = """
import json, sys
from safetensors.torch import save_file
from sslmae.model.backbone import build_backbone, load_pretrained
from sslmae.model.weights_sources import fetch_weights
backbone, size, patch, out, *sources = sys.argv[1:]
for i, source in enumerate(sources):
    w = fetch_weights(source, backbone)
    enc = build_backbone(backbone, int(size), int(patch))
    load_pretrained(enc, w.path, source)
    save_file(enc.state_dict(), f"{out}.{i}")
    print(json.dumps({"revision": w.revision, "mean": w.mean, "std": w.std, "path": str(w.path)}))
"""


def hub_cache(hf_home: Path, repo: str, files: dict[str, bytes], rev: str = REV) -> None:
    """A Hugging Face cache as huggingface_hub lays it out: models--ORG--NAME/{refs/main, snapshots/REV/}."""
    root = hf_home / "hub" / f"models--{repo.replace('/', '--')}"
    for name, data in files.items():
        (root / "snapshots" / rev / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "snapshots" / rev / name).write_bytes(data)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(rev)


def safetensors_bytes(state: dict[str, torch.Tensor], tmp: Path) -> bytes:
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "x.safetensors"))
    return (tmp / "x.safetensors").read_bytes()


def offline_env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "HF_HOME": str(tmp / "hf"), "HF_HUB_OFFLINE": "1", "TORCH_HOME": str(tmp / "torch"),
            "HF_HUB_DISABLE_TELEMETRY": "1"}


def load_in_child(tmp: Path, sources: list[str], backbone: str, size: int, patch: int) -> list[tuple[dict, dict]]:
    """fetch_weights + load_pretrained of each source, one after the other, in a process of its own
    (huggingface_hub reads HF_HOME and HF_HUB_OFFLINE when imported) -> per source (what
    fetch_weights said, the encoder's state after loading)."""
    out = tmp / "loaded.safetensors"
    done = subprocess.run([sys.executable, "-c", LOAD, backbone, str(size), str(patch), str(out), *sources],
                          env=offline_env(tmp), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    said = [json.loads(line) for line in done.stdout.strip().splitlines()[-len(sources):]]
    return [(s, load_file(f"{out}.{i}")) for i, s in enumerate(said)]


def test_timm_names_load_offline_from_the_hugging_face_cache(tmp_path):
    """`timm:ARCH.TAG` and `timm` alone (the backbone's default tag) read what timm's Hub repo would hold."""
    torch.manual_seed(0)
    deit = timm.create_model("deit_tiny_patch16_224", pretrained=False).state_dict()  # the repo holds the head too
    hub_cache(tmp_path / "hf", "timm/deit_tiny_patch16_224.fb_in1k", {"model.safetensors": safetensors_bytes(deit, tmp_path)})
    sources = ("timm:deit_tiny_patch16_224.fb_in1k", "timm")
    for source, (said, loaded) in zip(sources, load_in_child(tmp_path, list(sources), "tiny", 224, 16)):
        assert said["revision"] == REV and said["mean"] == [0.485, 0.456, 0.406]
        assert Path(said["path"]).is_relative_to(tmp_path / "hf" / "hub")
        for k, v in loaded.items():
            assert torch.equal(v, deit[k]), (source, k)


def test_a_distilled_deit_by_name_loads_without_its_distillation_token(tmp_path):
    torch.manual_seed(1)
    deit = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False).state_dict()
    hub_cache(tmp_path / "hf", "timm/deit_tiny_distilled_patch16_224.fb_in1k",
              {"model.safetensors": safetensors_bytes(deit, tmp_path)})
    ((_, loaded),) = load_in_child(tmp_path, ["timm:deit_tiny_distilled_patch16_224.fb_in1k"], "tiny", 224, 16)
    assert torch.equal(loaded["pos_embed"], torch.cat([deit["pos_embed"][:, :1], deit["pos_embed"][:, 2:]], 1))
    assert torch.equal(loaded["blocks.11.mlp.fc2.weight"], deit["blocks.11.mlp.fc2.weight"])


def test_a_hub_repo_with_revision_and_file_and_its_statistics(tmp_path):
    """hf-hub:ORG/NAME takes the statistics of a timm repo's config.json; @REV/FILE pick a snapshot's file."""
    torch.manual_seed(2)
    micro = build_backbone("micro", 32, 4).state_dict()
    data = safetensors_bytes(micro, tmp_path)
    config = {"architecture": "vit", "pretrained_cfg": {"mean": [0.3, 0.4, 0.5], "std": [0.2, 0.2, 0.25]}}
    hub_cache(tmp_path / "hf", "acme/micro-rs", {"model.safetensors": data, "config.json": json.dumps(config).encode()})
    other = "a" * 40
    torch.save({"model": micro}, tmp_path / "ckpt.pth")
    hub_cache(tmp_path / "hf", "acme/micro-rs", {"weights/ckpt.pth": (tmp_path / "ckpt.pth").read_bytes()}, rev=other)
    (tmp_path / "hf" / "hub" / "models--acme--micro-rs" / "refs" / "main").write_text(REV)

    (said, loaded), (said2, loaded2) = load_in_child(
        tmp_path, ["hf-hub:acme/micro-rs", f"hf-hub:acme/micro-rs@{other}/weights/ckpt.pth"], "micro", 32, 4)
    assert said["revision"] == REV and said["mean"] == [0.3, 0.4, 0.5] and said["std"] == [0.2, 0.2, 0.25]
    assert all(torch.equal(v, micro[k]) for k, v in loaded.items())
    said, loaded = said2, loaded2
    assert said["revision"] == other and said["mean"] is None
    assert all(torch.equal(v, micro[k]) for k, v in loaded.items())


def test_an_s3_object_is_cached_by_etag(s3, tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(3)
    first = build_backbone("micro", 32, 4).state_dict()
    upload(s3, "weights/", {"micro.safetensors": safetensors_bytes(first, tmp_path)})
    source = f"s3://{s3.bucket}/weights/micro.safetensors"
    w = fetch_weights(source, "micro")
    assert w.path.is_relative_to(tmp_path / "torch" / "hub" / "checkpoints") and w.revision
    assert all(torch.equal(v, first[k]) for k, v in load_file(str(w.path)).items())
    assert fetch_weights(source, "micro").revision == w.revision  # the same object: the cached file
    second = {k: v + 1 for k, v in first.items()}
    upload(s3, "weights/", {"micro.safetensors": safetensors_bytes(second, tmp_path)})
    again = fetch_weights(source, "micro")  # a new ETag: fetched again
    assert again.revision != w.revision and again.path == w.path
    assert all(torch.equal(v, second[k]) for k, v in load_file(str(again.path)).items())
    with pytest.raises(ValueError, match=f"model.pretrained: s3://{s3.bucket}/weights/absent.pth .*no such object"):
        fetch_weights(f"s3://{s3.bucket}/weights/absent.pth", "micro")


class _ETagHandler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("ETag", '"v1-weights"')
        super().end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    """A folder served on 127.0.0.1 (a free port) -> (folder, base URL)."""
    folder = tmp_path / "www"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_ETagHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_run_from_a_url_records_which_weights_it_started_from(http_dir, tmp_path, monkeypatch, synth_dir,
                                                                 split_file):
    folder, base = http_dir
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(4)
    save_file(build_backbone("micro", 32, 4).state_dict(), str(folder / "micro.safetensors"))
    sha = hashlib.sha256((folder / "micro.safetensors").read_bytes()).hexdigest()
    from sslmae.train.run import train

    cfg = load_config(None, tiny_overrides(tmp_path, synth_dir, split_file) + [
        "train.epochs=1", f"model.pretrained={base}/micro.safetensors", "tracking.enabled=true",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", "tracking.experiment=pretrained"])
    result = train(cfg)
    meta = load_model(result.checkpoint)[3]["pretrained"]
    assert meta == {"source": f"{base}/micro.safetensors", "revision": '"v1-weights"', "file": meta["file"],
                    "sha256": sha}
    import mlflow

    tags = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(result.run_id).data.tags
    assert tags["sslmae.pretrained.sha256"] == sha and tags["sslmae.pretrained.revision"] == '"v1-weights"'
    assert tags["sslmae.pretrained.source"] == f"{base}/micro.safetensors"
    # the cached file serves the next run without the server
    (folder / "micro.safetensors").unlink()
    assert fetch_weights(f"{base}/micro.safetensors", "micro").revision == '"v1-weights"'


@pytest.mark.parametrize("source, says", [
    ("hf-hub:acme/not-cached", "hf-hub:acme/not-cached: acme/not-cached (model.safetensors or "
                               "pytorch_model.bin) is not in the Hugging Face cache"),
    ("timm:deit_tiny_patch16_224.fb_in1k", "timm/deit_tiny_patch16_224.fb_in1k"),
    ("timm:no_such_vit.in1k", "timm has no pretrained weights by that name"),
    ("KEYS", "holds no weights matching this encoder"),
])
def test_weights_that_cannot_be_used_stop_the_run_before_any_data_is_read(tmp_path, source, says):
    if source == "KEYS":
        torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7)}, tmp_path / "resnet.pth")
        source = str(tmp_path / "resnet.pth")
    missing = tmp_path / "no-such-dataset"  # reading any data would fail on this instead
    args = tiny_overrides(tmp_path, missing, tmp_path / "no-split.csv")
    if source.startswith("timm:deit"):
        args = [a for a in args if not a.startswith("model.")] + ["model.backbone=tiny"]
    done = subprocess.run(SSLMAE + ["train", *args, f"model.pretrained={source}"], env=offline_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith(f"sslmae train: error: model.pretrained: {source}") and says in lines[0]
    assert "no-such-dataset" not in lines[0] and not missing.exists()
