"""Pure: the latency histograms of Dynamo 1.6.1's frontend, and at which bucket boundary a target is measured.

Prometheus cannot count "requests over 2000 ms" from a histogram whose buckets are 1 s and 2.2 s: it can
only count requests at a bucket boundary. So a latency target is measured at a boundary: an exact one, or
the next one up when it is within a tolerance of the target. The spec refuses a target with no such
boundary (runtime/spec/monitoring.py) and the rules renderer measures at it (runtime/render/monitoring.py).
The boundaries were read off a real frontend (tests/integration/local/test_monitoring_metrics.py).
"""

from __future__ import annotations

import math

# Dynamo 1.6.1 frontend histogram boundaries (seconds), as exposed in `le` (the 0 and +Inf buckets left out).
TTFT_BUCKETS_S = (
    "0.0022",
    "0.0047",
    "0.01",
    "0.022",
    "0.047",
    "0.1",
    "0.22",
    "0.47",
    "1",
    "2.2",
    "4.7",
    "10",
    "22",
    "48",
    "100",
    "220",
    "480",
)
ITL_BUCKETS_S = (
    "0.0018",
    "0.0033",
    "0.0059",
    "0.011",
    "0.02",
    "0.035",
    "0.064",
    "0.12",
    "0.21",
    "0.38",
    "0.69",
    "1.2",
    "2.3",
    "4.1",
    "7.4",
    "13",
    "24",
    "44",
    "80",
)


class NoBucket(ValueError):
    """A latency target that no histogram boundary measures closely enough."""

    def __init__(self, target_s: float, below: str | None, above: str | None, tolerance: float) -> None:
        self.target_s, self.below, self.above, self.tolerance = target_s, below, above, tolerance
        around = " and ".join(f"{ms(b)} ms" for b in (below, above) if b)
        super().__init__(
            f"the frontend's latency histogram has no bucket boundary at {ms(str(target_s))} ms or within "
            f"{tolerance:.0%} above it (the boundaries around it are {around}), so Prometheus cannot count "
            "the requests over this target"
        )

    def fix(self, field: str) -> str:
        choices = " or ".join(f"{ms(b)}" for b in (self.below, self.above) if b)
        out = f"set smoke.sla.{field} to a bucket boundary ({choices})"
        if self.above:
            need = float(self.above) / self.target_s - 1
            out += (
                f", or raise monitoring.slo.bucket_tolerance to {math.ceil(need * 100) / 100:g} "
                f"to measure it at {ms(self.above)} ms"
            )
        return out


def ms(le: str) -> str:
    """A boundary (seconds, as `le` spells it) in ms, as messages show it."""
    return f"{float(le) * 1000:g}"


def bucket_for(target_s: float, buckets: tuple[str, ...], tolerance: float) -> str:
    """The ``le`` boundary at which a target is measured: an exact boundary, else the next one up when
    it is at most ``tolerance`` (relative) above the target; else NoBucket."""
    for le in buckets:
        value = float(le)
        if math.isclose(value, target_s, rel_tol=1e-9):
            return le
        if value > target_s:
            if value <= target_s * (1 + tolerance) * (1 + 1e-9):
                return le
            below = [b for b in buckets if float(b) < target_s]
            raise NoBucket(target_s, below[-1] if below else None, le, tolerance)
    raise NoBucket(target_s, buckets[-1], None, tolerance)
