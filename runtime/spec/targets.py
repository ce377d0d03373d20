"""Where a deployment runs: the strict base of every spec model, and one model per target kind.

Split from runtime/spec/models.py to keep each file readable; pure like it (stdlib + pydantic).

How a validation error carries its fix: a field check raises ``issue(problem, fix)``; a model's
``_issues()`` yields ``at(path, problem, fix)`` for every rule it breaks, and the base class raises
them together. Both become PydanticCustomErrors whose context holds the plain-words problem and
the fix, which runtime.spec.models turns into ``SpecIssue``s. A fix may say ``{path}``: the translator
replaces it with the field's dotted path, which a field validator cannot know by itself.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from runtime.domain import naming, secret_shapes

Issue = tuple[str, str, str]  # (path relative to the model, problem, fix)


def at(path: str, problem: str, fix: str) -> Issue:
    """One broken rule: path relative to the model being validated, what is wrong, what to write."""
    return (path, problem, fix)


def issue(problem: str, fix: str) -> PydanticCustomError:
    """The error of one field check: what is wrong and what to write instead."""
    return PydanticCustomError("dynadeploy", "{problem}", {"problem": problem, "fix": fix})


def rules(found: Iterable[Issue]) -> None:
    """Raise every broken rule of one model at once, if any."""
    found = list(found)
    if found:
        summary = "; ".join(f"{path or '.'}: {problem}" for path, problem, _ in found)
        raise PydanticCustomError("dynadeploy_rules", "{summary}", {"summary": summary, "issues": found})


class StrictModel(BaseModel):
    """Frozen, unknown fields forbidden, no type coercion ("2" is not 2, 1 is not "1")."""

    # strict=True matters for YAML: `revision: 1234567` or `kubernetes_version: 1.30` arrive as
    # numbers, and silently turning them into strings would hide a typo ("1.30" -> 1.3).
    # hide_input_in_errors: a raw ValidationError printed somewhere must not show a secret.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, hide_input_in_errors=True)

    def _issues(self) -> Iterable[Issue]:
        """Rules across this model's fields; runs only when every field is valid."""
        return ()

    @model_validator(mode="after")
    def _check_rules(self) -> StrictModel:
        rules(self._issues())
        return self


# --- field formats ------------------------------------------------------------------------------------


def matching(regex: str, what: str, example: str) -> AfterValidator:
    """A field check: the value must match ``regex``; the message says ``what`` with an example."""
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.match(value):
            # A value in the wrong shape is often a secret pasted where its name belongs
            # (secret_block: hf_..., env: <the key itself>): never quote one back.
            raise issue(f"{secret_shapes.shown(value)} is not {what}", f"set {{path}} to {what}, e.g. {example!r}")
        return value

    return AfterValidator(check)


def _dns_label(max_len: int) -> AfterValidator:
    def check(value: str) -> str:
        problem = naming.dns1123_label_problem(value, max_len)
        if problem:
            raise issue(
                f"{secret_shapes.shown(value)} is not a valid DNS-1123 label: {problem}",
                f"set {{path}} to lowercase letters, digits and '-' (at most {max_len} characters), "
                f"e.g. {naming.suggest_dns1123_label(secret_shapes.unless_secret(value, 'my-name'), max_len)!r}",
            )
        return value

    return AfterValidator(check)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise issue("it is empty", "set {path} to a non-empty value, or remove it")
    return value


