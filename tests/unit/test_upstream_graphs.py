"""The rendered graphs against the real Dynamo material in ../shared/upstream (or $DYNADEPLOY_UPSTREAM_DIR):
the DynamoGraphDeployment CRD's structural schema (what a real apiserver would prune), and Dynamo's own
vLLM example graphs (examples/backends/vllm/deploy/v1beta1), field by field.

Without the upstream folder these tests skip and say so. What they do not cover: the operator's admission
rules (tests/harness/kubeapi/controllers/dynamo_admission.py and the kube integration tests), and a full
structural-schema validation (types, enums, int-or-string), which the simulator's CRD validation does.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime import render as r
from runtime.domain import capabilities
from tests.unit.test_render import TOPOLOGIES, components, dgd, main, make

ROOT = Path(__file__).resolve().parents[2]


def upstream_dir() -> Path:
    found = os.environ.get("DYNADEPLOY_UPSTREAM_DIR") or str(ROOT.parent / "shared" / "upstream")
    path = Path(found)
    if not (path / "dynamo").is_dir():
        pytest.skip(
            f"the upstream reference folder is missing ({path}; set DYNADEPLOY_UPSTREAM_DIR): the "
            "rendered graphs are not checked against the real CRD and Dynamo's examples"
        )
    return path


@functools.cache  # the CRD is 2 MB of YAML: parsed once per session, with libyaml (tests only read it)
def dgd_schema(version: str = "v1beta1") -> dict:
    text = (upstream_dir() / "dynamo/crds/nvidia.com_dynamographdeployments.yaml").read_text()
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return v["schema"]["openAPIV3Schema"]


def pruned(obj: Any, schema: dict, path: str = "") -> list[str]:
    """Paths a real apiserver would prune from ``obj`` under the structural ``schema`` (unknown fields)."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or not isinstance(obj, (dict, list)):
        return []
    if isinstance(obj, list):
        items = schema.get("items") or {}
        return [p for i, item in enumerate(obj) for p in pruned(item, items, f"{path}[{i}]")]
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    out = []
    for key, value in obj.items():
        if path == "" and key in ("apiVersion", "kind"):
            continue
        if path == ".metadata":
            continue  # ObjectMeta is validated by the apiserver, not the CRD schema
        if props is not None and key in props:
            out += pruned(value, props[key], f"{path}.{key}")
        elif isinstance(extra, dict):
            out += pruned(value, extra, f"{path}.{key}")
        elif extra is True:
            continue
        else:
            out.append(f"{path}.{key}")
    return out


def example(topology: str) -> dict:
    return yaml.safe_load((upstream_dir() / f"dynamo/examples/v1beta1/{topology}.yaml").read_text())


def words(container: dict) -> list[str]:
    w = [*container.get("command", []), *container.get("args", [])]
    if w[:2] == ["/bin/sh", "-c"]:
        w = shlex.split(w[2].rsplit("exec ", 1)[1])
    return w


def role_of(component: dict, topology: str) -> str:
    """The role of a component of Dynamo's examples (all their workers are of type worker)."""
    if component["type"] == "frontend":
        return "frontend"
    name = component["name"].lower()
    if topology.startswith("disagg"):
        return "prefill" if "prefill" in name else "decode"
    return "worker"


def flag(ws: list[str], name: str) -> str | None:
    return ws[ws.index(name) + 1] if name in ws else None


# --- defect 3: scalingAdapter in the CRD's real shape -------------------------------------------------------


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("provider", ["kube", "gke"])
def test_rendered_graph_has_no_field_the_real_crd_would_prune(topology, provider):
    role = "workers" if topology.startswith("agg") else "decode"
    spec = make(topology, provider, serving={role: {"autoscaling": {"min_replicas": 2, "max_replicas": 4}}})
    assert pruned(dgd(spec), dgd_schema()) == []


def test_scaling_adapter_is_the_crds_empty_object_and_replicas_are_left_to_it():
    schema = dgd_schema()["properties"]["spec"]["properties"]["components"]["items"]["properties"]
    assert schema["scalingAdapter"].get("properties") is None  # an empty object: `enabled` would be pruned
    spec = make(
        "agg", serving={"workers": {"replicas": 1, "autoscaling": {"min_replicas": 2, "max_replicas": 5}}}
    )
    worker = components(dgd(spec))["worker"]
    assert worker["scalingAdapter"] == {}
    assert "replicas" not in worker  # the adapter/HPA owns it from the first apply on
    assert components(dgd(spec))["frontend"]["replicas"] == 1


# --- defect 6: workers publish the KV events the KV router needs ----------------------------------------


