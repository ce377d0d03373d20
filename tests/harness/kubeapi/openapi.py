"""A minimal OpenAPI v3 that makes helm and kubectl validate on the server side.

kubectl (and helm, which uses the same validator) decides per kind whether the server supports the
``fieldValidation`` query parameter by finding, in ``/openapi/v3/<group-version>``, a PATCH operation
tagged ``x-kubernetes-group-version-kind`` that lists that parameter. When it does, it skips client-side
schema validation and sends ``fieldValidation=Strict`` instead. So each group-version document lists
one PATCH operation per kind with the parameter, and no schemas. ``/openapi/v2`` is 404 (clients fall
back to compiled-in types for strategic-merge metadata). Consequence: nothing validates object fields -
the simulator accepts unknown fields even with fieldValidation=Strict.
"""

from __future__ import annotations

import hashlib
import json

from .discovery import Registry

_PARAMS = [
    {"name": n, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
    for n in ("dryRun", "fieldManager", "fieldValidation", "force")
]


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def gv_document(reg: Registry, group: str, version: str) -> dict | None:
    types = reg.in_group_version(group, version)
    if not types:
        return None
    paths = {}
    for rt in types:
        gvk = {"group": group, "version": version, "kind": rt.kind}
        base = "/" + gv_path(group, version)
        ns = "/namespaces/{namespace}" if rt.namespaced else ""
        op = {
            "x-kubernetes-group-version-kind": gvk,
            "x-kubernetes-action": "patch",
            "operationId": f"patch{rt.kind}",
            "parameters": _PARAMS,
            "responses": {"200": {"description": "OK"}},
        }
        paths[f"{base}{ns}/{rt.plural}/{{name}}"] = {"patch": op}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (kubeapi simulator)", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _hash(doc: dict) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()


def index(reg: Registry) -> dict:
    paths = {}
    for group, versions in sorted(reg.group_versions().items()):
        for v in versions:
            doc = gv_document(reg, group, v)
            p = gv_path(group, v)
            paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={_hash(doc)}"}
    return {"paths": paths}
