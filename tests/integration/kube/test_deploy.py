"""The kube target end to end through the real deploy and teardown flows (flows/deploy.py, flows/teardown.py)
on a Prefect test server, against one simulator whose process runtime runs the graphs as real Dynamo
frontend + mocker processes, with the real helm 4 and kubectl binaries and the stand-in charts.

Covers: deploy -> smoke (real completions from the graph's processes) -> teardown with an empty inventory for
every topology (disagg with a namespace-restricted operator); an idempotent redeploy (no new revision, no
apply); a redeploy with a changed image recording revision 2 while the Dynamo operator reports success early
(the rollout still waits until every replica is updated); injected 429/500 faults converging through the
tasks' retries without duplicate objects; a crash after every stage (and a helm release left pending)
followed by reruns that converge; a GPU graph (vLLM engine) whose model is downloaded by the cache Job with
an HF token from a Prefect Secret block, which never shows up outside its Kubernetes Secret.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import threading

import pytest

from flows.deploy import deploy
from flows.teardown import teardown
from runtime.domain import naming
from runtime.errors import DynadeployError
from runtime.targets.kube.backend import KubeBackend

from .conftest import (
    graph_processes,
    leftovers,
    make_spec,
    spec_doc,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("port_forward")]

REV = "0123456789abcdef0123456789abcdef01234567"
DGD = ("nvidia.com/v1beta1", "DynamoGraphDeployment")
TOPOLOGIES = {
    "agg": ({"topology": "agg"}, {}),
    "agg_router": ({"topology": "agg_router", "workers": {"replicas": 2}}, {}),
    "disagg": (
        {"topology": "disagg", "prefill": {"replicas": 1}, "decode": {"replicas": 1}},
        {"platform": {"operator_mode": "namespace"}},
    ),
    "disagg_router": (
        {"topology": "disagg_router", "prefill": {"replicas": 1}, "decode": {"replicas": 2}},
        {},
    ),
}


def assert_gone(sim, name: str) -> None:
    assert leftovers(sim, name) == []
    assert graph_processes(sim, name) == []
    assert sim.store.list(*DGD) == [] if sim.store.registry.by_kind(*DGD) else True


@pytest.mark.parametrize("topology", sorted(TOPOLOGIES))
def test_each_topology_deploys_serves_and_tears_down(prefect_api, sim, topology):
    serving, extra = TOPOLOGIES[topology]
    with cluster_wide_operator(sim, (extra.get("platform") or {}).get("operator_mode") == "namespace"):
        _deploy_serve_and_tear_down(sim, topology, serving, extra)


RBAC = "rbac.authorization.k8s.io/v1"


@contextlib.contextmanager
def cluster_wide_operator(sim, wanted: bool):
    """A cluster-wide Dynamo 1.6 operator someone else installed, with its CRDs: what a namespace-restricted
    1.x install needs first (its chart brings no CRDs; issue 10, defect 4). Removed afterwards, so later
    cluster-mode deploys install their own."""
    if not wanted:
        yield
        return
    from tests.harness.kubeapi.controllers import install_crds

    store = sim.store
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "platform-system"}})
    store.create(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRole",
            "metadata": {
                "name": "shared-dynamo-operator-manager-role",
                "labels": {"app.kubernetes.io/instance": "shared"},
            },
            "rules": [],
        }
    )
    store.create(
        {
            "apiVersion": RBAC,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "shared-dynamo-operator-manager-rolebinding"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "shared-dynamo-operator-manager-role",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "x", "namespace": "platform-system"}],
        }
    )
    install_crds(store)
    try:
        yield
    finally:
        store.delete(RBAC, "ClusterRoleBinding", "shared-dynamo-operator-manager-rolebinding")
        store.delete(RBAC, "ClusterRole", "shared-dynamo-operator-manager-role")
        store.delete("v1", "Namespace", "platform-system")


def _deploy_serve_and_tear_down(sim, topology: str, serving: dict, extra: dict) -> None:
    name = f"kt-{topology.replace('_', '-')}"
    doc = spec_doc(sim, name, serving, **extra)
    result = deploy(spec=doc)
    smoke = result["smoke"]
    assert smoke["passed"] and smoke["errors"] == 0 and smoke["requests"] == 12
    assert (result["revision"], result["changed"], result["engine"]) == (1, True, "mocker")
    assert result["endpoint"].startswith("http://127.0.") and result["endpoint"].endswith(":8000")
    replicas = sum(r.get("replicas", 1) for k, r in serving.items() if k != "topology") or 1
    procs = graph_processes(sim, name)
    assert sorted(p["role"] for p in procs if p["role"] == "frontend") == ["frontend"]
    assert len(procs) == replicas + 1 and all(p["ready"] for p in procs)
    status = KubeBackend(make_spec(sim, name, serving, **extra)).status()
    assert status.ready and status.models == ["dynadeploy/tiny-mock"]
    assert [r.status for r in status.revisions] == ["serving"] and status.revisions[0].smoke_passed

    if topology == "agg":  # converging again changes nothing: no new revision, no apply, no helm upgrade
        before = len(sim.requests.entries)
        again = deploy(spec=doc)
        assert (again["revision"], again["changed"]) == (1, False) and again["smoke"]["passed"]
        since = sim.requests.entries[before:]
        assert not [r for r in since if r.method == "PATCH" and "/dynamographdeployments/" in r.path]
        assert not [
            r for r in since if r.method in ("POST", "PUT") and "/secrets" in r.path
        ]  # no helm upgrade

    down = teardown(spec=doc, delete_model_cache=True)
    assert down["leftovers"] == [] and not down["model_cache_kept"]
    assert_gone(sim, name)


def test_redeploy_with_a_changed_image_waits_for_the_real_rollout_and_records_revision_2(prefect_api, sim):
    name = "kt-image"
    serving = {"topology": "agg", "workers": {"replicas": 2}}
    first = deploy(spec=spec_doc(sim, name, serving))
    assert first["revision"] == 1

    sim.ctl.dynamo.early_success = True  # Dynamo #3567: Ready/successful before the new pods are rolled
    new_image = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1-hotfix.2"
    events: list = []
    unsubscribe = sim.store.subscribe(lambda ev: events.append(ev) if ev.kind == DGD[1] else None)
    at_rollout_done: dict = {}

    class Snapshot(logging.Handler):  # the moment the rollout stage reports done, in the flow's thread
        def emit(self, record):
            info = getattr(record, "dynadeploy", {})
            if info.get("stage") == "rollout" and info.get("event") == "done" and not at_rollout_done:
                at_rollout_done["dgd"] = sim.store.get(*DGD, name, name)
                at_rollout_done["pods"] = sim.store.list(
                    "v1", "Pod", name, label_selector={"nvidia.com/dynamo-component": "worker"}
                )

    handler = Snapshot()
    progress = logging.getLogger("dynadeploy.progress")
    level = progress.level
    progress.setLevel(logging.INFO)
    progress.addHandler(handler)
    try:
        second = deploy(spec=spec_doc(sim, name, {**serving, "image": new_image}), reason="new image")
    finally:
        progress.removeHandler(handler)
        progress.setLevel(level)
        unsubscribe()
        sim.ctl.dynamo.early_success = False
    assert (second["revision"], second["changed"]) == (2, True) and second["smoke"]["passed"]

    # the operator did claim success early: Ready=True on the new generation while workers were not rolled
    early = [
        e.object
        for e in events
        if e.object.get("status")
        and _claims_ready(e.object)
        and e.object["status"]["components"]["worker"]["updatedReplicas"] < 2
    ]
    assert early, "the early-success switch did not produce an early Ready"
    # ... and the stage returned only once every worker replica was updated and the old pods were gone
    dgd = at_rollout_done["dgd"]
    worker = dgd["status"]["components"]["worker"]
    assert worker["updatedReplicas"] == worker["availableReplicas"] == worker["replicas"] == 2
    pods = at_rollout_done["pods"]
    assert len(pods) == 2 and not any(p["metadata"].get("deletionTimestamp") for p in pods)
    assert all(p["spec"]["containers"][0]["image"] == new_image for p in pods)

    ledger = sorted(
        sim.store.list("v1", "ConfigMap", name, label_selector=naming.REVISION_KEY),
        key=lambda c: c["metadata"]["name"],
    )
    assert [
        (c["metadata"]["labels"][naming.REVISION_KEY], c["metadata"]["annotations"]["dynadeploy.io/status"])
        for c in ledger
    ] == [("1", "superseded"), ("2", "serving")]
    revisions = KubeBackend(make_spec(sim, name, serving)).status().revisions
    assert [r.reason for r in revisions] == ["deploy", "new image"]
    assert teardown(spec=spec_doc(sim, name, serving), delete_model_cache=True)["leftovers"] == []
    assert_gone(sim, name)


def _claims_ready(dgd: dict) -> bool:
    status = dgd.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    return (
        ready.get("status") == "True"
        and status.get("observedGeneration") == dgd["metadata"]["generation"] > 1
    )


def test_injected_429_and_500_faults_converge_without_duplicate_objects(prefect_api, sim):
    name = "kt-faults"
    doc = spec_doc(sim, name, {"topology": "agg"})
    rules = [
        sim.faults.add(path=path, verbs=verbs, status=status, retry_after=1, times=1)
        for path, verbs, status in (
            ("/api/v1/nodes$", ["list"], 500),  # preflight / GPU stage reads
            (f"/namespaces/{name}/networkpolicies/", ["patch"], 429),  # provision's applies
            ("/namespaces/dynamo-system/secrets", ["create", "list"], 429),  # helm's release storage
            (f"/namespaces/{name}/persistentvolumeclaims/", ["patch"], 500),  # the model cache
            (f"/namespaces/{name}/configmaps/", ["patch"], 429),  # the revision record
            (f"/namespaces/{name}/dynamographdeployments/", ["patch"], 500),  # the graph
        )
    ]
    result = deploy(spec=doc)
    assert result["smoke"]["passed"] and result["revision"] == 1
    assert all(rule.hits == 1 for rule in rules), [(r.path, r.hits) for r in rules]

    def count(api_version, kind, ns=name, **labels):
        return len(sim.store.list(api_version, kind, ns, label_selector=labels or naming.labels(name)))

    assert count(*DGD) == 1 and count("v1", "PersistentVolumeClaim") == 1
    assert count("v1", "ConfigMap", **{naming.REVISION_KEY: "1"}) == 1
    assert count("networking.k8s.io/v1", "NetworkPolicy") == 2
    assert count("v1", "Pod", **{"nvidia.com/dynamo-graph-deployment-name": name}) == 2
    assert len(sim.store.list("apps/v1", "Deployment", "dynamo-system")) == 1
    assert teardown(spec=doc, delete_model_cache=True)["leftovers"] == []
    assert_gone(sim, name)


CRASH_AFTER = ["provision", "detect_gpus", "install_platform", "cache_model", "roll_out", "smoke"]


def test_a_crash_after_any_stage_and_a_rerun_converge(prefect_api, sim, monkeypatch):
    import flows.deploy as deploy_module

    name = "kt-crash"
    doc = spec_doc(sim, name, {"topology": "agg"}, model={"id": "Qwen/Qwen3-0.6B", "revision": REV})
    for point in CRASH_AFTER:
        with monkeypatch.context() as mp:
            if point == "smoke":
                real = deploy_module.run_smoke_test
                mp.setattr(deploy_module, "run_smoke_test", _crashing(real, point))
            else:  # the stage's work is done, then the worker dies before the flow hears of it
                mp.setattr(KubeBackend, point, _crashing(getattr(KubeBackend, point), point))
            with pytest.raises(RuntimeError, match=f"simulated crash after {point}"):
                deploy(spec=doc)
        if point == "install_platform":  # a worker killed in the middle of a helm upgrade
            sim.set_helm_release_status("dynamo-platform", "dynamo-system", "pending-upgrade")
    result = deploy(spec=doc)
    assert result["smoke"]["passed"] and (result["revision"], result["changed"]) == (1, False)
    ledger = sim.store.list("v1", "ConfigMap", name, label_selector=naming.REVISION_KEY)
    assert [c["metadata"]["annotations"]["dynadeploy.io/status"] for c in ledger] == ["serving"]
    assert len(sim.store.list(*DGD, name)) == 1 and len(sim.store.list("batch/v1", "Job", name)) == 1
    assert len(graph_processes(sim, name)) == 2
    releases = KubeBackend(make_spec(sim, name)).helm.current("dynamo-platform", "dynamo-system")
    assert releases.status == "deployed"
    assert teardown(spec=doc, delete_model_cache=True)["leftovers"] == []
    assert teardown(spec=doc, delete_model_cache=True)["leftovers"] == []  # teardown is idempotent too
    assert_gone(sim, name)


def _crashing(fn, point: str):
    def crash(*args, **kwargs):
        fn(*args, **kwargs)
        raise RuntimeError(f"simulated crash after {point}")

    return crash


def test_a_gpu_graph_with_a_downloaded_model_and_a_token_from_a_prefect_secret_block(
    prefect_api, sim, caplog
):
    from prefect.blocks.system import Secret

    token = "hf_" + "Zq7" * 12
    Secret(value=token).save("kt-hf-token", overwrite=True)
    name = "kt-gpu"
    serving = {"topology": "agg", "engine": "vllm", "workers": {"replicas": 2, "gpus": 1}}
    doc = spec_doc(
        sim,
        name,
        serving,
        model={"id": "Qwen/Qwen3-0.6B", "revision": REV, "token": {"secret_block": "kt-hf-token"}},
    )
    caplog.set_level(logging.DEBUG)
    result = deploy(spec=doc)
    assert result["engine"] == "vllm" and result["smoke"]["passed"] and result["model"] == "Qwen/Qwen3-0.6B"

    workers = sim.store.list("v1", "Pod", name, label_selector={"nvidia.com/dynamo-component": "worker"})
    assert len(workers) == 2 and all(p["spec"]["nodeName"] == "sim-gpu-0" for p in workers)
    assert all(p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1" for p in workers)
    assert sim.store.get("v1", "Node", "sim-gpu-0")["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    (job,) = sim.store.list("batch/v1", "Job", name)
    assert job["status"]["succeeded"] == 1
    secret = sim.store.get("v1", "Secret", f"{name}-hf-token", name)
    assert base64.b64decode(secret["data"]["HF_TOKEN"]).decode() == token
    # the token lives in that Secret only: not in the graph, the Job, the ledger, events, logs or artifacts
    for kind in (DGD, ("batch/v1", "Job"), ("v1", "ConfigMap"), ("v1", "Pod"), ("v1", "Event")):
        assert token not in repr(sim.store.list(*kind, name)), kind
    assert token not in caplog.text
    assert token not in repr(_artifacts())

    down = teardown(spec=doc)  # the default policy keeps the model cache, so its namespace stays
    assert down["leftovers"] == [] and down["model_cache_kept"]
    assert sim.store.get("v1", "PersistentVolumeClaim", f"{name}-model-cache", name)
    assert sim.store.try_get("v1", "Secret", f"{name}-hf-token", name) is None
    again = deploy(spec=doc)  # the cache is reused: no new download Job
    assert again["smoke"]["passed"] and len(sim.store.list("batch/v1", "Job", name)) == 0
    assert teardown(spec=doc, delete_model_cache=True)["leftovers"] == []
    assert_gone(sim, name)


def _artifacts() -> list:
    from prefect.client.orchestration import get_client

    async def read():
        async with get_client() as client:
            return [a.data for a in await client.read_artifacts()]

    import asyncio

    out: list = []
    t = threading.Thread(target=lambda: out.extend(asyncio.run(read())))
    t.start()
    t.join()
    return out


def test_teardown_keeps_what_other_deployments_share(prefect_api, sim):
    a, b = spec_doc(sim, "kt-share-a", {"topology": "agg"}), spec_doc(sim, "kt-share-b", {"topology": "agg"})
    deploy(spec=a)
    deploy(spec=b)
    down = teardown(spec=a, delete_model_cache=True)
    assert down["leftovers"] == []
    assert sim.store.get(
        "apps/v1", "Deployment", "dynamo-platform-dynamo-operator-controller-manager", "dynamo-system"
    )  # kt-share-b still uses the operator
    assert KubeBackend(make_spec(sim, "kt-share-b", {"topology": "agg"})).status().models == [
        "dynadeploy/tiny-mock"
    ]
    down = teardown(spec=b, delete_model_cache=True)
    assert down["leftovers"] == []
    assert sim.store.try_get("v1", "Namespace", "dynamo-system") is None
    for name in ("kt-share-a", "kt-share-b"):
        assert_gone(sim, name)


def test_failures_name_the_stage(prefect_api, sim):
    bad = spec_doc(
        sim,
        "kt-bad",
        {"topology": "agg", "engine": "vllm", "workers": {"gpus": 16}},
        model={"id": "Qwen/Qwen3-0.6B", "revision": REV},
    )
    with pytest.raises(DynadeployError, match=r"preflight of .* found 1 problem"):
        deploy(spec=bad)
    assert sim.store.try_get("v1", "Namespace", "kt-bad") is None
