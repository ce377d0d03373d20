"""The live SLO state of a deployment, read from its Prometheus: burn rates per SLO and window, and the
alerts firing or pending. What `dynadeploy status` shows when the deployment has monitoring."""

from __future__ import annotations

import json
import math
import urllib.parse
import urllib.request

from runtime.domain.slo import record_name, windows


def _get(url: str, timeout: float) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def slo_state(spec, prometheus_url: str, timeout: float = 3.0) -> dict:
    """{"prometheus", "burn_rates": {"ttft 5m": 0.3, ...}, "alerts": [{name, state, slo, window}],
    "error"?}."""
    out: dict = {"prometheus": prometheus_url, "burn_rates": {}, "alerts": []}
    slo = spec.monitoring.slo
    budget = {
        "ttft": 1 - slo.latency_objective,
        "itl": 1 - slo.latency_objective,
        "errors": 1 - slo.error_objective,
    }
    try:
        for name in ("ttft", "itl", "errors"):
            for window in windows(spec):
                q = f'{record_name(name, window)}{{deployment="{spec.name}"}}'
                res = _get(f"{prometheus_url}/api/v1/query?query={urllib.parse.quote(q)}", timeout)["data"][
                    "result"
                ]
                value = float(res[0]["value"][1]) if res else math.nan
                # No traffic in the window: the ratio is 0/0 = NaN. None (JSON null, "no data"), never NaN,
                # which would print as "nanx" and is not valid JSON.
                out["burn_rates"][f"{name} {window}"] = (
                    round(value / budget[name], 3) if math.isfinite(value) else None
                )
        for a in _get(f"{prometheus_url}/api/v1/alerts", timeout)["data"]["alerts"]:
            labels = a["labels"]
            if labels.get("deployment") == spec.name:
                out["alerts"].append(
                    {
                        "name": labels["alertname"],
                        "state": a["state"],
                        "slo": labels.get("slo"),
                        "window": labels.get("long_window"),
                        "since": a.get("activeAt"),
                    }
                )
    except (OSError, ValueError, KeyError) as exc:
        out["error"] = f"Prometheus at {prometheus_url} did not answer: {exc}"
    return out


def lines(state: dict) -> list[str]:
    """Plain-text lines for the CLI."""
    if "error" in state:
        return [f"slo: {state['error']}"]
    rates = ", ".join(f"{k} {'no data' if v is None else f'{v:g}x'}" for k, v in state["burn_rates"].items())
    out = [f"slo burn rates (Prometheus {state['prometheus']}): {rates or 'none yet'}"]
    out.append(
        "alerts: "
        + (
            ", ".join(
                f"{a['name']} {a['state']}" + (f" ({a['window']})" if a["window"] else "")
                for a in state["alerts"]
            )
            or "none"
        )
    )
    return out
