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

Rollback (flows/rollback.py) through each backend: on EKS and GKE, on the cluster the deploy test already made, a
revision 2 with a changed image and an auto-approved rollback restoring revision 1's spec as revision 3 (the
kube stages against the simulator, smoke through the real frontend process). On ECS, by task definition
revisions: the services point back at revision 1's recorded task definitions (nothing registered, one service
update each, none on a rerun after a crash); a deregistered recorded revision is registered again from the
recorded spec.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from flows.deploy import deploy
from flows.rollback import rollback
from flows.teardown import teardown
from runtime.domain import naming
from runtime.render.ledger import STATUS_KEY
from runtime.spec import DEFAULT_IMAGE, parse_spec
from runtime.targets.cloud.backend import CloudBackend
from tests.integration.kube.conftest import graph_processes, leftovers, simulate_port_forward

pytestmark = pytest.mark.integration

DGD = ("nvidia.com/v1beta1", "DynamoGraphDeployment")
IMAGE_2 = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1-hotfix.2"
ROLLS_BACK = ("eks", "gke")  # the rollback phase of the deploy test (AKS runs the same CloudBackend code)


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


def roll_back_on_the_cluster(sim, doc: dict, name: str, monkeypatch) -> None:
    """On a deployed cloud cluster: revision 2 with another image, then the rollback flow (auto-approved)
    restores revision 1's spec as revision 3.

    Not simulated: the cloud's side of a rollback is nothing (the cluster and node pools stay as they are, so
    provision converges without a change); real kubelets pulling the image (the simulator's process runtime
    runs the same Dynamo processes whatever the image, so the image is read from the DGD); a real
    ``kubectl port-forward`` stream (the simulator has none: once a rolling update moved the frontend, the
    forward goes straight to the graph's ready frontend process, as in tests/integration/kube)."""
    simulate_port_forward(sim, monkeypatch)

    def graph_images() -> set[str]:
        dgd = sim.store.get(*DGD, name, name)
        return {c["podTemplate"]["spec"]["containers"][0]["image"] for c in dgd["spec"]["components"]}

    changed = {**doc, "serving": {**doc["serving"], "image": IMAGE_2}}
    assert deploy(spec=changed, reason="new image")["revision"] == 2
    assert graph_images() == {IMAGE_2}
    result = rollback(spec=changed, auto_approve=True, reason="bad image")
    assert (result["status"], result["from"], result["to"], result["revision"]) == ("restored", 2, 1, 3)
    assert result["smoke"]["passed"] and result["smoke"]["requests"] == 12
    assert graph_images() == {DEFAULT_IMAGE}
    revs = {r.number: r for r in CloudBackend(parse_spec(doc, source="test")).revisions()}
    assert revs[3].spec_hash == revs[1].spec_hash and revs[3].started_by == "rollback"
    assert revs[3].rendered[0]["spec"] == revs[1].rendered[0]["spec"]
    cms = sim.store.list("v1", "ConfigMap", name, label_selector=naming.REVISION_KEY)
    assert sorted(
        (c["metadata"]["labels"][naming.REVISION_KEY], c["metadata"]["annotations"][STATUS_KEY]) for c in cms
    ) == [("1", "superseded"), ("2", "superseded"), ("3", "serving")]


@pytest.mark.parametrize("kind", ["eks", "gke", "aks"])
def test_cloud_cluster_deploys_serves_and_tears_down(prefect_api, sim, cloud_for, monkeypatch, kind):
    """Deploy -> smoke -> (EKS, GKE: redeploy and roll back on the same cluster) -> teardown."""
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
    assert status.ready and status.models == ["dynadeploy/tiny-mock"] and status.details["cluster"]["name"]
    if kind == "eks":  # the EFS-backed class the provider made, applied in-cluster before the model cache
        (sc,) = [i for i in backend.inventory() if i.startswith("StorageClass ")]
        live = sim.store.get("storage.k8s.io/v1", "StorageClass", sc.split()[1])
        assert live["provisioner"] == "efs.csi.aws.com" and live["parameters"]["fileSystemId"].startswith(
            "fs-"
        )
        assert any(i.startswith("efs:file-system/") for i in cloud_inv)
    assert (backend.dir / "kubeconfig").stat().st_mode & 0o077 == 0
    if kind in ROLLS_BACK:
        roll_back_on_the_cluster(sim, doc, name, monkeypatch)

    down = teardown(spec=doc, delete_model_cache=True)
    assert down["leftovers"] == []
    assert cloud.provider.inventory(spec) == []
    assert_sim_clean(sim, name)
    assert not backend.dir.exists()


