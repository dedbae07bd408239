"""What a model file records of its training images, which the promotion gate's overlap check reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

TRAIN_SIDES = ("labeled", "unlabeled", "val")  # what a model learned from, or was selected on


def _grow(project, n: int, **split) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["synth"]["n"] = n
    params["split"].update(split)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


# Retraining with DVC on grown data (frozen test set, the gate's overlap counts, the split history, the
# decode cache of the old data removed, a new split as other data) runs in tests/system/test_newcomer.py,
# on the project the README's commands made: one pipeline run instead of two more.


def test_a_model_file_records_the_images_it_trained_on(tiny_cfg):
    from sslmae.seen import image_hashes
    from sslmae.train.run import train

    result = train(tiny_cfg)
    meta = torch.load(result.checkpoint, weights_only=True)["meta"]
    subsets = pd.read_csv(tiny_cfg.data.split_file)
    seen = subsets.loc[subsets["subset"].isin(TRAIN_SIDES), "image"]
    assert np.array_equal(meta["trained_on"].numpy().view(np.uint64), image_hashes(seen))
