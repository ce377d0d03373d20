"""Readiness probes over HTTP: the one ``/v1/models`` probe, and the local stack's health endpoints.

The frontend's /health answers 200 even with no workers, so readiness is judged by /v1/models (the
model is listed: ``models_at``, used by the local target and, through ``wait_listed``, by the kube
target behind a port-forward) and by the instances the frontend has discovered; a worker's own /health
on its system port turns 200 only once its generate endpoint serves. A probe never raises: an endpoint
that cannot be reached, or answers anything but a 200 with the expected JSON, reads as "not (yet)".
Probes ignore proxy settings in the environment (``trust_env=False``): they talk to loopback ports (local
processes, port-forwards), which a proxy cannot reach. The smoke test's strict check of the same list,
with its typed errors, is runtime/gateways/loadgen.py ``check_models``.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from runtime.domain.waiting import WaitTimeout, wait_until
from runtime.errors import RolloutFailed


def _get(url: str, timeout: float = 2.0) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=timeout, trust_env=False)
    except httpx.HTTPError:
        return None


def _json(r: httpx.Response | None) -> dict:
    if r is None or r.status_code != 200:
        return {}
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def models_at(url: str, timeout_s: float = 3.0) -> list[str]:
    """The model ids the frontend at ``url`` (scheme://host:port) lists at /v1/models; [] when it cannot say."""
    return [m.get("id") for m in (_json(_get(f"{url}/v1/models", timeout_s)).get("data") or [])]


def served_models(host: str, port: int) -> list[str]:
    return models_at(f"http://{host}:{port}", 2.0)


def wait_listed(url: str, model: str, timeout_s: float, *, interval_s: float = 0.25) -> bool:
    """Wait (bounded) until the frontend at ``url`` lists ``model``; False when it still does not at the
    deadline (the caller's smoke test then reports what it sees)."""
    try:
        return wait_until(
            lambda: model in models_at(url),
            timeout_s=timeout_s,
            interval_s=interval_s,
            what=f"{model} at {url}/v1/models",
        )
    except WaitTimeout:
        return False


def frontend_live(host: str, port: int) -> bool:
    r = _get(f"http://{host}:{port}/live")
    return r is not None and r.status_code == 200


def generate_instances(host: str, port: int) -> set[int]:
    """Instance ids of every worker the frontend has discovered (generate endpoints)."""
    return {
        i["instance_id"]
        for i in _json(_get(f"http://{host}:{port}/health")).get("instances", [])
        if i.get("endpoint") == "generate"
    }


def worker_ready(host: str, port: int) -> bool:
    r = _get(f"http://{host}:{port}/health", timeout=1.0)
    return r is not None and r.status_code == 200


def answers_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether ``url`` answers 200 (e.g. Prometheus' and Alertmanager's /-/ready)."""
    r = _get(url, timeout=timeout)
    return r is not None and r.status_code == 200


def ready_within(
    predicate: Callable[[], bool],
    timeout_s: float,
    interval_s: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> None:
    """``wait_until`` for the local stack: a RolloutFailed naming what is stuck when time runs out."""
    try:
        wait_until(
            predicate,
            timeout_s=timeout_s,
            interval_s=interval_s,
            describe_stuck=describe or (lambda: "condition not met"),
        )
    except WaitTimeout as exc:
        raise RolloutFailed(f"timed out after {timeout_s:.0f}s: {exc.stuck}") from None
