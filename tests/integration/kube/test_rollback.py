"""Rollback on the kube target through the real rollback flow (flows/rollback.py) on a Prefect test server,
against the Kubernetes API simulator whose process runtime serves each graph with real Dynamo frontend +
mocker processes, with the real helm 4 and kubectl binaries and the stand-in charts.

Covers: revision 1, then revision 2 with a changed image, then a rollback (auto-approved) that restores
revision 1's spec as revision 3 - the live DynamoGraphDeployment and the rolled pods carry revision 1's
rendering again, the ledger ConfigMaps say 1 and 2 superseded and 3 serving (started by "rollback"), and the
smoke test passed through the real frontend process; a rollback to an explicit revision; a rejected approval
(paused run resumed with approve=False); and rollbacks with nothing to roll back to, which fail with a
PermanentError before any write reaches the API server.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.flow_runs import resume_flow_run

from flows.deploy import deploy
from flows.rollback import rollback
from flows.teardown import teardown
from runtime.domain import naming
from runtime.errors import PermanentError
from runtime.render.ledger import STATUS_KEY
from runtime.spec import DEFAULT_IMAGE
from runtime.targets.kube.backend import KubeBackend

from .conftest import (
    graph_processes,
    leftovers,
    make_spec,
    spec_doc,
    writes,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("port_forward")]

DGD = ("nvidia.com/v1beta1", "DynamoGraphDeployment")
SERVING = {"topology": "agg", "workers": {"replicas": 2}}
IMAGE_1 = DEFAULT_IMAGE
IMAGE_2 = "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.1-hotfix.2"


def images(dgd: dict) -> dict[str, str]:
    return {c["name"]: c["podTemplate"]["spec"]["containers"][0]["image"] for c in dgd["spec"]["components"]}


def ledger(sim, name: str) -> list[tuple[str, str]]:
    """(revision, status) of the ledger ConfigMaps in the graph's namespace, as stored in the cluster."""
    cms = sim.store.list("v1", "ConfigMap", name, label_selector=naming.REVISION_KEY)
    return sorted(
        (
            (c["metadata"]["labels"][naming.REVISION_KEY], c["metadata"]["annotations"][STATUS_KEY])
            for c in cms
        ),
        key=lambda rs: int(rs[0]),
    )


def worker_images(sim, name: str) -> list[str]:
    pods = sim.store.list("v1", "Pod", name, label_selector={"nvidia.com/dynamo-component": "worker"})
    return sorted(
        p["spec"]["containers"][0]["image"] for p in pods if not p["metadata"].get("deletionTimestamp")
    )


def refused_without_writes(sim, match: str, **kwargs) -> None:
    before = len(sim.requests.entries)
    with pytest.raises(PermanentError, match=match):
        rollback(auto_approve=True, **kwargs)
    assert writes(sim, before) == []


def _paused_rollback(name: str):
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["PAUSED"]))
            )
        )
    return next(
        (
            r
            for r in runs
            if isinstance(r.parameters.get("spec"), dict) and r.parameters["spec"].get("name") == name
        ),
        None,
    )


