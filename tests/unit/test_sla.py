"""runtime.domain.sla: percentiles, report statistics, SLA verdicts and baseline comparison (pure, no I/O)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from runtime.domain.sla import (
    CompareThresholds,
    LoadReport,
    RequestResult,
    SmokeResult,
    Verdict,
    compare,
    evaluate,
    percentile,
    to_markdown,
    to_table,
)
from runtime.spec import CanarySpec


def ok(
    ttft_ms: float = 100.0, itl_ms: tuple[float, ...] = (10.0, 10.0), tokens: int | None = None
) -> RequestResult:
    itl = [g / 1000 for g in itl_ms]
    return RequestResult(
        ok=True,
        status=200,
        ttft_s=ttft_ms / 1000,
        itl_s=itl,
        e2e_s=ttft_ms / 1000 + sum(itl),
        output_tokens=tokens if tokens is not None else len(itl) + 1,
    )


def failed(status: int | None = 500, error: str = "HTTP 500: injected failure") -> RequestResult:
    return RequestResult(ok=False, status=status, error=error, e2e_s=0.001)


def report(results: list[RequestResult], wall_s: float = 1.0) -> LoadReport:
    return LoadReport(results, wall_s)


# -- percentile ----------------------------------------------------------------------------------
def test_percentile_interpolates_linearly_between_closest_ranks() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 11)), 90) == pytest.approx(9.1)
    assert percentile([4, 1, 3, 2], 0) == 1
    assert percentile([4, 1, 3, 2], 100) == 4


def test_percentile_of_one_value_is_that_value_and_of_none_is_none() -> None:
    assert percentile([7.5], 99) == 7.5
    assert percentile([], 50) is None


@pytest.mark.parametrize("q", [-1, 101])
def test_percentile_rejects_q_outside_0_100(q: float) -> None:
    with pytest.raises(ValueError, match=r"0..100"):
        percentile([1.0], q)


# -- report statistics ---------------------------------------------------------------------------
def test_report_statistics_use_successful_requests_for_latency_and_all_for_error_rate() -> None:
    rep = report([ok(100, (10, 20), tokens=3), ok(300, (30,), tokens=2), failed()], wall_s=2.0)
    assert (rep.count, rep.ok_count, rep.errors) == (3, 2, 1)
    assert rep.error_rate == pytest.approx(1 / 3)
    assert rep.ttft_ms.p50 == pytest.approx(200)
    # ITL per request: (10 + 20) / (3 - 1) = 15 and 30 / (2 - 1) = 30; the gaps pooled are inter-chunk
    assert rep.itl_ms.n == 2
    assert rep.itl_ms.p50 == pytest.approx(22.5)
    assert rep.inter_chunk_ms.n == 3
    assert rep.inter_chunk_ms.p50 == pytest.approx(20)
    assert rep.tokens_per_s == pytest.approx(5 / 2)
    assert rep.requests_per_s == pytest.approx(2 / 2)
    assert rep.first_error() == "HTTP 500: injected failure"


def test_itl_is_per_request_span_over_tokens_minus_one_with_the_reported_token_count() -> None:
    # 3 content chunks 30 ms apart in all, but the server's usage says 7 tokens (chunks carried several)
    usage = ok(100, (10, 20), tokens=7)
    usage.tokens_from = "usage"
    assert usage.request_itl_s == pytest.approx(0.030 / 6)
    # one content chunk gives no span to divide, whatever the token count
    assert ok(100, (), tokens=5).request_itl_s is None
    assert ok(100, (10,), tokens=1).request_itl_s is None
    rep = report([usage, ok(100, (40, 40, 40, 40)), ok(100, (), tokens=5)])
    assert rep.itl_ms.n == 2 and rep.itl_ms.p50 == pytest.approx((5 + 40) / 2)
    assert rep.inter_chunk_ms.n == 6 and rep.inter_chunk_ms.p90 == pytest.approx(40)
    assert rep.tokens_from == {"usage": 1, "chunks": 0}


def test_itl_p90_is_the_90th_percentile_of_per_request_itl_not_of_pooled_gaps() -> None:
    # 9 requests decode at 10 ms/token; one decodes at 100 ms/token but over 2 tokens only: pooled gaps
    # would be dominated by the many fast gaps, per-request ITL gives each request one vote
    rep = report([ok(100, (10,) * 20) for _ in range(9)] + [ok(100, (100,))])
    assert rep.itl_ms.n == 10 and rep.itl_ms.p90 == pytest.approx(10 + 0.1 * 90)
    assert rep.inter_chunk_ms.n == 181 and rep.inter_chunk_ms.p90 == pytest.approx(10)


def test_zero_requests_give_empty_statistics_not_crashes() -> None:
    rep = report([], wall_s=0.0)
    assert (rep.count, rep.errors, rep.error_rate, rep.goodput_ratio) == (0, 0, 0.0, 0.0)
    assert rep.ttft_ms.p90 is None and rep.itl_ms.p90 is None and rep.e2e_ms.p99 is None
    assert rep.tokens_per_s == 0.0 and rep.requests_per_s == 0.0
    json.dumps(rep.as_dict())


def test_goodput_counts_requests_meeting_ttft_and_mean_itl_targets_over_all_requests() -> None:
    rep = report(
        [
            ok(100, (10, 10)),  # good
            ok(900, (10, 10)),  # ttft too slow
            ok(100, (5, 95)),  # mean itl 50 ms: too slow
            ok(100, ()),  # one token: no itl, meets the itl target
            failed(),
        ]
    )
    assert rep.goodput(ttft_ms=500, itl_ms=20) == pytest.approx(2 / 5)
    assert rep.goodput(ttft_ms=None, itl_ms=None) == pytest.approx(4 / 5)
    targeted = rep.with_targets({"ttft_p90_ms": 500, "itl_p90_ms": 20})
    assert targeted.goodput_ratio == pytest.approx(2 / 5)


# -- evaluate ------------------------------------------------------------------------------------
SLA = {
    "ttft_p90_ms": 2000,
    "itl_p90_ms": 50,
    "e2e_p99_ms": 10000,
    "max_error_rate": 0.05,
    "min_goodput_ratio": 0.9,
}


def test_evaluate_passes_a_run_within_every_target() -> None:
    verdict = evaluate(report([ok() for _ in range(10)]), SLA)
    assert verdict == Verdict("pass", [], [])
    assert verdict.passed


def test_evaluate_names_each_breach_with_value_and_target() -> None:
    rep = report([ok(2400.1, (60, 60)) for _ in range(10)])
    verdict = evaluate(rep, SLA)
    assert verdict.status == "fail" and not verdict.passed
    assert "ttft p90 2400.1 ms > 2000 ms" in verdict.breaches
    assert "itl p90 60.0 ms > 50 ms" in verdict.breaches
    assert "goodput 0.000 < 0.9" in verdict.breaches
    assert not any(b.startswith("e2e") for b in verdict.breaches)


def test_evaluate_fails_on_error_rate_with_counts_and_first_error() -> None:
    rep = report([ok() for _ in range(9)] + [failed(error="HTTP 503: busy")])
    verdict = evaluate(rep, SLA)
    assert verdict.breaches[0] == "error rate 0.100 > 0.05 (1/10 requests failed; first: HTTP 503: busy)"


def test_evaluate_fails_when_all_requests_failed_even_without_an_error_target() -> None:
    verdict = evaluate(report([failed(None, "connect error: refused")] * 3), {"ttft_p90_ms": 100})
    assert verdict.status == "fail"
    assert verdict.breaches == ["all 3 requests failed; first: connect error: refused"]


def test_evaluate_fails_zero_requests() -> None:
    assert evaluate(report([]), SLA).breaches == ["no requests were run"]


def test_evaluate_skips_itl_with_a_note_when_every_request_had_one_token() -> None:
    verdict = evaluate(report([ok(100, ()) for _ in range(5)]), SLA)
    assert verdict.status == "pass"
    assert any("itl p90 not measured" in note for note in verdict.notes)


def test_evaluate_accepts_objects_and_leaves_unset_targets_unchecked() -> None:
    rep = report([ok(5000, (500,))])
    assert evaluate(rep, SimpleNamespace(ttft_p90_ms=None, itl_p90_ms=None, e2e_p99_ms=None)).passed
    assert evaluate(rep, None).passed
    assert not evaluate(rep, SimpleNamespace(ttft_p90_ms=1000)).passed


# -- compare -------------------------------------------------------------------------------------
def runs(n: int, ttft_ms: float, itl_ms: float = 10.0, errors: int = 0) -> LoadReport:
    return report([ok(ttft_ms, (itl_ms, itl_ms)) for _ in range(n)] + [failed() for _ in range(errors)])


def test_compare_passes_a_candidate_within_allowed_regression() -> None:
    verdict = compare(runs(30, 100), runs(30, 110), {"max_ttft_regression": 0.2, "max_itl_regression": 0.2})
    assert verdict.status == "pass"
    assert "ttft p90 100.0 ms -> 110.0 ms (+10.0%)" in verdict.notes


def test_compare_fails_a_ttft_regression_beyond_the_allowed_fraction() -> None:
    verdict = compare(runs(30, 100), runs(30, 150), CompareThresholds(max_ttft_regression=0.2))
    assert verdict.status == "fail"
    assert verdict.breaches == ["ttft p90 100.0 ms -> 150.0 ms (+50.0%) > 20% allowed"]


def test_compare_fails_an_itl_regression() -> None:
    verdict = compare(runs(30, 100, itl_ms=10), runs(30, 100, itl_ms=20), {"max_itl_regression": 0.1})
    assert verdict.breaches == ["itl p90 10.0 ms -> 20.0 ms (+100.0%) > 10% allowed"]


def test_compare_ignores_regressions_under_the_noise_floor() -> None:
    verdict = compare(runs(30, 100, itl_ms=0.3), runs(30, 100, itl_ms=0.6), {"noise_floor_ms": 1.0})
    assert verdict.status == "pass"


def test_compare_fails_an_error_rate_increase() -> None:
    verdict = compare(runs(30, 100), runs(27, 100, errors=3), {"max_error_rate_increase": 0.05})
    assert verdict.status == "fail"
    assert verdict.breaches == ["error rate 0.100 vs baseline 0.000 (+0.100 > 0.05 allowed)"]


def test_compare_is_inconclusive_when_either_side_has_too_few_successes() -> None:
    verdict = compare(runs(5, 100), runs(30, 500), {"min_samples": 20})
    assert verdict.status == "inconclusive" and not verdict.passed
    assert verdict.breaches == []
    assert verdict.notes == ["baseline has 5 successful requests < min_samples 20"]
    assert compare(runs(30, 100), runs(3, 100), {"min_samples": 20}).status == "inconclusive"


def test_compare_fails_a_candidate_whose_requests_all_failed_rather_than_calling_it_inconclusive() -> None:
    verdict = compare(runs(30, 100), runs(0, 0, errors=30), {"min_samples": 20})
    assert verdict.status == "fail"
    assert verdict.breaches[0].startswith("error rate 1.000 vs baseline 0.000")


def test_compare_takes_the_spec_canary_section() -> None:
    canary = CanarySpec(max_ttft_regression=0.1, max_error_rate=0.0, min_samples=20)
    assert compare(runs(30, 100), runs(30, 105), canary).status == "pass"
    assert compare(runs(30, 100), runs(30, 120), canary).status == "fail"
    assert compare(runs(30, 100), runs(29, 100, errors=1), canary).breaches[-1] == "error rate 0.033 > 0"


def test_compare_with_empty_runs_is_inconclusive() -> None:
    verdict = compare(report([]), report([]), None)
    assert verdict.status == "inconclusive"


def test_compare_notes_when_neither_side_has_itl() -> None:
    base = report([ok(100, ()) for _ in range(25)])
    verdict = compare(base, base)
    assert verdict.status == "pass"
    assert any("itl p90 not compared" in note for note in verdict.notes)


# -- artifacts -----------------------------------------------------------------------------------
def test_smoke_result_as_dict_is_json_ready_with_the_agreed_keys() -> None:
    rep = report([ok() for _ in range(4)] + [failed()], wall_s=2.0).with_targets(SLA)
    result = SmokeResult(["tiny-mock"], rep, evaluate(rep, SLA))
    data = json.loads(json.dumps(result.as_dict()))
    for key in (
        "passed",
        "requests",
        "errors",
        "error_rate",
        "tokens_per_s",
        "requests_per_s",
        "goodput_ratio",
        "breaches",
    ):
        assert key in data
    for key in ("ttft_ms", "itl_ms", "inter_chunk_ms", "e2e_ms"):
        assert set(data[key]) == {"p50", "p90", "p99"}
    assert data["tokens_from"] == {"usage": 0, "chunks": 0}
    assert data["passed"] is False and data["requests"] == 5 and data["errors"] == 1
    assert data["goodput_ratio"] == 0.8
    assert data["breaches"] == list(result.verdict.breaches)


def test_to_table_gives_uniform_metric_value_rows() -> None:
    rows = to_table(report([ok(), failed()]))
    assert all(set(row) == {"metric", "value"} for row in rows)
    values = {row["metric"]: row["value"] for row in rows}
    assert values["requests"] == 2 and values["errors"] == 1 and values["ttft p90 (ms)"] == 100.0


def test_to_markdown_shows_verdict_percentiles_and_breaches() -> None:
    rep = report([ok(2400.1) for _ in range(3)])
    text = to_markdown(rep, evaluate(rep, SLA))
    assert "**Verdict: FAIL**" in text
    assert "| TTFT | 2400.1 | 2400.1 | 2400.1 | 3 |" in text
    assert "- ttft p90 2400.1 ms > 2000 ms" in text
    assert "| ITL |" in text and "| inter-chunk |" in text and "| E2E |" in text
    assert "(last token - first token) / (tokens - 1)" in text
    empty = to_markdown(report([]), evaluate(report([]), SLA))
    assert "| TTFT | - | - | - | 0 |" in empty
