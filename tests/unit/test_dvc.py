"""dvc.yaml against the code and the schema: every stage lists the code it runs (derived from the
import graph) and the knobs it reads (derived from the schema's marks), so a change DVC does not
see can never keep stale results. tests/system/test_dvc_repro.py runs the pipeline for real."""

from __future__ import annotations

from pathlib import Path

import yaml

from sslmae.config import Config, flatten, free_keys, to_dict
from tests.support.dvc_code import regenerated
from tests.support.imports import REPO, closure, files

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
KNOBS = set(flatten(to_dict(Config())))
# what reaches the trials through a tracked dependency rather than a param: the paths DVC hashes
# (data.dir, data.split_file), ingest's knobs (they change data.dir), split's knobs (they change
# the split file), and what other stages own (synth; evaluate.split: the evaluated subset)
TRIAL_NEED_NOT_LIST = {"data.source", "data.unlabeled", "data.unlabeled_rows", "data.bands", "data.layout", "data.on_bad", "data.format", "data.shard_bytes", "data.dir",
                       "data.split_file", "evaluate.split"}
TRIAL_SECTIONS_NOT_READ = ("synth.", "split.", "tracking.")
# the stages that read the dataset and its split, by their paths
READS_DATA = {"trial": ("${data.dir}", "${data.split_file}"), "evaluate": ("${data.dir}", "${data.split_file}"),
              "promote": ("${data.dir}", "${data.split_file}"), "split": ("${data.dir}",)}


def _stage(name: str) -> dict:
    stage = STAGES[name]
    return stage.get("do", stage)


def _command(name: str) -> str:
    """The `sslmae` subcommand a stage runs."""
    words = _stage(name)["cmd"].split()
    assert words[0] == "sslmae", f"stage {name}: runs {words[0]}, not an sslmae command"
    return words[1]


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


def test_every_stage_lists_the_code_its_command_imports():
    """Each stage's code dependencies cover sslmae/cli/commands/<command>.py and every project module it
    imports, transitively (parent packages included), when loaded or when called. Listing a whole folder
    is allowed."""
    gaps = {}
    for name in STAGES:
        deps = [str(d) for d in _stage(name)["deps"]]
        needed = files(closure(f"sslmae.cli.commands.{_command(name)}", called=True))
        missing = sorted(p for p in needed if not _covered(p, deps))
        if missing:
            gaps[name] = missing
    assert gaps == {}, f"dvc.yaml: stages miss code they import: {gaps}"


def test_the_code_dependencies_are_what_the_import_graph_gives():
    """dvc.yaml's code lists are generated (`python -m tests.support.dvc_code --write`): the
    shortest exact cover of what each command imports, nothing stale left in them."""
    text = (REPO / "dvc.yaml").read_text()
    assert regenerated(text) == text, "dvc.yaml: code dependencies are stale; run python -m tests.support.dvc_code --write"


def test_every_code_dependency_exists():
    for name in STAGES:
        for dep in _stage(name)["deps"]:
            if str(dep).startswith("sslmae"):
                assert (REPO / dep).exists(), f"dvc.yaml stage {name}: dependency {dep} does not exist"


def test_stages_that_read_the_dataset_list_it():
    for name, paths in READS_DATA.items():
        assert set(paths) <= set(map(str, _stage(name)["deps"])), name


def test_trials_list_every_knob_that_changes_a_trained_model():
    """Every knob the schema does not mark free, and that reaches a trial as a value, is a param
    of the trial stage (a section listed whole covers its keys). A new knob fails here until it
    is listed in dvc.yaml's trial params or marked free in sslmae/config/schema.py."""
    listed = [str(p) for p in _stage("trial")["params"]]
    needed = sorted(k for k in KNOBS - free_keys() - TRIAL_NEED_NOT_LIST if not k.startswith(TRIAL_SECTIONS_NOT_READ))
    missing = [k for k in needed if not any(k == p or k.startswith(p + ".") for p in listed)]
    assert missing == [], f"dvc.yaml stage trial: params miss {missing} (list them, or mark them free)"


def test_every_param_a_stage_lists_is_a_knob():
    for name in STAGES:
        for param in _stage(name).get("params", []):
            assert any(k == param or k.startswith(f"{param}.") for k in KNOBS), f"stage {name}: no knob {param}"


def test_the_grid_is_the_params_list():
    """One list drives DVC's fan-out, the Kubeflow plan and `trial_names`: grid.trials."""
    assert STAGES["trial"]["foreach"] == "${grid.trials}"
    assert "--trial ${item}" in STAGES["trial"]["do"]["cmd"]
    assert PARAMS["grid"]["trials"] == Config().grid.trials


def test_metrics_and_plots_are_declared():
    assert STAGES["evaluate"]["metrics"] and STAGES["select"]["metrics"] and STAGES["evaluate"]["plots"]
    assert Path(REPO / "params.yaml").is_file()
