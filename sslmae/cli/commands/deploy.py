"""`sslmae deploy`: a registry version onto a KServe InferenceService by hand (what the pipeline's
deploy step does after promote), as a canary, and --promote / --rollback of one."""

from sslmae.cli.params import add_params, load_params
from sslmae.kubeflow.deploy import deploy_command
from sslmae.kubeflow.inference_service import ServiceSpec
from sslmae.tracking.models import pinned

DEFAULTS = ServiceSpec(name="sslmae", model="", image="")


def add_arguments(p) -> None:
    p.add_argument("--model", default=None,
                   help="models:/NAME@ALIAS or models:/NAME/VERSION (default: the champion of tracking.registered_model)")
    p.add_argument("--service", default=DEFAULTS.name, help="the InferenceService's name")
    p.add_argument("--namespace", default="", help="default: this pod's namespace, else 'default'")
    p.add_argument("--image", default=None, help="the sslmae image the predictor runs (needed to deploy)")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--canary", type=int, default=None, metavar="P",
                        help="the new version takes P %% of the traffic; the rest stays on the current one")
    action.add_argument("--promote", action="store_true", help="the canary takes all traffic")
    action.add_argument("--rollback", action="store_true", help="all traffic back to the version served before")
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait for the rollout")
    p.add_argument("--cpu", default=DEFAULTS.cpu)
    p.add_argument("--memory", default=DEFAULTS.memory)
    p.add_argument("--gpus", type=int, default=DEFAULTS.gpus)
    p.add_argument("--min-replicas", type=int, default=DEFAULTS.min_replicas)
    p.add_argument("--max-replicas", type=int, default=DEFAULTS.max_replicas)
    p.add_argument("--s3-secret", default=DEFAULTS.s3_secret)
    p.add_argument("--mlflow-secret", default=DEFAULTS.mlflow_secret)
    add_params(p)


def run(args) -> None:
    if args.promote or args.rollback:
        action, spec = ("promote" if args.promote else "rollback"), None
    else:
        if not args.image:
            raise ValueError("--image: the sslmae image the predictor runs (what the pipeline's steps run)")
        cfg = load_params(args)
        model = pinned(args.model or f"models:/{cfg.tracking.registered_model}@champion", cfg.tracking)
        action = "deploy"
        spec = ServiceSpec(name=args.service, model=model, image=args.image, cpu=args.cpu, memory=args.memory,
                           gpus=args.gpus, min_replicas=args.min_replicas, max_replicas=args.max_replicas,
                           s3_secret=args.s3_secret, mlflow_secret=args.mlflow_secret)
    result = deploy_command(action, args.service, args.namespace, args.timeout, spec, args.canary)
    print(f"deploy: {result['service']} serves {result['model']}" + ("" if result.get("changed") else " (unchanged)"))
