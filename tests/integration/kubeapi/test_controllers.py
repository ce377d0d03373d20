"""The simulator's full controllers (tests/harness/kubeapi/controllers) driven by the real kubectl and helm.

Simulated here: Deployments -> ReplicaSets -> Pods (names, labels, ownerReferences, nodeName, Running +
Ready + containerStatuses), rolling updates with terminating old pods, scale-down, kubectl rollout status,
a crash-looping container (CrashLoopBackOff, restartCount, BackOff Event, logs, progress deadline),
StatefulSets (ordinals, PVCs from templates, revisions), DaemonSets (one pod per fitting node), bare
ReplicaSets, Jobs (completion, failure with logs via kubectl logs job/NAME, backoffLimit), PVC binding
(default class, unsupported access mode, WaitForFirstConsumer), nodes with GPUs and a GPU operator's device
plugin making nvidia.com/gpu appear (also via a ClusterPolicy), GPU-aware scheduling (Insufficient
nvidia.com/gpu), LoadBalancer ingress, Endpoints/EndpointSlices, helm 3/4 --wait with real pods.
Not simulated: containers, images, probes, networking (addresses are only written into status), CPU/memory
fit, preemption, volume contents; see each controller module's docstring.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.harness.kubeapi import Simulator
from tests.harness.kubeapi.controllers import NodeSpec, install_all

from .conftest import CHART, wait_for

pytestmark = pytest.mark.integration

FAST = {"workloads": {"ready_delay": 0.05, "terminating_delay": 0.3}, "jobs": {"delay": 0.1}}
NODES = [
    NodeSpec("cpu-0"),
    NodeSpec("gpu-0", gpu_model="NVIDIA-A100-SXM4-80GB", gpus=2),
    NodeSpec(
        "gpu-1",
        gpu_model="NVIDIA-A100-SXM4-80GB",
        gpus=2,
        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    ),
]
GPU_NODES = {"nodes": {"nodes": NODES}}


@pytest.fixture
def kubeapi(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """A simulator with every controller (``request.param``: install_all switches over FAST)."""
    switches = {**FAST, **getattr(request, "param", {})}
    home = tmp_path_factory.mktemp("kubeapi")
    sim = Simulator().start()
    sim.ctl = install_all(sim, **switches)
    sim.write_kubeconfig(home / "kubeconfig")
    sim.env = sim.tool_env(home)
    yield sim
    sim.stop()
    assert not sim.controller_errors, "\n".join(e[2] for e in sim.controller_errors)


def events_for(store, name: str, ns: str = "default") -> list[tuple[str, str, str]]:
    return [
        (e["type"], e["reason"], e["message"])
        for e in store.list("v1", "Event", ns)
        if e["involvedObject"]["name"] == name
    ]


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers: [{name: web, image: "nginx:1", ports: [{containerPort: 80}]}]
"""


