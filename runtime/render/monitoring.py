"""Pure: Prometheus recording and alert rules for one deployment, rendered from its spec.

No I/O. The same rule groups go into a local Prometheus's rule file (runtime/render/local_monitoring.py) and
into a PrometheusRule on Kubernetes (runtime/render/monitoring_kube.py). Every series is selected by the
``deployment`` label (and ``namespace`` on Kubernetes), which the scrape configuration (local: target labels;
Kubernetes: PodMonitor relabelling from the ``nvidia.com/dynamo-graph-deployment-name`` pod label) puts on
every target, and ``role`` (frontend | worker | prefill | decode | etcd | nats).

Metric names and bucket boundaries are Dynamo 1.6.1's, read off a real ``dynamo.frontend`` serving a
``dynamo.mocker`` worker (tests/integration/local/test_monitoring_metrics.py scrapes one and checks
every name used here):

- ``dynamo_frontend_time_to_first_token_seconds`` / ``_inter_token_latency_seconds``: histograms,
  label ``model``; the boundaries are TTFT_BUCKETS_S / ITL_BUCKETS_S below (not Prometheus' defaults).
  The ITL histogram counts token intervals, not requests: its SLO is "share of intervals over target".
- ``dynamo_frontend_requests_total{status="success"|...}``: the error rate is the share not "success".
- ``dynamo_frontend_model_ready{model}``: 1 while the model is registered; the series disappears when
  the last worker goes (it is not set to 0), hence ``absent()``.
- ``dynamo_frontend_queued_requests{model}``: the frontend's queue. (``dynamo_frontend_model_workers``
  of older docs does not exist in 1.6.1: workers are counted by their scrape targets' ``up``.)
"""

from __future__ import annotations

import math
from typing import Any

from runtime.domain.histograms import ITL_BUCKETS_S, TTFT_BUCKETS_S, NoBucket, bucket_for  # noqa: F401 - NoBucket: re-exported
from runtime.domain.histograms import ms as _ms
from runtime.domain.slo import record_name, windows

FRONTEND = "dynamo_frontend"
TTFT = f"{FRONTEND}_time_to_first_token_seconds"
ITL = f"{FRONTEND}_inter_token_latency_seconds"
REQUESTS = f"{FRONTEND}_requests_total"
MODEL_READY = f"{FRONTEND}_model_ready"
QUEUED = f"{FRONTEND}_queued_requests"
WORKER_ROLES_RE = "worker|prefill|decode"

EVENT_PREFIX = "dynadeploy.alert."


def le_matcher(le: str) -> str:
    """A regex for the ``le`` label that matches the boundary as Prometheus 2 keeps it ("1", "2.2") and
    as Prometheus 3 normalises it ("1.0"), so the same rules work on either. Dots stay unescaped (a
    PromQL string has no `\\.`); in a label whose values are all numbers they can only match a dot."""
    return f"{le}0*" if "." in le else f"{le}(.0+)?"


def _sel(spec, extra: str = "") -> str:
    """The deployment's series: by ``deployment``, and on Kubernetes by ``namespace`` too (the Prometheus
    Operator puts it on every PodMonitor target), so one graph name in two namespaces never mixes in a
    cluster-wide Prometheus."""
    ns = spec.namespace()
    scope = f'deployment="{spec.name}"' + (f',namespace="{ns}"' if ns else "")
    return "{" + scope + (f",{extra}" if extra else "") + "}"


def _by(spec) -> str:
    """The labels aggregations keep: those _sel selects on, so recorded series stay selectable."""
    return "namespace, deployment" if spec.namespace() else "deployment"


def slo_targets(spec) -> dict[str, dict[str, Any]]:
    """For each latency SLO: the metric, the target, the ``le`` it is measured at and the objective."""
    mon, sla = spec.monitoring, spec.smoke.sla
    out = {}
    for slo, metric, target_ms, buckets in (
        ("ttft", TTFT, sla.ttft_p90_ms, TTFT_BUCKETS_S),
        ("itl", ITL, sla.itl_p90_ms, ITL_BUCKETS_S),
    ):
        le = bucket_for(target_ms / 1000, buckets, mon.slo.bucket_tolerance)
        out[slo] = {
            "metric": metric,
            "target_ms": target_ms,
            "le": le,
            "objective": mon.slo.latency_objective,
        }
    return out


def recording_rules(spec) -> list[dict[str, Any]]:
    by = _by(spec)
    rules = []
    for window in windows(spec):
        for slo, t in slo_targets(spec).items():
            count = f"sum by ({by}) (rate({t['metric']}_count{_sel(spec)}[{window}]))"
            in_target = _sel(spec, "le=~" + chr(34) + le_matcher(t["le"]) + chr(34))
            good = f"sum by ({by}) (rate({t['metric']}_bucket{in_target}[{window}]))"
            rules.append({"record": record_name(slo, window), "expr": f"({count} - {good}) / {count}"})
        total = f"sum by ({by}) (rate({REQUESTS}{_sel(spec)}[{window}]))"
        not_ok = _sel(spec, "status!=" + chr(34) + "success" + chr(34))
        bad = f"sum by ({by}) (rate({REQUESTS}{not_ok}[{window}]))"
        # No error series yet counts as 0 errors while there is traffic;
        # no traffic means no ratio (never pages).
        rules.append({"record": record_name("errors", window), "expr": f"({bad} or {total} * 0) / {total}"})
    return rules


