"""Which stage implementation serves a target kind (the serving seam of DESIGN.md section 4).

Backends are imported lazily so a machine without one cloud's SDK can still deploy to the others.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, Protocol

from runtime.errors import NotSupportedError
from runtime.revisions import Revision


class ServingBackend(Protocol):
    """What the flows need from a target. Every method is idempotent.

    The deploy flow calls them in this order: provision, detect_gpus, install_platform,
    cache_model, roll_out, then record_smoke after the smoke test against endpoint().
    """

    kind: str

    def provision(self) -> dict: ...
    def detect_gpus(self) -> dict: ...  # {"gpus": int, "engine": "vllm" | "mocker", ...}
    def install_platform(self) -> dict: ...  # {"endpoint": str, ...}
    def cache_model(self, engine: str, token: str | None = None) -> Any: ...
    def roll_out(self, engine: str, model: Any, *, reason: str = "deploy", started_by: str = "dynadeploy") -> Any: ...
    def endpoint(self) -> str: ...
    def record_smoke(self, number: int, smoke: dict) -> None: ...
    def revisions(self) -> list[Revision]: ...  # the ledger, oldest first
    def status(self) -> dict: ...
    def teardown(self, *, keep_model_cache: bool = True) -> dict: ...
    def inventory(self) -> list[str]: ...

_BACKENDS = {
    "local": "runtime.local.backend:LocalBackend",
    "kube": "runtime.kube_backend:KubeBackend",
    "eks": "runtime.cloud_backend:CloudBackend",
    "gke": "runtime.cloud_backend:CloudBackend",
    "aks": "runtime.cloud_backend:CloudBackend",
    "ecs": "runtime.ecs_backend:EcsBackend",
}


def backend_for(spec) -> ServingBackend:
    kind = spec.target.kind
    try:
        ref = _BACKENDS[kind]
    except KeyError:
        raise NotSupportedError(
            f"target kind {kind!r} has no deploy backend in this version of dynadeploy",
            hint=f"use one of: {', '.join(sorted(_BACKENDS))}",
        ) from None
    module, cls = ref.split(":")
    return getattr(import_module(module), cls)(spec)
