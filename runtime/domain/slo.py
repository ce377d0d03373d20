"""Pure: the SLO vocabulary the rules and the live status share, so both name the same series.

Prometheus durations (``5m``, ``1h30m``), the burn-rate windows a spec's alerts look at, and the names of
the recording rules that hold each SLO's burn ratio per window. runtime/render/monitoring.py renders the
rules under these names; runtime/gateways/slo_status.py reads them back from a deployment's Prometheus.
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_s(text: str) -> float:
    """Seconds in a Prometheus duration such as ``1h30m`` or ``500ms``."""
    return sum(int(n) * _UNITS[u] for n, u in re.findall(r"([0-9]+)(ms|s|m|h|d|w)", text))


def windows(spec) -> list[str]:
    """Every window a burn-rate alert of ``spec.monitoring.slo`` looks at, shortest first."""
    out = {w for a in spec.monitoring.slo.burn_alerts for w in (a.long, a.short)}
    return sorted(out, key=duration_s)


def record_name(slo: str, window: str) -> str:
    """e.g. dynadeploy:ttft_over_target:ratio_rate5m (share of requests over target in the window)."""
    what = "errors" if slo == "errors" else f"{slo}_over_target"
    return f"dynadeploy:{what}:ratio_rate{window}"
