"""Per-kind behaviour of the API server on writes: name validation, defaulting, generation.

Only what clients and controllers observably depend on is defaulted (Deployment replicas/strategy,
Service clusterIP/ports, Job selector, Namespace phase...). No schema validation beyond names and
CRD structure.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
import secrets
import string

from . import errors
from .discovery import ResourceType

SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)

# Kinds whose objects carry no metadata.generation on a real server.
NO_GENERATION = {
    "ConfigMap",
    "Secret",
    "Event",
    "Endpoints",
    "EndpointSlice",
    "ServiceAccount",
    "Namespace",
    "Node",
    "Lease",
    "ControllerRevision",
    "Service",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "LimitRange",
    "ResourceQuota",
}
_cluster_ips = itertools.count(10)


def generate_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))


def validate_name(rt: ResourceType, name: str | None) -> None:
    if not name:
        raise errors.invalid(
            rt.kind,
            "",
            [
                {
                    "reason": "FieldValueRequired",
                    "field": "metadata.name",
                    "message": "Required value: name or generateName is required",
                }
            ],
            rt.group,
        )
    if rt.kind == "Namespace":
        regex, msg, limit = LABEL_RE, _LABEL_MSG, 63
    elif rt.kind == "Service":
        regex, msg, limit = DNS1035_RE, _DNS1035_MSG, 63
    else:
        regex, msg, limit = SUBDOMAIN_RE, _SUBDOMAIN_MSG, 253
    problems = []
    if len(name) > limit:
        problems.append(f"must be no more than {limit} characters")
    if not regex.match(name):
        problems.append(msg)
    if problems:
        raise errors.invalid(
            rt.kind,
            name,
            [
                {
                    "reason": "FieldValueInvalid",
                    "field": "metadata.name",
                    "message": f'Invalid value: "{name}": {p}',
                }
                for p in problems
            ],
            rt.group,
        )


def validate_crd(crd: dict) -> None:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    name = crd.get("metadata", {}).get("name", "")
    causes = []
    if not spec.get("group"):
        causes.append(("spec.group", "Required value"))
    if not names.get("plural"):
        causes.append(("spec.names.plural", "Required value"))
    if not names.get("kind"):
        causes.append(("spec.names.kind", "Required value"))
    if spec.get("group") and names.get("plural") and name != f"{names['plural']}.{spec['group']}":
        causes.append(("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
    versions = spec.get("versions") or []
    if not versions or sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            ("spec.versions", "Invalid value: must have exactly one version marked as storage version")
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("spec.scope", f'Unsupported value: "{spec.get("scope")}"'))
    if causes:
        raise errors.invalid(
            "CustomResourceDefinition",
            name,
            [{"reason": "FieldValueInvalid", "field": f, "message": m} for f, m in causes],
            "apiextensions.k8s.io",
        )


def strip_nulls(value) -> None:
    """Drop null values in place (what a Go round-trip of omitempty fields does)."""
    if isinstance(value, dict):
        for k in [k for k, v in value.items() if v is None]:
            del value[k]
        for v in value.values():
            strip_nulls(v)
    elif isinstance(value, list):
        for v in value:
            strip_nulls(v)


def default(rt: ResourceType, obj: dict, old: dict | None = None) -> None:
    """Apply server-side defaults in place (on create and on every update)."""
    strip_nulls(obj)
    meta = obj.setdefault("metadata", {})
    for k in [k for k, v in meta.items() if v in ("", {}, [])]:
        del meta[k]
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else None
    kind = rt.kind if not rt.crd else ""
    if kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name")
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.get("data") or {}
            obj["data"] = data
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
        for k, v in (obj.get("data") or {}).items():
            try:
                base64.b64decode(v, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise errors.bad_request(f"illegal base64 data in Secret data[{k!r}]") from None
    elif kind == "Service" and spec is not None:
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") is None:
            prev = ((old or {}).get("spec") or {}).get("clusterIP")
            n = next(_cluster_ips)
            spec["clusterIP"] = prev or f"10.96.{n // 250}.{n % 250 + 1}"
        spec.setdefault("clusterIPs", [spec["clusterIP"]] if spec["clusterIP"] != "None" else ["None"])
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
    elif kind in ("Deployment", "StatefulSet", "ReplicaSet", "ReplicationController") and spec is not None:
        spec.setdefault("replicas", 1)
        if kind in ("Deployment", "StatefulSet"):
            spec.setdefault("revisionHistoryLimit", 10)
        if kind == "Deployment":
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                ru = strategy.setdefault("rollingUpdate", {})
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
        if kind == "StatefulSet":
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    elif kind == "DaemonSet" and spec is not None:
        spec.setdefault(
            "updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
        )
    elif kind == "Job" and spec is not None:
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
    elif kind == "CronJob" and spec is not None:
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
    elif kind == "Pod":
        if spec is not None:
            spec.setdefault("restartPolicy", "Always")
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif kind == "PersistentVolumeClaim":
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif kind == "PersistentVolume":
        obj.setdefault("status", {}).setdefault("phase", "Available")
    if kind in ("Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        pod_spec = spec if kind == "Pod" else ((spec or {}).get("template") or {}).get("spec")
        for c in (pod_spec or {}).get("containers") or []:
            for p in c.get("ports") or []:
                p.setdefault("protocol", "TCP")


def on_create(rt: ResourceType, obj: dict) -> None:
    """Create-only defaults (need the uid)."""
    if rt.kind == "Job" and not rt.crd:
        spec = obj.setdefault("spec", {})
        uid = obj["metadata"]["uid"]
        tmpl_meta = spec.setdefault("template", {}).setdefault("metadata", {})
        labels = tmpl_meta.setdefault("labels", {})
        if not spec.get("manualSelector"):
            spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
            labels.setdefault("batch.kubernetes.io/controller-uid", uid)
            labels.setdefault("controller-uid", uid)
        labels.setdefault("batch.kubernetes.io/job-name", obj["metadata"]["name"])
        labels.setdefault("job-name", obj["metadata"]["name"])


def has_generation(rt: ResourceType) -> bool:
    return bool(rt.crd) or rt.kind not in NO_GENERATION


def spec_changed(old: dict, new: dict) -> bool:
    def strip(o: dict) -> dict:
        return {k: v for k, v in o.items() if k not in ("metadata", "status", "apiVersion", "kind")}

    return strip(old) != strip(new)


def check_immutable(rt: ResourceType, old: dict, new: dict) -> None:
    if (
        rt.kind in ("ConfigMap", "Secret")
        and not rt.crd
        and old.get("immutable")
        and any(old.get(k) != new.get(k) for k in ("data", "binaryData", "immutable"))
    ):
        raise errors.invalid(
            rt.kind,
            old["metadata"]["name"],
            [
                {
                    "reason": "FieldValueForbidden",
                    "field": "data",
                    "message": "Forbidden: field is immutable when `immutable` is set",
                }
            ],
        )