DnsLabel = Annotated[str, _dns_label(naming.LABEL_MAX)]
NonBlank = Annotated[str, AfterValidator(_not_blank)]
Port = Annotated[int, Field(ge=1, le=65535)]
K8sVersion = Annotated[str, matching(r"^1\.\d{2}$", 'a Kubernetes minor version "1.NN" (quoted)', "1.33")]
AwsRegion = Annotated[
    str, matching(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$", "an AWS region name", "us-east-1")
]
VpcId = Annotated[str, matching(r"^vpc-[0-9a-f]{8,17}$", "a VPC id", "vpc-0a1b2c3d4e5f67890")]
SubnetId = Annotated[str, matching(r"^subnet-[0-9a-f]{8,17}$", "a subnet id", "subnet-0a1b2c3d4e5f67890")]
InstanceType = Annotated[str, matching(r"^[A-Za-z0-9][\w.-]*$", "an instance/VM type", "g6e.2xlarge")]

MIN_K8S_MINOR = 30  # Dynamo 1.6 needs Kubernetes >= 1.30 (platform chart README)


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


# --- node pools ---------------------------------------------------------------------------------------


class GpuSpec(StrictModel):
    type: str | None = Field(default=None, examples=["nvidia-l4"])  # e.g. nvidia-l4, a10g, h100
    count: int = Field(default=0, ge=0, le=16)  # GPUs per node


class Taint(StrictModel):
    key: NonBlank = Field(examples=["nvidia.com/gpu"])
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class NodePool(StrictModel):
    name: Annotated[str, _dns_label(40)] = Field(examples=["gpu"])
    instance_type: InstanceType = Field(examples=["g6e.2xlarge"])
    gpu: GpuSpec = GpuSpec()
    min: int = Field(default=1, ge=0)
    max: int = Field(default=1, ge=0, le=1000)
    desired: int = Field(default=1, ge=0)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    spot: bool = False
    disk_size_gb: int = Field(default=200, ge=20, le=16384)  # runtime images and models are large

    def _issues(self) -> Iterator[Issue]:
        if not self.min <= self.desired <= self.max:
            yield at(
                "desired",
                f"node counts must satisfy min <= desired <= max, got min={self.min}, "
                f"desired={self.desired}, max={self.max}",
                "set min, desired and max of this node pool so that min <= desired <= max",
            )
        for key, value in self.labels.items():
            if not naming.is_label_key(key):
                yield at(
                    f'labels["{key}"]',
                    f"{secret_shapes.shown(key)} is not a valid Kubernetes label key",
                    "use a key like example.com/pool (name part <= 63 alphanumerics, '-', '_', '.')",
                )
            elif not naming.is_label_value(value):
                yield at(
                    f'labels["{key}"]',
                    f"{secret_shapes.shown(value)} is not a valid Kubernetes label value",
                    "use at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
                )


def _node_pool_issues(pools: list[NodePool], kind: str) -> Iterator[Issue]:
    seen: set[str] = set()
    for i, pool in enumerate(pools):
        if pool.name in seen:
            yield at(
                f"node_pools[{i}].name",
                f"node pool name {pool.name!r} is used twice",
                f"give target.node_pools[{i}] a unique name, e.g. {pool.name + '-2'!r}",
            )
        seen.add(pool.name)
        # AKS: Linux node pool names are 1-12 lowercase alphanumerics starting with a letter.
        if kind == "aks" and not re.match(r"^[a-z][a-z0-9]{0,11}$", pool.name):
            yield at(
                f"node_pools[{i}].name",
                f"{pool.name!r} is not a valid AKS node pool name (1-12 lowercase letters and digits, "
                "starting with a letter, no '-')",
                f"rename it, e.g. {re.sub(r'[^a-z0-9]', '', pool.name)[:12] or 'gpunp'!r}",
            )
        if kind == "gke" and pool.gpu.count > 0 and not pool.gpu.type:
            yield at(
                f"node_pools[{i}].gpu.type",
                "GKE needs the accelerator type of a GPU node pool, and none is set",
                f"set target.node_pools[{i}].gpu.type, e.g. nvidia-l4 (g2 machines) or nvidia-h100-80gb",
            )


# --- cloud credentials --------------------------------------------------------------------------------

# The Prefect block type (slug) that holds a cloud target's credentials, and what makes one.
CREDENTIALS_BLOCK_TYPES = {"eks": "aws-credentials", "ecs": "aws-credentials", "gke": "gcp-credentials",
                           "aks": "azure-container-instance-credentials"}
_BLOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,254}$")
# Keys that carry a secret (or an identity) and so never belong in a spec.
_INLINE_CREDENTIALS = frozenset({
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "access_key_id", "secret_access_key",
    "session_token", "service_account_info", "service_account_file", "private_key", "client_id",
    "client_secret", "tenant_id", "password", "secret", "token", "key", "value",
})
CREDENTIALS_FIX = (
    "keep credentials out of the spec: store them in a Prefect block (aws-credentials for eks and ecs, "
    "gcp-credentials for gke, azure-container-instance-credentials for aks) and write "
    "{path}: {block: <block-name>}, or remove {path} to use the worker's default credential chain"
)


