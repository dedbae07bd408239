"""params.yaml <-> a typed, validated `Config`: the schema (every knob, its range, its default and
whether it changes results) and the loader (YAML, `section.key=value` overrides, renamed keys,
one-line errors naming the key)."""

from sslmae.config.load import (RENAMED, ConfigError, apply_overrides, flatten, from_dict, from_saved, load_config,
                                parse_override, read_yaml, set_key, to_dict, updated)
from sslmae.config.schema import Config, free_keys, string_keys

__all__ = ["Config", "ConfigError", "RENAMED", "apply_overrides", "flatten", "free_keys", "from_dict", "from_saved",
           "load_config", "parse_override", "read_yaml", "set_key", "string_keys", "to_dict", "updated"]
