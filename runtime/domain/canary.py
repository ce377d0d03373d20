"""Pure: the canary gate, its verdict on each step of the traffic plan.

The gate compares candidate against baseline on identical load (runtime.domain.sla.compare: TTFT/ITL p90
regressions, error rates, an inconclusive outcome when either side has too few samples) and, while
real traffic is shifted, also per worker group from the workers' own Prometheus histograms
(dynamo_work_handler_time_to_first_response_seconds), so a slow candidate is caught even when it
only takes a share of the stable endpoint's traffic.

The traffic plan the gate judges step by step is runtime/domain/canary_plan.py; the tests and histogram
reading it builds on are runtime/domain/canary_stats.py. Both are importable from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.domain import sla
from runtime.domain.canary_plan import Reach, Step, side_by_side_plan, traffic_plan, weighted_plan
from runtime.domain.canary_stats import (
    BOOTSTRAP_RESAMPLES,
    WORKER_TTFT,
    _pct,
    bootstrap_diff,
    bootstrap_p90_diff,
    bucket_samples,
    fisher_greater,
    group_ttft_buckets,
    group_ttft_p90_ms,
    mann_whitney_greater,
)

__all__ = [
    "BOOTSTRAP_RESAMPLES", "DEFAULT_CONFIDENCE", "DEFAULT_HOLDS", "DEFAULT_ITL_FLOOR_MS", "DEFAULT_TTFT_FLOOR_MS",
    "P90_MIN_SAMPLES", "WORKER_NOISE_FLOOR_MS", "WORKER_TTFT",
    "GateSettings", "MetricJudgement", "Reach", "Step",
    "bootstrap_diff", "bootstrap_p90_diff", "bucket_samples", "fisher_greater", "group_ttft_buckets",
    "group_ttft_p90_ms", "judge_metric", "latency_samples", "mann_whitney_greater", "p90s_ms", "pool",
    "shifted_gate", "side_by_side_gate", "side_by_side_plan", "traffic_plan", "weighted_plan",
]  # fmt: skip

# Worker histograms have coarse buckets (..., 4.7, 10, 22 ms): a p90 read from them moves by whole
# buckets, so differences below this never count as a regression.
WORKER_NOISE_FLOOR_MS = 10.0


def shifted_gate(
    report: sla.LoadReport,
    stable_p90: float | None,
    canary_p90: float | None,
    canary_spec,
    stable_buckets: dict[float, float] | None = None,
    canary_buckets: dict[float, float] | None = None,
    latest: sla.LoadReport | None = None,
) -> sla.Verdict:
    """The gate while the candidate serves real traffic: no request may fail, and the candidate's TTFT p90
    (its workers' or its frontends') may not regress past the allowed fraction of stable's plus the
    buckets' noise floor. With the histograms at hand the regression must also show in a Mann-Whitney
    rank test on the bucketed observations; a p90 over the limit the test does not confirm is
    inconclusive (the step measures again, pooling its windows). ``report`` is the step's pooled load,
    ``latest`` its last window: a single failed request holds the step, a second fails it, and one not
    repeated in a later window is tolerated."""
    breaches, notes = [], []
    held = False
    max_rate = sla.read_field(canary_spec, "max_error_rate", 0.0)
    if report.errors and report.error_rate > max_rate:
        text = (
            f"{report.errors} of {report.count} requests failed at the stable endpoint "
            f"(first: {report.first_error()})"
        )
        if report.errors > 1:
            breaches.append(text)
        elif latest is not None and latest.errors == 0:
            notes.append(f"{text}; none since, in {latest.count} more: tolerated as a one-off")
        else:  # one failure on a shared machine can be chance: measure again before judging
            held = True
            notes.append(f"{text}; measuring again (a second failure fails the step)")
    if stable_p90 is None or canary_p90 is None:
        notes.append("no TTFT samples from one side's own metrics in this window")
        status: sla.Status = "fail" if breaches else "inconclusive"
        return sla.Verdict(status, breaches, notes)
    limit = stable_p90 * (1 + canary_spec.max_ttft_regression) + WORKER_NOISE_FLOOR_MS
    text = (
        f"candidate ttft p90 {canary_p90:.1f} ms vs stable {stable_p90:.1f} ms (limit {limit:.1f} ms: "
        f"stable + {canary_spec.max_ttft_regression:.0%} + {WORKER_NOISE_FLOOR_MS:g} ms for the buckets)"
    )
    if canary_p90 <= limit:
        notes.append(text)
        return sla.Verdict("fail" if breaches else "inconclusive" if held else "pass", breaches, notes)
    if stable_buckets is None or canary_buckets is None:
        breaches.append(text)
        return sla.Verdict("fail", breaches, notes)
    a, b = bucket_samples(stable_buckets), bucket_samples(canary_buckets)
    g = GateSettings.of(canary_spec)
    p, share = mann_whitney_greater(a, b)
    evidence = (
        f"rank test on {len(a)} stable and {len(b)} candidate observations p={p:.2g} (counts under "
        f"{g.alpha:.2g}), candidate slower in {share:.0%} of pairs"
    )
    if p < g.alpha:
        breaches.append(f"{text}; {evidence}")
        return sla.Verdict("fail", breaches, notes)
    notes.append(f"{text}, but not beyond noise ({evidence}); more samples are needed")
    return sla.Verdict("fail" if breaches else "inconclusive", breaches, notes)


# --- the side-by-side gate: noise-aware, with an absolute floor and "inconclusive -> more samples" -------
#
# Both graphs get identical bounded load at the same time, request by request (tasks/canary.py sends
# request i to both sides at once, alternating which goes first: on a busy host most of a measured TTFT
# is the moment's load and the client's own stalls, and a pair shares them); locally the stable side is
# a baseline graph of stable's spec staged with the candidate, so neither side is the fresher one. Each
# side yields one TTFT (and one mean ITL) sample per successful request. The gate judges the p90 of
# each, but only on evidence:
#
#   enough     each side has at least P90_MIN_SAMPLES (and canary.min_samples) successful requests;
#   allowed    the change the p90 may make: max(max_*_regression x stable p90, the metric's floor in ms);
#   fail       the Mann-Whitney rank test says the candidate is slower (one-sided p < alpha: 1 - confidence
#              shared over the step's tests, GateSettings.alpha) AND
#              the bootstrap's lower confidence bound of the p90 change (or of the p50 change: a p90 can
#              sit inside the stalls of a busy machine while every typical request got slower) is above
#              `allowed`: a material regression, shown beyond noise;
#   pass       the rank test sees no slowdown, or no quantile's change is both over `allowed` and
#              above zero with confidence: the difference is within the bound or within noise;
#   otherwise  inconclusive: the flow measures again and pools the samples (canary.holds times) before
#              a still-inconclusive step fails.

# The fewest samples per side for which a p90 is judged at all. With n samples, the chance that all n lie
# below the true p90 is 0.9**n; for n >= 29 it is under 5 %, so only from 29 on does the largest sample
# bound the p90 from above with 95 % confidence. With fewer, the sample says nothing dependable about the
# tail the p90 describes (at 20 samples, 12 % of the time no sample lies above the true p90 at all).
P90_MIN_SAMPLES = 29

# Defaults of the canary.* fields that a spec may leave unset (spec.CanarySpec documents each).
DEFAULT_TTFT_FLOOR_MS = 10.0
DEFAULT_ITL_FLOOR_MS = 2.0
DEFAULT_CONFIDENCE = 0.95
DEFAULT_HOLDS = 2


@dataclass(frozen=True)
class GateSettings:
    """The canary.* fields the gate reads, with the defaults filled in."""

    max_ttft_regression: float = 0.2
    max_itl_regression: float = 0.2
    ttft_floor_ms: float = DEFAULT_TTFT_FLOOR_MS
    itl_floor_ms: float = DEFAULT_ITL_FLOOR_MS
    max_error_rate: float = 0.0
    max_error_rate_increase: float = 0.01
    min_samples: int = 20
    confidence: float = DEFAULT_CONFIDENCE
    holds: int = DEFAULT_HOLDS

    @classmethod
    def of(cls, canary_spec) -> GateSettings:
        if isinstance(canary_spec, GateSettings):
            return canary_spec
        d = cls()
        return cls(**{k: sla.read_field(canary_spec, k, getattr(d, k)) for k in cls.__dataclass_fields__})

    @property
    def alpha(self) -> float:
        """The p-value under which a test counts: 1 - confidence shared (Bonferroni) over the tests one step
        may make, two metrics times (1 + holds) analyses, so that a candidate no worse than stable is
        rolled back by one step's gate with a chance of at most 1 - confidence in all."""
        return (1 - self.confidence) / (2 * (1 + self.holds))

    @property
    def needed(self) -> int:
        return max(self.min_samples, P90_MIN_SAMPLES)


