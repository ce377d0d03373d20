"""Fetch a Prometheus exposition page (a Dynamo frontend's or worker's /metrics)."""

from __future__ import annotations

import httpx


def scrape(endpoint: str, timeout_s: float = 5.0) -> str:
    """The /metrics text of ``endpoint``, or "" when it cannot be read (a gap, not a failure)."""
    try:
        r = httpx.get(f"{endpoint.rstrip('/')}/metrics", timeout=timeout_s)
    except httpx.HTTPError:
        return ""
    return r.text if r.status_code == 200 else ""
