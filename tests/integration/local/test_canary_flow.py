"""Canary on the local target through the real canary flow.

A healthy candidate is staged beside stable (with a fresh baseline copy of stable), analysed side by
side against that baseline, given real traffic inside the
stable graph, and promoted as a new revision. A slow candidate is rolled back by the gate by itself
while stable keeps serving; a background client on the stable endpoint sees no failed request.
What is not covered here: Kubernetes traffic splitting (Gateway API / ingress weights).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from flows.canary import CanaryFailed, canary
from flows.deploy import deploy
from runtime.gateways import loadgen
from runtime.spec import load_spec
from runtime.targets.local.backend import LocalBackend
from runtime.targets.local.canary import baseline_backend, candidate_backend

pytestmark = [pytest.mark.integration]

CANARY = {"requests_per_step": 24, "min_samples": 12, "steps": [10, 50, 100], "analysis_interval_s": 60}


def test_healthy_candidate_is_promoted(prefect_api, spec_dir):
    # a generous regression bound: both sides share two loaded cores, so latency is noisy here
    path = spec_dir(
        "can-ok",
        {"topology": "agg", "workers": {"replicas": 2}},
        smoke={"requests": 10},
        canary=CANARY | {"max_ttft_regression": 10.0, "max_itl_regression": 10.0},
    )
    spec = load_spec(path)
    deploy(spec=str(path))
    result = canary(spec=str(path), candidate={"serving": {"mocker": {"speedup_ratio": 12.0}}})
    assert result["status"] == "promoted" and result["revision"] == 2
    labels = [r["step"] for r in result["steps"]]
    assert labels == ["side-by-side", "10%", "50%"]
    assert all(r["verdict"] == "pass" for r in result["steps"])
    shifted = result["steps"][1]
    assert shifted["candidate_ttft_p90_ms"] is not None and shifted["stable_ttft_p90_ms"] is not None
    backend = LocalBackend(spec)
    revs = {r.number: r for r in backend.revisions()}
    assert revs[2].status == "serving" and revs[2].started_by == "canary"
    assert revs[2].spec["serving"]["mocker"]["speedup_ratio"] == 12.0
    workers = sorted(n for n in backend.supervisor.processes() if n != "frontend")
    assert workers == ["worker-r2-0", "worker-r2-1"], "canary workers and old workers are retired"
    assert candidate_backend(load_spec(path)).inventory() == []
    assert baseline_backend(spec).inventory() == []  # the side-by-side baseline graph is gone too


def test_slow_candidate_rolls_back_by_itself_and_stable_fails_nothing(prefect_api, spec_dir):
    path = spec_dir(
        "can-slow",
        {"topology": "agg", "workers": {"replicas": 2}},
        smoke={"requests": 10},
        canary=CANARY | {"max_ttft_regression": 0.5},
    )
    spec = load_spec(path)
    first = deploy(spec=str(path))
    stop = threading.Event()
    reports = []

    def stable_client() -> None:
        while not stop.is_set():
            reports.append(
                asyncio.run(
                    loadgen.run_load(
                        first["endpoint"],
                        spec.model.served(),
                        requests=8,
                        concurrency=2,
                        max_tokens=8,
                        prompt="stable traffic",
                        timeout_s=60,
                    )
                )
            )

    client = threading.Thread(target=stable_client)
    client.start()
    try:
        with pytest.raises(CanaryFailed, match="rolled back at side-by-side"):
            canary(spec=str(path), candidate={"serving": {"mocker": {"speedup_ratio": 0.05}}})
    finally:
        stop.set()
        client.join(timeout=120)
    failed = [res.error for r in reports for res in r.results if not res.ok]
    assert sum(r.count for r in reports) > 0 and failed == []
    backend = LocalBackend(spec)
    assert [(r.number, r.status) for r in backend.revisions()] == [(1, "serving")]
    assert sorted(n for n in backend.supervisor.processes() if n != "frontend") == [
        "worker-r1-0",
        "worker-r1-1",
    ]
    assert candidate_backend(spec).inventory() == []
    assert baseline_backend(spec).inventory() == []
