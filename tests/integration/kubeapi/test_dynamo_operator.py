"""The Dynamo operator stand-in (tests/harness/kubeapi/controllers/dynamo_operator.py) and the process
runtime, driven by the real kubectl and the kubernetes Python client, with the DGD shapes that ship in the
ai-dynamo 1.6.1 wheel (dynamo/profiler/templates/dgd/vllm/{agg,disagg}.yaml).

Simulated here: the DGD/DGDSA CRDs applied like the platform chart does; DGD -> one Deployment per component
(+ the ``<dgd>-frontend`` Service), labels, ownerReferences, operator-injected env; status as Dynamo 1.6.1
reports it (state, Ready condition with observedGeneration, components.<name>, rollingUpdate phases,
Failed on a progress deadline); ``kubectl wait --for=condition=Ready dgd/x``; the early-success switch
(Dynamo issue #3567: Ready while updatedReplicas < replicas and old pods terminate); DGDSA scaling via
``kubectl scale``; with the process runtime, real Dynamo frontend + mocker processes per DGD on their own
loopback address, a chat completion through the Service's ingress address, processes following replicas,
and none left after the DGD is deleted or the simulator stops.
Not simulated: the real operator's Grove/LWS paths, DCDs, conversion and admission webhooks, GPUs and vLLM
(workers run the mocker engine), the Kubernetes discovery backend (file discovery instead).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import httpx
import pytest
import yaml

from tests.harness.dynadeploy_host import install_all
from tests.harness.kubeapi import Simulator
from tests.harness.kubeapi.controllers import dynamo_crds, leftover_pids

from .conftest import wait_for

pytestmark = pytest.mark.integration

API = "nvidia.com/v1beta1"
DGD = "DynamoGraphDeployment"
TEMPLATES = Path(str(files("dynamo.profiler").joinpath("templates", "dgd", "vllm")))
MODEL = "Qwen/Qwen3-0.6B"


def template(shape: str, name: str | None = None, **annotations: str) -> dict:
    doc = yaml.safe_load((TEMPLATES / f"{shape}.yaml").read_text())
    doc["metadata"]["namespace"] = "default"
    if name:
        doc["metadata"]["name"] = name
    if annotations:
        doc["metadata"]["annotations"] = annotations
    return doc


@pytest.fixture
def kubeapi(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """Every controller, GPU nodes with the driver preinstalled (the templates ask for nvidia.com/gpu);
    ``request.param`` adds install_all switches. The Dynamo CRDs are applied by each test."""
    switches = {
        "workloads": {"ready_delay": 0.05, "terminating_delay": 0.3},
        "nodes": {"driver_preinstalled": True},
        **getattr(request, "param", {}),
    }
    home = tmp_path_factory.mktemp("kubeapi")
    sim = Simulator().start()
    sim.ctl = install_all(sim, **switches)
    sim.write_kubeconfig(home / "kubeconfig")
    sim.env = sim.tool_env(home)
    yield sim
    sim.stop()
    if sim.ctl.runtime is not None:
        assert leftover_pids(sim.ctl.runtime.sim_id) == []
    assert not sim.controller_errors, "\n".join(e[2] for e in sim.controller_errors)


def apply_crds(kubectl) -> None:
    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(dynamo_crds()))


def dgd(store, name: str) -> dict:
    return store.get(API, DGD, name, "default")


def record(store) -> tuple[list[dict], Callable[[], None]]:
    """Every DGD and Pod state from now on (the store's own event stream: nothing is missed)."""
    seen: list[dict] = []

    def on(ev) -> None:
        if ev.kind in (DGD, "Pod"):
            seen.append(copy.deepcopy(ev.object))

    return seen, store.subscribe(on)


def ready(obj: dict) -> dict:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def test_agg_server_side_apply_wait_and_exact_status(kubeapi, kubectl):
    store = kubeapi.store
    apply_crds(kubectl)
    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(template("agg")))
    assert "condition met" in kubectl("wait", "--for=condition=Ready", "dgd/vllm-agg", "--timeout=30s").out
    obj = dgd(store, "vllm-agg")
    status = copy.deepcopy(obj["status"])
    assert ready(obj)["lastTransitionTime"]
    del status["conditions"][0]["lastTransitionTime"]
    component = {
        "componentKind": "Deployment",
        "runtimeNamespace": "default-vllm-agg",
        "replicas": 1,
        "updatedReplicas": 1,
        "readyReplicas": 1,
        "availableReplicas": 1,
    }
    assert status == {
        "state": "successful",
        "observedGeneration": 1,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "all_resources_are_ready",
                "message": "All resources are ready",
                "observedGeneration": 1,
            }
        ],
        "components": {
            "Frontend": {**component, "componentNames": ["vllm-agg-frontend"]},
            "worker": {**component, "componentNames": ["vllm-agg-worker"]},
        },
    }
    table = kubectl("get", "dgd").out.splitlines()
    assert table[0].split()[:3] == ["NAME", "READY", "BACKEND"] and table[1].split()[:2] == [
        "vllm-agg",
        "True",
    ]

    dep = store.get("apps/v1", "Deployment", "vllm-agg-worker", "default")
    labels = {
        "nvidia.com/dynamo-graph-deployment-name": "vllm-agg",
        "nvidia.com/dynamo-component": "worker",
        "nvidia.com/dynamo-component-type": "worker",
        "nvidia.com/selector": "vllm-agg-worker",
    }
    assert labels.items() <= dep["metadata"]["labels"].items()
    assert dep["metadata"]["ownerReferences"][0] == {
        "apiVersion": API,
        "kind": DGD,
        "name": "vllm-agg",
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    main = dep["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert {
        "DYN_NAMESPACE": "default-vllm-agg",
        "DYN_COMPONENT": "worker",
        "DYN_DISCOVERY_BACKEND": "kubernetes",
        "DYN_SYSTEM_ENABLED": "true",
        "DYN_SYSTEM_PORT": "9090",
        "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS": '["generate"]',
    }.items() <= env.items()
    assert main["args"] == ["--model", MODEL] and main["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    (pod,) = store.list("v1", "Pod", "default", label_selector={"nvidia.com/selector": "vllm-agg-worker"})
    assert labels.items() <= pod["metadata"]["labels"].items() and pod["status"]["phase"] == "Running"
    svc = store.get("v1", "Service", "vllm-agg-frontend", "default")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": 8000, "protocol": "TCP"}]

    kubectl("delete", "dgd", "vllm-agg")
    wait_for(lambda: not store.list("v1", "Pod", "default"), what="the graph's pods to go")
    assert not store.list("apps/v1", "Deployment", "default") and not store.try_get(
        "v1", "Service", "vllm-agg-frontend", "default"
    )


def test_disagg_with_the_python_client(kubeapi, kubectl):
    from kubernetes import client

    store = kubeapi.store
    apply_crds(kubectl)
    api = client.CustomObjectsApi(kubeapi.api_client())
    api.create_namespaced_custom_object(
        "nvidia.com", "v1beta1", "default", "dynamographdeployments", template("disagg")
    )

    def is_ready():
        obj = api.get_namespaced_custom_object(
            "nvidia.com", "v1beta1", "default", "dynamographdeployments", "vllm-disagg"
        )
        conds = (obj.get("status") or {}).get("conditions") or []
        return obj if any(c["type"] == "Ready" and c["status"] == "True" for c in conds) else None

    obj = wait_for(is_ready, what="disagg Ready")
    assert sorted(obj["status"]["components"]) == ["Frontend", "decode", "prefill"]
    assert {
        d["metadata"]["name"]: d["metadata"]["labels"].get("nvidia.com/dynamo-sub-component-type")
        for d in store.list("apps/v1", "Deployment", "default")
    } == {"vllm-disagg-frontend": None, "vllm-disagg-decode": "decode", "vllm-disagg-prefill": "prefill"}
    pods = (
        client.CoreV1Api(kubeapi.api_client())
        .list_namespaced_pod("default", label_selector="nvidia.com/dynamo-graph-deployment-name=vllm-disagg")
        .items
    )
    assert len(pods) == 3 and all(p.status.phase == "Running" for p in pods)


def test_spec_change_goes_through_rolling_update_phases(kubeapi, kubectl):
    store = kubeapi.store
    kubeapi.ctl.workloads.ready_delay = 0.3
    apply_crds(kubectl)
    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(template("agg")))
    kubectl("wait", "--for=condition=Ready", "dgd/vllm-agg", "--timeout=30s")
    seen, unsubscribe = record(store)
    kubectl(
        "patch",
        "dgd/vllm-agg",
        "--type=json",
        "-p",
        json.dumps(
            [
                {
                    "op": "replace",
                    "path": "/spec/components/1/podTemplate/spec/containers/0/image",
                    "value": "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.2",
                }
            ]
        ),
    )
    wait_for(
        lambda: dgd(store, "vllm-agg")["status"].get("rollingUpdate", {}).get("phase") == "Completed",
        what="rollingUpdate Completed",
    )
    kubectl("wait", "--for=condition=Ready", "dgd/vllm-agg", "--timeout=30s")
    unsubscribe()
    states = [o for o in seen if o["kind"] == DGD and o.get("status")]
    phases = [s["status"].get("rollingUpdate", {}).get("phase") for s in states]
    phases = [p for i, p in enumerate(phases) if p and (i == 0 or p != phases[i - 1])]
    assert phases == ["Pending", "InProgress", "Completed"]
    for s in states:  # never Ready while the worker rolls: the fixed behaviour
        comp = s["status"]["components"]["worker"]
        if comp["updatedReplicas"] < comp["replicas"] or s["status"].get("rollingUpdate", {}).get(
            "phase"
        ) in ("Pending", "InProgress"):
            assert ready(s)["status"] == "False" and s["status"]["state"] == "pending"
    reasons = {ready(s)["reason"] for s in states}
    assert {"some_resources_are_not_ready", "all_resources_are_ready"} <= reasons
    assert any(o["kind"] == "Pod" and o["metadata"].get("deletionTimestamp") for o in seen)
    final = dgd(store, "vllm-agg")
    ru = final["status"]["rollingUpdate"]
    assert ru["updatedComponents"] == ["worker"] and ru["startTime"] <= ru["endTime"]
    assert final["status"]["observedGeneration"] == final["metadata"]["generation"] == 2
    assert ready(final)["observedGeneration"] == 2 and final["status"]["state"] == "successful"
    notes = [
        e["reason"] for e in store.list("v1", "Event", "default") if e["involvedObject"]["name"] == "vllm-agg"
    ]
    assert "RollingUpdateStarted" in notes and "RollingUpdateCompleted" in notes


@pytest.mark.parametrize("kubeapi", [{"dynamo": {"early_success": True}}], indirect=True)
def test_early_success_switch_reports_ready_while_old_pods_serve(kubeapi, kubectl):
    """Dynamo #3567: Ready=True and observedGeneration current right after a spec change."""
    store = kubeapi.store
    kubeapi.ctl.workloads.ready_delay = 2.0
    apply_crds(kubectl)
    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(template("agg")))
    kubectl("wait", "--for=condition=Ready", "dgd/vllm-agg", "--timeout=30s")
    seen, unsubscribe = record(store)
    kubectl(
        "patch",
        "dgd/vllm-agg",
        "--type=json",
        "-p",
        json.dumps(
            [
                {
                    "op": "add",
                    "path": "/spec/components/1/podTemplate/spec/containers/0/args/-",
                    "value": "--enforce-eager",
                }
            ]
        ),
    )
    kubectl("wait", "--for=condition=Ready", "dgd/vllm-agg", "--timeout=30s")  # returns at once: the trap
    worker = store.get("apps/v1", "Deployment", "vllm-agg-worker", "default")
    pods = store.list("v1", "Pod", "default", label_selector={"nvidia.com/selector": "vllm-agg-worker"})
    st = worker["status"]
    assert (
        st.get("observedGeneration") != worker["metadata"]["generation"]
        or len(pods) > 1
        or st.get("updatedReplicas") != 1
        or st.get("availableReplicas") != 1
    )  # not rolled out yet
    wait_for(
        lambda: (
            store.get("apps/v1", "Deployment", "vllm-agg-worker", "default")["status"].get("updatedReplicas")
            == 1
            and len(
                store.list("v1", "Pod", "default", label_selector={"nvidia.com/selector": "vllm-agg-worker"})
            )
            == 1
        ),
        what="the rollout to really finish",
    )
    unsubscribe()
    gen = dgd(store, "vllm-agg")["metadata"]["generation"]
    trap = [
        s
        for s in seen
        if s["kind"] == DGD
        and s["status"].get("observedGeneration") == gen
        and ready(s)["status"] == "True"
        and ready(s)["observedGeneration"] == gen
        and s["status"]["components"]["worker"]["updatedReplicas"]
        < s["status"]["components"]["worker"]["replicas"]
    ]
    assert trap and trap[0]["status"]["state"] == "successful" and "rollingUpdate" not in trap[0]["status"]
    pods_while_ready = [o for o in seen if o["kind"] == "Pod" and o["metadata"].get("deletionTimestamp")]
    assert pods_while_ready  # old pods terminating meanwhile
    assert all(ready(s)["status"] == "True" for s in seen if s["kind"] == DGD)


