"""Metric values against hand-computed small cases and against scikit-learn."""

import numpy as np
import pytest
from sklearn import metrics as skm

from sslmae.metrics import mcc_suite, mlc_suite, per_class_table
from sslmae.metrics.ranking import average_precision, coverage, one_error, ranking_loss

Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
S = np.array([[0.9, 0.2, 0.4], [0.6, 0.7, 0.1], [0.8, 0.3, 0.35], [0.1, 0.55, 0.5]])


def test_hand_computed_small_case():
    # label 0: positives at scores .9 (rank 1) and .8 (rank 2) -> AP 1
    assert average_precision(Y[:, 0], S[:, 0]) == pytest.approx(1.0)
    # label 1: order .7(+) .55(-) .3(+) .2(-) -> AP = (1/1 + 2/3) / 2
    assert average_precision(Y[:, 1], S[:, 1]) == pytest.approx((1 + 2 / 3) / 2)
    # one-error: top labels 0,1,0,1 -> row 3 wrong (label 1 not true)
    assert one_error(Y, S) == pytest.approx(0.25)
    # coverage: worst true rank per row: 2, 1, 3, 2 -> steps below the top: 1, 0, 2, 1 -> mean 1
    assert coverage(Y, S) == pytest.approx(1.0)
    # ranking loss: row0 pairs (0>1 ok, 2>1 ok)=0; row1 (1 vs 0,2: .7>.6 ok,.7>.1 ok)=0;
    # row2 (0 vs 2 ok, 1 .3 < .35 bad)=1/2; row3 (2 .5 vs 0 .1 ok, vs 1 .55 bad)=1/2
    assert ranking_loss(Y, S) == pytest.approx(0.25)
    m = mlc_suite(Y, S, 0.5)
    pred = (S >= 0.5).astype(int)  # [[1,0,0],[1,1,0],[1,0,0],[0,1,1]]
    # tp=4 fp=2 fn=2 overall
    assert m["micro_precision"] == pytest.approx(4 / 6)
    assert m["micro_recall"] == pytest.approx(4 / 6)
    assert m["hamming_loss"] == pytest.approx(4 / 12)
    assert m["subset_accuracy"] == 0.0  # no row is predicted exactly
    assert not (pred == Y).all(1).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlc_suite_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((60, 7)) < 0.3).astype(int)
    y[0] = 0  # a row without labels
    y[:, 6] = 0
    y[5, 6] = 1  # a rare label
    s = np.clip(y * rng.uniform(0.2, 0.9, y.shape) + rng.uniform(0, 0.6, y.shape), 0, 1).round(2)  # ties
    m = mlc_suite(y, s, 0.5)
    pred = (s >= 0.5).astype(int)
    assert m["macro_auprc"] == pytest.approx(skm.average_precision_score(y, s, average="macro"))
    assert m["weighted_auprc"] == pytest.approx(skm.average_precision_score(y, s, average="weighted"))
    assert m["ranking_loss"] == pytest.approx(skm.label_ranking_loss(y, s))
    has = y.any(1)  # the authors drop rows without a label, then report coverage_error - 1
    assert m["coverage"] == pytest.approx(skm.coverage_error(y[has], s[has]) - 1)
    assert m["hamming_loss"] == pytest.approx(skm.hamming_loss(y, pred))
    assert m["subset_accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    for avg in ("micro", "macro"):
        assert m[f"{avg}_f1"] == pytest.approx(skm.f1_score(y, pred, average=avg, zero_division=0))
        assert m[f"{avg}_precision"] == pytest.approx(skm.precision_score(y, pred, average=avg, zero_division=0))
        assert m[f"{avg}_recall"] == pytest.approx(skm.recall_score(y, pred, average=avg, zero_division=0))
    assert m["example_f1"] == pytest.approx(skm.f1_score(y, pred, average="samples", zero_division=0))
    assert m["example_precision"] == pytest.approx(skm.precision_score(y, pred, average="samples", zero_division=0))
    assert m["example_recall"] == pytest.approx(skm.recall_score(y, pred, average="samples", zero_division=0))
    top = s.argmax(1)
    counted = y.any(1) & ~y.all(1)  # the authors' one-error skips rows with no or all labels
    assert m["one_error"] == pytest.approx(np.mean((y[np.arange(len(y)), top] == 0)[counted]))


def test_absent_labels_are_left_out_of_auprc_and_counted():
    y = np.array([[1, 0], [0, 0], [1, 0]])
    s = np.array([[0.9, 0.1], [0.2, 0.3], [0.8, 0.2]])
    m = mlc_suite(y, s)
    assert m["macro_auprc"] == pytest.approx(1.0) and m["n_labels_absent"] == 1


def test_mcc_suite_matches_sklearn():
    rng = np.random.default_rng(4)
    true = rng.integers(0, 5, 80)
    y = np.eye(5, dtype=int)[true]
    logits = rng.normal(size=(80, 5)) + 2 * y
    s = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = mcc_suite(y, s)
    guess = s.argmax(1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(true, guess))
    for avg in ("micro", "macro"):
        assert m[f"{avg}_f1"] == pytest.approx(skm.f1_score(true, guess, average=avg))
        assert m[f"{avg}_precision"] == pytest.approx(skm.precision_score(true, guess, average=avg))
        assert m[f"{avg}_recall"] == pytest.approx(skm.recall_score(true, guess, average=avg))
    assert m["macro_auprc"] == pytest.approx(skm.average_precision_score(y, s, average="macro"))


def test_per_class_table():
    pred = (S >= 0.5).astype(int)
    t = per_class_table(Y, S, pred, ["a", "b", "c"])
    assert list(t["label"]) == ["a", "b", "c"]
    assert list(t["support"]) == [2, 2, 2]
    assert t["ap"].iloc[0] == pytest.approx(1.0)
    assert t["f1"].tolist() == pytest.approx(list(skm.f1_score(Y, pred, average=None, zero_division=0)))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="must both be"):
        mlc_suite(Y, S[:, :2])
