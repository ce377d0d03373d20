"""What a load run measured: per-request results, and the percentiles, throughput and goodput of a run.

Pure (stdlib only): the load generator (runtime/gateways/loadgen.py) and the chat stream client
(runtime/gateways/chat_stream.py) fill in ``RequestResult``s; ``LoadReport`` turns them into statistics.
Judging a report (against SLA targets, or a baseline) is runtime/domain/sla.py's; the canary gate's
statistics are runtime/domain/canary_stats.py's.

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
        """The report judged for goodput at ``sla``'s targets (an SLA, a spec section or a dict)."""
        return replace(
            self, ttft_target_ms=read_field(sla, "ttft_p90_ms"), itl_target_ms=read_field(sla, "itl_p90_ms")
        )

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


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
