"""`sslmae pipeline compile | run-local | run-containers | submit | schedule`: the Kubeflow DAG
(pipelines/), which needs kfp: the `pipeline` extra, imported only when this command runs.
A failed step of a local run and a refusing Kubeflow API are ValueErrors whose message is one
line (sslmae.kubeflow.errors), which the CLI prints as every command's errors."""

from __future__ import annotations

from sslmae.cli.params import add_params, load_params


def _resources(args, launch):
    given = {"parallelism": args.parallelism, "gpus": args.gpus, "nodes": args.nodes, "image": args.image,
             "trainer": args.trainer, "service": args.service, "canary": args.canary, "serve_gpus": args.serve_gpus}
    return launch.resources(**{k: v for k, v in given.items() if v is not None})


def _compile(args, cfg, launch) -> None:
    print(f"wrote {launch.compile_pipeline(cfg, args.out, _resources(args, launch))}")


def _run_local(args, cfg, launch) -> None:
    out = launch.run_local(launch.local_config(args.params, args.overrides), args.root or "runs/kfp-local",
                           args.source, args.unlabeled)
    print(f"local pipeline run finished; artifacts under {out}, each step's log under {out.parent / 'logs'}")


def _run_containers(args, cfg, launch) -> None:
    out = launch.run_containers(launch.local_config(args.params, args.overrides),
                                args.root or "runs/kfp-containers", args.source, args.image, unlabeled=args.unlabeled)
    print(f"pipeline run in containers finished; artifacts under {out}, each step's log under {out.parent / 'logs'}")


def _submit(args, cfg, launch) -> None:
    rid = launch.submit(cfg, args.host, args.experiment, args.source, _resources(args, launch), args.namespace,
                        args.frozen_split, args.store, deploy=args.deploy, unlabeled=args.unlabeled)
    print(f"submitted run {rid}")


def _schedule(args, cfg, launch) -> None:
    launch.check_cron(args.cron)  # first: a wrong cron is the one line the user sees
    rid, replaced = launch.schedule(cfg, args.host, args.experiment, args.cron, args.source, args.out,
                                    _resources(args, launch), args.namespace, args.frozen_split, args.store,
                                    deploy=args.deploy, unlabeled=args.unlabeled)
    print(f"recurring run {rid}: {args.cron}" + (f" (replaced {', '.join(replaced)})" if replaced else ""))


ACTIONS = {"compile": _compile, "run-local": _run_local, "run-containers": _run_containers, "submit": _submit,
           "schedule": _schedule}


def add_arguments(p) -> None:
    p.add_argument("action", choices=list(ACTIONS))
    p.add_argument("--out", default="pipeline.yaml", help="compiled pipeline YAML (compile, schedule)")
    p.add_argument("--parallelism", type=int, default=None, help="grid trials at once (default 4)")
    p.add_argument("--gpus", type=int, default=None, help="GPUs per training task (per pod with --nodes; default 1)")
    p.add_argument("--nodes", type=int, default=None,
                   help="> 1: each trial is a multi-node job over this many pods (default 1)")
    p.add_argument("--trainer", default=None, choices=["v1", "v2"],
                   help="with --nodes: v1 Training Operator PyTorchJob (default), v2 Kubeflow Trainer TrainJob")
    p.add_argument("--image", default=None,
                   help="the image every step runs in (default: $SSLMAE_IMAGE; run-containers: sslmae:dev)")
    p.add_argument("--root", default=None,
                   help="run-local / run-containers: the run folder (default runs/kfp-local, runs/kfp-containers)")
    p.add_argument("--source", default="", help="dataset source (default: data.source; run-local: synthetic)")
    p.add_argument("--unlabeled", action="append", default=None, metavar="SOURCE",
                   help="with --source: an unlabeled source, the pool (repeat for several; default none: params' "
                        "data.unlabeled belongs to data.source; run-local without --source: the embedded pool)")
    p.add_argument("--frozen-split", default="",
                   help="submit/schedule: a path or s3:// URI where the split persists across runs (frozen test set)")
    p.add_argument("--store", default="",
                   help="submit/schedule: s3://bucket/prefix for the dataset by reference and trial checkpoints")
    p.add_argument("--host", default=None, help="Kubeflow Pipelines API (default: $KFP_HOST)")
    p.add_argument("--namespace", default=None,
                   help="submit/schedule: the Kubeflow profile namespace (multi-user; default: $KFP_NAMESPACE)")
    p.add_argument("--experiment", default="sslmae", help="the Kubeflow Pipelines experiment")
    p.add_argument("--cron", default=None, help="schedule: cron expression with seconds, e.g. '0 0 3 * * *'")
    p.add_argument("--no-deploy", dest="deploy", action="store_false",
                   help="submit/schedule: stop at the registry (no KServe InferenceService is touched)")
    p.add_argument("--service", default=None, help="the KServe InferenceService the champion is deployed to (default sslmae)")
    p.add_argument("--canary", type=int, default=None,
                   help="1-99: a new champion takes this share of traffic until `sslmae deploy --promote` (default 0: all)")
    p.add_argument("--serve-gpus", type=int, default=None, help="GPUs per predictor pod (default 0)")
    add_params(p)


def run(args) -> None:
    from pipelines import launch  # needs kfp: the `pipeline` extra, absent from a training-only install

    ACTIONS[args.action](args, load_params(args), launch)
