"""Which stage implementation serves a target kind (the serving seam of DESIGN.md section 4).

Backends are imported lazily so a machine without one cloud's SDK can still deploy to the others.

Cloud credentials: where the spec names a credentials block (target.credentials), the backend gets the
block's credentials as data (runtime/domain/credentials.py) and hands them to its provider's SDK clients. They are
resolved when the backend is made, by the resolver the tasks layer registers (tasks/secrets.py:
``resolve_cloud_credentials``, which reads the Prefect block), so they are read inside the task that uses
them and never travel as parameters. Without a block, the SDKs' default chains on the worker are used.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any, Protocol

from runtime.errors import NotSupportedError, PermanentError
from runtime.domain.revisions import Revision


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
    "local": "runtime.targets.local.backend:LocalBackend",
    "kube": "runtime.targets.kube.backend:KubeBackend",
    "eks": "runtime.targets.cloud.backend:CloudBackend",
    "gke": "runtime.targets.cloud.backend:CloudBackend",
    "aks": "runtime.targets.cloud.backend:CloudBackend",
    "ecs": "runtime.targets.ecs.backend:EcsBackend",
}


_CLOUD_BACKENDS = frozenset({"eks", "gke", "aks", "ecs"})
_resolver: Callable[[Any], Any] | None = None


def resolve_credentials_with(resolver: Callable[[Any], Any] | None) -> None:
    """Register how a spec's credentials block becomes credentials (tasks/secrets.py does, on import)."""
    global _resolver
    _resolver = resolver


def credentials_for(spec) -> Any:
    """The target's cloud credentials from its block, resolved now; None when the spec names no block."""
    ref = getattr(spec.target, "credentials", None)
    if ref is None:
        return None
    if _resolver is None:
        raise PermanentError(f"target.credentials names the block {ref.block!r}, but nothing here can read "
                             "Prefect blocks", hint="import tasks.secrets before building backends (the "
                                                     "flows and the CLI do)")
    return _resolver(spec)


def backend_for(spec, *, credentials: Any = None) -> ServingBackend:
    """The backend of ``spec``; ``credentials``: the target's resolved cloud credentials (default: resolved
    now from target.credentials by the registered resolver; None without a block)."""
    kind = spec.target.kind
    try:
        ref = _BACKENDS[kind]
    except KeyError:
        raise NotSupportedError(
            f"target kind {kind!r} has no deploy backend in this version of dynadeploy",
            hint=f"use one of: {', '.join(sorted(_BACKENDS))}",
        ) from None
    module, cls = ref.split(":")
    backend = getattr(import_module(module), cls)
    if kind not in _CLOUD_BACKENDS:
        return backend(spec)
    if credentials is None:
        credentials = credentials_for(spec)
    return backend(spec, credentials=credentials)
