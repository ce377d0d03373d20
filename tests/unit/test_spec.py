"""runtime.spec: the example specs load, round-trip and default as documented, and every bad spec in
the corpus below fails with the exact field path, a problem that names what is wrong and a fix that
says what to write. Pure and fast: no I/O beyond small files under tmp_path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from runtime.errors import SpecError, SpecIssue
from runtime.spec import (
    API_VERSION,
    BUILTIN_MODEL,
    DEFAULT_IMAGE,
    Component,
    DeploymentSpec,
    SecretRef,
    load_spec,
    parse_quantity,
    parse_spec,
    reference,
)
from runtime.spec.base import StrictModel

TARGETS = Path(__file__).resolve().parents[2] / "infra" / "targets"
EXAMPLES = sorted(TARGETS.glob("*.yaml"))
SHA = "c1899de289a04d12100db370d81485cdf75e47ca"
SECRET = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"  # looks like a real token; must never be echoed
DROP = object()  # in a patch: delete this key

BASE: dict[str, Any] = {"apiVersion": API_VERSION, "name": "demo"}
HF = {"model": {"id": "Qwen/Qwen3-0.6B", "revision": SHA}}
CPU_POOL = {"name": "system", "instance_type": "m5.xlarge"}
GPU_POOL = {"name": "gpu", "instance_type": "g6e.2xlarge", "gpu": {"type": "nvidia-l40s", "count": 1}}
EKS = {
    **HF,
    "target": {
        "kind": "eks",
        "region": "us-east-1",
        "cluster_name": "demo",
        "node_pools": [CPU_POOL, GPU_POOL],
    },
}
GKE = {
    **HF,
    "target": {
        "kind": "gke",
        "project": "my-project",
        "location": "us-central1-a",
        "cluster_name": "demo",
        "node_pools": [
            {"name": "gpu", "instance_type": "g2-standard-24", "gpu": {"type": "nvidia-l4", "count": 2}}
        ],
    },
}
AKS = {
    **HF,
    "target": {
        "kind": "aks",
        "subscription_id": "00000000-0000-0000-0000-000000000000",
        "resource_group": "rg",
        "location": "eastus2",
        "cluster_name": "demo",
        "node_pools": [{"name": "system", "instance_type": "Standard_D4s_v5"}, {**GPU_POOL, "name": "gpunp"}],
    },
}
KUBE = {**HF, "target": {"kind": "kube"}}
ECS = {**HF, "target": {"kind": "ecs", "region": "us-east-1", "cluster_name": "dynamo-gpu"}}


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is DROP:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def spec(*patches: dict[str, Any]) -> dict[str, Any]:
    data = BASE
    for patch in patches:
        data = merge(data, patch)
    return data


def issues_of(data: Any) -> list[SpecIssue]:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, source="test.yaml")
    assert caught.value.source == "test.yaml"
    return caught.value.issues


def the_issue(issues: list[SpecIssue], path: str) -> SpecIssue:
    matching = [i for i in issues if i.path == path]
    assert matching, f"no issue at {path!r}; got: {[str(i) for i in issues]}"
    return matching[0]


# --- the examples --------------------------------------------------------------------------------------


def test_every_target_kind_has_an_example() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"local", "local-disagg", "local-etcd", "kube", "eks", "gke", "aks", "ecs"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_loads_and_round_trips(path: Path) -> None:
    loaded = load_spec(path)
    assert loaded.target.kind == path.stem.split("-")[0]
    again = parse_spec(yaml.safe_load(loaded.to_yaml()))
    assert again == loaded
    assert again.canonical_dict() == loaded.canonical_dict()
    # The canonical dict, and a plain model_dump (what a ledger might store), load back the same.
    assert parse_spec(loaded.canonical_dict()) == loaded
    assert parse_spec(loaded.model_dump(mode="json")) == loaded


def test_local_example_is_the_simple_default() -> None:
    local = load_spec(TARGETS / "local.yaml")
    assert local.target.kind == "local" and local.target.discovery == "file"
    assert local.serving.topology == "agg" and local.serving.engine == "auto"
    assert [c.role for c in local.components()] == ["frontend", "worker"]
    assert local.components()[1].replicas == 1
    assert local.model.id == BUILTIN_MODEL
    # auto is the mocker here, with or without a GPU: the built-in model has no weights.
    assert local.engine(gpus_available=False) == "mocker"
    assert local.engine(gpus_available=True) == "mocker"


def test_minimal_spec_gets_documented_defaults() -> None:
    s = parse_spec(BASE)
    assert s.target.kind == "local" and s.target.host == "127.0.0.1" and s.target.frontend_port is None
    assert s.target.gpus == "auto" and s.target.discovery == "file" and s.target.state_dir is None
    assert s.platform.dynamo_version == "1.6.1" and s.platform.chart() == "1.6.1"
    assert s.platform.operator_mode == "cluster" and s.platform.discovery_backend == "kubernetes"
    assert s.platform.gpu_operator.version == "v25.10.1" and s.platform.gpu_operator.driver == "auto"
    assert s.model.id == BUILTIN_MODEL and s.model.served() == BUILTIN_MODEL
    assert s.model.cache.size == "20Gi" and s.model.cache.access_mode == "ReadWriteMany"
    assert s.serving.topology == "agg" and s.serving.engine == "auto" and s.serving.image == DEFAULT_IMAGE
    assert s.serving.workers is not None and s.serving.workers.replicas == 1 and s.serving.workers.gpus == 1
    assert s.serving.prefill is None and s.serving.decode is None
    assert s.router_mode() == "round-robin" and s.serving.mocker.speedup_ratio == 10.0
    assert (s.smoke.requests, s.smoke.concurrency, s.smoke.max_tokens, s.smoke.timeout_s) == (40, 8, 32, 60)
    assert s.smoke.sla.min_goodput_ratio == 0.95 and s.smoke.sla.max_error_rate == 0.0
    assert s.canary.steps == [10, 50, 100] and s.canary.max_ttft_regression == 0.2
    assert s.teardown.keep_model_cache and not s.teardown.on_failure and not s.teardown.keep_namespace
    assert s.namespace() is None


def test_effective_helpers() -> None:
    s = parse_spec(
        spec(
            KUBE,
            {
                "model": {"served_name": "qwen"},
                "serving": {"topology": "agg_router", "workers": {"replicas": 2}},
            },
        )
    )
    assert s.router_mode() == "kv" and s.model.served() == "qwen" and s.namespace() == "demo"
    assert parse_spec(spec(KUBE, {"target": {"namespace": "team-a"}})).namespace() == "team-a"
    assert s.engine(gpus_available=True) == "vllm" and s.engine(gpus_available=False) == "mocker"
    assert s.total_gpus() == 2


def test_components_follow_topology_and_merge_env() -> None:
    # On kube: the local target refuses secret references in env (see test_bad_input.py).
    s = parse_spec(
        spec(
            KUBE,
            {
                "serving": {
                    "topology": "disagg",
                    "env": {"DYN_LOG": "info", "SHARED": "1"},
                    "prefill": {
                        "replicas": 2,
                        "gpus": 1,
                        "engine_args": ["--enforce-eager"],
                        "env": {"DYN_LOG": "debug"},
                    },
                    "decode": {"replicas": 1, "gpus": 2, "env": {"TOKEN_REF": {"secret_block": "tok"}}},
                }
            },
        )
    )
    comps = s.components()
    assert [c.role for c in comps] == ["frontend", "prefill", "decode"]
    assert comps[0] == Component("frontend", 1, 0, [], {"DYN_LOG": "info", "SHARED": "1"})
    assert comps[1] == Component("prefill", 2, 1, ["--enforce-eager"], {"DYN_LOG": "debug", "SHARED": "1"})
    assert comps[2].env["TOKEN_REF"] == SecretRef(secret_block="tok")
    role, replicas, gpus, _, _ = comps[2]  # a plain tuple too
    assert (role, replicas, gpus) == ("decode", 1, 2)
    assert s.total_gpus() == 4


def test_env_scalars_become_strings() -> None:
    s = parse_spec(spec({"serving": {"env": {"DYN_LOG_LEVEL": 3, "FLAG": True, "RATIO": 0.5}}}))
    assert s.serving.env == {"DYN_LOG_LEVEL": "3", "FLAG": "true", "RATIO": "0.5"}


def test_spec_is_frozen_and_model_copy_works() -> None:
    s = parse_spec(BASE)
    with pytest.raises(ValidationError):
        s.name = "other"  # type: ignore[misc]
    renamed = s.model_copy(update={"name": "other"})
    assert renamed.name == "other" and s.name == "demo" and renamed.serving == s.serving


def test_with_changes_merges_and_revalidates() -> None:
    s = parse_spec(spec(EKS))
    newer = s.with_changes({"model": {"revision": "0" * 40}})
    assert newer.model.revision == "0" * 40 and newer.model.id == s.model.id and newer.target == s.target
    with pytest.raises(SpecError) as caught:
        s.with_changes({"model": {"revision": "main"}})
    assert caught.value.issues[0].path == "model.revision"


def test_all_issues_are_reported_at_once() -> None:
    issues = issues_of(
        spec(
            {
                "name": "Bad_Name",
                "serving": {"topology": "agg_router", "workers": {"replicas": 1}},
                "smoke": {"requests": 0},
                "canary": {"steps": [50, 20]},
            }
        )
    )
    paths = {i.path for i in issues}
    assert {"name", "serving.workers.replicas", "smoke.requests", "canary.steps[1]"} <= paths


def test_direct_model_validate_is_strict_too() -> None:
    with pytest.raises(ValidationError) as caught:
        DeploymentSpec.model_validate(spec({"model": {"token": SECRET}}))
    assert SECRET not in str(caught.value)


def test_parse_quantity() -> None:
    assert parse_quantity("20Gi") == 20 * 2**30
    assert parse_quantity("1.5Ti") == int(1.5 * 2**40)
    assert parse_quantity("500M") == 500 * 10**6
    with pytest.raises(ValueError):  # noqa: PT011 - the raised message is checked below / any ValueError is the contract
        parse_quantity("20GB")


# --- the bad-spec corpus ---------------------------------------------------------------------------------
# (id, spec as a dict, exact issue path, words the problem must contain, words the fix must contain)

CORPUS: list[tuple[str, dict[str, Any], str, list[str], list[str]]] = [
    # document level
    ("api-version-missing", spec({"apiVersion": DROP}), "apiVersion", ["missing"], ["dynadeploy.io/v1"]),
    ("api-version-wrong", spec({"apiVersion": "dynadeploy.io/v2"}), "apiVersion", ["dynadeploy.io/v2"], ["dynadeploy.io/v1"]),
    ("name-missing", spec({"name": DROP}), "name", ["missing"], ["add name"]),
    ("name-uppercase", spec({"name": "Demo"}), "name", ["DNS-1123", "uppercase"], ["'demo'"]),
    ("name-too-long", spec({"name": "a" * 41}), "name", ["41 characters"], ["at most 40"]),
    ("name-underscore", spec({"name": "my_demo"}), "name", ["'_'"], ["'my-demo'"]),
    ("name-leading-dash", spec({"name": "-demo"}), "name", ["start and end"], ["'demo'"]),
    ("name-number", spec({"name": 123}), "name", ["expected a string", "123"], ["quote"]),
    ("unknown-top-field", spec({"nmae": "x"}), "nmae", ["unknown field 'nmae'"], ["did you mean 'name'"]),
    ("unknown-field-no-match", spec({"serving": {"replicaz": 2}}), "serving.replicaz", ["unknown field"], ["remove", "workers"]),
    ("unknown-nested-field", spec({"serving": {"workers": {"gpu": 1}}}), "serving.workers.gpu", ["unknown field 'gpu'"], ["'gpus'"]),
    # target
    ("target-kind-invalid", spec({"target": {"kind": "ekss"}}), "target.kind", ["'ekss'"], ["did you mean eks"]),
    ("target-kind-missing", spec({"target": {"region": "x"}}), "target.kind", ["no kind"], ["local", "eks"]),
    ("target-not-mapping", spec({"target": "local"}), "target", ["expected a mapping", "'local'"], ["mapping"]),
    ("target-unknown-field", spec(EKS, {"target": {"regoin": "us-east-1"}}), "target.regoin", ["unknown field"], ["'region'"]),
    ("local-host-public", spec({"target": {"kind": "local", "host": "0.0.0.0"}}), "target.host", ["loopback"], ["127.0.0.1"]),
    ("local-host-name", spec({"target": {"kind": "local", "host": "example.com"}}), "target.host", ["'example.com'"], ["127.0.0.1"]),
    ("local-port-too-big", spec({"target": {"kind": "local", "frontend_port": 70000}}), "target.frontend_port", ["at most 65535", "70000"], ["65535 or less"]),
    ("local-port-zero", spec({"target": {"kind": "local", "frontend_port": 0}}), "target.frontend_port", ["at least 1"], ["1 or more"]),
    ("local-discovery-invalid", spec({"target": {"kind": "local", "discovery": "mdns"}}), "target.discovery", ["'mdns'"], ["file", "etcd"]),
    ("local-gpus-invalid", spec({"target": {"kind": "local", "gpus": 2}}), "target.gpus", ["2"], ["auto", "none"]),
    ("kube-namespace-invalid", spec(KUBE, {"target": {"namespace": "Dynamo_NS"}}), "target.namespace", ["DNS-1123"], ["'dynamo-ns'"]),
    ("kube-gpu-driver-invalid", spec(KUBE, {"target": {"provider_hints": {"gpu_driver": "skip"}}}), "target.provider_hints.gpu_driver", ["'skip'"], ["preinstalled", "install"]),
    ("eks-region-missing", spec(EKS, {"target": {"region": DROP}}), "target.region", ["missing"], ["us-east-1"]),
    ("eks-region-invalid", spec(EKS, {"target": {"region": "us-east"}}), "target.region", ["'us-east'", "AWS region"], ["us-east-1"]),
    ("eks-k8s-version-number", spec(EKS, {"target": {"kubernetes_version": 1.31}}), "target.kubernetes_version", ["expected a string", "1.31"], ["quote"]),
    ("eks-k8s-version-old", spec(EKS, {"target": {"kubernetes_version": "1.28"}}), "target.kubernetes_version", ["1.28", "older"], ["1.30"]),
    ("eks-vpc-without-subnets", spec(EKS, {"target": {"vpc_id": "vpc-0a1b2c3d4e5f67890"}}), "target.subnet_ids", ["0 subnet"], ["at least 2"]),
    ("eks-subnet-without-vpc", spec(EKS, {"target": {"subnet_ids": ["subnet-0a1b2c3d4e5f67890"]}}), "target.vpc_id", ["without vpc_id"], ["set target.vpc_id"]),
    ("eks-node-pools-empty", spec(EKS, {"target": {"node_pools": []}}), "target.node_pools", ["at least 1 item"], ["add at least 1"]),
    ("node-pool-min-gt-desired", spec(EKS, {"target": {"node_pools": [CPU_POOL, {**GPU_POOL, "min": 3, "desired": 1, "max": 4}]}}), "target.node_pools[1].desired", ["min=3", "desired=1"], ["min <= desired <= max"]),
    ("node-pool-duplicate-name", spec(EKS, {"target": {"node_pools": [GPU_POOL, GPU_POOL]}}), "target.node_pools[1].name", ["'gpu'", "twice"], ["unique"]),
    ("node-pool-gpu-negative", spec(EKS, {"target": {"node_pools": [{**GPU_POOL, "gpu": {"count": -1}}]}}), "target.node_pools[0].gpu.count", ["at least 0", "-1"], ["0 or more"]),
    ("node-pool-missing-instance", spec(EKS, {"target": {"node_pools": [{"name": "gpu"}]}}), "target.node_pools[0].instance_type", ["missing"], ["g6e.2xlarge"]),
    ("node-pool-bad-label", spec(EKS, {"target": {"node_pools": [{**GPU_POOL, "labels": {"bad key!": "x"}}]}}), 'target.node_pools[0].labels["bad key!"]', ["label key"], ["example.com/pool"]),
    ("taint-effect-invalid", spec(EKS, {"target": {"node_pools": [{**GPU_POOL, "taints": [{"key": "k", "effect": "NoScheduel"}]}]}}), "target.node_pools[0].taints[0].effect", ["'NoScheduel'"], ["did you mean NoSchedule"]),
    ("gke-location-invalid", spec(GKE, {"target": {"location": "US Central"}}), "target.location", ["GCP region or zone"], ["us-central1-a"]),
    ("gke-gpu-pool-without-type", spec(GKE, {"target": {"node_pools": [{"name": "gpu", "instance_type": "g2-standard-24", "gpu": {"count": 1}}]}}), "target.node_pools[0].gpu.type", ["accelerator type"], ["nvidia-l4"]),
    ("aks-subscription-not-guid", spec(AKS, {"target": {"subscription_id": "my-subscription"}}), "target.subscription_id", ["GUID", "'my-subscription'"], ["00000000-0000"]),
    ("aks-pool-name-invalid", spec(AKS, {"target": {"node_pools": [{**GPU_POOL, "name": "gpu-pool"}]}}), "target.node_pools[0].name", ["AKS node pool name"], ["'gpupool'"]),
    ("ecs-desired-zero", spec(ECS, {"target": {"desired_instances": 0}}), "target.desired_instances", ["at least 1"], ["1 or more"]),
    # GPUs vs target
    ("local-no-gpu-vllm", spec(HF, {"target": {"kind": "local", "gpus": "none"}, "serving": {"engine": "vllm"}}), "serving.engine", ["target.gpus is none"], ["mocker"]),
    ("builtin-model-vllm", spec({"serving": {"engine": "vllm"}}), "serving.engine", ["built-in", "no weights"], ["Hugging Face"]),
    ("vllm-zero-gpus", spec(HF, {"serving": {"engine": "vllm", "workers": {"gpus": 0}}}), "serving.workers.gpus", ["at least 1 GPU"], ["mocker"]),
    ("eks-no-gpu-pools", spec(EKS, {"target": {"node_pools": [CPU_POOL]}}), "serving.workers.gpus", ["no node pool", "eks"], ["GPU node pool"]),
    ("aks-no-gpu-pools", spec(AKS, {"target": {"node_pools": [{"name": "system", "instance_type": "Standard_D4s_v5"}]}}), "serving.workers.gpus", ["no node pool"], ["gpus to 0"]),
    ("gpus-per-worker-exceed-pool", spec(EKS, {"serving": {"workers": {"gpus": 4}}}), "serving.workers.gpus", ["4 GPUs", "largest node pool (gpu)"], ["1 or less"]),
    ("gpus-exceed-pool-capacity", spec(EKS, {"serving": {"workers": {"replicas": 5}}}), "target.node_pools", ["5 GPUs", "at most 1"], ["raise max"]),
    ("gke-decode-gpus-exceed", spec(GKE, {"serving": {"topology": "disagg", "prefill": {"gpus": 1}, "decode": {"gpus": 4}}}), "serving.decode.gpus", ["4 GPUs"], ["2 or less"]),
    # serving topology and router
    ("topology-invalid", spec({"serving": {"topology": "agg_rooter"}}), "serving.topology", ["'agg_rooter'"], ["did you mean agg_router"]),
    ("engine-invalid", spec({"serving": {"engine": "sglang"}}), "serving.engine", ["'sglang'"], ["vllm", "mocker"]),
    ("disagg-without-prefill", spec({"serving": {"topology": "disagg", "decode": {"gpus": 0}}}), "serving.prefill", ["needs serving.prefill"], ["add serving.prefill", "topology agg"]),
    ("disagg-without-decode", spec({"serving": {"topology": "disagg", "prefill": {"gpus": 0}}}), "serving.decode", ["needs serving.decode"], ["add serving.decode"]),
    ("agg-with-prefill", spec({"serving": {"prefill": {"replicas": 1}}}), "serving.prefill", ["does not use"], ["remove serving.prefill"]),
    ("disagg-with-workers", spec({"serving": {"topology": "disagg", "workers": {}, "prefill": {}, "decode": {}}}), "serving.workers", ["does not use"], ["serving.prefill and serving.decode"]),
    ("agg-router-one-worker", spec({"serving": {"topology": "agg_router"}}), "serving.workers.replicas", ["has 1 worker;", "at least 2"], ["2 or more", "topology agg"]),
    ("disagg-router-one-decode", spec({"serving": {"topology": "disagg_router", "prefill": {}, "decode": {"replicas": 1}}}), "serving.decode.replicas", ["1 decode", "at least 2"], ["2 or more", "topology disagg"]),
    ("prefill-zero-replicas", spec({"serving": {"topology": "disagg", "prefill": {"replicas": 0}, "decode": {}}}), "serving.prefill.replicas", ["at least 1", "0"], ["1 or more", "or use topology agg"]),
    ("router-kv-without-router", spec({"serving": {"router_mode": "kv"}}), "serving.router_mode", ["kv", "agg"], ["agg_router"]),
    ("router-rr-on-router-topology", spec({"serving": {"topology": "agg_router", "router_mode": "round-robin", "workers": {"replicas": 2}}}), "serving.router_mode", ["round-robin"], ["remove router_mode"]),
    ("router-mode-invalid", spec({"serving": {"router_mode": "kv-strata"}}), "serving.router_mode", ["'kv-strata'"], ["round-robin", "random", "kv"]),
    ("replicas-bool", spec({"serving": {"workers": {"replicas": True}}}), "serving.workers.replicas", ["whole number", "boolean"], ["whole number"]),
    ("replicas-string", spec({"serving": {"frontend": {"replicas": "2"}}}), "serving.frontend.replicas", ["whole number", "'2'"], ["whole number"]),
    ("engine-args-not-list", spec({"serving": {"workers": {"engine_args": "--enforce-eager"}}}), "serving.workers.engine_args", ["expected a list"], ["a list"]),
    ("engine-arg-reserved", spec({"serving": {"workers": {"engine_args": ["--model=foo"]}}}), "serving.workers.engine_args[0]", ["--model"], ["model.id"]),
    ("image-unpinned", spec({"serving": {"image": "nvcr.io/nvidia/ai-dynamo/vllm-runtime"}}), "serving.image", ["not pinned"], ["vllm-runtime:1.6.1"]),
    ("image-latest", spec({"serving": {"image": "nvcr.io/nvidia/ai-dynamo/vllm-runtime:latest"}}), "serving.image", ["not pinned", ":latest"], ["tag or a digest"]),
    ("image-invalid", spec({"serving": {"image": "Not An Image"}}), "serving.image", ["container image"], ["vllm-runtime"]),
    ("image-release-mismatch", spec(KUBE, {"serving": {"image": "nvcr.io/nvidia/ai-dynamo/vllm-runtime:1.3.1"}}), "serving.image", ["1.3.1", "1.6.1"], ["vllm-runtime:1.6.1"]),
    ("mocker-speedup-zero", spec({"serving": {"mocker": {"speedup_ratio": 0}}}), "serving.mocker.speedup_ratio", ["more than 0", "got 0"], ["more than 0"]),
    ("env-bad-key", spec({"serving": {"env": {"bad-key": "1"}}}), "serving.env.bad-key", ["not a valid key"], ["'bad_key'"]),
    # model
    ("hf-without-revision", spec({"model": {"id": "Qwen/Qwen3-0.6B"}}), "model.revision", ["Qwen/Qwen3-0.6B", "no pinned revision"], ["40-hex"]),
    ("hf-branch-revision-on-eks", spec(EKS, {"model": {"revision": "main"}}), "model.revision", ["'main'", "not a commit sha"], ["40-hex"]),
    ("hf-short-sha-on-kube", spec(KUBE, {"model": {"revision": SHA[:7]}}), "model.revision", [SHA[:7]], ["full 40-hex"]),
    ("builtin-with-revision", spec({"model": {"revision": SHA}}), "model.revision", ["no revisions"], ["remove model.revision"]),
    ("model-id-invalid", spec({"model": {"id": "qwen"}}), "model.id", ["'qwen'", "Hugging Face id"], ["Qwen/Qwen3-0.6B"]),
    ("revision-empty", spec({"model": {"id": "Qwen/Qwen3-0.6B", "revision": "  "}}), "model.revision", ["empty"], ["non-empty"]),
    ("served-name-space", spec({"model": {"served_name": "my model"}}), "model.served_name", ["'my model'"], ["without spaces"]),
    ("cache-size-invalid", spec({"model": {"cache": {"size": "20GB"}}}), "model.cache.size", ["'20GB'", "quantity"], ["20Gi"]),
    ("cache-size-too-small", spec({"model": {"cache": {"size": "20"}}}), "model.cache.size", ["smaller than 1Gi"], ["bytes"]),
    ("cache-access-mode-invalid", spec({"model": {"cache": {"access_mode": "ReadWriteOncePod"}}}), "model.cache.access_mode", ["'ReadWriteOncePod'"], ["ReadWriteOnce", "ReadWriteMany"]),
    ("cache-storage-class-invalid", spec({"model": {"cache": {"storage_class": "Fast_SSD"}}}), "model.cache.storage_class", ["DNS-1123"], ["'fast-ssd'"]),
    ("token-both-refs", spec({"model": {"token": {"secret_block": "hf", "env": "HF_TOKEN"}}}), "model.token", ["exactly one"], ["secret_block"]),
    ("token-bad-block-name", spec({"model": {"token": {"secret_block": "HF Token"}}}), "model.token.secret_block", ["Prefect block name"], ["hf-token"]),
    # platform
    ("dynamo-version-not-semver", spec({"platform": {"dynamo_version": "1.6"}}), "platform.dynamo_version", ["'1.6'", "semantic version"], ["1.6.1"]),
    ("dynamo-version-number", spec({"platform": {"dynamo_version": 1.6}}), "platform.dynamo_version", ["expected a string", "number"], ["quote"]),
    ("dynamo-version-0x", spec({"platform": {"dynamo_version": "0.9.1"}}), "platform.dynamo_version", ["0.9.1", "older than 1.0"], ["1.6.1"]),
    ("chart-major-mismatch", spec({"platform": {"chart_version": "2.0.0"}}), "platform.chart_version", ["2.0.0", "major"], ["remove platform.chart_version"]),
    ("etcd-discovery-without-etcd", spec({"platform": {"discovery_backend": "etcd"}}), "platform.etcd", ["discovery_backend is etcd"], ["platform.etcd: true"]),
    ("operator-mode-invalid", spec({"platform": {"operator_mode": "cluster-wide"}}), "platform.operator_mode", ["'cluster-wide'"], ["cluster", "namespace"]),
    ("gpu-operator-version-invalid", spec({"platform": {"gpu_operator": {"version": "25.10"}}}), "platform.gpu_operator.version", ["'25.10'"], ["v25.10.1"]),
    ("gpu-driver-conflict", spec(KUBE, {"target": {"provider_hints": {"gpu_driver": "preinstalled"}}, "platform": {"gpu_operator": {"driver": "install"}}}), "platform.gpu_operator.driver", ["preinstalled"], ["auto or preinstalled"]),
    # smoke, canary, teardown
    ("smoke-requests-zero", spec({"smoke": {"requests": 0}}), "smoke.requests", ["at least 1"], ["1 or more"]),
    ("smoke-requests-unbounded", spec({"smoke": {"requests": 10**6}}), "smoke.requests", ["at most 10000"], ["10000 or less"]),
    ("smoke-concurrency-over-requests", spec({"smoke": {"requests": 4, "concurrency": 8}}), "smoke.concurrency", ["8", "4 requests"], ["4 or less"]),
    ("smoke-prompt-empty", spec({"smoke": {"prompt": ""}}), "smoke.prompt", ["empty"], ["non-empty"]),
    ("sla-ratio-above-one", spec({"smoke": {"sla": {"min_goodput_ratio": 1.5}}}), "smoke.sla.min_goodput_ratio", ["at most 1", "1.5"], ["1.0 or less"]),
    ("sla-error-rate-negative", spec({"smoke": {"sla": {"max_error_rate": -0.1}}}), "smoke.sla.max_error_rate", ["at least 0"], ["0.0 or more"]),
    ("sla-ttft-zero", spec({"smoke": {"sla": {"ttft_p90_ms": 0}}}), "smoke.sla.ttft_p90_ms", ["more than 0"], ["more than 0"]),
    ("canary-steps-not-increasing", spec({"canary": {"steps": [50, 10, 100]}}), "canary.steps[1]", ["strictly increase", "10 follows 50"], ["increasing order"]),
    ("canary-steps-not-ending-100", spec({"canary": {"steps": [10, 50]}}), "canary.steps[1]", ["50%", "never take all traffic"], ["end canary.steps with 100"]),
    ("canary-step-over-100", spec({"canary": {"steps": [10, 150]}}), "canary.steps[1]", ["steps[1] must be at most 100", "150"], ["100 or less"]),
    ("canary-steps-empty", spec({"canary": {"steps": []}}), "canary.steps", ["at least 1 item"], ["add at least 1"]),
    ("canary-min-samples-unreachable", spec({"canary": {"min_samples": 50, "requests_per_step": 40}}), "canary.min_samples", ["50", "40 requests"], ["40 or less"]),
    ("canary-regression-negative", spec({"canary": {"max_ttft_regression": -0.5}}), "canary.max_ttft_regression", ["at least 0"], ["0 or more"]),
    ("teardown-flag-string", spec({"teardown": {"on_failure": "yes"}}), "teardown.on_failure", ["true or false", "'yes'"], ["true or false"]),
    ("teardown-unknown-field", spec({"teardown": {"keep_cache": True}}), "teardown.keep_cache", ["unknown field"], ["'keep_model_cache'"]),
]  # fmt: skip


def test_corpus_cases_are_distinct() -> None:
    ids = [case[0] for case in CORPUS]
    assert len(ids) == len(set(ids))
    bodies = [repr(case[1]) for case in CORPUS]
    assert len(bodies) == len(set(bodies)), "two corpus cases test the same spec"
    assert len(CORPUS) >= 45


@pytest.mark.parametrize(
    ("data", "path", "problem_words", "fix_words"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS]
)
def test_bad_spec(data: dict[str, Any], path: str, problem_words: list[str], fix_words: list[str]) -> None:
    found = the_issue(issues_of(data), path)
    for word in problem_words:
        assert word in found.problem, f"{word!r} not in problem: {found.problem!r}"
    for word in fix_words:
        assert word in found.fix, f"{word!r} not in fix: {found.fix!r}"


# --- secrets are refused and never echoed -----------------------------------------------------------------

SECRET_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("token-inline-string", spec({"model": {"token": SECRET}}), "model.token"),
    ("token-inline-value", spec({"model": {"token": {"value": SECRET}}}), "model.token"),
    ("token-wrong-type", spec({"model": {"token": {"secret_block": 1, "value": SECRET}}}), "model.token"),
    ("env-secret-literal", spec({"serving": {"env": {"HF_TOKEN": SECRET}}}), "serving.env.HF_TOKEN"),
    ("worker-env-password", spec({"serving": {"workers": {"env": {"DB_PASSWORD": SECRET}}}}), "serving.workers.env.DB_PASSWORD"),
    ("env-token-under-innocent-key", spec({"serving": {"env": {"EXTRA": f"x {SECRET}"}}}), "serving.env.EXTRA"),
    ("env-ref-with-inline-value", spec({"serving": {"env": {"API_KEY": {"value": SECRET}}}}), "serving.env.API_KEY"),
    ("engine-arg-token", spec({"serving": {"workers": {"engine_args": [f"--hf-token={SECRET}"]}}}), "serving.workers.engine_args[0]"),
    ("secret-in-bad-type", spec({"serving": {"env": {"HF_TOKEN": [SECRET]}}}), "serving.env.HF_TOKEN"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "path"), [c[1:] for c in SECRET_CASES], ids=[c[0] for c in SECRET_CASES])
def test_inline_secret_is_refused_and_not_echoed(data: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, source="test.yaml")
    err = caught.value
    found = the_issue(err.issues, path)
    assert "secret" in (found.problem + found.fix).lower() or "token" in found.problem.lower()
    for text in (str(err), err.details(), repr(err.issues), found.problem, found.fix):
        assert SECRET not in text
        assert SECRET[3:15] not in text


def test_secret_references_are_accepted() -> None:
    # On kube: the local target refuses secret references in env (see test_bad_input.py).
    s = parse_spec(
        spec(
            KUBE,
            {
                "model": {"token": {"secret_block": "hf-token"}},
                "serving": {
                    "env": {"HF_TOKEN": {"env": "HF_TOKEN"}, "TOKENIZERS_PARALLELISM": "false", "API_KEY": ""}
                },
            },
        )
    )
    assert s.model.token == SecretRef(secret_block="hf-token")
    assert s.serving.env["HF_TOKEN"] == SecretRef(env="HF_TOKEN")


# --- YAML files ----------------------------------------------------------------------------------------------

YAML_CASES: list[tuple[str, str, str, list[str], list[str]]] = [
    ("yaml-syntax-error", "apiVersion: dynadeploy.io/v1\nname: demo\nserving:\n  topology: agg\n   engine: vllm\n", "spec", ["not valid YAML", "line 5"], ["line 5"]),
    ("yaml-unclosed-quote", 'apiVersion: dynadeploy.io/v1\nname: "demo\n', "spec", ["not valid YAML", "line"], ["quotes"]),
    ("yaml-top-level-list", "- apiVersion: dynadeploy.io/v1\n- name: demo\n", "spec", ["a list", "not a mapping", "line 1"], ["key: value"]),
    ("yaml-top-level-scalar", "\n\njust a string\n", "spec", ["a string", "line 3"], ["apiVersion: dynadeploy.io/v1"]),
    ("yaml-empty-file", "", "spec", ["empty"], ["infra/targets/local.yaml"]),
    ("yaml-only-comments", "# nothing here\n# still nothing\n", "spec", ["empty"], ["infra/targets/local.yaml"]),
    ("yaml-two-documents", "apiVersion: dynadeploy.io/v1\nname: a\n---\nname: b\n", "spec", ["not valid YAML", "single document"], ["line 3"]),
    ("yaml-duplicate-key", "apiVersion: dynadeploy.io/v1\nname: demo\nserving:\n  topology: agg\n  topology: disagg\n", "serving.topology", ["appears twice", "lines 4 and 5"], ["keep only one"]),
    ("yaml-field-line-number", "apiVersion: dynadeploy.io/v1\nname: demo\nserving:\n  topology: disagg\n  prefill:\n    replicas: 0\n  decode: {}\n", "serving.prefill.replicas", ["at least 1", "(line 6)"], ["1 or more"]),
    ("yaml-missing-field-line", "apiVersion: dynadeploy.io/v1\nname: demo\ntarget:\n  kind: eks\n  cluster_name: c\n  node_pools: [{name: gpu, instance_type: g6e.2xlarge}]\n", "target.region", ["missing", "(line 3)"], ["us-east-1"]),
    ("yaml-version-unquoted", "apiVersion: dynadeploy.io/v1\nname: demo\nplatform:\n  dynamo_version: 1.6\n", "platform.dynamo_version", ["expected a string", "(line 4)"], ["quote"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "path", "problem_words", "fix_words"),
    [c[1:] for c in YAML_CASES],
    ids=[c[0] for c in YAML_CASES],
)
def test_bad_yaml_file(
    tmp_path: Path, text: str, path: str, problem_words: list[str], fix_words: list[str]
) -> None:
    file = tmp_path / "spec.yaml"
    file.write_text(text)
    with pytest.raises(SpecError) as caught:
        load_spec(file)
    assert caught.value.source == str(file)
    found = the_issue(caught.value.issues, path)
    for word in problem_words:
        assert word in found.problem, f"{word!r} not in problem: {found.problem!r}"
    for word in fix_words:
        assert word in found.fix, f"{word!r} not in fix: {found.fix!r}"


def test_yaml_syntax_error_does_not_echo_the_line(tmp_path: Path) -> None:
    file = tmp_path / "spec.yaml"
    file.write_text(f'apiVersion: dynadeploy.io/v1\nname: demo\nmodel:\n  token: "{SECRET}\n')
    with pytest.raises(SpecError) as caught:
        load_spec(file)
    assert SECRET not in str(caught.value) + caught.value.details()


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "nope.yaml")
    assert caught.value.issues[0].path == "spec" and "cannot read" in caught.value.issues[0].problem


@pytest.mark.parametrize("data", [None, [], "spec", 3])
def test_parse_spec_needs_a_mapping(data: Any) -> None:
    issue = issues_of(data)[0]
    assert issue.path == "spec" and "not a mapping" in issue.problem


def test_yaml_layout_does_not_matter(tmp_path: Path) -> None:
    block = tmp_path / "block.yaml"
    block.write_text("apiVersion: dynadeploy.io/v1\nname: demo\nserving:\n  workers:\n    replicas: 1\n")
    flow = tmp_path / "flow.yaml"
    flow.write_text("{name: demo, serving: {workers: {replicas: 1}}, apiVersion: dynadeploy.io/v1}\n")
    assert load_spec(block) == load_spec(flow) == parse_spec(BASE)


# --- the translator never crashes ------------------------------------------------------------------------------

WRONG_VALUES: list[Any] = [None, "x", -1, {"unexpected": 1}]


def leaves(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in leaves(v, (*path, k))] or [path]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in leaves(v, (*path, i))] or [path]
    return [path]


def replaced(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(data)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def test_every_wrong_leaf_gives_spec_issues_never_a_crash() -> None:
    data = load_spec(TARGETS / "eks.yaml").canonical_dict()
    checked = 0
    for path in leaves(data):
        for value in WRONG_VALUES:
            try:
                parse_spec(replaced(data, path, value))
            except SpecError as err:
                assert err.issues and all(i.path and i.problem and i.fix for i in err.issues)  # noqa: PT017 - one of many cases in a loop; pytest.raises cannot express 'may raise'
                checked += 1
    assert checked > 100


# --- the spec reference (docs/spec-reference.md) ---------------------------------------------------------


def _spec_models() -> list[type]:
    """Every model class defined in the runtime.spec package (the strict base included)."""
    out, todo = [], [StrictModel]
    while todo:
        model = todo.pop()
        todo += model.__subclasses__()
        if model.__module__.startswith("runtime.spec."):
            out.append(model)
    return out


def test_every_spec_field_has_a_description() -> None:
    # The spec reference and the Prefect UI's run forms (flows take the spec) show these descriptions.
    missing = [
        f"{model.__module__}.{model.__name__}.{name}"
        for model in _spec_models()
        for name, info in model.model_fields.items()
        if not (info.description or "").strip()
    ]
    assert not missing, f"spec fields without Field(description=...): {missing}"
    sections = {model for model, _ in reference.sections()}
    assert {m for m in _spec_models() if not m.__name__.startswith("_") and m is not StrictModel} <= sections


def test_checked_in_spec_reference_is_current() -> None:
    path = Path(__file__).resolve().parents[2] / "docs" / "spec-reference.md"
    assert path.read_text() == reference.reference(), (
        "docs/spec-reference.md is stale: uv run python -m runtime.spec.reference > docs/spec-reference.md"
    )