@pytest.mark.parametrize("provider", ["kube", "gke"])
@pytest.mark.parametrize("topology", ["agg_router", "disagg_router"])
def test_kv_router_graphs_configure_kv_events_as_dynamos_examples_do(topology, provider):
    theirs = {role_of(c, topology): main(c) for c in example(topology)["spec"]["components"]}
    ours = {
        c["type"]: main(c)
        for c in dgd(make(topology, provider, serving={"engine": "vllm"}))["spec"]["components"]
    }
    assert sorted(theirs) == sorted(ours)
    for rl, their in theirs.items():
        our_cfg, their_cfg = (
            flag(words(ours[rl]), "--kv-events-config"),
            flag(words(their), "--kv-events-config"),
        )
        assert (our_cfg and json.loads(our_cfg)) == (their_cfg and json.loads(their_cfg)), rl
    assert flag(words(ours["frontend"]), "--router-mode") == "kv"


@pytest.mark.parametrize("topology", ["agg", "disagg"])
def test_graphs_without_the_kv_router_publish_no_kv_events(topology):
    for c in dgd(make(topology, serving={"engine": "vllm"}))["spec"]["components"]:
        assert "--kv-events-config" not in words(main(c))


@pytest.mark.parametrize("topology", ["agg_router", "disagg_router"])
def test_mocker_workers_behind_the_kv_router_keep_prefix_caching_on(topology):
    comps = {
        c["type"]: words(main(c))
        for c in dgd(make(topology, serving={"engine": "mocker"}))["spec"]["components"]
    }
    publishing = ["worker"] if topology == "agg_router" else ["prefill"]
    for ctype, ws in comps.items():
        assert ("--enable-prefix-caching" in ws) == (ctype in publishing), ctype
        assert "--kv-events-config" not in ws  # a vLLM flag; the mocker would refuse it


def test_engine_args_override_the_kv_events_flags():
    spec = make(
        "agg_router",
        serving={
            "engine": "vllm",
            "workers": {
                "engine_args": [
                    "--kv-events-config",
                    '{"publisher":"zmq","endpoint":"tcp://*:5557","enable_kv_cache_events":true}',
                ]
            },
        },
    )
    ws = words(main(components(dgd(spec))["worker"]))
    assert ws.count("--kv-events-config") == 1 and "5557" in flag(ws, "--kv-events-config")


def test_local_plan_workers_publish_kv_events_on_their_own_endpoints(tmp_path):
    from runtime.render.local_plan import LocalContext, worker_programs
    from runtime.spec import API_VERSION, parse_spec
    from runtime.targets.local.paths import DeploymentPaths

    base = {
        "apiVersion": API_VERSION,
        "name": "kvdemo",
        "target": {"kind": "local"},
        "serving": {"topology": "agg_router", "workers": {"replicas": 2}},
    }
    spec = parse_spec(base)
    paths = DeploymentPaths.for_deployment("kvdemo", state_dir=str(tmp_path))
    for engine in ("vllm", "mocker"):
        ctx = LocalContext(
            paths=paths,
            python="python3",
            host="127.0.0.1",
            frontend_port=8000,
            model_path="/m",
            engine=engine,
            discovery="etcd",
            etcd_port=1,
            nats_port=2,
        )
        progs = worker_programs(spec, ctx, 1, {"worker-r1-0": 9001, "worker-r1-1": 9002})
        if engine == "vllm":
            endpoints = [json.loads(flag(list(p.command), "--kv-events-config"))["endpoint"] for p in progs]
            assert len(set(endpoints)) == 2 and all(e.startswith("ipc://") for e in endpoints)
        else:
            assert all("--enable-prefix-caching" in p.command for p in progs)
    plain = parse_spec({**base, "serving": {"topology": "agg", "workers": {"replicas": 2}}})
    progs = worker_programs(plain, ctx, 1, {"worker-r1-0": 9001, "worker-r1-1": 9002})
    assert not any("--enable-prefix-caching" in p.command for p in progs)


def test_ecs_worker_tasks_publish_kv_events():
    from runtime.render import ecs_task as ecs_render
    from runtime.spec import API_VERSION, parse_spec

    spec = parse_spec(
        {
            "apiVersion": API_VERSION,
            "name": "kvecs",
            "target": {"kind": "ecs", "region": "us-east-1", "cluster_name": "dynamo-gpu"},
            "model": {"id": "Qwen/Qwen3-0.6B", "revision": "c1899de289a04d12100db370d81485cdf75e47ca"},
            "serving": {
                "topology": "disagg_router",
                "engine": "vllm",
                "prefill": {"replicas": 1},
                "decode": {"replicas": 2},
            },
        }
    )
    by_role = {c.role: shlex.split(ecs_render.command(spec, c)) for c in ecs_render.roles(spec)}
    cfg = json.loads(flag(by_role["prefill"], "--kv-events-config"))
    assert cfg["enable_kv_cache_events"] is True and cfg["endpoint"].startswith("ipc://")
    assert "--kv-events-config" not in by_role["decode"] and "--kv-events-config" not in by_role["frontend"]


# --- the rendered graphs against Dynamo's own examples, field by field ----------------------------------

