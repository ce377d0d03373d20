"""What every stage module of the kube target shares (runtime/targets/kube/backend.py is the facade): the
Dynamo kinds and the project's marks on the cluster, the wait bounds (``DYNADEPLOY_KUBE_<WHAT>_TIMEOUT_S``),
the cached model, one Helm gateway per cluster and thread, and small readers of pods and Services.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from runtime import render, settings
from runtime.gateways.portforward import tcp_open  # noqa: F401 - re-exported for the stage modules and canary

DGD_API, DGD_KIND = "nvidia.com/v1beta1", "DynamoGraphDeployment"
DGDSA_KIND = "DynamoGraphDeploymentScalingAdapter"
CRD_API, CRD_KIND = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
CACHED_ANNOTATION = "dynadeploy.io/cached-model"  # on the cache PVC: <model id>@<revision> once downloaded
SHARED_LABEL = "dynadeploy.io/shared"  # on namespaces dynadeploy created for shared releases
OWNER_PREFIX = "dynadeploy"  # helm release description of releases dynadeploy installed
MARKER_MANAGER = "dynadeploy-cache-marker"
GPU = "nvidia.com/gpu"
log = logging.getLogger("dynadeploy.kube")
TRACK_KEY, BRIDGE = "dynadeploy.io/track", "bridge"  # the label of a graph that bridges a replacement


def _timeout(name: str, default: float) -> float:
    return settings.kube_timeout_s(name, default)


def _plain(values: Any) -> Any:
    return json.loads(json.dumps(values or {}, default=str))


@dataclass(frozen=True)
class KubeModel:
    """The model cache of a Kubernetes target (what the rollout mounts)."""

    model_id: str
    revision: str | None
    reused: bool
    pvc: str
    path: str


_HELMS: dict[tuple, Any] = {}
_HELMS_LOCK = threading.Lock()


def component_set(dgd: dict) -> set[tuple[str, str]]:
    """(name, type) of every component of a graph: what the operator does not let change in place."""
    return {(c.get("name", ""), c.get("type", "")) for c in (dgd.get("spec") or {}).get("components") or []}


def _helm_for(kubeconfig: str, context: str | None):
    """One Helm gateway per cluster and thread (its client runs ``helm version`` once when built)."""
    from runtime.gateways.helm import Helm

    key = (kubeconfig, context, threading.get_ident())
    with _HELMS_LOCK:
        if key not in _HELMS:
            _HELMS[key] = Helm(kubeconfig, context)
        return _HELMS[key]


def _warn(message: str) -> None:
    try:
        from prefect import get_run_logger

        get_run_logger().warning(message)
    except Exception:
        import logging

        logging.getLogger("dynadeploy").warning(message)


_NAMESPACED_KINDS = [
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("batch/v1", "Job"),
    ("v1", "Secret"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("v1", "PersistentVolumeClaim"),
    (render.route.GATEWAY_API, "HTTPRoute"),
    (render.route.INGRESS_API, "Ingress"),
]


def _job_env(job: dict) -> dict:
    containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return {e.get("name"): e.get("value") for c in containers for e in c.get("env") or []}


def _service_port(svc: dict) -> int:
    ports = (svc.get("spec") or {}).get("ports") or []
    port = next((p for p in ports if p.get("name") == "http"), ports[0] if ports else {})
    return int(port.get("port") or render.FRONTEND_PORT)


def _pod_ready(pod: dict) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )
