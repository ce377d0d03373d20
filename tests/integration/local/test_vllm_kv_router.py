"""agg_router with two real (CPU) vLLM workers: vLLM publishes its KV-cache events, the worker relays them,
the frontend's KV router applies them to its index, and a repeated prompt goes to the worker that holds
its prefix. Proved from both sides: the router's `dynamo_component_kv_cache_events_applied` (stored, ok)
counter and vLLM's own count of cached prompt tokens (usage.prompt_tokens_details.cached_tokens and the
workers' `vllm:prefix_cache_hits_total`). One deployment (two engine starts). Select with `-m vllm`.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from flows.deploy import deploy
from flows.teardown import teardown
from runtime.gateways import probe
from runtime.spec import load_spec
from runtime.targets.local import ports as portlib
from runtime.targets.local import vllm_cpu
from runtime.targets.local.backend import LocalBackend
from tests.integration.local.conftest import write_spec

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.vllm,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(
        not (vllm_cpu.root() / vllm_cpu.STAMP).exists(),
        reason="the CPU vLLM runtime is not built: make vllm-cpu",
    ),
]
SMOKE = {
    "requests": 4,
    "concurrency": 2,
    "max_tokens": 8,
    "timeout_s": 120,
    "sla": {"ttft_p90_ms": 60000, "itl_p90_ms": 10000, "e2e_p99_ms": 120000},
}
BLOCK = 128  # vLLM's CPU KV-cache block size: only full blocks are cached and reported
PROMPT = " ".join(f"prefix{i}" for i in range(150))  # 379 tokens: two full blocks


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _cached(url: str) -> int:
    r = httpx.post(
        f"{url}/v1/completions",
        timeout=300,
        json={"model": "dynadeploy/tiny-llama", "prompt": PROMPT, "max_tokens": 2},
    )
    r.raise_for_status()
    return r.json()["usage"]["prompt_tokens_details"]["cached_tokens"]


def test_kv_events_reach_the_router_and_a_repeated_prefix_hits_the_cache(prefect_api, tmp_path):
    serving = {
        "topology": "agg_router",
        "engine": "vllm",
        "vllm": {"device": "cpu"},
        "workers": {"replicas": 2, "gpus": 0},
    }
    path = write_spec(
        tmp_path,
        "vllm-kv",
        serving,
        model={"id": "dynadeploy/tiny-llama"},
        target={"gpus": "none"},
        smoke=SMOKE,
    )
    try:
        assert deploy(spec=str(path))["smoke"]["passed"]
        backend = LocalBackend(load_spec(path))
        url = backend.endpoint()
        applied = lambda: _metric(  # noqa: E731 - a polled reading, named for the wait below
            httpx.get(f"{url}/metrics").text,
            "dynamo_component_kv_cache_events_applied",
            event_type="stored",
            status="ok",
        )
        before = applied()
        assert _cached(url) == 0  # a prompt never seen: nothing cached anywhere
        # the serving worker's "stored" event travels vLLM -> ZMQ (ipc) -> dynamo.vllm -> event plane -> router
        probe.ready_within(
            lambda: applied() > before,
            60,
            interval_s=0.5,
            describe=lambda: f"the router applied no KV 'stored' event ({applied()} <= {before})",
        )
        repeats = [_cached(url) for _ in range(4)]
        # routed to the worker that holds the prefix every time (by chance alone: 1 in 16)
        assert all(c >= 2 * BLOCK for c in repeats), repeats
        ports = portlib.load(backend.paths.ports_file)
        hits = [
            _metric(
                httpx.get(f"http://{backend.host}:{ports[n]}/metrics").text, "vllm:prefix_cache_hits_total"
            )
            for n in ("worker-r1-0", "worker-r1-1")
        ]
        assert sum(hits) >= 4 * 2 * BLOCK and min(hits) < sum(hits), hits  # vLLM's own count, on one worker
        log = backend.supervisor.tail("worker-r1-0", 400_000)
        assert re.search(r"KV event publisher for dp_rank=0 subscribing to vLLM at ipc://", log)
        print(
            f"router applied {applied() - before:.0f} stored event(s); cached tokens per repeat {repeats}; "
            f"vLLM prefix-cache hits per worker {hits}"
        )
    finally:
        t0 = time.monotonic()
        assert teardown(spec=str(path))["leftovers"] == []
        print(f"teardown of 2 vLLM workers: {time.monotonic() - t0:.1f} s")
