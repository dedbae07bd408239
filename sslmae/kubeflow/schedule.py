"""Recurring runs on Kubeflow Pipelines: the cron checked before any request, and one recurring
run per name. `replace_recurring_run` takes a `kfp.Client` (or anything with its methods): the
pipeline is uploaded as a new version of the pipeline of that name (the pipeline itself on the
first schedule), the recurring runs of that name in the experiment are disabled, the new one is
created, and only then the old ones are deleted (re-enabled if the creation fails), so two
schedules never race on the frozen split and the champion alias.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
FIELD = re.compile(r"[0-9A-Za-z*?/,#-]+")
FIELDS = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")


def check_cron(expr: str | None) -> str:
    """`expr` if KFP's scheduler (robfig/cron, seconds first) reads it as meant; else a ValueError
    naming the problem. A 5-field Unix cron is refused: KFP would take its minute for seconds."""
    text = " ".join((expr or "").split())
    if not text:
        raise ValueError("schedule: --cron is required: 6 fields, seconds first, e.g. '0 0 3 * * *' (03:00 daily)")
    if text.startswith("@"):
        if text in DESCRIPTORS or re.fullmatch(r"@every \d+(\.\d+)?(ns|us|ms|s|m|h)(\d+(\.\d+)?(ns|us|ms|s|m|h))*",
                                               text):
            return text
        raise ValueError(f"schedule: --cron {expr!r}: not a cron descriptor ({', '.join(sorted(DESCRIPTORS))}, "
                         "@every 1h30m)")
    fields = text.split(" ")
    if len(fields) == 5:
        raise ValueError(f"schedule: --cron {expr!r} has 5 fields; KFP reads 6, seconds first, so it would run at "
                         f"second {fields[0]} of minute {fields[1]}; for the Unix meaning write '0 {text}'")
    if len(fields) != 6:
        raise ValueError(f"schedule: --cron {expr!r} has {len(fields)} fields; KFP reads 6: "
                         f"{' '.join(FIELDS)}, e.g. '0 0 3 * * *'")
    for name, value in zip(FIELDS, fields):
        if not FIELD.fullmatch(value):
            raise ValueError(f"schedule: --cron {expr!r}: the {name} field {value!r} is not a cron field")
    return text


def _equals(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


def version_name(pipeline_name: str, package: str | Path) -> str:
    """`<pipeline>-<UTC time>-<8 hex of the package>`: unique per upload, readable in the UI."""
    digest = hashlib.sha256(Path(package).read_bytes()).hexdigest()[:8]
    return f"{pipeline_name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{digest}"


def upload(client, package: str | Path, pipeline_name: str, namespace: str | None, log=print) -> tuple[str, str]:
    """(pipeline id, version id): a new version of the pipeline named `pipeline_name`, or the
    pipeline itself (and its first version) when there is none yet."""
    found = client.list_pipelines(filter=_equals("display_name", pipeline_name), namespace=namespace).pipelines or []
    found = [p for p in found if p.display_name == pipeline_name]
    if len(found) > 1:
        raise ValueError(f"schedule: {len(found)} pipelines are named {pipeline_name!r}; delete all but one")
    if not found:
        pipeline = client.upload_pipeline(str(package), pipeline_name=pipeline_name, namespace=namespace)
        versions = client.list_pipeline_versions(pipeline.pipeline_id, sort_by="created_at desc",
                                                 page_size=1).pipeline_versions or []
        if not versions:
            raise RuntimeError(f"schedule: pipeline {pipeline_name!r} was uploaded but has no version")
        log(f"pipeline {pipeline_name!r} uploaded ({pipeline.pipeline_id})")
        return pipeline.pipeline_id, versions[0].pipeline_version_id
    name = version_name(pipeline_name, package)
    version = client.upload_pipeline_version(str(package), name, pipeline_id=found[0].pipeline_id)
    log(f"pipeline {pipeline_name!r}: new version {name}")
    return found[0].pipeline_id, version.pipeline_version_id


def existing_recurring_runs(client, experiment_id: str, name: str) -> list:
    listed = client.list_recurring_runs(experiment_id=experiment_id, filter=_equals("display_name", name),
                                        page_size=100).recurring_runs or []
    return [r for r in listed if r.display_name == name]


def replace_recurring_run(client, experiment_id: str, name: str, package: str | Path, pipeline_name: str,
                          cron: str, params: dict, namespace: str | None = None, log=print) -> tuple[str, list[str]]:
    """(the new recurring run's id, the ids it replaced)."""
    pipeline_id, version_id = upload(client, package, pipeline_name, namespace, log)
    old = existing_recurring_runs(client, experiment_id, name)
    for run in old:
        client.disable_recurring_run(run.recurring_run_id)
    try:
        new = client.create_recurring_run(experiment_id=experiment_id, job_name=name, cron_expression=cron,
                                          pipeline_id=pipeline_id, version_id=version_id, params=params,
                                          max_concurrency=1, no_catchup=True)
    except BaseException:
        for run in old:  # leave things as they were
            client.enable_recurring_run(run.recurring_run_id)
        raise
    for run in old:
        client.delete_recurring_run(run.recurring_run_id)
        log(f"recurring run {name!r} ({run.recurring_run_id}) replaced")
    return new.recurring_run_id, [r.recurring_run_id for r in old]
