"""What a Kubernetes provider can do, as data: infra/providers.yaml loaded into frozen models.

Cloud differences are data, not ``if provider == ...`` (DESIGN.md section 3): the renderers in
runtime/render read a ``Capabilities`` and never the provider kind. ``for_spec`` resolves the entry of
the spec's target kind and applies what the spec itself says about the cluster (kube's
``provider_hints``, eks's EFS/EFA switches), so callers get one object that is true for this run.

Pure: reading the packaged data file is the only I/O.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runtime.errors import NotSupportedError

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import DeploymentSpec

PROVIDERS_FILE = Path(__file__).resolve().parents[2] / "infra" / "providers.yaml"
KUBE_KINDS = ("kube", "eks", "gke", "aks")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Storage(_Frozen):
    default_class: str | None = None  # None: the cluster's default StorageClass
    rwx_class: str | None = None  # a class that can do ReadWriteMany, if one is known


class GpuWorker(_Frozen):
    env: dict[str, str] = Field(default_factory=dict)
    shell_prelude: list[str] = Field(default_factory=list)  # run by /bin/sh -c before the engine
    tolerations: list[dict[str, Any]] = Field(default_factory=list)


class Efa(_Frozen):
    resource: str = "vpc.amazonaws.com/efa"
    per_worker: int = 1
    env: dict[str, str] = Field(default_factory=dict)


class Capabilities(_Frozen):
    kind: str
    gpu_driver: Literal["preinstalled", "install"]
    storage: Storage = Storage()
    gpu_worker: GpuWorker = GpuWorker()
    spot_toleration: dict[str, Any] | None = None
    efa: Efa | None = None
    load_balancer: bool = False
    ingress_class: str | None = None
    gateway_api: bool = False
    gpu_operator_values: dict[str, Any] = Field(default_factory=dict)

    def storage_class_for(self, access_mode: str) -> str | None:
        """The class for a volume of ``access_mode`` when the spec names none (None: cluster default)."""
        if access_mode == "ReadWriteMany" and self.storage.rwx_class:
            return self.storage.rwx_class
        return self.storage.default_class


@functools.cache
def load(path: str | None = None) -> dict[str, Capabilities]:
    """Every provider kind's capabilities from infra/providers.yaml (or ``path``)."""
    source = Path(path) if path else PROVIDERS_FILE
    data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    try:
        return {kind: Capabilities(kind=kind, **entry) for kind, entry in data.items()}
    except (TypeError, ValidationError) as exc:
        raise NotSupportedError(
            f"{source.name} is not valid: {exc}", hint="fix the provider entry named in the message"
        ) from None


def capabilities(kind: str) -> Capabilities:
    """The capabilities of provider ``kind`` as written in infra/providers.yaml."""
    known = load()
    if kind not in known:
        raise NotSupportedError(
            f"no capabilities for provider kind {kind!r} in infra/providers.yaml",
            hint=f"use one of {', '.join(sorted(known))}, or add an entry for {kind!r}",
        )
    return known[kind]


def for_spec(spec: DeploymentSpec) -> Capabilities:
    """The capabilities of the spec's target, with what the spec says about the cluster applied."""
    target = spec.target
    if target.kind not in KUBE_KINDS:
        raise NotSupportedError(
            f"target {target.kind} does not run on Kubernetes", hint="use a kube, eks, gke or aks target"
        )
    caps = capabilities(target.kind)
    changes: dict[str, Any] = {}
    hints = getattr(target, "provider_hints", None)
    if hints is not None:
        changes["gpu_driver"] = hints.gpu_driver
        if hints.storage_class:
            changes["storage"] = Storage(default_class=hints.storage_class, rwx_class=caps.storage.rwx_class)
    efs = getattr(target, "efs", None)
    if efs is not None and not efs.enabled:
        changes["storage"] = Storage(default_class=caps.storage.default_class, rwx_class=None)
    if not getattr(target, "efa", False):
        changes["efa"] = None
    return caps.model_copy(update=changes)


# --- where each cloud can run things: infra/clouds.yaml ------------------------------------------------

CLOUDS_FILE = PROVIDERS_FILE.parent / "clouds.yaml"


class Cloud(_Frozen):
    """One cloud's regions and instance types, as the spec checks them (see infra/clouds.yaml)."""

    name: str
    kinds: list[str]
    regions: list[str]
    zones: str | None = None  # GCP: a location may be "<region>-<zone letter>"
    families: list[str]
    instance_type: str  # a regex; "{families}" stands for the families joined with '|'
    example: str

    def knows_region(self, name: str) -> bool:
        if name in self.regions:
            return True
        region, _, zone = name.rpartition("-")
        return bool(self.zones and region in self.regions and re.fullmatch(self.zones, zone))

    def knows_instance_type(self, name: str) -> bool:
        families = "|".join(re.escape(f) for f in sorted(self.families, key=len, reverse=True))
        return re.fullmatch(self.instance_type.replace("{families}", f"(?:{families})"), name) is not None


@functools.cache
def clouds(path: str | None = None) -> dict[str, Cloud]:
    """Each target kind's cloud (eks/ecs -> aws, gke -> gcp, aks -> azure) from infra/clouds.yaml."""
    source = Path(path) if path else CLOUDS_FILE
    data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    try:
        found = [Cloud(name=name, **entry) for name, entry in data.items()]
    except (TypeError, ValidationError) as exc:
        raise NotSupportedError(
            f"{source.name} is not valid: {exc}", hint="fix the cloud entry named in the message"
        ) from None
    return {kind: cloud for cloud in found for kind in cloud.kinds}
