import pytest
import yaml

from sslmae.config import (
    Config,
    ConfigError,
    flatten,
    free_keys,
    from_dict,
    from_saved,
    load_config,
    to_dict,
)
from tests.conftest import REPO


def write(tmp_path, data):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


# params.yaml's own values: the embedded dataset's pool (the library's default is no pool)
EMBEDDED = {("data", "unlabeled"): ["data/synth/unlabeled"]}


def test_repo_params_file_spells_out_every_default_with_its_value():
    """The schema holds the one copy of the defaults; params.yaml lists every key with the same value,
    but for EMBEDDED, which names the embedded dataset's pool."""
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    for (section, key), value in EMBEDDED.items():
        assert data[section][key] == value, f"{section}.{key}"
        data[section][key] = to_dict(Config())[section][key]
    defaults = to_dict(Config())
    assert set(data) == set(defaults)
    for section, values in defaults.items():
        if isinstance(values, dict):
            assert set(data[section]) == set(values), section
            for key, value in values.items():
                assert data[section][key] == value, f"{section}.{key}: params.yaml {data[section][key]!r}, default {value!r}"
        else:
            assert data[section] == values, section
    embedded = {f"{section}.{key}": value for (section, key), value in EMBEDDED.items()}
    assert to_dict(load_config(REPO / "params.yaml")) == to_dict(load_config(None, [f"{k}={v}" for k, v in embedded.items()]))


def test_choices_are_the_registries_keys():
    from sslmae.model.backbone import BACKBONES
    from sslmae.model.losses import REC_LOSSES
    from sslmae.model.modes import MODES
    from sslmae.model.variants import VARIANTS
    from sslmae.split import SUBSET_GROUPS

    for key, registry in (("model.backbone", BACKBONES), ("model.variant", VARIANTS), ("model.rec_loss", REC_LOSSES),
                          ("loss.mode", MODES), ("evaluate.split", SUBSET_GROUPS)):
        for name in registry:
            load_config(None, [f"{key}={name}"])
        with pytest.raises(ConfigError, match=f"{key}: must be one of"):
            load_config(None, [f"{key}=not-registered"])


@pytest.mark.parametrize(
    "data, key, words",
    [
        ({"model": {"mask_ratio": 1.5}}, "model.mask_ratio", "< 1.0"),
        ({"loss": {"w": -1}}, "loss.w", ">= 0.0"),
        ({"train": {"epochs": "ten"}}, "train.epochs", "expected an integer"),
        ({"train": {"epochs": 2.5}}, "train.epochs", "expected an integer"),
        ({"train": {"epochs": True}}, "train.epochs", "expected an integer"),
        ({"grid": {"trials": ["w0.3", "w1.5"]}}, "grid.trials", "got ['w1.5']"),
        ({"grid": {"trials": ["w0.3", "w0.3"]}}, "grid.trials", "'w0.3' listed twice"),
        ({"grid": {"trials": []}}, "grid.trials", "at least 1 item"),
        ({"grid": {"ws": [0.3]}}, "grid.ws", "renamed to grid.trials"),
        ({"grid": {"learnable": True}}, "grid.learnable", "renamed to grid.trials"),
        ({"model": {"size": "mini"}}, "model.size", "renamed to model.backbone"),
        ({"model": {"encoder": "simmim"}}, "model.encoder", "renamed to model.variant"),
        ({"train": {"lr": float("nan")}}, "train.lr", "finite"),
        ({"train": {"lr": True}}, "train.lr", "expected a number"),
        ({"train": {"lr": 0}}, "train.lr", "> 0.0"),
        ({"model": {"rec_loss": "l2"}}, "model.rec_loss", "must be one of"),
        ({"model": {"backbone": "huge"}}, "model.backbone", "must be one of"),
        ({"model": {"variant": "mae"}}, "model.variant", "must be one of"),
        ({"model": {"maskratio": 0.5}}, "model.maskratio", "unknown key"),
        ({"modle": {}}, "modle", "unknown key"),
        ({"model": 3}, "model", "expected a mapping"),
        ({"model": {"mask_patch_size": 12}}, "model.mask_patch_size", "multiple of model.patch_size"),
        ({"data": {"img_size": 72}}, "data.img_size", "multiple of model.mask_patch_size"),
        ({"split": {"val": 0.5, "test": 0.5}}, "split.val + split.test", "< 1"),
        ({"loss": {"mode": "supervised_baseline", "learn_w": True}}, "loss.learn_w", "no reconstruction"),
        ({"data": {"task": "regression"}}, "data.task", "must be one of"),
    ],
)
def test_bad_values_name_the_key(tmp_path, data, key, words):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert key in msg and words in msg and str(path) in msg


