"""Pure decisions for AWS (EKS, and the VPC/IAM parts ECS shares): names, roles, network layout,
node group requests, EFS and its StorageClass. No SDK, no I/O; eks.py and ecs.py send these.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.domain import capabilities, naming
from runtime.errors import PreflightError
from runtime.render import cloud_plan as plan

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import DeploymentSpec, EksTarget, NodePool

VPC_CIDR = "10.0.0.0/16"
SUBNET_BITS = 19  # /19 per zone: 8190 addresses, room for the VPC CNI's pod IPs
# Zones where EKS cannot place control-plane ENIs (EKS user guide); the Dynamo guide skips use1-az3.
EKS_UNSUPPORTED_ZONE_IDS = frozenset({"use1-az3", "usw1-az2", "cac1-az3"})
NFS_PORT = 2049
EFS_PROVISIONER = "efs.csi.aws.com"
EBS_PROVISIONER = "ebs.csi.aws.com"  # the aws-ebs-csi-driver add-on (not Auto Mode's ebs.csi.eks...)
_EFFECT = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def managed_policy_arn(region: str, name: str) -> str:
    return f"arn:{partition(region)}:iam::aws:policy/{name}"


def short_name(*parts: str, max_len: int = 64) -> str:
    """``parts`` joined by '-', cut to ``max_len`` with a stable hash suffix when longer."""
    return naming.join_name(*parts, max_len=max_len)


def token(spec: DeploymentSpec, what: str) -> str:
    """An idempotency token (EKS clientRequestToken, EFS CreationToken, ...) stable for one deployment:
    a retried create whose first answer was lost is recognised instead of creating a second object."""
    return hashlib.sha256(f"{plan.deployment_id(spec)}/{what}".encode()).hexdigest()[:48]


# --- IAM ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleSpec:
    name: str
    services: tuple[str, ...]  # principals allowed to assume it
    policies: tuple[str, ...]  # managed policy ARNs
    instance_profile: bool = False
    tag_session: bool = False  # EKS Pod Identity needs sts:TagSession

    def trust_policy(self) -> str:
        actions = ["sts:AssumeRole", "sts:TagSession"] if self.tag_session else "sts:AssumeRole"
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": list(self.services)}, "Action": actions}
                ],
            }
        )


def eks_roles(target: EksTarget) -> dict[str, RoleSpec]:
    """cluster, node, and the CSI drivers' Pod Identity roles (efs only when EFS is on)."""
    r, c = target.region, target.cluster_name
    roles = {
        "cluster": RoleSpec(
            short_name(c, r, "cluster"),
            ("eks.amazonaws.com",),
            (managed_policy_arn(r, "AmazonEKSClusterPolicy"),),
            tag_session=True,
        ),
        "node": RoleSpec(
            short_name(c, r, "node"),
            ("ec2.amazonaws.com",),
            tuple(
                managed_policy_arn(r, p)
                for p in (
                    "AmazonEKSWorkerNodePolicy",
                    "AmazonEKS_CNI_Policy",
                    "AmazonEC2ContainerRegistryReadOnly",
                )
            ),
        ),
        "ebs-csi": RoleSpec(
            short_name(c, r, "ebs-csi"),
            ("pods.eks.amazonaws.com",),
            (managed_policy_arn(r, "service-role/AmazonEBSCSIDriverPolicy"),),
            tag_session=True,
        ),
    }
    if target.efs.enabled:
        roles["efs-csi"] = RoleSpec(
            short_name(c, r, "efs-csi"),
            ("pods.eks.amazonaws.com",),
            (managed_policy_arn(r, "service-role/AmazonEFSCSIDriverPolicy"),),
            tag_session=True,
        )
    return roles


# --- network ------------------------------------------------------------------------------------------


def choose_zones(zones: list[dict[str, Any]], count: int, *, eks: bool) -> list[str]:
    """``count`` available zone names in name order (EKS: skipping zones it does not support)."""
    usable = sorted(
        z["ZoneName"]
        for z in zones
        if z.get("State", "available") == "available"
        and z.get("ZoneType", "availability-zone") == "availability-zone"
        and not (eks and z.get("ZoneId") in EKS_UNSUPPORTED_ZONE_IDS)
    )
    if len(usable) < count:
        raise PreflightError(
            f"the region has {len(usable)} usable availability zones, {count} are needed",
            hint="use another region, or give target.vpc_id and target.subnet_ids",
        )
    return usable[:count]


def subnet_cidrs(count: int) -> list[str]:
    """The /19 blocks of VPC_CIDR for ``count`` subnets (10.0.0.0/19, 10.0.32.0/19, ...)."""
    step = 2 ** (32 - SUBNET_BITS)
    return [f"10.0.{(i * step) // 256}.0/{SUBNET_BITS}" for i in range(count)]


def subnet_tags(cluster: str | None) -> dict[str, str]:
    """Tags Kubernetes' load-balancer controllers look for on public subnets."""
    extra = {"kubernetes.io/role/elb": "1"}
    if cluster:
        extra[f"kubernetes.io/cluster/{cluster}"] = "shared"
    return extra


