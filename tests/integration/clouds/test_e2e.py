"""EKS, GKE, AKS and ECS end to end through the real flows (flows/deploy.py -> smoke -> flows/teardown.py).

EKS/GKE/AKS: the cloud emulator (moto / FakeGke / FakeAks) makes the cluster, node pools and storage; its
cluster endpoint is the Kubernetes API simulator, where the kube stages run through the real helm and kubectl,
and the simulator's process runtime serves the graph with real Dynamo frontend + mocker processes, so the smoke
test gets real completions. Each run ends with an empty inventory in the cloud emulator and in the simulator.

ECS on moto: moto runs no containers and models no GPU scheduling (MOTO_ECS_SERVICE_RUNNING=1 only makes every
service report its task running), so the frontend's address is pointed at a real local Dynamo frontend + mocker
(the local target's processes) serving the same model, and the smoke test runs against that. Deploy -> smoke ->
teardown with an empty inventory (ECS + the SSM revision ledger).

A run killed right after the cluster was created (mid-provision) and rerun converges: no duplicate cloud objects.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from flows.deploy import deploy
from flows.teardown import teardown
from runtime.cloud_backend import CloudBackend
from runtime.spec import parse_spec
from tests.integration.kube.conftest import leftovers

pytestmark = pytest.mark.integration

DGD = ("nvidia.com/v1beta1", "DynamoGraphDeployment")


def graph_processes(sim, ns: str) -> list[dict]:
    return [p for p in sim.ctl.runtime.processes() if p["pod"].startswith(f"{ns}/")]


def record_intervals(monkeypatch, provider, names: list[str]) -> dict[str, list[tuple[float, float]]]:
    """Wrap provider methods to record when each call ran (to show what ran side by side)."""
    seen: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    lock = threading.Lock()
    for name in names:
        real = getattr(provider, name)

        def wrapped(*args, _real=real, _name=name, **kwargs):
            t0 = time.monotonic()
            try:
                return _real(*args, **kwargs)
            finally:
                with lock:
                    seen[_name].append((t0, time.monotonic()))

        monkeypatch.setattr(provider, name, wrapped)
    return seen


def assert_sim_clean(sim, name: str) -> None:
    assert leftovers(sim, name) == []
    assert graph_processes(sim, name) == []
    assert not sim.store.registry.by_kind(*DGD) or sim.store.list(*DGD) == []


@pytest.mark.parametrize("kind", ["eks", "gke", "aks"])
def test_cloud_cluster_deploys_serves_and_tears_down(prefect_api, sim, cloud_for, monkeypatch, kind):
    from tests.integration.clouds.conftest import cloud_doc

    cloud = cloud_for(kind)
    name = f"ct-{kind}"
    doc = cloud_doc(kind, name)
    spec = parse_spec(doc, source="test")
    seen = record_intervals(monkeypatch, cloud.provider, ["ensure_gpu_nodes", "storage_class"])

    result = deploy(spec=doc)
    smoke = result["smoke"]
    assert smoke["passed"] and smoke["errors"] == 0 and smoke["requests"] == 12
    assert (result["revision"], result["changed"], result["engine"]) == (1, True, "mocker")
    assert result["endpoint"].startswith("http://127.0.")
    (nodes,), (storage,) = seen["ensure_gpu_nodes"], seen["storage_class"]
    assert nodes[0] < storage[1] and storage[0] < nodes[1], "node pools and storage did not run side by side"

    cloud_inv = cloud.provider.inventory(spec)
    pools = {"eks": "eks:nodegroup/", "gke": "gke:node-pool/", "aks": "aks:agent-pool/"}[kind]
    assert sum(1 for i in cloud_inv if i.startswith(pools)) == 2, cloud_inv
    backend = CloudBackend(spec)
    status = backend.status()
    assert status["ready"] and status["models"] == ["dynadeploy/tiny-mock"] and status["cluster"]["name"]
    if kind == "eks":  # the EFS-backed class the provider made, applied in-cluster before the model cache
        (sc,) = [i for i in backend.inventory() if i.startswith("StorageClass ")]
        live = sim.store.get("storage.k8s.io/v1", "StorageClass", sc.split()[1])
        assert live["provisioner"] == "efs.csi.aws.com" and live["parameters"]["fileSystemId"].startswith("fs-")
        assert any(i.startswith("efs:file-system/") for i in cloud_inv)
    assert (backend.dir / "kubeconfig").stat().st_mode & 0o077 == 0

    down = teardown(spec=doc, delete_model_cache=True)
    assert down["leftovers"] == []
    assert cloud.provider.inventory(spec) == []
    assert_sim_clean(sim, name)
    assert not backend.dir.exists()


def test_a_run_killed_after_the_cluster_was_made_reruns_and_converges(prefect_api, sim, cloud_for, monkeypatch):
    from tests.integration.clouds.conftest import cloud_doc

    cloud = cloud_for("eks")
    name = "ct-killed"
    doc = cloud_doc("eks", name)
    spec = parse_spec(doc, source="test")
    real = cloud.provider.ensure_cluster

    def killed(s):
        real(s)
        raise RuntimeError("simulated kill after ensure_cluster")

    with monkeypatch.context() as mp:
        mp.setattr(cloud.provider, "ensure_cluster", killed)
        with pytest.raises(RuntimeError, match="simulated kill"):
            deploy(spec=doc)
    half = cloud.provider.inventory(spec)
    assert f"eks:cluster/{spec.target.cluster_name}" in half and not any("nodegroup" in i for i in half)

    result = deploy(spec=doc)
    assert result["smoke"]["passed"] and result["revision"] == 1
    shape = Counter(i.split("/", 1)[0] for i in cloud.provider.inventory(spec))
    assert shape["eks:cluster"] == 1 and shape["eks:nodegroup"] == 2 and shape["efs:file-system"] == 1
    assert shape["ec2:vpc"] == 1 and shape["ec2:subnet"] == 2, shape
    again = deploy(spec=doc)  # converged: nothing new
    assert (again["revision"], again["changed"]) == (1, False)
    assert Counter(i.split("/", 1)[0] for i in cloud.provider.inventory(spec)) == shape

    assert teardown(spec=doc, delete_model_cache=True)["leftovers"] == []
    assert cloud.provider.inventory(spec) == []
    assert_sim_clean(sim, name)


@pytest.fixture
def local_dynamo(tmp_path):
    """A real Dynamo frontend + mocker serving the built-in model on loopback (the local target's stages)."""
    from runtime.local.backend import LocalBackend

    spec = parse_spec({"apiVersion": "dynadeploy.io/v1", "name": "ct-ecs-stand-in",
                       "target": {"kind": "local", "state_dir": str(tmp_path / "local")},
                       "serving": {"engine": "mocker"}}, source="test")
    backend = LocalBackend(spec)
    try:
        backend.provision()
        engine = backend.detect_gpus()["engine"]
        backend.install_platform()
        backend.roll_out(engine, backend.cache_model(engine))
        yield backend.endpoint()
    finally:
        backend.teardown(keep_model_cache=True)


def test_ecs_deploys_and_tears_down_on_moto(prefect_api, cloud_for, monkeypatch, local_dynamo):
    from runtime.ecs_backend import EcsBackend
    from runtime.providers.ecs_serving import EcsServing
    from tests.integration.clouds.conftest import cloud_doc

    cloud = cloud_for("ecs")
    # moto runs no containers: the frontend task's address is a local Dynamo frontend serving the same model.
    monkeypatch.setattr(EcsServing, "frontend_address", lambda self, spec: local_dynamo)
    doc = cloud_doc("ecs", "ct-ecs")
    spec = parse_spec(doc, source="test")
    result = deploy(spec=doc)
    assert result["smoke"]["passed"] and result["smoke"]["requests"] == 12
    assert (result["revision"], result["changed"], result["endpoint"]) == (1, True, local_dynamo)

    backend = EcsBackend(spec)
    inv = cloud.provider.inventory(spec)
    assert sum(1 for i in inv if i.startswith("ecs:service/")) == 4, inv  # etcd, nats, frontend, worker
    (rev,) = backend.revisions()
    assert rev.status == "serving" and rev.smoke["passed"] and set(rev.rendered[0]) == {"etcd", "nats", "frontend",
                                                                                       "worker"}
    assert any(i.startswith("ssm:parameter/dynadeploy/") for i in backend.inventory())
    again = deploy(spec=doc)  # same spec: no new task definition revision, no new ledger revision
    assert (again["revision"], again["changed"]) == (1, False)
    assert Counter(i.split("/", 1)[0] for i in cloud.provider.inventory(spec)) == Counter(
        i.split("/", 1)[0] for i in inv)

    down = teardown(spec=doc)
    assert down["leftovers"] == []
    assert backend.inventory() == [] and cloud.provider.inventory(spec) == []
