"""When a graph is ready: the readiness contract (runtime/domain/rollout.py) on the DGD plus the Deployments
behind each component, waited for with a bounded watch; a stuck graph is described by its pods and events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.domain.rollout import (
    DGD_NAME_LABEL,
    assess_deployment,
    assess_dgd,
    diagnose,
)
from runtime.errors import RolloutFailed
from runtime.gateways.kube import WaitTimeout
from runtime.targets.kube.common import (
    DGD_API,
    DGD_KIND,
    _timeout,
)

if TYPE_CHECKING:
    from runtime.targets.kube.backend import KubeBackend


def judge(kb: KubeBackend, dgd: dict | None) -> tuple[bool, dict, list[str], bool]:
    """(ready, observed, reasons, failed) by the readiness contract plus the graph's Deployments."""
    pods = kb.kube.list("v1", "Pod", kb.ns, labels={DGD_NAME_LABEL: kb.dgd_name})
    verdict = assess_dgd(dgd, pods)
    reasons = list(verdict.reasons)
    workloads: dict[str, dict] = {}
    if verdict.done and dgd is not None:
        # The contract reads the operator's summary; the summary can be computed from Deployments
        # whose own status is still from the previous generation (ai-dynamo/dynamo#3567), so the
        # Deployments behind each component are judged too.
        status = dgd.get("status") or {}
        for comp, st in (status.get("components") or status.get("services") or {}).items():
            if (st.get("componentKind") or "Deployment") != "Deployment":
                continue
            for dep_name in st.get("componentNames") or []:
                dep = kb.kube.get("apps/v1", "Deployment", dep_name, kb.ns)
                workloads[dep_name] = (dep or {}).get("status") or {}
                reasons += [f"{comp}: {r}" for r in assess_deployment(dep).reasons]
    observed = {
        "status": (dgd or {}).get("status") or {},
        "generation": ((dgd or {}).get("metadata") or {}).get("generation"),
        "deployments": workloads,
        "pods": sorted(p["metadata"]["name"] for p in pods),
    }
    return (not reasons and verdict.done, observed, reasons, verdict.failed)


def wait_ready(kb: KubeBackend, number: int) -> tuple[int, dict]:
    polls = 0
    last: dict = {}

    def check(objs: list[dict]):
        nonlocal polls, last
        polls += 1
        ready, observed, reasons, failed = judge(kb, objs[0] if objs else None)
        last = {"reasons": reasons, "observed": observed}
        if failed:
            raise RolloutFailed(
                stuck_message(kb, number, reasons, "failed"),
                hint=f"kubectl describe dgd {kb.dgd_name} -n {kb.ns}",
            )
        return observed if ready else None

    try:
        observed = kb.kube.wait(
            DGD_API,
            DGD_KIND,
            check,
            name=kb.dgd_name,
            namespace=kb.ns,
            timeout_s=_timeout("ROLLOUT", 900),
            tick_s=1.0,
            what=f"revision {number} of {kb.ns}/{kb.dgd_name}",
        )
    except WaitTimeout:
        raise RolloutFailed(
            stuck_message(
                kb, number, last.get("reasons") or [], f"is not ready after {_timeout('ROLLOUT', 900):.0f}s"
            ),
            hint=f"kubectl describe dgd {kb.dgd_name} -n {kb.ns}; kubectl get pods -n {kb.ns}",
        ) from None
    return polls, observed


def stuck_message(kb: KubeBackend, number: int, reasons: list[str], what: str) -> str:
    pods = kb.kube.list("v1", "Pod", kb.ns, labels={DGD_NAME_LABEL: kb.dgd_name})
    why = diagnose(pods, kb.kube.events_in(kb.ns))
    text = f"revision {number} of {kb.ns}/{kb.dgd_name} {what}: {'; '.join(reasons) or 'no reason reported'}"
    return text + (f"; stuck: {'; '.join(why)}" if why else "")