def _burn_alert(spec, slo: str, name: str, budget: float, what: str) -> list[dict[str, Any]]:
    out = []
    for a in spec.monitoring.slo.burn_alerts:
        threshold = round(a.burn_rate * budget, 10)
        expr = (
            f"{record_name(slo, a.long)}{_sel(spec)} > {threshold:g}\n"
            f"and\n{record_name(slo, a.short)}{_sel(spec)} > {threshold:g}"
        )
        out.append(
            {
                "alert": name,
                "expr": expr,
                "labels": {
                    "severity": a.severity,
                    "slo": slo,
                    "deployment": spec.name,
                    "long_window": a.long,
                    "short_window": a.short,
                    "burn_rate": f"{a.burn_rate:g}",
                },
                "annotations": {
                    "summary": f"{spec.name}: {what} burns its error budget {a.burn_rate:g}x too fast",
                    "description": (
                        f"Over both {a.long} and {a.short}, more than {threshold:.4g} of {what} "
                        f"(burn rate {a.burn_rate:g} x budget {budget:g}) broke the objective."
                    ),
                },
            }
        )
    return out


def alert_rules(spec) -> list[dict[str, Any]]:
    mon, d, by = spec.monitoring, spec.name, _by(spec)
    rules = []
    for slo, t in slo_targets(spec).items():
        label = {"ttft": "TTFT", "itl": "ITL"}[slo]
        unit = "requests" if slo == "ttft" else "token intervals"
        measured = f"{_ms(t['le'])} ms" + (
            ""
            if math.isclose(float(t["le"]) * 1000, t["target_ms"])
            else f" (the bucket boundary at or just above the {t['target_ms']:g} ms target)"
        )
        for r in _burn_alert(
            spec,
            slo,
            f"Dynadeploy{label}BudgetBurn",
            1 - t["objective"],
            f"{unit} with {label} over {measured}",
        ):
            r["labels"]["target_ms"] = f"{t['target_ms']:g}"
            r["labels"]["le"] = t["le"]
            rules.append(r)
    rules += _burn_alert(
        spec, "errors", "DynadeployErrorBudgetBurn", 1 - mon.slo.error_objective, "failed requests"
    )
    ready, fe, workers = (
        _sel(spec, ""),
        _sel(spec, 'role="frontend"'),
        _sel(spec, f'role=~"{WORKER_ROLES_RE}"'),
    )
    avail = {"severity": "page", "deployment": d}
    rules += [
        {
            "alert": "DynadeployFrontendDown",
            "for": mon.availability_for,
            "labels": {**avail, "slo": "availability"},
            # absent(... == 1): no scrape target at all, or one that is down; one labelset either way.
            "expr": f"absent(up{fe} == 1)",
            "annotations": {"summary": f"{d}: the frontend's /metrics does not answer"},
        },
        {
            "alert": "DynadeployModelNotReady",
            "for": mon.availability_for,
            "labels": {**avail, "slo": "availability"},
            # The series vanishes (not 0) when the model is unregistered: absent() catches that.
            "expr": f"min by ({by}) ({MODEL_READY}{ready}) < 1\nor\nabsent({MODEL_READY}{ready})",
            "annotations": {
                "summary": f"{d}: the frontend serves no model (dynamo_frontend_model_ready absent or 0)"
            },
        },
        {
            "alert": "DynadeployNoWorkers",
            "for": mon.availability_for,
            "labels": {**avail, "slo": "availability"},
            "expr": f"absent(up{workers} == 1)",
            "annotations": {"summary": f"{d}: no worker's metrics endpoint is up"},
        },
        {
            "alert": "DynadeployQueueGrowing",
            "for": mon.queue_for,
            "labels": {"severity": "ticket", "deployment": d, "slo": "saturation"},
            "expr": (
                f"sum by ({by}) ({QUEUED}{_sel(spec)}) > {mon.queue_max}\n"
                f"and\nsum by ({by}) (deriv({QUEUED}{_sel(spec)}[{mon.queue_for}])) > 0"
            ),
            "annotations": {
                "summary": f"{d}: more than {mon.queue_max} requests queued at the frontend and growing"
            },
        },
    ]
    return rules


def rule_groups(spec) -> dict[str, Any]:
    """The Prometheus rule file (``groups:``) for the deployment; {} groups when monitoring is off."""
    mon = spec.monitoring
    if mon is None:
        return {"groups": []}
    interval = mon.evaluation_interval
    return {
        "groups": [
            {
                "name": f"dynadeploy-{spec.name}-slo-recording",
                "interval": interval,
                "rules": recording_rules(spec),
            },
            {"name": f"dynadeploy-{spec.name}-alerts", "interval": interval, "rules": alert_rules(spec)},
        ]
    }


def event_name(alertname: str, status: str) -> str:
    """The Prefect event a firing (or resolved) alert becomes: dynadeploy.alert.<AlertName>[.resolved]."""
    return EVENT_PREFIX + alertname + ("" if status == "firing" else f".{status}")
