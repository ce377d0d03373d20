"""Pure canary decisions: the traffic plans (by worker share, by route weight), metric parsing, and the
shifted gate."""

from __future__ import annotations

from types import SimpleNamespace

from runtime import canary, metrics
from runtime.sla import LoadReport, RequestResult

PAGE = """# HELP x
dynamo_frontend_requests_total{model="m",status="success"} {ok}
dynamo_frontend_requests_total{model="m",status="error"} {err}
dynamo_work_handler_time_to_first_response_seconds_bucket{le="0.01"} {a}
dynamo_work_handler_time_to_first_response_seconds_bucket{le="0.1"} {b}
dynamo_work_handler_time_to_first_response_seconds_bucket{le="+Inf"} {b}
"""


def page(ok=0, err=0, a=0, b=0) -> str:
    return PAGE.replace("{ok}", str(ok)).replace("{err}", str(err)).replace("{a}", str(a)).replace("{b}", str(b))


def test_traffic_plan_by_worker_share():
    plan = canary.traffic_plan([10, 50, 100], stable_workers=2, can_shift=True)
    assert [(s.percent, s.canary_workers, s.share) for s in plan] == [(0, 0, 0.0), (10, 1, 0.333), (50, 2, 0.5)]
    one = canary.traffic_plan([10, 50, 100], stable_workers=1, can_shift=True)
    assert [s.canary_workers for s in one] == [0, 1]  # 10% and 50% both need one worker: collapsed
    assert canary.traffic_plan([10, 100], 4, can_shift=False) == [canary.Step(0, 0.0)]
    assert [s.shifted for s in plan] == [False, True, True]
    assert [s.label() for s in plan] == ["side-by-side", "10%", "50%"]


def test_weighted_plan_takes_each_percentage_as_asked():
    plan = canary.weighted_plan([5, 25, 50, 100])
    assert [(s.percent, s.share, s.canary_workers) for s in plan] == [(0, 0.0, 0), (5, 0.05, 0), (25, 0.25, 0),
                                                                      (50, 0.5, 0)]
    assert canary.weighted_plan([100]) == canary.side_by_side_plan()


def test_histogram_quantile_and_frontend_summary():
    before, after = page(ok=10, a=5, b=10), page(ok=30, err=2, a=5, b=30)
    summary = metrics.frontend_summary(before, after)
    assert summary["requests"] == 22 and summary["errors"] == 2
    # 20 new samples, all in (10 ms, 100 ms]: p90 interpolates to 91 ms
    q = metrics.quantile(metrics.delta(metrics.histogram(metrics.parse(after), "dynamo_work_handler_time_to_first_response_seconds"),
                                       metrics.histogram(metrics.parse(before), "dynamo_work_handler_time_to_first_response_seconds")), 0.9)
    assert abs(q - 0.091) < 1e-9
    assert metrics.quantile({}, 0.9) is None


def test_group_ttft_p90_merges_pages_and_reads_the_named_histogram():
    before = {"w1": page(a=0, b=0), "w2": page(a=0, b=0)}
    after = {"w1": page(a=10, b=10), "w2": page(a=0, b=10)}
    p90 = canary.group_ttft_p90_ms(before, after)
    assert 10 < p90 <= 100
    assert canary.group_ttft_p90_ms({}, {}) is None
    frontend = ("dynamo_frontend_time_to_first_token_seconds",)
    assert canary.group_ttft_p90_ms(before, after, frontend) is None  # the pages carry worker histograms only
    fe_after = {"f": 'dynamo_frontend_time_to_first_token_seconds_bucket{le="0.05"} 9\n'
                     'dynamo_frontend_time_to_first_token_seconds_bucket{le="+Inf"} 10\n'}
    assert canary.group_ttft_p90_ms({}, fe_after, frontend) == 50.0


def report(n: int, errors: int = 0) -> LoadReport:
    results = [RequestResult(ok=i >= errors, status=200 if i >= errors else 500, error=None if i >= errors else "x",
                             ttft_s=0.01, itl_s=[0.001], e2e_s=0.02, output_tokens=2, started_at=0.0) for i in range(n)]
    return LoadReport(results=results, wall_s=1.0)


def test_shifted_gate():
    spec = SimpleNamespace(max_ttft_regression=0.2)
    assert canary.shifted_gate(report(10), 50.0, 55.0, spec).status == "pass"
    slow = canary.shifted_gate(report(10), 50.0, 200.0, spec)
    assert slow.status == "fail" and "candidate ttft p90" in slow.breaches[0]
    # bucket noise: a few ms over a tiny baseline is not a regression
    assert canary.shifted_gate(report(10), 2.6, 9.0, spec).status == "pass"
    assert canary.shifted_gate(report(10, errors=1), 50.0, 50.0, spec).status == "fail"
    assert canary.shifted_gate(report(10), None, 50.0, spec).status == "inconclusive"
