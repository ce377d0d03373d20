"""The one registry of targets: which backend serves a target kind, and which canary mechanics it has
(the serving seam of DESIGN.md section 4; the types are runtime/targets/base.py).

Backends and mechanics are imported lazily, so a machine without one cloud's SDK can still deploy to the
others, and asking for a target's canary mechanics builds no backend.

Cloud credentials: where the spec names a credentials block (target.credentials), the backend gets the
block's credentials as data (runtime/domain/credentials.py) and hands them to its provider's SDK clients.
The caller resolves them and passes them in: the tasks layer does (tasks/targets.py, with
tasks/secrets.py ``resolve_cloud_credentials``, which reads the Prefect block), so they are read inside the
task that uses them and never travel as parameters. Without a block, the SDKs' default chains on the worker
are used; a block named but no credentials passed is refused, never the default chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Any, cast

from runtime.errors import NotSupportedError, PermanentError
from runtime.targets.base import CanaryMechanics, ServingBackend


@dataclass(frozen=True)
class Target:
    backend: str  # "module:Class" of its ServingBackend
    canary: str | None  # the module of its CanaryMechanics; None: no canary on this target
    cloud: bool  # the backend takes cloud credentials


_KUBE_CANARY = "runtime.targets.kube.canary"
_CLOUD = "runtime.targets.cloud.backend:CloudBackend"

TARGETS: dict[str, Target] = {
    "local": Target(
        "runtime.targets.local.backend:LocalBackend", "runtime.targets.local.canary", cloud=False
    ),
    "kube": Target("runtime.targets.kube.backend:KubeBackend", _KUBE_CANARY, cloud=False),
    "eks": Target(_CLOUD, _KUBE_CANARY, cloud=True),
    "gke": Target(_CLOUD, _KUBE_CANARY, cloud=True),
    "aks": Target(_CLOUD, _KUBE_CANARY, cloud=True),
    # ECS: no second graph beside stable and no traffic layer to weigh; deploy and rollback (task
    # definition revisions) instead.
    "ecs": Target("runtime.targets.ecs.backend:EcsBackend", None, cloud=True),
}


def target(kind: str) -> Target:
    try:
        return TARGETS[kind]
    except KeyError:
        raise NotSupportedError(
            f"target kind {kind!r} has no deploy backend in this version of dynadeploy",
            hint=f"use one of: {', '.join(sorted(TARGETS))}",
        ) from None


def backend_for(spec, *, credentials: Any = None) -> ServingBackend:
    """The backend of ``spec``; ``credentials``: the target's cloud credentials, resolved by the caller from
    target.credentials (None without a block: the SDKs' default chains)."""
    t = target(spec.target.kind)
    module, cls = t.backend.split(":")
    backend = getattr(import_module(module), cls)
    if not t.cloud:
        return cast(ServingBackend, backend(spec))
    ref = getattr(spec.target, "credentials", None)
    if ref is not None and credentials is None:
        raise PermanentError(
            f"target.credentials names the block {ref.block!r}, but no credentials were passed "
            "and nothing here can read Prefect blocks",
            hint="build backends through the tasks layer (tasks/targets.py resolves the block)",
        )
    return cast(ServingBackend, backend(spec, credentials=credentials))


def canary_for(spec) -> CanaryMechanics:
    """The canary mechanics of ``spec``'s target; NotSupportedError naming what it lacks where it has none."""
    kind = spec.target.kind
    module = target(kind).canary
    if module is None:
        able = sorted(k for k, t in TARGETS.items() if t.canary)
        raise NotSupportedError(
            f"canary is not available for target kind {kind!r}",
            hint=f"canaries run on: {', '.join(able)}; on ECS use deploy "
            "and rollback (task definition revisions)",
        )
    return cast(CanaryMechanics, import_module(module))


__all__ = ["TARGETS", "Target", "backend_for", "canary_for", "target"]
