"""The kube target's stages one by one (runtime/targets/kube/backend.py), without Prefect, on one simulator with every
controller but the process runtime (pods become ready by the workloads controller's delay).

Covers every preflight failure - each reported with its fix and before anything changed: denied
permissions (reads and writes), too few free GPUs, namespace-restricted operators beside a cluster-wide
install, another cluster-wide operator of another release line (and reuse of one of the same line), an old
server version, no usable StorageClass, Dynamo 0.x CRDs - and all problems at once. Then the stages' own
failure handling: a rollout that never gets ready names the stuck component and why and keeps its revision
number for the rerun, and a frontend Service without an address is reached through `kubectl port-forward`
(a stand-in kubectl: the simulator has no port-forward stream) that is stopped afterwards; the etcd image
override gets past the bitnami image check; a failed model download surfaces its log and is replaced on the rerun; the platform
upgrade applies the chart's CRDs before the chart; the GPU operator honours the driver policy and is
skipped once nodes report GPUs.
"""

from __future__ import annotations

import shutil
import sys
import time

import pytest
import yaml

from runtime import render
from runtime.domain import naming
from runtime.errors import PermanentError, PreflightError, RolloutFailed
from runtime.targets.kube.backend import CACHED_ANNOTATION, KubeBackend
from tests.harness.kubeapi import server as sim_server
from tests.harness.kubeapi.controllers import install_crds

from .conftest import CHARTS, make_spec, start_cluster, stop_cluster, writes
from .test_portforward import FAKE_KUBECTL, _alive

pytestmark = pytest.mark.integration

REV = "0123456789abcdef0123456789abcdef01234567"
RBAC = "rbac.authorization.k8s.io/v1"


@pytest.fixture(scope="module")
def sim(tmp_path_factory, chart_env):
    sim = start_cluster(tmp_path_factory)
    yield sim
    stop_cluster(sim)


@pytest.fixture(autouse=True)
def clean(sim):
    sim.server.handlers.deny_rules.clear()
    sim.faults.clear()
    yield
    sim.server.handlers.deny_rules.clear()
    sim.faults.clear()
    sim.ctl.workloads.crash.clear()


def preflight_error(sim, spec) -> PreflightError:
    before = len(sim.requests.entries)
    with pytest.raises(PreflightError) as info:
        KubeBackend(spec).provision()
    assert writes(sim, before) == [], "preflight changed something before reporting"
    return info.value


def gpu_spec(sim, name: str, replicas: int, gpus: int, **sections):
    sections.setdefault("model", {"id": "Qwen/Qwen3-0.6B", "revision": REV})
    return make_spec(
        sim, name, {"engine": "vllm", "workers": {"replicas": replicas, "gpus": gpus}}, **sections
    )


# ------------------------------------------------------------------------------------------ preflight


def test_preflight_passes_then_creates_only_the_namespace_and_its_security(sim):
    spec = make_spec(sim, "pf-ok")
    before = len(sim.requests.entries)
    out = KubeBackend(spec).provision().details
    assert out["engine"] == "mocker" and out["gpus"] == 8 and out["gpu_nodes"] == ["sim-gpu-0"]
    assert out["operator"] == "installing" and out["server_version"] == "v1.35.0"
    made = writes(sim, before)
    assert all(w.startswith("PATCH") for w in made)  # server-side apply only
    assert len(made) == out["objects"] == 6  # Namespace, ServiceAccount, Role, RoleBinding, 2 NetworkPolicies
    ns = sim.store.get("v1", "Namespace", "pf-ok")
    assert ns["metadata"]["labels"][naming.DEPLOYMENT_KEY] == "pf-ok"
    assert (
        KubeBackend(spec).provision().details["objects"] == 6 and len(writes(sim, before)) == 6 + 6
    )  # idempotent
    assert (
        sim.store.get("v1", "Namespace", "pf-ok")["metadata"]["resourceVersion"]
        == ns["metadata"]["resourceVersion"]
    )
    sim.store.delete("v1", "Namespace", "pf-ok")