# Where we differ from examples/backends/vllm/deploy/v1beta1 on purpose (each is asserted below):
# - component names: ours are the roles (frontend, worker, prefill, decode) and types are the roles too
#   (type worker/prefill/decode); theirs are Frontend/VllmDecodeWorker/VllmPrefillWorker, all of type
#   worker. The operator keys Services/Deployments on the name and the planner on the type; the role
#   names keep `<graph>-frontend` as the Service name dynadeploy reaches.
# - --model: theirs is the Hub id (each pod downloads); ours is the pinned snapshot on the cache PVC, with
#   --served-model-name the id, so every replica and rollback loads the same weights.
# - the router mode: theirs sets DYN_ROUTER_MODE=kv in the frontend's env; ours passes --router-mode kv
#   (the same setting; dynamo.frontend reads either).
# - workingDir /workspace/examples/backends/vllm: theirs runs their example scripts; we run the module.
# - resources: theirs sets only the GPU limit and ephemeral-storage; ours adds cpu/memory requests.
# - replicas and GPUs per worker: theirs 2 workers of 1 GPU; ours what the spec says.
# - kv-transfer-config kv_role: the v1beta1 disagg_router example says kv_both, the wheel's disagg
#   template (and Dynamo's disagg example) kv_producer; we follow the latter for prefill workers.
# Everything else they set (types' GPU limit, ephemeral-storage request, envFrom of the HF token, the
# engine module, --disaggregation-mode, --kv-events-config) we set the same.


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_rendered_graph_matches_dynamos_example_field_by_field(topology):
    theirs = example(topology)
    spec = make(topology, serving={"engine": "vllm"})
    ours = dgd(spec)
    assert (ours["apiVersion"], ours["kind"]) == (theirs["apiVersion"], theirs["kind"])

    their_by_role = {role_of(c, topology): c for c in theirs["spec"]["components"]}
    our_by_role = {c["type"]: c for c in ours["spec"]["components"]}
    assert sorted(their_by_role) == sorted(our_by_role)
    for rl, their in their_by_role.items():
        our = our_by_role[rl]
        tm, om = main(their), main(our)
        assert om["image"] and om["name"] == tm["name"] == "main"
        tw, ow = words(tm), words(om)
        if rl == "frontend":
            assert ow[:3] == ["python3", "-m", "dynamo.frontend"]
            their_mode = {e["name"]: e.get("value") for e in tm.get("env") or []}.get("DYN_ROUTER_MODE")
            assert flag(ow, "--router-mode") == (their_mode or spec.router_mode())
            continue
        assert ow[:3] == tw[:3] == ["python3", "-m", "dynamo.vllm"]
        assert "--model" in ow and flag(ow, "--served-model-name") == flag(tw, "--model")
        for f in ("--disaggregation-mode", "--kv-events-config"):
            a, b = flag(ow, f), flag(tw, f)
            assert (a and json.loads(a) if f.endswith("config") else a) == (
                b and json.loads(b) if f.endswith("config") else b
            ), (rl, f)
        if "--kv-transfer-config" in tw:
            ours_cfg, theirs_cfg = (
                json.loads(flag(ow, "--kv-transfer-config")),
                json.loads(flag(tw, "--kv-transfer-config")),
            )
            assert ours_cfg["kv_connector"] == theirs_cfg["kv_connector"] == "NixlConnector"
        tl, ol = tm["resources"]["limits"], om["resources"]["limits"]
        assert set(tl) <= set(ol)  # the GPU resource name; the count is the spec's
        assert (
            om["resources"]["requests"]["ephemeral-storage"]
            == tm["resources"]["requests"]["ephemeral-storage"]
        )
        assert [list(e) for e in om["envFrom"]] == [list(e) for e in tm["envFrom"]] == [["secretRef"]]


# --- defect 5: an RWO model cache that pods on different nodes share ------------------------------------


@pytest.mark.parametrize(
    ("kind", "store"), [("gke", "Filestore, class standard-rwx"), ("aks", "Azure Files"), ("eks", "EFS")]
)
def test_an_rwo_cache_over_several_nodes_is_refused_with_the_providers_file_store(kind, store):
    from runtime.errors import SpecError

    with pytest.raises(SpecError) as info:
        make("agg", kind, model={"cache": {"access_mode": "ReadWriteOnce"}})
    text = str(info.value)
    assert "model.cache.access_mode" in text and "Multi-Attach" in text
    assert "ReadWriteMany" in text and store in text


def test_the_shipped_gke_example_shares_its_cache_on_filestore():
    from runtime.spec import load_spec

    spec = load_spec(ROOT / "infra/targets/gke.yaml")
    assert spec.model.cache.access_mode == "ReadWriteMany"
    assert r.storage_class(spec, capabilities.for_spec(spec)) == "standard-rwx"
    from runtime.render.cloud_plan import gke_needs_filestore

    assert gke_needs_filestore(spec)


def test_an_rwo_cache_on_a_single_node_cluster_is_accepted():
    one = [
        {
            "name": "only",
            "instance_type": "g2-standard-24",
            "gpu": {"type": "nvidia-l4", "count": 2},
            "min": 1,
            "desired": 1,
            "max": 1,
        }
    ]
    spec = make("agg", "gke", model={"cache": {"access_mode": "ReadWriteOnce"}}, target={"node_pools": one})
    assert spec.model.cache.access_mode == "ReadWriteOnce"
