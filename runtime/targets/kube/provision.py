"""The kube target's provision stage: the read-only preflight (every problem with its fix, reported at
once: Kubernetes version, access, GPUs, storage, operators, CRDs, serving.route), then the namespace and its
security objects, and the monitoring objects when the spec asks for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime import render
from runtime.targets.base import Provisioned
from runtime.targets.kube import access
from runtime.targets.kube import preflight as pf
from runtime.targets.kube import route as kube_route
from runtime.targets.kube.common import (
    CRD_API,
    CRD_KIND,
    _warn,
)

if TYPE_CHECKING:
    from runtime.spec.serving import Engine
    from runtime.targets.kube.backend import KubeBackend


def provision(kb: KubeBackend) -> Provisioned:
    spec = kb.spec
    where = kb.where()
    version = kb.kube.version()
    problems = pf.version_problems(version)
    # Reads first: without them nothing else can be judged.
    reads = [
        a
        for a in access.required_access(spec, download=False, token=False, install_platform=False)
        if a.verb in ("list", "get") and a.namespace is None
    ]
    denied = access.access_problems(kb.kube, reads, kb.context)
    if denied:
        pf.raise_problems(problems + denied, where)
    nodes = kb.kube.list("v1", "Node")
    inv = pf.gpu_inventory(nodes, kb.kube.list("v1", "Pod"), spec.name)
    engine = spec.engine(gpus_available=bool(inv.gpu_nodes))
    problems += gpu_problems(kb, inv, engine)
    problems += storage_problems(kb, nodes)
    operators = pf.find_operators(kb.kube)
    problems += pf.operator_problems(spec, operators)
    crds = {
        c["metadata"]["name"]: c
        for c in kb.kube.list(CRD_API, CRD_KIND)
        if c["metadata"]["name"] in pf.DYNAMO_CRDS
    }
    problems += pf.crd_problems(spec, crds, operators)
    problems += kube_route.preflight_problems(kb.kube, spec)
    reuse = pf.reusable_operator(spec, operators)
    needs = access.required_access(
        spec,
        download=not spec.model.is_builtin(),
        token=spec.model.token is not None,
        install_platform=reuse is None,
    )
    if gpu_operator_wanted(kb, inv):
        needs += access.gpu_operator_access()
    problems += access.access_problems(kb.kube, [a for a in needs if a not in reads], kb.context)
    pf.raise_problems(problems, where)

    # Nothing was changed up to here. Now the namespace and what secures it.
    objs = render.render_security(spec, kb.caps)
    for obj in objs:
        kb.kube.apply(obj)
    monitoring_note = kb.apply_monitoring()
    operator = (
        f"using {reuse}"
        if reuse
        else "installing"
        if not any(pf.is_own(op, spec) for op in operators)
        else "managed by dynadeploy"
    )
    return Provisioned(
        where=where,
        details={
            "cluster": where,
            "server_version": version.get("gitVersion"),
            "namespace": kb.ns,
            "gpus": inv.total,
            "gpu_nodes": inv.gpu_nodes,
            "engine": engine,
            "operator": operator,
            "crds": sorted(crds),
            "objects": len(objs),
            **({"monitoring": monitoring_note} if monitoring_note else {}),
        },
    )


def apply_monitoring(kb: KubeBackend) -> str | None:
    """PodMonitors + PrometheusRule (+ Grafana dashboard ConfigMap) when the spec asks for monitoring and
    the cluster runs the Prometheus Operator; said plainly (logged, returned) when it does not."""
    from runtime.render import dashboard, monitoring_kube

    if kb.spec.monitoring is None or not kb.spec.monitoring.prometheus:
        # monitoring was turned off: remove what an earlier deploy applied (nothing when it never did)
        gone = [
            f"{kind} {o['metadata']['name']}"
            for api, kind, labels in monitoring_kube.owned(kb.spec)
            for o in kb.kube.list(api, kind, kb.ns, labels=labels)
            if kb.kube.delete(api, kind, o["metadata"]["name"], kb.ns)
        ]
        return "removed " + ", ".join(gone) if gone else None
    served = {c["metadata"]["name"] for c in kb.kube.list(CRD_API, CRD_KIND)}
    missing = [c for c in monitoring_kube.CRDS if c not in served]
    if missing:
        note = monitoring_kube.absent_message(missing)
        _warn(note)
        return note
    objs = monitoring_kube.render(kb.spec, dashboard.render(kb.spec))
    for obj in objs:
        kb.kube.apply(obj)
    return "applied " + ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in objs)


def gpu_problems(kb: KubeBackend, inv: pf.GpuInventory, engine: Engine) -> list[pf.Problem]:
    spec = kb.spec
    need = render.total_gpus(spec, engine)
    if need == 0:
        return []
    per_replica = max((c.gpus for c in spec.components() if c.role != "frontend"), default=0)
    counted = (
        ""
        if inv.reporting
        else (
            " (counted from node labels: no node reports nvidia.com/gpu yet, "
            "the GPU operator is not installed)"
        )
    )
    if not inv.gpu_nodes:
        return [
            pf.Problem(
                f"the graph needs {need} GPU(s) but no node has an NVIDIA GPU (none reports nvidia.com/gpu or "
                "carries the nvidia.com/gpu.present / gpu.count labels)",
                "add GPU nodes to the cluster, or set serving.engine: mocker to run without GPUs",
            )
        ]
    out = []
    if not inv.reporting and not spec.platform.gpu_operator.enabled:
        out.append(
            pf.Problem(
                "GPU nodes exist but none reports nvidia.com/gpu, and platform.gpu_operator.enabled is false",
                "set platform.gpu_operator.enabled: true, or install NVIDIA's device plugin yourself",
            )
        )
    if inv.free < need:
        per_node = ", ".join(f"{n}: {inv.free_on(n)}" for n in inv.gpu_nodes)
        out.append(
            pf.Problem(
                f"the graph needs {need} GPU(s) but only {inv.free} of {inv.total} are free{counted} ({per_node})",
                "lower serving replicas or gpus per worker, free GPUs held by other pods, or add GPU nodes",
            )
        )
    elif per_replica > inv.max_free_per_node:
        out.append(
            pf.Problem(
                f"a worker replica asks for {per_replica} GPU(s) but no node has more than "
                f"{inv.max_free_per_node} free{counted}",
                f"set the workers' gpus to {inv.max_free_per_node} or less, or add nodes with more GPUs",
            )
        )
    return out


def storage_problems(kb: KubeBackend, nodes: list[dict] | None = None) -> list[pf.Problem]:
    out = shared_cache_problems(kb, nodes or [])
    return out + storage_class_problems(kb)


def shared_cache_problems(kb: KubeBackend, nodes: list[dict]) -> list[pf.Problem]:
    """The frontend, every worker and the download Job mount the model cache: a ReadWriteOnce volume
    attaches to one node, so on a cluster of several schedulable nodes the pods that land on another
    node stay Pending (Multi-Attach). Only a one-node cluster may share an RWO cache."""
    if kb.spec.model.cache.access_mode != "ReadWriteOnce":
        return []
    usable = sorted(n["metadata"]["name"] for n in nodes if not (n.get("spec") or {}).get("unschedulable"))
    if len(usable) <= 1:
        return []
    rwx = kb.caps.storage.rwx_class
    return [
        pf.Problem(
            f"model.cache.access_mode is ReadWriteOnce, but the frontend, the workers and the download Job all "
            f"mount the cache and the cluster has {len(usable)} schedulable nodes ({', '.join(usable[:5])}"
            f"{', ...' if len(usable) > 5 else ''}): an RWO volume attaches to one node, so pods on another "
            "stay Pending (Multi-Attach)",
            "set model.cache.access_mode: ReadWriteMany with a StorageClass that can share a volume across nodes "
            f"(model.cache.storage_class: {rwx or 'an NFS / CephFS / cloud file-store class'})",
        )
    ]


def storage_class_problems(kb: KubeBackend) -> list[pf.Problem]:
    wanted = render.storage_class(kb.spec, kb.caps)
    classes = kb.kube.list("storage.k8s.io/v1", "StorageClass")
    names = sorted(c["metadata"]["name"] for c in classes)
    if wanted:
        if wanted in names:
            return []
        return [
            pf.Problem(
                f"StorageClass {wanted} (for the model cache) does not exist",
                f"set model.cache.storage_class to one of: {', '.join(names) or 'none exist'}",
            )
        ]
    default = [
        c
        for c in classes
        if (
            (c["metadata"].get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class")
            == "true"
        )
    ]
    if default:
        return []
    return [
        pf.Problem(
            "the cluster has no default StorageClass, so the model cache PVC would stay Pending",
            f"set model.cache.storage_class (or target.provider_hints.storage_class) to one of: "
            f"{', '.join(names) or 'none exist; install a CSI driver and a StorageClass'}, or mark one default",
        )
    ]


def gpu_operator_wanted(kb: KubeBackend, inv: pf.GpuInventory) -> bool:
    return kb.spec.platform.gpu_operator.enabled and not inv.reporting and bool(inv.gpu_nodes)
