"""params.yaml <-> typed dataclasses: the single source of truth for every knob.

`load_config(path, overrides)` reads the YAML, applies `section.key=value` overrides and
returns a validated `Config`. Every problem is a `ConfigError` naming the dotted key:
unknown keys, wrong types and out-of-range values are never silently accepted.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import yaml


class ConfigError(ValueError):
    """A params file or override is invalid; the message names the key."""


class _Yaml12Loader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 booleans (only true/false). PyYAML's 1.1 rules also turn
    on/off/yes/no into booleans, so `compile: off` would not be the string DVC reads."""


_BOOL = "tag:yaml.org,2002:bool"
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


# ---------------------------------------------------------------------------
# field helpers: a range/choice check travels with the field as metadata


def _check(default: Any, check: Callable[[Any], Optional[str]] | None = None, **kw) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"check": check}, **kw)
    return field(default=default, metadata={"check": check}, **kw)


def _range(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False):
    def check(v):
        if v is None:
            return None
        if isinstance(v, float) and not math.isfinite(v):
            return f"must be finite, got {v}"
        if lo is not None and (v < lo or (lo_open and v == lo)):
            return f"must be {'>' if lo_open else '>='} {lo}, got {v}"
        if hi is not None and (v > hi or (hi_open and v == hi)):
            return f"must be {'<' if hi_open else '<='} {hi}, got {v}"
        return None

    return check


def _each(check):
    """Apply an element check to every item of a list."""

    def run(values):
        for i, v in enumerate(values):
            problem = check(v)
            if problem:
                return f"item {i}: {problem}"
        return None

    return run


def _nonempty(v):
    return None if v.strip() else "must not be empty"


def _choice(*options):
    def check(v):
        return None if v in options else f"must be one of {list(options)}, got {v!r}"

    return check


# ---------------------------------------------------------------------------
# sections


@dataclass
class SynthConfig:
    """The embedded default dataset (`sslmae synth`)."""

    out: str = "data/synth"
    n: int = _check(600, _range(1))
    size: int = _check(64, _range(16, 4096))
    seed: int = 0


@dataclass
class DataConfig:
    """Which dataset the pipeline trains on, and how images are fed to the model."""

    source: str = "data/synth"  # what `sslmae ingest` reads: folder, archive or s3://bucket/prefix
    layout: str = _check("auto", _choice("auto", "labels-csv", "ucm-txt", "class-folders", "bigearthnet", "manifest"))
    on_bad: str = _check("error", _choice("error", "skip"))
    dir: str = "data/dataset"  # the ingested dataset (manifest.parquet + images/) training reads
    split_file: str = "data/split.csv"
    task: str = _check("mlc", _choice("mlc", "mcc"))
    img_size: int = _check(64, _range(8, 4096))
    num_workers: int = _check(0, _range(0))
    # decode once: every image decoded and resized to img_size into one uint8 array
    # <cache_dir>/<key>.npy (rebuilt when a file or img_size changes), memory-mapped by the loaders
    cache: bool = True
    cache_dir: str = _check("data/cache", _nonempty)
    # batch augmentation, applied on the training device after transfer
    crop_scale_min: float = _check(0.6, _range(0.05, 1.0))
    flips: bool = True


@dataclass
class SplitConfig:
    """train/val/test and labeled/unlabeled split (`sslmae split`)."""

    fraction: float = _check(0.1, _range(0.0, 1.0, lo_open=True))
    val: float = _check(0.1, _range(0.0, 1.0, hi_open=True))
    test: float = _check(0.2, _range(0.0, 1.0, hi_open=True))
    seed: int = 42


@dataclass
class ModelConfig:
    """The SSL-MAE network: timm ViT encoder, mask token, SimMIM decoder, head."""

    size: str = "mini"  # a key of sslmae.model.backbone.ENCODERS
    # simmim: masked patches become a mask token and pass through the encoder (the paper);
    # visible_only: MAE-style extension, masked patches dropped before the encoder and a small
    # transformer decoder reconstructs them (off by default)
    encoder: str = _check("simmim", _choice("simmim", "visible_only"))
    decoder_dim: int = _check(128, _range(8))  # visible_only decoder width
    decoder_depth: int = _check(2, _range(1))
    patch_size: int = _check(8, _range(1))
    mask_ratio: float = _check(0.6, _range(0.0, 1.0, hi_open=True))
    mask_patch_size: int = _check(16, _range(1))
    rec_loss: str = _check("l1", _choice("l1", "mse_norm_pix"))
    drop_path: float = _check(0.1, _range(0.0, 1.0, hi_open=True))
    pretrained: Optional[str] = None  # local weights file; None = random init


@dataclass
class LossConfig:
    """Joint objective L = (1 - w) * L_rec + w * L_cls and the training mode."""

    mode: str = _check("semi_supervised", _choice("semi_supervised", "supervised", "supervised_baseline"))
    w: float = _check(0.5, _range(0.0, 1.0))
    learn_w: bool = False  # True: w = sigmoid(theta), theta initialised so that w starts at `w`
    w_lr: float = _check(1e-2, _range(0.0, lo_open=True))