def test_overrides_are_typed_and_validated(tmp_path):
    path = write(tmp_path, {"train": {"epochs": 3}})
    cfg = load_config(path, ["train.epochs=7", "loss.w=0.25", "model.pretrained=/x/y.pth", "loss.learn_w=true"])
    assert cfg.train.epochs == 7 and cfg.loss.w == 0.25 and cfg.loss.learn_w is True
    assert cfg.model.pretrained == "/x/y.pth"
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(path, ["train.epochs=zero"])
    with pytest.raises(ConfigError, match="train.nope"):
        load_config(path, ["train.nope=1"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(path, ["train.epochs"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)


def test_on_off_yes_no_stay_strings_as_dvc_reads_them(tmp_path):
    """YAML 1.2 booleans: `compile: off` is the string DVC sees, not PyYAML 1.1's False."""
    path = tmp_path / "p.yaml"
    path.write_text("train:\n  compile: off\n")
    assert load_config(path).train.compile == "off"
    assert load_config(path, ["train.compile=on"]).train.compile == "on"
    assert load_config(None, ["loss.learn_w=True"]).loss.learn_w is True
    with pytest.raises(ConfigError, match="loss.learn_w: expected true or false, got str 'yes'"):
        load_config(None, ["loss.learn_w=yes"])


@pytest.mark.parametrize("recipe", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_load(recipe):
    cfg = load_config(recipe)
    # the authors' recipe starts from their weights by name, as they do; the Sentinel-2 one from TorchGeo's
    # SSL4EO-S12 weights; the others from random init
    start = {"authors.yaml": "timm:deit_base_distilled_patch16_224.fb_in1k",
             "sentinel2.yaml": "torchgeo:ViTSmall16_Weights.SENTINEL2_ALL_MOCO"}.get(recipe.name)
    assert cfg.model.pretrained == start


def test_a_string_knob_keeps_the_text_of_an_override():
    cfg = load_config(None, ["tracking.experiment=2024", "data.dir=007", "tracking.uri=null", "train.epochs=7"])
    assert cfg.tracking.experiment == "2024" and cfg.data.dir == "007" and cfg.tracking.uri is None
    assert cfg.train.epochs == 7
    assert load_config(None, ["tracking.experiment='quoted'"]).tracking.experiment == "quoted"


def test_free_keys_are_knobs_and_include_paths_and_logging():
    knobs = set(flatten(to_dict(Config())))
    assert free_keys() <= knobs
    assert {"train.out_dir", "data.num_workers", "tracking.uri", "grid.trials"} <= free_keys()
    assert not free_keys() & {"loss.w", "model.backbone", "train.lr", "data.img_size", "seed"}


def test_a_model_file_config_from_before_the_renames_is_translated():
    old = to_dict(Config())
    old["model"]["size"] = old["model"].pop("backbone")
    old["model"]["encoder"] = old["model"].pop("variant")
    old["grid"].pop("trials")
    old["grid"].update(ws=[0.3], learnable=True)
    old["data"]["flips"] = True  # retired long ago
    cfg = from_saved(old)
    assert cfg.model.backbone == "mini" and cfg.model.variant == "simmim" and cfg.grid.trials == ["w0.3", "learned"]
    with pytest.raises(ConfigError, match="model.size: renamed to model.backbone"):
        from_dict({"model": {"size": "mini"}})
