"""Where pods land and which volumes they can attach, through the kubernetes Python client against the
simulator's scheduler and kubelet stand-ins (tests/harness/kubeapi/controllers: nodes, storage, workloads).

Simulated: nodeSelector, required node affinity, taints (NoSchedule/NoExecute) and tolerations, extended
resources (nvidia.com/gpu) -> Pending + PodScheduled=False/Unschedulable + a FailedScheduling Event; a
ReadWriteOnce volume attaches to one node -> a second node's pod stays Pending with ContainerCreating and a
FailedAttachVolume "Multi-Attach error" Event; ReadWriteMany attaches anywhere.
Not simulated: preferred affinity and pod (anti-)affinity, topology spread, CPU/memory fit, zonal volumes
and PV node affinity, the detach delay after the first pod goes, ReadWriteOncePod, preemption.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.harness.kubeapi import Simulator
from tests.harness.kubeapi.controllers import NodeSpec, install_all

from .conftest import wait_for

pytestmark = pytest.mark.integration

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
NODES = [
    NodeSpec("cpu-a", labels={"pool": "system"}),
    NodeSpec("cpu-b", labels={"pool": "system"}),
    NodeSpec("gpu-a", labels={"pool": "gpu"}, gpu_model="NVIDIA-L4", gpus=1, taints=[GPU_TAINT]),
]


@pytest.fixture
def cluster(tmp_path):
    sim = Simulator().start()
    sim.write_kubeconfig(tmp_path / "kubeconfig")
    sim.ctl = install_all(
        sim,
        nodes={"nodes": NODES, "driver_preinstalled": True},
        dynamo=False,
        workloads={"ready_delay": 0.05, "terminating_delay": 0.1},
    )
    sim.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pl"}})
    for name, modes in (("rwo", "ReadWriteOnce"), ("rwx", "ReadWriteOnce,ReadWriteMany")):
        sim.store.create(
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": name, "annotations": {"kubeapi-sim/access-modes": modes}},
                "provisioner": "kubeapi-sim.io/provisioner",
                "volumeBindingMode": "Immediate",
            }
        )
    yield sim
    sim.stop()
    assert not [e for e in sim.controller_errors if e[0] != "stop-hook"]


def _pod(name: str, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "pl"},
        "spec": {"containers": [{"name": "main", "image": "busybox:1"}], **spec},
    }


def _events(core: client.CoreV1Api, pod: str, reason: str) -> list[str]:
    return [
        e.message
        for e in core.list_namespaced_event("pl").items
        if e.involved_object.name == pod and e.reason == reason
    ]


def test_selectors_taints_and_tolerations_decide_where_pods_land(cluster):
    """A pod for the GPU pool without the GPU taint's toleration, or with a selector no node has, stays
    Pending with FailedScheduling; with the toleration it lands on the GPU node. Not covered: preferred
    affinity, spreading, CPU/memory fit."""
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_pod("pl", _pod("no-toleration", nodeSelector={"pool": "gpu"}))
    core.create_namespaced_pod("pl", _pod("no-such-pool", nodeSelector={"pool": "tpu"}))
    core.create_namespaced_pod(
        "pl",
        _pod(
            "tolerated",
            nodeSelector={"pool": "gpu"},
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        ),
    )
    core.create_namespaced_pod(
        "pl",
        _pod(
            "system",
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}
                        ]
                    }
                }
            },
        ),
    )
    wait_for(
        lambda: (
            core.read_namespaced_pod("tolerated", "pl").status.phase == "Running"
            and core.read_namespaced_pod("system", "pl").status.phase == "Running"
        ),
        what="placed pods",
    )
    assert core.read_namespaced_pod("tolerated", "pl").spec.node_name == "gpu-a"
    assert core.read_namespaced_pod("system", "pl").spec.node_name in ("cpu-a", "cpu-b")
    msg = wait_for(lambda: _events(core, "no-toleration", "FailedScheduling"), what="FailedScheduling")[0]
    assert "untolerated taint {nvidia.com/gpu: present}" in msg
    assert "didn't match Pod's node affinity/selector" in msg
    pod = core.read_namespaced_pod("no-such-pool", "pl")
    assert pod.status.phase == "Pending" and pod.spec.node_name is None
    cond = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert (cond.status, cond.reason) == ("False", "Unschedulable")


def test_a_read_write_once_volume_attaches_to_one_node(cluster):
    """Two pods on different nodes sharing a ReadWriteOnce claim: the second stays Pending with
    ContainerCreating and a Multi-Attach FailedAttachVolume event; a pod on the same node as the first
    shares it; a ReadWriteMany claim attaches on both nodes. Not covered: zonal disks and PV node affinity,
    the detach delay when the first pod goes."""
    core = client.CoreV1Api(cluster.api_client())
    for name, cls, mode in (("cache-rwo", "rwo", "ReadWriteOnce"), ("cache-rwx", "rwx", "ReadWriteMany")):
        core.create_namespaced_persistent_volume_claim(
            "pl",
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": name},
                "spec": {
                    "storageClassName": cls,
                    "accessModes": [mode],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
    wait_for(
        lambda: all(
            core.read_namespaced_persistent_volume_claim(n, "pl").status.phase == "Bound"
            for n in ("cache-rwo", "cache-rwx")
        ),
        what="bound claims",
    )
    gpu_toleration = [{"key": "nvidia.com/gpu", "operator": "Exists"}]

    def mounting(name: str, claim: str, node_pool: str, host: str | None = None) -> dict:
        selector = {"kubernetes.io/hostname": host} if host else {"pool": node_pool}
        return _pod(
            name,
            nodeSelector=selector,
            tolerations=gpu_toleration,
            volumes=[{"name": "cache", "persistentVolumeClaim": {"claimName": claim}}],
        )

    core.create_namespaced_pod("pl", mounting("frontend", "cache-rwo", "system", "cpu-a"))
    wait_for(lambda: core.read_namespaced_pod("frontend", "pl").status.phase == "Running", what="first pod")
    core.create_namespaced_pod("pl", mounting("worker", "cache-rwo", "gpu"))
    core.create_namespaced_pod("pl", mounting("frontend-2", "cache-rwo", "system", "cpu-a"))
    msg = wait_for(lambda: _events(core, "worker", "FailedAttachVolume"), what="Multi-Attach")[0]
    assert msg.startswith('Multi-Attach error for volume "pvc-') and "already used by pod(s) frontend" in msg
    worker = core.read_namespaced_pod("worker", "pl")
    assert worker.spec.node_name == "gpu-a" and worker.status.phase == "Pending"
    assert worker.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    wait_for(lambda: core.read_namespaced_pod("frontend-2", "pl").status.phase == "Running", what="same node")

    core.create_namespaced_pod("pl", mounting("rwx-a", "cache-rwx", "system"))
    core.create_namespaced_pod("pl", mounting("rwx-b", "cache-rwx", "gpu"))
    wait_for(
        lambda: all(core.read_namespaced_pod(n, "pl").status.phase == "Running" for n in ("rwx-a", "rwx-b")),
        what="RWX on two nodes",
    )
    assert core.read_namespaced_pod("worker", "pl").status.phase == "Pending"
