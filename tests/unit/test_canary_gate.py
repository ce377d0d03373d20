"""Pure canary decisions: the traffic plans (by worker share, by route weight), metric parsing, and the
shifted gate."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runtime.domain import canary, metrics
from runtime.domain.sla import LoadReport, RequestResult

PAGE = """# HELP x
dynamo_frontend_requests_total{model="m",status="success"} {ok}
dynamo_frontend_requests_total{model="m",status="error"} {err}
dynamo_work_handler_time_to_first_response_seconds_bucket{le="0.01"} {a}
dynamo_work_handler_time_to_first_response_seconds_bucket{le="0.1"} {b}
dynamo_work_handler_time_to_first_response_seconds_bucket{le="+Inf"} {b}
"""


def page(ok=0, err=0, a=0, b=0) -> str:
    return (
        PAGE.replace("{ok}", str(ok)).replace("{err}", str(err)).replace("{a}", str(a)).replace("{b}", str(b))
    )


def test_traffic_plan_by_worker_share():
    plan = canary.traffic_plan([10, 50, 100], stable_workers=2, can_shift=True)
    assert [(s.percent, s.canary_workers, s.share) for s in plan] == [
        (0, 0, 0.0),
        (10, 1, 0.333),
        (50, 2, 0.5),
    ]
    one = canary.traffic_plan([10, 50, 100], stable_workers=1, can_shift=True)
    assert [s.canary_workers for s in one] == [0, 1]  # 10% and 50% both need one worker: collapsed
    assert canary.traffic_plan([10, 100], 4, can_shift=False) == [canary.Step(0, 0.0)]
    assert [s.shifted for s in plan] == [False, True, True]
    assert [s.label() for s in plan] == ["side-by-side", "10%", "50%"]


def test_weighted_plan_takes_each_percentage_as_asked():
    plan = canary.weighted_plan([5, 25, 50, 100])
    assert [(s.percent, s.share, s.canary_workers) for s in plan] == [
        (0, 0.0, 0),
        (5, 0.05, 0),
        (25, 0.25, 0),
        (50, 0.5, 0),
    ]
    assert canary.weighted_plan([100]) == canary.side_by_side_plan()


def test_histogram_quantile_and_frontend_summary():
    before, after = page(ok=10, a=5, b=10), page(ok=30, err=2, a=5, b=30)
    summary = metrics.frontend_summary(before, after)
    assert summary["requests"] == 22 and summary["errors"] == 2
    # 20 new samples, all in (10 ms, 100 ms]: p90 interpolates to 91 ms
    q = metrics.quantile(
        metrics.delta(
            metrics.histogram(metrics.parse(after), "dynamo_work_handler_time_to_first_response_seconds"),
            metrics.histogram(metrics.parse(before), "dynamo_work_handler_time_to_first_response_seconds"),
        ),
        0.9,
    )
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
    fe_after = {
        "f": 'dynamo_frontend_time_to_first_token_seconds_bucket{le="0.05"} 9\n'
        'dynamo_frontend_time_to_first_token_seconds_bucket{le="+Inf"} 10\n'
    }
    assert canary.group_ttft_p90_ms({}, fe_after, frontend) == 50.0


def report(n: int, errors: int = 0) -> LoadReport:
    results = [
        RequestResult(
            ok=i >= errors,
            status=200 if i >= errors else 500,
            error=None if i >= errors else "x",
            ttft_s=0.01,
            itl_s=[0.001],
            e2e_s=0.02,
            output_tokens=2,
            started_at=0.0,
        )
        for i in range(n)
    ]
    return LoadReport(results=results, wall_s=1.0)


def test_shifted_gate():
    spec = SimpleNamespace(max_ttft_regression=0.2)
    assert canary.shifted_gate(report(10), 50.0, 55.0, spec).status == "pass"
    slow = canary.shifted_gate(report(10), 50.0, 200.0, spec)
    assert slow.status == "fail" and "candidate ttft p90" in slow.breaches[0]
    # bucket noise: a few ms over a tiny baseline is not a regression
    assert canary.shifted_gate(report(10), 2.6, 9.0, spec).status == "pass"
    # one failed request holds the step (measured again) since the gate's errors rule changed; two fail it
    assert canary.shifted_gate(report(10, errors=1), 50.0, 50.0, spec).status == "inconclusive"
    assert canary.shifted_gate(report(10, errors=2), 50.0, 50.0, spec).status == "fail"
    assert canary.shifted_gate(report(10), None, 50.0, spec).status == "inconclusive"


# --- the side-by-side gate on synthetic samples ----------------------------------------------------------

import random  # noqa: E402 - section-local import, kept next to the tests that use it

from runtime.domain.sla import Verdict  # noqa: E402 - section-local import, kept next to the tests that use it

SPEC = SimpleNamespace(max_ttft_regression=0.2, max_itl_regression=0.2, max_error_rate=0.0, min_samples=20)


def sampled(
    rng: random.Random,
    n: int,
    ttft_ms: float,
    itl_ms: float = 1.0,
    sigma: float = 0.35,
    errors: int = 0,
    stall: float = 0.0,
) -> LoadReport:
    """n requests whose TTFT and ITL are log-normal around the given medians (a latency's usual shape);
    ``stall``: the chance that a request also waits for a busy core (an extra 20-80 ms), as on a shared box."""
    out = []
    for i in range(n):
        if i < errors:
            out.append(RequestResult(ok=False, status=None, error="timed out", e2e_s=60.0))
            continue
        extra = rng.uniform(20, 80) if rng.random() < stall else 0.0
        ttft = rng.lognormvariate(0, sigma) * ttft_ms + extra
        gaps = [rng.lognormvariate(0, sigma) * itl_ms / 1000 for _ in range(7)]
        out.append(
            RequestResult(ok=True, status=200, ttft_s=ttft / 1000, itl_s=gaps, e2e_s=0.1, output_tokens=8)
        )
    rng.shuffle(out)
    return LoadReport(results=out, wall_s=1.0)


def test_mann_whitney_matches_the_textbook():
    # fully separated samples of 10: U = 100, z = (100 - 50 - 0.5) / sqrt(175) -> p = 9.1e-5
    p, share = canary.mann_whitney_greater(list(range(10)), list(range(10, 20)))
    assert abs(p - 9.13e-5) < 2e-6 and share == 1.0
    p, share = canary.mann_whitney_greater(list(range(10, 20)), list(range(10)))
    assert p > 0.999 and share == 0.0
    # all tied: no evidence either way (tie correction makes the variance 0)
    assert canary.mann_whitney_greater([5.0] * 8, [5.0] * 8) == (1.0, 0.5)
    # heavy ties (bucketed values) keep p a probability and the identical case far from significant
    p, share = canary.mann_whitney_greater([1, 1, 2, 2, 3] * 6, [1, 1, 2, 2, 3] * 6)
    assert 0.4 < p < 0.6 and share == 0.5
    p, _ = canary.mann_whitney_greater([1, 1, 2, 2, 3] * 6, [1, 2, 2, 3, 3] * 6)
    assert p < 0.05


def test_fisher_exact():
    assert canary.fisher_greater(0, 40, 0, 40) == 1.0
    assert canary.fisher_greater(0, 40, 1, 40) == 0.5  # one error lands on either side by chance
    assert canary.fisher_greater(0, 40, 40, 40) < 1e-20


@pytest.mark.slow  # many seeded resamples: make unit-slow / make test run it
def test_same_distribution_never_fails_across_many_seeds():
    """No false rollbacks: both sides drawn alike (with stalls from a busy machine) never fail, and pass
    in the vast majority of single analyses (the rest ask for more samples)."""
    statuses = {"pass": 0, "inconclusive": 0, "fail": 0}
    for seed in range(200):
        rng = random.Random(seed)
        v = canary.side_by_side_gate(sampled(rng, 40, 30, stall=0.1), sampled(rng, 40, 30, stall=0.1), SPEC)
        statuses[v.status] += 1
    assert statuses["fail"] == 0, statuses
    assert statuses["pass"] >= 180, statuses


@pytest.mark.slow  # many seeded resamples: make unit-slow / make test run it
def test_a_faster_candidate_passes():
    for seed in range(100):
        rng = random.Random(seed)
        v = canary.side_by_side_gate(sampled(rng, 40, 30, stall=0.1), sampled(rng, 40, 25, stall=0.1), SPEC)
        assert v.status != "fail", v.summary()


def with_holds(stable_ttft: float, cand_ttft: float, seed: int, holds: int = 2, **kw) -> tuple[str, int]:
    """What flows.canary does with a step: judge, and while inconclusive measure again and pool the samples.
    Returns the final status (a step still inconclusive after its holds fails) and the analyses it took."""
    rng = random.Random(seed)
    base, cand = [], []
    for attempt in range(holds + 1):
        base.append(sampled(rng, 40, stable_ttft, **kw))
        cand.append(sampled(rng, 40, cand_ttft, **kw))
        v = canary.side_by_side_gate(canary.pool(base), canary.pool(cand), SPEC)
        if v.status != "inconclusive":
            return v.status, attempt + 1
    return "fail", holds + 1


@pytest.mark.slow  # many seeded resamples: make unit-slow / make test run it
def test_twice_the_ttft_always_fails():
    for seed in range(200):  # quiet machine: the first analysis fails it
        rng = random.Random(seed)
        v = canary.side_by_side_gate(sampled(rng, 40, 30), sampled(rng, 40, 60), SPEC)
        assert v.status == "fail", (seed, v.summary())
        assert v.breaches[0].startswith("TTFT p90 ") and "regression beyond" in v.breaches[0]
    # a loaded machine (10 % of requests stall 20-80 ms on both sides): some first analyses are not
    # conclusive, but the step, pooled over its holds, always ends failed
    outcomes = [with_holds(30, 60, seed, stall=0.1) for seed in range(100)]
    assert all(status == "fail" for status, _ in outcomes)
    assert sum(n == 1 for _, n in outcomes) >= 50


@pytest.mark.slow  # many seeded resamples: make unit-slow / make test run it
def test_same_distribution_with_holds_never_fails_and_rarely_holds():
    outcomes = [with_holds(30, 30, seed, stall=0.1) for seed in range(100)]
    assert all(status == "pass" for status, _ in outcomes)
    assert sum(n > 1 for _, n in outcomes) <= 10


def test_twice_the_itl_fails():
    rng = random.Random(1)
    v = canary.side_by_side_gate(sampled(rng, 40, 30, itl_ms=5), sampled(rng, 40, 30, itl_ms=10), SPEC)
    assert v.status == "fail" and v.breaches[0].startswith("ITL p90")


def test_too_few_samples_for_a_p90_is_inconclusive_and_says_how_many():
    rng = random.Random(2)
    v = canary.side_by_side_gate(sampled(rng, 24, 30), sampled(rng, 24, 300), SimpleNamespace(min_samples=12))
    assert v.status == "inconclusive"
    assert "24 stable and 24 candidate samples; a p90 is judged from 29 per side on" in v.summary()
    # pooled over a hold, the same evidence is enough
    more = canary.pool([sampled(rng, 24, 30), sampled(rng, 24, 30)])
    slow = canary.pool([sampled(rng, 24, 300), sampled(rng, 24, 300)])
    assert (
        more.count == 48
        and canary.side_by_side_gate(more, slow, SimpleNamespace(min_samples=12)).status == "fail"
    )


def test_absolute_floor_a_big_percentage_of_a_tiny_latency_does_not_count():
    # 2 ms -> 6 ms TTFT is +200 %, but under the 10 ms floor
    rng = random.Random(3)
    v = canary.side_by_side_gate(sampled(rng, 60, 2, sigma=0.1), sampled(rng, 60, 6, sigma=0.1), SPEC)
    assert v.status == "pass", v.summary()
    assert "within the 10.0 ms allowed (20% of stable, at least 10 ms)" in v.summary()
    # a floor of 1 ms makes it count
    strict = SimpleNamespace(**vars(SPEC), ttft_floor_ms=1.0)
    assert (
        canary.side_by_side_gate(
            sampled(rng, 60, 2, sigma=0.1), sampled(rng, 60, 6, sigma=0.1), strict
        ).status
        == "fail"
    )


@pytest.mark.slow  # many seeded resamples: make unit-slow / make test run it
def test_a_borderline_change_asks_for_more_samples_before_failing():
    # a third slower (30 -> 40 ms): near the bound, so 40 requests a side often cannot settle it
    seen = set()
    for seed in range(30):
        rng = random.Random(seed)
        v = canary.side_by_side_gate(sampled(rng, 40, 30), sampled(rng, 40, 40), SPEC)
        seen.add(v.status)
        if v.status == "inconclusive":
            assert "may be a regression beyond" in v.summary() and "more samples are needed" in v.summary()
    assert "inconclusive" in seen
    # the holds settle it on pooled samples (near the bound, either way): some steps needed them
    outcomes = [with_holds(30, 40, seed) for seed in range(20)]
    assert any(n > 1 for _, n in outcomes) and {s for s, _ in outcomes} <= {"pass", "fail"}


def test_errors_judged_on_evidence():
    rng = random.Random(4)
    one = canary.side_by_side_gate(sampled(rng, 40, 30), sampled(rng, 40, 30, errors=1), SPEC)
    assert one.status == "inconclusive" and "Fisher's exact test p=0.5" in one.summary()
    many = canary.side_by_side_gate(sampled(rng, 40, 30), sampled(rng, 40, 30, errors=10), SPEC)
    assert many.status == "fail" and "10 of 40 candidate requests failed" in many.breaches[0]
    assert "first: timed out" in many.breaches[0]
    dead = canary.side_by_side_gate(sampled(rng, 40, 30), sampled(rng, 40, 30, errors=40), SPEC)
    assert dead.status == "fail"
    alike = canary.side_by_side_gate(sampled(rng, 40, 30, errors=1), sampled(rng, 40, 30, errors=1), SPEC)
    assert alike.status == "pass", alike.summary()


def test_verdict_explains_itself():
    rng = random.Random(5)
    v = canary.side_by_side_gate(sampled(rng, 40, 30, sigma=0.1), sampled(rng, 40, 60, sigma=0.1), SPEC)
    text = v.summary()
    assert isinstance(v, Verdict) and text.startswith("fail: TTFT p90 ")
    for words in (
        "ms (+",
        "is a regression beyond the",
        "ms allowed (20% of stable, at least 10 ms)",
        "or more and",
        "ms or less with 95% confidence each",
        "rank test p=",
        "(counts under 0.0083)",
        "candidate slower in",
    ):
        assert words in text, text


def test_gate_settings_fill_defaults_from_an_unset_spec_field():
    from runtime.spec import CanarySpec

    g = canary.GateSettings.of(CanarySpec())
    assert (g.ttft_floor_ms, g.itl_floor_ms, g.confidence, g.holds, g.needed) == (10.0, 2.0, 0.95, 2, 29)
    assert canary.GateSettings.of(CanarySpec(min_samples=35, holds=0)).needed == 35


def test_shifted_gate_asks_the_rank_test_before_failing_a_bucketed_p90():
    spec = SimpleNamespace(max_ttft_regression=0.2)
    # cumulative buckets (s): stable mostly under 4.7 ms, candidate a few more in (10, 22] ms
    stable = {0.0047: 28, 0.01: 29, 0.022: 30, float("inf"): 30}
    noisy = {0.0047: 24, 0.01: 24, 0.022: 30, float("inf"): 30}
    slow = {0.0047: 0, 0.01: 2, 0.022: 30, float("inf"): 30}
    assert canary.bucket_samples({0.01: 2, 0.1: 3, float("inf"): 3}) == [10.0, 10.0, 100.0]
    p_s, p_n, p_slow = (metrics.quantile(b, 0.9) * 1000 for b in (stable, noisy, slow))
    assert p_n > p_s * 1.2 + canary.WORKER_NOISE_FLOOR_MS  # the p90s alone would fail it
    v = canary.shifted_gate(report(10), p_s, p_n, spec, stable, noisy)
    assert v.status == "inconclusive" and "not beyond noise" in v.summary() and "more samples" in v.summary()
    v = canary.shifted_gate(report(10), p_s, p_slow, spec, stable, slow)
    assert v.status == "fail" and "rank test on 30 stable and 30 candidate observations" in v.breaches[0]
    assert canary.shifted_gate(report(10, errors=2), p_s, p_n, spec, stable, noisy).status == "fail"


def test_shifted_gate_holds_on_one_failed_request_and_fails_on_a_second():
    spec = SimpleNamespace(max_ttft_regression=0.2)
    one = canary.shifted_gate(report(40, errors=1), 50.0, 50.0, spec)
    assert (
        one.status == "inconclusive"
        and "1 of 40 requests failed at the stable endpoint (first: x)" in one.summary()
    )
    assert "a second failure fails the step" in one.summary()
    # the hold's window saw none: a one-off
    later = canary.shifted_gate(
        canary.pool([report(40, errors=1), report(40)]), 50.0, 50.0, spec, latest=report(40)
    )
    assert later.status == "pass" and "tolerated as a one-off" in later.summary()
    two = canary.shifted_gate(
        canary.pool([report(40, errors=1), report(40, errors=1)]),
        50.0,
        50.0,
        spec,
        latest=report(40, errors=1),
    )
    assert two.status == "fail" and "2 of 80 requests failed" in two.breaches[0]
    assert canary.shifted_gate(report(40, errors=5), 50.0, 50.0, spec).status == "fail"
    # a share of failures the spec allows is no breach
    lenient = SimpleNamespace(max_ttft_regression=0.2, max_error_rate=0.1)
    assert canary.shifted_gate(report(40, errors=2), 50.0, 50.0, lenient).status == "pass"


# -- the side-by-side load is paired in time (runtime/gateways/loadgen.run_paired_load) ----------------
def test_paired_load_sends_each_request_to_both_sides_at_once_alternating_which_goes_first():
    import asyncio
    import re

    from runtime.gateways import loadgen
    from tests.unit.test_loadgen_framing import SSE_HEAD, chunked, events

    whole = SSE_HEAD + chunked(events())
    arrivals: list[str] = []
    in_flight = {"stable": 0, "candidate": 0}
    most = {"stable": 0, "candidate": 0}

    def server(side: str, delay_s: float):
        async def handle(reader, writer):
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    await reader.readexactly(int(re.search(rb"(?i)content-length: *(\d+)", head)[1]))
                    arrivals.append(side)
                    in_flight[side] += 1
                    most[side] = max(most[side], in_flight[side])
                    await asyncio.sleep(delay_s)
                    in_flight[side] -= 1
                    writer.write(whole)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        return handle

    async def main():
        async with (
            await asyncio.start_server(server("stable", 0.001), "127.0.0.1", 0) as a,
            await asyncio.start_server(server("candidate", 0.02), "127.0.0.1", 0) as b,
        ):
            urls = {
                k: f"http://127.0.0.1:{s.sockets[0].getsockname()[1]}"
                for k, s in (("stable", a), ("candidate", b))
            }
            return await loadgen.run_paired_load(
                urls, "tiny-mock", requests=12, concurrency=1, max_tokens=3, prompt="hi", timeout_s=10
            )

    reports = asyncio.run(main())
    assert {k: (r.count, r.errors) for k, r in reports.items()} == {"stable": (12, 0), "candidate": (12, 0)}
    # one lane: pair i is sent at once to both sides, and pair i+1 only when both answered, even though
    # the stable side answers 20x faster (a drift in load then reaches both sides of a pair alike)
    assert most == {"stable": 1, "candidate": 1}
    pairs = [arrivals[i : i + 2] for i in range(0, 24, 2)]
    assert all(sorted(p) == ["candidate", "stable"] for p in pairs), pairs
    # which side's request goes out first alternates, so the send order favours neither
    assert [p[0] for p in pairs] == ["stable", "candidate"] * 6, pairs
    starts = {k: [res.started_at for res in r.results] for k, r in reports.items()}
    assert all(abs(s - c) < 0.5 for s, c in zip(starts["stable"], starts["candidate"], strict=True))


def test_the_local_baseline_graph_is_stable_s_spec_under_its_own_name_and_port(tmp_path):
    from runtime.spec import load_spec
    from runtime.targets.local.canary import baseline_backend, candidate_backend

    for name in ("demo", "a" * 40):
        path = tmp_path / f"{name[:8]}.yaml"
        path.write_text(
            f"apiVersion: dynadeploy.io/v1\nname: {name}\ntarget: {{kind: local, state_dir: {tmp_path},"
            " frontend_port: 18000}\nmodel: {id: dynadeploy/tiny-mock}\nserving: {topology: agg}\n"
        )
        spec = load_spec(path)
        base = baseline_backend(spec)
        assert base.spec.name.endswith("-baseline") and len(base.spec.name) <= 40
        assert base.spec.name not in (spec.name, candidate_backend(spec).spec.name)
        assert base.spec.target.frontend_port is None  # a port of its own, never stable's pinned one
        assert base.spec.serving == spec.serving and base.spec.model == spec.model
