"""Pure: Prometheus text exposition parsing and the few summaries the canary gate reads.

Dynamo's frontend exposes dynamo_frontend_* (requests_total by status, time_to_first_token_seconds
and inter_token_latency_seconds histograms, ...); workers expose dynamo_component_*. A canary
compares the change of these counters over an analysis window, so everything works on deltas of two
scrapes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str, default: str = "") -> str:
        return dict(self.labels).get(key, default)


def parse(text: str) -> list[Sample]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = tuple(sorted(_LABEL.findall(m.group(2) or "")))
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.append(Sample(m.group(1), labels, value))
    return out


def total(samples: list[Sample], name: str, **match: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.label(k) == v for k, v in match.items()))


def histogram(samples: list[Sample], name: str) -> dict[float, float]:
    """Cumulative bucket counts of histogram ``name`` summed over label sets: {le: count}."""
    buckets: dict[float, float] = {}
    for s in samples:
        if s.name == f"{name}_bucket":
            le = float(s.label("le").replace("+Inf", "inf"))
            buckets[le] = buckets.get(le, 0.0) + s.value
    return buckets


def delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {le: after[le] - before.get(le, 0.0) for le in after}


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus-style histogram_quantile over cumulative buckets (linear within a bucket)."""
    if not buckets:
        return None
    les = sorted(buckets)
    count = buckets[les[-1]]
    if count <= 0:
        return None
    rank = q * count
    prev_le, prev_count = 0.0, 0.0
    for le in les:
        c = buckets[le]
        if c >= rank:
            if math.isinf(le):
                return prev_le
            span = c - prev_count
            return prev_le + (le - prev_le) * ((rank - prev_count) / span if span else 0.0)
        prev_le, prev_count = le, c
    return prev_le


def frontend_summary(before: str, after: str) -> dict:
    """What changed at a Dynamo frontend between two scrapes (requests, errors, TTFT/ITL p90)."""
    b, a = parse(before), parse(after)
    req = total(a, "dynamo_frontend_requests_total") - total(b, "dynamo_frontend_requests_total")
    ok = total(a, "dynamo_frontend_requests_total", status="success") - total(
        b, "dynamo_frontend_requests_total", status="success"
    )
    out: dict[str, float | None] = {"requests": req, "errors": max(0.0, req - ok) if ok or req else 0.0}
    for key, metric in (
        ("ttft_p90_ms", "dynamo_frontend_time_to_first_token_seconds"),
        ("itl_p90_ms", "dynamo_frontend_inter_token_latency_seconds"),
    ):
        q = quantile(delta(histogram(a, metric), histogram(b, metric)), 0.9)
        out[key] = None if q is None else round(q * 1000, 3)
    return out
