"""Pure: the canary's traffic plan and its gate.

The gate compares candidate against baseline on identical load (runtime.domain.sla.compare: TTFT/ITL p90
regressions, error rates, an inconclusive outcome when either side has too few samples) and, while
real traffic is shifted, also per worker group from the workers' own Prometheus histograms
(dynamo_work_handler_time_to_first_response_seconds), so a slow candidate is caught even when it
only takes a share of the stable endpoint's traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from runtime.domain import metrics, sla


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

    stable: str  # the frontend standing for stable side by side (locally a fresh baseline copy of stable)
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
        q = metrics.quantile(_merged_delta(before, after, name), 0.9)
        if q is not None:
            return q * 1000
    return None


def _merged_delta(before: dict[str, str], after: dict[str, str], name: str) -> dict[float, float]:
    """Histogram ``name`` (le -> count) over the window, summed over every endpoint of the group."""
    merged: dict[float, float] = {}
    for url, text in after.items():
        d = metrics.delta(metrics.histogram(metrics.parse(text), name),
                          metrics.histogram(metrics.parse(before.get(url, "")), name))
        for le, count in d.items():
            merged[le] = merged.get(le, 0.0) + count
    return merged


def group_ttft_buckets(before: dict[str, str], after: dict[str, str],
                       names: tuple[str, ...] = WORKER_TTFT) -> dict[float, float]:
    """The cumulative TTFT histogram (le -> count) of a group of processes over a window, merged."""
    for name in names:
        merged = _merged_delta(before, after, name)
        if merged and max(merged.values()) > 0:
            return merged
    return {}


def bucket_samples(buckets: dict[float, float]) -> list[float]:
    """One value per observation, its bucket's upper bound: what a rank test can use of a histogram
    (observations in one bucket are ties, which the test's tie correction accounts for)."""
    out: list[float] = []
    prev = 0.0
    for le in sorted(buckets):
        n = round(buckets[le] - prev)
        out.extend([le * 1000] * max(n, 0))
        prev = buckets[le]
    return out


def shifted_gate(report: sla.LoadReport, stable_p90: float | None, canary_p90: float | None,
                 canary_spec, stable_buckets: dict[float, float] | None = None,
                 canary_buckets: dict[float, float] | None = None,
                 latest: sla.LoadReport | None = None) -> sla.Verdict:
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
        text = (f"{report.errors} of {report.count} requests failed at the stable endpoint "
                f"(first: {report.first_error()})")
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
    text = (f"candidate ttft p90 {canary_p90:.1f} ms vs stable {stable_p90:.1f} ms (limit {limit:.1f} ms: "
            f"stable + {canary_spec.max_ttft_regression:.0%} + {WORKER_NOISE_FLOOR_MS:g} ms for the buckets)")
    if canary_p90 <= limit:
        notes.append(text)
        return sla.Verdict("fail" if breaches else "inconclusive" if held else "pass", breaches, notes)
    if stable_buckets is None or canary_buckets is None:
        breaches.append(text)
        return sla.Verdict("fail", breaches, notes)
    a, b = bucket_samples(stable_buckets), bucket_samples(canary_buckets)
    g = GateSettings.of(canary_spec)
    p, share = mann_whitney_greater(a, b)
    evidence = (f"rank test on {len(a)} stable and {len(b)} candidate observations p={p:.2g} (counts under "
                f"{g.alpha:.2g}), candidate slower in {share:.0%} of pairs")
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
BOOTSTRAP_RESAMPLES = 1000


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


def mann_whitney_greater(a: list[float], b: list[float]) -> tuple[float, float]:
    """One-sided Mann-Whitney U test that ``b`` tends to be larger than ``a``: (p-value, P(b > a)).

    Normal approximation with tie correction and continuity correction (what Kayenta's judge and
    scipy.stats.mannwhitneyu(alternative="greater", method="asymptotic") compute). The second value is
    the effect size: the share of (a, b) pairs in which b is the larger, ties counting half.
    """
    na, nb = len(a), len(b)
    if not na or not nb:
        return 1.0, 0.5
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    n = na + nb
    rank_b, tie_term, i = 0.0, 0.0, 0
    while i < n:
        j = i
        while j + 1 < n and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        avg = (i + j) / 2 + 1  # ranks are 1-based
        t = j - i + 1
        tie_term += t ** 3 - t
        rank_b += avg * sum(1 for k in range(i, j + 1) if pooled[k][1] == 1)
        i = j + 1
    u_b = rank_b - nb * (nb + 1) / 2
    mean = na * nb / 2
    var = na * nb / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if var <= 0:
        return 1.0, u_b / (na * nb)
    z = (u_b - mean - 0.5) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2)), u_b / (na * nb)


def fisher_greater(errors_a: int, n_a: int, errors_b: int, n_b: int) -> float:
    """One-sided Fisher's exact test that side b's error rate is higher than side a's: the chance of
    ``errors_b`` or more of all the errors landing on b if both sides failed alike."""
    total, n = errors_a + errors_b, n_a + n_b
    if not total or not n_b:
        return 1.0
    denom = math.comb(n, total)
    return min(1.0, sum(math.comb(n_b, k) * math.comb(n_a, total - k)
                        for k in range(errors_b, min(total, n_b) + 1)) / denom)


