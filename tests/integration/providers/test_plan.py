"""The providers' pure decisions (names, tags, node pool requests, task definitions), the EKS token, the
kubeconfig writer and the registry. No emulator needed: these run in well under a second.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from runtime.errors import NotSupportedError, PreflightError
from runtime.providers import PROVIDERS, get_provider, require
from runtime.providers.base import Capability, KubeAccess
from runtime.render import cloud_plan as plan
from runtime.render import cloud_plan_aws as plan_aws
from runtime.render import ecs_task as er
from runtime.spec import TARGET_KINDS, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[3]


def spec_of(kind: str, **replace):
    """The example target spec, with whole top-level sections or target fields replaced."""
    spec = load_spec(ROOT / "infra" / "targets" / f"{kind}.yaml")
    if not replace:
        return spec
    data = spec.canonical_dict()
    for key, value in replace.items():
        data[key] = {**data[key], **value} if key == "target" else value
    return parse_spec(data)


def test_registry_covers_the_cloud_targets_and_imports_lazily():
    assert set(PROVIDERS) == set(TARGET_KINDS) - {"local", "kube"}
    with pytest.raises(NotSupportedError):
        get_provider("kube")
    code = (
        "import sys, runtime.providers; print(sorted(m for m in ('boto3', 'google.cloud.container_v1', "
        "'azure.mgmt.containerservice') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_require_names_the_missing_capability():
    ecs = get_provider("ecs")
    require(ecs, Capability.OWN_SERVING)
    with pytest.raises(NotSupportedError, match="kubernetes"):
        require(ecs, Capability.KUBERNETES)


def test_kubeconfig_is_written_private_and_the_token_never_printed(tmp_path):
    access = KubeAccess(
        server="https://k.example", context="c", ca_data="Q0E=", token="s3cret", namespace="ns"
    )
    path = access.write_kubeconfig(tmp_path / "sub" / "kubeconfig")
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert "s3cret" in text and "certificate-authority-data: Q0E=" in text and "namespace: ns" in text
    assert "s3cret" not in repr(access)


def test_eks_token_is_a_presigned_get_caller_identity(monkeypatch):
    import boto3

    from runtime.gateways import eks_token as _eks_token

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-west-2"
    )
    token, expires = _eks_token.get_token(session, "us-west-2", "my-cluster")
    assert token.startswith("k8s-aws-v1.") and not token.endswith("=")
    url = urlsplit(_eks_token.decode(token))
    query = parse_qs(url.query)
    assert url.scheme == "https" and url.hostname == "sts.us-west-2.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"] and query["X-Amz-Expires"] == ["60"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0].split(";")
    assert expires > 0


# --- tags and names -----------------------------------------------------------------------------------


def test_tags_follow_each_clouds_rules():
    spec = spec_of("gke")
    for key, value in plan.gcp_labels(spec).items():
        assert re.match(r"^[a-z][a-z0-9_-]{0,62}$", key) and re.match(r"^[a-z0-9_-]{0,63}$", value)
    assert all("/" not in key for key in plan.azure_tags(spec_of("aks")))
    assert plan.aws_tags(spec_of("eks"))[plan.AWS_TAG_KEY] == plan.deployment_id(spec_of("eks"))


def test_long_names_are_cut_stably():
    name = plan_aws.short_name("a" * 70, "us-east-1", "cluster")
    assert len(name) <= 64 and name == plan_aws.short_name("a" * 70, "us-east-1", "cluster")


def test_zones_skip_the_ones_eks_cannot_use():
    zones = [
        {"ZoneName": f"us-east-1{c}", "ZoneId": f"use1-az{i}", "State": "available"}
        for i, c in enumerate("abcdef", start=1)
    ]
    assert "us-east-1c" not in plan_aws.choose_zones(zones, 5, eks=True)  # use1-az3
    assert plan_aws.choose_zones(zones, 2, eks=True) == ["us-east-1a", "us-east-1b"]
    with pytest.raises(PreflightError):
        plan_aws.choose_zones(zones[:1], 2, eks=True)
    assert plan_aws.subnet_cidrs(3) == ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"]


# --- node pools ---------------------------------------------------------------------------------------


def test_gpu_pools_get_the_clouds_gpu_taint_once():
    eks = spec_of("eks")
    gpu = next(p for p in eks.target.node_pools if p.gpu.count)
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in plan.taints(gpu, "eks")
    assert plan.taints(gpu, "gke") == []  # GKE taints GPU pools itself
    assert [t["key"] for t in plan.taints(gpu, "aks")] == ["sku"]
    gke = spec_of("gke")
    tainted = next(p for p in gke.target.node_pools if p.gpu.count)
    assert [t["key"] for t in plan.taints(tainted, "eks")] == ["nvidia.com/gpu"]  # not duplicated


def test_eks_ami_type_follows_the_driver_policy():
    spec = spec_of("eks")
    gpu = next(p for p in spec.target.node_pools if p.gpu.count)
    cpu = next(p for p in spec.target.node_pools if not p.gpu.count)
    assert plan_aws.ami_type(spec, gpu) == "AL2023_x86_64_NVIDIA"
    assert plan_aws.ami_type(spec, cpu) == "AL2023_x86_64_STANDARD"
    operator = spec_of("eks", platform={"gpu_operator": {"driver": "install"}})
    assert plan_aws.ami_type(operator, gpu) == "AL2023_x86_64_STANDARD"
    assert (
        plan_aws.is_arm("g5g.xlarge") and plan_aws.is_arm("c7gn.large") and not plan_aws.is_arm("g6e.2xlarge")
    )


def test_eks_nodegroup_request():
    spec = spec_of(
        "eks",
        target={
            "node_pools": [
                {
                    "name": "gpu",
                    "instance_type": "g6e.2xlarge",
                    "spot": True,
                    "gpu": {"type": "l40s", "count": 1},
                    "min": 0,
                    "max": 4,
                    "desired": 1,
                    "labels": {"a": "b"},
                }
            ]
        },
    )
    pool = spec.target.node_pools[0]
    req = plan_aws.nodegroup_request(
        spec, pool, cluster="c", node_role_arn="arn:role", subnet_ids=["s1", "s2"]
    )
    assert req["capacityType"] == "SPOT" and req["scalingConfig"] == {
        "minSize": 0,
        "maxSize": 4,
        "desiredSize": 1,
    }
    assert req["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert req["labels"] == {"a": "b"} and req["diskSize"] == 200 and req["tags"][plan.AWS_TAG_KEY]
    efa = plan_aws.efa_launch_template_data(pool, ["sg-1"], "pg")
    assert efa["NetworkInterfaces"][0]["InterfaceType"] == "efa" and efa["Placement"] == {"GroupName": "pg"}


def test_gke_node_pool_parses_and_carries_the_accelerator():
    from google.cloud import container_v1

    spec = spec_of("gke")
    gpu = next(p for p in spec.target.node_pools if p.gpu.count)
    pool = container_v1.NodePool(plan.gke_node_pool(spec, gpu))
    acc = pool.config.accelerators[0]
    assert (acc.accelerator_type, acc.accelerator_count) == ("nvidia-l4", 2)
    assert acc.gpu_driver_installation_config.gpu_driver_version.name == "LATEST"
    assert pool.autoscaling.enabled and pool.autoscaling.max_node_count == 2
    operator = spec_of("gke", platform={"gpu_operator": {"driver": "install"}})
    disabled = container_v1.NodePool(plan.gke_node_pool(operator, gpu))
    assert (
        disabled.config.accelerators[0].gpu_driver_installation_config.gpu_driver_version.name
        == "INSTALLATION_DISABLED"
    )
    cluster = container_v1.Cluster(plan.gke_cluster(spec))
    assert [p.name for p in cluster.node_pools] == ["system"]  # GPU pools come from ensure_gpu_nodes


def test_aks_gpu_pool_uses_the_current_gpu_driver_field():
    from azure.mgmt.containerservice.models import AgentPool, GPUDriver

    spec = spec_of("aks")
    gpu = next(p for p in spec.target.node_pools if p.gpu.count)
    body = AgentPool({"properties": plan.aks_agent_pool(spec, gpu)})
    assert body.properties.gpu_profile.driver == GPUDriver.NONE  # the GPU operator installs it
    assert "SkipGPUDriverInstall" not in str(body.as_dict())  # the retired tag
    managed = spec_of("aks", platform={"gpu_operator": {"driver": "preinstalled"}})
    assert (
        AgentPool({"properties": plan.aks_agent_pool(managed, gpu)}).properties.gpu_profile.driver
        == GPUDriver.INSTALL
    )


def test_aks_cluster_without_cpu_pools_gets_a_system_pool():
    spec = spec_of(
        "aks",
        target={
            "node_pools": [
                {
                    "name": "gpunp",
                    "instance_type": "Standard_NC24ads_A100_v4",
                    "gpu": {"type": "a100", "count": 1},
                }
            ]
        },
    )
    profiles = plan.aks_cluster(spec)["properties"]["agentPoolProfiles"]
    assert [(p["name"], p["mode"]) for p in profiles] == [("system", "System")]


# --- ECS ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("topology", ["agg", "disagg_router"])
def test_ecs_task_definitions(topology):
    serving = (
        {"topology": "agg", "engine": "vllm", "workers": {"replicas": 1, "gpus": 1}}
        if topology == "agg"
        else {
            "topology": topology,
            "engine": "vllm",
            "prefill": {"replicas": 1, "gpus": 1},
            "decode": {"replicas": 2, "gpus": 2},
        }
    )
    base = spec_of("ecs").canonical_dict()["serving"]
    spec = spec_of(
        "ecs",
        serving={**{k: v for k, v in base.items() if k not in ("workers", "prefill", "decode")}, **serving},
    )
    names = er.names(spec)
    for component in spec.components():
        td = er.task_definition(
            spec,
            component.role,
            execution_role_arn="arn:exec",
            secret_arns={"HF_TOKEN": "arn:secret"},
            component=component,
        )
        assert "${" not in str(td)
        container = td["containerDefinitions"][0]
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert env["NATS_SERVER"] == f"nats://nats.{names.namespace}:4222"
        assert td["networkMode"] == "host" and td["requiresCompatibilities"] == ["EC2"]
        assert container["secrets"] == [{"name": "HF_TOKEN", "valueFrom": "arn:secret"}]
        if component.role == "frontend":
            assert "resourceRequirements" not in container and "dynamo.frontend" in container["command"][0]
            assert ("--router-mode kv" in container["command"][0]) == (topology == "disagg_router")
        else:
            assert container["resourceRequirements"] == [{"type": "GPU", "value": str(component.gpus)}]
            assert ("--disaggregation-mode" in container["command"][0]) == (topology != "agg")
            assert "--revision c1899de289a04d12100db370d81485cdf75e47ca" in container["command"][0]
    for role in er.DISCOVERY:
        td = er.task_definition(spec, role, execution_role_arn="arn:exec", secret_arns={})
        assert td["networkMode"] == "awsvpc" and td["requiresCompatibilities"] == ["FARGATE"]
        assert td["containerDefinitions"][0]["cpu"] and td["containerDefinitions"][0]["memory"]


def test_ecs_mocker_workers_ask_for_no_gpu():
    base = spec_of("ecs").canonical_dict()["serving"]
    spec = spec_of("ecs", serving={**{k: v for k, v in base.items() if v is not None}, "engine": "mocker"})
    worker = next(c for c in spec.components() if c.role == "worker")
    td = er.task_definition(
        spec, "worker", execution_role_arn="a", secret_arns={"HF_TOKEN": "s"}, component=worker
    )
    assert "resourceRequirements" not in td["containerDefinitions"][0]
    assert "dynamo.mocker" in td["containerDefinitions"][0]["command"][0]