@pytest.mark.parametrize("kubeapi", [{"dynamo": {"progress_deadline_seconds": 1}}], indirect=True)
def test_crashing_worker_fails_the_rolling_update(kubeapi, kubectl):
    store = kubeapi.store
    kubeapi.ctl.workloads.crash_interval = 0.3
    apply_crds(kubectl)
    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(template("agg")))
    kubectl("wait", "--for=condition=Ready", "dgd/vllm-agg", "--timeout=30s")
    kubectl(
        "patch",
        "dgd/vllm-agg",
        "--type=json",
        "-p",
        json.dumps(
            [
                {
                    "op": "add",
                    "path": "/spec/components/1/podTemplate/metadata",
                    "value": {"annotations": {"kubeapi-sim/crash": "main"}},
                }
            ]
        ),
    )
    obj = wait_for(
        lambda: (
            (o := dgd(store, "vllm-agg"))["status"].get("rollingUpdate", {}).get("phase") == "Failed" and o
        ),
        what="rollingUpdate Failed",
    )
    assert obj["status"]["state"] == "failed" and ready(obj)["reason"] == "rolling_update_failed"
    assert obj["status"]["observedGeneration"] == ready(obj)["observedGeneration"] == 2
    assert obj["status"]["rollingUpdate"]["endTime"]
    assert obj["status"]["components"]["worker"]["availableReplicas"] == 1  # the old pod still serves


