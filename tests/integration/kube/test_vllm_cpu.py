"""The kube target on the simulator with REAL vLLM worker pods: the process runtime runs each worker's
rendered `python3 -m dynamo.vllm ...` command line on the CPU vLLM (.vllm-cpu/, `make vllm-cpu`), so an
engine argument that dynadeploy renders and vLLM does not accept fails here. Opt-in (this module only);
the other kube modules keep the mocker. Select with `-m vllm`."""

from __future__ import annotations

import httpx
import pytest

from flows.deploy import deploy
from flows.teardown import teardown
from runtime.targets.local import vllm_cpu

from .conftest import graph_processes, simulate_port_forward, spec_doc, start_cluster, stop_cluster

REV = "0123456789abcdef0123456789abcdef01234567"
PYTHON = str(vllm_cpu.root() / "bin" / "python")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.vllm,
    pytest.mark.timeout(900),
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


@pytest.fixture(scope="module")
def sim(tmp_path_factory, chart_env):
    with pytest.MonkeyPatch.context() as mp:
        # a CPU vLLM start is ~40 s alone on 2 cores, several times that under load
        mp.setenv("DYNADEPLOY_KUBE_ROLLOUT_TIMEOUT_S", "420")
        sim = start_cluster(tmp_path_factory, process_runtime={"vllm_python": PYTHON})
        yield sim
        stop_cluster(sim)


@pytest.fixture
def port_forward(sim, monkeypatch):
    return simulate_port_forward(sim, monkeypatch)


def _workers(sim, ns: str) -> list[dict]:
    return [p for p in graph_processes(sim, ns) if p["role"] == "worker"]


def _vllm_workers_ran_the_rendered_command(sim, ns: str, replicas: int) -> list[list[str]]:
    pods = sim.store.list("v1", "Pod", ns, label_selector={"nvidia.com/dynamo-component": "worker"})
    assert len(pods) == replicas
    rendered = [*pods[0]["spec"]["containers"][0]["command"], *pods[0]["spec"]["containers"][0]["args"]]
    assert rendered[:3] == ["python3", "-m", "dynamo.vllm"]
    procs = [p for p in graph_processes(sim, ns) if p["role"] == "worker"]
    assert len(procs) == replicas
    commands = []
    for p in procs:
        cmd = p["command"]
        assert cmd[:3] == [PYTHON, "-m", "dynamo.vllm"]
        # every rendered flag but --model (the tiny Llama here) reaches vLLM as rendered
        flags = [a for a in rendered[3:] if a.startswith("--") and a != "--model"]
        assert all(f in cmd for f in flags), (flags, cmd)
        assert cmd[cmd.index("--served-model-name") + 1] == "Qwen/Qwen3-0.6B"
        commands.append(cmd)
    return commands


def _complete(sim, ns: str) -> dict:
    (fe,) = [p for p in graph_processes(sim, ns) if p["role"] == "frontend"]
    r = httpx.post(
        f"http://{fe['host']}:{fe['port']}/v1/completions",
        timeout=120,
        json={"model": "Qwen/Qwen3-0.6B", "prompt": "hello", "max_tokens": 6},
    )
    r.raise_for_status()
    return r.json()


@pytest.mark.parametrize(("topology", "replicas"), [("agg", 1), ("agg_router", 2)])
def test_real_vllm_worker_pods_serve_the_rendered_graph(prefect_api, sim, port_forward, topology, replicas):
    name = f"kv-{topology.replace('_', '-')}"
    serving = {
        "topology": topology,
        "engine": "vllm",
        "workers": {"replicas": replicas, "gpus": 1, "engine_args": ["--max-num-seqs", "4"]},
    }
    doc = spec_doc(sim, name, serving, model={"id": "Qwen/Qwen3-0.6B", "revision": REV}, smoke=SMOKE)
    try:
        result = deploy(spec=doc)
        assert result["engine"] == "vllm" and result["smoke"]["passed"]
        commands = _vllm_workers_ran_the_rendered_command(sim, name, replicas)
        assert all(c[c.index("--max-num-seqs") + 1] == "4" for c in commands)
        assert _complete(sim, name)["usage"]["completion_tokens"] == 6
        assert len(_workers(sim, name)) == replicas and all(p["ready"] for p in _workers(sim, name))
    finally:
        assert teardown(spec=doc, delete_model_cache=True)["leftovers"] == []