class CredentialsRef(StrictModel):
    """Which Prefect block holds the target's cloud credentials (resolved on the worker at run time).

    The block type follows from the target kind (CREDENTIALS_BLOCK_TYPES); only its name is written here.
    """

    block: str = Field(examples=["aws-prod"])

    @model_validator(mode="before")
    @classmethod
    def _reference_only(cls, data: Any) -> Any:
        if isinstance(data, str):
            # Quote the string only when it is a block name (the fix is then exact); anything else
            # here is likely the secret itself (an AWS secret access key pasted as credentials:).
            name = data.rsplit("/", 1)[-1]
            if _BLOCK_NAME.match(name) and not secret_shapes.looks_secret(data):
                raise issue(f"credentials must be a block reference, not the string {data!r}",
                            f"write {{path}}: {{block: {name}}}")
            raise issue("credentials must be a block reference, not a string (its value is not shown: it "
                        "may be a secret)", CREDENTIALS_FIX)
        if isinstance(data, dict) and _INLINE_CREDENTIALS & set(data):
            raise issue("credentials are written inline (not shown here)", CREDENTIALS_FIX)
        return data

    @model_validator(mode="after")
    def _block_name(self) -> CredentialsRef:
        name = self.block
        if not _BLOCK_NAME.match(name.rpartition("/")[2]) and secret_shapes.looks_secret(name):
            # A credential pasted as the block's name: say so without quoting or "fixing" it.
            raise issue("credentials.block holds what looks like a secret, not a block name (not shown here)",
                        CREDENTIALS_FIX)
        if "/" in name:
            slug, _, short = name.rpartition("/")
            raise issue(f"{name!r} names the block type too ({slug!r})",
                        f"write only the block name: {{path}}: {{block: {short}}}; the type follows from "
                        "target.kind")
        if not _BLOCK_NAME.match(name):
            fixed = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "cloud-credentials"
            raise issue(f"{name!r} is not a Prefect block name (lowercase letters, digits and '-')",
                        f"set {{path}}.block to the block's name, e.g. {fixed!r}")
        return self


# --- targets ------------------------------------------------------------------------------------------


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
    credentials: CredentialsRef | None = None

    def credentials_block_type(self) -> str:
        return CREDENTIALS_BLOCK_TYPES[self.kind]  # type: ignore[attr-defined]


class LocalTarget(_Target):
    KUBERNETES: ClassVar[bool] = False
    kind: Literal["local"] = "local"
    state_dir: NonBlank | None = None  # None: $DYNADEPLOY_HOME or ~/.dynadeploy (resolved at run time)
    discovery: Literal["file", "etcd"] = "file"
    gpus: Literal["auto", "none"] = "auto"  # auto: detect at run time; none: the host has no GPU
    host: str = "127.0.0.1"
    frontend_port: Port | None = None  # None: pick a free port at run time

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
    gpu_driver: Literal["preinstalled", "install"] = "install"
    storage_class: DnsLabel | None = None


class KubeTarget(_Target):
    kind: Literal["kube"] = "kube"
    kubeconfig: NonBlank | None = None  # None: $KUBECONFIG or ~/.kube/config
    context: NonBlank | None = None  # None: the kubeconfig's current context
    namespace: DnsLabel | None = None  # None: the spec name
    provider_hints: ProviderHints = ProviderHints()

    def scope(self) -> str:
        return f"kube:{self.context or ''}"


class EfsConfig(StrictModel):
    enabled: bool = True


class EksTarget(_CloudTarget):
    HAS_NODE_POOLS: ClassVar[bool] = True
    kind: Literal["eks"] = "eks"
    region: AwsRegion = Field(examples=["us-east-1"])
    cluster_name: Annotated[
        str, matching(r"^[A-Za-z0-9][\w-]{0,99}$", "an EKS cluster name", "ai-dynamo")
    ] = Field(examples=["ai-dynamo"])
    kubernetes_version: K8sVersion = "1.33"
    vpc_id: VpcId | None = None  # None: a VPC is created
    subnet_ids: list[SubnetId] = Field(default_factory=list)
    node_pools: list[NodePool] = Field(min_length=1, examples=["[{name: gpu, instance_type: g6e.2xlarge}]"])
    efs: EfsConfig = EfsConfig()
    efa: bool = False
    namespace: DnsLabel | None = None  # None: the spec name

    def _issues(self) -> Iterator[Issue]:
        yield from _k8s_version_issues(self.kubernetes_version)
        yield from _node_pool_issues(self.node_pools, "eks")
        yield from _vpc_issues(self.vpc_id, self.subnet_ids, 2, "EKS needs subnets in two zones")

    def scope(self) -> str:
        return f"eks:{self.region}/{self.cluster_name}"


