"""Google GKE with google-cloud-container: the cluster, its node pools, kube access, teardown.

``ensure_cluster``: the cluster (labels with the deployment id, the spec's CPU pools inline, or every
  pool when all have GPUs; the Filestore CSI driver when the model cache is ReadWriteMany), waiting for
  its create operation and for RUNNING.
``ensure_gpu_nodes``: every other pool of the spec (GPU pools with their accelerator type/count and
  GKE-installed drivers, gpu_driver_version LATEST, unless the spec gives the driver to the GPU
  operator: INSTALLATION_DISABLED), one operation at a time as GKE requires.
``kube_access``: the cluster endpoint, its CA and a google-auth access token.
``delete_cluster``: the cluster with its pools when it carries our label, else only the pools we added
  to it; not-found is success.
Load balancers and persistent disks that Kubernetes created are removed by the kube teardown (Service
and PVC deletion) before the cluster; this module has no Compute Engine client to list leftovers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from runtime.domain.waiting import Waits
from runtime.errors import PermanentError, TransientError
from runtime.gateways.gcp import Gke
from runtime.providers.base import Capability, ClusterRef, KubeAccess, StorageClass
from runtime.render import cloud_plan as plan
from runtime.spec import GkeTarget

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import DeploymentSpec

_BUSY = ("PROVISIONING", "RECONCILING")


def _status(obj: Any) -> str:
    return getattr(obj.status, "name", str(obj.status))


class GkeProvider:
    name: ClassVar[str] = "gke"
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
        self, *, waits: Waits | None = None, retry_initial_s: float = 1.0, credentials: Any = None
    ) -> None:
        # credentials: a gcp-credentials block's runtime.domain.credentials.GcpCredentials (None: the default chain)
        self.gke = Gke(waits=waits, retry_initial_s=retry_initial_s, credentials=credentials)

    # --- cluster ------------------------------------------------------------------------------------

    def _cluster(self, t: GkeTarget) -> Any:
        return self.gke.get("get_cluster", name=plan.gke_cluster_path(t))

    def ensure_cluster(self, spec: DeploymentSpec) -> ClusterRef:
        t = spec.target_as(GkeTarget)
        cluster = self._cluster(t)
        if cluster is not None and _status(cluster) == "STOPPING":
            self._wait_gone(t)
            cluster = None
        if cluster is None:
            op = self.gke.create_cluster(plan.gke_parent(t), plan.gke_cluster(spec))
            if op is not None:
                self.gke.wait_operation(
                    plan.gke_parent(t), op, what=f"creation of GKE cluster {t.cluster_name}"
                )
        cluster = self.gke.wait(lambda: self._running(t), what=f"GKE cluster {t.cluster_name}")
        endpoint = cluster.endpoint if "://" in cluster.endpoint else f"https://{cluster.endpoint}"
        return ClusterRef(
            kind="gke",
            name=t.cluster_name,
            location=t.location,
            deployment_id=plan.deployment_id(spec),
            endpoint=endpoint,
            ca_data=cluster.master_auth.cluster_ca_certificate or None,
            version=cluster.current_master_version,
            status=_status(cluster),
            details={
                "project": t.project,
                "self_link": cluster.self_link,
                "owned": plan.owned(dict(cluster.resource_labels), spec, plan.GCP_LABEL_KEY),
            },
        )

    def _running(self, t: GkeTarget) -> Any:
        cluster = self._cluster(t)
        if cluster is None:
            raise TransientError(f"GKE cluster {t.cluster_name} vanished while waiting for it", hint="rerun")
        status = _status(cluster)
        if status in ("ERROR", "DEGRADED"):
            raise PermanentError(
                f"GKE cluster {t.cluster_name} is {status}: {cluster.status_message}",
                hint="see the cluster in the GKE console; delete it and rerun",
            )
        return cluster if status == "RUNNING" else None

    def _wait_gone(self, t: GkeTarget) -> None:
        self.gke.wait(
            lambda: True if self._cluster(t) is None else None, what=f"deletion of {t.cluster_name}"
        )

    # --- node pools ---------------------------------------------------------------------------------

    def ensure_gpu_nodes(self, spec: DeploymentSpec, ref: ClusterRef) -> list[str]:
        t = spec.target_as(GkeTarget)
        path = plan.gke_cluster_path(t)
        for pool in t.node_pools:
            name = f"{path}/nodePools/{pool.name}"
            existing = self.gke.get("get_node_pool", name=name)
            if existing is not None and _status(existing) == "STOPPING":
                self.gke.wait(
                    lambda: True if self.gke.get("get_node_pool", name=name) is None else None,
                    what=f"deletion of node pool {pool.name}",
                )
                existing = None
            if existing is None:
                # One operation at a time per cluster: wait for RUNNING (not RECONCILING) first.
                self.gke.wait(lambda: self._running(t), what=f"GKE cluster {t.cluster_name}")
                op = self.gke.create_node_pool(path, plan.gke_node_pool(spec, pool))
                if op is not None:
                    self.gke.wait_operation(plan.gke_parent(t), op, what=f"creation of node pool {pool.name}")
            self.gke.wait(lambda: self._pool_ready(name, pool.name), what=f"node pool {pool.name}")
        return [p.name for p in t.node_pools]

    def _pool_ready(self, name: str, short: str) -> bool | None:
        pool = self.gke.get("get_node_pool", name=name)
        if pool is None:
            raise TransientError(f"node pool {short} vanished while waiting for it", hint="rerun")
        status = _status(pool)
        if status == "ERROR":
            raise PermanentError(
                f"node pool {short} is ERROR: {pool.status_message}",
                hint="check the GPU quota and the accelerator's zones; delete the pool and rerun",
            )
        return True if status in ("RUNNING", "RUNNING_WITH_ERROR") else None

    # --- access and storage -------------------------------------------------------------------------

    def kube_access(self, ref: ClusterRef) -> KubeAccess:
        token, expires = self.gke.token()
        return KubeAccess(
            server=ref.endpoint or "",
            context=f"dynadeploy-gke-{ref.name}",
            ca_data=ref.ca_data,
            token=token,
            expires_at=expires,
        )

    def storage_class(self, spec: DeploymentSpec, ref: ClusterRef) -> StorageClass:
        """The cache's class: the spec's, else standard-rwx (Filestore, enabled at cluster creation) for
        RWX, else the default class (infra/providers.yaml): the same choice as the cache PVC's
        (capabilities.cache_storage_class). GKE ships these classes itself."""
        from runtime.domain import capabilities

        return StorageClass(capabilities.cache_storage_class(spec), spec.model.cache.access_mode)

    # --- inventory and teardown ---------------------------------------------------------------------

    def inventory(self, spec: DeploymentSpec) -> list[str]:
        t = spec.target_as(GkeTarget)
        out = []
        listed = self.gke.call("list_clusters", parent=plan.gke_parent(t))
        for cluster in listed.clusters:
            ours = plan.owned(dict(cluster.resource_labels), spec, plan.GCP_LABEL_KEY)
            if ours:
                out.append(f"gke:cluster/{cluster.name}")
            out += [
                f"gke:node-pool/{cluster.name}/{p.name}"
                for p in cluster.node_pools
                if ours or self._pool_ours(p, spec)
            ]
        return sorted(out)

    def _pool_ours(self, pool: Any, spec: DeploymentSpec) -> bool:
        return plan.owned(dict(pool.config.resource_labels), spec, plan.GCP_LABEL_KEY)

    def _delete_our_pools(self, spec: DeploymentSpec, cluster: Any) -> None:
        """On a cluster this deployment did not create: only the node pools it added."""
        t = spec.target_as(GkeTarget)
        for pool in cluster.node_pools:
            if self._pool_ours(pool, spec):
                self.gke.wait(lambda: self._idle(t), what=f"operations on {t.cluster_name}")
                op = self.gke.get(
                    "delete_node_pool", name=f"{plan.gke_cluster_path(t)}/nodePools/{pool.name}"
                )
                if op is not None:
                    self.gke.wait_operation(plan.gke_parent(t), op, what=f"deletion of node pool {pool.name}")

    def delete_cluster(self, spec: DeploymentSpec) -> None:
        t = spec.target_as(GkeTarget)
        cluster = self._cluster(t)
        if cluster is None:
            return
        if not plan.owned(dict(cluster.resource_labels), spec, plan.GCP_LABEL_KEY):
            self._delete_our_pools(spec, cluster)
            return
        if _status(cluster) != "STOPPING":
            # An operation still running (a killed create) blocks the delete: wait for it first.
            self.gke.wait(lambda: self._idle(t), what=f"operations on {t.cluster_name}")
            op = self.gke.get("delete_cluster", name=plan.gke_cluster_path(t))
            if op is not None:
                self.gke.wait_operation(
                    plan.gke_parent(t), op, what=f"deletion of GKE cluster {t.cluster_name}"
                )
        self._wait_gone(t)

    def _idle(self, t: GkeTarget) -> bool | None:
        cluster = self._cluster(t)
        return True if cluster is None or _status(cluster) not in _BUSY else None
