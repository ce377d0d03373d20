"""Pure: the canary's traffic plan, the steps a candidate goes through before promotion.

Side by side first (identical load on both graphs, no real traffic shifted), then the shares of real traffic
the spec's ``canary.steps`` ask for, made by weight where a traffic layer splits by weight and by worker
count on the local target. ``Reach`` is where a step's analysis sends load and reads metrics. The gate
that judges each step is runtime/domain/canary.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    percent: int  # what the spec asked for
    share: float  # the share of real traffic the candidate actually gets (0 = side by side only)
    canary_workers: int = 0  # local target: candidate workers serving beside the stable ones

    @property
    def shifted(self) -> bool:
        return self.share > 0

    def label(self) -> str:
        return f"{self.percent}%" if self.shifted else "side-by-side"


@dataclass(frozen=True)
class Reach:
    """Where a canary's analysis sends load and reads metrics, valid while the mechanics' ``reach`` lasts."""

    stable: str  # the frontend standing for stable side by side (locally a fresh baseline copy of stable)
    candidate: str | None  # the candidate graph's frontend (None once it is gone)
    entry: str  # where real traffic enters (a route, or the stable frontend when routing happens behind it)
    entry_host: str | None  # the Host header the entry needs (a route's hostname), None: the URL's
    groups: dict[str, list[str]]  # "stable"/"candidate" -> the /metrics endpoints whose TTFT the gate reads
    ttft_metrics: tuple[str, ...]  # the TTFT histogram names to read from those, first found wins


def side_by_side_plan() -> list[Step]:
    return [Step(0, 0.0)]


def traffic_plan(steps: list[int], stable_workers: int, can_shift: bool) -> list[Step]:
    """Steps before promotion. Dynamo's router spreads requests over instances, so locally a share
    is made by worker count: k candidate workers beside n stable ones take k/(n+k) of the traffic.
    Each step gets the smallest k reaching its percentage; duplicates collapse. 100% is promotion.
    """
    plan = side_by_side_plan()
    if not can_shift:
        return plan
    for pct in steps:
        if pct >= 100:
            break
        k = max(1, math.ceil(pct * stable_workers / (100 - pct)))
        if plan[-1].canary_workers != k:
            plan.append(Step(pct, round(k / (stable_workers + k), 3), k))
    return plan


def weighted_plan(steps: list[int]) -> list[Step]:
    """Steps before promotion where a traffic layer splits by weight: each percentage as asked."""
    return side_by_side_plan() + [Step(pct, pct / 100) for pct in steps if pct < 100]
