"""Pure: the canary gate's statistics, on latency samples and on the workers' histograms.

A one-sided Mann-Whitney U rank test, Fisher's exact test on error counts, percentile-bootstrap bounds of
a quantile's change, and the TTFT histograms of a group of processes scraped before and after an analysis
window (merged, and turned into samples a rank test can use). How the gate combines them into a verdict
is runtime/domain/canary.py.
"""

from __future__ import annotations

import math

from runtime.domain import metrics
from runtime.domain.load_report import percentile

BOOTSTRAP_RESAMPLES = 1000  # resamples per bootstrap_diff

# Time to first response as each worker measures it (Dynamo's own, any engine); vLLM's name second.
WORKER_TTFT = ("dynamo_work_handler_time_to_first_response_seconds", "vllm:time_to_first_token_seconds")


def group_ttft_p90_ms(
    before: dict[str, str], after: dict[str, str], names: tuple[str, ...] = WORKER_TTFT
) -> float | None:
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
        d = metrics.delta(
            metrics.histogram(metrics.parse(text), name),
            metrics.histogram(metrics.parse(before.get(url, "")), name),
        )
        for le, count in d.items():
            merged[le] = merged.get(le, 0.0) + count
    return merged


def group_ttft_buckets(
    before: dict[str, str], after: dict[str, str], names: tuple[str, ...] = WORKER_TTFT
) -> dict[float, float]:
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
        tie_term += t**3 - t
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
    return min(
        1.0,
        sum(math.comb(n_b, k) * math.comb(n_a, total - k) for k in range(errors_b, min(total, n_b) + 1))
        / denom,
    )


def bootstrap_diff(
    a: list[float],
    b: list[float],
    confidence: float,
    qs: tuple[float, ...] = (90,),
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[float, tuple[float, float]]:
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
    """``percentile`` of samples that cannot be empty here (the callers checked the counts)."""
    value = percentile(values, q)
    if value is None:
        raise ValueError("a percentile of no samples")
    return value


def _sorted_pct(ordered: list[float], q: float) -> float:
    rank = (len(ordered) - 1) * q / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def bootstrap_p90_diff(
    a: list[float], b: list[float], confidence: float, seed: int = 0
) -> tuple[float, float]:
    return bootstrap_diff(a, b, confidence, (90,), seed=seed)[90]