def test_deployment_pods_rollout_and_scale_down(kubeapi, kubectl):
    store = kubeapi.store
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT)
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=20s").out
    dep = store.get("apps/v1", "Deployment", "web", "default")
    (rs,) = store.list("apps/v1", "ReplicaSet", "default")
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert (
        rs["metadata"]["name"] == f"web-{h}"
        and rs["metadata"]["ownerReferences"][0]["uid"] == dep["metadata"]["uid"]
    )
    pods = store.list("v1", "Pod", "default", label_selector={"app": "web"})
    assert len(pods) == 3
    for pod in pods:
        m, st = pod["metadata"], pod["status"]
        assert m["name"].startswith(f"web-{h}-") and len(m["name"]) == len(f"web-{h}-") + 5
        assert m["labels"] == {"app": "web", "tier": "front", "pod-template-hash": h}
        assert m["ownerReferences"][0]["name"] == rs["metadata"]["name"] and pod["spec"]["nodeName"]
        assert st["phase"] == "Running" and st["podIP"] and st["hostIP"]
        assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"
        assert st["containerStatuses"][0]["ready"] and "running" in st["containerStatuses"][0]["state"]
    assert {"Scheduled", "Started"} <= {r for _, r, _ in events_for(store, pods[0]["metadata"]["name"])}
    st = dep["status"]
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"], st["availableReplicas"]) == (
        3,
        3,
        3,
        3,
    )
    assert st["observedGeneration"] == dep["metadata"]["generation"] == 1
    assert {c["type"]: c["reason"] for c in st["conditions"]} == {
        "Available": "MinimumReplicasAvailable",
        "Progressing": "NewReplicaSetAvailable",
    }

    seen = []  # every status the rollout went through, and the pods that were terminating meanwhile
    unsubscribe = store.subscribe(lambda ev: seen.append(ev) if ev.kind in ("Deployment", "Pod") else None)
    kubectl("set", "image", "deployment/web", "web=nginx:2")
    out = kubectl("rollout", "status", "deployment/web", "--timeout=30s").out
    unsubscribe()
    assert "successfully rolled out" in out
    mid = [e.object["status"] for e in seen if e.kind == "Deployment" and e.object.get("status")]
    assert any(s.get("updatedReplicas", 0) < s.get("replicas", 0) for s in mid)  # surge: old + new
    assert any(c["reason"] == "ReplicaSetUpdated" for s in mid for c in s.get("conditions", []))
    assert any(e.kind == "Pod" and e.object["metadata"].get("deletionTimestamp") for e in seen)
    rss = {
        r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: r
        for r in store.list("apps/v1", "ReplicaSet", "default")
    }
    assert rss["1"]["spec"]["replicas"] == 0 and rss["2"]["spec"]["replicas"] == 3
    assert "REVISION" in kubectl("rollout", "history", "deployment/web").out
    assert any(r == "ScalingReplicaSet" for _, r, _ in events_for(store, "web"))

    kubectl("scale", "deployment/web", "--replicas=1")
    wait_for(
        lambda: any(p["metadata"].get("deletionTimestamp") for p in store.list("v1", "Pod", "default")),
        what="terminating pods after scale-down",
    )
    wait_for(lambda: len(store.list("v1", "Pod", "default")) == 1, what="scaled-down pods to go")
    kubectl("wait", "--for=jsonpath={.status.availableReplicas}=1", "deployment/web", "--timeout=30s")


