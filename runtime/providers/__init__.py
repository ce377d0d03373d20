"""Cloud providers by target kind, imported lazily so one cloud's SDK is needed only to use that cloud.

    from runtime.providers import get_provider
    provider = get_provider("gke")           # or provider_for(spec)

The Protocol and value types are in runtime.providers.base (see its docstring for the flow); base.py stays
pure. Providers sit above gateways/ and render/ and below targets/: a provider makes a cluster, never
deploys onto it (that is the targets').
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from runtime.errors import NotSupportedError
from runtime.providers.base import Capability, ClusterProvider, ClusterRef, KubeAccess, StorageClass, require

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import DeploymentSpec

PROVIDERS = {
    "eks": "runtime.providers.eks:EksProvider",
    "gke": "runtime.providers.gke:GkeProvider",
    "aks": "runtime.providers.aks:AksProvider",
    "ecs": "runtime.targets.ecs.provider:EcsProvider",
}

__all__ = [
    "PROVIDERS",
    "Capability",
    "ClusterProvider",
    "ClusterRef",
    "KubeAccess",
    "StorageClass",
    "get_provider",
    "provider_for",
    "require",
]


def get_provider(kind: str, **options: Any) -> ClusterProvider:
    """The provider of target ``kind`` (options go to its constructor, e.g. ``waits=``)."""
    try:
        ref = PROVIDERS[kind]
    except KeyError:
        raise NotSupportedError(
            f"no cloud provider for target kind {kind!r}", hint=f"use one of: {', '.join(sorted(PROVIDERS))}"
        ) from None
    module, cls = ref.split(":")
    try:
        loaded = import_module(module)
    except ImportError as exc:
        raise NotSupportedError(
            f"the {kind} provider needs a package that is not installed: {exc.name}",
            hint="install dynadeploy with its cloud dependencies (uv sync)",
        ) from exc
    return getattr(loaded, cls)(**options)


def provider_for(spec: DeploymentSpec, **options: Any) -> ClusterProvider:
    return get_provider(spec.target.kind, **options)
