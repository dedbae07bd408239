"""What a training run prints: what a user needs, not Lightning's bookkeeping or advertising."""

import subprocess
from pathlib import Path

from tests.conftest import SSLMAE, tiny_overrides


def test_a_training_run_prints_no_lightning_noise(tiny_cfg, tmp_path):
    over = tiny_overrides(tmp_path, Path(tiny_cfg.data.dir), Path(tiny_cfg.data.split_file))
    proc = subprocess.run([*SSLMAE, "train", *over], capture_output=True, text=True,
                          timeout=300)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, said
    assert "GPU available:" in said  # which device trained stays
    for noise in ("TPU available", "HPU available", "to estimate number of stepping batches", "Tip:"):
        assert noise not in said, said
