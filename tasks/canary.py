"""Canary steps as Prefect tasks. The mechanics are per target (runtime/targets/base.py CanaryMechanics:
plan, stage, shift, reach, unshift, drop; runtime/targets/registry.py says which target has which); targets
without them get a NotSupportedError naming what they lack. Each task builds the stable and candidate
backends itself (tasks/targets.py), so cloud credentials are resolved inside it and never travel.

The analysis is one task per window: it holds the addresses (port-forwards on a cluster) for the
window, scrapes the metrics before, drives the bounded load, scrapes after, and returns the raw
numbers; the verdict is computed by the pure gate in the flow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from runtime.domain.canary import Step
from runtime.gateways import loadgen
from runtime.gateways.scrape import scrape
from runtime.targets.base import ServingBackend, StagedCandidate, Status
from tasks._policy import TRANSIENT
from tasks.secrets import resolve_model_token
from tasks.targets import backend, mechanics


def plan(stable: ServingBackend, status: Status) -> tuple[list[Step], str]:
    """The steps before promotion and how traffic is shifted, from stable's backend and its status."""
    return mechanics(stable.spec).plan(stable, status)


@task(name="stage-candidate", cache_policy=NO_CACHE, timeout_seconds=1800, **TRANSIENT)
def stage_candidate(spec, candidate) -> StagedCandidate:
    return mechanics(spec).stage(backend(spec), backend(candidate), token=resolve_model_token(candidate))


@task(name="shift-traffic", cache_policy=NO_CACHE, timeout_seconds=600, **TRANSIENT)
def shift_traffic(spec, candidate, step: Step, staged: StagedCandidate) -> Mapping[str, Any]:
    return mechanics(spec).shift(backend(spec), backend(candidate), step, staged)


@task(name="withdraw-candidate", cache_policy=NO_CACHE, timeout_seconds=900, **TRANSIENT)
def withdraw_candidate(spec, candidate) -> dict:
    """Stable keeps serving throughout: traffic goes back to stable first, then the candidate goes."""
    mech, stable = mechanics(spec), backend(spec)
    return {"unshifted": mech.unshift(stable), "dropped": mech.drop(stable, backend(candidate))}


def _scrape_all(urls: list[str]) -> dict[str, str]:
    return {u: scrape(u) for u in urls}


def _load(
    targets: dict[str, tuple[str, str | None]],
    model: str,
    requests: int,
    concurrency: int,
    max_tokens: int,
    prompt: str,
    timeout_s: float,
) -> dict:
    async def every():
        return await asyncio.gather(
            *(
                loadgen.run_load(
                    url,
                    model,
                    requests=requests,
                    concurrency=concurrency,
                    max_tokens=max_tokens,
                    prompt=prompt,
                    timeout_s=timeout_s,
                    host=host,
                )
                for url, host in targets.values()
            )
        )

    return dict(zip(targets, loadgen.run_sync(every()), strict=True))


@task(name="analyse-side-by-side", cache_policy=NO_CACHE, timeout_seconds=900)
def measure_side_by_side(
    spec, candidate, requests: int, concurrency: int, max_tokens: int, prompt: str, timeout_s: float
) -> dict:
    """Identical bounded load at both frontends at once, each request paired in time with its twin at the
    other side (loadgen.run_paired_load): per side the report and the frontend's metrics before and after."""
    with mechanics(spec).reach(backend(spec), backend(candidate)) as r:
        urls = {"stable": r.stable, "candidate": r.candidate}
        before = {k: scrape(u) for k, u in urls.items()}
        reports = loadgen.run_sync(
            loadgen.run_paired_load(
                urls,
                spec.model.served(),
                requests=requests,
                concurrency=concurrency,
                max_tokens=max_tokens,
                prompt=prompt,
                timeout_s=timeout_s,
            )
        )
        after = {k: scrape(u) for k, u in urls.items()}
    return {k: {"report": reports[k], "before": before[k], "after": after[k]} for k in urls}


@task(name="analyse-shifted", cache_policy=NO_CACHE, timeout_seconds=900)
def measure_shifted(
    spec, candidate, requests: int, concurrency: int, max_tokens: int, prompt: str, timeout_s: float
) -> dict:
    """Bounded load where real traffic enters (the share the step set goes to the candidate), and each
    side's own TTFT histograms before and after."""
    with mechanics(spec).reach(backend(spec), backend(candidate)) as r:
        before = {side: _scrape_all(urls) for side, urls in r.groups.items()}
        report = _load(
            {"entry": (r.entry, r.entry_host)},
            spec.model.served(),
            requests,
            concurrency,
            max_tokens,
            prompt,
            timeout_s,
        )["entry"]
        after = {side: _scrape_all(urls) for side, urls in r.groups.items()}
    return {
        "report": report,
        "before": before,
        "after": after,
        "ttft_metrics": list(r.ttft_metrics),
        "entry": r.entry,
    }