def test_a_run_killed_after_the_cluster_was_made_reruns_and_converges(
    prefect_api, sim, cloud_for, monkeypatch
):
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
    from runtime.targets.local.backend import LocalBackend

    spec = parse_spec(
        {
            "apiVersion": "dynadeploy.io/v1",
            "name": "ct-ecs-stand-in",
            "target": {"kind": "local", "state_dir": str(tmp_path / "local")},
            "serving": {"engine": "mocker"},
        },
        source="test",
    )
    backend = LocalBackend(spec)
    try:
        backend.provision()
        engine = backend.detect_gpus().engine
        backend.install_platform()
        backend.roll_out(engine, backend.cache_model(engine))
        yield backend.endpoint()
    finally:
        backend.teardown(keep_model_cache=True)


def test_ecs_deploys_and_tears_down_on_moto(prefect_api, cloud_for, monkeypatch, local_dynamo):
    from runtime.targets.ecs.backend import EcsBackend
    from runtime.targets.ecs.serving import EcsServing
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
    assert (
        rev.status == "serving"
        and rev.smoke["passed"]
        and set(rev.rendered[0]) == {"etcd", "nats", "frontend", "worker"}
    )
    assert any(i.startswith("ssm:parameter/dynadeploy/") for i in backend.inventory())
    again = deploy(spec=doc)  # same spec: no new task definition revision, no new ledger revision
    assert (again["revision"], again["changed"]) == (1, False)
    assert Counter(i.split("/", 1)[0] for i in cloud.provider.inventory(spec)) == Counter(
        i.split("/", 1)[0] for i in inv
    )

    down = teardown(spec=doc)
    assert down["leftovers"] == []
    assert backend.inventory() == [] and cloud.provider.inventory(spec) == []


