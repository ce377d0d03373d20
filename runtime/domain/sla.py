"""Smoke/SLA statistics and verdicts: what a load run measured, and whether it is good enough.

Pure (stdlib only): the load generator (runtime/gateways/loadgen.py) fills in ``RequestResult``s, this module
turns them into percentiles, throughput and goodput, and judges them against absolute SLA targets
(``evaluate``) or against a baseline run (``compare``, for canaries). Keeping the judgement here means
the gate that promotes or rolls back a revision is tested without any server.

Conventions:
- Percentiles use linear interpolation between closest ranks (numpy's default "linear" method, as
  ``vllm bench serve`` reports them). An empty sample has no percentile (``None``).
- Latency statistics (TTFT, ITL, E2E) are over successful requests only; a failed request counts in
  the error rate, never in the latency percentiles.
- TTFT: from sending the request to the first chunk that carries content.
- ITL (inter-token latency), as vLLM, AIPerf and Dynamo's own benchmarks define it: per request,
  (last token time - first token time) / (output tokens - 1), i.e. the request's mean time per output
  token after the first. The token count is the ``usage.completion_tokens`` the server reports when the
  stream carries it (``stream_options.include_usage``), else the number of content chunks;
  ``RequestResult.tokens_from`` says which. A request has no ITL when it produced fewer than two tokens
  or fewer than two content chunks (one chunk gives no span to divide). The SLA's ``itl_p90_ms`` (and the
  canary comparison) is the 90th percentile of that per-request ITL over the successful requests.
- Inter-chunk latency (``inter_chunk_ms``) is a separate figure: every gap between consecutive content
  chunks as the client read them, pooled over the successful requests. Several chunks arriving in one
  read show up as near-zero gaps, so it describes delivery (read coalescing, bursts), not the pace of
  decoding; no target is judged on it.
- Goodput (DistServe / vLLM / AIPerf): the fraction of *all* requests that succeeded and met the TTFT
  target and the ITL target, the latter judged on the request's own ITL. A request with no ITL (one
  token) meets the ITL target by definition. A missing target is not checked.
- Throughput counts successful requests and their output tokens over the run's wall time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

Status = Literal["pass", "fail", "inconclusive"]


def read_field(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]``: spec sections arrive as pydantic models or plain dicts."""
    if obj is None:
        return default
    value = obj.get(name, default) if isinstance(obj, Mapping) else getattr(obj, name, default)
    return default if value is None else value


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks; None when empty."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    lo = math.floor(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


@dataclass(frozen=True)
class Percentiles:
    """Summary of one latency sample, in milliseconds; every field is None when the sample is empty."""

    n: int
    p50: float | None
    p90: float | None
    p99: float | None
    mean: float | None
    max: float | None

    @classmethod
    def of_ms(cls, seconds: Sequence[float]) -> Percentiles:
        ms = [s * 1000.0 for s in seconds]
        if not ms:
            return cls(0, None, None, None, None, None)
        return cls(
            len(ms), percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), sum(ms) / len(ms), max(ms)
        )

    def as_dict(self) -> dict[str, float | None]:
        return {"p50": _r(self.p50), "p90": _r(self.p90), "p99": _r(self.p99)}


@dataclass
class RequestResult:
    """One request as the client saw it. Times are seconds; ``started_at`` is relative to the run start."""

    ok: bool
    status: int | None = None  # HTTP status; None when no response arrived (refused, timeout)
    error: str | None = None  # why it failed, one line; None when ok
    ttft_s: float | None = None  # send -> first chunk carrying content
    itl_s: list[float] = field(default_factory=list)  # gaps between consecutive content chunks, as read
    e2e_s: float | None = None  # send -> last byte (or failure)
    output_tokens: int = 0  # usage.completion_tokens when reported, else content chunks seen
    started_at: float = 0.0
    tokens_from: Literal["usage", "chunks"] | None = None  # where output_tokens came from
    content_chunks: int | None = None  # content chunks of a stream (None: not a stream, or not read)

    @property
    def mean_itl_s(self) -> float | None:
        """The mean inter-chunk gap (not the ITL: see ``request_itl_s``)."""
        return sum(self.itl_s) / len(self.itl_s) if self.itl_s else None

    @property
    def request_itl_s(self) -> float | None:
        """This request's ITL: (last token time - first token time) / (output tokens - 1). The gaps
        between content chunks add up to last - first. None with fewer than two tokens or chunks."""
        if not self.itl_s or self.output_tokens < 2:
            return None
        return sum(self.itl_s) / (self.output_tokens - 1)