def test_denied_permissions_are_listed_with_the_commands_to_check_them(sim):
    sim.deny(verb="create", resource="dynamographdeployments")
    sim.deny(verb="patch", resource="persistentvolumeclaims", namespace="pf-rbac")
    err = preflight_error(sim, make_spec(sim, "pf-rbac"))
    assert "this run's identity may not: " in str(err)
    assert "create dynamographdeployments.nvidia.com in namespace pf-rbac" in str(err)
    assert "patch persistentvolumeclaims in namespace pf-rbac" in str(err)
    assert "kubectl auth can-i create dynamographdeployments.nvidia.com -n pf-rbac" in err.hint
    assert sim.store.try_get("v1", "Namespace", "pf-rbac") is None

    sim.server.handlers.deny_rules.clear()
    sim.deny(verb="list", resource="nodes")  # a read: reported before any other check can run
    err = preflight_error(sim, make_spec(sim, "pf-rbac"))
    assert "list nodes cluster-wide" in str(err) and "--all-namespaces" in err.hint


def test_too_few_free_gpus(sim):
    err = preflight_error(sim, gpu_spec(sim, "pf-gpu", replicas=3, gpus=4))
    assert "needs 12 GPU(s) but only 8 of 8 are free (counted from node labels" in str(err)
    assert "lower serving replicas or gpus per worker" in err.hint

    # GPUs held by another workload are not free (the device plugin reports them, a pod uses 6)
    sim.ctl.nodes.driver_preinstalled = True  # GKE-like: the node reports its GPUs by itself
    sim.ctl.nodes.set_gpu_capacity(sim.store, "sim-gpu-0", True)
    hog = sim.store.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "hog", "namespace": "default"},
            "spec": {
                "nodeName": "sim-gpu-0",
                "containers": [
                    {"name": "c", "image": "x:1", "resources": {"limits": {"nvidia.com/gpu": "6"}}}
                ],
            },
            "status": {"phase": "Running"},
        }
    )
    try:
        err = preflight_error(sim, gpu_spec(sim, "pf-gpu", replicas=2, gpus=2))
        assert "needs 4 GPU(s) but only 2 of 8 are free (sim-gpu-0: 2)" in str(err)
        assert "counted from node labels" not in str(err)
    finally:
        sim.store.delete("v1", "Pod", hog["metadata"]["name"], "default")
        sim.ctl.nodes.driver_preinstalled = False
        sim.ctl.nodes.set_gpu_capacity(sim.store, "sim-gpu-0", False)


def test_namespace_restricted_operators_block_a_cluster_wide_install(sim):
    sim.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    sim.store.create(
        {
            "apiVersion": RBAC,
            "kind": "Role",
            "metadata": {
                "name": "team-a-dynamo-operator-manager-role",
                "namespace": "team-a",
                "labels": {"app.kubernetes.io/instance": "team-a"},
            },
            "rules": [],
        }
    )
    try:
        err = preflight_error(sim, make_spec(sim, "pf-restricted"))
        assert "namespace-restricted Dynamo operators run in namespaces team-a" in str(err)
        assert "platform.operator_mode: namespace" in err.hint
        # the same cluster is fine for one more namespace-restricted operator, once a cluster-wide one
        # provides the CRDs (Dynamo 1.x: the restricted chart brings none; issue 10, defect 4)
        err = preflight_error(sim, make_spec(sim, "pf-restricted", platform={"operator_mode": "namespace"}))
        assert "needs a cluster-wide Dynamo operator first" in str(err)
        _foreign_operator(sim, "1.6.0")
        install_crds(sim.store)
        out = KubeBackend(
            make_spec(sim, "pf-restricted", platform={"operator_mode": "namespace"})
        ).provision()
        assert out.details["operator"] == "installing"
    finally:
        if sim.store.try_get("v1", "Namespace", "other-system") is not None:
            _remove_foreign_operator(sim)
            for crd in render_crd_names():
                sim.store.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd)
        sim.store.delete("v1", "Namespace", "team-a")
        sim.store.delete("v1", "Namespace", "pf-restricted")


