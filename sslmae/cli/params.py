"""How a command gets its settings: the params file (`--params`, default params.yaml when it
exists) with `section.key=value` overrides, validated by the schema. A command's flags that set a
knob (`--out` of `sslmae split` is data.split_file) are overrides too, applied last: an explicit
flag wins, and no flag carries a default of its own."""

from __future__ import annotations

import argparse
from pathlib import Path

from sslmae.config import Config, ConfigError, apply_overrides, flatten, from_dict, load_config, to_dict

DEFAULT_PARAMS = "params.yaml"
PREFIX = "param:"  # argparse dest of an argument that sets a params key: param:<section.key>:<how it is given>


def add_params(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default=DEFAULT_PARAMS, help="params file (default: params.yaml, if present)")
    p.add_argument("overrides", nargs="*", metavar="section.key=value", help="override params")


def knob_flag(p: argparse.ArgumentParser, flag: str, key: str, help: str) -> None:
    """A flag that sets params key `key` (given: it overrides params; absent: params decide)."""
    p.add_argument(flag, dest=f"{PREFIX}{key}:{flag}", default=None, metavar=key.split(".")[-1].upper(),
                   help=f"{help} (default: params {key})")


def knob_switch(p: argparse.ArgumentParser, flag: str, key: str, help: str) -> None:
    """A flag without a value that sets the boolean params key `key` to true."""
    p.add_argument(flag, dest=f"{PREFIX}{key}:{flag}", action="store_const", const="true", default=None,
                   help=f"{help} (default: params {key})")


def knob_positional(p: argparse.ArgumentParser, key: str, metavar: str, help: str) -> None:
    """An optional positional argument that sets params key `key`."""
    p.add_argument(f"{PREFIX}{key}:{metavar}", nargs="?", default=None, metavar=metavar, help=f"{help} (default: params {key})")


def _is_override(value: str) -> bool:
    key = value.split("=", 1)[0]
    return "=" in value and key in flatten(to_dict(Config()))


def load_params(args: argparse.Namespace) -> Config:
    """The validated Config a command runs with: params file, overrides, then its knob flags (a
    flag's bad value is named by the flag)."""
    path = args.params if (args.params != DEFAULT_PARAMS or Path(DEFAULT_PARAMS).exists()) else None
    overrides, flags, given_as = list(args.overrides), [], {}
    for dest, value in vars(args).items():
        if not dest.startswith(PREFIX) or value is None:
            continue
        key, how = dest[len(PREFIX):].split(":", 1)
        if _is_override(value):  # `sslmae split train.epochs=3`: argparse gave the positional an override
            overrides.insert(0, value)
        else:
            flags.append(f"{key}={value}")
            given_as[key] = how
    cfg = load_config(path, overrides)
    try:
        return from_dict(apply_overrides(to_dict(cfg), flags))
    except ConfigError as exc:
        key = next((k for k in given_as if str(exc).startswith(f"{k}:")), None)
        raise ConfigError(f"{given_as[key]}: {exc}" if key else str(exc)) from None