def test_scaling_adapter_syncs_replicas(kubeapi, kubectl):
    store = kubeapi.store
    apply_crds(kubectl)
    doc = template("agg")
    doc["spec"]["components"][1]["scalingAdapter"] = {}  # the CRD's shape: an empty object (issue 10)
    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(doc))
    kubectl("wait", "--for=condition=Ready", "dgd/vllm-agg", "--timeout=30s")
    kubectl("scale", "dgdsa/vllm-agg-worker", "--replicas=2")
    wait_for(lambda: dgd(store, "vllm-agg")["spec"]["components"][1]["replicas"] == 2, what="replicas synced")
    wait_for(
        lambda: (
            (s := dgd(store, "vllm-agg")["status"])["components"]["worker"]["readyReplicas"] == 2
            and s["state"] == "successful"
        ),
        what="2 ready workers",
    )
    sa = store.get(API, "DynamoGraphDeploymentScalingAdapter", "vllm-agg-worker", "default")
    assert sa["status"]["replicas"] == 2 and sa["status"]["lastScaleTime"]
    assert sa["status"]["selector"] == (
        "nvidia.com/dynamo-graph-deployment-name=vllm-agg,nvidia.com/dynamo-component=worker"
    )
    assert "rollingUpdate" not in dgd(store, "vllm-agg")["status"]  # replicas are not a rollout