def _foreign_operator(sim, tag: str) -> None:
    sim.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other-system"}})
    sim.store.create(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {
                "name": "other-dynamo-operator-manager-role",
                "labels": {"app.kubernetes.io/instance": "other"},
            },
            "rules": [],
        }
    )
    sim.store.create(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "other-dynamo-operator-manager-rolebinding"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "other-dynamo-operator-manager-role",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "other-system"}],
        }
    )
    sim.store.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "other-dynamo-operator-controller-manager", "namespace": "other-system"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "op"}},
                "template": {
                    "metadata": {"labels": {"app": "op"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "manager",
                                "image": f"nvcr.io/nvidia/ai-dynamo/kubernetes-operator:{tag}",
                            }
                        ]
                    },
                },
            },
        }
    )


def _remove_foreign_operator(sim) -> None:
    sim.store.delete(RBAC, "ClusterRoleBinding", "other-dynamo-operator-manager-rolebinding")
    sim.store.delete(RBAC, "ClusterRole", "other-dynamo-operator-manager-role")
    sim.store.delete("v1", "Namespace", "other-system")
    gone(sim, "v1", "Namespace", "other-system")


def gone(sim, api_version: str, kind: str, name: str, ns: str | None = None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while sim.store.try_get(api_version, kind, name, ns) is not None:
        assert time.monotonic() < deadline, f"{kind} {name} still there"
        time.sleep(0.05)


def test_another_cluster_wide_operator_is_reused_on_the_same_release_line_only(sim):
    _foreign_operator(sim, "1.5.0")
    try:
        err = preflight_error(sim, make_spec(sim, "pf-foreign"))
        assert "cluster-wide operator 1.5.0 (release other in other-system) is already installed" in str(err)
        assert (
            "set platform.dynamo_version to 1.5.0" in err.hint
            and "helm uninstall other -n other-system" in err.hint
        )
        # Dynamo 1.x: a namespace-restricted operator uses the cluster-wide one's CRDs, so that operator is
        # needed, not refused; it must be of the spec's release line (issue 10, defect 4)
        err = preflight_error(sim, make_spec(sim, "pf-foreign", platform={"operator_mode": "namespace"}))
        assert "provides the cluster's Dynamo CRDs, but the spec pins Dynamo 1.6.1" in str(err)
        assert "set platform.dynamo_version to 1.5.0" in err.hint
    finally:
        _remove_foreign_operator(sim)
    _foreign_operator(sim, "1.6.0")
    install_crds(sim.store)
    try:
        backend = KubeBackend(make_spec(sim, "pf-foreign"))
        assert (
            backend.provision()
            .details["operator"]
            .startswith("using cluster-wide operator 1.6.0 (release other")
        )
        before = len(sim.requests.entries)
        out = backend.install_platform()
        assert out.note.startswith("using the existing cluster-wide operator 1.6.0") and not out.changed
        assert writes(sim, before) == []  # no helm install next to it
    finally:
        _remove_foreign_operator(sim)
        sim.store.delete("v1", "Namespace", "pf-foreign")
        for crd in render_crd_names():
            sim.store.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd)


def render_crd_names() -> list[str]:
    return ["dynamographdeployments.nvidia.com", "dynamographdeploymentscalingadapters.nvidia.com"]


def test_old_kubernetes_versions_are_refused(sim, monkeypatch):
    monkeypatch.setitem(sim_server.VERSION_INFO, "minor", "29")
    monkeypatch.setitem(sim_server.VERSION_INFO, "gitVersion", "v1.29.7")
    err = preflight_error(sim, make_spec(sim, "pf-old"))
    assert "runs Kubernetes v1.29.7; Dynamo's platform chart needs 1.30 or later" in str(err)
    assert "upgrade the cluster" in err.hint


