"""Resource types the simulator serves: built-in tables, CRD registration, discovery documents.

Objects are stored once per (group, plural); every served version of a type shows the same object
with its ``apiVersion`` rewritten (no conversion between versions - see the README).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CREATE_ONLY = ["create"]
ALL_CATEGORY = {
    "pods",
    "services",
    "deployments",
    "replicasets",
    "statefulsets",
    "daemonsets",
    "jobs",
    "cronjobs",
    "replicationcontrollers",
    "horizontalpodautoscalers",
}

# "plural Kind scope shortNames subresources" per group/version; scope ns|cl; '-' means none.
_BUILTIN = {
    ("", "v1"): """
        configmaps ConfigMap ns cm -
        endpoints Endpoints ns ep -
        events Event ns ev -
        limitranges LimitRange ns limits -
        namespaces Namespace cl ns status,finalize
        nodes Node cl no status
        persistentvolumeclaims PersistentVolumeClaim ns pvc status
        persistentvolumes PersistentVolume cl pv status
        pods Pod ns po status,log
        podtemplates PodTemplate ns - -
        replicationcontrollers ReplicationController ns rc status,scale
        resourcequotas ResourceQuota ns quota status
        secrets Secret ns - -
        serviceaccounts ServiceAccount ns sa -
        services Service ns svc status""",
    ("apps", "v1"): """
        controllerrevisions ControllerRevision ns - -
        daemonsets DaemonSet ns ds status
        deployments Deployment ns deploy status,scale
        replicasets ReplicaSet ns rs status,scale
        statefulsets StatefulSet ns sts status,scale""",
    ("batch", "v1"): """
        cronjobs CronJob ns cj status
        jobs Job ns - status""",
    ("autoscaling", "v2,v1"): """
        horizontalpodautoscalers HorizontalPodAutoscaler ns hpa status""",
    ("policy", "v1"): """
        poddisruptionbudgets PodDisruptionBudget ns pdb status""",
    ("rbac.authorization.k8s.io", "v1"): """
        clusterrolebindings ClusterRoleBinding cl - -
        clusterroles ClusterRole cl - -
        rolebindings RoleBinding ns - -
        roles Role ns - -""",
    ("networking.k8s.io", "v1"): """
        ingressclasses IngressClass cl - -
        ingresses Ingress ns ing status
        networkpolicies NetworkPolicy ns netpol -""",
    ("storage.k8s.io", "v1"): """
        csidrivers CSIDriver cl - -
        csinodes CSINode cl - -
        storageclasses StorageClass cl sc -
        volumeattachments VolumeAttachment cl - status""",
    ("apiextensions.k8s.io", "v1"): """
        customresourcedefinitions CustomResourceDefinition cl crd,crds status""",
    ("coordination.k8s.io", "v1"): """
        leases Lease ns - -""",
    ("authorization.k8s.io", "v1"): """
        localsubjectaccessreviews LocalSubjectAccessReview ns - -
        selfsubjectaccessreviews SelfSubjectAccessReview cl - -
        selfsubjectrulesreviews SelfSubjectRulesReview cl - -
        subjectaccessreviews SubjectAccessReview cl - -""",
    ("scheduling.k8s.io", "v1"): """
        priorityclasses PriorityClass cl pc -""",
    ("admissionregistration.k8s.io", "v1"): """
        mutatingwebhookconfigurations MutatingWebhookConfiguration cl - -
        validatingwebhookconfigurations ValidatingWebhookConfiguration cl - -""",
    ("node.k8s.io", "v1"): """
        runtimeclasses RuntimeClass cl - -""",
    ("discovery.k8s.io", "v1"): """
        endpointslices EndpointSlice ns - -""",
    ("apiregistration.k8s.io", "v1"): """
        apiservices APIService cl - status""",
}
_REVIEW_KINDS = {
    "SelfSubjectAccessReview",
    "SelfSubjectRulesReview",
    "SubjectAccessReview",
    "LocalSubjectAccessReview",
}


@dataclass
class ResourceType:
    group: str
    versions: list[str]  # served versions, preferred first
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    subresources: set[str] = field(default_factory=set)
    verbs: list[str] = field(default_factory=lambda: list(ALL_VERBS))
    crd: str | None = None  # the CRD's name when this type comes from one
    storage_version: str = ""
    scale_paths: dict[str, str] = field(default_factory=dict)  # specReplicasPath/statusReplicasPath/...
    printer_columns: dict[str, list[dict]] = field(default_factory=dict)  # per version (CRDs)

    def __post_init__(self) -> None:
        self.singular = self.singular or self.kind.lower()
        self.storage_version = self.storage_version or self.versions[0]

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def preferred(self) -> str:
        return self.versions[0]

    def api_version(self, version: str | None = None) -> str:
        v = version or self.preferred
        return f"{self.group}/{v}" if self.group else v

    @property
    def qualified(self) -> str:
        """``deployments.apps`` - how errors name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(v: str) -> tuple:
    """Kubernetes' version ordering: GA > beta > alpha, then higher numbers first."""
    m = _VERSION_RE.match(v)
    if not m:
        return (3, 0, 0, v)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor, v)


