"""The local target end to end through the real deploy/teardown flows.

Covers: deploy -> smoke for every topology, idempotent redeploy (no new processes, same revision),
redeploy under load with zero failed requests, a killed worker restarted by the supervisor,
teardown with an empty inventory, the etcd+NATS discovery mode, and failures that must happen
before any side effect (a GPU-only spec on a host without GPUs).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import threading
import time

import pytest

from flows.deploy import deploy
from flows.teardown import teardown
from runtime.errors import PreflightError, SmokeTestFailed, SpecError
from runtime.gateways import gpu as gpulib
from runtime.gateways import loadgen, probe
from runtime.spec import load_spec
from runtime.targets.local import ports as portlib
from runtime.targets.local.backend import LocalBackend
from runtime.targets.local.inventory import marked_pids

pytestmark = [pytest.mark.integration]

TOPOLOGIES = {
    "agg": {"topology": "agg"},
    "agg_router": {"topology": "agg_router", "workers": {"replicas": 2}},
    "disagg": {"topology": "disagg", "prefill": {"replicas": 1}, "decode": {"replicas": 1}},
    "disagg_router": {"topology": "disagg_router", "prefill": {"replicas": 1}, "decode": {"replicas": 2}},
}


@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_each_topology_deploys_smokes_and_tears_down(prefect_api, spec_dir, topology):
    path = spec_dir(f"topo-{topology.replace('_', '-')}", TOPOLOGIES[topology], smoke={"requests": 20})
    result = deploy(spec=str(path))
    assert result["smoke"]["passed"] and result["smoke"]["errors"] == 0
    assert result["smoke"]["requests"] == 20
    assert result["revision"] == 1 and result["changed"] is True
    backend = LocalBackend(load_spec(path))
    status = backend.status()
    expected_workers = (
        sum(r.get("replicas", 1) for k, r in TOPOLOGIES[topology].items() if k != "topology") or 1
    )
    assert status.workers_discovered == expected_workers
    assert status.models == ["dynadeploy/tiny-mock"]

    down = teardown(spec=str(path))
    assert down["leftovers"] == []
    assert marked_pids(load_spec(path).name) == []


def test_lifecycle_idempotent_redeploy_under_load_crash_recovery_teardown(prefect_api, spec_dir):
    path = spec_dir("life", {"topology": "agg", "workers": {"replicas": 2}})
    spec = load_spec(path)
    first = deploy(spec=str(path))
    assert first["revision"] == 1
    pids = marked_pids(spec.name)

    # Same spec again: nothing changes, no duplicate processes.
    again = deploy(spec=str(path))
    assert again["revision"] == 1 and again["changed"] is False
    assert marked_pids(spec.name) == pids

    # A changed spec under load: new workers serve before old ones stop, and no request fails.
    changed = spec_dir(
        "life", {"topology": "agg", "workers": {"replicas": 2}, "mocker": {"speedup_ratio": 8.0}}
    )
    stop = threading.Event()
    reports = []

    def drive() -> None:
        while not stop.is_set():
            reports.append(
                asyncio.run(
                    loadgen.run_load(
                        first["endpoint"],
                        spec.model.served(),
                        requests=16,
                        concurrency=4,
                        max_tokens=16,
                        prompt="redeploy under load",
                        timeout_s=30,
                    )
                )
            )

    driver = threading.Thread(target=drive)
    driver.start()
    try:
        second = deploy(spec=str(changed))
    finally:
        time.sleep(1.0)  # keep the load on across the retirement of the old workers
        stop.set()
        driver.join(timeout=60)
    assert second["revision"] == 2 and second["changed"] is True
    total = sum(r.count for r in reports)
    failed = [res.error for r in reports for res in r.results if not res.ok]
    assert total >= 16 and failed == [], (
        f"{len(failed)} of {total} requests failed during the redeploy: {failed[:3]}"
    )
    backend = LocalBackend(load_spec(changed))
    procs = backend.supervisor.processes()
    assert sorted(n for n in procs if n.startswith("worker")) == ["worker-r2-0", "worker-r2-1"]
    revisions = {r.number: r.status for r in backend.status().revisions}
    assert revisions == {1: "superseded", 2: "serving"}

    # Kill a worker hard: the supervisor brings it back and it serves again.
    victim = procs["worker-r2-0"]
    before = probe.generate_instances("127.0.0.1", backend._frontend_port())
    os.kill(victim.pid, signal.SIGKILL)
    probe.ready_within(
        lambda: (
            (p := backend.supervisor.processes().get("worker-r2-0")) is not None
            and p.state == "RUNNING"
            and p.pid != victim.pid
        ),
        30,
    )
    ports = portlib.load(backend.paths.ports_file)
    probe.ready_within(lambda: probe.worker_ready("127.0.0.1", ports["worker-r2-0"]), 60)
    # File discovery drops a SIGKILLed worker's registration after 5-15 s; until then the frontend
    # may still route to it. Wait until the dead instance is gone and its replacement registered.
    probe.ready_within(
        lambda: (
            len(now := probe.generate_instances("127.0.0.1", backend._frontend_port())) == 2 and now != before
        ),
        60,
    )
    smoke = loadgen.smoke_test(first["endpoint"], spec.model.served(), load_spec(changed).smoke)
    assert smoke.verdict.passed

    down = teardown(spec=str(changed))
    assert down["leftovers"] == []
    assert not backend.paths.root.exists()
    assert backend.paths.model_cache.exists(), "the model cache is kept unless asked"


@pytest.mark.skipif(shutil.which("etcd") is None, reason="etcd-server not installed (make test installs it)")
def test_etcd_and_nats_discovery(prefect_api, spec_dir):
    path = spec_dir("etcd-mode", {"topology": "agg"}, target={"discovery": "etcd"}, smoke={"requests": 10})
    result = deploy(spec=str(path))
    assert result["smoke"]["passed"]
    procs = LocalBackend(load_spec(path)).supervisor.processes()
    assert {"etcd", "nats", "frontend", "worker-r1-0"} <= set(procs)
    assert teardown(spec=str(path))["leftovers"] == []


QWEN = {"id": "Qwen/Qwen3-0.6B", "revision": "c1899de289a04d12100db370d81485cdf75e47ca"}


def test_gpu_demand_on_a_host_without_gpus_fails_before_any_side_effect(prefect_api, spec_dir):
    """The spec asks for vLLM (GPUs) and passes validation; the host has none (as on CI)."""
    path = spec_dir("needs-gpu", {"topology": "agg", "engine": "vllm"}, model=QWEN)
    backend = LocalBackend(load_spec(path))
    if gpulib.detect().present:
        pytest.skip("this host has a GPU")
    with pytest.raises(PreflightError, match="no NVIDIA GPU"):
        deploy(spec=str(path))
    assert not backend.paths.root.exists()


def test_a_spec_that_declares_no_gpus_but_wants_vllm_is_rejected_at_load(prefect_api, spec_dir):
    path = spec_dir(
        "declares-none", {"topology": "agg", "engine": "vllm"}, target={"gpus": "none"}, model=QWEN
    )
    with pytest.raises(SpecError) as err:
        deploy(spec=str(path))
    assert any("gpus" in i.path or "engine" in i.path for i in err.value.issues)


def test_sla_breach_fails_with_numbers_and_tears_down_by_policy(prefect_api, spec_dir):
    path = spec_dir(
        "breach",
        {"topology": "agg"},
        smoke={"requests": 10, "sla": {"ttft_p90_ms": 0.001}},
        teardown={"on_failure": True},
    )
    with pytest.raises(SmokeTestFailed, match=r"ttft p90 .* ms"):
        deploy(spec=str(path))
    backend = LocalBackend(load_spec(path))
    assert backend.inventory() == []
