"""`sslmae pipeline compile | run-local | run-containers | submit | schedule`: the Kubeflow entry
points, beside the DAG they compile and submit (`pipelines.training`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import warnings
from pathlib import Path

import kfp
import kfp.local
from kfp import compiler

from components import IMAGE, PLACEHOLDER
from pipelines.training import Resources, build_pipeline
from sslmae.atomic import atomic_file
from sslmae.config import Config, load_config, to_dict, updated
from sslmae.datasets.sources import source_kind
from sslmae.datasets.synth import POOL, write_synthetic
from sslmae.outputs import claim_folder, write_marker
from sslmae.kubeflow.errors import api_errors, run_logged
from sslmae.kubeflow.multinode import check_trainer
from sslmae.kubeflow.schedule import check_cron, replace_recurring_run
from sslmae.kubeflow.services import docker_api, mlflow_server
from sslmae.datasets.store import check_store
from sslmae.tracking.runs import ready_store

REPO = Path(__file__).resolve().parents[1]
PODMAN_CONF = REPO / "docker" / "podman.conf"  # runc, ulimits, host network (docker/build.sh uses it too)
LOCAL_IMAGE = "sslmae:dev"  # what `make image` builds
# run-local and run-containers shrink every knob so the whole DAG runs on a laptop CPU in minutes
LOCAL_OVERRIDES = ["synth.n=96", "synth.unlabeled=48", "synth.size=32", "data.img_size=32", "model.backbone=micro",
                   "model.patch_size=4", "model.mask_patch_size=8", "train.epochs=2", "train.batch_size=8",
                   "train.progress_bar=false"]


def warn(message: str) -> None:
    print(message, file=sys.stderr)


def local_config(params: str | None, overrides: list[str]) -> Config:
    """The params of a run on this machine: LOCAL_OVERRIDES, then the user's overrides."""
    path = params if params and Path(params).exists() else None
    return load_config(path, LOCAL_OVERRIDES + list(overrides))


def pick_image(image: str | None, log=warn) -> str:
    """`image`, else $SSLMAE_IMAGE, else the placeholder, with a warning: nothing is published under it."""
    image = image or IMAGE
    if image == PLACEHOLDER:
        log(f"warning: the image {PLACEHOLDER} is a placeholder, not a published image: the pipeline's pods will "
            "fail to pull it. Build and push the image (make image; docker push REGISTRY/sslmae:TAG), then pass "
            "--image REGISTRY/sslmae:TAG (or set SSLMAE_IMAGE)")
    return image


def resources(log=warn, **given) -> Resources:
    """Resources with the fields the user gave (parallelism, gpus, nodes, image, trainer), the
    dataclass's defaults for the rest, checked before any request."""
    res = Resources(**{k: v for k, v in given.items() if k != "image"}, image=pick_image(given.get("image"), log))
    if res.parallelism < 1 or res.gpus < 0 or res.nodes < 1:
        raise ValueError(f"--parallelism >= 1, --gpus >= 0, --nodes >= 1; got {res.parallelism}, {res.gpus}, "
                         f"{res.nodes}")
    if not 0 <= res.canary < 100 or res.serve_gpus < 0:
        raise ValueError(f"--canary 0-99 (0: no canary), --serve-gpus >= 0; got {res.canary}, {res.serve_gpus}")
    if res.nodes > 1 and res.gpus < 1:
        raise ValueError("--nodes > 1 needs --gpus >= 1 (GPUs per pod of the job)")
    check_trainer(res.trainer)
    return res


def pipeline_func(cfg: Config, res: Resources | None = None):
    return build_pipeline(to_dict(cfg), res or Resources())


def compile_pipeline(cfg: Config, out: str | Path, res: Resources | None = None) -> Path:
    out = Path(out)
    with atomic_file(out) as tmp:
        compiler.Compiler().compile(pipeline_func(cfg, res), str(tmp.with_suffix(".yaml")))
        tmp.with_suffix(".yaml").replace(tmp)
    return out