def test_crash_switch_gives_a_stuck_rollout_with_diagnostics(kubeapi, kubectl):
    store = kubeapi.store
    kubeapi.ctl.workloads.crash_interval = 0.3
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT.replace("replicas: 3", "replicas: 1"))
    kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    bad = DEPLOYMENT.replace("replicas: 3", "replicas: 1\n  progressDeadlineSeconds: 2").replace(
        "metadata: {labels: {app: web, tier: front}}",
        "metadata: {labels: {app: web, tier: front}, annotations: {kubeapi-sim/crash: web}}",
    )
    kubectl("apply", "-f", "-", stdin=bad)
    res = kubectl("rollout", "status", "deployment/web", "--timeout=20s", check=False)
    assert res.rc != 0 and "exceeded its progress deadline" in res.err
    dep = store.get("apps/v1", "Deployment", "web", "default")
    assert {c["type"]: c["reason"] for c in dep["status"]["conditions"]}[
        "Progressing"
    ] == "ProgressDeadlineExceeded"
    assert dep["status"]["updatedReplicas"] == 1 and dep["status"]["availableReplicas"] == 1  # old pod serves
    crashing = next(
        p
        for p in store.list("v1", "Pod", "default")
        if p["metadata"].get("annotations", {}).get("kubeapi-sim/crash")
    )
    cs = crashing["status"]["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" and cs["restartCount"] >= 1
    assert cs["lastState"]["terminated"]["exitCode"] == 1 and not cs["ready"]
    name = crashing["metadata"]["name"]
    assert any(t == "Warning" and r == "BackOff" for t, r, _ in events_for(store, name))
    assert "simulated crash of container web" in kubectl("logs", name).out
    described = kubectl("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json").out
    assert "Back-off restarting failed container web" in described


STATEFULSET = """\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: standard, annotations: {storageclass.kubernetes.io/is-default-class: "true"}}
provisioner: pd.csi.storage.gke.io
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: db, image: "postgres:16"}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"""


def test_statefulset_ordinals_claims_and_revisions(kubeapi, kubectl):
    store = kubeapi.store
    kubectl("apply", "-f", "-", stdin=STATEFULSET)
    kubectl("rollout", "status", "statefulset/db", "--timeout=20s")
    pods = {p["metadata"]["name"]: p for p in store.list("v1", "Pod", "default")}
    assert sorted(pods) == ["db-0", "db-1"]
    assert pods["db-1"]["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
    claims = {c["metadata"]["name"]: c for c in store.list("v1", "PersistentVolumeClaim", "default")}
    assert sorted(claims) == ["data-db-0", "data-db-1"]
    assert all(
        c["status"]["phase"] == "Bound" and c["spec"]["storageClassName"] == "standard"
        for c in claims.values()
    )
    st = store.get("apps/v1", "StatefulSet", "db", "default")["status"]
    assert st["currentRevision"] == st["updateRevision"] and st["readyReplicas"] == 2
    kubectl("set", "image", "statefulset/db", "db=postgres:17")
    kubectl("rollout", "status", "statefulset/db", "--timeout=30s")
    st = store.get("apps/v1", "StatefulSet", "db", "default")["status"]
    assert st["currentRevision"] == st["updateRevision"] and st["updatedReplicas"] == 2
    assert (
        st["updateRevision"]
        == store.get("v1", "Pod", "db-0", "default")["metadata"]["labels"]["controller-revision-hash"]
    )
    assert len(store.list("apps/v1", "ControllerRevision", "default")) == 2


DAEMONSET = """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: "agent:1"}]}
"""
REPLICASET = """\
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: bare, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: bare}}
  template:
    metadata: {labels: {app: bare}}
    spec: {containers: [{name: c, image: "busybox:1"}]}
"""


@pytest.mark.parametrize("kubeapi", [GPU_NODES], indirect=True)
def test_daemonset_one_pod_per_fitting_node_and_bare_replicaset(kubeapi, kubectl):
    store = kubeapi.store
    kubectl("apply", "-f", "-", stdin=DAEMONSET)
    kubectl("rollout", "status", "daemonset/agent", "--timeout=20s")
    nodes = sorted(
        p["spec"]["nodeName"] for p in store.list("v1", "Pod", "default", label_selector={"app": "agent"})
    )
    assert nodes == ["cpu-0", "gpu-0"]  # gpu-1's taint is not tolerated
    st = store.get("apps/v1", "DaemonSet", "agent", "default")["status"]
    assert (st["desiredNumberScheduled"], st["numberReady"], st["updatedNumberScheduled"]) == (2, 2, 2)
    kubectl("set", "image", "daemonset/agent", "agent=agent:2")
    kubectl("rollout", "status", "daemonset/agent", "--timeout=20s")
    assert all(
        p["spec"]["containers"][0]["image"] == "agent:2"
        for p in store.list("v1", "Pod", "default", label_selector={"app": "agent"})
        if not p["metadata"].get("deletionTimestamp")
    )

    kubectl("apply", "-f", "-", stdin=REPLICASET)
    kubectl("wait", "--for=jsonpath={.status.readyReplicas}=2", "replicaset/bare", "--timeout=30s")
    kubectl("scale", "replicaset/bare", "--replicas=0")
    wait_for(
        lambda: not store.list("v1", "Pod", "default", label_selector={"app": "bare"}), what="bare pods gone"
    )


GPU_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: cuda, namespace: default}
spec:
  containers:
  - {name: cuda, image: "cuda:12", resources: {limits: {nvidia.com/gpu: "2"}}}
"""
PLUGIN = """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: nvidia-device-plugin-daemonset, namespace: gpu-operator}
spec:
  selector: {matchLabels: {app: nvidia-device-plugin-daemonset}}
  template:
    metadata: {labels: {app: nvidia-device-plugin-daemonset}}
    spec:
      nodeSelector: {nvidia.com/gpu.present: "true"}
      tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
      containers: [{name: nvidia-device-plugin, image: "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"}]