@dataclass(frozen=True)
class LoadReport:
    """A finished load run: the per-request results (in request order) and the run's wall time.

    The optional targets feed ``goodput_ratio``; ``with_targets`` sets them from an SLA.
    """

    results: list[RequestResult]
    wall_s: float
    ttft_target_ms: float | None = None
    itl_target_ms: float | None = None

    def with_targets(self, sla: Any) -> LoadReport:
        sla = SLA.from_obj(sla)
        return replace(self, ttft_target_ms=sla.ttft_p90_ms, itl_target_ms=sla.itl_p90_ms)

    @property
    def count(self) -> int:
        return len(self.results)

    @cached_property
    def ok_results(self) -> list[RequestResult]:
        return [r for r in self.results if r.ok]

    @property
    def ok_count(self) -> int:
        return len(self.ok_results)

    @property
    def errors(self) -> int:
        return self.count - self.ok_count

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    @cached_property
    def ttft_ms(self) -> Percentiles:
        return Percentiles.of_ms([r.ttft_s for r in self.ok_results if r.ttft_s is not None])

    @cached_property
    def itl_ms(self) -> Percentiles:
        """Per-request ITL over the successful requests that have one (the SLA's ITL)."""
        return Percentiles.of_ms([itl for r in self.ok_results if (itl := r.request_itl_s) is not None])

    @cached_property
    def inter_chunk_ms(self) -> Percentiles:
        """Every gap between consecutive content chunks of the successful requests, pooled."""
        return Percentiles.of_ms([gap for r in self.ok_results for gap in r.itl_s])

    @property
    def tokens_from(self) -> dict[str, int]:
        """How many successful requests counted their tokens from the server's usage, from chunks."""
        counts = {"usage": 0, "chunks": 0}
        for r in self.ok_results:
            if r.tokens_from in counts:
                counts[r.tokens_from] += 1
        return counts

    @cached_property
    def e2e_ms(self) -> Percentiles:
        return Percentiles.of_ms([r.e2e_s for r in self.ok_results if r.e2e_s is not None])

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.ok_results)

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.ok_count / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def goodput_ratio(self) -> float:
        return self.goodput(self.ttft_target_ms, self.itl_target_ms)

    def goodput(self, ttft_ms: float | None, itl_ms: float | None) -> float:
        """Fraction of all requests that succeeded and met both per-request targets (None = unchecked)."""
        if not self.count:
            return 0.0
        good = 0
        for r in self.ok_results:
            if ttft_ms is not None and (r.ttft_s is None or r.ttft_s * 1000 > ttft_ms):
                continue
            itl = r.request_itl_s
            if itl_ms is not None and itl is not None and itl * 1000 > itl_ms:
                continue
            good += 1
        return good / self.count

    def first_error(self) -> str | None:
        return next((r.error for r in self.results if not r.ok and r.error), None)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (milliseconds, ratios, per-second rates)."""
        return {
            "requests": self.count,
            "errors": self.errors,
            "error_rate": _r(self.error_rate, 4),
            "ttft_ms": self.ttft_ms.as_dict(),
            "itl_ms": self.itl_ms.as_dict(),
            "inter_chunk_ms": self.inter_chunk_ms.as_dict(),
            "e2e_ms": self.e2e_ms.as_dict(),
            "tokens_from": self.tokens_from,
            "tokens_per_s": _r(self.tokens_per_s),
            "requests_per_s": _r(self.requests_per_s),
            "goodput_ratio": _r(self.goodput_ratio, 4),
            "wall_s": _r(self.wall_s),
        }


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


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