class GkeTarget(_CloudTarget):
    HAS_NODE_POOLS: ClassVar[bool] = True
    kind: Literal["gke"] = "gke"
    project: Annotated[str, matching(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", "a GCP project id", "my-project")] = (
        Field(examples=["my-project"])
    )
    location: Annotated[
        str, matching(r"^[a-z]+-[a-z]+\d+(-[a-z])?$", "a GCP region or zone", "us-central1-a")
    ] = Field(examples=["us-central1-a"])
    cluster_name: Annotated[
        str, matching(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", "a GKE cluster name (<= 40 chars)", "ai-dynamo")
    ] = Field(examples=["ai-dynamo"])
    kubernetes_version: K8sVersion | None = None  # None: the release channel's default
    node_pools: list[NodePool] = Field(
        min_length=1, examples=["[{name: gpu, instance_type: g2-standard-24}]"]
    )
    namespace: DnsLabel | None = None

    def _issues(self) -> Iterator[Issue]:
        yield from _k8s_version_issues(self.kubernetes_version)
        yield from _node_pool_issues(self.node_pools, "gke")

    def scope(self) -> str:
        return f"gke:{self.project}/{self.location}/{self.cluster_name}"


_GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class AksTarget(_CloudTarget):
    HAS_NODE_POOLS: ClassVar[bool] = True
    kind: Literal["aks"] = "aks"
    subscription_id: Annotated[
        str, matching(_GUID, "an Azure subscription id (a GUID)", "00000000-0000-0000-0000-000000000000")
    ] = Field(examples=["00000000-0000-0000-0000-000000000000"])
    resource_group: Annotated[
        str, matching(r"^[-\w.()]{0,89}[-\w()]$", "an Azure resource group name", "dynamo-rg")
    ] = Field(examples=["dynamo-rg"])
    location: Annotated[str, matching(r"^[a-z][a-z0-9]*$", "an Azure location", "eastus2")] = Field(
        examples=["eastus2"]
    )
    cluster_name: Annotated[
        str, matching(r"^[A-Za-z0-9]([-\w]{0,61}[A-Za-z0-9])?$", "an AKS cluster name", "ai-dynamo")
    ] = Field(examples=["ai-dynamo"])
    kubernetes_version: K8sVersion | None = None  # None: AKS's default version
    node_pools: list[NodePool] = Field(
        min_length=1, examples=["[{name: gpunp, instance_type: Standard_NC24ads_A100_v4}]"]
    )
    namespace: DnsLabel | None = None

    def _issues(self) -> Iterator[Issue]:
        yield from _k8s_version_issues(self.kubernetes_version)
        yield from _node_pool_issues(self.node_pools, "aks")

    def scope(self) -> str:
        return f"aks:{self.subscription_id.lower()}/{self.resource_group}/{self.cluster_name}"


_EcsCluster = Annotated[str, matching(r"^[A-Za-z0-9][\w-]{0,254}$", "an ECS cluster name", "dynamo-gpu")]


class EcsTarget(_CloudTarget):
    KUBERNETES: ClassVar[bool] = False
    kind: Literal["ecs"] = "ecs"
    region: AwsRegion = Field(examples=["us-east-1"])
    cluster_name: _EcsCluster = Field(examples=["dynamo-gpu"])  # the GPU EC2 cluster
    fargate_cluster_name: _EcsCluster | None = None  # etcd + NATS; None: "<cluster_name>-fargate"
    instance_type: InstanceType = "g6e.2xlarge"
    vpc_id: VpcId | None = None  # None: a VPC is created
    subnet_ids: list[SubnetId] = Field(default_factory=list)
    desired_instances: int = Field(default=1, ge=1, le=100)

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