def k8s_owned_tag(cluster: str) -> str:
    """The tag key Kubernetes puts on what it creates for a cluster (ELBs, EBS volumes, SGs)."""
    return f"kubernetes.io/cluster/{cluster}"


# --- EKS ----------------------------------------------------------------------------------------------


def is_arm(instance_type: str) -> bool:
    """Graviton families carry a 'g' after the generation digit (m7g, c7gn, g5g)."""
    return bool(re.match(r"^[a-z]+\d+[a-z]*g[a-z]*\.", instance_type))


def ami_type(spec: DeploymentSpec, pool: NodePool) -> str:
    """NVIDIA AMI for GPU pools when the cloud provides the driver, else the standard AL2023 AMI."""
    arch = "ARM_64" if is_arm(pool.instance_type) else "x86_64"
    nvidia = plan.is_gpu_pool(pool) and plan.gpu_driver_by_cloud(spec)
    return f"AL2023_{arch}_{'NVIDIA' if nvidia else 'STANDARD'}"


def nodegroup_request(
    spec: DeploymentSpec,
    pool: NodePool,
    *,
    cluster: str,
    node_role_arn: str,
    subnet_ids: list[str],
    launch_template: dict[str, str] | None = None,
) -> dict[str, Any]:
    """eks.create_nodegroup arguments for one pool (the launch template carries disk size with EFA)."""
    req: dict[str, Any] = {
        "clusterName": cluster,
        "nodegroupName": pool.name,
        "scalingConfig": scaling(pool),
        "subnets": list(subnet_ids),
        "instanceTypes": [pool.instance_type],
        "amiType": ami_type(spec, pool),
        "nodeRole": node_role_arn,
        "labels": dict(pool.labels),
        "taints": [
            {"key": t["key"], "value": t["value"], "effect": _EFFECT[t["effect"]]}
            for t in plan.taints(pool, "eks")
        ],
        "capacityType": "SPOT" if pool.spot else "ON_DEMAND",
        "tags": plan.aws_tags(spec, f"{cluster}-{pool.name}"),
        "clientRequestToken": token(spec, f"nodegroup/{pool.name}"),
    }
    if launch_template:
        req["launchTemplate"] = launch_template
    else:
        req["diskSize"] = pool.disk_size_gb
    if not req["taints"]:
        del req["taints"]
    return req


def scaling(pool: NodePool) -> dict[str, int]:
    return {"minSize": pool.min, "maxSize": max(pool.max, 1), "desiredSize": pool.desired}


def uses_efa(target: EksTarget, pool: NodePool) -> bool:
    return target.efa and plan.is_gpu_pool(pool)


def efa_launch_template_data(pool: NodePool, security_group_ids: list[str], placement_group: str) -> dict:
    """Launch template data for an EFA GPU pool: EFA interface, cluster placement group, root disk."""
    return {
        "NetworkInterfaces": [{"DeviceIndex": 0, "InterfaceType": "efa", "Groups": list(security_group_ids)}],
        "Placement": {"GroupName": placement_group},
        "BlockDeviceMappings": [
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": pool.disk_size_gb, "VolumeType": "gp3"}}
        ],
    }


def addons(target: EksTarget, role_arns: dict[str, str], access_mode: str) -> list[dict[str, Any]]:
    """EKS add-ons the storage needs: the Pod Identity agent and the CSI driver of the cache's class."""
    out: list[dict[str, Any]] = [{"addonName": "eks-pod-identity-agent"}]
    if access_mode == "ReadWriteMany" and target.efs.enabled:
        out.append(
            {
                "addonName": "aws-efs-csi-driver",
                "podIdentityAssociations": [
                    {"serviceAccount": "efs-csi-controller-sa", "roleArn": role_arns["efs-csi"]}
                ],
            }
        )
    else:
        out.append(
            {
                "addonName": "aws-ebs-csi-driver",
                "podIdentityAssociations": [
                    {"serviceAccount": "ebs-csi-controller-sa", "roleArn": role_arns["ebs-csi"]}
                ],
            }
        )
    return out


def storage_class_names() -> tuple[str | None, str | None]:
    """(default RWO class, RWX class) for EKS from infra/providers.yaml."""
    caps = capabilities.capabilities("eks")
    return caps.storage.default_class, caps.storage.rwx_class


def efs_storage_class(spec: DeploymentSpec, name: str, file_system_id: str) -> dict[str, Any]:
    """The EFS StorageClass (Dynamo's EKS guide: efs-ap, 777, uid/gid 1000) for the kube stages."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "labels": naming.labels(spec.name)},
        "provisioner": EFS_PROVISIONER,
        "parameters": {
            "provisioningMode": "efs-ap",
            "fileSystemId": file_system_id,
            "directoryPerms": "777",
            "uid": "1000",
            "gid": "1000",
        },
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def ebs_storage_class(spec: DeploymentSpec, name: str) -> dict[str, Any]:
    """gp3, encrypted, WaitForFirstConsumer (the Auto Mode guide's class, on the EBS CSI add-on)."""
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "labels": naming.labels(spec.name)},
        "provisioner": EBS_PROVISIONER,
        "parameters": {"type": "gp3", "encrypted": "true"},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": True,
    }
