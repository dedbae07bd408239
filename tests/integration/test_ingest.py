"""`sslmae ingest`: every layout from fixtures the tests generate, every bad-input rule,
determinism, atomicity, and the ingested folder used by split and training."""

import hashlib
import json
import tarfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sslmae.cli.main import main
from sslmae.datasets.ingest import ingest
from sslmae.datasets.load import load_dataset
from sslmae.datasets.problems import DatasetError
from sslmae.split import split_dataset
from tests.conftest import folder_digest
from tests.support.datasets import labels_csv_dataset, quiet, rgb, save

# ------------------------------------------------------------------------- layouts


def test_labels_csv_layout_and_manifest_schema(tmp_path):
    src = labels_csv_dataset(tmp_path / "src")
    res = ingest(str(src), tmp_path / "out", log=quiet)
    assert res.layout == "labels-csv" and res.n_images == 6 and res.label_names == ["a", "b", "c"]
    table = pq.read_table(tmp_path / "out" / "manifest.parquet")
    assert table.column_names == ["image", "path", "sha256", "content_sha256", "width", "height", "bands",
                                  "labels", "label_names", "split", "source"]
    rows = table.to_pylist()
    assert rows[0]["path"] == "images/im0.png" and rows[0]["width"] == 24 and rows[0]["bands"] == 3
    assert rows[0]["labels"] == [1, 1, 0] and rows[0]["label_names"] == ["a", "b"]
    stored = (tmp_path / "out" / rows[0]["path"]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == rows[0]["sha256"]
    assert stored == (src / "images" / "im0.png").read_bytes()  # an upright RGB PNG is kept as is
    data = load_dataset(tmp_path / "out")
    assert data.labels.shape == (6, 3) and data.ids[0] == "im0"


def test_ucm_txt_layout(tmp_path):
    src = tmp_path / "UCMerced"
    names = ["airplane", "bare-soil", "cars"]
    lines = ["IMAGE\\LABEL\t" + "\t".join(names)]
    for cls, idx in (("airplane", 0), ("airplane", 1), ("parking", 0)):
        stem = f"{cls}{idx:02d}"
        save(src / "Images" / cls / f"{stem}.tif", seed=idx + len(cls))
        lines.append(stem + "\t" + "\t".join("1" if (cls == "airplane") == (n == "airplane") else "0" for n in names))
    (src / "LandUse_Multilabeled.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())  # CRLF as released
    res = ingest(str(src), tmp_path / "out", log=quiet)
    assert res.layout == "ucm-txt" and res.n_images == 3
    rows = pq.read_table(tmp_path / "out" / "manifest.parquet").to_pylist()
    assert [r["image"] for r in rows] == ["airplane00", "airplane01", "parking00"]
    assert rows[2]["label_names"] == ["bare-soil", "cars"]
    assert rows[0]["path"].endswith(".png")  # TIFF re-encoded
    assert rows[0]["source"] == "Images/airplane/airplane00.tif"


def test_class_folders_layout_is_multiclass(tmp_path):
    src = tmp_path / "scenes"
    for c, cls in enumerate(["beach", "forest", "river"]):
        for i in range(2):
            save(src / cls / f"{cls}_{i}.jpg", seed=10 * c + i, quality=90)
    (src / "forest" / "notes.md").write_text("ignore me")
    res = ingest(str(src), tmp_path / "out", log=quiet)
    assert res.layout == "class-folders" and res.n_images == 6 and res.label_names == ["beach", "forest", "river"]
    data = load_dataset(tmp_path / "out")
    assert data.task == "mcc" and (data.labels.sum(1) == 1).all()
    assert data.paths[0].suffix == ".jpg"  # an upright RGB JPEG is kept byte for byte


def test_bigearthnet_layout_composes_rgb_from_bands(tmp_path):
    src = tmp_path / "ben"
    for k, labels in enumerate((["Sea and ocean"], ["Pastures", "Mixed forest"])):
        patch = f"S2A_MSIL2A_{k}"
        d = src / patch
        d.mkdir(parents=True)
        for b, dn in (("B04", 3000), ("B03", 1500), ("B02", 0)):
            Image.fromarray(np.full((20, 20), dn, dtype=np.uint16)).save(d / f"{patch}_{b}.tif")
        (d / f"{patch}_labels_metadata.json").write_text(json.dumps({"labels": labels, "tile_source": "x"}))
    res = ingest(str(src), tmp_path / "out", log=quiet)
    assert res.layout == "bigearthnet" and res.label_names == ["Mixed forest", "Pastures", "Sea and ocean"]
    data = load_dataset(tmp_path / "out")
    px = np.asarray(Image.open(data.paths[0]))
    assert px.shape == (20, 20, 3) and tuple(px[0, 0]) == (255, 128, 0)  # fixed scale: DN 3000 -> 255
    assert data.labels.tolist() == [[0, 0, 1], [1, 1, 0]]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_manifest_layout_lists_and_splits(tmp_path, fmt):
    import pandas as pd

    src = tmp_path / "m"
    for i in range(4):
        save(src / "pics" / f"p{i}.png", seed=i)
    df = pd.DataFrame({"image": [f"pics/p{i}.png" for i in range(4)],
                       "labels": ["x|y", "y", "x", "z"] if fmt == "csv" else [["x", "y"], ["y"], ["x"], ["z"]],
                       "split": ["train", "train", "val", "test"]})
    if fmt == "csv":
        df.to_csv(src / "manifest.csv", index=False)
    else:
        df.to_parquet(src / "manifest.parquet")
    res = ingest(str(src), tmp_path / "out", log=quiet)
    assert res.layout == "manifest" and res.label_names == ["x", "y", "z"]
    data = load_dataset(tmp_path / "out")
    assert data.labels.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]]
    assert list(data.predefined) == ["train", "train", "val", "test"]