"""


def _gpus(store, node: str) -> str | None:
    return store.get("v1", "Node", node)["status"]["allocatable"].get("nvidia.com/gpu")


@pytest.mark.parametrize("kubeapi", [GPU_NODES], indirect=True)
def test_gpu_operator_device_plugin_makes_capacity_appear(kubeapi, kubectl):
    store = kubeapi.store
    labels = store.get("v1", "Node", "gpu-0")["metadata"]["labels"]
    assert (
        labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB" and labels["nvidia.com/gpu.count"] == "2"
    )
    assert _gpus(store, "gpu-0") is None and _gpus(store, "gpu-1") is None
    kubectl("apply", "-f", "-", stdin=GPU_POD)
    pod = wait_for(
        lambda: (p := store.get("v1", "Pod", "cuda", "default"))["status"].get("conditions") and p,
        what="an Unschedulable condition",
    )
    cond = pod["status"]["conditions"][0]
    assert pod["status"]["phase"] == "Pending" and cond["reason"] == "Unschedulable"
    assert "2 Insufficient nvidia.com/gpu" in cond["message"]
    assert any(r == "FailedScheduling" for _, r, _ in events_for(store, "cuda"))

    kubectl("create", "namespace", "gpu-operator")
    kubectl("apply", "-f", "-", stdin=PLUGIN)
    kubectl(
        "rollout", "status", "daemonset/nvidia-device-plugin-daemonset", "-n", "gpu-operator", "--timeout=20s"
    )
    kubectl(
        "wait",
        "--for=jsonpath={.status.allocatable.nvidia\\.com/gpu}=2",
        "node/gpu-0",
        "node/gpu-1",
        "--timeout=30s",
    )
    assert _gpus(store, "cpu-0") is None
    kubectl("wait", "--for=condition=Ready", "pod/cuda", "--timeout=30s")
    assert store.get("v1", "Pod", "cuda", "default")["spec"]["nodeName"] == "gpu-0"  # gpu-1 is tainted

    kubectl("delete", "daemonset", "nvidia-device-plugin-daemonset", "-n", "gpu-operator")
    wait_for(lambda: _gpus(store, "gpu-0") is None, what="capacity withdrawn with the device plugin")


CLUSTER_POLICY_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterpolicies.nvidia.com"},
    "spec": {
        "group": "nvidia.com",
        "scope": "Cluster",
        "names": {"plural": "clusterpolicies", "singular": "clusterpolicy", "kind": "ClusterPolicy"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


@pytest.mark.parametrize(
    "kubeapi",
    [{"nodes": {"nodes": NODES[:2]}}, {"nodes": {"driver_preinstalled": True}}],
    indirect=True,
    ids=["policy", "gke"],
)
def test_cluster_policy_or_preinstalled_driver(kubeapi, kubectl):
    store = kubeapi.store
    if kubeapi.ctl.nodes.driver_preinstalled:  # GKE-like: capacity from the start
        assert _gpus(store, "sim-gpu-0") == "8" and _gpus(store, "sim-cpu-0") is None
        return
    store.create(CLUSTER_POLICY_CRD)
    kubectl("create", "namespace", "gpu-operator")
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=DEPLOYMENT.replace(
            "name: web, namespace: default", "name: gpu-operator, namespace: gpu-operator"
        ),
    )
    store.create(
        {
            "apiVersion": "nvidia.com/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "cluster-policy"},
            "spec": {"devicePlugin": {"enabled": True}},
        }
    )
    kubectl("wait", "--for=jsonpath={.status.state}=ready", "clusterpolicy/cluster-policy", "--timeout=20s")
    assert (
        store.get("nvidia.com/v1", "ClusterPolicy", "cluster-policy")["status"]["namespace"] == "gpu-operator"
    )
    assert (
        store.get("v1", "Node", "gpu-0")["metadata"]["labels"]["nvidia.com/gpu.deploy.device-plugin"]
        == "true"
    )
    assert _gpus(store, "gpu-0") == "2"


STORAGE = """\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: standard-rwo, annotations: {storageclass.kubernetes.io/is-default-class: "true",
                                            kubeapi-sim/access-modes: ReadWriteOnce}}
