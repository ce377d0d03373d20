"""Pure: the Prometheus Operator objects of one deployment on Kubernetes, from the same rules as locally.

- two PodMonitors (``monitoring.coreos.com/v1``): the frontend's ``http`` port and every worker's
  ``system`` port (the port names the Dynamo operator gives them), selected by the pod labels the
  Dynamo operator sets (``nvidia.com/dynamo-graph-deployment-name``, ``nvidia.com/dynamo-component-type``),
  relabelled so that every series carries ``deployment`` and ``role`` like the local scrape does;
- one PrometheusRule holding runtime.render.monitoring.rule_groups(spec) unchanged;
- one ConfigMap with the Grafana dashboard (runtime/render/dashboard.py), labelled ``grafana_dashboard: "1"``
  (the kube-prometheus-stack Grafana sidecar's default label), when there is a dashboard to ship.

The Dynamo operator makes PodMonitors of its own (dynamo-frontend/dynamo-worker) when these CRDs exist;
they carry no ``deployment`` label, so the rules never count a series twice. ``monitoring.kube_labels``
go on every object, for a Prometheus whose podMonitorSelector/ruleSelector wants them (kube-prometheus-
stack installed with default values selects ``release: <its release name>``).
"""

from __future__ import annotations

from typing import Any

from runtime.render import monitoring
from runtime.render.common import labels as dynadeploy_labels
from runtime.render.common import namespace_of

API = "monitoring.coreos.com/v1"
PODMONITORS_CRD = "podmonitors.monitoring.coreos.com"
PROMETHEUSRULES_CRD = "prometheusrules.monitoring.coreos.com"
CRDS = (PODMONITORS_CRD, PROMETHEUSRULES_CRD)
GRAPH_LABEL = "nvidia.com/dynamo-graph-deployment-name"
TYPE_LABEL = "nvidia.com/dynamo-component-type"
WORKER_TYPES = ["worker", "prefill", "decode"]


def _meta_label(label: str) -> str:
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in label)


def _labels(spec) -> dict[str, str]:
    return {**dynadeploy_labels(spec), **spec.monitoring.kube_labels}


def _podmonitor(spec, suffix: str, types: list[str], port: str) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "PodMonitor",
        "metadata": {
            "name": f"{spec.name}-{suffix}",
            "namespace": namespace_of(spec),
            "labels": _labels(spec),
        },
        "spec": {
            "namespaceSelector": {"matchNames": [namespace_of(spec)]},
            "selector": {
                "matchLabels": {GRAPH_LABEL: spec.name},
                "matchExpressions": [{"key": TYPE_LABEL, "operator": "In", "values": types}],
            },
            "podMetricsEndpoints": [
                {
                    "port": port,
                    "path": "/metrics",
                    "interval": spec.monitoring.scrape_interval,
                    "relabelings": [
                        {
                            "action": "replace",
                            "sourceLabels": [_meta_label(GRAPH_LABEL)],
                            "targetLabel": "deployment",
                        },
                        {
                            "action": "replace",
                            "sourceLabels": [_meta_label(TYPE_LABEL)],
                            "targetLabel": "role",
                        },
                    ],
                }
            ],
        },
    }


def owned(spec) -> list[tuple[str, str, dict[str, str]]]:
    """(apiVersion, kind, label selector) of every monitoring object render() may have made for this
    deployment: what to delete when ``monitoring:`` (or ``monitoring.prometheus``) goes from the spec. The
    ConfigMap selector includes ``grafana_dashboard``, so the deployment's other ConfigMaps stay."""
    own = dynadeploy_labels(spec)
    return [
        (API, "PodMonitor", own),
        (API, "PrometheusRule", own),
        ("v1", "ConfigMap", {**own, "grafana_dashboard": "1"}),
    ]


def render(spec, dashboard: dict | None = None) -> list[dict[str, Any]]:
    """The objects to apply (empty when the spec has no monitoring or monitoring.prometheus is off)."""
    if spec.monitoring is None or not spec.monitoring.prometheus:
        return []
    ns = namespace_of(spec)
    objs = [
        _podmonitor(spec, "frontend", ["frontend"], "http"),
        _podmonitor(spec, "workers", WORKER_TYPES, "system"),
        {
            "apiVersion": API,
            "kind": "PrometheusRule",
            "metadata": {"name": f"{spec.name}-slo", "namespace": ns, "labels": _labels(spec)},
            "spec": {"groups": monitoring.rule_groups(spec)["groups"]},
        },
    ]
    if dashboard is not None:
        import json

        objs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": f"{spec.name}-dashboard",
                    "namespace": ns,
                    "labels": {**_labels(spec), "grafana_dashboard": "1"},
                },
                "data": {f"dynadeploy-{spec.name}.json": json.dumps(dashboard, indent=1, sort_keys=True)},
            }
        )
    return objs


def absent_message(missing: list[str]) -> str:
    return (
        f"the cluster has no Prometheus Operator (CRDs {', '.join(missing)} missing): no PodMonitors or "
        "PrometheusRule applied, so nothing scrapes this deployment or evaluates its SLO alerts. Install "
        "kube-prometheus-stack (helm install prometheus prometheus-community/kube-prometheus-stack -n "
        "monitoring --create-namespace) and deploy again, or set monitoring.prometheus: false"
    )
