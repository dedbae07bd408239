"""params.yaml <-> a typed, validated `Config`: the schema (every knob, its range and its
default) and the loader (YAML, overrides, one-line errors naming the key)."""

from sslmae.config.load import (ConfigError, apply_overrides, from_dict, from_saved, load_config, parse_override,
                                read_yaml, to_dict, updated)
from sslmae.config.schema import Config

__all__ = ["Config", "ConfigError", "apply_overrides", "from_dict", "from_saved", "load_config", "parse_override", "read_yaml",
           "to_dict", "updated"]
