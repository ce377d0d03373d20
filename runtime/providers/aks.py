"""Azure AKS with azure-mgmt-containerservice (+ azure-identity): cluster, GPU pools, access, teardown.

``ensure_cluster``: the resource group (created and tagged only when missing; a group that existed is
  used and never deleted), the managed cluster (system-assigned identity, RBAC, the spec's first CPU
  pool as its System pool, or a small default System pool when every pool has GPUs), waiting until
  provisioningState is Succeeded. A cluster left Creating by a killed run is waited for, a Failed one
  is PUT again (ARM's recovery).
``ensure_gpu_nodes``: every pool of the spec as an agent pool (User mode; the one made as the System
  pool with the cluster is found and kept); GPU pools get gpuProfile.driver "None" when the
  GPU operator installs the driver (the current API field, replacing the retired
  --skip-gpu-driver-install tag), "Install" when AKS should, plus the sku=gpu:NoSchedule taint.
``kube_access``: listClusterUserCredential's kubeconfig (server, CA, token or client certificate; for
  AAD clusters, whose kubeconfig wants kubelogin, an AAD token from the same credential instead).
``delete_cluster``: the cluster when it carries our tag (else only the agent pools we added to it), and
  the resource group when we created it.
AKS deletes its node resource group (MC_*) with the cluster, including load balancers and disks
Kubernetes created there.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from runtime.domain.waiting import Waits
from runtime.errors import PermanentError, TransientError
from runtime.gateways.azure import RESOURCE_GROUP_API, Azure
from runtime.providers.base import Capability, ClusterRef, KubeAccess, StorageClass
from runtime.render import cloud_plan as plan
from runtime.spec import AksTarget

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import DeploymentSpec

_BUSY = ("Creating", "Updating", "Upgrading", "Scaling", "Starting", "Stopping", "Migrating", "Deleting")


def _state(obj: Any) -> str:
    props = getattr(obj, "properties", None)
    return (
        getattr(props, "provisioning_state", None) or getattr(obj, "provisioning_state", None) or ""
    ).strip()


def _tags(obj: Any) -> dict[str, str]:
    return dict(getattr(obj, "tags", None) or {})


class AksProvider:
    name: ClassVar[str] = "aks"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.KUBERNETES,
            Capability.CREATES_CLUSTER,
            Capability.GPU_NODE_POOLS,
            Capability.MANAGED_GPU_DRIVER,
            Capability.OPERATOR_GPU_DRIVER,
            Capability.RWX_STORAGE,
            Capability.SPOT,
        }
    )

    def __init__(
        self,
        *,
        waits: Waits | None = None,
        polling_interval: float = 15.0,
        retry_total: int = 8,
        credentials: Any = None,
    ) -> None:
        # credentials: an azure-container-instance-credentials block's runtime.domain.credentials.AzureCredentials
        self._options = {
            "waits": waits,
            "polling_interval": polling_interval,
            "retry_total": retry_total,
            "credentials": credentials,
        }
        self._clients: dict[str, Azure] = {}

    def azure(self, subscription_id: str) -> Azure:
        if subscription_id not in self._clients:
            self._clients[subscription_id] = Azure(subscription_id, **self._options)
        return self._clients[subscription_id]

    def _rg_path(self, t: AksTarget) -> str:
        return f"/subscriptions/{t.subscription_id}/resourcegroups/{t.resource_group}"

    # --- cluster ------------------------------------------------------------------------------------

    def _cluster(self, az: Azure, t: AksTarget) -> Any:
        return az.get(
            "managedClusters.get", lambda: az.client.managed_clusters.get(t.resource_group, t.cluster_name)
        )

    def ensure_cluster(self, spec: DeploymentSpec) -> ClusterRef:
        t = spec.target_as(AksTarget)
        az = self.azure(t.subscription_id)
        status, group = az.arm("GET", self._rg_path(t), RESOURCE_GROUP_API)
        if status == 404 or (group or {}).get("properties", {}).get("provisioningState") == "Deleting":
            if status != 404:
                az.wait(
                    lambda: True if az.arm("GET", self._rg_path(t), RESOURCE_GROUP_API)[0] == 404 else None,
                    what=f"deletion of resource group {t.resource_group}",
                )
            az.arm(
                "PUT",
                self._rg_path(t),
                RESOURCE_GROUP_API,
                {"location": t.location, "tags": plan.azure_tags(spec)},
            )
        cluster = self._cluster(az, t)
        if cluster is not None and _state(cluster) == "Deleting":
            az.wait(
                lambda: True if self._cluster(az, t) is None else None, what=f"deletion of {t.cluster_name}"
            )
            cluster = None
        if cluster is None or _state(cluster) == "Failed":
            poller = az.begin_create_cluster(t.resource_group, t.cluster_name, plan.aks_cluster(spec))
            az.call(
                f"creating AKS cluster {t.cluster_name}", lambda: poller.result(timeout=az.waits.timeout_s)
            )
        cluster = az.wait(lambda: self._succeeded(az, t), what=f"AKS cluster {t.cluster_name}")
        fqdn = cluster.properties.fqdn or cluster.properties.private_fqdn
        return ClusterRef(
            kind="aks",
            name=t.cluster_name,
            location=t.location,
            deployment_id=plan.deployment_id(spec),
            endpoint=f"https://{fqdn}:443" if fqdn else None,
            version=cluster.properties.current_kubernetes_version,
            status=_state(cluster),
            details={
                "subscription_id": t.subscription_id,
                "resource_group": t.resource_group,
                "id": cluster.id,
                "owned": plan.owned(_tags(cluster), spec, plan.AZURE_TAG_KEY),
                "node_resource_group": cluster.properties.node_resource_group,
            },
        )

    def _succeeded(self, az: Azure, t: AksTarget) -> Any:
        cluster = self._cluster(az, t)
        if cluster is None:
            raise TransientError(f"AKS cluster {t.cluster_name} vanished while waiting for it", hint="rerun")
        if _state(cluster) == "Failed":
            raise PermanentError(
                f"AKS cluster {t.cluster_name} is Failed",
                hint="see the cluster's activity log in the Azure portal; rerun to retry it",
            )
        return cluster if _state(cluster) == "Succeeded" else None

    def _idle(self, az: Azure, t: AksTarget) -> bool | None:
        cluster = self._cluster(az, t)
        return True if cluster is None or _state(cluster) not in _BUSY[:-1] else None

    # --- node pools ---------------------------------------------------------------------------------

    def _pool(self, az: Azure, t: AksTarget, name: str) -> Any:
        return az.get(
            "agentPools.get", lambda: az.client.agent_pools.get(t.resource_group, t.cluster_name, name)
        )

    def ensure_gpu_nodes(self, spec: DeploymentSpec, ref: ClusterRef) -> list[str]:
        t = spec.target_as(AksTarget)
        az = self.azure(t.subscription_id)
        for pool in t.node_pools:  # the System pool made with the cluster is found here and kept
            existing = self._pool(az, t, pool.name)
            if existing is not None and _state(existing) == "Deleting":
                az.wait(
                    lambda: True if self._pool(az, t, pool.name) is None else None,
                    what=f"deletion of agent pool {pool.name}",
                )
                existing = None
            if existing is None or _state(existing) == "Failed":
                az.wait(
                    lambda: self._succeeded(az, t), what=f"AKS cluster {t.cluster_name}"
                )  # one op at a time
                poller = az.begin_create_agent_pool(
                    t.resource_group, t.cluster_name, pool.name, plan.aks_agent_pool(spec, pool)
                )
                az.call(f"creating agent pool {pool.name}", lambda: poller.result(timeout=az.waits.timeout_s))
            az.wait(lambda: self._pool_ready(az, t, pool.name), what=f"agent pool {pool.name}")
        return [p.name for p in t.node_pools]

    def _pool_ready(self, az: Azure, t: AksTarget, name: str) -> bool | None:
        pool = self._pool(az, t, name)
        if pool is None:
            raise TransientError(f"agent pool {name} vanished while waiting for it", hint="rerun")
        if _state(pool) == "Failed":
            raise PermanentError(
                f"agent pool {name} is Failed",
                hint="check the VM size's quota and availability in the region; rerun to retry",
            )
        return True if _state(pool) == "Succeeded" else None

    # --- access and storage -------------------------------------------------------------------------

    def kube_access(self, ref: ClusterRef) -> KubeAccess:
        az = self.azure(ref.details["subscription_id"])
        rg = ref.details["resource_group"]
        creds = az.call(
            "managedClusters.list_cluster_user_credentials",
            lambda: az.client.managed_clusters.list_cluster_user_credentials(rg, ref.name),
        )
        raw = creds.kubeconfigs[0].value
        text = raw.decode() if isinstance(raw, bytes | bytearray) else base64.b64decode(raw).decode()
        config = yaml.safe_load(text) or {}
        cluster = (config.get("clusters") or [{}])[0].get("cluster", {})
        user = (config.get("users") or [{}])[0].get("user", {})
        token = user.get("token")
        if not token and not user.get("client-certificate-data") and user.get("exec"):
            token = az.user_token()  # an AAD cluster: what kubelogin would fetch, without kubelogin
        return KubeAccess(
            server=cluster.get("server") or ref.endpoint or "",
            context=f"dynadeploy-aks-{ref.name}",
            ca_data=cluster.get("certificate-authority-data"),
            token=token,
            client_cert_data=user.get("client-certificate-data"),
            client_key_data=user.get("client-key-data"),
        )

    def storage_class(self, spec: DeploymentSpec, ref: ClusterRef) -> StorageClass:
        """The spec's class, else azurefile-csi for RWX / managed-csi otherwise (built into AKS): the same
        choice as the cache PVC's (capabilities.cache_storage_class)."""
        from runtime.domain import capabilities

        return StorageClass(capabilities.cache_storage_class(spec), spec.model.cache.access_mode)

    # --- inventory and teardown ---------------------------------------------------------------------

    def inventory(self, spec: DeploymentSpec) -> list[str]:
        t = spec.target_as(AksTarget)
        az = self.azure(t.subscription_id)
        out = []
        status, group = az.arm("GET", self._rg_path(t), RESOURCE_GROUP_API)
        if status == 404:
            return []
        if plan.owned((group or {}).get("tags"), spec, plan.AZURE_TAG_KEY):
            out.append(f"azure:resource-group/{t.resource_group}")
        clusters = az.call(
            "managedClusters.list_by_resource_group",
            lambda: list(az.client.managed_clusters.list_by_resource_group(t.resource_group)),
        )
        for cluster in clusters:
            ours = plan.owned(_tags(cluster), spec, plan.AZURE_TAG_KEY)
            if ours:
                out.append(f"aks:managed-cluster/{cluster.name}")
            pools = az.call(
                "agentPools.list", lambda: list(az.client.agent_pools.list(t.resource_group, cluster.name))
            )
            out += [
                f"aks:agent-pool/{cluster.name}/{p.name}" for p in pools if ours or self._pool_ours(p, spec)
            ]
        return sorted(out)

    def _pool_ours(self, pool: Any, spec: DeploymentSpec) -> bool:
        tags = getattr(getattr(pool, "properties", None), "tags", None) or getattr(pool, "tags", None)
        return plan.owned(dict(tags or {}), spec, plan.AZURE_TAG_KEY)

    def _delete_our_pools(self, az: Azure, spec: DeploymentSpec) -> None:
        """On a cluster this deployment did not create: only the agent pools it added."""
        t = spec.target_as(AksTarget)
        pools = az.call(
            "agentPools.list", lambda: list(az.client.agent_pools.list(t.resource_group, t.cluster_name))
        )
        for pool in pools:
            if self._pool_ours(pool, spec):
                az.wait(lambda: self._idle(az, t), what=f"operations on {t.cluster_name}")
                poller = az.get(
                    "agentPools.begin_delete",
                    lambda: az.client.agent_pools.begin_delete(t.resource_group, t.cluster_name, pool.name),
                )
                if poller is not None:
                    az.call(
                        f"deleting agent pool {pool.name}", lambda: poller.result(timeout=az.waits.timeout_s)
                    )
                az.wait(
                    lambda: True if self._pool(az, t, pool.name) is None else None,
                    what=f"deletion of agent pool {pool.name}",
                )

    def delete_cluster(self, spec: DeploymentSpec) -> None:
        t = spec.target_as(AksTarget)
        az = self.azure(t.subscription_id)
        status, group = az.arm("GET", self._rg_path(t), RESOURCE_GROUP_API)
        if status == 404:
            return
        cluster = self._cluster(az, t)
        if cluster is not None and not plan.owned(_tags(cluster), spec, plan.AZURE_TAG_KEY):
            self._delete_our_pools(az, spec)
        elif cluster is not None:
            if _state(cluster) != "Deleting":
                az.wait(lambda: self._idle(az, t), what=f"operations on {t.cluster_name}")
                poller = az.get(
                    "managedClusters.begin_delete",
                    lambda: az.client.managed_clusters.begin_delete(t.resource_group, t.cluster_name),
                )
                if poller is not None:
                    az.call(
                        f"deleting AKS cluster {t.cluster_name}",
                        lambda: poller.result(timeout=az.waits.timeout_s),
                    )
            az.wait(
                lambda: True if self._cluster(az, t) is None else None, what=f"deletion of {t.cluster_name}"
            )
        if plan.owned((group or {}).get("tags"), spec, plan.AZURE_TAG_KEY):
            status, _ = az.arm("DELETE", self._rg_path(t), RESOURCE_GROUP_API)
            az.wait(
                lambda: True if az.arm("GET", self._rg_path(t), RESOURCE_GROUP_API)[0] == 404 else None,
                what=f"deletion of resource group {t.resource_group}",
            )
