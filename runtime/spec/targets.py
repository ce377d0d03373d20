"""Where a deployment runs: one model per target kind (local, kube, eks, gke, aks, ecs) and their union.

Pure (stdlib, pydantic, runtime.domain). Node pools and the credentials reference that the cloud targets
share are in runtime/spec/cloud.py; the strict base model and the issue helpers in runtime/spec/base.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field

from runtime.spec.base import DnsLabel, Issue, NonBlank, Port, StrictModel, at, matching
from runtime.spec.cloud import (
    CREDENTIALS_BLOCK_TYPES,
    CredentialsRef,
    InstanceType,
    NodePool,
    node_pool_issues,
)

__all__ = [
    "MIN_K8S_MINOR",
    "TARGET_CLASSES",
    "TARGET_KINDS",
    "AksTarget",
    "EcsTarget",
    "EfsConfig",
    "EksTarget",
    "GkeTarget",
    "KubeTarget",
    "LocalTarget",
    "ProviderHints",
    "Target",
    "node_pools",
]

K8sVersion = Annotated[str, matching(r"^1\.\d{2}$", 'a Kubernetes minor version "1.NN" (quoted)', "1.33")]
AwsRegion = Annotated[
    str, matching(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$", "an AWS region name", "us-east-1")
]
VpcId = Annotated[str, matching(r"^vpc-[0-9a-f]{8,17}$", "a VPC id", "vpc-0a1b2c3d4e5f67890")]
SubnetId = Annotated[str, matching(r"^subnet-[0-9a-f]{8,17}$", "a subnet id", "subnet-0a1b2c3d4e5f67890")]

MIN_K8S_MINOR = 30  # Dynamo 1.6 needs Kubernetes >= 1.30 (platform chart README)
_NAMESPACE = "Kubernetes namespace of the graph. Unset: the spec's name."


def _k8s_version_issues(version: str | None) -> Iterator[Issue]:
    if version is not None and int(version.split(".")[1]) < MIN_K8S_MINOR:
        yield at(
            "kubernetes_version",
            f"Kubernetes {version} is older than Dynamo needs (1.{MIN_K8S_MINOR} or later)",
            f'set target.kubernetes_version to "1.{MIN_K8S_MINOR}" or later, e.g. "1.33"',
        )


def _vpc_issues(vpc_id: str | None, subnet_ids: list[str], min_subnets: int, why: str) -> Iterator[Issue]:
    if vpc_id and len(subnet_ids) < min_subnets:
        yield at(
            "subnet_ids",
            f"vpc_id is set but {len(subnet_ids)} subnet id(s) are given ({why})",
            f"list at least {min_subnets} subnet ids of that VPC in target.subnet_ids, or remove "
            "target.vpc_id to have a VPC created",
        )
    if subnet_ids and not vpc_id:
        yield at(
            "vpc_id",
            "subnet_ids are set without vpc_id",
            "set target.vpc_id to the VPC of those subnets, or remove target.subnet_ids to have a "
            "VPC created",
        )


class _Target(StrictModel):
    KUBERNETES: ClassVar[bool] = True  # runs the Kubernetes stages (Helm + DGD)
    HAS_NODE_POOLS: ClassVar[bool] = False  # GPU capacity is described by the spec

    @property
    def runs_on_kubernetes(self) -> bool:
        return self.KUBERNETES

    def scope(self) -> str:
        """Where this target's objects live (kind + account/region/cluster); feeds deployment_id."""
        raise NotImplementedError


class _CloudTarget(_Target):
    """A target in a cloud account: its credentials come from a Prefect block, else the SDK's default chain."""

    # None: the SDK's default chain on the worker. Left out of the canonical spec while unset
    # (runtime.spec.models.ADDED_LATER), so existing deployments keep their spec hash.
    credentials: CredentialsRef | None = Field(
        None,
        description=(
            "The Prefect block holding the cloud credentials, {block: <name>}. Unset: the worker's default "
            "credential chain."
        ),
    )

    if TYPE_CHECKING:  # each cloud target declares its own Literal kind (a pydantic field)
        kind: str

    def credentials_block_type(self) -> str:
        return CREDENTIALS_BLOCK_TYPES[self.kind]


class LocalTarget(_Target):
    """This machine: the graph's processes under a supervisor, no Kubernetes."""

    KUBERNETES: ClassVar[bool] = False
    kind: Literal["local"] = Field("local", description="Target kind.")
    state_dir: NonBlank | None = Field(
        None,
        description=("Directory for state, logs and locks. Unset: $DYNADEPLOY_HOME, else ~/.dynadeploy."),
    )
    discovery: Literal["file", "etcd"] = Field(
        "file",
        description=(
            "How workers and the frontend find each other: a shared directory, or a local etcd and NATS."
        ),
    )
    gpus: Literal["auto", "none"] = Field(
        "auto", description=("auto: detect GPUs at run time; none: the host has no GPU.")
    )
    host: str = Field(
        "127.0.0.1", description="Loopback address the local processes listen on (never a routable one)."
    )
    frontend_port: Port | None = Field(
        None, description="Frontend HTTP port. Unset: a free port picked at run time."
    )

    def _issues(self) -> Iterator[Issue]:
        try:
            loopback = self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = False
        # Nothing authenticates requests to the local stack; on a routable address it would
        # publish an open inference endpoint.
        if not loopback:
            yield at(
                "host",
                f"{self.host!r} is not a loopback address; the local stack must not listen on the network",
                "set target.host to 127.0.0.1 (or ::1 / localhost)",
            )

    def scope(self) -> str:
        return f"local:{self.state_dir or ''}"