@dataclass
class TrainConfig:
    """Optimisation and hardware."""

    out_dir: str = "runs/train"
    epochs: int = _check(30, _range(1))
    batch_size: int = _check(32, _range(1))  # labeled images per step (+ as many unlabeled)
    lr: float = _check(5e-4, _range(0.0, lo_open=True))
    weight_decay: float = _check(0.05, _range(0.0))
    warmup_epochs: float = _check(2.0, _range(0.0))
    min_lr_ratio: float = _check(0.01, _range(0.0, 1.0))
    accelerator: str = _check("auto", _choice("auto", "cpu", "gpu", "cuda"))
    devices: int = _check(1, _range(1))  # GPUs (or CPU processes) per node; > 1 means DDP
    num_nodes: int = _check(1, _range(1))  # multi-node: torchrun-style env (MASTER_ADDR, RANK, ...)
    strategy: str = _check("auto", _choice("auto", "ddp"))
    precision: str = _check("auto", _choice("auto", "32", "bf16-mixed", "16-mixed"))
    progress_bar: bool = True
    deterministic: bool = True
    compile: str = _check("auto", _choice("auto", "on", "off"))  # torch.compile the step; auto: on GPU only
    # resumable checkpoint every this many epochs (and after the last); on a GPU a tiny dataset's
    # epoch can take less time than writing a large model's optimizer state
    checkpoint_every: int = _check(1, _range(1))
    val_every: int = _check(1, _range(1))  # validate (and select the best weights) every N epochs
    # auto: continue from out_dir/checkpoints/last.ckpt when made with the same params, else start over;
    # strict: refuse a checkpoint made with other params; never: always start over
    resume: str = _check("auto", _choice("auto", "strict", "never"))


@dataclass
class EvalConfig:
    """`sslmae evaluate`."""

    split: str = _check("test", _choice("labeled", "unlabeled", "val", "test", "train", "all"))
    threshold: float = _check(0.5, _range(0.0, 1.0, lo_open=True, hi_open=True))
    batch_size: int = _check(128, _range(1))
    out_dir: str = "runs/eval"


@dataclass
class GridConfig:
    """SSL-MAE-GS: one trial per fixed w, plus the learnable-w trial (SSL-MAE-w_l)."""

    ws: list[float] = _check([0.3, 0.5, 0.7], _each(_range(0.0, 1.0)))
    learnable: bool = True
    out_dir: str = "runs/grid"  # one folder per trial
    selected_dir: str = "runs/selected"  # trials.csv, selected.json and the winner's model.pt


@dataclass
class TrackingConfig:
    """MLflow tracking and model registry."""

    enabled: bool = True
    uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working folder
    experiment: str = "sslmae"
    registered_model: str = "sslmae"
    promote_margin: float = _check(0.0, _range(0.0))  # champion moves only if challenger beats it by this


@dataclass
class Config:
    seed: int = 42
    synth: SynthConfig = field(default_factory=SynthConfig)
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


# ---------------------------------------------------------------------------
# dict -> dataclass with type and range checks


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against annotation `tp`; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, float) and value.is_integer():  # JSON/protobuf transports (KFP) send 30 as 30.0
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {type(value).__name__} {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover - programming error


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        where = prefix or "params"
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        names = ", ".join(f"{prefix}{k}" for k in unknown)
        raise ConfigError(f"unknown key(s): {names} (known in {prefix.rstrip('.') or 'params'}: {', '.join(fields)})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in data:
            continue
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, data[name], key + ".")
            continue
        value = _coerce(data[name], tp, key)
        check = f.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise ConfigError(f"{key}: {problem}")
        kwargs[name] = value
    return cls(**kwargs)


def _cross_checks(cfg: Config) -> None:
    """Constraints that involve several keys."""
    m, d = cfg.model, cfg.data
    if m.mask_patch_size % m.patch_size:
        raise ConfigError(
            f"model.mask_patch_size: must be a multiple of model.patch_size ({m.patch_size}), got {m.mask_patch_size}"
        )
    if d.img_size % m.mask_patch_size:
        raise ConfigError(
            f"data.img_size: must be a multiple of model.mask_patch_size ({m.mask_patch_size}), got {d.img_size}"
        )
    if cfg.split.val + cfg.split.test >= 1.0:
        raise ConfigError(f"split.val + split.test: must be < 1, got {cfg.split.val + cfg.split.test}")
    if cfg.loss.mode == "supervised_baseline" and cfg.loss.learn_w:
        raise ConfigError("loss.learn_w: supervised_baseline has no reconstruction term, so w cannot be learned")
    from sslmae.model.backbone import ENCODERS  # local: keeps config import light

    if m.size not in ENCODERS:
        raise ConfigError(f"model.size: must be one of {sorted(ENCODERS)}, got {m.size!r}")


def from_dict(data: dict) -> Config:
    """Validated `Config` from a plain mapping (as read from YAML)."""
    cfg = _build(Config, data or {}, "")
    _cross_checks(cfg)
    return cfg


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.epochs=3' -> (['train', 'epochs'], 3); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = _load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: cannot parse value {raw!r}: {exc}") from None
    return path, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    data = dict(data)
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if child is None:
                child = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {'.'.join(path)}: {'.'.join(path[: i + 1])} is not a section")
            node[part] = child = dict(child)
            node = child
        node[path[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = _load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load params (defaults when `path` is None), apply overrides, validate."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides or [])
    try:
        return from_dict(data)
    except ConfigError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{exc}") from None
