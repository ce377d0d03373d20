"""The cloud provider seam: one Protocol, the values it passes around, and capability checks.

A provider turns the target part of a spec into a cluster (EKS, GKE, AKS) or a serving platform (ECS):

    provider = get_provider("eks")                 # runtime.providers registry, imported lazily
    ref = provider.ensure_cluster(spec)            # create-or-get; idempotent; waits until usable
    provider.ensure_gpu_nodes(spec, ref)           # every node pool of the spec, create-or-get
    sc = provider.storage_class(spec, ref)         # cloud side of the model cache (EKS: EFS)
    provider.kube_access(ref).write_kubeconfig(p)  # hand the cluster to the kube stages
    provider.inventory(spec)                       # what is still there, found by tag
    provider.delete_cluster(spec)                  # everything above; not-found is success

Capabilities are declared (``capabilities`` class attribute), never discovered by trial; the
Kubernetes-facing ones (driver policy, storage classes, tolerations) are data in infra/providers.yaml
(runtime.domain.capabilities). Pure module: no SDK, no I/O except ``KubeAccess.write_kubeconfig``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import yaml

from runtime.errors import NotSupportedError

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import DeploymentSpec


class Capability(StrEnum):
    KUBERNETES = "kubernetes"  # hands a Kubernetes API to the kube stages (kube_access works)
    CREATES_CLUSTER = "creates_cluster"  # ensure_cluster creates the control plane
    GPU_NODE_POOLS = "gpu_node_pools"  # ensure_gpu_nodes creates the spec's node pools
    MANAGED_GPU_DRIVER = "managed_gpu_driver"  # the cloud can install the NVIDIA driver on GPU nodes
    OPERATOR_GPU_DRIVER = "operator_gpu_driver"  # GPU nodes can come up without a driver (GPU operator)
    RWX_STORAGE = "rwx_storage"  # storage_class can back a ReadWriteMany model cache
    EFA = "efa"  # Elastic Fabric Adapter on GPU nodes
    SPOT = "spot"  # node pools may be spot/preemptible
    OWN_SERVING = "own_serving"  # serves without Kubernetes (task definitions + services)
    SERVICE_DISCOVERY = "service_discovery"  # etcd/NATS found by name (Cloud Map)


def require(provider: Any, capability: Capability, why: str = "") -> None:
    """Raise NotSupportedError unless ``provider`` declares ``capability``."""
    if capability not in provider.capabilities:
        reason = f" ({why})" if why else ""
        raise NotSupportedError(
            f"provider {provider.name} cannot do {capability.value}{reason}",
            hint="change the spec so it does not need it, or use another target kind",
        )


@dataclass(frozen=True)
class ClusterRef:
    """A cluster (or ECS serving platform) that exists; enough to reach it and to find its parts."""

    kind: str  # eks | gke | aks | ecs
    name: str
    location: str  # region / zone / Azure location
    deployment_id: str
    endpoint: str | None = None  # Kubernetes API server URL (None for ECS)
    ca_data: str | None = None  # base64 PEM of the API server's CA (None: plain http or system CAs)
    version: str | None = None
    status: str | None = None
    # Provider-specific facts later steps need: vpc_id, subnet_ids, security_group_ids (AWS);
    # project (GKE); subscription_id, resource_group (AKS); clusters, namespace_id (ECS).
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KubeAccess:
    """How to reach a cluster's API without exec plugins: server, CA and a bearer token or client cert.

    Tokens are short-lived (EKS: 15 minutes, GKE: about an hour); ``expires_at`` (epoch seconds, None
    if unknown or not expiring) says when to ask the provider again.
    """

    server: str
    context: str
    ca_data: str | None = None  # base64 PEM
    token: str | None = None
    client_cert_data: str | None = None  # base64 PEM
    client_key_data: str | None = None  # base64 PEM
    expires_at: float | None = None
    namespace: str | None = None

    def kubeconfig(self) -> dict[str, Any]:
        """A kubeconfig document with one cluster, user and context (current)."""
        cluster: dict[str, Any] = {"server": self.server}
        if self.ca_data:
            cluster["certificate-authority-data"] = self.ca_data
        user: dict[str, Any] = {}
        if self.token:
            user["token"] = self.token
        if self.client_cert_data and self.client_key_data:
            user["client-certificate-data"] = self.client_cert_data
            user["client-key-data"] = self.client_key_data
        context: dict[str, Any] = {"cluster": self.context, "user": self.context}
        if self.namespace:
            context["namespace"] = self.namespace
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": self.context, "cluster": cluster}],
            "users": [{"name": self.context, "user": user}],
            "contexts": [{"name": self.context, "context": context}],
            "current-context": self.context,
        }

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write the kubeconfig to ``path`` atomically, readable by the owner only (it holds a token)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yaml.safe_dump(self.kubeconfig(), out, sort_keys=False)
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        return path

    def __repr__(self) -> str:  # never print the token or key
        return f"KubeAccess(server={self.server!r}, context={self.context!r}, expires_at={self.expires_at})"


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


@dataclass(frozen=True)
class StorageClass:
    """The storage class the model cache uses, and the StorageClass objects to create in-cluster.

    ``manifests`` is data for the kube stages (empty when the class is built into the cluster).
    ``notes`` say what the provider could not do here (e.g. an emulator without EKS add-ons).
    """

    name: str | None  # None: the cluster's default class
    access_mode: str
    manifests: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()


@runtime_checkable
class ClusterProvider(Protocol):
    """One cloud. Every create is create-or-get, every delete treats not-found as success."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]

    def ensure_cluster(self, spec: DeploymentSpec) -> ClusterRef:
        """Create-or-get the cluster (and its network, roles) and wait until it is usable."""
        ...

    def ensure_gpu_nodes(self, spec: DeploymentSpec, ref: ClusterRef) -> list[str]:
        """Create-or-get every node pool of the spec (GPU pools with driver/taints); their names."""
        ...

    def kube_access(self, ref: ClusterRef) -> KubeAccess:
        """Credentials for the cluster's API (NotSupportedError where there is none)."""
        ...

    def storage_class(self, spec: DeploymentSpec, ref: ClusterRef) -> StorageClass:
        """The model cache's storage class, creating its cloud side (EKS: EFS) when needed."""
        ...

    def inventory(self, spec: DeploymentSpec) -> list[str]:
        """Everything of this deployment still in the cloud, found by tag ("service:type/id")."""
        ...

    def delete_cluster(self, spec: DeploymentSpec) -> None:
        """Delete everything ``inventory`` can find, waiting until it is gone; absent is success."""
        ...