def chat(ip: str, timeout: float = 60.0) -> dict:
    """A chat completion through the Service address, retried while the model registers."""
    deadline = time.monotonic() + timeout
    last = None
    with httpx.Client(trust_env=False, timeout=10) as http:
        while time.monotonic() < deadline:
            try:
                last = http.post(
                    f"http://{ip}:8000/v1/chat/completions",
                    json={
                        "model": MODEL,
                        "messages": [{"role": "user", "content": "hello"}],
                        "max_tokens": 8,
                    },
                )
                if last.status_code == 200:
                    return last.json()
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.2)
    raise AssertionError(f"no chat completion from {ip}: {last!r}")


@pytest.mark.parametrize("kubeapi", [{"process_runtime": True}], indirect=True)
def test_process_runtime_serves_real_chat_completions_and_stops(kubeapi, kubectl):
    store, runtime = kubeapi.store, kubeapi.ctl.runtime
    apply_crds(kubectl)
    agg = template("agg", **{"kubeapi-sim/frontend-service-type": "LoadBalancer"})
    kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all([agg, template("disagg")]))
    kubectl("wait", "--for=condition=Ready", "dgd/vllm-agg", "dgd/vllm-disagg", "--timeout=90s")
    svc = store.get("v1", "Service", "vllm-agg-frontend", "default")
    ip = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
    assert svc["spec"]["type"] == "LoadBalancer" and ip == runtime.address("default", "vllm-agg")
    other = store.get("v1", "Service", "vllm-disagg-frontend", "default")["status"]["loadBalancer"][
        "ingress"
    ][0]["ip"]
    assert ip.startswith("127.") and other.startswith("127.") and ip != other
    reply = chat(ip)
    assert reply["object"] == "chat.completion" and reply["model"] == MODEL and reply["choices"][0]["message"]
    assert chat(other)["usage"]["completion_tokens"] > 0
    procs = runtime.processes()
    assert sorted(p["role"] for p in procs) == ["frontend", "frontend", "worker", "worker", "worker"]
    assert all(p["ready"] and p["port"] < 32768 for p in procs if p["role"] == "worker")
    (pod,) = store.list("v1", "Pod", "default", label_selector={"nvidia.com/selector": "vllm-agg-worker"})
    assert pod["status"]["podIP"] == ip
    wait_for(
        lambda: "dynamo" in kubectl("logs", pod["metadata"]["name"]).out.lower(), what="the worker's log"
    )
    assert len(leftover_pids(runtime.sim_id)) == 5

    kubectl(
        "patch",
        "dgd/vllm-agg",
        "--type=json",
        "-p",
        json.dumps([{"op": "replace", "path": "/spec/components/1/replicas", "value": 2}]),
    )
    wait_for(
        lambda: (
            sum(p["role"] == "worker" and p["host"] == ip and p["ready"] for p in runtime.processes()) == 2
        ),
        timeout=60,
        what="a second agg worker process",
    )
    kubectl("wait", "--for=condition=Ready", "dgd/vllm-agg", "--timeout=60s")
    kubectl(
        "patch",
        "dgd/vllm-agg",
        "--type=json",
        "-p",
        json.dumps([{"op": "replace", "path": "/spec/components/1/replicas", "value": 1}]),
    )
    wait_for(
        lambda: sum(p["role"] == "worker" and p["host"] == ip for p in runtime.processes()) == 1,
        what="the extra agg worker process to stop",
    )
    assert chat(ip)["object"] == "chat.completion"

    kubectl("delete", "dgd", "vllm-agg", "--timeout=30s")
    wait_for(lambda: all(p["host"] == other for p in runtime.processes()), what="the agg processes to stop")
    wait_for(lambda: len(leftover_pids(runtime.sim_id)) == 3, what="the agg processes to exit")
    with pytest.raises(httpx.HTTPError), httpx.Client(trust_env=False, timeout=2) as http:
        http.get(f"http://{ip}:8000/v1/models")
    kubeapi.stop()  # the disagg graph is still up
    assert leftover_pids(runtime.sim_id) == [] and runtime.processes() == []
