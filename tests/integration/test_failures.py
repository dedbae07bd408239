"""Every failure is one line and exit 2; an interruption leaves nothing behind; long work shows
progress. Each case as a user meets it, through the CLI (in-process, or as a child process
where a signal, a full disk or a dead server is involved)."""

from __future__ import annotations

import io
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from sslmae.cli.main import main
from sslmae.datasets.synth import write_synthetic
from sslmae.progress import progress
from tests.conftest import SSLMAE, tiny_overrides


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def child(args, tmp_path, **env):
    """`sslmae ARGS` as a child process with its own temp dir; -> CompletedProcess."""
    (tmp_path / "systmp").mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmp_path / "systmp"), "PYTHONDONTWRITEBYTECODE": "1", **env}
    return subprocess.run([*SSLMAE, *map(str, args)], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def big_synth(tmp_path_factory) -> Path:
    """Enough images that an ingest takes a few seconds."""
    return write_synthetic(tmp_path_factory.mktemp("big") / "ds", n=600, size=64, seed=3)


def default_sigint() -> None:
    """preexec_fn: the child gets Ctrl-C's default handling even when this pytest runs as a
    background job of a non-interactive shell, which starts it with SIGINT ignored (Python
    then keeps ignoring it, as a background job should)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------- signals and temporaries

@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_a_signal_mid_ingest_removes_the_temporaries_and_says_so(big_synth, tmp_path, sig, code, word):
    out, systmp = tmp_path / "out" / "ds", tmp_path / "systmp"
    systmp.mkdir()
    env = {**os.environ, "TMPDIR": str(systmp), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([*SSLMAE, "ingest", str(big_synth), "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(".ds.tmp-*")):  # writing has begun
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == f"sslmae ingest: {'terminated' if code == 143 else 'interrupted'} ({word}); " \
                                           "temporary files removed"
    assert len(err.strip().splitlines()) == 1, err
    assert os.listdir(out.parent) == [] and os.listdir(systmp) == []


def test_a_later_run_removes_what_a_killed_run_left(synth_dir, tmp_path):
    out, systmp = tmp_path / "out" / "ds", tmp_path / "systmp"
    systmp.mkdir()
    out.parent.mkdir()
    gone = dead_pid()
    for stale in (out.parent / f".ds.tmp-{gone}-abc", systmp / f"sslmae-ingest-{gone}-xyz"):
        stale.mkdir()
        (stale / "half.png").write_bytes(b"x" * 1000)
    live = out.parent / f".ds.tmp-{os.getpid()}-mine"  # a live process's temporary: not ours to remove
    live.mkdir()
    done = child(["ingest", synth_dir, "--out", out], tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out.parent)) == sorted(["ds", live.name]) and os.listdir(systmp) == []


# ---------------------------------------------------------------- the disk says no

def _tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_during_ingest_is_one_line_naming_the_output(big_synth, tmp_path):
    small = tmp_path / "small"
    if _tmpfs(small, "256k"):  # a real full file system where the machine lets us mount one
        try:
            done = child(["ingest", big_synth, "--out", small / "ds"], tmp_path)
            left = os.listdir(small)
        finally:
            subprocess.run(["umount", str(small)], check=True)
    else:  # else the kernel refuses writes past a size limit (EFBIG), as a full disk refuses them
        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

        env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run([*SSLMAE, "ingest", str(big_synth), "--out", str(small / "ds")], env=env,
                              capture_output=True, text=True, timeout=300, preexec_fn=limit)
        left = os.listdir(small)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(small / "ds") in lines[0] and "cannot write the output" in lines[0], lines
    assert left == []


@pytest.mark.parametrize("fs", ["read-only", "full"])
def test_a_pipeline_run_root_on_a_read_only_or_full_disk_is_one_line(tmp_path, fs):
    """`sslmae pipeline run-local --root` where the disk refuses: one line naming the place, exit 2,
    before any step runs."""
    mnt = tmp_path / "mnt"
    options = "ro,size=1m" if fs == "read-only" else "size=64k"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("this machine does not let the tests mount a tmpfs")
    try:
        done = child(["pipeline", "run-local", "--root", mnt / "run", "synth.size=64", "synth.n=200"], tmp_path)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-3000:]
    assert str(mnt / "run") in lines[0] and "Traceback" not in done.stderr
    assert ("Read-only file system" if fs == "read-only" else "No space left on device") in lines[0], lines


# ---------------------------------------------------------------- checkpoints and model files

class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_truncated_or_pickled_checkpoint_is_one_line(tiny_cfg, tmp_path, capsys):
    over = [f"train.out_dir={tiny_cfg.train.out_dir}", f"data.dir={tiny_cfg.data.dir}",
            f"data.split_file={tiny_cfg.data.split_file}", "data.img_size=32", "model.backbone=micro",
            "model.patch_size=4", "model.mask_patch_size=8", "tracking.enabled=false", "train.epochs=2",
            "train.batch_size=8", f"data.cache_dir={tiny_cfg.data.cache_dir}", "train.progress_bar=false"]
    assert main(["train", *over]) == 0
    capsys.readouterr()
    ckpt = Path(tiny_cfg.train.out_dir) / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    assert main(["train", *over]) == 2
    line = one_error_line(capsys)
    assert str(ckpt) in line and "train.resume=never" in line and "move it aside" in line
    torch.save({"x": Evil()}, ckpt)
    assert main(["train", *over]) == 2
    assert "refused: not a weights-only training checkpoint" in one_error_line(capsys)
    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)
    assert main(["predict", "--model", str(evil), "--input", str(tiny_cfg.data.dir), "--out",
                 str(tmp_path / "p.csv")]) == 2
    assert "refused: not a weights-only sslmae model file" in one_error_line(capsys)


def test_a_damaged_best_checkpoint_under_resume_auto_is_one_line_before_any_training(tiny_cfg, tmp_path, capsys):
    """train.resume=auto continues a finished run from last.ckpt; the best weights it would export
    are read first, so a torn best.ckpt is one line naming it, exit 2, and nothing is trained."""
    over = tiny_overrides(tmp_path, Path(tiny_cfg.data.dir), Path(tiny_cfg.data.split_file))
    assert main(["train", *over]) == 0
    capsys.readouterr()
    best = tmp_path / "train" / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:300])
    model = tmp_path / "train" / "model.pt"
    stamp = model.stat().st_mtime_ns
    assert main(["train", *over]) == 2
    line = one_error_line(capsys)
    assert str(best) in line and "damaged or truncated" in line and "train.resume=never" in line
    assert model.stat().st_mtime_ns == stamp


# ---------------------------------------------------------------- tracking server

def test_an_unreachable_tracking_server_fails_fast_in_one_line(tiny_cfg, tmp_path):
    over = tiny_overrides(tmp_path, Path(tiny_cfg.data.dir), Path(tiny_cfg.data.split_file))
    over = [o for o in over if not o.startswith("tracking.")] + ["tracking.enabled=true"]
    for args in (["train", *over], ["register", "--model", tmp_path / "none.pt", *over],
                 ["predict", "--model", "models:/m@champion", "--input", tiny_cfg.data.dir, "--out", tmp_path / "p.csv"]):
        start = time.monotonic()
        done = child(args, tmp_path, MLFLOW_TRACKING_URI="http://127.0.0.1:9")
        assert done.returncode == 2 and time.monotonic() - start < 60, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "http://127.0.0.1:9" in lines[0] and "does not answer" in lines[0], lines


# ---------------------------------------------------------------- params

def test_params_that_are_not_yaml_or_repeat_a_key(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n  lr: [0.1\nmodel:\n  backbone: mini\n")
    assert main(["config", "--params", str(bad)]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"sslmae config: error: {bad}:") and "not valid YAML" in line
    assert line.split(f"{bad}:")[1].split(":")[0].isdigit()  # file:line:column
    twice = tmp_path / "twice.yaml"
    twice.write_text("train:\n  epochs: 3\n  lr: 0.1\n  epochs: 5\n")
    assert main(["config", "--params", str(twice)]) == 2
    line = one_error_line(capsys)
    assert "key 'epochs' given twice (lines 2 and 4)" in line and str(twice) in line


# ---------------------------------------------------------------- predict and tasks

def test_predict_thresholds_must_be_tuned_or_a_number(tmp_path, synth_dir, capsys):
    assert main(["predict", "--model", str(tmp_path / "m.pt"), "--input", str(synth_dir), "--out",
                 str(tmp_path / "p.csv"), "--thresholds", "abc"]) == 2
    assert "--thresholds: must be 'tuned' or a number in (0, 1), got 'abc'" in one_error_line(capsys)


@pytest.fixture
def class_folders(tmp_path, synth_dir):
    """A multi-class dataset: one folder per class (ingest records task=mcc)."""
    root = tmp_path / "classes"
    labels = pd.read_csv(synth_dir / "labels.csv")
    for i, row in labels.iterrows():
        cls = "wet" if row["water"] else "dry"
        (root / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(synth_dir / "images" / f"{row['image']}.png", root / cls / f"{row['image']}.png")
    return root


def test_a_multiclass_dataset_is_not_trained_as_multilabel(tmp_path, class_folders, s3, capsys):
    ds, split = tmp_path / "ds", tmp_path / "split.csv"
    assert main(["ingest", str(class_folders), "--out", str(ds)]) == 0
    assert main(["split", str(ds), "--out", str(split), "--fraction", "0.5"]) == 0
    over = tiny_overrides(tmp_path, ds, split)
    capsys.readouterr()
    assert main(["train", *over]) == 2
    line = one_error_line(capsys)
    assert "the dataset is mcc" in line and "data.task is mlc" in line and "data.task=mcc" in line
    assert main(["train", *over, "data.task=mcc"]) == 0
    # predict from S3: an unreadable image is named by its key; a multi-class model has no threshold
    client = s3.client()
    for p in sorted((class_folders / "dry").iterdir())[:3]:
        client.put_object(Bucket=s3.bucket, Key=f"incoming/{p.name}", Body=p.read_bytes())
    client.put_object(Bucket=s3.bucket, Key="incoming/broken.png", Body=b"not a png")
    capsys.readouterr()
    out = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(tmp_path / "train" / "model.pt"), "--input",
                 f"s3://{s3.bucket}/incoming", "--out", str(out), "--s3-endpoint", s3.endpoint]) == 0
    said = capsys.readouterr()
    errors = pd.read_csv(out)["error"].dropna().tolist()
    assert len(errors) == 1 and f"s3://{s3.bucket}/incoming/broken.png" in errors[0]
    assert "/tmp" not in errors[0] and "sslmae-predict" not in errors[0]
    assert "thresholds: none: multi-class, the highest-scoring class" in said.out


# ---------------------------------------------------------------- progress

def test_progress_lines_where_there_is_no_terminal_and_a_bar_where_there_is():
    class Pipe(io.StringIO):
        def isatty(self):
            return False

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    pipe = Pipe()
    assert list(progress(range(5), "work", stream=pipe, every_s=0)) == list(range(5))
    lines = pipe.getvalue().splitlines()
    assert lines[0].startswith("work: 1/5 (20 %),") and lines[0].endswith("/s") and len(lines) == 4
    term = Terminal()
    assert list(progress(range(5), "work", stream=term)) == list(range(5))
    assert "work:" in term.getvalue() and "|" in term.getvalue() and "/5 [" in term.getvalue()  # tqdm's bar


def test_ingest_reports_progress_and_its_final_line(big_synth, tmp_path):
    done = child(["ingest", big_synth, "--out", tmp_path / "ds"], tmp_path, SSLMAE_PROGRESS_EVERY_S="0")
    assert done.returncode == 0, done.stderr
    assert "ingest: decoding: 1/600 (0 %)" in done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("ingested 600 images") and str(tmp_path / "ds") in last and last.endswith(" s")


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_training_is_one_line_and_the_run_resumes(tiny_cfg, tmp_path, sig, code):
    """What Kubernetes (SIGTERM) and a user (Ctrl-C) do to a training run: one line, the exit code,
    no checkpoint temporaries, and `train.resume: auto` continues from the last checkpoint."""
    over = tiny_overrides(tmp_path, Path(tiny_cfg.data.dir), Path(tiny_cfg.data.split_file)) + ["train.epochs=40"]
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([*SSLMAE, "train", *over], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint)
    ckpt = tmp_path / "train" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not ckpt.is_file():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    said = [line for line in err.splitlines() if line.startswith("sslmae") or "Traceback" in line]
    assert said == [f"sslmae train: {'terminated (SIGTERM)' if code == 143 else 'interrupted (SIGINT)'}; "
                    "temporary files removed"], err
    assert [p.name for p in ckpt.parent.iterdir() if p.name.startswith(".")] == []
    epoch = torch.load(ckpt, weights_only=True)["epoch"]
    assert epoch < 39 and not (tmp_path / "train" / "model.pt").exists()
