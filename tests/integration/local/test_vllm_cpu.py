"""A real vLLM engine (the CPU build, .vllm-cpu/ from `make vllm-cpu`) under the local target's supervision.

One deployment serves every step, in order (a CPU vLLM start costs ~40 s on 2 cores, so this module
starts one about 8 times in all): deploy -> real completions -> the ledger names engine and version ->
redeploy with a changed engine argument -> an engine argument vLLM rejects fails the redeploy with
vLLM's own message while the serving revision keeps serving -> a crashed worker is restarted ->
rollback -> a canary changing max_num_seqs, promoted by its gate -> teardown leaves nothing.
Select with `-m vllm`.
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from flows.deploy import deploy
from flows.rollback import rollback
from flows.teardown import teardown
from runtime.errors import RolloutFailed
from runtime.gateways import probe
from runtime.spec import load_spec
from runtime.targets.local import vllm_cpu
from runtime.targets.local.backend import LocalBackend
from runtime.targets.local.inventory import marked_pids
from tests.integration.local.conftest import write_spec

NAME = "vllm-cpu-it"
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
# Lenient targets: 2 cores shared with the rest of the suite; this checks the engine, not its speed.
SMOKE = {
    "requests": 4,
    "concurrency": 2,
    "max_tokens": 8,
    "timeout_s": 120,
    "sla": {"ttft_p90_ms": 60000, "itl_p90_ms": 10000, "e2e_p99_ms": 120000},
}

# generous regression bounds: both sides share two loaded cores, so latency is noisy here
CANARY = {
    "requests_per_step": 16,
    "min_samples": 8,
    "steps": [50, 100],
    "analysis_interval_s": 30,
    "max_ttft_regression": 10.0,
    "max_itl_regression": 10.0,
}


def serving(*engine_args: str) -> dict:
    return {
        "topology": "agg",
        "engine": "vllm",
        "vllm": {"device": "cpu"},
        "workers": {"replicas": 1, "gpus": 0, "engine_args": list(engine_args)},
    }


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, prefect_api):
    directory = tmp_path_factory.mktemp("vllm")

    def spec(*engine_args: str):
        return write_spec(
            directory,
            NAME,
            serving(*engine_args),
            model={"id": "dynadeploy/tiny-llama"},
            target={"gpus": "none"},
            smoke=SMOKE,
            canary=CANARY,
        )

    yield spec
    try:
        LocalBackend(load_spec(spec())).teardown()
    except Exception:
        pass


def _worker(backend: LocalBackend, revision: int):
    return backend.supervisor.processes()[f"worker-r{revision}-0"]


def _cmdline(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


def _arg(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def _complete(backend: LocalBackend, prompt: str = "hello there", max_tokens: int = 8) -> dict:
    r = httpx.post(
        f"{backend.endpoint()}/v1/completions",
        timeout=120,
        json={"model": "dynadeploy/tiny-llama", "prompt": prompt, "max_tokens": max_tokens},
    )
    r.raise_for_status()
    return r.json()


def test_1_deploy_serves_real_completions(deployment):
    t0 = time.monotonic()
    result = deploy(spec=str(deployment("--max-num-seqs", "8")))
    assert result["engine"] == "vllm" and result["revision"] == 1 and result["smoke"]["passed"]
    backend = LocalBackend(load_spec(deployment("--max-num-seqs", "8")))
    body = _complete(backend, max_tokens=12)
    assert body["usage"]["completion_tokens"] == 12 and body["choices"][0]["text"].strip()
    cmd = _cmdline(_worker(backend, 1).pid)
    assert cmd[0] == str(vllm_cpu.root() / "bin" / "python") and cmd[1:3] == ["-m", "dynamo.vllm"]
    assert (
        _arg(cmd, "--max-num-seqs") == "8" and _arg(cmd, "--dtype") == "float32" and "--enforce-eager" in cmd
    )
    (rev,) = backend.revisions()
    assert rev.versions["engine"] == "vllm" and rev.versions["device"] == "cpu"
    assert rev.versions["vllm"] == "0.31.0" and rev.versions["ai-dynamo"] == "1.6.1"
    print(f"deploy with a CPU vLLM worker: {time.monotonic() - t0:.1f} s")


def test_2_redeploy_with_a_changed_engine_argument(deployment):
    result = deploy(spec=str(deployment("--max-num-seqs", "4")))
    assert result["revision"] == 2 and result["changed"] and result["smoke"]["passed"]
    backend = LocalBackend(load_spec(deployment("--max-num-seqs", "4")))
    assert _arg(_cmdline(_worker(backend, 2).pid), "--max-num-seqs") == "4"
    assert "worker-r1-0" not in backend.supervisor.processes()  # drained and retired


def test_3_an_argument_vllm_rejects_fails_with_its_own_message(deployment):
    bad = deployment("--max-num-seqs", "4", "--max-model-len", "4096")  # > the model's 2048 positions
    with pytest.raises(RolloutFailed) as err:
        deploy(spec=str(bad))
    message = str(err.value)
    assert "worker-r3-0" in message and "max_model_len" in message and "4096" in message, message
    backend = LocalBackend(load_spec(bad))
    statuses = {r.number: r.status for r in backend.revisions()}
    assert statuses == {1: "superseded", 2: "serving", 3: "failed"}
    assert "worker-r3-0" not in backend.supervisor.processes()
    assert _complete(backend)["usage"]["completion_tokens"] == 8  # revision 2 kept serving


def test_4_a_crashed_worker_is_restarted_and_serves_again(deployment):
    backend = LocalBackend(load_spec(deployment("--max-num-seqs", "4")))
    before = _worker(backend, 2)
    os.kill(before.pid, signal.SIGKILL)
    probe.ready_within(lambda: _worker(backend, 2).pid not in (0, before.pid), 30)
    ports = backend.supervisor.processes()
    assert ports["worker-r2-0"].pid != before.pid
    probe.ready_within(
        lambda: bool(probe.generate_instances(backend.host, backend._frontend_port())), 300, interval_s=1
    )
    deadline = time.monotonic() + 300
    while True:
        try:
            assert _complete(backend)["usage"]["completion_tokens"] == 8
            break
        except (httpx.HTTPError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def test_5_rollback_restores_the_previous_engine_arguments(deployment):
    result = rollback(spec=str(deployment("--max-num-seqs", "4")), auto_approve=True, reason="test")
    assert result["status"] == "restored" and result["to"] == 1 and result["smoke"]["passed"]
    backend = LocalBackend(load_spec(deployment("--max-num-seqs", "4")))
    number = result["revision"]
    assert _arg(_cmdline(_worker(backend, number).pid), "--max-num-seqs") == "8"
    assert backend.ledger.get(number).versions["vllm"] == "0.31.0"


def test_6_canary_with_a_changed_engine_argument_is_promoted_by_its_gate(deployment):
    from flows.canary import canary
    from runtime.targets.local.canary import candidate_backend

    path = deployment("--max-num-seqs", "8")
    result = canary(
        spec=str(path), candidate={"serving": {"workers": {"engine_args": ["--max-num-seqs", "2"]}}}
    )
    assert result["status"] == "promoted", result
    assert all(r["verdict"] == "pass" for r in result["steps"])
    backend = LocalBackend(load_spec(path))
    number = result["revision"]
    assert backend.ledger.get(number).started_by == "canary"
    assert _arg(_cmdline(_worker(backend, number).pid), "--max-num-seqs") == "2"
    assert sorted(n for n in backend.supervisor.processes() if n != "frontend") == [f"worker-r{number}-0"]
    assert candidate_backend(load_spec(path)).inventory() == []


def test_7_teardown_leaves_nothing(deployment):
    spec = deployment("--max-num-seqs", "8")
    backend = LocalBackend(load_spec(spec))
    t0 = time.monotonic()
    result = teardown(spec=str(spec))
    assert result["leftovers"] == [] and backend.inventory() == [] and marked_pids(NAME) == []
    print(f"teardown (vLLM worker drain included): {time.monotonic() - t0:.1f} s")
