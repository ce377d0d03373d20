"""Pure decisions shared by the providers, and the GKE/AKS request bodies: what to create, names, tags.

Everything here is a function of the spec: no SDK, no I/O. The call modules (gke.py, aks.py, eks.py,
ecs.py) send what these functions return. AWS-specific plans are in plan_aws.py, ECS task definitions
in ecs_render.py.

Tags mark ownership: a provider deletes only what carries its deployment id, so a cluster or VPC that
existed before (or belongs to another deployment) is used but never deleted. Tag keys differ per cloud
because of their character rules: AWS allows '/', GCP labels and Azure tags do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

from runtime.domain import capabilities, naming
from runtime.render.platform import gpu_driver_installed_by_operator

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import AksTarget, DeploymentSpec, GkeTarget, NodePool, Taint

AWS_TAG_KEY = "dynadeploy.io/deployment-id"
GCP_LABEL_KEY = "dynadeploy-deployment-id"  # GCP labels: lowercase letters, digits, '-' and '_'
AZURE_TAG_KEY = "dynadeploy-deployment-id"  # Azure tag names may not contain '/'
MANAGED_BY = "dynadeploy"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
AKS_GPU_TAINT = {"key": "sku", "value": "gpu", "effect": "NoSchedule"}  # AKS docs' GPU pool taint
# AKS needs one System-mode pool at creation; used only when the spec lists no CPU pool.
AKS_DEFAULT_SYSTEM_POOL = {"name": "system", "vmSize": "Standard_D4s_v5", "count": 1}


def deployment_id(spec: DeploymentSpec) -> str:
    return naming.deployment_id(spec)


def aws_tags(spec: DeploymentSpec, name: str | None = None, **extra: str) -> dict[str, str]:
    tags = {
        AWS_TAG_KEY: deployment_id(spec),
        naming.MANAGED_BY_KEY: MANAGED_BY,
        naming.DEPLOYMENT_KEY: spec.name,
    }
    if name:
        tags["Name"] = name
    return {**tags, **extra}


def gcp_labels(spec: DeploymentSpec) -> dict[str, str]:
    return {GCP_LABEL_KEY: deployment_id(spec), "managed-by": MANAGED_BY}


def azure_tags(spec: DeploymentSpec) -> dict[str, str]:
    return {AZURE_TAG_KEY: deployment_id(spec), "managed-by": MANAGED_BY, "dynadeploy-deployment": spec.name}


def owned(tags: dict[str, str] | None, spec: DeploymentSpec, key: str) -> bool:
    """True when ``tags`` (AWS/Azure tags or GCP labels) mark the object as this deployment's."""
    return bool(tags and tags.get(key) == deployment_id(spec))


# --- node pools ---------------------------------------------------------------------------------------


def is_gpu_pool(pool: NodePool) -> bool:
    return pool.gpu.count > 0


def gpu_driver_by_cloud(spec: DeploymentSpec) -> bool:
    """True when the cloud installs the NVIDIA driver on GPU nodes (else the GPU operator does).

    The same decision the GPU operator values use (spec.platform.gpu_operator.driver, else the
    provider's gpu_driver in infra/providers.yaml), so the nodes and the operator never disagree.
    """
    return not gpu_driver_installed_by_operator(spec, capabilities.for_spec(spec))


def taints(pool: NodePool, kind: Literal["eks", "gke", "aks"]) -> list[dict[str, str]]:
    """The pool's taints; GPU pools also get the cloud's GPU taint unless the spec sets that key.

    GKE puts nvidia.com/gpu=present:NoSchedule on GPU pools itself, so it is not added there.
    """
    out = [_taint(t) for t in pool.taints]
    if is_gpu_pool(pool) and kind != "gke":
        extra = GPU_TAINT if kind == "eks" else AKS_GPU_TAINT
        if all(t["key"] != extra["key"] for t in out):
            out.append(dict(extra))
    return out


def _taint(t: Taint) -> dict[str, str]:
    return {"key": t.key, "value": t.value, "effect": t.effect}


def inline_pools(pools: list[NodePool]) -> list[NodePool]:
    """Pools created together with the cluster: the CPU pools, or every pool when all have GPUs."""
    cpu = [p for p in pools if not is_gpu_pool(p)]
    return cpu or list(pools)


# --- GKE ----------------------------------------------------------------------------------------------

_GKE_EFFECT = {
    "NoSchedule": "NO_SCHEDULE",
    "PreferNoSchedule": "PREFER_NO_SCHEDULE",
    "NoExecute": "NO_EXECUTE",
}


def gke_parent(target: GkeTarget) -> str:
    return f"projects/{target.project}/locations/{target.location}"


def gke_cluster_path(target: GkeTarget) -> str:
    return f"{gke_parent(target)}/clusters/{target.cluster_name}"


