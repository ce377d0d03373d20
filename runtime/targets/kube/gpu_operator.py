"""The kube target's detect_gpus stage: the GPU operator, skipped when nodes already report nvidia.com/gpu
(or there are no GPU nodes); else NVIDIA's chart at the pinned version, done when the GPU nodes report
allocatable GPUs. Also the shared namespaces dynadeploy creates for cluster-wide releases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime import render
from runtime.domain import naming
from runtime.domain.rollout import (
    diagnose,
)
from runtime.errors import PermanentError
from runtime.gateways.kube import WaitTimeout
from runtime.targets.base import Accelerators
from runtime.targets.kube import preflight as pf
from runtime.targets.kube.charts import chart_source
from runtime.targets.kube.common import (
    GPU,
    OWNER_PREFIX,
    SHARED_LABEL,
    _timeout,
)

if TYPE_CHECKING:
    from runtime.targets.kube.backend import KubeBackend


def detect_gpus(kb: KubeBackend) -> Accelerators:
    spec = kb.spec
    inv = pf.gpu_inventory(kb.kube.list("v1", "Node"), kb.kube.list("v1", "Pod"), spec.name)
    engine = spec.engine(gpus_available=bool(inv.gpu_nodes))
    if inv.reporting:
        state = "skipped: nodes already report nvidia.com/gpu"
    elif not inv.gpu_nodes:
        state = "skipped: no GPU nodes"
    elif not spec.platform.gpu_operator.enabled:
        state = "skipped: platform.gpu_operator.enabled is false"
    else:
        state = install_gpu_operator(kb, inv)
        inv = pf.gpu_inventory(kb.kube.list("v1", "Node"), [], spec.name)
    return Accelerators(
        gpus=inv.total, engine=engine, gpu_operator=state, details={"gpu_nodes": inv.gpu_nodes}
    )


def install_gpu_operator(kb: KubeBackend, inv: pf.GpuInventory) -> str:
    chart = render.gpu_operator_chart(kb.spec)
    values = render.render_gpu_operator_values(kb.spec, kb.caps)
    ensure_shared_namespace(kb, chart.namespace)
    src = chart_source(chart)
    info = kb.helm.ensure(
        chart.release,
        src.ref,
        values,
        chart.namespace,
        recover=True,
        description=f"{OWNER_PREFIX}: GPU operator for {kb.spec.name}",
        **src.kwargs(),
    )
    wanted = set(inv.gpu_nodes)

    def reporting(nodes: list[dict]):
        ok = {
            n["metadata"]["name"]
            for n in nodes
            if int(str(((n.get("status") or {}).get("allocatable") or {}).get(GPU, 0) or 0)) > 0
        }
        return wanted <= ok

    def stuck(_nodes: list[dict]) -> str:
        pods = kb.kube.list("v1", "Pod", chart.namespace)
        lines = diagnose(pods, kb.kube.events_in(chart.namespace))
        return "; ".join(lines) or "device plugin pods are not ready on every GPU node"

    try:
        kb.kube.wait(
            "v1",
            "Node",
            reporting,
            timeout_s=_timeout("GPU", 600),
            tick_s=2,
            what="the GPU nodes to report allocatable nvidia.com/gpu",
            describe_stuck=stuck,
        )
    except WaitTimeout as exc:
        raise PermanentError(
            str(exc), hint=f"check the GPU operator's pods: kubectl get pods -n {chart.namespace}"
        ) from None
    driver = "with driver" if values.get("driver", {}).get("enabled") else "driver preinstalled"
    return f"gpu-operator {info.chart_version} ({driver})"


def ensure_shared_namespace(kb: KubeBackend, name: str) -> None:
    kb.kube.create_if_missing(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {naming.MANAGED_BY_KEY: naming.MANAGED_BY_VALUE, SHARED_LABEL: "true"},
            },
        }
    )
