"""Canary steps as Prefect tasks. The mechanics are per target (runtime/<target>/canary.py);
targets without them get a NotSupportedError naming what they lack."""

from __future__ import annotations

import asyncio
from importlib import import_module

from prefect import task
from prefect.cache_policies import NO_CACHE

from runtime import loadgen
from runtime.backends import backend_for
from runtime.errors import NotSupportedError
from runtime.scrape import scrape
from tasks._policy import TRANSIENT

_MECHANICS = {"local": "runtime.local.canary"}


def mechanics(spec):
    try:
        return import_module(_MECHANICS[spec.target.kind])
    except KeyError:
        raise NotSupportedError(f"canary is not available for target kind {spec.target.kind!r} yet",
                                hint=f"canaries run on: {', '.join(sorted(_MECHANICS))}") from None


@task(name="stage-candidate", cache_policy=NO_CACHE, timeout_seconds=900, **TRANSIENT)
def stage_candidate(candidate) -> dict:
    return mechanics(candidate).stage(candidate)


@task(name="shift-traffic", cache_policy=NO_CACHE, timeout_seconds=600, **TRANSIENT)
def shift_traffic(spec, candidate, workers: int, engine: str) -> dict:
    return mechanics(spec).shift(backend_for(spec), candidate, workers, engine)


@task(name="withdraw-candidate", cache_policy=NO_CACHE, timeout_seconds=600, **TRANSIENT)
def withdraw_candidate(spec, candidate) -> dict:
    """Stable keeps serving throughout: canary workers drain and stop, then the candidate graph goes."""
    mech = mechanics(spec)
    return {"retired": mech.unshift(backend_for(spec)), "dropped": mech.drop(candidate)}


@task(name="worker-endpoints", cache_policy=NO_CACHE)
def worker_endpoints(spec) -> dict[str, list[str]]:
    return mechanics(spec).worker_endpoints(backend_for(spec))


def scrape_all(urls: list[str]) -> dict[str, str]:
    return {u: scrape(u) for u in urls}


@task(name="analyse", cache_policy=NO_CACHE, timeout_seconds=900)
def drive_load(endpoints: dict[str, str], model: str, requests: int, concurrency: int, max_tokens: int,
               prompt: str, timeout_s: float) -> dict:
    """Identical bounded load at every endpoint at once; returns per endpoint the report and the
    frontend metrics scraped before and after."""
    before = {k: scrape(u) for k, u in endpoints.items()}

    async def both():
        return await asyncio.gather(*(loadgen.run_load(u, model, requests=requests, concurrency=concurrency,
                                                       max_tokens=max_tokens, prompt=prompt, timeout_s=timeout_s)
                                      for u in endpoints.values()))

    reports = loadgen.run_sync(both())
    after = {k: scrape(u) for k, u in endpoints.items()}
    return {k: {"report": r, "before": before[k], "after": after[k]} for k, r in zip(endpoints, reports)}