def test_manifest_multi_hot_columns(tmp_path):
    src = tmp_path / "m"
    for i in range(3):
        save(src / f"q{i}.png", seed=i)
    (src / "manifest.csv").write_text("image,road,water\nq0.png,1,0\nq1.png,0,1\nq2.png,1,1\n")
    res = ingest(str(src), tmp_path / "out", layout="manifest", log=quiet)
    assert res.label_names == ["road", "water"]
    assert load_dataset(tmp_path / "out").predefined is None


def test_archives_are_ingested(tmp_path):
    src = labels_csv_dataset(tmp_path / "ds")
    with tarfile.open(tmp_path / "ds.tar.gz", "w:gz") as tar:
        tar.add(src, arcname="ds")
    res = ingest(str(tmp_path / "ds.tar.gz"), tmp_path / "out", log=quiet)
    assert res.n_images == 6


def test_auto_says_which_layout(tmp_path, capsys):
    src = labels_csv_dataset(tmp_path / "src")
    assert main(["ingest", str(src), "--out", str(tmp_path / "out")]) == 0
    assert "layout: labels-csv (detected)" in capsys.readouterr().out


def test_deterministic_bytes(tmp_path):
    src = tmp_path / "src"
    labels_csv_dataset(src, ext="tif")  # forces re-encoding
    ingest(str(src), tmp_path / "a", log=quiet)
    ingest(str(src), tmp_path / "b", log=quiet)
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")


def test_an_ingested_folder_is_a_source_and_re_ingesting_it_is_an_identity(tmp_path):
    """The manifest layout reads an ingested folder back: the same manifest but for each row's `source`."""
    src = tmp_path / "src"
    labels_csv_dataset(src, ext="tif")
    ingest(str(src), tmp_path / "a", log=quiet)
    ingest(str(tmp_path / "a"), tmp_path / "b", log=quiet)
    a = pq.read_table(tmp_path / "a" / "manifest.parquet").drop(["source"])
    b = pq.read_table(tmp_path / "b" / "manifest.parquet").drop(["source"])
    assert a.equals(b)