def test_ecs_rollback_points_the_services_back_at_the_recorded_task_definitions(
    prefect_api, cloud_for, monkeypatch, local_dynamo, caplog
):
    """Rollback on ECS by task definition revisions, through the real rollback flow on moto.

    Spec A (task definitions :1), spec B with another image (frontend and worker :2), then a rollback to A: the
    services point back at the :1 ARNs revision 1 recorded, nothing is registered, each changed service is updated
    once - and a rerun after a crash between the service updates and the ledger write updates nothing more. With
    revision 2's task definitions deregistered, a rollback to revision 2 registers :3 from the recorded spec and
    says so. Every restore records a new ledger revision (SSM) started by "rollback".

    Not simulated: moto runs no containers and models no ECS deployment (an update_service there is a new
    deployment on AWS, so they are counted as calls), no task replacement or draining, and its
    describe_task_definition by family answers the highest revision even when it is INACTIVE (ECS answers the
    latest ACTIVE one; both lead to the same choice here); the smoke test goes to a local Dynamo standing in for
    the frontend task (as in the deploy test)."""
    import logging

    from runtime.render import ecs_task as ecs_render
    from runtime.targets.ecs.backend import EcsBackend
    from runtime.targets.ecs.serving import EcsServing
    from tests.integration.clouds.conftest import cloud_doc

    cloud = cloud_for("ecs")
    monkeypatch.setattr(EcsServing, "frontend_address", lambda self, spec: local_dynamo)
    name = "ct-ecs-rb"
    a = cloud_doc("ecs", name)
    b = cloud_doc("ecs", name, serving={**a["serving"], "image": IMAGE_2})
    spec = parse_spec(a, source="test")
    backend = EcsBackend(spec)
    aws = cloud.provider.aws(spec.target.region)
    client = aws.client("ecs")
    n = ecs_render.names(spec)
    clusters = {
        "etcd": n.fargate_cluster,
        "nats": n.fargate_cluster,
        "frontend": n.gpu_cluster,
        "worker": n.gpu_cluster,
    }
    families = {role: n.family(spec, role) for role in clusters}
    calls: list[str] = []
    real_call = aws.call

    def recording(service, op, /, **kwargs):
        calls.append(f"{service}.{op}")
        return real_call(service, op, **kwargs)

    monkeypatch.setattr(aws, "call", recording)

    def revisions_of(role: str) -> list[int]:
        arns = client.list_task_definitions(familyPrefix=families[role], status="ACTIVE")[
            "taskDefinitionArns"
        ]
        return sorted(int(arn.rsplit(":", 1)[1]) for arn in arns)

    def running() -> dict[str, str]:
        """role -> the task definition its service runs."""
        return {
            role: client.describe_services(cluster=cluster, services=[n.service(spec, role)])["services"][0][
                "taskDefinition"
            ]
            for role, cluster in clusters.items()
        }

    def crash(self, revision):
        raise RuntimeError("simulated crash")

    def count(op: str) -> int:
        return calls.count(f"ecs.{op}")

    assert deploy(spec=a)["revision"] == 1
    assert deploy(spec=b, reason="new image")["revision"] == 2
    first = {r.number: r for r in backend.revisions()}[1].rendered[0]
    assert running() != first and revisions_of("worker") == revisions_of("frontend") == [1, 2]

    # the rollback crashes after pointing the services back, before the ledger records it ...
    with monkeypatch.context() as mp:
        mp.setattr(EcsBackend, "_put", crash)
        calls.clear()
        with pytest.raises(RuntimeError, match="simulated crash"):
            rollback(spec=b, auto_approve=True, reason="bad image")
    assert running() == first
    assert (count("register_task_definition"), count("update_service")) == (0, 2)  # frontend and worker
    assert [(r.number, r.status) for r in backend.revisions()] == [(1, "superseded"), (2, "serving")]

    # ... and the rerun finds them there: no new task definition revision, no second service update
    calls.clear()
    caplog.set_level(logging.INFO, logger="dynadeploy.progress")
    result = rollback(spec=b, auto_approve=True, reason="bad image")
    assert (result["status"], result["from"], result["to"], result["revision"]) == ("restored", 2, 1, 3)
    assert result["smoke"]["passed"] and result["smoke"]["requests"] == 12
    assert (count("register_task_definition"), count("update_service")) == (0, 0)
    assert running() == first and revisions_of("worker") == revisions_of("frontend") == [1, 2]
    revs = {r.number: r for r in backend.revisions()}
    assert [(n, r.status) for n, r in sorted(revs.items())] == [
        (1, "superseded"),
        (2, "superseded"),
        (3, "serving"),
    ]
    assert revs[3].rendered == [first] and revs[3].spec_hash == revs[1].spec_hash
    assert revs[3].started_by == "rollback" and revs[3].reason.startswith("rollback to revision 1: bad image")
    assert revs[3].smoke["passed"]
    notes = [
        r.getMessage()
        for r in caplog.records
        if r.name == "dynadeploy.progress" and "rollout done" in r.getMessage()
    ]
    assert any(
        "point back at the recorded task definitions" in n and f"{name}-worker:1" in n for n in notes
    ), notes

    # revision 2's task definitions deregistered: a rollback to it registers them again from the recorded spec
    second = revs[2].rendered[0]
    for role in ("frontend", "worker"):
        client.deregister_task_definition(taskDefinition=second[role])
    calls.clear()
    caplog.clear()
    result = rollback(spec=b, revision=2, auto_approve=True)
    assert (result["status"], result["to"], result["revision"]) == ("restored", 2, 4) and result["smoke"][
        "passed"
    ]
    assert (count("register_task_definition"), count("update_service")) == (2, 2)
    assert revisions_of("worker") == revisions_of("frontend") == [1, 3]
    now = running()
    assert now["worker"].endswith(f"{name}-worker:3") and now["frontend"].endswith(f"{name}-frontend:3")
    assert (now["etcd"], now["nats"]) == (first["etcd"], first["nats"])  # unchanged all along
    worker = client.describe_task_definition(taskDefinition=now["worker"])["taskDefinition"]
    assert worker["containerDefinitions"][0]["image"] == IMAGE_2
    revs = {r.number: r for r in backend.revisions()}
    assert (
        revs[4].status == "serving" and revs[4].rendered == [now] and revs[4].spec_hash == revs[2].spec_hash
    )
    notes = [
        r.getMessage()
        for r in caplog.records
        if r.name == "dynadeploy.progress" and "rollout done" in r.getMessage()
    ]
    assert any(
        "registered again from the recorded spec" in n and f"{name}-worker:2 -> {name}-worker:3" in n
        for n in notes
    ), notes

    # converged: the same spec again registers and updates nothing, and records no new revision
    calls.clear()
    again = deploy(spec=revs[4].spec)
    assert (again["revision"], again["changed"]) == (4, False)
    assert (count("register_task_definition"), count("update_service")) == (0, 0)

    assert teardown(spec=a)["leftovers"] == []
    assert backend.inventory() == [] and cloud.provider.inventory(spec) == []