def _local_path(source: str) -> str:
    """A local source as an absolute path (the steps run elsewhere); an s3:// one as it is."""
    return source if source_kind(source) == "s3" else str(Path(source).expanduser().resolve())


def _prepare(cfg: Config, root: str | Path, source: str, unlabeled: list[str]) -> tuple[Path, str, list[str]]:
    """The run folder (new, empty, or an earlier `sslmae pipeline` run's), the source and the pool:
    without a source, the embedded synthetic dataset written to <root>/synth with its pool."""
    root = claim_folder(root, "pipeline", legacy=("pipeline_root",))  # legacy: run-local's before the marker
    root.mkdir(parents=True, exist_ok=True)
    write_marker(root, "pipeline")
    if not source:
        s = cfg.synth
        source = str(write_synthetic(root / "synth", n=s.n, size=s.size, seed=s.seed, unlabeled=s.unlabeled,
                                     bands=s.bands))
        unlabeled = unlabeled or ([str(Path(source) / POOL)] if s.unlabeled else [])
    return root, _local_path(source), [_local_path(u) for u in unlabeled]


def configured_tracking(cfg: Config) -> str:
    """The MLflow tracking URI the user set: `tracking.uri`, else $MLFLOW_TRACKING_URI, else ''.
    With none set, a local run keeps MLflow's state in its own run folder, as kfp's local runner
    keeps a run's state in its pipeline root: run-local in sqlite:///<root>/mlflow.db (artifacts
    in <root>/mlruns), run-containers in an MLflow server on <root>/mlflow; never in the working
    folder's mlflow.db, the repository's own registry."""
    return cfg.tracking.uri or os.environ.get("MLFLOW_TRACKING_URI") or ""


def local_mlflow_store(root: Path, experiment: str, log=print) -> str:
    """sqlite:///<root>/mlflow.db (absolute), created here with its artifact root <root>/mlruns,
    and the run's experiment in it: a store the steps created would put its experiments'
    artifacts in ./mlruns of the working folder. MLflow's lines about creating the tables go to
    stdout (`log`), not stderr."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # what `mlflow server` serves

    root = root.resolve()
    with contextlib.redirect_stderr(sys.stdout):
        uri = ready_store(f"sqlite:///{root / 'mlflow.db'}")  # its tables, made once under a lock
        store = SqlAlchemyStore(uri, str(root / "mlruns"))  # the experiment's artifacts under the run folder
        try:
            if store.get_experiment_by_name(experiment) is None:
                store.create_experiment(experiment)
        finally:
            store.engine.dispose()
    log(f"run-local: MLflow store {uri}, artifacts under {root / 'mlruns'}")
    return uri


def run_local(cfg: Config, root: str | Path, source: str = "", unlabeled: list[str] | None = None) -> Path:
    """The whole DAG with kfp.local's SubprocessRunner (no cluster, no containers); the
    artifacts go to <root>/pipeline_root, each task's output to <root>/logs/, and MLflow's runs
    and registry, unless a tracking URI is set, to <root>/mlflow.db. A failed step is a
    StepFailed naming it (sslmae.kubeflow.errors). The pool: `unlabeled` with a source, else the
    embedded dataset's."""
    root, source, unlabeled = _prepare(cfg, root, source, unlabeled or [])
    if cfg.tracking.enabled and not configured_tracking(cfg):
        cfg = updated(cfg, {"tracking.uri": local_mlflow_store(root, cfg.tracking.experiment)})
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "pipeline_root"))
    pipeline = pipeline_func(cfg, Resources(parallelism=2, gpus=0))
    run_logged(lambda: pipeline(source=source, unlabeled=unlabeled, deploy=False),  # deploy: no cluster to deploy to
               _log_dir(root))
    return root / "pipeline_root"


def _log_dir(root: Path) -> Path:
    """<root>/logs: one file per task of the latest run in this folder (an earlier run's are removed)."""
    logs = root / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    return logs


# ------------------------------------------------------------------ run-containers

