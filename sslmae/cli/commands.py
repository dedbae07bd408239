"""What each `sslmae <command>` does: turn its arguments into one library call and print
the outcome in a line or two."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from sslmae import grid
from sslmae.config import Config, load_config, to_dict
from sslmae.datasets.ingest import ingest
from sslmae.datasets.synth import write_synthetic
from sslmae.evaluate import evaluate
from sslmae.fractions import fraction_curve, modes_and_overrides
from sslmae.predict import predict
from sslmae.release import promote, register
from sslmae.report.build import build_report
from sslmae.split import split_dataset
from sslmae.tracking.grid_log import log_report
from sslmae.train.run import train

DEFAULT_PARAMS = "params.yaml"


def _params(args) -> Config:
    path = args.params if (args.params != DEFAULT_PARAMS or Path(DEFAULT_PARAMS).exists()) else None
    return load_config(path, args.overrides)


def cmd_synth(args) -> None:
    out = write_synthetic(args.out, n=args.n, size=args.size, seed=args.seed)
    print(f"wrote {args.n} synthetic scenes ({args.size}px) to {out}")


def cmd_ingest(args) -> None:
    ingest(args.source, args.out, layout=args.layout, on_bad=args.on_bad, s3_endpoint=args.s3_endpoint,
           max_pixels=args.max_pixels, min_side=args.min_side, workers=args.workers)


def cmd_split(args) -> None:
    table = split_dataset(args.dataset, args.out, fraction=args.fraction, val=args.val, test=args.test,
                          seed=args.seed, predefined_file=args.predefined, keep_file=args.keep)
    counts = table["subset"].value_counts().to_dict()
    print(f"wrote {args.out}: " + ", ".join(f"{k}={counts.get(k, 0)}" for k in ("labeled", "unlabeled", "val", "test")))


def cmd_train(args) -> None:
    cfg = _params(args)
    result = train(cfg)
    if not result.rank_zero:
        return
    print(f"model: {result.checkpoint} (best epoch {result.best_epoch}, {result.seconds:.0f}s)")
    if result.val_metrics:
        print(json.dumps({k: round(v, 4) for k, v in result.val_metrics.items() if isinstance(v, float)}))


def cmd_evaluate(args) -> None:
    cfg = _params(args)
    e = cfg.evaluate
    metrics = evaluate(
        args.model or str(Path(cfg.train.out_dir) / "model.pt"),
        args.out or e.out_dir,
        subset=args.subset or e.split,
        dataset_dir=args.dataset,
        split_file=args.split_file,
        threshold=e.threshold,
        batch_size=e.batch_size,
        num_workers=cfg.data.num_workers,
        tracking=cfg,
    )
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}, indent=1))


def cmd_grid(args) -> None:
    cfg = _params(args)
    if args.trial:
        result = grid.run_trial(cfg, args.trial)
        print(f"trial {args.trial}: {result.checkpoint}")
        return
    out = args.out or cfg.grid.selected_dir
    selected = grid.select(cfg, out) if args.select_only else grid.grid(cfg, out)
    print(f"selected {selected['trial']} ({selected['metric']} = {selected['value']:.4f}) -> {selected['model']}")


def cmd_register(args) -> None:
    cfg = _params(args)
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else {}
    info = register(cfg, args.model, metrics, out=args.out)
    if info["created"]:
        print(f"registered {info['name']} version {info['version']} as @{info['alias']} (from run {info['run_id']})")
    else:
        print(f"already registered: {info['name']} version {info['version']} holds these weights; "
              f"it is @{info['alias']}")


def cmd_promote(args) -> None:
    cfg = _params(args)
    d = promote(cfg, args.dataset or cfg.data.dir, args.split_file or cfg.data.split_file, args.subset, out=args.out)
    champ = f"{d['champion_score']:.4f}" if d["champion_score"] is not None else "none"
    print(f"{d['metric']} on {d['subset']}: challenger v{d['challenger_version']} {d['challenger_score']:.4f}, "
          f"champion {champ} -> {'promoted' if d['promoted'] else 'kept'}; champion is v{d['champion_now']}")


def cmd_predict(args) -> None:
    cfg = _params(args)
    predict(args.model, args.input, args.out, thresholds=args.thresholds, cfg=cfg, s3_endpoint=args.s3_endpoint)


def cmd_fractions(args) -> None:
    modes, extra = modes_and_overrides(args.modes)
    args.overrides = list(args.overrides) + extra
    table = fraction_curve(_params(args), args.fractions, modes, args.work, args.out, args.predefined,
                           args.equal_steps)
    print(table.to_string(index=False))


def cmd_report(args) -> None:
    path = build_report(run_dir=args.run, grid_dir=args.grid, eval_dir=args.eval, fractions=args.fractions,
                        out=args.out)
    logged = log_report(_params(args), Path(args.grid), path) if args.grid else None
    print(f"wrote {path}" + (f" (and to the grid's MLflow run {logged})" if logged else ""))


def _resources(args, launch):
    return launch.resources(args.parallelism, args.gpus, args.nodes, args.image, args.trainer)


def _pipeline_compile(args, cfg, launch) -> None:
    print(f"wrote {launch.compile_pipeline(cfg, args.out, _resources(args, launch))}")


def _pipeline_run_local(args, cfg, launch) -> None:
    out = launch.run_local(launch.local_config(args.params, args.overrides), args.root or "runs/kfp-local",
                           args.source)
    print(f"local pipeline run finished; artifacts under {out}")


def _pipeline_run_containers(args, cfg, launch) -> None:
    out = launch.run_containers(launch.local_config(args.params, args.overrides),
                                args.root or "runs/kfp-containers", args.source, args.image)
    print(f"pipeline run in containers finished; artifacts under {out}")


def _pipeline_submit(args, cfg, launch) -> None:
    rid = launch.submit(cfg, args.host, args.experiment, args.source, _resources(args, launch), args.namespace,
                        args.frozen_split, args.store)
    print(f"submitted run {rid}")


def _pipeline_schedule(args, cfg, launch) -> None:
    launch.check_cron(args.cron)  # first: a wrong cron is the one line the user sees
    rid, replaced = launch.schedule(cfg, args.host, args.experiment, args.cron, args.source, args.out,
                                    _resources(args, launch), args.namespace, args.frozen_split, args.store)
    print(f"recurring run {rid}: {args.cron}" + (f" (replaced {', '.join(replaced)})" if replaced else ""))


PIPELINE_ACTIONS = {"compile": _pipeline_compile, "run-local": _pipeline_run_local,
                    "run-containers": _pipeline_run_containers, "submit": _pipeline_submit,
                    "schedule": _pipeline_schedule}


def cmd_pipeline(args) -> None:
    from pipelines import launch  # needs kfp: the `pipeline` extra, absent from a training-only install

    PIPELINE_ACTIONS[args.action](args, _params(args), launch)


def cmd_config(args) -> None:
    """The resolved, validated params a run would use, as YAML."""
    print(yaml.safe_dump(to_dict(_params(args)), sort_keys=False), end="")


