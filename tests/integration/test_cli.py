"""Each knob that matches the authors' code (recipes/authors.yaml, docs/method.md) changes what
it says it changes, and only that."""

import subprocess

import yaml

from sslmae.cli.main import main
from sslmae.config import load_config
from tests.conftest import REPO, SSLMAE


def test_config_command_prints_the_resolved_params(capsys):
    # a process of its own: what a user's shell gets on stdout, and nothing another test left
    # running in this process can write into it
    proc = subprocess.run([*SSLMAE, "config", "--params", str(REPO / "recipes" / "authors.yaml"),
                           "train.epochs=3"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("seed: "), proc.stdout[:500]  # the YAML and nothing else on stdout
    printed = yaml.safe_load(proc.stdout)
    assert printed["train"]["epochs"] == 3 and printed["train"]["betas"] == [0.9, 0.95]
    assert printed["augment"]["unlabeled"]["jitter"] == [0.4, 0.4, 0.2, 0.1]
    assert load_config(None, []).model_dump().keys() == printed.keys()
    assert main(["config", "--params", str(REPO / "params.yaml"), "model.head=conv"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.head: must be one of ['linear', 'mlp'], got 'conv'" in err[0]
