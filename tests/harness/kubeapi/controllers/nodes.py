"""Nodes, created once from a config list, with GPU models and counts.

    Nodes(nodes=[NodeSpec("gpu-a", gpu_model="NVIDIA-H100-80GB-HBM3", gpus=8,
                          taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}])],
          driver_preinstalled=False)

Each node is Ready, with capacity/allocatable cpu, memory, pods, ephemeral-storage, addresses, nodeInfo
(kubelet v1.35) and the usual labels (kubernetes.io/hostname, os, arch, instance-type when given). A GPU
node also carries the labels GPU feature discovery would set (``nvidia.com/gpu.present``,
``nvidia.com/gpu.product``, ``nvidia.com/gpu.count``, ``nvidia.com/gpu.memory`` when given,
``feature.node.kubernetes.io/pci-10de.present``) but reports **no** ``nvidia.com/gpu`` capacity until a
device plugin runs on it (the gpu_operator controller calls ``set_gpu_capacity``), unless the driver
and device plugin come with the node (``driver_preinstalled``, GKE-like; per node or for all).

Not simulated: heartbeats/leases, NotReady nodes, node deletion handling, CPU/memory accounting.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ..fieldsets import now
from ..store import Store
from . import base

GPU = "nvidia.com/gpu"


@dataclass
class NodeSpec:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    cpu: str = "8"
    memory: str = "32Gi"
    gpu_model: str | None = None
    gpus: int = 0
    gpu_memory_mib: int | None = None
    taints: list[dict] = field(default_factory=list)
    instance_type: str | None = None
    driver_preinstalled: bool | None = None  # None: the Nodes default


DEFAULT_NODES = (
    NodeSpec("sim-cpu-0", cpu="8", memory="32Gi"),
    NodeSpec(
        "sim-gpu-0", cpu="64", memory="512Gi", gpu_model="NVIDIA-H100-80GB-HBM3", gpus=8, gpu_memory_mib=81559
    ),
)


class Nodes(base.Reconciler):
    """Creates the configured nodes on ``install(store)``; ``set_gpu_capacity`` flips GPU capacity."""

    name = "nodes"
    manager = "kubeapi-sim-nodes"

    def __init__(
        self,
        *,
        nodes: list[NodeSpec | dict] | tuple = DEFAULT_NODES,
        driver_preinstalled: bool = False,
        enabled: bool = True,
    ) -> None:
        super().__init__(enabled=enabled)
        self.specs = [n if isinstance(n, NodeSpec) else NodeSpec(**n) for n in nodes]
        self.driver_preinstalled = driver_preinstalled

    def spec(self, name: str) -> NodeSpec | None:
        return next((s for s in self.specs if s.name == name), None)

    def preinstalled(self, spec: NodeSpec) -> bool:
        return self.driver_preinstalled if spec.driver_preinstalled is None else spec.driver_preinstalled

    def gpu_nodes(self) -> list[NodeSpec]:
        return [s for s in self.specs if s.gpus]

    def install(self, store: Store) -> None:
        if not self.enabled:
            return
        for i, spec in enumerate(self.specs):
            if store.try_get("v1", "Node", spec.name) is None:
                store.create(self.manifest(spec, i), field_manager=self.manager)

    def manifest(self, spec: NodeSpec, index: int) -> dict:
        labels = {
            "kubernetes.io/hostname": spec.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
        }
        if spec.instance_type:
            labels["node.kubernetes.io/instance-type"] = spec.instance_type
        if spec.gpus:
            labels.update(
                {
                    "nvidia.com/gpu.present": "true",
                    "nvidia.com/gpu.count": str(spec.gpus),
                    "feature.node.kubernetes.io/pci-10de.present": "true",
                }
            )
            if spec.gpu_model:
                labels["nvidia.com/gpu.product"] = spec.gpu_model
            if spec.gpu_memory_mib:
                labels["nvidia.com/gpu.memory"] = str(spec.gpu_memory_mib)
        labels.update(spec.labels)
        capacity = {
            "cpu": spec.cpu,
            "memory": spec.memory,
            "pods": "110",
            "ephemeral-storage": "100Gi",
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
        }
        if spec.gpus and self.preinstalled(spec):
            capacity[GPU] = str(spec.gpus)
        t = now()
        conds = [
            {
                "type": c,
                "status": "False",
                "reason": r,
                "message": m,
                "lastHeartbeatTime": t,
                "lastTransitionTime": t,
            }
            for c, r, m in (
                ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            )
        ]
        conds.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": t,
                "lastTransitionTime": t,
            }
        )
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": spec.name, "labels": labels},
            "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
            "status": {
                "capacity": capacity,
                "allocatable": dict(capacity),
                "conditions": conds,
                "addresses": [
                    {"type": "InternalIP", "address": f"10.0.0.{index + 10}"},
                    {"type": "Hostname", "address": spec.name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "kubeletVersion": "v1.35.0",
                    "kubeProxyVersion": "v1.35.0",
                    "containerRuntimeVersion": "containerd://2.1.0",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "osImage": "Ubuntu 24.04 LTS",
                    "kernelVersion": "6.8.0",
                    "machineID": base.safe_hash(spec.name, 32),
                    "systemUUID": base.safe_hash([spec.name, "uuid"], 32),
                    "bootID": base.safe_hash([spec.name, "boot"], 32),
                },
            },
        }
        if spec.taints:
            node["spec"]["taints"] = copy.deepcopy(spec.taints)
        return node

    def set_gpu_capacity(self, store: Store, name: str, present: bool) -> bool:
        """Report (or withdraw) ``nvidia.com/gpu`` on a configured GPU node; True when it changed."""
        spec = self.spec(name)
        node = store.try_get("v1", "Node", name)
        if spec is None or node is None or not spec.gpus:
            return False
        present = present or self.preinstalled(spec)
        status = copy.deepcopy(node.get("status") or {})
        for part in ("capacity", "allocatable"):
            res = status.setdefault(part, {})
            if present:
                res[GPU] = str(spec.gpus)
            else:
                res.pop(GPU, None)
        return base.write_status(store, node, status, self.manager) is not node
