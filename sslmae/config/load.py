"""params.yaml -> a validated `Config`: YAML read as DVC reads it, `section.key=value`
overrides, and every problem as one `ConfigError` line naming the file, line or key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sslmae.config.schema import Config


class ConfigError(ValueError):
    """A params file or override is invalid; the message names the key."""


class _Yaml12Loader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 booleans (only true/false): PyYAML's 1.1 rules also turn
    on/off/yes/no into booleans, so `compile: off` would not be the string DVC reads.
    A key given twice in one mapping is refused (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(f"key {key!r} given twice (lines {seen[key]} and {line})")
            seen[key] = line
        return super().construct_mapping(node, deep)


_BOOL = "tag:yaml.org,2002:bool"
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def parse_yaml(text: str, where: str) -> Any:
    """YAML 1.2 text -> Python; `where` names the text in errors ('params.yaml', 'override x')."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}{at}: not valid YAML: {problem}") from None


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------- overrides

def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.epochs=3' -> (['train', 'epochs'], 3); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError(f"override {text!r}: empty key")
    return path, parse_yaml(raw, f"override {key}") if raw.strip() else None


def set_key(data: dict, path: list[str], value: Any) -> dict:
    """A copy of `data` with the nested key `path` set to `value`."""
    data = dict(data)
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


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for text in overrides:
        data = set_key(data, *parse_override(text))
    return data


# ---------------------------------------------------------------------------- validation

def _describe(error: dict) -> str:
    """One pydantic error in sslmae's words."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    got = f", got {type(value).__name__} {value!r}"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {float(limit) if isinstance(limit, (int, float)) else limit}, got {value!r}"
    if kind == "literal_error":
        return f"must be one of [{ctx['expected'].replace(' or ', ', ')}], got {value!r}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        return f"must have {'at least' if kind == 'too_short' else 'at most'} {n} items{got}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    messages = {"int_type": "expected an integer", "int_from_float": "expected an integer",
                "float_type": "expected a number", "finite_number": "must be finite",
                "bool_type": "expected true or false", "string_type": "expected a string",
                "list_type": "expected a list", "model_type": "expected a mapping",
                "model_attributes_type": "expected a mapping", "string_too_short": "must not be empty",
                "string_pattern_mismatch": "must not be empty"}
    return messages.get(kind, error["msg"]) + got


def _loc(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "params"


def _known(loc: tuple) -> str:
    """' (known in model: size, encoder, ...)' for an unknown key at `loc`."""
    node: Any = Config
    for part in loc[:-1]:
        node = node.model_fields[part].annotation
    where = ".".join(str(p) for p in loc[:-1]) or "params"
    return f" (known in {where}: {', '.join(node.model_fields)})"


def _cross_checks(cfg: Config) -> None:
    """Constraints that involve several keys."""
    m, d = cfg.model, cfg.data
    if m.mask_patch_size % m.patch_size:
        raise ConfigError(
            f"model.mask_patch_size: must be a multiple of model.patch_size ({m.patch_size}), got {m.mask_patch_size}")
    if d.img_size % m.mask_patch_size:
        raise ConfigError(
            f"data.img_size: must be a multiple of model.mask_patch_size ({m.mask_patch_size}), got {d.img_size}")
    if cfg.split.val + cfg.split.test >= 1.0:
        raise ConfigError(f"split.val + split.test: must be < 1, got {cfg.split.val + cfg.split.test}")
    if cfg.loss.mode == "supervised_baseline" and cfg.loss.learn_w:
        raise ConfigError("loss.learn_w: supervised_baseline has no reconstruction term, so w cannot be learned")


def _merged(defaults: Any, data: Any) -> Any:
    """`data` laid over `defaults`, mapping by mapping: a section given in part keeps the
    defaults of the keys it leaves out. Anything that is not a mapping replaces the default."""
    if not isinstance(defaults, dict) or not isinstance(data, dict):
        return data
    return {**defaults, **{k: _merged(defaults.get(k), v) for k, v in data.items()}}


def from_dict(data: dict) -> Config:
    """Validated `Config` from a plain mapping (as read from YAML); missing keys take defaults."""
    try:
        cfg = Config.model_validate(_merged(Config().model_dump(), data or {}))
    except ValidationError as exc:
        error = exc.errors()[0]  # the first problem, in the file's order
        extra = _known(error["loc"]) if error["type"] == "extra_forbidden" else ""
        raise ConfigError(f"{_loc(error['loc'])}: {_describe(error)}{extra}") from None
    _cross_checks(cfg)
    return cfg


# keys older sslmae versions wrote into model files, with what replaced them
RETIRED_KEYS = {("data", "crop_scale_min"): "augment.*.crop_scale", ("data", "flips"): "augment.*.vflip, rot90"}


def from_saved(data: dict) -> Config:
    """The Config stored in a model file, which an older sslmae may have written: retired keys
    (augmentation settings that only mattered for training) are dropped, new keys take defaults."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in (data or {}).items()}
    for section, key in RETIRED_KEYS:
        if isinstance(data.get(section), dict):
            data[section].pop(key, None)
    return from_dict(data)


def to_dict(cfg: Config) -> dict:
    """The plain mapping of a Config: the shape of params.yaml."""
    return cfg.model_dump()


def updated(cfg: Config, changes: dict[str, Any]) -> Config:
    """A validated copy of `cfg` with dotted keys changed: {'train.out_dir': 'x', 'loss.w': 0.3}."""
    data = to_dict(cfg)
    for key, value in changes.items():
        data = set_key(data, key.split("."), value)
    return from_dict(data)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load params (defaults when `path` is None), apply overrides, validate."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides or [])
    try:
        return from_dict(data)
    except ConfigError as exc:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{exc}") from None
