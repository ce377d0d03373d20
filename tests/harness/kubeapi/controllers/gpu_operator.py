"""GPU operator stand-in: GPU nodes report ``nvidia.com/gpu`` once a device plugin is ready on them.

- Device plugin: any DaemonSet, in any namespace, whose name contains ``nvidia-device-plugin`` or that is
  labelled ``app=nvidia-device-plugin-daemonset`` (the GPU operator's own name and label). When one of its
  pods is Running and Ready on a configured GPU node, that node's capacity/allocatable get
  ``nvidia.com/gpu: <count>``; when no ready plugin pod is left there, it is withdrawn (unless the node has
  the driver preinstalled, see nodes.py).
- ClusterPolicy (``nvidia.com/v1``, when its CRD is installed, e.g. by the gpu-operator chart): the
  operator's part is played here: GPU nodes get the ``nvidia.com/gpu.deploy.*`` labels, a DaemonSet
  ``nvidia-device-plugin-daemonset`` (owned by the ClusterPolicy) is created in the namespace of the
  operator's Deployment (label ``app.kubernetes.io/component=gpu-operator`` or name ``gpu-operator``), and
  ``status.state`` goes ``notReady`` -> ``ready`` (with ``status.namespace`` and a Ready condition) once
  that DaemonSet has every pod ready.

Not simulated: drivers, the container toolkit, DCGM, MIG, GFD, the validator, time-slicing, the other
operands of the ClusterPolicy (only the device plugin), NVIDIADriver CRs.
"""

from __future__ import annotations

import copy

from ..store import Event, Store
from . import base
from .base import controller_of, owner_ref, pod_ready, set_condition, terminating
from .nodes import Nodes

PLUGIN_NAME = "nvidia-device-plugin"
PLUGIN_LABEL = ("app", "nvidia-device-plugin-daemonset")
DEPLOY_LABELS = (
    "nvidia.com/gpu.deploy.driver",
    "nvidia.com/gpu.deploy.container-toolkit",
    "nvidia.com/gpu.deploy.device-plugin",
    "nvidia.com/gpu.deploy.gpu-feature-discovery",
    "nvidia.com/gpu.deploy.dcgm-exporter",
    "nvidia.com/gpu.deploy.operator-validator",
)


