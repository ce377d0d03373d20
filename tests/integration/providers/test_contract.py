"""The provider contract, run against every provider: eks and ecs on moto (server mode, behind a fault
proxy), gke and aks on the HTTP fakes in tests/harness, each driven through the real SDK client.

Contract: a second ensure changes nothing (no mutating call, same inventory); deleting what is absent
succeeds; inventory is empty after delete; declared capabilities match what ensure does.

What the emulators do NOT model, so these tests cannot see it:
- moto: GPU scheduling and GPU drivers (node groups and ECS container instances carry no GPUs; the AMI
  type is stored, never booted); ECS service task counts (services never reach runningCount > 0, so
  the frontend address is None here); EKS add-ons and access entries (no routes: the provider records
  a note instead of installing the CSI add-ons), EKS Auto Mode; placement groups (so EFA is checked
  on the rendered request only); real networking (routes, DNS, NFS reachability, Cloud Map
  resolution); IAM policy evaluation (every call is allowed); real durations (EKS is ACTIVE at once).
- FakeGke / FakeAks: nodes, GPUs and drivers (accelerator and gpuProfile fields are stored only),
  quotas, IAM/RBAC/AAD, networks, versions and upgrades, the compute objects the clouds create
  (GCE disks and forwarding rules, the MC_* resource group), real Kubernetes behind the endpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runtime.domain import capabilities
from runtime.errors import NotSupportedError
from runtime.providers.base import Capability, ClusterProvider
from runtime.render import cloud_plan as plan

pytestmark = pytest.mark.integration


def test_provider_satisfies_the_protocol(cloud):
    assert isinstance(cloud.provider, ClusterProvider)
    assert cloud.provider.name == cloud.kind


def test_second_ensure_creates_nothing(cloud, reference_shapes):
    cloud.mark()
    cloud.provision()
    calls = len(cloud.server.requests)
    first = cloud.inventory()
    assert first, "provisioning left nothing to find by tag"
    reference_shapes[cloud.kind] = (cloud.shape(), calls)
    cloud.mark()
    cloud.provision()
    assert cloud.mutations() == [], "a second ensure must only read"
    assert cloud.inventory() == first


def test_delete_empties_the_inventory_and_absent_delete_succeeds(cloud):
    assert cloud.inventory() == []
    cloud.teardown()  # nothing was ever created: not-found everywhere is success
    cloud.provision()
    assert cloud.inventory()
    cloud.teardown()
    assert cloud.inventory() == []
    cloud.teardown()  # everything is gone already
    assert cloud.inventory() == []


# --- honest capabilities ------------------------------------------------------------------------------


def _observed_driver(cloud) -> set[str]:
    """Who installs the GPU driver on the GPU pools the emulator holds: {"cloud"} / {"operator"}."""
    if cloud.kind == "eks":
        eks = cloud.provider.aws("us-east-1").client("eks")
        out = set()
        for pool in cloud.spec.target.node_pools:
            group = eks.describe_nodegroup(
                clusterName=cloud.spec.target.cluster_name, nodegroupName=pool.name
            )
            if pool.gpu.count:
                out.add("cloud" if group["nodegroup"]["amiType"].endswith("_NVIDIA") else "operator")
        return out
    if cloud.kind == "gke":
        from google.cloud import container_v1

        cluster = next(iter(cloud.server.clusters.values()))
        versions = {
            acc["gpuDriverInstallationConfig"]["gpuDriverVersion"]
            for p in cluster["nodePools"]
            for acc in p["config"].get("accelerators", [])
        }
        disabled = {
            container_v1.GPUDriverInstallationConfig.GPUDriverVersion.INSTALLATION_DISABLED.value,
            "INSTALLATION_DISABLED",
        }
        return {"operator" if v in disabled else "cloud" for v in versions}
    cluster = next(iter(cloud.server.clusters.values()))
    return {
        "operator" if p["gpuProfile"]["driver"] == "None" else "cloud"
        for p in cluster["properties"]["agentPoolProfiles"]
        if "gpuProfile" in p
    }


def test_capabilities_are_honest(cloud, tmp_path: Path):
    declared = cloud.provider.capabilities
    ref = cloud.provision()
    _, storage = cloud.refs[-1]

    if Capability.KUBERNETES in declared:
        access = cloud.provider.kube_access(ref)
        path = access.write_kubeconfig(tmp_path / "kubeconfig")
        config = yaml.safe_load(path.read_text())
        assert config["clusters"][0]["cluster"]["server"] == access.server and access.server
        assert access.token or access.client_cert_data or cloud.kind == "gke"  # GKE fake: anonymous
        assert path.stat().st_mode & 0o077 == 0
    else:
        with pytest.raises(NotSupportedError):
            cloud.provider.kube_access(ref)

    if Capability.GPU_NODE_POOLS in declared and cloud.kind != "ecs":
        pools = {p.name for p in cloud.spec.target.node_pools}
        found = {
            item.rsplit("/", 1)[-1] for item in cloud.inventory() if "node" in item or "agent-pool" in item
        }
        assert pools <= found

    if cloud.kind != "ecs":
        # The driver the GPU pools got is the one infra/providers.yaml (and the spec) promise the
        # GPU operator values: the kube stages and the cloud never disagree.
        expected = "cloud" if plan.gpu_driver_by_cloud(cloud.spec) else "operator"
        assert _observed_driver(cloud) == {expected}
        assert {Capability.MANAGED_GPU_DRIVER, Capability.OPERATOR_GPU_DRIVER} & declared

    caps = capabilities.capabilities(cloud.kind) if cloud.kind != "ecs" else None
    if cloud.spec.model.cache.access_mode == "ReadWriteMany" and cloud.kind != "ecs":
        assert Capability.RWX_STORAGE in declared
        assert storage.name == (cloud.spec.model.cache.storage_class or caps.storage.rwx_class)
    if cloud.kind == "eks":
        assert storage.name == "efs-sc" and storage.manifests[0]["parameters"]["fileSystemId"].startswith(
            "fs-"
        )
        efs = cloud.provider.aws("us-east-1").client("efs")
        fs_id = storage.manifests[0]["parameters"]["fileSystemId"]
        targets = efs.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]
        assert {t["SubnetId"] for t in targets} == set(ref.details["subnet_ids"])
        ec2 = cloud.provider.aws("us-east-1").client("ec2")
        groups = efs.describe_mount_target_security_groups(MountTargetId=targets[0]["MountTargetId"])
        perms = ec2.describe_security_groups(GroupIds=groups["SecurityGroups"])["SecurityGroups"][0][
            "IpPermissions"
        ]
        assert any(p.get("FromPort") == 2049 for p in perms)
        assert any("add-on" in note for note in storage.notes)  # moto: no add-on API, said so

    if cloud.kind == "gke":  # standard-rwx (RWX) needs the Filestore CSI add-on, enabled at creation
        cluster = next(iter(cloud.server.clusters.values()))
        enabled = cluster.get("addonsConfig", {}).get("gcpFilestoreCsiDriverConfig", {}).get("enabled", False)
        assert enabled == (storage.name == caps.storage.rwx_class)

    if cloud.kind == "ecs":
        assert {Capability.OWN_SERVING, Capability.SERVICE_DISCOVERY} <= declared
        ecs = cloud.provider.aws("us-east-1").client("ecs")
        for role in ("etcd", "nats"):
            service = ecs.describe_services(
                cluster=ref.details["fargate_cluster"], services=[f"{cloud.spec.name}-{role}"]
            )["services"][0]
            assert service["serviceRegistries"][0]["registryArn"] == ref.details["registries"][role]
        td = ecs.describe_task_definition(taskDefinition=f"{cloud.spec.name}-worker")["taskDefinition"]
        container = td["containerDefinitions"][0]
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert env["ETCD_ENDPOINTS"] == f"http://etcd.{ref.details['namespace']}:2379"
        assert td["networkMode"] == "host"
        assert container["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
        assert cloud.provider.serving().frontend_address(cloud.spec) is None  # moto runs no service tasks
