"""dynadeploy as the Kubernetes API simulator's process host, and the simulator entry points that use it.

The simulator (tests/harness/kubeapi) imports nothing of this project (an import-linter contract holds it
to that). Its process runtime, which runs a DGD's pods as real local Dynamo processes, asks a
``ProcessHost`` for what only the project knows: the built-in models (a tokenizer-only model for the
mocker, the tiny Llama for the CPU vLLM), the CPU vLLM environment and where a worker publishes KV events.
``DynadeployHost`` answers with the same functions the local target uses, so a simulated pod runs the way
a local deployment's process does.

The project's tests import ``install_all`` and ``ProcessRuntime`` from here: the simulator's own, with this
host filled in wherever a process runtime is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from runtime.render.local_plan import cpu_vllm_env, kv_events_endpoint
from runtime.targets.local import tiny_llama, tiny_model
from runtime.targets.local.model_cache import ensure_model
from tests.harness.kubeapi.controllers import ProcessRuntime as _SimProcessRuntime
from tests.harness.kubeapi.controllers import Reconciler
from tests.harness.kubeapi.controllers import install_all as _sim_install_all
from tests.harness.kubeapi.controllers.process_runtime import ProcessHost

__all__ = ["DynadeployHost", "ProcessRuntime", "install_all"]


class DynadeployHost:
    """The project's built-in models and CPU vLLM environment (runtime/targets/local, runtime/render)."""

    def model_dir(self, cache: Path, kind: Literal["mocker", "vllm"]) -> str:
        if kind == "vllm":
            return str(ensure_model(cache, tiny_llama.MODEL_ID, None, weights=True).path)
        return str(ensure_model(cache, tiny_model.MODEL_ID, None).path)

    def vllm_env(self, host: str, kv_cache_gib: int) -> dict[str, str]:
        return cpu_vllm_env(host, kv_cache_gib)

    def kv_events_endpoint(self, ipc_dir: str | Path, name: str) -> str:
        return kv_events_endpoint(ipc_dir, name)


HOST: ProcessHost = DynadeployHost()


class ProcessRuntime(_SimProcessRuntime):
    """The simulator's process runtime with dynadeploy as its host (unless another is passed)."""

    def __init__(self, *, host: ProcessHost | None = None, **kwargs: Any) -> None:
        super().__init__(host=host or HOST, **kwargs)


def install_all(sim: Any, *, process_runtime: Any = False, **switches: Any) -> Any:
    """``tests.harness.kubeapi.controllers.install_all`` with dynadeploy's host in the process runtime."""
    if (
        process_runtime is not False
        and process_runtime is not None
        and not isinstance(process_runtime, Reconciler)
    ):
        process_runtime = ProcessRuntime(**(process_runtime if isinstance(process_runtime, dict) else {}))
    return _sim_install_all(sim, process_runtime=process_runtime, **switches)