def _run_docker_container(client, image: str, command: list, volumes: dict, **run_args) -> int:
    """kfp.local's run_docker_container, keeping the exit status: kfp runs containers with
    auto_remove and reads the status after they exit, but an engine that already removed the
    container (podman does) answers 404, which kfp 2.17 takes for success. Here the container
    is removed after its status is read. The image must be on the machine (no pull)."""
    run_args.pop("auto_remove", None)
    container = client.containers.run(image=image, command=command, detach=True, stdout=True, stderr=True,
                                      volumes=volumes, **run_args)
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="")
        return container.wait()["StatusCode"]
    finally:
        container.remove(force=True)


@contextlib.contextmanager
def _keeping_exit_status():
    from kfp.local import docker_task_handler  # imports the Docker SDK: optional, only run-containers needs it

    original = docker_task_handler.run_docker_container
    docker_task_handler.run_docker_container = _run_docker_container
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original


def _local_image(image: str) -> str:
    """The name under which the engine lists `image` (podman: localhost/sslmae:dev for sslmae:dev)."""
    import docker  # optional: only run-containers (kfp's DockerRunner) needs the Docker SDK

    client = docker.from_env()
    try:
        tags = client.images.get(image).tags
    except docker.errors.ImageNotFound:
        raise ValueError(f"run-containers: no image {image} on this machine: build it with `make image` "
                         "(or pass --image)") from None
    finally:
        client.close()
    return image if image in tags or not tags else next((t for t in tags if t.endswith("/" + image)), tags[0])


def _writable_by_the_image(folder: Path) -> None:
    """The image runs as uid 10001, group 0: the pipeline root must let it write. As root here:
    group 0, group-writable, setgid (new folders stay group 0); otherwise writable by all."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(folder, -1, 0)
        os.chmod(folder, 0o2775)
    else:
        os.chmod(folder, 0o777)


def run_containers(cfg: Config, root: str | Path, source: str = "", image: str | None = None, log=print,
                   unlabeled: list[str] | None = None) -> Path:
    """The whole DAG with kfp.local's DockerRunner: every step in `image` (default sslmae:dev),
    through docker or podman's Docker API, with an MLflow server the containers reach (the
    configured http(s) one, else one started on <root>/mlflow and stopped after the run)."""
    root, source, unlabeled = _prepare(cfg, root, source, unlabeled or [])
    pipeline_root = root / "pipeline_root"
    _writable_by_the_image(pipeline_root)
    uri = configured_tracking(cfg)
    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(docker_api(PODMAN_CONF if PODMAN_CONF.is_file() else None, log))
        tag = _local_image(image or LOCAL_IMAGE)
        if not uri.startswith(("http://", "https://")):
            uri = stack.enter_context(mlflow_server(root / "mlflow", log))
            cfg = updated(cfg, {"tracking.uri": uri})
        env = {"MLFLOW_TRACKING_URI": uri}
        env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_") or k == "MLFLOW_S3_ENDPOINT_URL"})
        import docker.types  # optional: only run-containers needs the Docker SDK

        # the sources, read-only, at the same paths (a pool inside the source comes with it)
        local = [s for s in (source, *unlabeled) if source_kind(s) != "s3"]
        mounts = [docker.types.Mount(target=s, source=s, type="bind", read_only=True) for s in local
                  if not any(Path(s).is_relative_to(o) for o in local if o != s)]
        log(f"run-containers: every step in {tag} ({engine}), MLflow {uri}, artifacts under {pipeline_root}")
        runner = kfp.local.DockerRunner(network_mode="host", environment=env, mounts=mounts)
        kfp.local.init(runner=runner, pipeline_root=str(pipeline_root))
        pipeline = pipeline_func(cfg, Resources(parallelism=2, gpus=0, image=tag))
        with _keeping_exit_status():
            run_logged(lambda: pipeline(source=source, unlabeled=unlabeled, deploy=False), _log_dir(root))
    return pipeline_root


# ------------------------------------------------------------------ a cluster

class _Client(kfp.Client):
    """kfp.Client whose health check takes a client error (401, 403, ...) as the answer: kfp 2.17
    asks again five times, 5 s apart, logging a traceback each time, and then raises a TimeoutError
    that has lost the status. Other failures get kfp's retries."""

    def get_kfp_healthz(self, sleep_duration: int = 5):
        from kfp_server_api.exceptions import ApiException

        try:
            return self._healthz_api.healthz_service_get_healthz()
        except ApiException as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                raise
        return super().get_kfp_healthz(sleep_duration)


