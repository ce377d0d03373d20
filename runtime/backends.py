"""Which stage implementation serves a target kind (the serving seam of DESIGN.md section 4).

Backends are imported lazily so a machine without one cloud's SDK can still deploy to the others.
"""

from __future__ import annotations

from importlib import import_module

from runtime.errors import NotSupportedError

_BACKENDS = {
    "local": "runtime.local.backend:LocalBackend",
    "kube": "runtime.kube_backend:KubeBackend",
}


def backend_for(spec):
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