def test_rollback_restores_revision_1_as_revision_3_on_the_cluster(prefect_api, sim):
    """Not simulated: real kubelets and images (the process runtime runs the same Dynamo processes whatever the
    image says, so "the image is back" is read from the DGD and the pods, not from what ran), the real Dynamo
    operator's rolling update (the simulator's operator replaces pods per component), and a real
    ``kubectl port-forward`` stream."""
    name = "kt-rollback"
    v1, v2 = spec_doc(sim, name, SERVING), spec_doc(sim, name, {**SERVING, "image": IMAGE_2})
    assert deploy(spec=v1)["revision"] == 1
    # one revision only: nothing earlier to roll back to, nothing written
    refused_without_writes(sim, "no earlier good revision", spec=v1)

    assert deploy(spec=v2, reason="new image")["revision"] == 2
    assert worker_images(sim, name) == [IMAGE_2, IMAGE_2]
    backend = KubeBackend(make_spec(sim, name, SERVING))
    first = {r.number: r for r in backend.revisions()}[1]

    result = rollback(spec=v2, auto_approve=True, reason="bad image")
    assert (result["status"], result["from"], result["to"], result["revision"]) == ("restored", 2, 1, 3)
    smoke = result["smoke"]
    assert smoke["passed"] and smoke["errors"] == 0 and smoke["requests"] == 12

    live = sim.store.get(*DGD, name, name)
    revs = {r.number: r for r in backend.revisions()}
    assert revs[3].spec_hash == first.spec_hash and revs[3].spec == first.spec
    assert revs[3].rendered[0]["spec"] == first.rendered[0]["spec"]  # the same graph, only relabelled 3
    assert KubeBackend._same(live, revs[3].rendered[0])
    assert set(images(live).values()) == {IMAGE_1}
    assert live["metadata"]["annotations"]["dynadeploy.io/revision"] == "3"
    assert worker_images(sim, name) == [IMAGE_1, IMAGE_1]
    assert ledger(sim, name) == [("1", "superseded"), ("2", "superseded"), ("3", "serving")]
    assert revs[3].started_by == "rollback" and revs[3].reason.startswith("rollback to revision 1: bad image")
    assert revs[3].smoke["passed"]
    # the graph the smoke test went through: a real frontend process serving the model from real workers
    ready = [p for p in graph_processes(sim, name) if p["ready"]]
    assert sum(p["role"] == "worker" for p in ready) >= 2
    frontend = next(p for p in ready if p["role"] == "frontend")
    models = httpx.get(f"http://{frontend['host']}:{frontend['port']}/v1/models", timeout=10).json()["data"]
    assert [m["id"] for m in models] == ["dynadeploy/tiny-mock"]

    # an explicit revision: back to revision 2's spec, as revision 4
    again = rollback(spec=v2, revision=2, auto_approve=True)
    assert (again["status"], again["from"], again["to"], again["revision"]) == ("restored", 3, 2, 4)
    assert again["smoke"]["passed"]
    assert set(images(sim.store.get(*DGD, name, name)).values()) == {IMAGE_2}
    assert worker_images(sim, name) == [IMAGE_2, IMAGE_2]
    assert ledger(sim, name)[-1] == ("4", "serving")

    # what serves now, or a revision the ledger does not hold: refused before any change
    refused_without_writes(sim, "nothing to do", spec=v2, revision=2)
    refused_without_writes(sim, "revision 9 is not in the ledger", spec=v2, revision=9)

    assert teardown(spec=v2, delete_model_cache=True)["leftovers"] == []
    assert leftovers(sim, name) == [] and graph_processes(sim, name) == []


def test_a_rejected_rollback_changes_nothing_on_the_cluster(prefect_api, sim):
    """The approval pause on a kube target: the run waits with the form, a rejection writes nothing.

    Not simulated: a person in the Prefect UI (the test resumes the paused run through the API, as the UI
    does)."""
    name = "kt-rollback-no"
    v1, v2 = (
        spec_doc(sim, name, {"topology": "agg"}),
        spec_doc(sim, name, {"topology": "agg", "image": IMAGE_2}),
    )
    deploy(spec=v1)
    deploy(spec=v2)
    dgd_before = sim.store.get(*DGD, name, name)["metadata"]["generation"]
    before = len(sim.requests.entries)

    out: dict = {}
    runner = threading.Thread(
        target=lambda: out.setdefault("result", rollback(spec=v2, approval_timeout_s=120, return_state=True))
    )
    runner.start()
    deadline = time.monotonic() + 90
    paused = None
    while paused is None and time.monotonic() < deadline:
        time.sleep(0.5)
        paused = _paused_rollback(name)
    assert paused is not None, "the rollback never paused for approval"
    resume_flow_run(paused.id, run_input={"approve": False, "note": "not now"})
    runner.join(timeout=120)
    # a rejection ends the run Cancelled (not a green Completed), with the note in its message
    assert out["result"].is_cancelled()
    assert out["result"].message == f"rollback of {name} to revision 1 rejected; nothing changed: not now"
    assert writes(sim, before) == []
    assert ledger(sim, name) == [("1", "superseded"), ("2", "serving")]
    assert sim.store.get(*DGD, name, name)["metadata"]["generation"] == dgd_before

    assert teardown(spec=v2, delete_model_cache=True)["leftovers"] == []
    assert leftovers(sim, name) == [] and graph_processes(sim, name) == []
