"""`sslmae fractions`: the label-fraction curve (split, train and test per fraction and mode)."""

import json

from sslmae.cli.main import main


def test_label_fraction_curve_feeds_the_report(tmp_path, synth_dir):
    import pandas as pd

    from tests.conftest import tiny_overrides, write_predefined

    # a predefined train/val/test table (the authors' protocol): only the labeled share may change
    base = pd.read_csv(write_predefined(synth_dir, tmp_path / "predefined.csv"))
    over = tiny_overrides(tmp_path, synth_dir, tmp_path / "s.csv")
    args = ["fractions", "--fractions", "0.2", "0.5", "--modes", "semi_supervised", "supervised_baseline",
            "--work", str(tmp_path / "fr"), "--out", str(tmp_path / "fr.csv"),
            "--predefined", str(tmp_path / "predefined.csv"), "--equal-steps", *over, "train.epochs=1"]
    assert main(args) == 0
    table = pd.read_csv(tmp_path / "fr.csv", float_precision="round_trip")  # exact, whatever pandas' default
    assert len(table) == 4 and set(table["mode"]) == {"semi_supervised", "supervised_baseline"}
    for _, row in table.iterrows():  # each row is its run's test evaluation
        scored = json.loads((tmp_path / "fr" / f"eval_{row['mode']}_{row['fraction']}" / "metrics.json").read_text())
        assert scored["subset"] == "test" and row["test_macro_auprc"] == scored["macro_auprc"]
    assert list(table["w"]) == [0.5, 1.0, 0.5, 1.0]  # the baseline's objective is L_cls alone
    from sslmae.fractions import step_factor

    for fraction, rows in table.groupby("fraction"):
        # the baseline takes as many optimizer steps as the semi-supervised run: more epochs
        factor = step_factor(pd.read_csv(tmp_path / "fr" / f"split_{fraction}.csv"), 8)
        assert factor > 1 and list(rows["epochs"]) == [1, round(factor)]
    for fraction in ("0.2", "0.5"):
        split = pd.read_csv(tmp_path / "fr" / f"split_{fraction}.csv")
        for side in ("val", "test"):
            assert set(split.loc[split["subset"] == side, "image"]) == set(base.loc[base["split"] == side, "image"])
    sel = tmp_path / "fr" / "semi_supervised_0.2"
    assert main(["report", "--run", str(sel), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().count("data:image/png;base64") >= 2


def test_fractions_modes_keep_trailing_overrides_and_refuse_unknown_modes(tmp_path, capsys):
    from sslmae.fractions import modes_and_overrides

    assert modes_and_overrides(["semi_supervised", "train.epochs=3", "supervised_baseline"]) == (
        ["semi_supervised", "supervised_baseline"], ["train.epochs=3"])
    code = main(["fractions", "--modes", "semi_supervised", "semisupervised", "--work", str(tmp_path / "w"),
                 "--out", str(tmp_path / "f.csv")])
    assert code != 0 and "unknown mode(s) ['semisupervised']" in capsys.readouterr().err
    assert not (tmp_path / "w").exists() and not (tmp_path / "f.csv").exists()