def test_the_model_cache_needs_a_storage_class(sim):
    err = preflight_error(sim, make_spec(sim, "pf-sc", model={"cache": {"storage_class": "fast"}}))
    assert "StorageClass fast (for the model cache) does not exist" in str(err) and "standard" in err.hint
    sc = sim.store.get("storage.k8s.io/v1", "StorageClass", "standard")
    sim.store.patch(
        "storage.k8s.io/v1",
        "StorageClass",
        "standard",
        {"metadata": {"annotations": {"storageclass.kubernetes.io/is-default-class": "false"}}},
    )
    try:
        err = preflight_error(sim, make_spec(sim, "pf-sc"))
        assert "no default StorageClass" in str(err) and "model.cache.storage_class" in err.hint
    finally:
        sim.store.patch(
            "storage.k8s.io/v1",
            "StorageClass",
            "standard",
            {"metadata": {"annotations": sc["metadata"]["annotations"]}},
        )


def test_dynamo_0x_crds_cannot_serve_a_namespace_restricted_1x_graph(sim):
    from tests.harness.kubeapi.controllers import dgd_crd

    crd = dgd_crd()
    crd["spec"]["versions"] = [
        dict(v, storage=True) for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"
    ]
    sim.store.create(crd)
    try:
        err = preflight_error(sim, make_spec(sim, "pf-crd", platform={"operator_mode": "namespace"}))
        assert "serves only v1alpha1 (Dynamo 0.x)" in str(err)
    finally:
        sim.store.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"])


def test_every_problem_is_reported_at_once(sim, monkeypatch):
    monkeypatch.setitem(sim_server.VERSION_INFO, "minor", "28")
    monkeypatch.setitem(sim_server.VERSION_INFO, "gitVersion", "v1.28.0")
    sim.deny(verb="create", resource="jobs")
    err = preflight_error(
        sim,
        gpu_spec(
            sim,
            "pf-all",
            replicas=5,
            gpus=2,
            model={"id": "Qwen/Qwen3-0.6B", "revision": REV, "cache": {"storage_class": "nope"}},
        ),
    )
    assert "found 4 problem(s)" in str(err)
    for part in (
        "(1) the cluster runs Kubernetes v1.28.0",
        "(2) the graph needs 10 GPU(s)",
        "(3) StorageClass nope",
        "(4) this run's identity may not: create jobs.batch in namespace pf-all",
    ):
        assert part in str(err)
    assert len(err.problems) == 4 and "(4) grant these" in err.hint


# ------------------------------------------------------------------------------------------ stages


def test_gpu_operator_honours_the_driver_policy_and_is_skipped_once_gpus_report(sim):
    spec = make_spec(sim, "st-gpu", target={"provider_hints": {"gpu_driver": "preinstalled"}})
    backend = KubeBackend(spec)
    backend.provision()
    out = backend.detect_gpus()
    assert out.gpu_operator == "gpu-operator v25.10.1 (driver preinstalled)" and out.gpus == 8
    names = {d["metadata"]["name"] for d in sim.store.list("apps/v1", "DaemonSet", "gpu-operator")}
    assert "nvidia-device-plugin-daemonset" in names and "nvidia-driver-daemonset" not in names
    node = sim.store.get("v1", "Node", "sim-gpu-0")
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert backend.detect_gpus().gpu_operator == "skipped: nodes already report nvidia.com/gpu"
    down = backend.teardown(keep_model_cache=False)
    assert "gpu-operator (gpu-operator)" in down.details["released"] and down.leftovers == []
    assert sim.store.try_get("v1", "Namespace", "gpu-operator") is None


def _through_cache(spec, token: str | None = None):
    backend = KubeBackend(spec)
    backend.provision()
    gpus = backend.detect_gpus()
    backend.install_platform()
    return backend, gpus.engine, backend.cache_model(gpus.engine, token)


