"""Reaching the kube target's frontend: the Service's LoadBalancer address when it answers, else a
``kubectl port-forward`` (runtime/gateways/portforward.py); the serving.route entry; and the status report
(readiness, models listed, workers, ledger).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from runtime import render
from runtime.domain import naming
from runtime.domain.rollout import (
    DGD_NAME_LABEL,
)
from runtime.errors import PermanentError
from runtime.gateways import probe
from runtime.targets.base import RevisionRow, Status
from runtime.targets.kube import readiness
from runtime.targets.kube import route as kube_route
from runtime.targets.kube.common import (
    DGD_API,
    DGD_KIND,
    _pod_ready,
    _service_port,
    _timeout,
    tcp_open,
)

if TYPE_CHECKING:
    from runtime.targets.kube.backend import KubeBackend


def frontend_service(kb: KubeBackend) -> dict | None:
    return kb.kube.get("v1", "Service", naming.frontend_service_name(kb.dgd_name), kb.ns)


def lb_url(kb: KubeBackend) -> str | None:
    svc = frontend_service(kb)
    if svc is None:
        return None
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    host = next((i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")), None)
    return f"http://{host}:{_service_port(svc)}" if host else None


def route_url(kb: KubeBackend) -> str | None:
    """Where clients enter through serving.route (the Gateway's / ingress controller's address)."""
    if kb.spec.serving.route is None:
        return None
    found = kube_route.entry(kb.kube, kb.spec)
    return found[0] if found else None


def endpoint(kb: KubeBackend) -> str:
    return lb_url(kb) or (
        f"http://{naming.frontend_service_name(kb.dgd_name)}.{kb.ns}.svc.cluster.local:{render.FRONTEND_PORT}"
    )


@contextlib.contextmanager
def reach(kb: KubeBackend):
    """A base URL of the frontend for this process: the Service's LoadBalancer address when it has one
    that accepts connections, else a ``kubectl port-forward`` to the Service (stopped on exit)."""
    svc = frontend_service(kb)
    if svc is None:
        raise PermanentError(
            f"Service {kb.ns}/{naming.frontend_service_name(kb.dgd_name)} does not exist",
            hint="run the rollout stage first",
        )
    url = lb_url(kb)
    if url and tcp_open(url, 3.0):
        wait_model_listed(kb, url)
        yield url
        return
    from runtime.gateways.portforward import port_forward

    with port_forward(
        kb.kube.kubeconfig, kb.context, kb.ns, f"svc/{svc['metadata']['name']}", _service_port(svc)
    ) as local:
        wait_model_listed(kb, local)
        yield local


def wait_model_listed(kb: KubeBackend, url: str) -> None:
    """Wait (bounded) until the frontend lists the served model: a frontend can be Ready before it has
    discovered its workers (ai-dynamo/dynamo#11178). On timeout the smoke test reports what it sees."""
    probe.wait_listed(url, kb.spec.model.served(), _timeout("MODEL", 120))


def frontend_pods(kb: KubeBackend) -> list[dict]:
    """The graph's ready frontend pods (each serves its own /metrics)."""
    pods = kb.kube.list("v1", "Pod", kb.ns, labels={DGD_NAME_LABEL: kb.dgd_name})
    return [
        p
        for p in pods
        if (p["metadata"].get("labels") or {}).get(naming.ROLE_KEY) == "frontend"
        and _pod_ready(p)
        and not p["metadata"].get("deletionTimestamp")
    ]


def status(kb: KubeBackend) -> Status:
    dgd = kb.kube.get(DGD_API, DGD_KIND, kb.dgd_name, kb.ns)
    pods = kb.kube.list("v1", "Pod", kb.ns, labels={DGD_NAME_LABEL: kb.dgd_name})
    ready, _, reasons, _ = readiness.judge(kb, dgd) if dgd else (False, {}, ["no graph"], False)
    url = lb_url(kb)
    models: list[str] = []
    if url and tcp_open(url, 2.0):
        models = probe.models_at(url)
    workers = [p for p in pods if (p["metadata"].get("labels") or {}).get(naming.ROLE_KEY) != "frontend"]
    return Status(
        target=kb.spec.target.kind,
        name=kb.spec.name,
        endpoint=kb.endpoint(),
        ready=ready,
        reasons=reasons,
        models=models,
        workers_discovered=sum(1 for p in workers if _pod_ready(p)),
        processes={
            p["metadata"]["name"]: {
                "state": (p.get("status") or {}).get("phase", "?"),
                "pid": "-",
                "uptime_s": "-",
            }
            for p in pods
        },
        revisions=[RevisionRow.of(r) for r in kb.revisions()],
        details={
            "namespace": kb.ns,
            "state": ((dgd or {}).get("status") or {}).get("state"),
            "route": kb.route_url(),
        },
    )
