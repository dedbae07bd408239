"""The pipeline's decisions as pure functions: which trials a grid runs and what each trains,
which trial wins, which epoch a run exports, which thresholds it tunes, and whether a challenger
replaces the champion."""

import numpy as np
import pandas as pd
import pytest

from sslmae.config import ConfigError, load_config, to_dict
from sslmae.grid import SKIPPED_FILE, best_trial, run_trial, shared_params, skipped, trial_config, trial_names
from sslmae.metrics.thresholds import tune_thresholds
from sslmae.release import promotion
from sslmae.train.export import selected_epoch


def test_tuned_thresholds_maximise_f1():
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 1]])
    s = np.array([[0.3, 0.1], [0.35, 0.2], [0.1, 0.4], [0.2, 0.9]])
    thr = tune_thresholds(y, s)
    assert 0.2 < thr[0] <= 0.3  # separates 0.3/0.35 from 0.1/0.2
    assert 0.4 < thr[1] <= 0.9
    assert tune_thresholds(np.zeros((3, 1)), np.ones((3, 1)) * 0.7) == [0.5]


@pytest.mark.parametrize("challenger, champion, margin, same, promoted", [
    (0.70, None, 0.0, False, True),  # the first model always wins
    (0.71, 0.70, 0.0, False, True),
    (0.70, 0.70, 0.0, False, False),  # a tie keeps the champion
    (0.69, 0.70, 0.0, False, False),
    (0.705, 0.70, 0.01, False, False),  # better, but not by more than the margin
    (0.72, 0.70, 0.01, False, True),
    (0.90, 0.70, 0.0, True, False),  # the champion itself is never "promoted" again
])
def test_promotion_rule(challenger, champion, margin, same, promoted):
    assert promotion(challenger, champion, margin, same) is promoted


def test_the_best_trial_has_the_highest_metric_and_ties_go_to_the_first():
    table = pd.DataFrame({"trial": ["w0.3", "w0.7", "learned"], "val_macro_auprc": [0.6, 0.8, 0.8]})
    assert best_trial(table, "val_macro_auprc")["trial"] == "w0.7"
    with pytest.raises(ValueError, match="no trial reports val_accuracy"):
        best_trial(table, "val_accuracy")
    with pytest.raises(ValueError, match="validation subset empty"):
        best_trial(table.assign(val_macro_auprc=np.nan), "val_macro_auprc")


@pytest.mark.parametrize("select, last, best, expected", [
    ("best", 9, 4, 4), ("best", 9, None, 9), ("last", 9, 4, 9), ("last", 9, None, 9)])
def test_the_exported_epoch(select, last, best, expected):
    assert selected_epoch(select, last, best) == expected


def test_each_trial_trains_its_own_w_in_its_own_folder():
    cfg = load_config(None, ["grid.out_dir=g", "grid.trials=[w0.3, w1, learned]"])
    assert trial_names(cfg) == ["w0.3", "w1", "learned"]
    fixed, learned = trial_config(cfg, "w0.3"), trial_config(cfg, "learned")
    assert (fixed.loss.w, fixed.loss.learn_w, fixed.train.out_dir) == (0.3, False, "g/w0.3")
    assert trial_config(cfg, "w1").loss.w == 1.0
    assert (learned.loss.w, learned.loss.learn_w, learned.train.out_dir) == (cfg.loss.w, True, "g/learned")
    with pytest.raises(ValueError, match="not in grid.trials"):
        trial_config(cfg, "w0.5")


def test_the_trials_must_suit_the_mode():
    baseline = load_config(None, ["loss.mode=supervised_baseline", "grid.trials=[baseline]"])
    assert trial_names(baseline) == ["baseline"] and trial_config(baseline, "baseline").loss.mode == baseline.loss.mode
    with pytest.raises(ConfigError, match=r"has no w to search; set grid.trials=\[baseline\]"):
        trial_names(load_config(None, ["loss.mode=supervised_baseline", "grid.trials=[w0.3, w0.7, learned]"]))
    with pytest.raises(ConfigError, match="'baseline' is the trial of a mode without reconstruction"):
        trial_names(load_config(None, ["grid.trials=[baseline]"]))


