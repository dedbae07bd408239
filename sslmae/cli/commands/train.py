"""`sslmae train`: one training run as params say."""

import json

from sslmae.cli.params import add_params, load_params
from sslmae.train.run import train


def add_arguments(p) -> None:
    add_params(p)


def run(args) -> None:
    result = train(load_params(args))
    if not result.rank_zero:
        return
    print(f"model: {result.checkpoint} (best epoch {result.best_epoch}, {result.seconds:.0f}s)")
    if result.val_metrics:
        print(json.dumps({k: round(v, 4) for k, v in result.val_metrics.items() if isinstance(v, float)}))
