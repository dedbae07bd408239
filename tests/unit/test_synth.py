"""The embedded default dataset: layout, determinism, visible and learnable labels."""


import numpy as np
import pytest
from PIL import Image

from sslmae.datasets.labels_csv import DatasetError, read_labels_csv
from sslmae.datasets.synth import LABELS, render, write_synthetic
from tests.conftest import folder_digest


def test_layout_matches_real_datasets(synth_dir):
    data = read_labels_csv(synth_dir)
    assert len(data) == 96 and data.label_names == list(LABELS)
    assert data.labels.dtype == np.uint8 and set(np.unique(data.labels)) <= {0, 1}
    assert (data.labels.sum(1) >= 1).all() and data.labels.sum(1).mean() > 1.5  # several per image
    assert (data.labels.sum(0) > 0).all()
    header = (synth_dir / "labels.csv").read_text().splitlines()[0]
    assert header == "image," + ",".join(LABELS)
    with Image.open(data.paths[0]) as im:
        assert im.size == (32, 32) and im.mode == "RGB"


def test_deterministic_bytes(tmp_path):
    a = write_synthetic(tmp_path / "a", n=12, size=32, seed=5)
    b = write_synthetic(tmp_path / "b", n=12, size=32, seed=5)
    c = write_synthetic(tmp_path / "c", n=12, size=32, seed=6)
    assert folder_digest(a) == folder_digest(b) != folder_digest(c)


def test_each_label_changes_the_pixels():
    """A present element is drawn: scenes with a label differ in colour statistics from those without."""
    imgs, labels = zip(*(render(0, i, 48) for i in range(160)))
    x = np.stack(imgs).astype(float).reshape(160, -1, 3)
    y = np.array([[lab[k] for k in LABELS] for lab in labels])
    feats = np.concatenate([x.mean(1), x.std(1)], 1)
    for j, name in enumerate(LABELS):
        with_, without = feats[y[:, j] == 1], feats[y[:, j] == 0]
        gap = np.abs(with_.mean(0) - without.mean(0)) / (feats.std(0) + 1e-9)
        assert gap.max() > 0.25, name


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    import sslmae.datasets.synth as synth

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth, "render", boom)
    with pytest.raises(RuntimeError):
        write_synthetic(tmp_path / "out", n=3, size=32)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "csv_text, words",
    [
        ("", "empty file"),
        ("image,a,b\n", "header only"),
        ("name,a\nx,1\n", "header must be"),
        ("image,a,b\nimg0,1,2\n", "must be 0 or 1, got '2'"),
        ("image,a,b\nimg0,1,\n", "must be 0 or 1, missing value"),
        ("image,a,b\nimg0,1\n", "expected 3 columns"),
        ("image,a,b\nimg0,1,0\nimg0,0,1\n", "listed twice"),
        ("image,a,b\nmissing,1,1\n", "no image file"),
        ("image,a,b\nimg0,1,0\n", "never positive: b"),
        ("image,a,a\nimg0,1,1\n", "unique"),
    ],
)
def test_reader_errors_name_file_and_row(tmp_path, csv_text, words):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "img0.png")
    (tmp_path / "labels.csv").write_text(csv_text)
    with pytest.raises(DatasetError) as err:
        read_labels_csv(tmp_path)
    assert words in str(err.value) and "labels.csv" in str(err.value)


def test_reader_accepts_bom_crlf_and_file_names(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "img0.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "img1.jpg")
    (tmp_path / "labels.csv").write_bytes("\ufeffimage,a,b\r\nimg0,1,0\r\nimg1.jpg,0,1\r\n".encode())
    data = read_labels_csv(tmp_path)
    assert data.ids == ["img0", "img1"] and data.labels.tolist() == [[1, 0], [0, 1]]
