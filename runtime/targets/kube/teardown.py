"""The kube target's teardown: the DGD and its pods, releases in reverse order (shared ones only when nothing
else uses them), objects / PVC / namespace by policy, then an inventory by the project's labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime import render
from runtime.domain import naming
from runtime.domain.rollout import (
    DGD_NAME_LABEL,
)
from runtime.errors import TransientError
from runtime.gateways.kube import WaitTimeout
from runtime.targets.base import TeardownReport
from runtime.targets.kube import preflight as pf
from runtime.targets.kube import route as kube_route
from runtime.targets.kube.common import (
    _NAMESPACED_KINDS,
    CRD_API,
    CRD_KIND,
    DGD_API,
    DGD_KIND,
    DGDSA_KIND,
    OWNER_PREFIX,
    SHARED_LABEL,
    _timeout,
)

if TYPE_CHECKING:
    from runtime.targets.kube.backend import KubeBackend


def teardown(kb: KubeBackend, *, keep_model_cache: bool = True) -> TeardownReport:
    spec = kb.spec
    keep_ns = spec.teardown.keep_namespace or keep_model_cache
    own = naming.labels(spec.name)
    # 1. the graph, and its pods gone. Background propagation: the DGD goes at once and the garbage
    # collector removes what the operator made; the pods are waited for below (a foreground delete
    # would hold the DGD until then, and hang on a dependent the operator recreates meanwhile).
    kube_route.remove(kb.kube, spec)  # clients stop entering before the graph goes
    for dgd in kb.kube.list(DGD_API, DGD_KIND, kb.ns, labels=own):
        kb.kube.delete(DGD_API, DGD_KIND, dgd["metadata"]["name"], kb.ns, propagation="Background")
    timeout = _timeout("TEARDOWN", 300)
    wait_none(kb, DGD_API, DGD_KIND, kb.ns, own, timeout)
    wait_none(kb, "v1", "Pod", kb.ns, {DGD_NAME_LABEL: kb.dgd_name}, timeout)
    # 2. releases, in reverse install order
    released, kept = uninstall_releases(kb)
    # 3. the namespace's objects, the cache PVC and the namespace itself by policy
    deleted = 0
    if not keep_ns:
        deleted += kb.kube.delete(
            "v1", "Namespace", kb.ns, propagation="Background", wait=True, timeout_s=timeout
        )
    else:
        for api_version, kind in _NAMESPACED_KINDS:
            if kind == "PersistentVolumeClaim" and keep_model_cache:
                continue
            for obj in kb.kube.list(api_version, kind, kb.ns, labels=own):
                deleted += kb.kube.delete(
                    api_version, kind, obj["metadata"]["name"], kb.ns, propagation="Background"
                )
    left = kb.inventory()
    return TeardownReport(
        leftovers=left,
        model_cache_kept=keep_model_cache,
        note=f"released {', '.join(released) or 'nothing'}"
        + (f"; kept shared {', '.join(kept)}" if kept else "")
        + ("; namespace kept" if keep_ns else ""),
        details={"namespace_kept": keep_ns, "released": released, "kept_shared": kept, "deleted": deleted},
    )


def wait_none(
    kb: KubeBackend, api_version: str, kind: str, namespace: str, labels: dict, timeout: float
) -> None:
    try:
        kb.kube.wait(
            api_version,
            kind,
            lambda objs: not objs,
            namespace=namespace,
            labels=labels,
            timeout_s=timeout,
            what=f"every {kind} of {kb.spec.name} to be gone",
            describe_stuck=lambda objs: ", ".join(o["metadata"]["name"] for o in objs),
        )
    except WaitTimeout as exc:
        raise TransientError(str(exc), hint="rerun teardown") from None


def other_deployments(kb: KubeBackend) -> list[str]:
    """Other dynadeploy deployments on this cluster (by their namespaces' labels)."""
    out = []
    for ns in kb.kube.list("v1", "Namespace", labels={naming.MANAGED_BY_KEY: naming.MANAGED_BY_VALUE}):
        dep = (ns["metadata"].get("labels") or {}).get(naming.DEPLOYMENT_KEY)
        if dep and dep != kb.spec.name and not ns["metadata"].get("deletionTimestamp"):
            out.append(dep)
    return out


def owned_release(kb: KubeBackend, release: str, namespace: str):
    info = kb.helm.current(release, namespace)
    return info if info is not None and (info.description or "").startswith(OWNER_PREFIX) else None


def uninstall_releases(kb: KubeBackend) -> tuple[list[str], list[str]]:
    spec = kb.spec
    released, kept = [], []
    others = other_deployments(kb)
    plat_ns = pf.own_operator_namespace(spec)
    charts = list(reversed(render.platform_charts(spec)))
    graphs = (
        [f"{d['metadata'].get('namespace')}/{d['metadata']['name']}" for d in kb.kube.list(DGD_API, DGD_KIND)]
        if kb.kube.served(DGD_API, DGD_KIND)
        else []
    )
    shared_users = others + graphs
    for chart in charts:
        info = owned_release(kb, chart.release, chart.namespace)
        if info is None:
            continue
        if chart.namespace == kb.ns or not shared_users:
            kb.helm.uninstall(chart.release, chart.namespace, wait=True)
            released.append(f"{chart.release} ({chart.namespace})")
        else:
            kept.append(f"{chart.release} ({chart.namespace}, used by {', '.join(sorted(shared_users)[:3])})")
    if released and not shared_users and not pf.find_operators(kb.kube):
        # The last Dynamo operator is gone and no graph is left: the CRDs dynadeploy created go too.
        for crd in kb.kube.list(CRD_API, CRD_KIND, labels={naming.MANAGED_BY_KEY: naming.MANAGED_BY_VALUE}):
            if crd["metadata"]["name"] in pf.DYNAMO_CRDS:
                kb.kube.delete(CRD_API, CRD_KIND, crd["metadata"]["name"], wait=True)
    if released and plat_ns != kb.ns and not shared_users:
        delete_shared_namespace(kb, plat_ns)
    gpu = render.gpu_operator_chart(spec)
    info = owned_release(kb, gpu.release, gpu.namespace)
    if info is not None:
        gpu_users = [
            f"{p['metadata'].get('namespace')}/{p['metadata']['name']}"
            for p in kb.kube.list("v1", "Pod")
            if p["metadata"].get("namespace") != gpu.namespace and pf._pod_gpus(p) > 0
        ]
        users = others + gpu_users
        if users:
            kept.append(f"{gpu.release} ({gpu.namespace}, used by {', '.join(sorted(users)[:3])})")
        else:
            kb.helm.uninstall(gpu.release, gpu.namespace, wait=True)
            released.append(f"{gpu.release} ({gpu.namespace})")
            delete_shared_namespace(kb, gpu.namespace)
    return released, kept


def delete_shared_namespace(kb: KubeBackend, name: str) -> None:
    ns = kb.kube.get("v1", "Namespace", name)
    labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
    if (
        ns is not None
        and labels.get(SHARED_LABEL) == "true"
        and labels.get(naming.MANAGED_BY_KEY) == naming.MANAGED_BY_VALUE
    ):
        kb.kube.delete("v1", "Namespace", name, wait=True, timeout_s=_timeout("TEARDOWN", 300))


def inventory(kb: KubeBackend) -> list[str]:
    """What this deployment left on the cluster, by the project's labels (and the operator's labels for
    the graph), minus what the teardown policy keeps (the cache PVC and its namespace)."""
    spec = kb.spec
    keep_cache = spec.teardown.keep_model_cache
    keep_ns = spec.teardown.keep_namespace or keep_cache
    pvc = naming.model_cache_pvc_name(spec)
    found: set[str] = set()

    def add(obj: dict) -> None:
        m = obj.get("metadata") or {}
        kind, name, ns = obj.get("kind", "?"), m.get("name"), m.get("namespace")
        if kind == "Namespace" and name == kb.ns and keep_ns:
            return
        if kind == "PersistentVolumeClaim" and name == pvc and ns == kb.ns and keep_cache:
            return
        found.add(f"{kind} {ns}/{name}" if ns else f"{kind} {name}")

    for api_version, kind in [
        ("v1", "Namespace"),
        *_NAMESPACED_KINDS,
        ("v1", "Pod"),
        ("v1", "Service"),
        ("apps/v1", "Deployment"),
        (DGD_API, DGD_KIND),
        (DGD_API, DGDSA_KIND),
    ]:
        for obj in kb.kube.list(api_version, kind, labels=naming.labels(spec.name)):
            add(obj)
    for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "Pod")):
        for obj in kb.kube.list(api_version, kind, kb.ns, labels={DGD_NAME_LABEL: kb.dgd_name}):
            add(obj)
    if (
        spec.platform.operator_mode == "namespace"
        and kb.kube.get("v1", "Namespace", kb.ns) is not None
        and kb.helm.current(naming.PLATFORM_RELEASE, kb.ns) is not None
    ):
        found.add(f"helm release {kb.ns}/{naming.PLATFORM_RELEASE}")
    return sorted(found)
