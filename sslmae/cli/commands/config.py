"""`sslmae config`: the resolved, validated params a run would use, as YAML."""

import yaml

from sslmae.cli.params import add_params, load_params
from sslmae.config import to_dict
from sslmae.redact import redacted


def add_arguments(p) -> None:
    add_params(p)


def run(args) -> None:
    print(yaml.safe_dump(redacted(to_dict(load_params(args))), sort_keys=False), end="")