def test_interrupted_ingest_leaves_nothing(tmp_path, monkeypatch):
    import sslmae.datasets.ingest as mod

    src = labels_csv_dataset(tmp_path / "src")
    calls = {"n": 0}
    real = mod._stored

    def dies_midway(rec, img):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(rec, img)

    monkeypatch.setattr(mod, "_stored", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        ingest(str(src), tmp_path / "out", log=quiet)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


# ------------------------------------------------------------------- bad input rules


def bad_dataset(tmp_path, name):
    """A labels-csv dataset with one defect of kind `name`; returns (root, expected words)."""
    root = labels_csv_dataset(tmp_path / "src")
    img = root / "images"
    csv = root / "labels.csv"
    if name == "truncated":
        data = (img / "im1.png").read_bytes()
        (img / "im1.png").write_bytes(data[: len(data) // 2])
        return root, "truncated"
    if name == "empty":
        (img / "im1.png").write_bytes(b"")
        return root, "empty file"
    if name == "not_image":
        (img / "im1.png").write_bytes(b"this is text, not a PNG")
        return root, "not an image"
    if name == "tiny":
        save(img / "im1.png", rgb(1, (8, 8)))
        return root, "too small"
    if name == "huge":
        Image.new("RGB", (5000, 5000)).save(img / "im1.png")
        return root, "too large"
    if name == "duplicate_name":
        save(img / "im1.jpg", seed=9)
        return root, "duplicate image name"
    if name == "not_01":
        set_row(csv, "im1", "im1,0,2,0")
        return root, "must be 0 or 1, got '2'"
    if name == "missing_value":
        set_row(csv, "im1", "im1,0,,0")
        return root, "missing value"
    if name == "row_without_image":
        (img / "im1.png").unlink()
        return root, "no image file for 'im1'"
    if name == "image_without_row":
        save(img / "extra.png", seed=99)
        return root, "no label row"
    if name == "duplicate_row":
        csv.write_text(csv.read_text() + "im1,1,1,1\n")
        return root, "listed twice"
    raise AssertionError(name)


def set_row(csv, image, text):
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join(text if line.split(",")[0] == image else line for line in lines) + "\n")


BAD = ["truncated", "empty", "not_image", "tiny", "huge", "duplicate_name", "not_01", "missing_value",
       "row_without_image", "image_without_row", "duplicate_row"]


@pytest.mark.parametrize("name", BAD)
def test_bad_item_stops_with_a_named_error_and_no_output(tmp_path, name, capsys):
    root, words = bad_dataset(tmp_path, name)
    args = ["ingest", str(root), "--out", str(tmp_path / "out")]
    if name == "huge":
        args += ["--max-pixels", "1000000"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err, err
    assert "im1" in err or "extra" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", BAD)
def test_bad_item_is_listed_when_skipped(tmp_path, name, capsys):
    root, words = bad_dataset(tmp_path, name)
    res = ingest(str(root), tmp_path / "out", on_bad="skip", max_pixels=1_000_000)
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert report["skipped"] and any(words in s["problem"] for s in report["skipped"]), report["skipped"]
    assert "skipped" in out and words in out
    n_listed = len(report["skipped"])
    assert res.n_images + n_listed >= 6  # every image is either ingested or listed


def test_header_only_and_never_positive(tmp_path):
    root = labels_csv_dataset(tmp_path / "src")
    (root / "labels.csv").write_text("image,a,b,c\n")
    with pytest.raises(DatasetError, match="header only"):
        ingest(str(root), tmp_path / "out", on_bad="skip", log=quiet)
    root = labels_csv_dataset(tmp_path / "src2", names=("a", "b", "c", "never"))
    text = (root / "labels.csv").read_text().splitlines()
    fixed = [text[0]] + [",".join(line.split(",")[:-1] + ["0"]) for line in text[1:]]
    (root / "labels.csv").write_text("\n".join(fixed) + "\n")
    with pytest.raises(DatasetError, match="never positive: never"):
        ingest(str(root), tmp_path / "out", log=quiet)
    ingest(str(root), tmp_path / "out", on_bad="skip", log=quiet)
    report = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert any(w["kind"] == "never_positive" and w["where"] == "never" for w in report["warnings"])


def test_bom_and_crlf(tmp_path):
    root = labels_csv_dataset(tmp_path / "src")
    text = (root / "labels.csv").read_text()
    (root / "labels.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert ingest(str(root), tmp_path / "out", log=quiet).label_names == ["a", "b", "c"]


@pytest.mark.parametrize(
    "mode, make, note, pixel",
    [
        ("L", lambda: Image.new("L", (20, 20), 77), "grayscale converted", (77, 77, 77)),
        ("RGBA", lambda: Image.new("RGBA", (20, 20), (10, 20, 30, 0)), "alpha dropped (400 non-opaque", (10, 20, 30)),
        ("P", lambda: Image.new("RGB", (20, 20), (200, 0, 0)).convert("P", palette=Image.ADAPTIVE), "palette converted", (200, 0, 0)),
        ("CMYK", lambda: Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "CMYK converted", (255, 0, 0)),
        ("I;16", lambda: Image.fromarray(np.tile(np.arange(20, dtype=np.uint16) * 1000, (20, 1))),
         "high bit depth scaled", None),
    ],
)
def test_modes_are_converted_and_noted(tmp_path, mode, make, note, pixel):
    root = labels_csv_dataset(tmp_path / "src")
    im = make()
    im.save(root / "images" / ("im1.tif" if mode in ("CMYK", "I;16") else "im1.png"))
    if mode in ("CMYK", "I;16"):
        (root / "images" / "im1.png").unlink()
    ingest(str(root), tmp_path / "out", log=quiet)
    data = load_dataset(tmp_path / "out")
    out = np.asarray(Image.open(data.paths[1]))
    assert out.shape == (20, 20, 3)
    if pixel is not None:
        assert tuple(out[0, 0]) == pixel
    else:  # stretched: dark on the left, bright on the right, full range
        assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255
    report = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert any(w["where"] == "im1" and note in w["problem"] for w in report["warnings"]), report["warnings"]


def test_exif_orientation_is_applied(tmp_path):
    root = labels_csv_dataset(tmp_path / "src")
    arr = np.zeros((20, 30, 3), dtype=np.uint8)
    arr[:, :10] = 255  # white band on the left of a 30x20 image
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    im.save(root / "images" / "im1.jpg", exif=exif, quality=95)
    (root / "images" / "im1.png").unlink()
    ingest(str(root), tmp_path / "out", log=quiet)
    data = load_dataset(tmp_path / "out")
    out = np.asarray(Image.open(data.paths[1]))
    assert out.shape == (30, 20, 3)  # upright: now 20 wide, 30 high
    assert out[:10, :, 0].mean() > 200 and out[-10:, :, 0].mean() < 50  # band now on top


def test_identical_pixels_are_reported_and_kept_together(tmp_path):
    root = labels_csv_dataset(tmp_path / "src", n=12)
    save(root / "images" / "im5.png", seed=3)  # same pixels as im3
    ingest(str(root), tmp_path / "out", log=quiet)
    report = json.loads((tmp_path / "out" / "ingest_report.json").read_text())
    assert report["identical"] == [["im3", "im5"]]
    data = load_dataset(tmp_path / "out")
    assert data.groups[3] == data.groups[5] and len(set(data.groups)) == 11
    table = split_dataset(tmp_path / "out", tmp_path / "s.csv", fraction=0.5, val=0.2, test=0.3, seed=0)
    side = table["subset"].replace({"labeled": "train", "unlabeled": "train"}).tolist()
    assert side[3] == side[5]


def test_unknown_layout_and_source(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["ingest", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot tell the layout" in capsys.readouterr().err
    assert main(["ingest", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["ingest", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--layout", "weird"]) == 2
    assert "--layout" in capsys.readouterr().err


# ------------------------------------------------------------------------ S3 sources