@dataclass(frozen=True)
class MetricJudgement:
    metric: str  # "ttft" | "itl"
    status: str  # pass | fail | inconclusive
    text: str  # the plain-words reason
    stable_p90: float | None = None
    candidate_p90: float | None = None
    allowed_ms: float | None = None
    ci_ms: tuple[float, float] | None = None
    p_value: float | None = None
    slower_share: float | None = None  # P(candidate > stable) over request pairs


def judge_metric(
    metric: str, a: list[float], b: list[float], rel: float, floor_ms: float, g: GateSettings
) -> MetricJudgement:
    """One latency metric (ms samples, stable ``a`` vs candidate ``b``); see the block comment above."""
    label = f"{metric.upper()} p90"
    if min(len(a), len(b)) < g.needed:
        return MetricJudgement(
            metric,
            "inconclusive",
            f"{label}: {len(a)} stable and {len(b)} candidate samples; a p90 is judged from "
            f"{g.needed} per side on, so more are needed",
        )
    p, share = mann_whitney_greater(a, b)
    alpha = g.alpha
    bounds = bootstrap_diff(a, b, g.confidence, (50, 90), seed=len(a) * 7919 + len(b))
    quantiles = {}
    for q in (90, 50):
        qa, qb = _pct(a, q), _pct(b, q)
        quantiles[q] = (qa, qb, qb - qa, max(rel * qa, floor_ms), bounds[q])
    pa, pb, delta, allowed, (lo, hi) = quantiles[90]

    def change(q: int) -> str:
        qa, qb, d, _, _ = quantiles[q]
        pct = f", {d / qa:+.0%}" if qa > 0 else ""
        return f"{metric.upper()} p{q} {qa:.1f} -> {qb:.1f} ms ({d:+.1f} ms{pct})"

    def bound(q: int) -> str:
        return f"{quantiles[q][3]:.1f} ms allowed ({rel:.0%} of stable, at least {floor_ms:g} ms)"

    def evidence(q: int) -> str:
        qlo, qhi = quantiles[q][4]
        return (
            f"the change is {qlo:+.1f} ms or more and {qhi:+.1f} ms or less with {g.confidence:.0%} "
            f"confidence each; rank test p={p:.2g} (counts under {alpha:.2g}), "
            f"candidate slower in {share:.0%} of request pairs"
        )

    common: dict[str, Any] = {
        "stable_p90": pa,
        "candidate_p90": pb,
        "allowed_ms": allowed,
        "ci_ms": (lo, hi),
        "p_value": p,
        "slower_share": share,
    }
    if p < alpha:
        for q in (90, 50):  # the tail first; the typical request also counts (a p90 can hide in stalls)
            if quantiles[q][4][0] > quantiles[q][3]:
                return MetricJudgement(
                    metric,
                    "fail",
                    f"{change(q)} is a regression beyond the {bound(q)}: {evidence(q)}",
                    **common,
                )
        for q in (90, 50):
            qa, qb, d, allow, (qlo, _) = quantiles[q]
            if d > allow and qlo > 0:
                return MetricJudgement(
                    metric,
                    "inconclusive",
                    f"{change(q)} may be a regression beyond the {bound(q)}, but not "
                    f"conclusively ({evidence(q)}); more samples are needed",
                    **common,
                )
    if delta <= allowed:
        return MetricJudgement(metric, "pass", f"{change(90)}, within the {bound(90)}", **common)
    return MetricJudgement(
        metric, "pass", f"{change(90)} is over the {bound(90)} but within noise: {evidence(90)}", **common
    )


