"""Health probes for the local stack, over loopback HTTP.

The frontend's /health answers 200 even with no workers, so readiness is judged by /v1/models (the
model is listed) and by the instances the frontend has discovered; a worker's own /health on its
system port turns 200 only once its generate endpoint serves.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from runtime.errors import RolloutFailed


def _get(url: str, timeout: float = 2.0) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return None


def frontend_live(host: str, port: int) -> bool:
    r = _get(f"http://{host}:{port}/live")
    return r is not None and r.status_code == 200


def served_models(host: str, port: int) -> list[str]:
    r = _get(f"http://{host}:{port}/v1/models")
    if r is None or r.status_code != 200:
        return []
    return [m.get("id") for m in r.json().get("data", [])]


def generate_instances(host: str, port: int) -> set[int]:
    """Instance ids of every worker the frontend has discovered (generate endpoints)."""
    r = _get(f"http://{host}:{port}/health")
    if r is None or r.status_code != 200:
        return set()
    return {i["instance_id"] for i in r.json().get("instances", []) if i.get("endpoint") == "generate"}


def worker_ready(host: str, port: int) -> bool:
    r = _get(f"http://{host}:{port}/health", timeout=1.0)
    return r is not None and r.status_code == 200


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.1,
               describe: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            detail = describe() if describe else "condition not met"
            raise RolloutFailed(f"timed out after {timeout_s:.0f}s: {detail}")
        time.sleep(interval_s)
