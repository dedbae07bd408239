"""An output never destroys what the command did not write: folders are replaced or written only
when new, empty or an earlier output of the same command; files by what the command writes;
--out equal to, inside or containing the source is refused before any work."""

from __future__ import annotations

import os
import shutil

import pytest

from sslmae.cli.main import main
from sslmae.outputs import MARKER
from tests.conftest import REPO, folder_digest, tiny_overrides


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def source(tmp_path, synth_dir):
    """A labels-csv dataset with a user's file beside it, inside a parent with a sibling file."""
    parent = tmp_path / "datasets"
    src = parent / "mine"
    shutil.copytree(synth_dir, src)
    (src / "notes.txt").write_text("my notes")
    (parent / "sibling.txt").write_text("keep me")
    return src


def test_ingest_refuses_a_folder_holding_someone_elses_files(source, tmp_path, capsys):
    out = tmp_path / "thesis"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.txt").write_text("chapter 1")
    (out / "sub" / "notes.md").write_text("draft")
    before = folder_digest(out)
    assert main(["ingest", str(source), "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert str(out) in line and "thesis.txt" in line and "sub/" in line
    assert folder_digest(out) == before


@pytest.mark.parametrize("where", ["source", "parent", "inside"])
def test_ingest_refuses_an_output_that_is_inside_or_holds_the_source(source, tmp_path, capsys, where):
    out = {"source": source, "parent": source.parent, "inside": source / "ingested"}[where]
    before = folder_digest(source.parent)
    assert main(["ingest", str(source), "--out", str(out)]) == 2
    assert str(out.resolve()) in one_error_line(capsys)
    assert folder_digest(source.parent) == before and not (source / "ingested").exists()


def test_ingest_out_dot_is_refused_and_leaves_nothing(source, tmp_path, capsys, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "mine.txt").write_text("x")
    monkeypatch.chdir(work)
    assert main(["ingest", str(source), "--out", "."]) == 2
    assert str(work) in one_error_line(capsys)
    assert sorted(os.listdir(work)) == ["mine.txt"]  # no hidden dataset, no temporary


def test_an_earlier_output_of_the_same_command_is_replaced(source, tmp_path, capsys):
    out = tmp_path / "ds"
    assert main(["ingest", str(source), "--out", str(out)]) == 0
    assert (out / MARKER).is_file()
    first = folder_digest(out)
    assert main(["ingest", str(source), "--out", str(out)]) == 0  # same command: replaced, same bytes
    assert folder_digest(out) == first
    assert main(["synth", "--out", str(out), "--n", "4", "--size", "16"]) == 2  # another command's output
    assert "an output of sslmae ingest" in one_error_line(capsys)


def test_synth_refuses_a_foreign_folder(tmp_path, capsys):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"jpeg")
    assert main(["synth", "--out", str(out), "--n", "4", "--size", "16"]) == 2
    assert "holiday.jpg" in one_error_line(capsys) and (out / "holiday.jpg").read_bytes() == b"jpeg"


def test_train_evaluate_report_predict_split_refuse_foreign_outputs(tmp_path, synth_dir, split_file, tiny_run,
                                                                   capsys):
    over = tiny_overrides(tmp_path, synth_dir, split_file)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    assert main(["train", *over, f"train.out_dir={foreign}"]) == 2
    assert "keep.txt" in one_error_line(capsys)
    shutil.copytree(tiny_run, tmp_path / "train")  # what `sslmae train` with these params writes (a copy: trained on below)
    capsys.readouterr()
    model = tmp_path / "train" / "model.pt"
    assert main(["evaluate", "--model", str(model), "--out", str(foreign), *over]) == 2
    assert "keep.txt" in one_error_line(capsys)
    page = tmp_path / "page.html"
    page.write_text("<html>my own page</html>")
    assert main(["report", "--run", str(tmp_path / "train"), "--out", str(page)]) == 2
    assert str(page) in one_error_line(capsys) and page.read_text() == "<html>my own page</html>"
    table = tmp_path / "mine.csv"
    table.write_text("a,b\n1,2\n")
    assert main(["predict", "--model", str(model), "--input", str(synth_dir / "images"), "--out", str(table)]) == 2
    assert str(table) in one_error_line(capsys) and table.read_text() == "a,b\n1,2\n"
    assert main(["split", str(synth_dir), "--out", str(table)]) == 2
    assert table.read_text() == "a,b\n1,2\n"
    # their own earlier outputs are fine
    assert main(["report", "--run", str(tmp_path / "train"), "--out", str(page.with_name("r.html"))]) == 0
    assert main(["report", "--run", str(tmp_path / "train"), "--out", str(page.with_name("r.html"))]) == 0
    pred = tmp_path / "pred.csv"
    assert main(["predict", "--model", str(model), "--input", str(synth_dir / "images"), "--out", str(pred)]) == 0
    assert main(["predict", "--model", str(model), "--input", str(synth_dir / "images"), "--out", str(pred)]) == 0
    assert main(["train", *over]) == 0  # resumes its own finished run


def test_repo_files_are_never_claimed(capsys):
    """The repository itself is someone else's folder to every command."""
    assert main(["synth", "--out", str(REPO / "docs"), "--n", "2", "--size", "16"]) == 2
    assert "docs" in one_error_line(capsys) and (REPO / "docs" / "architecture.md").is_file()