def bootstrap_diff(a: list[float], b: list[float], confidence: float, qs: tuple[float, ...] = (90,),
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict[float, tuple[float, float]]:
    """Percentile-bootstrap bounds of percentile(b, q) - percentile(a, q) for each q: each a one-sided
    ``confidence`` bound (together a two-sided interval at 2 x confidence - 1); seeded, so a verdict is
    reproducible from its samples."""
    import random

    rng = random.Random(seed)
    diffs: dict[float, list[float]] = {q: [] for q in qs}
    for _ in range(resamples):
        ra, rb = sorted(rng.choices(a, k=len(a))), sorted(rng.choices(b, k=len(b)))
        for q in qs:
            diffs[q].append(_sorted_pct(rb, q) - _sorted_pct(ra, q))
    tail = 1 - confidence
    return {q: (_pct(d, 100 * tail), _pct(d, 100 * (1 - tail))) for q, d in diffs.items()}


def _pct(values: list[float], q: float) -> float:
    """``sla.percentile`` of samples that cannot be empty here (the callers checked the counts)."""
    value = sla.percentile(values, q)
    if value is None:
        raise ValueError("a percentile of no samples")
    return value


def _sorted_pct(ordered: list[float], q: float) -> float:
    rank = (len(ordered) - 1) * q / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def bootstrap_p90_diff(a: list[float], b: list[float], confidence: float, seed: int = 0) -> tuple[float, float]:
    return bootstrap_diff(a, b, confidence, (90,), seed=seed)[90]


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


def judge_metric(metric: str, a: list[float], b: list[float], rel: float, floor_ms: float,
                 g: GateSettings) -> MetricJudgement:
    """One latency metric (ms samples, stable ``a`` vs candidate ``b``); see the block comment above."""
    label = f"{metric.upper()} p90"
    if min(len(a), len(b)) < g.needed:
        return MetricJudgement(metric, "inconclusive",
                               f"{label}: {len(a)} stable and {len(b)} candidate samples; a p90 is judged from "
                               f"{g.needed} per side on, so more are needed")
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
        return (f"the change is {qlo:+.1f} ms or more and {qhi:+.1f} ms or less with {g.confidence:.0%} "
                f"confidence each; rank test p={p:.2g} (counts under {alpha:.2g}), "
                f"candidate slower in {share:.0%} of request pairs")

    common: dict[str, Any] = {"stable_p90": pa, "candidate_p90": pb, "allowed_ms": allowed, "ci_ms": (lo, hi), "p_value": p,
              "slower_share": share}
    if p < alpha:
        for q in (90, 50):  # the tail first; the typical request also counts (a p90 can hide in stalls)
            if quantiles[q][4][0] > quantiles[q][3]:
                return MetricJudgement(metric, "fail", f"{change(q)} is a regression beyond the {bound(q)}: "
                                                       f"{evidence(q)}", **common)
        for q in (90, 50):
            qa, qb, d, allow, (qlo, _) = quantiles[q]
            if d > allow and qlo > 0:
                return MetricJudgement(metric, "inconclusive",
                                       f"{change(q)} may be a regression beyond the {bound(q)}, but not "
                                       f"conclusively ({evidence(q)}); more samples are needed", **common)
    if delta <= allowed:
        return MetricJudgement(metric, "pass", f"{change(90)}, within the {bound(90)}", **common)
    return MetricJudgement(metric, "pass", f"{change(90)} is over the {bound(90)} but within noise: "
                                           f"{evidence(90)}", **common)


def latency_samples(report: sla.LoadReport) -> dict[str, list[float]]:
    """Per successful request, in ms: its TTFT and its mean inter-token latency (one value per request,
    so the samples are independent, as the rank test and the bootstrap assume)."""
    ok = report.ok_results
    itl = [getattr(r, "request_itl_s", r.mean_itl_s) for r in ok]  # sla's per-request ITL where it has one
    return {"ttft": [r.ttft_s * 1000 for r in ok if r.ttft_s is not None],
            "itl": [v * 1000 for v in itl if v is not None]}


def p90s_ms(report: sla.LoadReport) -> dict[str, float | None]:
    """The p90s the gate judges (``latency_samples``), for the artifact."""
    return {k: sla.percentile(v, 90) for k, v in latency_samples(report).items()}


def pool(reports: list[sla.LoadReport]) -> sla.LoadReport:
    """Several analyses of one step as one sample (a hold adds to the evidence, it does not replace it)."""
    return sla.LoadReport(results=[r for rep in reports for r in rep.results], wall_s=sum(r.wall_s for r in reports))


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
        text = (f"{candidate.errors} of {candidate.count} candidate requests failed ({candidate.error_rate:.1%}) "
                f"vs {baseline.errors} of {baseline.count} stable ({baseline.error_rate:.1%}); first: "
                f"{candidate.first_error()}")
        over = candidate.error_rate > g.max_error_rate and increase > g.max_error_rate_increase
        allowed = f"allowed: {g.max_error_rate:.1%}, and no more than {g.max_error_rate_increase:.1%} above stable"
        p = fisher_greater(baseline.errors, baseline.count, candidate.errors, candidate.count)
        if over and p < g.alpha:
            breaches.append(f"{text}; {allowed} (Fisher's exact test p={p:.2g})")
        elif over:
            inconclusive = True
            notes.append(f"{text}; over the {allowed}, but a difference this size happens by chance "
                         f"(Fisher's exact test p={p:.2g}, counts under {g.alpha:.2g}); more samples are needed")
        else:
            notes.append(f"{text}; within the {allowed}")
    elif baseline.errors:
        notes.append(f"{baseline.errors} stable and {candidate.errors} candidate requests failed: "
                     "no worse than stable")
    a, b = latency_samples(baseline), latency_samples(candidate)
    for metric, rel, floor in (("ttft", g.max_ttft_regression, g.ttft_floor_ms),
                               ("itl", g.max_itl_regression, g.itl_floor_ms)):
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
