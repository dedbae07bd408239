"""Validate a rendered custom resource against its upstream CRD (tests/support/crds/, SOURCES.md there):
the served version's openAPIV3Schema with jsonschema, made strict like the API server's strict
field validation (unknown fields are errors, not silently pruned)."""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from pathlib import Path

import yaml

CRDS = Path(__file__).resolve().parent / "crds"
SHA256 = {  # as recorded in tests/support/crds/SOURCES.md
    "kubeflow.org_pytorchjobs.yaml": "eb80e57a984cdc7ceefaaf3fc561e21b673c30cbb58589f2389528d2b2760d22",
    "trainer.kubeflow.org_trainjobs.yaml": "a742cafc5b5582640c7e0b7467c024fc237256fbca5ba0a9f0531dfb66d64416",
    "serving.kserve.io_inferenceservices.yaml": "57c3bf13f77de94678bf2ae3748056ec071ad2b9e88d6a28f44fb4710758fcff",
}
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def strict(schema):
    """A copy of `schema` where every object schema with `properties` refuses other keys."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields") \
            and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


@functools.cache
def crd(filename: str) -> dict:
    raw = (CRDS / filename).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == SHA256[filename], f"tests/support/crds/{filename} differs from its source"
    return yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.cache
def _validator(filename: str, version: str):
    import jsonschema  # the dev extra

    doc = crd(filename)
    (served,) = [v for v in doc["spec"]["versions"] if v["name"] == version and v.get("served")]
    schema = strict(copy.deepcopy(served["schema"]["openAPIV3Schema"]))
    jsonschema.Draft7Validator.check_schema(schema)
    return doc, jsonschema.Draft7Validator(schema)


def errors(manifest: dict, filename: str) -> list[str]:
    """Every violation of the CRD's schema (and of what the API server checks in metadata)."""
    group_version = manifest.get("apiVersion", "")
    group, _, version = group_version.partition("/")
    doc, validator = _validator(filename, version)
    found = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
             for e in validator.iter_errors(manifest)]
    if group != doc["spec"]["group"] or manifest.get("kind") != doc["spec"]["names"]["kind"]:
        found.append(f"apiVersion/kind {group_version} {manifest.get('kind')} is not this CRD's")
    meta = manifest.get("metadata", {})
    name = meta.get("name", "")
    if not (DNS_1035.fullmatch(name) and len(name) <= 63):
        found.append(f"metadata.name {name!r}: not a DNS-1035 label of at most 63 characters")
    for ref in meta.get("ownerReferences", []):
        missing = {"apiVersion", "kind", "name", "uid"} - set(ref)
        if missing:
            found.append(f"metadata.ownerReferences: {sorted(missing)} missing")
    return found