class ProviderHints(StrictModel):
    """What dynadeploy cannot detect about an existing cluster."""

    gpu_driver: Literal["preinstalled", "install"] = Field(
        "install",
        description=(
            "preinstalled: the nodes already have the NVIDIA driver; install: the GPU operator may install it."
        ),
    )
    storage_class: DnsLabel | None = Field(
        None,
        description=(
            "The cluster's default StorageClass for the model cache (a ReadWriteMany cache may still use the "
            "provider's file-store class); model.cache.storage_class wins. Unset: the cluster's default."
        ),
    )


class KubeTarget(_Target):
    """An existing Kubernetes cluster, reached through a kubeconfig."""

    kind: Literal["kube"] = Field("kube", description="Target kind.")
    kubeconfig: NonBlank | None = Field(
        None, description="Path of the kubeconfig. Unset: $KUBECONFIG, else ~/.kube/config."
    )
    context: NonBlank | None = Field(None, description="kubeconfig context. Unset: its current context.")
    namespace: DnsLabel | None = Field(None, description=_NAMESPACE)
    provider_hints: ProviderHints = Field(
        ProviderHints(), description="What the cluster has that cannot be detected."
    )

    def scope(self) -> str:
        return f"kube:{self.context or ''}"


class EfsConfig(StrictModel):
    """Amazon EFS for the model cache (ReadWriteMany across nodes)."""

    enabled: bool = Field(True, description="Create EFS and its CSI driver, for a ReadWriteMany model cache.")


_VPC = "Existing VPC to use. Unset: a VPC is created."
_SUBNETS = "Subnets of vpc_id to use (only with vpc_id)."


class EksTarget(_CloudTarget):
    """An Amazon EKS cluster, created (with its node pools) when missing."""

    HAS_NODE_POOLS: ClassVar[bool] = True
    kind: Literal["eks"] = Field("eks", description="Target kind.")
    region: AwsRegion = Field(examples=["us-east-1"], description="AWS region, e.g. us-east-1.")
    cluster_name: Annotated[
        str, matching(r"^[A-Za-z0-9][\w-]{0,99}$", "an EKS cluster name", "ai-dynamo")
    ] = Field(examples=["ai-dynamo"], description="EKS cluster name.")
    kubernetes_version: K8sVersion = Field(
        "1.33", description='Kubernetes minor version, quoted ("1.33"); 1.30 or later.'
    )
    vpc_id: VpcId | None = Field(None, description=_VPC)
    subnet_ids: list[SubnetId] = Field(default_factory=list, description=_SUBNETS + " EKS needs two zones.")
    node_pools: list[NodePool] = Field(
        min_length=1,
        examples=["[{name: gpu, instance_type: g6e.2xlarge}]"],
        description="Managed node groups (at least one).",
    )
    efs: EfsConfig = Field(EfsConfig(), description="Amazon EFS for a ReadWriteMany model cache.")
    efa: bool = Field(False, description="Elastic Fabric Adapter (and a placement group) on GPU pools.")
    namespace: DnsLabel | None = Field(None, description=_NAMESPACE)

    def _issues(self) -> Iterator[Issue]:
        yield from _k8s_version_issues(self.kubernetes_version)
        yield from node_pool_issues(self.node_pools, "eks")
        yield from _vpc_issues(self.vpc_id, self.subnet_ids, 2, "EKS needs subnets in two zones")

    def scope(self) -> str:
        return f"eks:{self.region}/{self.cluster_name}"