def latency_samples(report: sla.LoadReport) -> dict[str, list[float]]:
    """Per successful request, in ms: its TTFT and its mean inter-token latency (one value per request,
    so the samples are independent, as the rank test and the bootstrap assume)."""
    ok = report.ok_results
    itl = [getattr(r, "request_itl_s", r.mean_itl_s) for r in ok]  # sla's per-request ITL where it has one
    return {
        "ttft": [r.ttft_s * 1000 for r in ok if r.ttft_s is not None],
        "itl": [v * 1000 for v in itl if v is not None],
    }


def p90s_ms(report: sla.LoadReport) -> dict[str, float | None]:
    """The p90s the gate judges (``latency_samples``), for the artifact."""
    return {k: sla.percentile(v, 90) for k, v in latency_samples(report).items()}


def pool(reports: list[sla.LoadReport]) -> sla.LoadReport:
    """Several analyses of one step as one sample (a hold adds to the evidence, it does not replace it)."""
    return sla.LoadReport(
        results=[r for rep in reports for r in rep.results], wall_s=sum(r.wall_s for r in reports)
    )


def side_by_side_gate(baseline: sla.LoadReport, candidate: sla.LoadReport, canary_spec=None) -> sla.Verdict:
    """Candidate vs stable under identical load: errors first, then TTFT and ITL p90 (``judge_metric``).

    fail when any check fails; else inconclusive when any is; else pass. ``breaches`` say why it failed,
    ``notes`` say what was measured and why the rest passed or needs more samples.
    """
    g = GateSettings.of(canary_spec)
    breaches: list[str] = []
    notes: list[str] = []
    inconclusive = False
    if candidate.count and candidate.errors > baseline.errors * candidate.count / max(baseline.count, 1):
        increase = candidate.error_rate - baseline.error_rate
        text = (
            f"{candidate.errors} of {candidate.count} candidate requests failed ({candidate.error_rate:.1%}) "
            f"vs {baseline.errors} of {baseline.count} stable ({baseline.error_rate:.1%}); first: "
            f"{candidate.first_error()}"
        )
        over = candidate.error_rate > g.max_error_rate and increase > g.max_error_rate_increase
        allowed = (
            f"allowed: {g.max_error_rate:.1%}, and no more than {g.max_error_rate_increase:.1%} above stable"
        )
        p = fisher_greater(baseline.errors, baseline.count, candidate.errors, candidate.count)
        if over and p < g.alpha:
            breaches.append(f"{text}; {allowed} (Fisher's exact test p={p:.2g})")
        elif over:
            inconclusive = True
            notes.append(
                f"{text}; over the {allowed}, but a difference this size happens by chance "
                f"(Fisher's exact test p={p:.2g}, counts under {g.alpha:.2g}); more samples are needed"
            )
        else:
            notes.append(f"{text}; within the {allowed}")
    elif baseline.errors:
        notes.append(
            f"{baseline.errors} stable and {candidate.errors} candidate requests failed: no worse than stable"
        )
    a, b = latency_samples(baseline), latency_samples(candidate)
    for metric, rel, floor in (
        ("ttft", g.max_ttft_regression, g.ttft_floor_ms),
        ("itl", g.max_itl_regression, g.itl_floor_ms),
    ):
        if metric == "itl" and not a["itl"] and not b["itl"]:
            notes.append("ITL not compared (one token per request)")
            continue
        j = judge_metric(metric, a[metric], b[metric], rel, floor, g)
        if j.status == "fail":
            breaches.append(j.text)
        else:
            notes.append(j.text)
            inconclusive |= j.status == "inconclusive"
    if breaches:
        return sla.Verdict("fail", breaches, notes)
    return sla.Verdict("inconclusive" if inconclusive else "pass", [], notes)
