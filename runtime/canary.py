"""Pure: the canary's traffic plan and its gate.

The gate compares candidate against baseline on identical load (runtime.sla.compare: TTFT/ITL p90
regressions, error rates, an inconclusive outcome when either side has too few samples) and, while
real traffic is shifted, also per worker group from the workers' own Prometheus histograms
(dynamo_work_handler_time_to_first_response_seconds), so a slow candidate is caught even when it
only takes a share of the stable endpoint's traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from runtime import metrics, sla


@dataclass(frozen=True)
class Step:
    percent: int  # what the spec asked for
    share: float  # the share of real traffic the candidate actually gets (0 = side by side only)
    canary_workers: int = 0  # local target: candidate workers serving beside the stable ones

    @property
    def shifted(self) -> bool:
        return self.share > 0

    def label(self) -> str:
        return f"{self.percent}%" if self.shifted else "side-by-side"


@dataclass(frozen=True)
class Reach:
    """Where a canary's analysis sends load and reads metrics, valid while the mechanics' ``reach`` lasts."""

    stable: str  # the stable graph's frontend
    candidate: str | None  # the candidate graph's frontend (None once it is gone)
    entry: str  # where real traffic enters (a route, or the stable frontend when routing happens behind it)
    entry_host: str | None  # the Host header the entry needs (a route's hostname), None: the URL's
    groups: dict[str, list[str]]  # "stable"/"candidate" -> the /metrics endpoints whose TTFT the gate reads
    ttft_metrics: tuple[str, ...]  # the TTFT histogram names to read from those, first found wins


def side_by_side_plan() -> list[Step]:
    return [Step(0, 0.0)]


def traffic_plan(steps: list[int], stable_workers: int, can_shift: bool) -> list[Step]:
    """Steps before promotion. Dynamo's router spreads requests over instances, so locally a share
    is made by worker count: k candidate workers beside n stable ones take k/(n+k) of the traffic.
    Each step gets the smallest k reaching its percentage; duplicates collapse. 100% is promotion.
    """
    plan = side_by_side_plan()
    if not can_shift:
        return plan
    for pct in steps:
        if pct >= 100:
            break
        k = max(1, math.ceil(pct * stable_workers / (100 - pct)))
        if plan[-1].canary_workers != k:
            plan.append(Step(pct, round(k / (stable_workers + k), 3), k))
    return plan


def weighted_plan(steps: list[int]) -> list[Step]:
    """Steps before promotion where a traffic layer splits by weight: each percentage as asked."""
    return side_by_side_plan() + [Step(pct, pct / 100) for pct in steps if pct < 100]


# Worker histograms have coarse buckets (..., 4.7, 10, 22 ms): a p90 read from them moves by whole
# buckets, so differences below this never count as a regression.
WORKER_NOISE_FLOOR_MS = 10.0

# Time to first response as each worker measures it (Dynamo's own, any engine); vLLM's name second.
WORKER_TTFT = ("dynamo_work_handler_time_to_first_response_seconds", "vllm:time_to_first_token_seconds")


def group_ttft_p90_ms(before: dict[str, str], after: dict[str, str],
                      names: tuple[str, ...] = WORKER_TTFT) -> float | None:
    """TTFT p90 over an analysis window for a group of processes (workers, or frontends), from their own
    /metrics pages scraped before and after the window, keyed by endpoint."""
    for name in names:
        merged: dict[float, float] = {}
        for url, text in after.items():
            d = metrics.delta(metrics.histogram(metrics.parse(text), name),
                              metrics.histogram(metrics.parse(before.get(url, "")), name))
            for le, count in d.items():
                merged[le] = merged.get(le, 0.0) + count
        q = metrics.quantile(merged, 0.9)
        if q is not None:
            return q * 1000
    return None


def shifted_gate(report: sla.LoadReport, stable_p90: float | None, canary_p90: float | None,
                 canary_spec) -> sla.Verdict:
    """The gate while the candidate serves real traffic: no request may fail, and the candidate's TTFT p90
    (its workers' or its frontends') may not regress past the allowed fraction of stable's."""
    breaches, notes = [], []
    if report.errors:
        breaches.append(f"{report.errors} of {report.count} requests failed at the stable endpoint")
    if stable_p90 is None or canary_p90 is None:
        notes.append("no TTFT samples from one side's own metrics in this window")
        status = "fail" if breaches else "inconclusive"
        return sla.Verdict(status, breaches, notes)
    limit = stable_p90 * (1 + canary_spec.max_ttft_regression) + WORKER_NOISE_FLOOR_MS
    if canary_p90 > limit:
        breaches.append(f"candidate ttft p90 {canary_p90:.1f} ms > {limit:.1f} ms "
                        f"(stable {stable_p90:.1f} ms + {canary_spec.max_ttft_regression:.0%})")
    return sla.Verdict("fail" if breaches else "pass", breaches, notes)
