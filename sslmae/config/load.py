"""params.yaml -> a validated `Config`: YAML read as DVC reads it, `section.key=value`
overrides, and every problem as one `ConfigError` line naming the file, line or key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sslmae.config.schema import Config, string_keys


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

def parse_value(key: str, raw: str) -> Any:
    """The value of `key` from its text: YAML, except that a string knob keeps text YAML would
    read as something else ('tracking.experiment=2024' is the string '2024'). Empty is null."""
    if not raw:
        return None
    value = parse_yaml(raw, f"override {key}")
    if key in string_keys() and value is not None and not isinstance(value, str):
        return raw
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """'train.epochs=3' -> ('train.epochs', 3)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected section.key=value")
    key, raw = (part.strip() for part in text.split("=", 1))
    if not all(key.split(".")):
        raise ConfigError(f"override {text!r}: empty key")
    return key, parse_value(key, raw)


def set_key(data: dict, key: str, value: Any) -> dict:
    """A copy of `data` with the nested, dotted `key` set to `value`."""
    path = key.split(".")
    data = dict(data)
    node = data
    for i, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"override {key}: {'.'.join(path[: i + 1])} is not a section")
        node[part] = child = dict(child)
        node = child
    node[path[-1]] = value
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """`data` with every `section.key=value` text applied, in order."""
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
    """' (known in model: backbone, variant, ...)' for an unknown key at `loc`."""
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


# params keys that were renamed: a params file or override that uses the old name is refused,
# naming the new one; a model file that an older sslmae wrote is translated (`from_saved`)
RENAMED = {"model.size": "model.backbone", "model.encoder": "model.variant",
           "grid.ws": "grid.trials (one name per trial, e.g. [w0.3, w0.7, learned])",
           "grid.learnable": "grid.trials (list the trial `learned`)"}
# keys older sslmae versions wrote into model files that no longer mean anything (training-only)
RETIRED = ("data.crop_scale_min", "data.flips")


def _renamed(data: dict) -> None:
    for old, new in RENAMED.items():
        section, key = old.split(".")
        if isinstance(data.get(section), dict) and key in data[section]:
            raise ConfigError(f"{old}: renamed to {new}")


def from_dict(data: dict) -> Config:
    """Validated `Config` from a plain mapping (as read from YAML); missing keys take defaults."""
    _renamed(data or {})
    try:
        cfg = Config.model_validate(_merged(Config().model_dump(), data or {}))
    except ValidationError as exc:
        error = exc.errors()[0]  # the first problem, in the file's order
        extra = _known(error["loc"]) if error["type"] == "extra_forbidden" else ""
        raise ConfigError(f"{_loc(error['loc'])}: {_describe(error)}{extra}") from None
    _cross_checks(cfg)
    return cfg


def _translated(data: dict) -> dict:
    """A saved config in today's keys: renamed keys moved, retired keys dropped."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in (data or {}).items()}
    for key in RETIRED:
        section, name = key.split(".")
        if isinstance(data.get(section), dict):
            data[section].pop(name, None)
    model, grid = data.get("model"), data.get("grid")
    if isinstance(model, dict):
        for old, new in (("size", "backbone"), ("encoder", "variant")):
            if old in model:
                model[new] = model.pop(old)
    if isinstance(grid, dict) and ("ws" in grid or "learnable" in grid):
        trials = [f"w{w}" for w in grid.pop("ws", [])] + (["learned"] if grid.pop("learnable", False) else [])
        grid["trials"] = trials or ["baseline"]
    return data


def from_saved(data: dict) -> Config:
    """The Config stored in a model file or checkpoint, which an older sslmae may have written:
    renamed keys take their new names, retired keys are dropped, new keys take defaults."""
    return from_dict(_translated(data))


def to_dict(cfg: Config) -> dict:
    """The plain mapping of a Config: the shape of params.yaml."""
    return cfg.model_dump()


def flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    """{'train': {'epochs': 3}} -> {'train.epochs': 3}: every leaf knob by its dotted key."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def updated(cfg: Config, changes: dict[str, Any]) -> Config:
    """A validated copy of `cfg` with dotted keys changed, {'train.out_dir': 'x', 'loss.w': 0.3}:
    the overrides' route (`set_key`, `from_dict`) for values code already holds."""
    data = to_dict(cfg)
    for key, value in changes.items():
        data = set_key(data, key, value)
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
