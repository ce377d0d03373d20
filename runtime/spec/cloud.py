"""What cloud targets (eks, gke, aks, ecs) share: node pools and the reference to a credentials block.

Split from runtime/spec/targets.py to keep each file readable; pure like it (stdlib, pydantic,
runtime.domain). The Prefect block type per target kind is domain data (runtime/domain/credentials.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from runtime.domain import naming, secret_shapes
from runtime.domain.credentials import CREDENTIALS_BLOCK_TYPES
from runtime.spec.base import Issue, NonBlank, StrictModel, at, dns_label, issue, matching

__all__ = [
    "CREDENTIALS_BLOCK_TYPES",
    "CREDENTIALS_FIX",
    "CredentialsRef",
    "GpuSpec",
    "InstanceType",
    "NodePool",
    "Taint",
    "node_pool_issues",
]

InstanceType = Annotated[str, matching(r"^[A-Za-z0-9][\w.-]*$", "an instance/VM type", "g6e.2xlarge")]


# --- node pools ---------------------------------------------------------------------------------------


class GpuSpec(StrictModel):
    """The GPUs of each node of a pool."""

    type: str | None = Field(
        default=None,
        examples=["nvidia-l4"],
        description=("Accelerator type, e.g. nvidia-l4, a10g, h100 (GKE requires it on a GPU pool)."),
    )
    count: int = Field(default=0, ge=0, le=16, description="GPUs per node (0: a CPU pool).")


class Taint(StrictModel):
    """A Kubernetes taint on every node of a pool."""

    key: NonBlank = Field(examples=["nvidia.com/gpu"], description="Taint key, e.g. nvidia.com/gpu.")
    value: str = Field("", description="Taint value (may be empty).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        "NoSchedule", description="What the taint does to pods that do not tolerate it."
    )


class NodePool(StrictModel):
    """One group of identical nodes of a cloud cluster."""

    name: Annotated[str, dns_label(40)] = Field(
        examples=["gpu"],
        description="Pool name, unique in the cluster (AKS: 1-12 lowercase letters and digits).",
    )
    instance_type: InstanceType = Field(
        examples=["g6e.2xlarge"], description="Machine type of the nodes, e.g. g6e.2xlarge, g2-standard-24."
    )
    gpu: GpuSpec = Field(GpuSpec(), description="The GPUs of each node.")
    min: int = Field(default=1, ge=0, description="Fewest nodes the autoscaler keeps.")
    max: int = Field(default=1, ge=0, le=1000, description="Most nodes the autoscaler adds.")
    desired: int = Field(default=1, ge=0, description="Nodes at creation (min <= desired <= max).")
    labels: dict[str, str] = Field(default_factory=dict, description="Kubernetes labels on every node.")
    taints: list[Taint] = Field(default_factory=list, description="Taints on every node.")
    spot: bool = Field(False, description="Use spot/preemptible capacity (cheaper, may be reclaimed).")
    disk_size_gb: int = Field(
        default=200,
        ge=20,
        le=16384,
        description=("Boot disk per node in GB; runtime images and models are large."),
    )

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


def node_pool_issues(pools: list[NodePool], kind: str) -> Iterator[Issue]:
    """Rules across the node pools of one target (paths relative to the target)."""
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

_BLOCK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,254}$")
# Keys that carry a secret (or an identity) and so never belong in a spec.
_INLINE_CREDENTIALS = frozenset(
    {
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "access_key_id",
        "secret_access_key",
        "session_token",
        "service_account_info",
        "service_account_file",
        "private_key",
        "client_id",
        "client_secret",
        "tenant_id",
        "password",
        "secret",
        "token",
        "key",
        "value",
    }
)
CREDENTIALS_FIX = (
    "keep credentials out of the spec: store them in a Prefect block (aws-credentials for eks and ecs, "
    "gcp-credentials for gke, azure-container-instance-credentials for aks) and write "
    "{path}: {block: <block-name>}, or remove {path} to use the worker's default credential chain"
)


class CredentialsRef(StrictModel):
    """Which Prefect block holds the target's cloud credentials (resolved on the worker at run time).

    The block type follows from the target kind (CREDENTIALS_BLOCK_TYPES); only its name is written here.
    """

    block: str = Field(
        examples=["aws-prod"],
        description=(
            "Name of the Prefect credentials block (aws-credentials for eks/ecs, gcp-credentials for gke, "
            "azure-container-instance-credentials for aks); the type follows from target.kind."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _reference_only(cls, data: Any) -> Any:
        if isinstance(data, str):
            # Quote the string only when it is a block name (the fix is then exact); anything else
            # here is likely the secret itself (an AWS secret access key pasted as credentials:).
            name = data.rsplit("/", 1)[-1]
            if _BLOCK_NAME.match(name) and not secret_shapes.looks_secret(data):
                raise issue(
                    f"credentials must be a block reference, not the string {data!r}",
                    f"write {{path}}: {{block: {name}}}",
                )
            raise issue(
                "credentials must be a block reference, not a string (its value is not shown: it "
                "may be a secret)",
                CREDENTIALS_FIX,
            )
        if isinstance(data, dict) and _INLINE_CREDENTIALS & set(data):
            raise issue("credentials are written inline (not shown here)", CREDENTIALS_FIX)
        return data

    @model_validator(mode="after")
    def _block_name(self) -> CredentialsRef:
        name = self.block
        if not _BLOCK_NAME.match(name.rpartition("/")[2]) and secret_shapes.looks_secret(name):
            # A credential pasted as the block's name: say so without quoting or "fixing" it.
            raise issue(
                "credentials.block holds what looks like a secret, not a block name (not shown here)",
                CREDENTIALS_FIX,
            )
        if "/" in name:
            slug, _, short = name.rpartition("/")
            raise issue(
                f"{name!r} names the block type too ({slug!r})",
                f"write only the block name: {{path}}: {{block: {short}}}; the type follows from target.kind",
            )
        if not _BLOCK_NAME.match(name):
            fixed = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "cloud-credentials"
            raise issue(
                f"{name!r} is not a Prefect block name (lowercase letters, digits and '-')",
                f"set {{path}}.block to the block's name, e.g. {fixed!r}",
            )
        return self