def test_a_stuck_rollout_names_the_component_and_why_and_keeps_its_revision(sim, monkeypatch, tmp_path):
    spec = make_spec(sim, "st-stuck")
    backend, engine, model = _through_cache(spec)
    sim.ctl.workloads.crash.add("main")
    monkeypatch.setenv("DYNADEPLOY_KUBE_ROLLOUT_TIMEOUT_S", "4")
    with pytest.raises(RolloutFailed) as info:
        backend.roll_out(engine, model)
    msg = str(info.value)
    assert "revision 1 of st-stuck/st-stuck is not ready after 4s" in msg
    assert "worker: pod st-stuck-worker-" in msg and "CrashLoopBackOff" in msg and "see its logs" in msg
    assert "kubectl describe dgd st-stuck -n st-stuck" in info.value.hint
    (cm,) = sim.store.list("v1", "ConfigMap", "st-stuck", label_selector={naming.REVISION_KEY: "1"})
    assert cm["metadata"]["annotations"]["dynadeploy.io/status"] == "failed"

    sim.ctl.workloads.crash.clear()
    monkeypatch.setenv("DYNADEPLOY_KUBE_ROLLOUT_TIMEOUT_S", "60")
    result = backend.roll_out(engine, model)
    assert (result.revision, result.changed) == (1, True)  # the failed revision's number is reused
    assert len(sim.store.list("v1", "ConfigMap", "st-stuck", label_selector=naming.REVISION_KEY)) == 1

    # The frontend Service has no address here (ClusterIP, no process behind it): the smoke stage's way in
    # is `kubectl port-forward`, run for the duration and stopped afterwards.
    assert result.endpoint is None
    fake = tmp_path / "kubectl"
    fake.write_text(FAKE_KUBECTL.format(python=sys.executable))
    fake.chmod(0o755)
    monkeypatch.setenv("FAKE_KUBECTL_OUT", str(tmp_path / "argv"))
    monkeypatch.setenv("DYNADEPLOY_KUBE_MODEL_TIMEOUT_S", "0")
    monkeypatch.setattr("runtime.gateways.portforward.binary", lambda name: str(fake))
    with backend.reach() as url:
        assert url.startswith("http://127.0.0.1:")
        argv, pid = (tmp_path / "argv").read_text().splitlines()
        assert argv == (
            f"--kubeconfig {sim.kubeconfig} -n st-stuck port-forward --address 127.0.0.1 "
            "svc/st-stuck-frontend :8000"
        )
    assert not _alive(int(pid))
    assert backend.teardown(keep_model_cache=False).leftovers == []


def test_a_failed_model_download_surfaces_its_log_and_is_replaced_on_the_rerun(sim):
    token = "hf_" + "k" * 30
    spec = make_spec(
        sim, "st-dl", model={"id": "Qwen/Qwen3-0.6B", "revision": REV, "token": {"env": "HF_TOKEN_FOR_TEST"}}
    )
    backend = KubeBackend(spec)
    backend.provision()
    backend.detect_gpus()
    backend.install_platform()
    job = render.render_model_cache(spec, backend.caps)[1]
    job["metadata"]["annotations"] = {
        "kubeapi-sim/fail": "true",
        "kubeapi-sim/log": "OSError: 401 Client Error: Repository Not Found\n",
    }
    sim.store.create(job)  # the Job of this revision already ran once, and fails
    with pytest.raises(PermanentError) as info:
        backend.cache_model("mocker", token)
    msg = str(info.value)
    assert "the model download Job st-dl/st-dl-model-download failed" in msg and "BackoffLimitExceeded" in msg
    assert "401 Client Error: Repository Not Found" in msg and token not in msg
    assert "model.token" in info.value.hint
    with pytest.raises(PermanentError, match=r"does not hold Qwen/Qwen3-0.6B@"):
        backend.roll_out("mocker")  # no rollout before the cache is ready

    model = backend.cache_model("mocker", token)  # the failed Job is replaced by a fresh one
    assert not model.reused and model.path.endswith(f"/snapshots/{REV}")
    pvc = sim.store.get("v1", "PersistentVolumeClaim", "st-dl-model-cache", "st-dl")
    assert pvc["metadata"]["annotations"][CACHED_ANNOTATION] == f"Qwen/Qwen3-0.6B@{REV}"
    secret = sim.store.get("v1", "Secret", "st-dl-hf-token", "st-dl")
    assert secret["metadata"]["labels"][naming.DEPLOYMENT_KEY] == "st-dl"
    before = len(sim.requests.entries)
    assert backend.cache_model("mocker", token).reused  # the marker says it is cached: no Job, no writes
    assert writes(sim, before) == []
    assert backend.teardown(keep_model_cache=False).leftovers == []