class GkeTarget(_CloudTarget):
    """A Google GKE cluster, created (with its node pools) when missing."""

    HAS_NODE_POOLS: ClassVar[bool] = True
    kind: Literal["gke"] = Field("gke", description="Target kind.")
    project: Annotated[str, matching(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", "a GCP project id", "my-project")] = (
        Field(examples=["my-project"], description="GCP project id.")
    )
    location: Annotated[
        str, matching(r"^[a-z]+-[a-z]+\d+(-[a-z])?$", "a GCP region or zone", "us-central1-a")
    ] = Field(
        examples=["us-central1-a"], description="GCP zone (zonal cluster) or region (regional cluster)."
    )
    cluster_name: Annotated[
        str, matching(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", "a GKE cluster name (<= 40 chars)", "ai-dynamo")
    ] = Field(examples=["ai-dynamo"], description="GKE cluster name (at most 40 characters).")
    kubernetes_version: K8sVersion | None = Field(
        None,
        description=('Kubernetes minor version, quoted ("1.33"). Unset: the release channel\'s default.'),
    )
    node_pools: list[NodePool] = Field(
        min_length=1,
        examples=["[{name: gpu, instance_type: g2-standard-24}]"],
        description="Node pools (at least one); a GPU pool needs gpu.type.",
    )
    namespace: DnsLabel | None = Field(None, description=_NAMESPACE)

    def _issues(self) -> Iterator[Issue]:
        yield from _k8s_version_issues(self.kubernetes_version)
        yield from node_pool_issues(self.node_pools, "gke")

    def scope(self) -> str:
        return f"gke:{self.project}/{self.location}/{self.cluster_name}"


_GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class AksTarget(_CloudTarget):
    """An Azure AKS cluster, created (with its node pools) when missing."""

    HAS_NODE_POOLS: ClassVar[bool] = True
    kind: Literal["aks"] = Field("aks", description="Target kind.")
    subscription_id: Annotated[
        str, matching(_GUID, "an Azure subscription id (a GUID)", "00000000-0000-0000-0000-000000000000")
    ] = Field(
        examples=["00000000-0000-0000-0000-000000000000"], description="Azure subscription id (a GUID)."
    )
    resource_group: Annotated[
        str, matching(r"^[-\w.()]{0,89}[-\w()]$", "an Azure resource group name", "dynamo-rg")
    ] = Field(examples=["dynamo-rg"], description="Resource group of the cluster (created when missing).")
    location: Annotated[str, matching(r"^[a-z][a-z0-9]*$", "an Azure location", "eastus2")] = Field(
        examples=["eastus2"], description="Azure location, e.g. eastus2."
    )
    cluster_name: Annotated[
        str, matching(r"^[A-Za-z0-9]([-\w]{0,61}[A-Za-z0-9])?$", "an AKS cluster name", "ai-dynamo")
    ] = Field(examples=["ai-dynamo"], description="AKS cluster name.")
    kubernetes_version: K8sVersion | None = Field(
        None, description=('Kubernetes minor version, quoted ("1.33"). Unset: AKS\'s default version.')
    )
    node_pools: list[NodePool] = Field(
        min_length=1,
        examples=["[{name: gpunp, instance_type: Standard_NC24ads_A100_v4}]"],
        description="Node pools (at least one; names 1-12 lowercase letters and digits).",
    )
    namespace: DnsLabel | None = Field(None, description=_NAMESPACE)

    def _issues(self) -> Iterator[Issue]:
        yield from _k8s_version_issues(self.kubernetes_version)
        yield from node_pool_issues(self.node_pools, "aks")

    def scope(self) -> str:
        return f"aks:{self.subscription_id.lower()}/{self.resource_group}/{self.cluster_name}"


_EcsCluster = Annotated[str, matching(r"^[A-Za-z0-9][\w-]{0,254}$", "an ECS cluster name", "dynamo-gpu")]


class EcsTarget(_CloudTarget):
    """Amazon ECS: workers on a GPU EC2 cluster, etcd and NATS on Fargate; no Kubernetes."""

    KUBERNETES: ClassVar[bool] = False
    kind: Literal["ecs"] = Field("ecs", description="Target kind.")
    region: AwsRegion = Field(examples=["us-east-1"], description="AWS region, e.g. us-east-1.")
    cluster_name: _EcsCluster = Field(
        examples=["dynamo-gpu"], description="ECS cluster of the GPU EC2 instances."
    )
    fargate_cluster_name: _EcsCluster | None = Field(
        None, description=('ECS cluster for etcd and NATS on Fargate. Unset: "<cluster_name>-fargate".')
    )
    instance_type: InstanceType = Field("g6e.2xlarge", description="EC2 instance type of the GPU instances.")
    vpc_id: VpcId | None = Field(None, description=_VPC)
    subnet_ids: list[SubnetId] = Field(default_factory=list, description=_SUBNETS)
    desired_instances: int = Field(default=1, ge=1, le=100, description="GPU EC2 instances in the cluster.")

    def _issues(self) -> Iterator[Issue]:
        yield from _vpc_issues(self.vpc_id, self.subnet_ids, 1, "tasks need a subnet")

    def fargate_cluster(self) -> str:
        return self.fargate_cluster_name or f"{self.cluster_name}-fargate"

    def scope(self) -> str:
        return f"ecs:{self.region}/{self.cluster_name}"


Target = Annotated[
    LocalTarget | KubeTarget | EksTarget | GkeTarget | AksTarget | EcsTarget, Field(discriminator="kind")
]
TARGET_CLASSES: dict[str, type[_Target]] = {
    "local": LocalTarget,
    "kube": KubeTarget,
    "eks": EksTarget,
    "gke": GkeTarget,
    "aks": AksTarget,
    "ecs": EcsTarget,
}
TARGET_KINDS = tuple(TARGET_CLASSES)


def node_pools(target: Any) -> list[NodePool] | None:
    """The target's node pools, or None where the spec does not describe GPU capacity."""
    return list(target.node_pools) if target.HAS_NODE_POOLS else None
