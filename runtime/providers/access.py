"""How a target gets its cloud provider: one provider per kind and credentials, per process.

The cloud targets (runtime/targets/cloud: eks, gke, aks) and the ECS target (runtime/targets/ecs) both build
their provider here, so neither reaches into the other. A provider's SDK clients are thread-safe and costly
to build, so they are cached (``make_provider``; tests replace it). ``credentials``: a credentials block's
runtime.domain.credentials data, resolved by the task (runtime/targets/registry.py); None: the default chain.
The credentials live only in memory, in the provider's SDK clients.
"""

from __future__ import annotations

import threading
from typing import Any

from runtime.errors import PermanentError
from runtime.providers import get_provider

_PROVIDERS: dict[str, Any] = {}
_PROVIDERS_LOCK = threading.Lock()


def make_provider(kind: str, credentials: Any = None) -> Any:
    """The provider of ``kind``, one per process and credentials (its SDK clients are thread-safe and costly
    to build). ``credentials``: a credentials block's runtime.domain.credentials data; None: the default chain."""
    key = kind if credentials is None else f"{kind}:{credentials.fingerprint()}"
    with _PROVIDERS_LOCK:
        if key not in _PROVIDERS:
            _PROVIDERS[key] = (
                get_provider(kind) if credentials is None else get_provider(kind, credentials=credentials)
            )
        return _PROVIDERS[key]


def provider_with(spec, credentials: Any = None) -> Any:
    """``make_provider`` for ``spec``'s kind with its resolved credentials (None where it names no block)."""
    kind = spec.target.kind
    ref = getattr(spec.target, "credentials", None)
    if credentials is None:
        if ref is not None:
            raise PermanentError(
                f"target.credentials names the block {ref.block!r}, but its credentials were not resolved",
                hint="build the backend with runtime.targets.registry.backend_for (the tasks "
                "resolve the block there)",
            )
        return make_provider(kind)
    if ref is None or credentials.block != ref.block:
        raise PermanentError(
            "credentials were given for a spec that does not name their block",
            hint="resolve them from the spec's target.credentials",
        )
    return make_provider(kind, credentials)


__all__ = ["make_provider", "provider_with"]