provisioner: pd.csi.storage.gke.io
reclaimPolicy: Delete
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: late}
provisioner: ebs.csi.aws.com
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: cache, namespace: default}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 10Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shared, namespace: default}
spec: {accessModes: [ReadWriteMany], storageClassName: standard-rwo, resources: {requests: {storage: 10Gi}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: lazy, namespace: default}
spec: {accessModes: [ReadWriteOnce], storageClassName: late, resources: {requests: {storage: 1Gi}}}
"""


def test_pvc_binding_access_modes_and_wait_for_first_consumer(kubeapi, kubectl):
    store = kubeapi.store
    kubectl("apply", "-f", "-", stdin=STORAGE)
    kubectl("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/cache", "--timeout=30s")
    cache = store.get("v1", "PersistentVolumeClaim", "cache", "default")
    assert cache["spec"]["storageClassName"] == "standard-rwo"  # the default class
    pv = store.get("v1", "PersistentVolume", cache["spec"]["volumeName"])
    assert pv["status"]["phase"] == "Bound" and pv["spec"]["claimRef"]["name"] == "cache"
    assert (
        pv["spec"]["capacity"]["storage"] == "10Gi" and pv["spec"]["csi"]["driver"] == "pd.csi.storage.gke.io"
    )
    assert cache["status"]["capacity"] == {"storage": "10Gi"}

    kubeapi.wait_idle()
    assert store.get("v1", "PersistentVolumeClaim", "shared", "default")["status"]["phase"] == "Pending"
    failed = [(t, m) for t, r, m in events_for(store, "shared") if r == "ProvisioningFailed"]
    assert failed and failed[0][0] == "Warning" and "ReadWriteMany is not supported" in failed[0][1]
    assert any(r == "WaitForFirstConsumer" for _, r, _ in events_for(store, "lazy"))
    assert store.get("v1", "PersistentVolumeClaim", "lazy", "default")["status"]["phase"] == "Pending"

    kubectl(
        "apply",
        "-f",
        "-",
        stdin="""\
apiVersion: v1
kind: Pod
metadata: {name: consumer, namespace: default}
spec:
  volumes: [{name: d, persistentVolumeClaim: {claimName: lazy}}]
  containers: [{name: c, image: "busybox:1", volumeMounts: [{name: d, mountPath: /d}]}]
""",
    )
    kubectl("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/lazy", "--timeout=30s")
    lazy = store.get("v1", "PersistentVolumeClaim", "lazy", "default")
    assert (
        lazy["metadata"]["annotations"]["volume.kubernetes.io/selected-node"]
        == store.get("v1", "Pod", "consumer", "default")["spec"]["nodeName"]
    )
    kubectl("wait", "--for=condition=Ready", "pod/consumer", "--timeout=30s")

    kubectl("delete", "pvc", "cache")
    wait_for(
        lambda: store.try_get("v1", "PersistentVolume", pv["metadata"]["name"]) is None, what="PV deleted"
    )


SERVICES = """\
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: default}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 80}]
"""


def test_loadbalancer_ingress_and_endpoints(kubeapi, kubectl):
    store = kubeapi.store
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT.replace("replicas: 3", "replicas: 2") + "---\n" + SERVICES)
    kubectl(
        "wait",
        "--for=jsonpath={.status.loadBalancer.ingress[0].ip}=127.0.0.1",
        "service/web-lb",
        "--timeout=30s",
    )
    kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    ips = sorted(
        p["status"]["podIP"] for p in store.list("v1", "Pod", "default", label_selector={"app": "web"})
    )

    def endpoints():
        ep = store.try_get("v1", "Endpoints", "web-lb", "default")
        got = sorted(a["ip"] for s in (ep or {}).get("subsets", []) for a in s.get("addresses", []))
        return got == ips and ep

    ep = wait_for(endpoints, what="Endpoints with both pod IPs")
    assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    (eps,) = store.list(
        "discovery.k8s.io/v1",
        "EndpointSlice",
        "default",
        label_selector={"kubernetes.io/service-name": "web-lb"},
    )
    assert sorted(e["addresses"][0] for e in eps["endpoints"]) == ips
    assert any(r == "EnsuredLoadBalancer" for _, r, _ in events_for(store, "web-lb"))

    kubectl("annotate", "service/web-lb", "kubeapi-sim/loadbalancer-ip=127.0.9.9")
    kubectl(
        "wait",
        "--for=jsonpath={.status.loadBalancer.ingress[0].ip}=127.0.9.9",
        "service/web-lb",
        "--timeout=30s",
    )
    kubectl("annotate", "service/web-lb", "kubeapi-sim/loadbalancer-ip-")
    kubectl(
        "wait",
        "--for=jsonpath={.status.loadBalancer.ingress[0].ip}=127.0.0.1",
        "service/web-lb",
        "--timeout=30s",
    )
    kubectl("patch", "service/web-lb", "-p", '{"spec": {"type": "ClusterIP"}}')
    wait_for(
        lambda: (
            not store.get("v1", "Service", "web-lb", "default")["status"]
            .get("loadBalancer", {})
            .get("ingress")
        ),
        what="ingress cleared",
    )


JOBS = """\
apiVersion: batch/v1
kind: Job
metadata: {name: fetch, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: fetch, image: "python:3.11"}]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: broken
  namespace: default
  annotations: {kubeapi-sim/fail: "true", kubeapi-sim/log: "huggingface_hub.errors.GatedRepoError: 401\\n"}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: fetch, image: "python:3.11"}]
