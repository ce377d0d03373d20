"""Pure: a Grafana dashboard (JSON model, schemaVersion 39) for one deployment, rendered from its spec.

Panels: TTFT and ITL percentiles (p50/p90/p99 from the frontend histograms, with the SLA target), request
rate by status, error ratio, queued and in-flight requests, KV-cache usage per worker, workers up, SLO
burn rate per alert window (the recording rules of runtime.render.monitoring, divided by the error budget: 1.0
spends the budget exactly over the SLO window), and revisions as annotations (a worker of a new revision
starting). Queries name the deployment directly (one dashboard per deployment) and use Grafana's
``$__rate_interval``; the data source is the ``datasource`` template variable (type prometheus).

Shipped as infra/dashboards/<name>.json (``dynadeploy dashboard``-free: ``python -m runtime.render.dashboard
spec.yaml``) and on Kubernetes as a ConfigMap labelled ``grafana_dashboard: "1"``
(runtime/render/monitoring_kube.py).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from runtime.render import monitoring

DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"


def _panel(
    pid: int,
    title: str,
    targets: list[tuple[str, str]],
    *,
    unit: str,
    x: int,
    y: int,
    thresholds: list[float] | None = None,
    w: int = 12,
) -> dict[str, Any]:
    steps = [{"color": "green", "value": None}] + [{"color": "red", "value": t} for t in thresholds or []]
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {"mode": "absolute", "steps": steps},
                "custom": {"thresholdsStyle": {"mode": "line" if thresholds else "off"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def queries(spec) -> list[dict[str, Any]]:
    """Every panel as (title, unit, [(expr, legend)], thresholds); also what the tests run."""
    d = spec.name
    sel = f'{{deployment="{d}"}}'
    workers = f'{{deployment="{d}",role=~"{monitoring.WORKER_ROLES_RE}"}}'
    sla = spec.smoke.sla
    out = []
    for title, metric, target in (
        ("Time to first token", monitoring.TTFT, sla.ttft_p90_ms / 1000),
        ("Inter-token latency", monitoring.ITL, sla.itl_p90_ms / 1000),
    ):
        out.append(
            {
                "title": f"{title} (p50/p90/p99; SLA p90 {target * 1000:g} ms)",
                "unit": "s",
                "thresholds": [target],
                "targets": [
                    (
                        f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{sel}[{RATE}])))",
                        f"p{round(q * 100)}",
                    )
                    for q in (0.5, 0.9, 0.99)
                ],
            }
        )
    out += [
        {
            "title": "Requests per second by status",
            "unit": "reqps",
            "targets": [(f"sum by (status) (rate({monitoring.REQUESTS}{sel}[{RATE}]))", "{{status}}")],
        },
        {
            "title": "Error ratio",
            "unit": "percentunit",
            "thresholds": [1 - (spec.monitoring.slo.error_objective if spec.monitoring else 0.999)],
            "targets": [
                (
                    (
                        f'(sum(rate({monitoring.REQUESTS}{{deployment="{d}",status!="success"}}[{RATE}]))'
                        " or vector(0))"
                        f" / sum(rate({monitoring.REQUESTS}{sel}[{RATE}]))"
                    ),
                    "errors",
                )
            ],
        },
        {
            "title": "Queued and in-flight requests (frontend)",
            "unit": "short",
            "targets": [
                (f"sum({monitoring.QUEUED}{sel})", "queued"),
                (f"sum({monitoring.FRONTEND}_inflight_requests{sel})", "in flight"),
            ],
        },
        {
            "title": "KV-cache usage per worker",
            "unit": "percentunit",
            "targets": [
                (
                    f'max by (program) ({{__name__="vllm:kv_cache_usage_perc",deployment="{d}"}})',
                    "{{program}}",
                )
            ],
        },
        {
            "title": "Workers up",
            "unit": "short",
            "targets": [
                (f"count by (role) (up{workers} == 1)", "{{role}}"),
                (f"sum({monitoring.MODEL_READY}{sel}) or vector(0)", "model ready"),
            ],
        },
    ]
    if spec.monitoring is not None:
        budget = {
            "ttft": 1 - spec.monitoring.slo.latency_objective,
            "itl": 1 - spec.monitoring.slo.latency_objective,
            "errors": 1 - spec.monitoring.slo.error_objective,
        }
        burn = [
            (f"{monitoring.record_name(slo, w)}{sel} / {budget[slo]:g}", f"{slo} {w}")
            for slo in ("ttft", "itl", "errors")
            for w in monitoring.windows(spec)
        ]
        rates = sorted({a.burn_rate for a in spec.monitoring.slo.burn_alerts})
        out.append(
            {
                "title": "SLO burn rate (1 = budget spent exactly over the SLO window)",
                "unit": "short",
                "thresholds": rates,
                "targets": burn,
            }
        )
    return out


def annotation_query(spec) -> str:
    workers = f'{{deployment="{spec.name}",role=~"{monitoring.WORKER_ROLES_RE}"}}'
    return f"max by (revision) (dynamo_component_uptime_seconds{workers}) < 60"


def render(spec) -> dict[str, Any] | None:
    """The dashboard JSON model; None when the spec has no monitoring section."""
    if spec.monitoring is None:
        return None
    panels = [
        _panel(
            i + 1,
            q["title"],
            q["targets"],
            unit=q["unit"],
            thresholds=q.get("thresholds"),
            x=(i % 2) * 12,
            y=(i // 2) * 8,
        )
        for i, q in enumerate(queries(spec))
    ]
    return {
        "uid": f"dynadeploy-{spec.name}"[:40],
        "title": f"dynadeploy {spec.name}",
        "tags": ["dynadeploy", "dynamo"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                    "current": {},
                }
            ]
        },
        "annotations": {
            "list": [
                {
                    "name": "Revisions",
                    "datasource": DS,
                    "enable": True,
                    "iconColor": "blue",
                    "expr": annotation_query(spec),
                    "step": "30s",
                    "titleFormat": "revision {{revision}} started",
                    "tagKeys": "revision",
                    "useValueForTime": False,
                }
            ]
        },
        "panels": panels,
    }


def main(argv: list[str] | None = None) -> int:
    """python -m runtime.render.dashboard SPEC [OUT]: write the deployment's dashboard JSON (stdout without
    OUT)."""
    from runtime.spec import load_spec

    args = sys.argv[1:] if argv is None else argv
    board = render(load_spec(args[0]))
    if board is None:
        print(f"{args[0]} has no monitoring section: no dashboard", file=sys.stderr)
        return 1
    text = json.dumps(board, indent=1, sort_keys=True) + "\n"
    if len(args) > 1:
        with open(args[1], "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