def test_the_default_grid_follows_the_mode():
    """One knob: changing loss.mode alone picks the trials that mode can run; the others are skipped,
    leaving a marker (DVC's foreach runs every name the default lists)."""
    assert trial_names(load_config(None, [])) == ["w0.3", "w0.7", "learned"]
    assert trial_names(load_config(None, ["loss.mode=supervised"])) == ["w0.3", "w0.7", "learned"]
    baseline = load_config(None, ["loss.mode=supervised_baseline"])
    assert trial_names(baseline) == ["baseline"]
    assert skipped(baseline, "w0.3") and not skipped(baseline, "baseline")
    assert skipped(load_config(None, []), "baseline")
    # a trial added to the default list is one more trial, not a contradiction
    assert trial_names(load_config(None, ["grid.trials=[w0.3, w0.7, learned, baseline, w0.5]"]))[-1] == "w0.5"


def test_a_skipped_trial_leaves_only_its_marker(tmp_path):
    cfg = load_config(None, ["loss.mode=supervised_baseline", f"grid.out_dir={tmp_path}"])
    assert run_trial(cfg, "learned") is None
    assert sorted(p.name for p in (tmp_path / "learned").iterdir()) == [SKIPPED_FILE]
    assert "supervised_baseline" in (tmp_path / "learned" / SKIPPED_FILE).read_text()


def test_the_grid_run_logs_only_what_every_trial_shares():
    cfg = load_config(None, ["grid.trials=[w0.3, w0.7, learned]"])
    shared = shared_params([to_dict(trial_config(cfg, t)) for t in trial_names(cfg)])
    assert {"loss.w", "loss.learn_w", "train.out_dir"}.isdisjoint(shared)
    assert shared["model.backbone"] == "mini" and shared["train.betas"] == "[0.9, 0.999]"


def test_the_gate_refuses_a_model_scored_on_images_it_trained_on():
    from sslmae.release import overlap_refusal

    versions = {"challenger": 2, "champion": 1}
    assert overlap_refusal({"challenger": 0, "champion": 0}, versions, 30, "test", allowed=False) is None
    assert overlap_refusal({"challenger": 0, "champion": None}, versions, 30, "test", allowed=False) is None
    said = overlap_refusal({"challenger": 0, "champion": 7}, versions, 30, "test", allowed=False)
    assert "champion v1 trained on 7 of the 30 test images" in said and "--allow-overlap" in said
    assert "\n" not in said
    assert overlap_refusal({"challenger": 0, "champion": 7}, versions, 30, "test", allowed=True) is None


def test_the_gate_names_a_changed_label_set():
    from sslmae.release import label_refusal

    versions = {"challenger": 2, "champion": 1}
    assert label_refusal({"challenger": ["a", "b"]}, versions) is None
    assert label_refusal({"challenger": ["a", "b"], "champion": ["a", "b"]}, versions) is None
    said = label_refusal({"challenger": ["a", "b", "c"], "champion": ["a", "d", "b"]}, versions)
    assert "added ['c']" in said and "removed ['d']" in said and "not comparable" in said
    assert "reordered" in label_refusal({"challenger": ["b", "a"], "champion": ["a", "b"]}, versions)


def test_image_hashes_name_images_and_count_what_a_model_saw():
    from sslmae.seen import count_seen, image_hashes

    seen = image_hashes(["a", "b", "c", "b"])
    assert seen.dtype == np.uint64 and len(seen) == 3 and list(seen) == sorted(seen)
    assert count_seen(seen, ["c", "d", "e"]) == 1 and count_seen(seen, []) == 0
    assert count_seen(seen.view(np.int64).view(np.uint64), ["a", "b"]) == 2  # as a model file stores them