def gke_node_pool(spec: DeploymentSpec, pool: NodePool) -> dict[str, Any]:
    """A container_v1.NodePool as a dict (proto field names)."""
    config: dict[str, Any] = {
        "machine_type": pool.instance_type,
        "disk_size_gb": pool.disk_size_gb,
        "labels": dict(pool.labels),
        "taints": [
            {"key": t["key"], "value": t["value"], "effect": _GKE_EFFECT[t["effect"]]}
            for t in taints(pool, "gke")
        ],
        "resource_labels": gcp_labels(spec),
        "spot": pool.spot,
    }
    if is_gpu_pool(pool):
        version = "LATEST" if gpu_driver_by_cloud(spec) else "INSTALLATION_DISABLED"
        config["accelerators"] = [
            {
                "accelerator_count": pool.gpu.count,
                "accelerator_type": pool.gpu.type or "",
                "gpu_driver_installation_config": {"gpu_driver_version": version},
            }
        ]
    return {
        "name": pool.name,
        "initial_node_count": pool.desired,
        "config": config,
        "autoscaling": (
            {"enabled": True, "min_node_count": pool.min, "max_node_count": pool.max}
            if pool.min != pool.max
            else {"enabled": False}
        ),
        "management": {"auto_repair": True, "auto_upgrade": True},
    }


def gke_cluster(spec: DeploymentSpec) -> dict[str, Any]:
    """A container_v1.Cluster as a dict: the inline pools, labels, and the Filestore CSI driver when
    the model cache is ReadWriteMany (the rwx class of infra/providers.yaml needs it)."""
    target = cast("GkeTarget", spec.target)  # the caller chose this renderer by target.kind
    body: dict[str, Any] = {
        "name": target.cluster_name,
        "resource_labels": gcp_labels(spec),
        "node_pools": [gke_node_pool(spec, p) for p in inline_pools(target.node_pools)],
        "addons_config": {"gcp_filestore_csi_driver_config": {"enabled": gke_needs_filestore(spec)}},
    }
    if target.kubernetes_version:
        body["initial_cluster_version"] = target.kubernetes_version
    return body


def gke_needs_filestore(spec: DeploymentSpec) -> bool:
    cache = spec.model.cache
    return cache.access_mode == "ReadWriteMany" and cache.storage_class is None


# --- AKS ----------------------------------------------------------------------------------------------


def aks_agent_pool(spec: DeploymentSpec, pool: NodePool, mode: str = "User") -> dict[str, Any]:
    """An agent pool's properties (REST field names). GPU pools carry gpuProfile.driver: "None" when the
    GPU operator installs the driver (the current API field; the skip-gpu-driver-install tag is retired)."""
    props: dict[str, Any] = {
        "vmSize": pool.instance_type,
        "count": pool.desired,
        "enableAutoScaling": pool.min != pool.max,
        "mode": mode,
        "osType": "Linux",
        "type": "VirtualMachineScaleSets",
        "osDiskSizeGB": pool.disk_size_gb,
        "nodeLabels": dict(pool.labels),
        "nodeTaints": [f"{t['key']}={t['value']}:{t['effect']}" for t in taints(pool, "aks")],
        "tags": azure_tags(spec),
    }
    if pool.min != pool.max:
        props.update(minCount=pool.min, maxCount=pool.max)
    if pool.spot:
        props.update(scaleSetPriority="Spot", scaleSetEvictionPolicy="Delete", spotMaxPrice=-1)
    if is_gpu_pool(pool):
        props["gpuProfile"] = {"driver": "Install" if gpu_driver_by_cloud(spec) else "None"}
    return props


def aks_cluster(spec: DeploymentSpec) -> dict[str, Any]:
    """The managed cluster (REST field names) with its System pool: the first CPU pool of the spec,
    or AKS_DEFAULT_SYSTEM_POOL when every pool has GPUs (those then come from ensure_gpu_nodes)."""
    target = cast("AksTarget", spec.target)  # the caller chose this renderer by target.kind
    cpu = [p for p in target.node_pools if not is_gpu_pool(p)]
    if cpu:
        system = {"name": cpu[0].name, **aks_agent_pool(spec, cpu[0], mode="System")}
    else:
        system = {
            **AKS_DEFAULT_SYSTEM_POOL,
            "mode": "System",
            "osType": "Linux",
            "type": "VirtualMachineScaleSets",
            "tags": azure_tags(spec),
        }
    props: dict[str, Any] = {
        "dnsPrefix": naming.suggest_dns1123_label(target.cluster_name, 54),
        "enableRBAC": True,
        "agentPoolProfiles": [system],
    }
    if target.kubernetes_version:
        props["kubernetesVersion"] = target.kubernetes_version
    return {
        "location": target.location,
        "tags": azure_tags(spec),
        "identity": {"type": "SystemAssigned"},
        "properties": props,
    }