def test_the_etcd_image_override_gets_past_the_bitnami_image_check(sim):
    spec = make_spec(sim, "st-etcd", platform={"etcd": True, "discovery_backend": "etcd"})
    backend = KubeBackend(spec)
    backend.provision()
    backend.install_platform()
    (sts,) = sim.store.list("apps/v1", "StatefulSet", "dynamo-system")
    assert sts["metadata"]["name"] == "dynamo-platform-etcd"
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"].startswith(
        "docker.io/bitnamilegacy/etcd:"
    )
    values = backend.helm.current("dynamo-platform", "dynamo-system").values
    assert values["etcd"]["global"]["security"]["allowInsecureImages"] is True
    assert backend.teardown(keep_model_cache=False).leftovers == []


def test_a_platform_upgrade_applies_the_crds_before_the_chart(sim, tmp_path, monkeypatch):
    spec = make_spec(sim, "st-up")
    backend = KubeBackend(spec)
    backend.provision()
    backend.install_platform()
    # the next patch release of the chart, whose DGD CRD gains a printer column
    charts = tmp_path / "charts"
    new = charts / "dynamo-platform-1.6.2"
    shutil.copytree(CHARTS / "dynamo-platform", new)
    for path in (new / "Chart.yaml", new / "charts" / "dynamo-operator" / "Chart.yaml"):
        path.write_text(path.read_text().replace("1.6.1", "1.6.2"))
    crd_file = new / "charts" / "dynamo-operator" / "crds" / "nvidia.com_dynamographdeployments.yaml"
    crd = yaml.safe_load(crd_file.read_text())
    for v in crd["spec"]["versions"]:
        v["additionalPrinterColumns"].append({"name": "State", "type": "string", "jsonPath": ".status.state"})
    crd_file.write_text(yaml.safe_dump(crd))
    monkeypatch.setenv("DYNADEPLOY_CHART_DIR", str(charts))  # 1.6.2 from here, the rest falls back
    up = KubeBackend(make_spec(sim, "st-up", platform={"chart_version": "1.6.2"}))
    before = len(sim.requests.entries)
    out = up.install_platform()
    assert out.changed and "dynamo-platform 1.6.2" in out.note
    live = sim.store.get(
        "apiextensions.k8s.io/v1", "CustomResourceDefinition", "dynamographdeployments.nvidia.com"
    )
    assert any(c["name"] == "State" for c in live["spec"]["versions"][0]["additionalPrinterColumns"])
    order = [
        w for w in writes(sim, before) if "customresourcedefinitions" in w or "dynamo-system/secrets" in w
    ]
    crd_at = next(i for i, w in enumerate(order) if "customresourcedefinitions/dynamographdeployments" in w)
    release_at = next(i for i, w in enumerate(order) if "dynamo-system/secrets" in w)  # helm's release record
    assert crd_at < release_at, order
    assert up.helm.current("dynamo-platform", "dynamo-system").chart_version == "1.6.2"
    assert up.teardown(keep_model_cache=False).leftovers == []
    assert (
        sim.store.try_get(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", "dynamographdeployments.nvidia.com"
        )
        is None
    )  # dynadeploy created them
