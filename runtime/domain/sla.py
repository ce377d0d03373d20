"""Smoke/SLA verdicts: whether a load run is good enough, against absolute targets or a baseline.

Pure (stdlib only). ``evaluate`` judges one run (runtime/domain/load_report.py's ``LoadReport``) against
the spec's ``smoke.sla``; ``compare`` judges a candidate against a baseline run under identical load.
Keeping the judgement here means the gate that promotes or rolls back a revision is tested without any
server. What the statistics mean (percentiles, TTFT, ITL, inter-chunk latency, goodput, throughput) is
in runtime/domain/load_report.py's docstring; its names are importable from here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from runtime.domain.load_report import (
    LoadReport,
    Percentiles,
    RequestResult,
    _r,
    percentile,
    read_field,
)

__all__ = [
    "SLA", "CompareThresholds", "LoadReport", "Percentiles", "RequestResult", "SmokeResult", "Status",
    "Verdict", "compare", "evaluate", "percentile", "read_field", "to_markdown", "to_table",
]  # fmt: skip

Status = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class SLA:
    """Absolute targets for a smoke run (the spec's ``smoke.sla``); None means "not checked"."""

    ttft_p90_ms: float | None = None
    itl_p90_ms: float | None = None
    e2e_p99_ms: float | None = None
    max_error_rate: float | None = None
    min_goodput_ratio: float | None = None

    @classmethod
    def from_obj(cls, obj: Any) -> SLA:
        if isinstance(obj, SLA):
            return obj
        return cls(**{name: read_field(obj, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class CompareThresholds:
    """How much worse a candidate may be than its baseline (the spec's canary thresholds).

    Regressions are fractions (0.2 = 20 % slower p90). Differences under ``noise_floor_ms`` are never
    regressions, so a 0.3 ms -> 0.5 ms ITL on a mock engine does not fail a canary. Latency is only
    judged when both sides have at least ``min_samples`` successful requests; the error rate is
    judged once the candidate has sent ``min_samples`` requests.
    """

    max_ttft_regression: float = 0.2
    max_itl_regression: float = 0.2
    max_error_rate_increase: float = 0.01  # absolute: candidate rate - baseline rate
    max_error_rate: float | None = None  # absolute cap on the candidate's rate
    min_samples: int = 20
    noise_floor_ms: float = 1.0

    @classmethod
    def from_obj(cls, obj: Any) -> CompareThresholds:
        if isinstance(obj, CompareThresholds):
            return obj
        defaults = cls()
        return cls(
            **{name: read_field(obj, name, getattr(defaults, name)) for name in cls.__dataclass_fields__}
        )


@dataclass(frozen=True)
class Verdict:
    """Outcome of a gate. ``breaches`` say why it failed; ``notes`` say what was skipped or measured."""

    status: Status
    breaches: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def summary(self) -> str:
        detail = self.breaches or self.notes
        return f"{self.status}: {'; '.join(detail)}" if detail else self.status


def evaluate(report: LoadReport, sla: Any) -> Verdict:
    """Judge one run against absolute targets. No successful request is always a failure."""
    sla = SLA.from_obj(sla)
    if report.count == 0:
        return Verdict("fail", ["no requests were run"])
    breaches: list[str] = []
    notes: list[str] = []
    if sla.max_error_rate is not None and report.error_rate > sla.max_error_rate:
        breaches.append(
            f"error rate {report.error_rate:.3f} > {sla.max_error_rate:g} "
            f"({report.errors}/{report.count} requests failed; first: {report.first_error()})"
        )
    if report.ok_count == 0:
        if not breaches:
            breaches.append(f"all {report.count} requests failed; first: {report.first_error()}")
        return Verdict("fail", breaches)
    for label, stat, attr, target in (
        ("ttft p90", report.ttft_ms, "p90", sla.ttft_p90_ms),
        ("itl p90", report.itl_ms, "p90", sla.itl_p90_ms),
        ("e2e p99", report.e2e_ms, "p99", sla.e2e_p99_ms),
    ):
        value = getattr(stat, attr)
        if target is None:
            continue
        if value is None:
            notes.append(f"{label} not measured (no samples; one token per request?)")
        elif value > target:
            breaches.append(f"{label} {value:.1f} ms > {target:g} ms")
    if sla.min_goodput_ratio is not None:
        goodput = report.goodput(sla.ttft_p90_ms, sla.itl_p90_ms)
        if goodput < sla.min_goodput_ratio:
            breaches.append(f"goodput {goodput:.3f} < {sla.min_goodput_ratio:g}")
    return Verdict("fail" if breaches else "pass", breaches, notes)


def compare(baseline: LoadReport, candidate: LoadReport, thresholds: Any = None) -> Verdict:
    """Judge a candidate against a baseline run under identical load (canary analysis).

    Fails on a p90 TTFT/ITL regression beyond the allowed fraction or an error-rate increase;
    inconclusive (neither promote nor roll back on this evidence) when a side has too few samples.
    """
    th = CompareThresholds.from_obj(thresholds)
    breaches: list[str] = []
    notes: list[str] = []
    if candidate.count >= th.min_samples:
        increase = candidate.error_rate - baseline.error_rate
        if increase > th.max_error_rate_increase:
            breaches.append(
                f"error rate {candidate.error_rate:.3f} vs baseline {baseline.error_rate:.3f} "
                f"(+{increase:.3f} > {th.max_error_rate_increase:g} allowed)"
            )
        if th.max_error_rate is not None and candidate.error_rate > th.max_error_rate:
            breaches.append(f"error rate {candidate.error_rate:.3f} > {th.max_error_rate:g}")
    else:
        notes.append(f"candidate sent {candidate.count} requests < min_samples {th.min_samples}")

    short = [
        f"{side} has {r.ok_count} successful requests < min_samples {th.min_samples}"
        for side, r in (("baseline", baseline), ("candidate", candidate))
        if r.ok_count < th.min_samples
    ]
    if short:
        notes.extend(short)
    else:
        for label, base, cand, allowed in (
            ("ttft p90", baseline.ttft_ms.p90, candidate.ttft_ms.p90, th.max_ttft_regression),
            ("itl p90", baseline.itl_ms.p90, candidate.itl_ms.p90, th.max_itl_regression),
        ):
            if base is None or cand is None:
                notes.append(f"{label} not compared (no samples; one token per request?)")
                continue
            change = (cand - base) / base if base > 0 else (math.inf if cand > base else 0.0)
            text = f"{label} {base:.1f} ms -> {cand:.1f} ms ({change:+.1%})"
            if cand - base > th.noise_floor_ms and change > allowed:
                breaches.append(f"{text} > {allowed:.0%} allowed")
            else:
                notes.append(text)
    if breaches:
        return Verdict("fail", breaches, notes)
    if short or candidate.count < th.min_samples:
        return Verdict("inconclusive", [], notes)
    return Verdict("pass", [], notes)


@dataclass(frozen=True)
class SmokeResult:
    """What ``loadgen.smoke_test`` returns: the served models, the load report and its verdict."""

    models: list[str]
    report: LoadReport
    verdict: Verdict

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.verdict.passed,
            "status": self.verdict.status,
            **self.report.as_dict(),
            "breaches": list(self.verdict.breaches),
            "models": list(self.models),
        }


def to_table(report: LoadReport) -> list[dict[str, Any]]:
    """Rows ``{"metric", "value"}`` for a Prefect table artifact (create_table_artifact(table=rows))."""
    rows: list[dict[str, Any]] = [
        {"metric": "requests", "value": report.count},
        {"metric": "errors", "value": report.errors},
        {"metric": "error rate", "value": _r(report.error_rate, 4)},
    ]
    for name, stat in (
        ("ttft", report.ttft_ms),
        ("itl", report.itl_ms),
        ("inter-chunk", report.inter_chunk_ms),
        ("e2e", report.e2e_ms),
    ):
        for q in ("p50", "p90", "p99"):
            rows.append({"metric": f"{name} {q} (ms)", "value": _r(getattr(stat, q))})
    rows += [
        {"metric": "output tokens/s", "value": _r(report.tokens_per_s)},
        {"metric": "requests/s", "value": _r(report.requests_per_s)},
        {"metric": "goodput ratio", "value": _r(report.goodput_ratio, 4)},
        {"metric": "wall (s)", "value": _r(report.wall_s)},
    ]
    return rows


def to_markdown(report: LoadReport, verdict: Verdict) -> str:
    """A short Markdown summary for a Prefect markdown artifact."""
    lines = [
        f"**Verdict: {verdict.status.upper()}**",
        "",
        "| latency (ms) | p50 | p90 | p99 | samples |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, stat in (
        ("TTFT", report.ttft_ms),
        ("ITL", report.itl_ms),
        ("inter-chunk", report.inter_chunk_ms),
        ("E2E", report.e2e_ms),
    ):
        lines.append(f"| {name} | {_fmt(stat.p50)} | {_fmt(stat.p90)} | {_fmt(stat.p99)} | {stat.n} |")
    usage, chunks = report.tokens_from["usage"], report.tokens_from["chunks"]
    lines += [
        "",
        (
            "ITL: per request, (last token - first token) / (tokens - 1); p90 over successful requests. "
            "Inter-chunk: every gap between content chunks as read, pooled. "
            f"Tokens counted from the server's usage in {usage} requests, from content chunks in {chunks}."
        ),
        "",
        (
            f"{report.count} requests, {report.errors} errors ({report.error_rate:.1%}), "
            f"{report.requests_per_s:.2f} req/s, {report.tokens_per_s:.1f} output tok/s, "
            f"goodput {report.goodput_ratio:.1%}, wall {report.wall_s:.2f} s"
        ),
    ]
    for title, items in (("Breaches", verdict.breaches), ("Notes", verdict.notes)):
        if items:
            lines += ["", f"{title}:", *(f"- {item}" for item in items)]
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
