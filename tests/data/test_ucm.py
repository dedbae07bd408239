"""The real UC Merced multi-label dataset (skipped when ../shared is absent)."""

import re

import pytest

from sslmae.datasets.labels_csv import read_labels_csv
from sslmae.split import make_split, pixel_groups, read_predefined
from tests.conftest import UCM

pytestmark = pytest.mark.skipif(not (UCM / "labels.csv").is_file(), reason=f"{UCM} not present")


def source_counts() -> dict[str, int]:
    text = (UCM / "SOURCE.txt").read_text()
    block = text.split("Per-label positives (of 2100):", 1)[1].split("Labels per image", 1)[0]
    return {name: int(n) for name, n in re.findall(r"([a-z-]+) (\d+)", block)}


def test_reads_as_labels_csv_with_the_published_counts():
    data = read_labels_csv(UCM)
    assert len(data) == 2100 and len(data.label_names) == 17
    assert dict(zip(data.label_names, data.labels.sum(0).tolist())) == source_counts()


@pytest.mark.slow
def test_one_percent_split_covers_every_label_and_keeps_duplicates_together():
    data = read_labels_csv(UCM)
    groups = pixel_groups(data.paths)
    a1, a2 = data.ids.index("airplane01"), data.ids.index("airplane02")
    assert groups[a1] == groups[a2]  # the known identical pair (SOURCE.txt)
    pre = read_predefined(UCM / "split_seed42.csv", data.ids)
    sub = make_split(data.labels, 0.01, 0.1, 0.2, seed=0, groups=groups, predefined=pre)
    assert (sub == "test").sum() == 433
    lab = sub == "labeled"
    assert (data.labels[lab].sum(0) > 0).all()  # all 17 labels at 1 %
    assert lab.sum() <= 17 + 15


@pytest.mark.slow
def test_ingest_then_split_at_one_percent(tmp_path):
    from sslmae.cli.main import main
    from sslmae.datasets.load import load_dataset

    out, split = tmp_path / "D", tmp_path / "S.csv"
    assert main(["ingest", str(UCM), "--out", str(out)]) == 0
    data = load_dataset(out)
    assert len(data) == 2100 and len(data.label_names) == 17
    assert dict(zip(data.label_names, data.labels.sum(0).tolist())) == source_counts()
    report = (out / "ingest_report.json").read_text()
    assert '"catalog": "UCM_mlc"' in report and "airplane01" in report  # the identical pair is reported
    assert main(["split", str(out), "--out", str(split), "--fraction", "0.01"]) == 0
    import pandas as pd

    table = pd.read_csv(split)
    assert len(table) == 2100 and set(table["subset"]) == {"labeled", "unlabeled", "val", "test"}
    lab = table["subset"].to_numpy() == "labeled"
    assert (data.labels[lab].sum(0) > 0).all()