class GpuOperator(base.Reconciler):
    name = "gpu-operator"
    manager = "kubeapi-sim-gpu-operator"

    def __init__(
        self,
        nodes: Nodes,
        *,
        cluster_policy: bool = True,
        plugin_image: str = "nvcr.io/nvidia/k8s-device-plugin:v0.17.1",
        enabled: bool = True,
    ) -> None:
        super().__init__(enabled=enabled)
        self.nodes = nodes
        self.cluster_policy = cluster_policy
        self.plugin_image = plugin_image

    @staticmethod
    def is_plugin(ds: dict) -> bool:
        m = ds["metadata"]
        return PLUGIN_NAME in m["name"] or (m.get("labels") or {}).get(PLUGIN_LABEL[0]) == PLUGIN_LABEL[1]

    def observe(self, store: Store, event: Event) -> None:
        obj = event.object
        if event.kind == "DaemonSet" and self.is_plugin(obj):
            self.enqueue(("gpu",))
            self._policies(store)
        elif event.kind == "Pod" and event.group == "":
            ref = controller_of(obj) or {}
            labels = obj["metadata"].get("labels") or {}
            if ref.get("kind") == "DaemonSet" and (
                PLUGIN_NAME in ref.get("name", "") or labels.get(PLUGIN_LABEL[0]) == PLUGIN_LABEL[1]
            ):
                self.enqueue(("gpu",))
        elif event.kind == "Node" and event.group == "":
            self.enqueue(("gpu",))
        elif event.kind == "ClusterPolicy" and event.group == "nvidia.com" and self.cluster_policy:
            self.enqueue(("policy", event.name))
        elif event.kind == "Deployment" and self.cluster_policy:
            self._policies(store)

    def _policies(self, store: Store) -> None:
        if self.cluster_policy and base.kind_available(store, "nvidia.com/v1", "ClusterPolicy"):
            for cp in store.list("nvidia.com/v1", "ClusterPolicy"):
                self.enqueue(("policy", cp["metadata"]["name"]))

    def reconcile(self, store: Store, key: tuple) -> float | None:
        if key[0] == "policy":
            return self._reconcile_policy(store, key[1])
        plugins = {ds["metadata"]["uid"] for ds in store.list("apps/v1", "DaemonSet") if self.is_plugin(ds)}
        ready = {
            p["spec"].get("nodeName")
            for p in store.list("v1", "Pod")
            if (controller_of(p) or {}).get("uid") in plugins and pod_ready(p) and not terminating(p)
        }
        for spec in self.nodes.gpu_nodes():
            self.nodes.set_gpu_capacity(store, spec.name, spec.name in ready)
        return None

    def _reconcile_policy(self, store: Store, name: str) -> float | None:
        if not base.kind_available(store, "nvidia.com/v1", "ClusterPolicy"):
            return None
        cp = store.try_get("nvidia.com/v1", "ClusterPolicy", name)
        if cp is None or terminating(cp):
            return None
        operator = next(
            (
                d
                for d in store.list("apps/v1", "Deployment")
                if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "gpu-operator"
                or d["metadata"]["name"] == "gpu-operator"
            ),
            None,
        )
        status = copy.deepcopy(cp.get("status") or {})
        if operator is None:
            status["state"] = "notReady"
            status["conditions"] = set_condition(
                status.get("conditions"),
                "Ready",
                "False",
                "OperatorNotFound",
                "the gpu-operator Deployment was not found",
            )
            base.write_status(store, cp, status, self.manager)
            return None
        ns = operator["metadata"]["namespace"]
        for spec in self.nodes.gpu_nodes():
            node = store.try_get("v1", "Node", spec.name)
            if node is not None and any(
                (node["metadata"].get("labels") or {}).get(k) != "true" for k in DEPLOY_LABELS
            ):
                node["metadata"].setdefault("labels", {}).update(dict.fromkeys(DEPLOY_LABELS, "true"))
                store.update(node, field_manager=self.manager)
        ds = store.try_get("apps/v1", "DaemonSet", "nvidia-device-plugin-daemonset", ns)
        if ds is None:
            labels = {PLUGIN_LABEL[0]: PLUGIN_LABEL[1]}
            ds = store.create(
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "metadata": {
                        "name": "nvidia-device-plugin-daemonset",
                        "namespace": ns,
                        "labels": {**labels, "app.kubernetes.io/managed-by": "gpu-operator"},
                        "ownerReferences": [owner_ref(cp)],
                    },
                    "spec": {
                        "selector": {"matchLabels": labels},
                        "template": {
                            "metadata": {"labels": labels},
                            "spec": {
                                "nodeSelector": {"nvidia.com/gpu.deploy.device-plugin": "true"},
                                "tolerations": [
                                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                                ],
                                "priorityClassName": "system-node-critical",
                                "containers": [{"name": "nvidia-device-plugin", "image": self.plugin_image}],
                            },
                        },
                    },
                },
                field_manager=self.manager,
            )
        st = ds.get("status") or {}
        ok = (
            st.get("desiredNumberScheduled", 0) > 0
            and st.get("numberReady", 0) == st["desiredNumberScheduled"]
        )
        status.update(namespace=ns, state="ready" if ok else "notReady")
        status["conditions"] = set_condition(
            status.get("conditions"),
            "Ready",
            "True" if ok else "False",
            "Reconciled" if ok else "OperandNotReady",
            "ClusterPolicy is ready as all resources have been successfully reconciled"
            if ok
            else "ClusterPolicy is not ready, states not ready: [state-device-plugin]",
        )
        base.write_status(store, cp, status, self.manager)
        return None