"""


def test_jobs_complete_or_fail_with_logs(kubeapi, kubectl):
    store = kubeapi.store
    kubectl("apply", "-f", "-", stdin=JOBS)
    kubectl("wait", "--for=condition=complete", "job/fetch", "--timeout=15s")
    kubectl("wait", "--for=condition=failed", "job/broken", "--timeout=15s")
    ok = store.get("batch/v1", "Job", "fetch", "default")["status"]
    assert ok["succeeded"] == 1 and ok["completionTime"] and "active" not in ok
    bad = store.get("batch/v1", "Job", "broken", "default")["status"]
    assert bad["failed"] == 2  # backoffLimit 1: two attempts
    assert {c["type"]: c["reason"] for c in bad["conditions"]}["Failed"] == "BackoffLimitExceeded"
    pods = store.list("v1", "Pod", "default", label_selector={"job-name": "broken"})
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
    term = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 1 and term["reason"] == "Error"
    assert "GatedRepoError: 401" in kubectl("logs", "job/broken").out
    assert any(r == "BackoffLimitExceeded" for _, r, _ in events_for(store, "broken"))


@pytest.mark.parametrize(
    "kubeapi",
    [{"workloads": False, "jobs": False, "storage": False, "services": False, "nodes": False}],
    indirect=True,
)
def test_controllers_switch_off(kubeapi, kubectl):
    kubectl("apply", "-f", "-", stdin=DEPLOYMENT + "---\n" + SERVICES)
    kubeapi.wait_idle()
    time.sleep(0.2)
    store = kubeapi.store
    assert (
        not store.list("apps/v1", "ReplicaSet")
        and not store.list("v1", "Pod")
        and not store.list("v1", "Node")
    )
    assert "loadBalancer" not in json.dumps(
        store.get("v1", "Service", "web-lb", "default").get("status") or {}
    )
    assert kubeapi.ctl.workloads is None and kubeapi.ctl.dynamo is not None


def test_helm_wait_with_real_pods(kubeapi, helm):
    helm("install", "rel", str(CHART), "-n", "apps", "--create-namespace", "--wait", "--timeout", "60s")
    store = kubeapi.store
    pods = store.list("v1", "Pod", "apps")
    assert any(
        p["metadata"]["name"].startswith("rel-web-") and p["status"]["phase"] == "Running" for p in pods
    )
    assert store.get("batch/v1", "Job", "rel-migrate", "apps")["status"]["succeeded"] == 1
    helm(
        "upgrade",
        "rel",
        str(CHART),
        "-n",
        "apps",
        "--set",
        "replicas=2",
        "--set",
        "message=bye",
        "--wait",
        "--timeout",
        "60s",
    )
    dep = store.get("apps/v1", "Deployment", "rel-web", "apps")
    assert dep["status"]["readyReplicas"] == 2 and dep["status"]["updatedReplicas"] == 2
    helm("uninstall", "rel", "-n", "apps", "--wait", "--timeout", "60s")
    wait_for(
        lambda: not store.list("v1", "Pod", "apps", label_selector={"app.kubernetes.io/instance": "rel"}),
        what="release pods gone",
    )