def client(host: str | None, namespace: str | None = None):
    """kfp.Client for `host` (else $KFP_HOST) in `namespace` (else $KFP_NAMESPACE); multi-user
    Kubeflow without a namespace is refused (its API server rejects an empty one). Call it
    within `api_errors`: an API server that does not answer or refuses is then one line."""
    host = host or os.environ.get("KFP_HOST")
    if not host:
        raise ValueError("no Kubeflow Pipelines host: pass --host or set KFP_HOST")
    namespace = namespace or os.environ.get("KFP_NAMESPACE") or None
    with warnings.catch_warnings():  # "This client only works with Kubeflow Pipeline v2.0.0-beta.2 and later"
        warnings.filterwarnings("ignore", message="This client only works", category=FutureWarning)
        c = _Client(host=host, namespace=namespace) if namespace else _Client(host=host)
    if namespace == "kubeflow":  # kfp.Client takes 'kubeflow' for "not given"; its public setter would
        c._context_setting["namespace"] = namespace  # also write ~/.config/kfp/context.json for later clients
    if not c.get_user_namespace() and c.get_kfp_healthz().multi_user:
        raise ValueError(f"{host} is multi-user Kubeflow: pass --namespace (your profile namespace) or set "
                         "KFP_NAMESPACE")
    return c


def _host(host: str | None) -> str | None:
    return host or os.environ.get("KFP_HOST")


def check_source(cfg: Config, source: str, action: str) -> str:
    """The run's source, refused before any request when empty and data.source is a path on this
    machine (the pods do not have it)."""
    if not source and source_kind(cfg.data.source) != "s3":
        raise ValueError(f"{action}: --source is empty and data.source ({cfg.data.source}) is a path on this "
                         "machine, not in the pods: pass --source s3://bucket/prefix (or a path mounted in the pods)")
    return source


def submit(cfg: Config, host: str | None, experiment: str, source: str, res: Resources | None = None,
           namespace: str | None = None, frozen_split: str = "", store: str = "", deploy: bool = True,
           unlabeled: list[str] | None = None) -> str:
    check_source(cfg, source, "submit")
    args = {"source": source, "unlabeled": list(unlabeled or []), "frozen_split": frozen_split,
            "store": check_store(store), "deploy": deploy}
    with api_errors(_host(host)):
        c = client(host, namespace)
        run = c.create_run_from_pipeline_func(pipeline_func(cfg, res), arguments=args, experiment_name=experiment,
                                              namespace=c.get_user_namespace() or None)
    return run.run_id


def schedule(cfg: Config, host: str | None, experiment: str, cron: str, source: str, package: str | Path,
             res: Resources | None = None, namespace: str | None = None, frozen_split: str = "",
             store: str = "", log=print, deploy: bool = True, unlabeled: list[str] | None = None) -> tuple[str, list[str]]:
    """One recurring run named `<experiment>-retrain`: a second `schedule` replaces the first
    (sslmae.kubeflow.schedule). Retrains on whatever `source` holds at each tick; the promotion
    gate decides whether the new model replaces the champion."""
    cron = check_cron(cron)  # before any request
    check_source(cfg, source, "schedule")
    args = {"source": source, "unlabeled": list(unlabeled or []), "frozen_split": frozen_split,
            "store": check_store(store), "deploy": deploy}
    with api_errors(_host(host)):
        c = client(host, namespace)
        compile_pipeline(cfg, package, res)
        ns = c.get_user_namespace() or None
        exp = c.create_experiment(experiment, namespace=ns)
        return replace_recurring_run(c, exp.experiment_id, f"{experiment}-retrain", package, "sslmae-training",
                                     cron, args, namespace=ns, log=log)