class Registry:
    """Thread-safe table of resource types; CRDs add and remove theirs."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._types: dict[tuple[str, str], ResourceType] = {}
        self.generation = 0  # bumped on every change, part of the OpenAPI/discovery hashes
        for (group, versions), table in _BUILTIN.items():
            for line in table.strip().splitlines():
                plural, kind, scope, shorts, subs = line.split()
                self._types[(group, plural)] = ResourceType(
                    group=group,
                    versions=versions.split(","),
                    plural=plural,
                    kind=kind,
                    namespaced=scope == "ns",
                    short_names=[] if shorts == "-" else shorts.split(","),
                    categories=["all"] if plural in ALL_CATEGORY else [],
                    subresources=set() if subs == "-" else set(subs.split(",")),
                    verbs=CREATE_ONLY if kind in _REVIEW_KINDS else list(ALL_VERBS),
                )

    # ---------------------------------------------------------------- lookups
    def all(self) -> list[ResourceType]:
        with self._lock:
            return list(self._types.values())

    def get(self, group: str, plural: str) -> ResourceType | None:
        with self._lock:
            return self._types.get((group, plural))

    def resolve(self, group: str, version: str, plural: str) -> ResourceType | None:
        rt = self.get(group, plural)
        return rt if rt and version in rt.versions else None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        with self._lock:
            for rt in self._types.values():
                if rt.group == group and rt.kind == kind and (not version or version in rt.versions):
                    return rt
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """group -> served versions, preferred first (core group is "")."""
        out: dict[str, set[str]] = {}
        with self._lock:
            for rt in self._types.values():
                out.setdefault(rt.group, set()).update(rt.versions)
        return {g: sorted(vs, key=version_priority) for g, vs in out.items()}

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        with self._lock:
            return sorted(
                (rt for rt in self._types.values() if rt.group == group and version in rt.versions),
                key=lambda r: r.plural,
            )

    # ---------------------------------------------------------------- CRDs
    def register_crd(self, crd: dict) -> ResourceType:
        spec = crd["spec"]
        names = spec["names"]
        served = [v for v in spec.get("versions", []) if v.get("served", True)]
        versions = sorted((v["name"] for v in served), key=version_priority)
        storage = next((v["name"] for v in spec.get("versions", []) if v.get("storage")), versions[0])
        subs: set[str] = set()
        scale: dict[str, str] = {}
        columns: dict[str, list[dict]] = {}
        for v in served:
            sr = v.get("subresources") or {}
            if "status" in sr:
                subs.add("status")
            if "scale" in sr:
                subs.add("scale")
                scale = dict(sr["scale"] or {})
            columns[v["name"]] = list(v.get("additionalPrinterColumns") or [])
        rt = ResourceType(
            group=spec["group"],
            versions=versions,
            plural=names["plural"],
            kind=names["kind"],
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular") or names["kind"].lower(),
            short_names=list(names.get("shortNames") or []),
            categories=list(names.get("categories") or []),
            subresources=subs,
            crd=crd["metadata"]["name"],
            storage_version=storage,
            scale_paths=scale,
            printer_columns=columns,
        )
        with self._lock:
            self._types[(rt.group, rt.plural)] = rt
            self.generation += 1
        return rt

    def unregister_crd(self, crd_name: str) -> None:
        with self._lock:
            for key, rt in list(self._types.items()):
                if rt.crd == crd_name:
                    del self._types[key]
            self.generation += 1


# -------------------------------------------------------------------------- discovery documents


def _resource_entries(rt: ResourceType) -> list[dict]:
    main = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": rt.verbs,
    }
    if rt.short_names:
        main["shortNames"] = rt.short_names
    if rt.categories:
        main["categories"] = rt.categories
    out = [main]
    for sub in sorted(rt.subresources):
        entry = {
            "name": f"{rt.plural}/{sub}",
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": ["get", "patch", "update"],
        }
        if sub == "scale":
            entry.update(group="autoscaling", version="v1", kind="Scale")
        elif sub == "log":
            entry["verbs"] = ["get"]
        elif sub == "finalize":
            entry["verbs"] = ["update"]
        out.append(entry)
    return out


def api_versions(host: str) -> dict:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }


def _api_group(group: str, versions: list[str]) -> dict:
    return {
        "name": group,
        "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
        "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
    }


def api_group_list(reg: Registry) -> dict:
    gvs = reg.group_versions()
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_api_group(g, vs) for g, vs in sorted(gvs.items(), key=_group_order) if g],
    }


def api_group(reg: Registry, group: str) -> dict | None:
    vs = reg.group_versions().get(group)
    if not vs or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(group, vs)}


def api_resource_list(reg: Registry, group: str, version: str) -> dict | None:
    types = reg.in_group_version(group, version)
    if not types:
        return None
    gv = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": [e for rt in types for e in _resource_entries(rt)],
    }


def _group_order(item: tuple[str, list[str]]) -> tuple:
    g = item[0]
    builtin = [k[0] for k in _BUILTIN]
    return (builtin.index(g) if g in builtin else len(builtin), g)


AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def aggregated(reg: Registry, legacy: bool) -> dict:
    """apidiscovery.k8s.io/v2 APIGroupDiscoveryList for /api (legacy=True) or /apis."""
    items = []
    for group, versions in sorted(reg.group_versions().items(), key=_group_order):
        if (group == "") != legacy:
            continue
        vers = []
        for v in versions:
            resources = []
            for rt in reg.in_group_version(group, v):
                r = {
                    "resource": rt.plural,
                    "responseKind": {"group": group, "version": v, "kind": rt.kind},
                    "scope": "Namespaced" if rt.namespaced else "Cluster",
                    "singularResource": rt.singular,
                    "verbs": rt.verbs,
                }
                if rt.short_names:
                    r["shortNames"] = rt.short_names
                if rt.categories:
                    r["categories"] = rt.categories
                subs = []
                for e in _resource_entries(rt)[1:]:
                    subs.append(
                        {
                            "subresource": e["name"].split("/", 1)[1],
                            "responseKind": {
                                "group": e.get("group", group),
                                "version": e.get("version", v),
                                "kind": e["kind"],
                            },
                            "verbs": e["verbs"],
                        }
                    )
                if subs:
                    r["subresources"] = subs
                resources.append(r)
            vers.append({"version": v, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": vers})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
