"""The kube target's install_platform stage: the Dynamo platform chart pinned to the release (0.x: the CRDs
chart first), CRDs applied explicitly before an install/upgrade; an existing cluster-wide operator of the same
release line is used as is; done when the operator Deployment is ready and the DGD CRD is Established.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime import render
from runtime.domain import naming
from runtime.domain.rollout import (
    assess_deployment,
    crd_established,
    diagnose,
)
from runtime.errors import PermanentError, TransientError
from runtime.gateways.kube import WaitTimeout
from runtime.targets.base import PlatformEndpoint
from runtime.targets.kube import gpu_operator
from runtime.targets.kube import preflight as pf
from runtime.targets.kube.charts import chart_source
from runtime.targets.kube.common import (
    CRD_API,
    CRD_KIND,
    OWNER_PREFIX,
    _plain,
    _timeout,
)

if TYPE_CHECKING:
    from runtime.targets.kube.backend import KubeBackend


def install_platform(kb: KubeBackend) -> PlatformEndpoint:
    spec = kb.spec
    endpoint = (
        f"http://{naming.frontend_service_name(kb.dgd_name)}.{kb.ns}.svc.cluster.local:{render.FRONTEND_PORT}"
    )
    operators = pf.find_operators(kb.kube)
    reuse = pf.reusable_operator(spec, operators)
    if reuse is not None:
        wait_platform(kb, reuse.release, reuse.namespace)
        return PlatformEndpoint(endpoint=endpoint, changed=False, note=f"using the existing {reuse}")
    problems = pf.operator_problems(spec, operators)
    if problems:  # the cluster changed since the preflight
        pf.raise_problems(problems, kb.where())
    values = render.render_platform_values(spec, kb.caps)
    charts = render.platform_charts(spec)
    changed = False
    for chart in charts:
        if chart.namespace != kb.ns:
            gpu_operator.ensure_shared_namespace(kb, chart.namespace)
        if chart.name == "dynamo-crds":
            if kb.kube.get(CRD_API, CRD_KIND, pf.DGD_CRD) is None:
                src = chart_source(chart)
                kb.helm.ensure(
                    chart.release,
                    src.ref,
                    render.render_crds_values(spec),
                    chart.namespace,
                    recover=True,
                    description=f"{OWNER_PREFIX}: Dynamo CRDs",
                    **src.kwargs(),
                )
                changed = True
            continue
        changed |= ensure_platform_release(kb, chart, values)
    platform = charts[-1]
    wait_platform(kb, platform.release, platform.namespace)
    state = "installed/upgraded" if changed else "unchanged"
    return PlatformEndpoint(
        endpoint=endpoint,
        changed=changed,
        note=f"dynamo-platform {platform.version} in {platform.namespace} ({state})",
    )


def ensure_platform_release(kb: KubeBackend, chart, values: dict) -> bool:
    current = kb.helm.current(chart.release, chart.namespace)
    if (
        current is not None
        and current.status == "deployed"
        and current.chart == chart.name
        and current.chart_version == chart.version
        and current.values == _plain(values)
    ):
        return False
    src = chart_source(chart)
    applied = False
    # A 1.x namespace-restricted install brings no CRDs (upgradeCRD: false): the cluster-wide operator's
    # CRDs serve it (preflight checked they are there), so only a cluster-wide install applies them.
    manages_crds = kb.spec.platform.operator_mode == "cluster"
    if int(chart.version.split(".")[0]) >= 1 and manages_crds:
        # Helm never upgrades what is in crds/ and skips CRDs that already exist: apply them first, so an
        # upgrade (or a cluster with older CRDs) gets the chart's CRDs before its operator.
        docs = kb.helm.template(
            src.ref, chart.release, values, chart.namespace, include_crds=True, **src.kwargs()
        )
        crds = [d for d in docs if d.get("kind") == CRD_KIND]
        for crd in crds:
            apply_crd(kb, crd)
        applied = bool(crds)
    kb.helm.ensure(
        chart.release,
        src.ref,
        values,
        chart.namespace,
        recover=True,
        skip_crds=applied,
        description=f"{OWNER_PREFIX}: Dynamo platform ({kb.spec.platform.operator_mode} mode)",
        **src.kwargs(),
    )
    return True


def apply_crd(kb: KubeBackend, crd: dict) -> None:
    body = {k: v for k, v in crd.items() if k != "status"}
    name = body["metadata"]["name"]
    meta = dict(body["metadata"])
    live = kb.kube.get(CRD_API, CRD_KIND, name)
    live_labels = ((live or {}).get("metadata") or {}).get("labels") or {}
    # Marked as dynadeploy's when it creates the CRD (teardown deletes only those); the mark is
    # re-applied on every apply, or server-side apply would drop it.
    if live is None or live_labels.get(naming.MANAGED_BY_KEY) == naming.MANAGED_BY_VALUE:
        meta["labels"] = {**(meta.get("labels") or {}), naming.MANAGED_BY_KEY: naming.MANAGED_BY_VALUE}
    body["metadata"] = meta
    kb.kube.apply(body, force=True)
    try:
        kb.kube.wait(
            CRD_API,
            CRD_KIND,
            lambda objs: bool(objs) and crd_established(objs[0]),
            name=name,
            timeout_s=_timeout("CRD", 120),
            what=f"CRD {name} to be Established",
        )
    except WaitTimeout as exc:
        raise TransientError(str(exc)) from None


def wait_platform(kb: KubeBackend, release: str, namespace: str) -> None:
    name = f"{release}-dynamo-operator-controller-manager"

    def ready(objs: list[dict]):
        return (
            bool(objs)
            and assess_deployment(objs[0]).done
            and crd_established(kb.kube.get(CRD_API, CRD_KIND, pf.DGD_CRD))
        )

    def stuck(objs: list[dict]) -> str:
        verdict = assess_deployment(objs[0] if objs else None)
        crd = (
            ""
            if crd_established(kb.kube.get(CRD_API, CRD_KIND, pf.DGD_CRD))
            else f"; CRD {pf.DGD_CRD} is not Established"
        )
        pods = kb.kube.list("v1", "Pod", namespace)
        why = diagnose(
            [p for p in pods if p["metadata"]["name"].startswith(name)], kb.kube.events_in(namespace)
        )
        return f"{verdict}{crd}" + (f"; {'; '.join(why)}" if why else "")

    try:
        kb.kube.wait(
            "apps/v1",
            "Deployment",
            ready,
            name=name,
            namespace=namespace,
            timeout_s=_timeout("PLATFORM", 600),
            tick_s=1,
            what=f"the Dynamo operator {namespace}/{name}",
            describe_stuck=stuck,
        )
    except WaitTimeout as exc:
        raise PermanentError(str(exc), hint=f"kubectl describe deployment {name} -n {namespace}") from None
