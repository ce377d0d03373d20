"""The spec's optional ``monitoring:`` section: Prometheus, SLO objectives and burn-rate alert windows.

Pure (stdlib, pydantic, runtime.domain), like the rest of runtime/spec. The latency targets themselves stay where they were,
in ``smoke.sla`` (``ttft_p90_ms``, ``itl_p90_ms``): the alerts watch the same numbers the smoke test
checks. What the SLA did not say and a burn-rate alert needs is added here: the objective (the share
of requests that must meet the target over the SLO window), the window itself, and the
multiwindow/multi-burn-rate alert pairs (Google SRE workbook, chapter 5).

The default latency objective is 0.9, the SLA's own percentile: ``ttft_p90_ms`` promises that 90% of
requests meet the target, so 10% over it is within contract and must not page (with 0.99 the 6h pair
paged at 6% over target, a deployment that passes its smoke test). A 10% budget cannot take the
workbook's 14.4x/6x pairs (14.4 x 10% is more than every request), so the default pairs are 1h/5m at 5x
(half of the requests over target for an hour) and 6h/30m at 3x (30% over target for six hours), both
page. They apply to the error objective (0.999) too: 0.5% errors for an hour or 0.3% for six hours
page, stricter than the workbook's 1.44%/0.6%, which an inference endpoint with no retries can afford.
A spec that wants stricter latency alerts sets ``latency_objective: 0.99`` and the workbook's pairs.

Prometheus cannot count "requests over 2000 ms" from a histogram whose buckets are 1 s and 2.2 s: it
can only count requests at a bucket boundary. So each target is measured at a boundary of Dynamo
1.6.1's frontend histogram (runtime/domain/histograms.py holds them, checked against a real frontend): an
exact boundary, or the next one up when it is within ``bucket_tolerance`` of the target (2000 ms ->
2.2 s is 10% looser, and the rule's annotation says so); anything else is a spec issue naming the
boundaries around the target.

Default: a spec without ``monitoring:`` runs no Prometheus and its spec hash is unchanged (the section
is in ``runtime.spec.models.ADDED_LATER``). With ``monitoring:`` present, ``prometheus`` defaults to true:
writing the section is asking for monitoring. Off by default because a local Prometheus + Alertmanager
are two more long-running processes and four more ports per deployment on a machine that may run
several deployments, and the smoke test already checks the SLA once per rollout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field

from runtime.domain.histograms import ITL_BUCKETS_S, TTFT_BUCKETS_S, NoBucket, bucket_for
from runtime.domain.slo import duration_s
from runtime.spec.base import Issue, StrictModel, at, matching
from runtime.spec.sections import SlaSpec

__all__ = ["BurnAlert", "MonitoringSpec", "SloSpec", "duration_s", "monitoring_issues"]

_DURATION = r"^([0-9]+(ms|s|m|h|d|w))+$"
Duration = Annotated[str, matching(_DURATION, "a Prometheus duration", "5m")]


class BurnAlert(StrictModel):
    """One multiwindow burn-rate alert: fires while both windows burn the budget ``burn_rate`` times
    faster than the objective allows (the short window makes it stop soon after the burn stops)."""

    long: Duration = Field(description="The long window, a Prometheus duration (1h); the alert's evidence.")
    short: Duration = Field(
        description="The short window (about 1/12 of long, e.g. 5m); ends the alert soon after the burn."
    )
    burn_rate: float = Field(
        gt=0, description="How many times faster than the objective allows the budget burns."
    )
    severity: Literal["page", "ticket"] = Field("page", description="The alert's severity label.")

    def _issues(self) -> Iterator[Issue]:
        if duration_s(self.short) >= duration_s(self.long):
            yield at(
                "short",
                f"the short window {self.short} is not shorter than the long window {self.long}",
                "set short to about 1/12 of long, e.g. long: 1h, short: 5m",
            )


# For the 10% budget of the default latency objective (see the module docstring).
DEFAULT_BURN_ALERTS = [
    BurnAlert(long="1h", short="5m", burn_rate=5),
    BurnAlert(long="6h", short="30m", burn_rate=3),
]


class SloSpec(StrictModel):
    """The service level objectives the burn-rate alerts watch (targets: smoke.sla)."""

    # 0.9: the SLA's percentile (p90), so the alerts page on what the SLA calls a breach, not before.
    latency_objective: float = Field(
        default=0.9,
        gt=0,
        lt=1,
        description=(
            "Share of requests (TTFT) or token intervals (ITL) that must meet smoke.sla's target over the window."
        ),
    )
    error_objective: float = Field(
        default=0.999, gt=0, lt=1, description="Share of requests that must succeed."
    )
    window: Duration = Field("30d", description="The SLO window, a Prometheus duration.")
    burn_alerts: list[BurnAlert] = Field(
        default_factory=lambda: list(DEFAULT_BURN_ALERTS),
        min_length=1,
        description=("Multiwindow burn-rate alerts. Default: 1h/5m at 5x and 6h/30m at 3x, both page."),
    )
    bucket_tolerance: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description=(
            "How much looser than a latency target the histogram boundary it is measured at may be (0: exact only)."
        ),
    )

    def _issues(self) -> Iterator[Issue]:
        window = duration_s(self.window)
        for i, alert in enumerate(self.burn_alerts):
            if duration_s(alert.long) > window:
                yield at(
                    f"burn_alerts[{i}].long",
                    f"the long window {alert.long} is longer than the SLO window {self.window}",
                    "shorten the alert window or lengthen slo.window",
                )
            for name in ("latency_objective", "error_objective"):
                budget = 1 - getattr(self, name)
                if alert.burn_rate * budget > 1:
                    yield at(
                        f"burn_alerts[{i}].burn_rate",
                        f"burn rate {alert.burn_rate} x the error budget {budget:g} of {name} is more than "
                        "100% of requests, so the alert could never fire",
                        f"lower burn_rate to at most {1 / budget:g} or raise {name}",
                    )


class MonitoringSpec(StrictModel):
    """Prometheus, SLO burn-rate alerts and what an alert does. Local: a supervised Prometheus + Alertmanager
    per deployment; Kubernetes: PodMonitors + PrometheusRules for the cluster's Prometheus Operator (when preflight
    finds it)."""

    prometheus: bool = Field(True, description="Scrape the deployment and evaluate its alert rules.")
    scrape_interval: Duration = Field(
        "15s", description="How often Prometheus scrapes, a Prometheus duration."
    )
    evaluation_interval: Duration = Field("15s", description="How often the rules are evaluated.")
    slo: SloSpec = Field(SloSpec(), description="Objectives and burn-rate alerts.")
    availability_for: Duration = Field(
        "1m",
        description=(
            "How long the model may be not ready, without workers or the frontend down before an alert."
        ),
    )
    queue_max: int = Field(
        default=16, ge=0, description="Requests queued at the frontend that count as a backlog."
    )
    queue_for: Duration = Field("5m", description="How long a backlog lasts before an alert.")
    alert_events: bool = Field(
        True,
        description=(
            "Firing alerts become Prefect events dynadeploy.alert.<AlertName> (local: through Alertmanager)."
        ),
    )
    # Alert events relate to this deployment, so the automation in infra/automations/slo-alert-rollback.yaml
    # can start it (`source: inferred`).
    rollback_deployment: (
        Annotated[
            str,
            matching(
                r"^[^/\s]+/[^/\s]+$", "a Prefect deployment name 'flow/deployment'", "rollback/rollback-local"
            ),
        ]
        | None
    ) = Field(
        None,
        description=(
            "The Prefect deployment that rolls this target back, 'flow/deployment' (e.g. rollback/rollback-local)."
        ),
    )
    auto_rollback: bool = Field(
        False, description="Roll back on an alert without waiting for approval in the UI."
    )
    kube_labels: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Kubernetes: extra labels on the PodMonitors, PrometheusRule and dashboard ConfigMap, for a Prometheus "
            "whose selectors want them (kube-prometheus-stack: {release: <its release name>})."
        ),
    )

    def _issues(self) -> Iterator[Issue]:
        scrape = duration_s(self.scrape_interval)
        for i, alert in enumerate(self.slo.burn_alerts):
            # Grafana's $__rate_interval rule: rate() needs at least four scrapes in its window to be
            # robust to a missed scrape or a scrape landing just outside the window (two leave it empty).
            if duration_s(alert.short) < 4 * scrape:
                yield at(
                    f"slo.burn_alerts[{i}].short",
                    f"the short window {alert.short} holds fewer than four scrapes ({self.scrape_interval} apart), "
                    "so rate() over it is empty or jumps whenever a scrape is missed",
                    f"make the short window at least {4 * scrape:g}s or lower scrape_interval",
                )


def monitoring_issues(mon: MonitoringSpec | None, sla: SlaSpec) -> Iterator[Issue]:
    """Rules across sections: each SLA target must sit at (or just under) a histogram bucket boundary.
    Paths are from the top of the spec."""
    if mon is None:
        return
    for field, target_ms, buckets in (
        ("ttft_p90_ms", sla.ttft_p90_ms, TTFT_BUCKETS_S),
        ("itl_p90_ms", sla.itl_p90_ms, ITL_BUCKETS_S),
    ):
        try:
            bucket_for(target_ms / 1000, buckets, mon.slo.bucket_tolerance)
        except NoBucket as exc:
            yield at(f"smoke.sla.{field}", str(exc), exc.fix(field))
