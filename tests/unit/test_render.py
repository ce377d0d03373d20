"""runtime.render + runtime.domain.capabilities: spec -> DGD, model cache, security objects, Helm values,
ledger records. Golden files pin the DGDs (UPDATE_GOLDEN=1 rewrites them); the ai-dynamo 1.6.1
wheel's own DGD templates cross-check the fields both set; secrets never reach a rendered object."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shlex
import string
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime import render as r
from runtime.domain import capabilities, naming
from runtime.domain.revisions import Revision
from runtime.errors import NotSupportedError, PermanentError
from runtime.render import templates
from runtime.spec import API_VERSION, parse_spec

GOLDEN = Path(__file__).parent / "golden"
SHA = "c1899de289a04d12100db370d81485cdf75e47ca"
TOPOLOGIES = ("agg", "agg_router", "disagg", "disagg_router")
SERVING = {
    "agg": {"workers": {"replicas": 1, "gpus": 1, "engine_args": ["--enforce-eager"]}},
    "agg_router": {"workers": {"replicas": 2, "gpus": 1}},
    "disagg": {"prefill": {"replicas": 1, "gpus": 1}, "decode": {"replicas": 1, "gpus": 1}},
    "disagg_router": {"prefill": {"replicas": 1, "gpus": 1}, "decode": {"replicas": 2, "gpus": 2}},
}
TARGETS: dict[str, dict[str, Any]] = {
    "kube": {"kind": "kube", "namespace": "demo-ns"},
    "gke": {
        "kind": "gke",
        "project": "my-project",
        "location": "us-central1-a",
        "cluster_name": "demo",
        "namespace": "demo-ns",
        "node_pools": [
            {"name": "system", "instance_type": "n2-standard-4"},
            {
                "name": "gpu",
                "instance_type": "g2-standard-24",
                "gpu": {"type": "nvidia-l4", "count": 2},
                "max": 3,
                "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
            },
        ],
    },
    "eks": {
        "kind": "eks",
        "region": "us-east-1",
        "cluster_name": "demo",
        "node_pools": [{"name": "gpu", "instance_type": "g6e.12xlarge", "gpu": {"count": 4}, "max": 2}],
    },
    "aks": {
        "kind": "aks",
        "subscription_id": "00000000-0000-0000-0000-000000000000",
        "resource_group": "rg",
        "location": "eastus2",
        "cluster_name": "demo",
        "node_pools": [
            {"name": "gpunp", "instance_type": "Standard_NC48ads_A100_v4", "gpu": {"count": 2}, "max": 4}
        ],
    },
}


def merge(base: dict, changes: dict) -> dict:
    """Deep merge; a secret reference (token) replaces the one before it."""
    out = dict(base)
    for key, value in changes.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict) and key != "token"
        out[key] = merge(out[key], value) if nested else value
    return out


def make(topology: str = "agg", kind: str = "kube", /, **changes: Any):
    data = {
        "apiVersion": API_VERSION,
        "name": "demo",
        "target": TARGETS[kind],
        "model": {"id": "Qwen/Qwen3-0.6B", "revision": SHA, "token": {"secret_block": "hf-token"}},
        "serving": {"topology": topology, **SERVING[topology]},
    }
    return parse_spec(merge(data, changes))


def dgd(spec, **kw):
    return r.render_dgd(spec, revision=kw.pop("revision", 3), provider=capabilities.for_spec(spec), **kw)


def components(graph: dict) -> dict[str, dict]:
    return {c["name"]: c for c in graph["spec"]["components"]}


def main(component: dict) -> dict:
    (container,) = [c for c in component["podTemplate"]["spec"]["containers"] if c["name"] == "main"]
    return container


def argv(container: dict) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def module_of(container: dict) -> str:
    words = argv(container)
    if words[:2] == ["/bin/sh", "-c"]:
        words = shlex.split(words[2].rsplit("exec ", 1)[1])
    return words[words.index("-m") + 1]


def env_of(container: dict) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --- golden files ----------------------------------------------------------------------------------


def check_golden(name: str, data: Any) -> None:
    path = GOLDEN / name
    text = (
        yaml.safe_dump_all(data, sort_keys=False)
        if isinstance(data, list)
        else yaml.safe_dump(data, sort_keys=False)
    )
    if os.environ.get("UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if os.environ.get("UPDATE_GOLDEN") != "1":
            pytest.fail(f"golden file {path.name} was missing and has been written; rerun")
    assert text == path.read_text(), f"{name} differs from its golden file; UPDATE_GOLDEN=1 rewrites it"


@pytest.mark.parametrize("provider", ["kube", "gke"])
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_dgd_matches_golden_file(topology, provider):
    check_golden(f"dgd-{topology}-{provider}.yaml", dgd(make(topology, provider)))


def test_kube_objects_match_golden_file():
    spec = make(
        "agg", "kube", serving={"frontend": {"replicas": 2}, "workers": {"autoscaling": {"max_replicas": 3}}}
    )
    caps = capabilities.for_spec(spec)
    objects = r.render_security(spec, caps) + r.render_model_cache(spec, caps)
    check_golden("kube-agg-objects.yaml", objects)
    values = {
        "platform_charts": [c.as_dict() for c in r.platform_charts(spec)],
        "platform_values": r.render_platform_values(spec, caps),
        "gpu_operator_chart": r.gpu_operator_chart(spec).as_dict(),
        "gpu_operator_values": r.render_gpu_operator_values(spec, caps),
    }
    check_golden("kube-agg-values.yaml", values)


# --- cross-check with the ai-dynamo 1.6.1 wheel's own DGD templates --------------------------------


def wheel_template(engine: str, name: str) -> dict:
    spec = importlib.util.find_spec("dynamo")
    assert spec is not None and spec.submodule_search_locations, "the ai-dynamo wheel is not installed"
    root = Path(next(iter(spec.submodule_search_locations)))
    return yaml.safe_load((root / "profiler" / "templates" / "dgd" / engine / f"{name}.yaml").read_text())


@pytest.mark.parametrize("provider", ["kube", "gke"])
@pytest.mark.parametrize(("theirs_name", "topology"), [("agg", "agg"), ("disagg", "disagg")])
def test_dgd_agrees_with_the_wheel_templates_on_the_fields_both_set(theirs_name, topology, provider):
    theirs = wheel_template("vllm", theirs_name)
    spec = make(topology, provider, serving={"engine": "vllm"})
    ours = dgd(spec)
    assert (ours["apiVersion"], ours["kind"]) == (theirs["apiVersion"], theirs["kind"])
    their_by_type = {c["type"]: c for c in theirs["spec"]["components"]}
    our_by_type = {c["type"]: c for c in ours["spec"]["components"]}
    assert sorted(our_by_type) == sorted(their_by_type)
    for ctype, their in their_by_type.items():
        our = our_by_type[ctype]
        assert our["replicas"] == their["replicas"]
        our_main, their_main = main(our), main(their)  # both name the engine container main
        assert module_of(our_main) == module_of(their_main)
        our_words = (
            shlex.split(our_main["args"][0].rsplit("exec ", 1)[1])
            if provider == "gke" and ctype != "frontend"
            else argv(our_main)
        )
        their_words = argv(their_main)
        for flag in ("--disaggregation-mode", "--kv-transfer-config"):
            if flag in their_words:
                assert our_words[our_words.index(flag) + 1] == their_words[their_words.index(flag) + 1], flag
            else:
                assert flag not in our_words
        their_limits = their_main.get("resources", {}).get("limits", {})
        our_limits = our_main.get("resources", {}).get("limits", {})
        assert set(their_limits) <= set(our_limits)
        assert {k: our_limits[k] for k in their_limits} == their_limits
        their_requests = their_main.get("resources", {}).get("requests", {})
        if "ephemeral-storage" in their_requests:
            assert (
                our_main["resources"]["requests"]["ephemeral-storage"] == their_requests["ephemeral-storage"]
            )
        assert (
            [list(e) for e in our_main["envFrom"]]
            == [list(e) for e in their_main["envFrom"]]
            == [["secretRef"]]
        )
        assert our_main["envFrom"][0]["secretRef"]["name"] == naming.hf_token_secret_name(spec)


def test_mocker_agrees_with_the_wheel_mocker_template():
    theirs = wheel_template("mocker", "disagg")
    ours = dgd(make("disagg", serving={"engine": "mocker"}))
    for ctype in ("prefill", "decode"):
        their = main({c["type"]: c for c in theirs["spec"]["components"]}[ctype])
        our = main({c["type"]: c for c in ours["spec"]["components"]}[ctype])
        assert module_of(our) == module_of(their) == "dynamo.mocker"
        their_flags = [a for a in their["args"] if a.startswith("--")]
        assert set(their_flags) <= set(our["args"])
        assert our["args"][our["args"].index("--disaggregation-mode") + 1] == ctype


# --- the DGD -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_component_mounts_the_cache_and_sets_hf_home(topology):
    spec = make(topology)
    graph = dgd(spec)
    assert graph["metadata"]["labels"] == naming.labels("demo", **{naming.REVISION_KEY: "3"})
    assert graph["metadata"]["annotations"] == {
        r.SPEC_HASH_ANNOTATION: naming.spec_hash(spec),
        r.REVISION_ANNOTATION: "3",
    }
    for name, comp in components(graph).items():
        pod = comp["podTemplate"]
        container = main(comp)
        assert pod["metadata"]["labels"][naming.ROLE_KEY] == comp["type"] == name
        assert env_of(container)["HF_HOME"] == r.MODEL_MOUNT
        assert {"name": "model-cache", "mountPath": r.MODEL_MOUNT} in container["volumeMounts"]
        claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]]
        assert claims == [naming.model_cache_pvc_name(spec)]
        assert container["image"] == spec.serving.image
        assert (
            container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 600
        )
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"


def test_workers_load_the_pinned_snapshot_by_path_and_serve_the_served_name():
    spec = make("disagg", model={"served_name": "qwen"})
    graph = components(dgd(spec))
    snapshot = f"/opt/models/hub/models--Qwen--Qwen3-0.6B/snapshots/{SHA}"
    assert r.model_path(spec) == snapshot
    for role in ("prefill", "decode"):
        args = main(graph[role])["args"]
        assert args[:4] == ["--model", snapshot, "--served-model-name", "qwen"]
        assert args[args.index("--disaggregation-mode") + 1] == role
        assert main(graph[role])["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert "--kv-transfer-config" in main(graph["prefill"])["args"]
    assert "--kv-transfer-config" not in main(graph["decode"])["args"]
    assert main(graph["frontend"])["args"] == ["--router-mode", "round-robin"]
    assert "limits" not in main(graph["frontend"])["resources"]


def test_engine_args_win_over_topology_defaults_and_keep_their_order():
    mine = '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
    spec = make(
        "disagg", serving={"prefill": {"engine_args": ["--kv-transfer-config", mine, "--enforce-eager"]}}
    )
    args = main(components(dgd(spec))["prefill"])["args"]
    assert args.count("--kv-transfer-config") == 1
    assert args[-3:] == ["--kv-transfer-config", mine, "--enforce-eager"]


@pytest.mark.parametrize("topology", ["agg_router", "disagg_router"])
def test_router_topologies_run_the_kv_router(topology):
    assert main(components(dgd(make(topology)))["frontend"])["args"] == ["--router-mode", "kv"]


def test_random_router_mode_reaches_the_frontend():
    spec = make("agg", serving={"router_mode": "random"})
    assert main(components(dgd(spec))["frontend"])["args"] == ["--router-mode", "random"]


def test_mocker_engine_and_builtin_model():
    spec = make("agg", model={"id": "dynadeploy/tiny-mock", "revision": None, "token": None})
    assert r.resolve_engine(spec) == "mocker"
    worker = main(components(dgd(spec))["worker"])
    assert worker["command"] == ["python3", "-m", "dynamo.mocker"]
    assert worker["args"][:6] == [
        "--model-path", "/opt/models/dynadeploy/tiny-mock", "--model-name", "dynadeploy/tiny-mock",
        "--speedup-ratio", "10",
    ]  # fmt: skip
    assert "limits" not in worker["resources"]  # the mocker needs no GPU
    assert "envFrom" not in worker  # no token, no secret reference
    assert r.total_gpus(spec) == 0
    assert r.total_gpus(make("disagg_router")) == 1 * 1 + 2 * 2


def test_explicit_engine_overrides_auto():
    spec = make("agg")
    assert main(components(dgd(spec, engine="mocker"))["worker"])["command"][-1] == "dynamo.mocker"


def test_name_image_and_frontend_replicas_are_overridable():
    spec = make("agg", serving={"frontend": {"replicas": 3}})
    graph = dgd(spec, name="demo-canary", image="nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.2")
    assert graph["metadata"]["name"] == "demo-canary"
    assert graph["metadata"]["labels"][naming.DEPLOYMENT_KEY] == "demo"
    comps = components(graph)
    assert comps["frontend"]["replicas"] == 3
    assert {main(c)["image"] for c in comps.values()} == {"nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.6.2"}
    assert "runtimeVersionOverride" not in comps["worker"]


def test_non_semver_image_gets_a_runtime_version_override():
    image = "nvcr.io/nvidia/ai-dynamo/vllm-runtime@sha256:" + "a" * 64
    comps = components(dgd(make("agg"), image=image))
    assert {c["runtimeVersionOverride"] for c in comps.values()} == {"1.6.1"}


def test_spec_env_literals_and_secret_references():
    spec = make(
        "agg",
        serving={
            "env": {"DYN_LOG": "debug"},
            "workers": {"env": {"API_KEY": {"secret_block": "api"}, "DYN_LOG": "info"}},
        },
    )
    comps = components(dgd(spec))
    worker, frontend = env_of(main(comps["worker"])), env_of(main(comps["frontend"]))
    assert worker["DYN_LOG"] == "info" and frontend["DYN_LOG"] == "debug"
    assert worker["API_KEY"] == {"secretKeyRef": {"name": r.env_secret_name(spec), "key": "API_KEY"}}
    assert "API_KEY" not in frontend
    assert set(r.env_secret_refs(spec)) == {"API_KEY"}
    names = [e["name"] for e in main(comps["worker"])["env"]]
    assert len(names) == len(set(names))


def test_gke_wraps_gpu_workers_in_a_shell_that_exports_the_driver_paths():
    spec = make("disagg", "gke")
    comps = components(dgd(spec))
    for role in ("prefill", "decode"):
        container = main(comps[role])
        assert container["command"] == ["/bin/sh", "-c"]
        (script,) = container["args"]
        assert script.startswith("export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:$LD_LIBRARY_PATH; ")
        assert "export PATH=$PATH:/usr/local/nvidia/bin:/usr/local/nvidia/lib64" in script
        words = shlex.split(script.rsplit("exec ", 1)[1])  # the JSON argument survives the quoting
        assert words[:3] == ["python3", "-m", "dynamo.vllm"]
        if role == "prefill":
            config = json.loads(words[words.index("--kv-transfer-config") + 1])
            assert config == {"kv_connector": "NixlConnector", "kv_role": "kv_producer"}
        tolerations = comps[role]["podTemplate"]["spec"]["tolerations"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert main(comps["frontend"])["command"] == ["python3", "-m", "dynamo.frontend"]
    assert "tolerations" not in comps["frontend"]["podTemplate"]["spec"]


def test_kube_workers_run_the_engine_directly():
    container = main(components(dgd(make("agg")))["worker"])
    assert container["command"] == ["python3", "-m", "dynamo.vllm"]


def test_eks_efa_adds_the_adapter_resource_and_env_only_when_enabled():
    with_efa = components(dgd(make("agg", "eks", target={"efa": True})))["worker"]
    container = main(with_efa)
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1", "vpc.amazonaws.com/efa": "1"}
    assert container["resources"]["requests"]["vpc.amazonaws.com/efa"] == "1"
    assert env_of(container)["FI_PROVIDER"] == "efa"
    plain = main(components(dgd(make("agg", "eks")))["worker"])
    assert "vpc.amazonaws.com/efa" not in plain["resources"]["limits"]
    assert "FI_PROVIDER" not in env_of(plain)


def test_spot_gpu_pools_are_tolerated():
    target = {
        "node_pools": [
            {
                "name": "gpunp",
                "instance_type": "Standard_NC24ads_A100_v4",
                "gpu": {"count": 1},
                "max": 2,
                "spot": True,
            }
        ]
    }
    tolerations = components(dgd(make("agg", "aks", target=target)))["worker"]["podTemplate"]["spec"][
        "tolerations"
    ]
    assert {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot",
            "effect": "NoSchedule"} in tolerations  # fmt: skip


def test_autoscaling_switches_the_scaling_adapter_on_and_clamps_replicas():
    spec = make(
        "disagg", serving={"decode": {"replicas": 1, "autoscaling": {"min_replicas": 2, "max_replicas": 6}}}
    )
    comps = components(dgd(spec))
    # issue 10: the CRD's scalingAdapter is an empty object (`enabled` is pruned), and the adapter owns
    # replicas from the first apply (the HPA's minReplicas brings it to 2), so none is rendered.
    assert comps["decode"]["scalingAdapter"] == {}
    assert "replicas" not in comps["decode"]
    assert "scalingAdapter" not in comps["prefill"] and "scalingAdapter" not in comps["frontend"]
    hpas = [
        o
        for o in r.render_security(spec, capabilities.for_spec(spec))
        if o["kind"] == "HorizontalPodAutoscaler"
    ]
    (hpa,) = hpas
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "nvidia.com/v1alpha1",
        "kind": "DynamoGraphDeploymentScalingAdapter",
        "name": "demo-decode",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    canary = r.render_security(spec, capabilities.for_spec(spec), name="demo-canary")
    assert [
        o["spec"]["scaleTargetRef"]["name"] for o in canary if o["kind"] == "HorizontalPodAutoscaler"
    ] == ["demo-canary-decode"]


def test_only_kubernetes_targets_and_dynamo_1x_render_graphs():
    local = parse_spec({"apiVersion": API_VERSION, "name": "demo"})
    with pytest.raises(NotSupportedError):
        capabilities.for_spec(local)
    with pytest.raises(NotSupportedError):
        r.render_dgd(local, revision=1, provider=capabilities.capabilities("kube"))
    old = make("agg")
    old = old.model_copy(update={"platform": old.platform.model_copy(update={"dynamo_version": "0.9.1"})})
    with pytest.raises(NotSupportedError, match="v1alpha1"):
        dgd(old)


# --- model cache ---------------------------------------------------------------------------------------


def test_model_cache_pvc_and_download_job():
    spec = make("agg", model={"cache": {"size": "50Gi"}})
    pvc, job = r.render_model_cache(spec, capabilities.for_spec(spec))
    assert pvc["kind"] == "PersistentVolumeClaim" and pvc["metadata"]["name"] == naming.model_cache_pvc_name(
        spec
    )
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert "storageClassName" not in pvc["spec"]  # kube knows no class: the cluster default
    assert job["metadata"]["name"] == naming.model_download_job_name(spec)
    assert job["spec"]["backoffLimit"] == 3
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "python:3.11-slim"
    assert "pip install" in container["args"][0] and "huggingface_hub" in container["args"][0]
    env = env_of(container)
    assert env["HF_HOME"] == "/model-store"
    assert (env["MODEL_ID"], env["MODEL_REVISION"]) == ("Qwen/Qwen3-0.6B", SHA)
    assert env["MARKER"] == r.cache_marker(spec) == f"/model-store/.dynadeploy/Qwen--Qwen3-0.6B@{SHA}.done"
    script = container["args"][0]
    assert script.index("snapshot_download(") < script.index("tmp.replace(marker)")  # the marker comes last
    assert container["resources"]["requests"]["memory"] == "4Gi"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["envFrom"] == [{"secretRef": {"name": r.render_token_secret_ref(spec)}}]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pod["serviceAccountName"] == r.job_service_account(spec)
    assert pod["automountServiceAccountToken"] is False


def test_download_job_without_a_token_has_no_secret_reference():
    spec = make("agg", model={"token": None})
    _, job = r.render_model_cache(spec, capabilities.for_spec(spec))
    assert "envFrom" not in job["spec"]["template"]["spec"]["containers"][0]
    assert r.render_token_secret_ref(spec) is None


def test_builtin_model_gets_the_pvc_only():
    spec = make("agg", model={"id": "dynadeploy/tiny-mock", "revision": None, "token": None})
    (pvc,) = r.render_model_cache(spec, capabilities.for_spec(spec))
    assert pvc["kind"] == "PersistentVolumeClaim"
    assert r.cache_marker(spec) is None


@pytest.mark.parametrize(
    ("target", "changes", "expected"),
    [
        ("gke", {"access_mode": "ReadWriteMany"}, "standard-rwx"),
        ("gke", {"access_mode": "ReadWriteOnce"}, "standard-rwo"),
        ("eks", {}, "efs-sc"),
        ("aks", {"access_mode": "ReadWriteOnce"}, "managed-csi"),
        ("aks", {"storage_class": "my-lustre"}, "my-lustre"),
        ("kube", {"storage_class": "fast"}, "fast"),
    ],
)
def test_storage_class_from_the_spec_else_the_provider(target, changes, expected):
    extra = {}
    if changes.get("access_mode") == "ReadWriteOnce":  # an RWO cache is only accepted on a one-node cluster
        pool = {**TARGETS[target]["node_pools"][-1], "min": 1, "desired": 1, "max": 1}  # (issue 10, defect 5)
        extra = {"target": {"node_pools": [pool]}}
    spec = make("agg", target, model={"cache": changes}, **extra)
    (pvc, _) = r.render_model_cache(spec, capabilities.for_spec(spec))
    assert pvc["spec"]["storageClassName"] == expected


@pytest.mark.parametrize("mode", ["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"])
@pytest.mark.parametrize("kind", ["gke", "aks"])
def test_gke_and_aks_providers_report_the_class_the_cache_pvc_gets(kind, mode):
    """The provider's storage_class (what provision reports) and the rendered PVC make one choice; they
    once disagreed for ReadOnlyMany (the providers took the RWX class, the PVC the default class)."""
    from runtime.providers.aks import AksProvider
    from runtime.providers.gke import GkeProvider

    extra = {}
    if mode == "ReadWriteOnce":  # an RWO cache is only accepted on a one-node cluster
        pool = {**TARGETS[kind]["node_pools"][-1], "min": 1, "desired": 1, "max": 1}
        extra = {"target": {"node_pools": [pool]}}
    spec = make("agg", kind, model={"cache": {"access_mode": mode}}, **extra)
    (pvc, _) = r.render_model_cache(spec, capabilities.for_spec(spec))
    provider = GkeProvider() if kind == "gke" else AksProvider()
    chosen = provider.storage_class(spec, None)
    assert chosen.name == pvc["spec"]["storageClassName"] == capabilities.cache_storage_class(spec)
    assert chosen.access_mode == mode
    caps = capabilities.capabilities(kind).storage
    assert chosen.name == (caps.rwx_class if mode == "ReadWriteMany" else caps.default_class)


def test_provider_hints_and_eks_switches_shape_the_capabilities():
    hinted = make(
        "agg", "kube", target={"provider_hints": {"gpu_driver": "preinstalled", "storage_class": "nfs"}}
    )
    caps = capabilities.for_spec(hinted)
    assert caps.gpu_driver == "preinstalled" and caps.storage.default_class == "nfs"
    no_efs = capabilities.for_spec(make("agg", "eks", target={"efs": {"enabled": False}}))
    assert no_efs.storage_class_for("ReadWriteMany") == "auto-ebs-sc"
    assert capabilities.for_spec(make("agg", "eks")).efa is None
    assert capabilities.for_spec(make("agg", "eks", target={"efa": True})).efa is not None
    assert set(capabilities.load()) == {"kube", "eks", "gke", "aks"}
    with pytest.raises(NotSupportedError, match="ecs"):
        capabilities.capabilities("ecs")


# --- security --------------------------------------------------------------------------------------------


def test_security_objects_are_namespaced_labelled_and_least_privilege():
    spec = make("agg")
    objects = r.render_security(spec, capabilities.for_spec(spec))
    kinds = [o["kind"] for o in objects]
    assert kinds == ["Namespace", "ServiceAccount", "Role", "RoleBinding", "NetworkPolicy", "NetworkPolicy"]
    ns = objects[0]
    assert ns["metadata"]["name"] == "demo-ns"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    for obj in objects:
        assert obj["metadata"]["labels"][naming.MANAGED_BY_KEY] == naming.MANAGED_BY_VALUE
        assert obj["metadata"]["labels"][naming.DEPLOYMENT_KEY] == "demo"
        assert obj["kind"] not in ("ClusterRole", "ClusterRoleBinding")
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "demo-ns"
    role = objects[2]
    assert role["rules"] == []
    assert objects[1]["automountServiceAccountToken"] is False
    assert objects[3]["roleRef"]["name"] == role["metadata"]["name"]


def test_pdb_only_with_more_than_one_frontend():
    one = make("agg")
    assert "PodDisruptionBudget" not in [
        o["kind"] for o in r.render_security(one, capabilities.for_spec(one))
    ]
    two = make("agg", serving={"frontend": {"replicas": 2}})
    (pdb,) = [
        o for o in r.render_security(two, capabilities.for_spec(two)) if o["kind"] == "PodDisruptionBudget"
    ]
    assert pdb["spec"]["minAvailable"] == 1
    frontend_labels = components(dgd(two))["frontend"]["podTemplate"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= frontend_labels.items()


def _admits(policies: list[dict], pod_labels: dict, source: dict | None, port: int) -> bool:
    """Whether NetworkPolicies admit TCP ``port`` to a pod; ``source`` is None for outside the namespace."""

    def selects(selector: dict, labels: dict) -> bool:
        return selector.get("matchLabels", {}).items() <= labels.items() and not selector.get(
            "matchExpressions"
        )

    applying = [p for p in policies if selects(p["spec"]["podSelector"], pod_labels)]
    if not applying:
        return True
    for policy in applying:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port and p.get("protocol", "TCP") == "TCP" for p in ports):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                assert set(peer) == {"podSelector"}, "only same-namespace pod selectors are expected"
                if source is not None and selects(peer["podSelector"], source):
                    return True
    return False


def test_network_policy_admits_only_the_frontend_port_from_outside_the_graph():
    spec = make("disagg")
    policies = [
        o for o in r.render_security(spec, capabilities.for_spec(spec)) if o["kind"] == "NetworkPolicy"
    ]
    pods = {name: c["podTemplate"]["metadata"]["labels"] for name, c in components(dgd(spec)).items()}
    other_graph = naming.labels("someone-else", **{naming.ROLE_KEY: "frontend"})
    for name, labels in pods.items():
        for port in (8000, 9090, 5555, 19090):
            for source in (None, other_graph):
                expected = name == "frontend" and port == r.FRONTEND_PORT
                assert _admits(policies, labels, source, port) is expected, (name, port, source)
            assert _admits(policies, labels, pods["decode"], port)  # inside the graph: anything
    # every rule open to the world names exactly the frontend port
    for policy in policies:
        for rule in policy["spec"]["ingress"]:
            if not rule.get("from"):
                assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
                assert policy["spec"]["podSelector"]["matchLabels"][naming.ROLE_KEY] == "frontend"


TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{20,}")


def _all_rendered(spec) -> list[Any]:
    caps = capabilities.for_spec(spec)
    out: list[Any] = [dgd(spec), *r.render_model_cache(spec, caps), *r.render_security(spec, caps)]
    out += [r.render_platform_values(spec, caps), r.render_gpu_operator_values(spec, caps)]
    return out


def _walk_env(node: Any):
    if isinstance(node, dict):
        if isinstance(node.get("env"), list):
            yield from node["env"]
        for value in node.values():
            yield from _walk_env(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_env(item)


@pytest.mark.parametrize("seed", range(25))
def test_no_secret_value_reaches_any_rendered_object(seed, monkeypatch):
    rng = random.Random(seed)
    token = "hf_" + "".join(rng.choices(string.ascii_letters + string.digits, k=34))
    api_key = "sk-" + "".join(rng.choices(string.ascii_letters, k=40))
    # Values the references point at exist in this process; renderers must never look them up.
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setenv("MY_API_KEY", api_key)
    topology = rng.choice(TOPOLOGIES)
    target = rng.choice(list(TARGETS))
    ref = rng.choice([{"secret_block": "hf-token"}, {"env": "HF_TOKEN"}])
    env = {"API_KEY": rng.choice([{"env": "MY_API_KEY"}, {"secret_block": "api-key"}]), "DYN_LOG": "debug"}
    role = "workers" if topology.startswith("agg") else rng.choice(["prefill", "decode"])
    spec = make(
        topology, target, model={"token": ref}, serving={"env": dict(env), role: {"env": {"HF_TOKEN": ref}}}
    )
    rendered = _all_rendered(spec)
    text = yaml.safe_dump_all(rendered)
    assert token not in text and api_key not in text and not TOKEN_RE.search(text)
    for obj in rendered:
        assert obj.get("kind") != "Secret"
    for entry in _walk_env(rendered):
        if any(word in entry["name"] for word in ("TOKEN", "KEY", "SECRET", "PASSWORD")):
            assert "value" not in entry, entry
            assert set(entry["valueFrom"]) == {"secretKeyRef"}
    for obj in rendered:
        for container in _containers(obj):
            refs = [e["secretRef"]["name"] for e in container.get("envFrom", [])]
            assert refs in ([], [naming.hf_token_secret_name(spec)])


def _containers(obj: Any):
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                yield from value
            else:
                yield from _containers(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _containers(item)


# --- platform charts and values ------------------------------------------------------------------------


def with_platform(spec, **changes):
    return spec.model_copy(update={"platform": spec.platform.model_copy(update=changes)})


def test_platform_1x_defaults_cluster_mode():
    spec = make("agg")
    values = r.render_platform_values(spec, capabilities.for_spec(spec))
    assert values["global"]["nats"] == {"install": False}
    assert values["global"]["etcd"] == {"install": False}
    assert values["dynamo-operator"]["upgradeCRD"] is True
    assert values["dynamo-operator"]["namespaceRestriction"] == {"enabled": False}
    assert values["dynamo-operator"]["discoveryBackend"] == "kubernetes"
    assert "etcd" not in values and "kai-scheduler" not in values
    (chart,) = r.platform_charts(spec)
    assert chart.url == "https://helm.ngc.nvidia.com/nvidia/ai-dynamo/charts/dynamo-platform-1.6.1.tgz"
    assert (chart.release, chart.namespace) == ("dynamo-platform", "dynamo-system")


def test_platform_1x_etcd_gets_the_legacy_image():
    spec = make("agg", platform={"etcd": True, "nats": True, "discovery_backend": "etcd"})
    values = r.render_platform_values(spec, capabilities.for_spec(spec))
    assert values["global"]["etcd"]["install"] is True and values["global"]["nats"]["install"] is True
    assert values["etcd"]["image"]["repository"] == "bitnamilegacy/etcd"
    assert values["etcd"]["global"]["security"]["allowInsecureImages"] is True
    assert values["dynamo-operator"]["discoveryBackend"] == "etcd"


def test_platform_1x_namespace_mode():
    spec = make("agg", platform={"operator_mode": "namespace"})
    values = r.render_platform_values(spec, capabilities.for_spec(spec))
    assert values["dynamo-operator"]["namespaceRestriction"] == {
        "enabled": True,
        "targetNamespace": "demo-ns",
    }
    assert values["dynamo-operator"]["upgradeCRD"] is False
    (chart,) = r.platform_charts(spec)
    assert chart.namespace == "demo-ns"


def test_platform_grove_and_kai():
    spec = make("agg", platform={"grove": True, "kai_scheduler": True})
    values = r.render_platform_values(spec, capabilities.for_spec(spec))
    assert values["global"]["grove"] == {"install": True, "enabled": True}
    assert values["global"]["kai-scheduler"] == {"install": True, "enabled": True}
    assert values["kai-scheduler"]["scheduler"]["args"]["default-staleness-grace-period"] == "-1s"
    older = with_platform(spec, dynamo_version="1.4.0")
    assert "kai-scheduler" not in r.render_platform_values(older, capabilities.for_spec(older))


@pytest.mark.parametrize("mode", ["cluster", "namespace"])
def test_platform_0x_two_charts_and_the_old_values(mode):
    spec = with_platform(make("agg"), dynamo_version="0.9.1", operator_mode=mode)
    crds, platform = r.platform_charts(spec)
    assert (crds.name, crds.release, crds.namespace) == ("dynamo-crds", "dynamo-crds", "default")
    assert crds.url == "https://helm.ngc.nvidia.com/nvidia/ai-dynamo/charts/dynamo-crds-0.9.1.tgz"
    assert platform.url.endswith("/dynamo-platform-0.9.1.tgz")
    values = r.render_platform_values(spec, capabilities.for_spec(spec))
    assert "global" not in values
    assert values["etcd"]["enabled"] is True and values["nats"]["enabled"] is True
    assert values["etcd"]["image"]["repository"] == "bitnamilegacy/etcd"
    restriction = values["dynamo-operator"]["namespaceRestriction"]
    assert restriction["enabled"] is (mode == "namespace")
    assert ("targetNamespace" in restriction) is (mode == "namespace")
    assert r.render_crds_values(spec) == {}


@pytest.mark.parametrize(
    ("target", "policy", "driver"),
    [
        ("kube", "auto", True),  # kube's provider_hints default: install
        ("gke", "auto", False),
        ("eks", "auto", False),
        ("aks", "auto", True),
        ("aks", "preinstalled", False),
        ("gke", "install", True),
    ],
)
def test_gpu_operator_driver_policy(target, policy, driver):
    spec = make("agg", target, platform={"gpu_operator": {"driver": policy}})
    values = r.render_gpu_operator_values(spec, capabilities.for_spec(spec))
    assert values["driver"]["enabled"] is driver
    assert values["toolkit"]["enabled"] is True
    if target == "gke":
        assert values["toolkit"]["installDir"] == "/home/kubernetes/bin/nvidia"


def test_kube_hint_preinstalled_driver():
    spec = make("agg", "kube", target={"provider_hints": {"gpu_driver": "preinstalled"}})
    assert r.render_gpu_operator_values(spec, capabilities.for_spec(spec))["driver"]["enabled"] is False


def test_gpu_operator_chart_is_pinned():
    chart = r.gpu_operator_chart(make("agg", platform={"gpu_operator": {"version": "v25.3.4"}}))
    assert (chart.name, chart.version, chart.release, chart.namespace) == (
        "gpu-operator", "v25.3.4", "gpu-operator", "gpu-operator",
    )  # fmt: skip
    assert chart.repo == "https://helm.ngc.nvidia.com/nvidia"
    assert chart.url == "https://helm.ngc.nvidia.com/nvidia/charts/gpu-operator-v25.3.4.tgz"


# --- ledger records ---------------------------------------------------------------------------------------


def revision(spec, number=2, rendered=None) -> Revision:
    return Revision(
        number=number, spec_hash=naming.spec_hash(spec), spec=spec.canonical_dict(), created_at="2025-01-01T00:00:00+00:00",
        model={"id": spec.model.id, "revision": spec.model.revision}, versions={"dynamo": "1.6.1"},
        rendered=rendered if rendered is not None else [dgd(spec, revision=number)], status="serving",
    )  # fmt: skip


def test_revision_record_round_trips():
    spec = make("disagg")
    rev = revision(spec)
    cm = r.render_revision_record(rev, "demo-ns")
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == naming.ledger_name(spec, 2) == r.record_name(rev)
    assert cm["metadata"]["namespace"] == "demo-ns"
    assert cm["metadata"]["labels"] == naming.labels("demo", **{naming.REVISION_KEY: "2"})
    assert "binaryData" not in cm
    assert json.loads(cm["data"]["revision.json"])["number"] == 2
    assert r.parse_revision_record(cm) == rev


def test_large_revision_records_compress_the_manifests():
    spec = make("agg")
    big = [dgd(spec, revision=n, name=f"demo-{n}") for n in range(120)]
    rev = revision(spec, rendered=big)
    assert len(json.dumps(rev.as_dict())) > 256 * 1024
    cm = r.render_revision_record(rev, "demo-ns")
    assert set(cm["binaryData"]) == {"rendered.json.gz"}
    size = sum(len(v) for part in ("data", "binaryData") for v in cm[part].values())
    assert size < 1024 * 1024
    back = yaml.safe_load(yaml.safe_dump(cm))  # as stored and read back
    assert r.parse_revision_record(back) == rev


def test_revision_records_too_large_even_compressed_are_refused():
    spec = make("agg")
    rng = random.Random(0)
    noise = ["".join(rng.choices(string.ascii_letters + string.digits, k=4096)) for _ in range(400)]
    with pytest.raises(PermanentError, match="1 MiB"):
        r.render_revision_record(revision(spec, rendered=noise), "demo-ns")


def test_parse_refuses_other_configmaps():
    with pytest.raises(PermanentError):
        r.parse_revision_record({"metadata": {"name": "x"}, "data": {"other": "1"}})


# --- the template language --------------------------------------------------------------------------------


def test_fill_types_optional_keys_and_unknown_placeholders():
    doc = {"a": "${n}", "b": "x-${n}-y", "c": "${none}", "d": ["${none}", "${lst}"], "e": None}
    assert templates.fill(doc, {"n": 3, "none": None, "lst": [1]}) == {
        "a": 3,
        "b": "x-3-y",
        "d": [[1]],
        "e": None,
    }
    with pytest.raises(NotSupportedError, match=r"\$\{typo\}"):
        templates.fill({"a": "${typo}"}, {"n": 1}, "infra/x.yaml")


def test_merge_named_lists_by_name_and_replaces_others():
    base = {"containers": [{"name": "main", "env": [{"name": "A", "value": "1"}], "args": ["x"]}], "k": 1}
    overlay = {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}], "args": ["y"]}]}
    merged = templates.merge(base, overlay)
    assert merged == {
        "containers": [
            {"name": "main", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "args": ["y"]}
        ],
        "k": 1,
    }
    assert base["containers"][0]["args"] == ["x"]  # inputs untouched


def test_templates_render_without_unknown_placeholders_for_every_target():
    for target in TARGETS:
        for topology in TOPOLOGIES:
            text = yaml.safe_dump_all(_all_rendered(make(topology, target)))
            assert "${" not in text


_TYPES = {
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "Job": "V1Job",
    "Namespace": "V1Namespace",
    "ServiceAccount": "V1ServiceAccount",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
    "NetworkPolicy": "V1NetworkPolicy",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
    "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
    "ConfigMap": "V1ConfigMap",
}


@pytest.mark.parametrize("kind", list(TARGETS))
def test_rendered_objects_are_valid_kubernetes_objects(kind):
    """Typed round trip through the kubernetes client's models: a misspelt field would be dropped."""
    from kubernetes.client import ApiClient

    api = ApiClient()

    def round_trip(obj: dict, typ: str) -> Any:
        return api.sanitize_for_serialization(api._ApiClient__deserialize(obj, typ))

    for topology in TOPOLOGIES:
        spec = make(
            topology,
            kind,
            serving={"frontend": {"replicas": 2}, "env": {"API_KEY": {"secret_block": "k"}}},
            **({"target": {"efa": True}} if kind == "eks" else {}),
        )
        caps = capabilities.for_spec(spec)
        role = "workers" if topology.startswith("agg") else "decode"
        spec = spec.with_changes({"serving": {role: {"autoscaling": {"max_replicas": 4}}}})
        objects = r.render_model_cache(spec, caps) + r.render_security(spec, caps)
        objects.append(r.render_revision_record(revision(spec), "demo-ns"))
        assert {o["kind"] for o in objects} >= {"PodDisruptionBudget", "HorizontalPodAutoscaler"}
        for obj in objects:
            assert round_trip(obj, _TYPES[obj["kind"]]) == obj, obj["kind"]
        for component in dgd(spec)["spec"]["components"]:
            assert round_trip(component["podTemplate"], "V1PodTemplateSpec") == component["podTemplate"]
