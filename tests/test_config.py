import pytest
import yaml

from sslmae.config import Config, ConfigError, load_config, to_dict
from tests.conftest import REPO


def write(tmp_path, data):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_repo_params_file_spells_out_every_default_with_its_value():
    """The schema holds the one copy of the defaults; params.yaml lists every key with the same value."""
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    defaults = to_dict(Config())
    assert set(data) == set(defaults)
    for section, values in defaults.items():
        if isinstance(values, dict):
            assert set(data[section]) == set(values), section
            for key, value in values.items():
                assert data[section][key] == value, f"{section}.{key}: params.yaml {data[section][key]!r}, default {value!r}"
        else:
            assert data[section] == values, section
    assert load_config(REPO / "params.yaml") == Config()


def test_choices_are_the_registries_keys():
    from sslmae.model.backbone import ENCODERS
    from sslmae.model.losses import REC_LOSSES
    from sslmae.model.modes import MODES
    from sslmae.model.variants import VARIANTS
    from sslmae.split import SUBSET_GROUPS

    for key, registry in (("model.size", ENCODERS), ("model.encoder", VARIANTS), ("model.rec_loss", REC_LOSSES),
                          ("loss.mode", MODES), ("evaluate.split", SUBSET_GROUPS)):
        for name in registry:
            load_config(None, [f"{key}={name}"] + (["data.img_size=64"] if key == "model.size" else []))
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
        ({"grid": {"ws": [0.3, 1.5]}}, "grid.ws[1]", "<= 1.0"),
        ({"train": {"lr": float("nan")}}, "train.lr", "finite"),
        ({"train": {"lr": True}}, "train.lr", "expected a number"),
        ({"train": {"lr": 0}}, "train.lr", "> 0.0"),
        ({"model": {"rec_loss": "l2"}}, "model.rec_loss", "must be one of"),
        ({"model": {"size": "huge"}}, "model.size", "must be one of"),
        ({"model": {"encoder": "mae"}}, "model.encoder", "must be one of"),
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
    assert cfg.model.pretrained is None  # recipes train from random init: nothing to download
