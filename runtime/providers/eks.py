"""Amazon EKS with boto3: IAM roles, VPC, the cluster, managed node groups, EFS, kube access, teardown.

What ``ensure_cluster`` creates (each create-or-get, tagged with the deployment id):
  IAM roles <cluster>-<region>-{cluster,node,ebs-csi[,efs-csi]} with their managed policies; a VPC
  with an internet gateway, a public route table and two public subnets in EKS-supported zones
  (unless target.vpc_id/subnet_ids are given); the cluster at target.kubernetes_version with
  API_AND_CONFIG_MAP access and the creator as admin.
``ensure_gpu_nodes``: one managed node group per pool (NVIDIA AMI type when the cloud installs the
  driver, GPU taint, labels, min/max/desired, spot); EFA pools get an EFA security group, a cluster
  placement group and a launch template with an EFA interface.
``storage_class``: RWX -> EFS file system, NFS security group, one mount target per zone of the node
  subnets, the EFS CSI add-on (Pod Identity) and the efs-sc StorageClass as data; RWO -> the EBS CSI
  add-on and a gp3 class.
``delete_cluster``: load balancers Kubernetes made, node groups, cluster, Kubernetes' volumes/ENIs/SGs,
  EFS, launch templates, placement groups, roles, the VPC. Only objects carrying our tag are deleted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from runtime.errors import NotSupportedError, PermanentError, TransientError
from runtime.gateways import eks_token as _eks_token
from runtime.gateways.aws import Aws, Waits, http_status, session_for, tag_dict, tag_filters, tag_spec
from runtime.providers import aws_iam as _aws_iam
from runtime.providers import aws_net as _aws_net
from runtime.providers.base import Capability, ClusterRef, KubeAccess, StorageClass
from runtime.render import cloud_plan as plan
from runtime.render import cloud_plan_aws as plan_aws
from runtime.spec import EksTarget

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import DeploymentSpec

log = logging.getLogger(__name__)
_NF = ("ResourceNotFoundException",)
_NF_EFS = ("FileSystemNotFound",)
_NF_MT = ("MountTargetNotFound",)


class EksProvider:
    name: ClassVar[str] = "eks"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.KUBERNETES,
            Capability.CREATES_CLUSTER,
            Capability.GPU_NODE_POOLS,
            Capability.MANAGED_GPU_DRIVER,
            Capability.OPERATOR_GPU_DRIVER,
            Capability.RWX_STORAGE,
            Capability.EFA,
            Capability.SPOT,
        }
    )

    def __init__(self, *, session: Any = None, waits: Waits | None = None, credentials: Any = None) -> None:
        # credentials: an aws-credentials block's runtime.domain.credentials.AwsCredentials (None: the default chain)
        self._session = session_for(credentials) if credentials is not None else session
        self._waits = waits
        self._clients: dict[str, Aws] = {}

    def aws(self, region: str) -> Aws:
        if region not in self._clients:
            self._clients[region] = Aws(region, session=self._session, waits=self._waits)
        return self._clients[region]

    # --- cluster ------------------------------------------------------------------------------------

    def ensure_cluster(self, spec: DeploymentSpec) -> ClusterRef:
        t = spec.target_as(EksTarget)
        aws = self.aws(t.region)
        arns = {k: _aws_iam.ensure_role(aws, spec, r) for k, r in plan_aws.eks_roles(t).items()}
        cluster = self._describe(aws, t.cluster_name)
        if cluster is not None and cluster["status"] == "DELETING":
            self._wait_cluster_gone(aws, t.cluster_name)
            cluster = None
        if cluster is not None:  # its network exists already (ours, or the one it was made in)
            net = _aws_net.network_of(aws, cluster.get("resourcesVpcConfig", {}).get("subnetIds") or [])
        else:
            net = _aws_net.ensure_network(aws, spec, t.cluster_name, zones=2, cluster=t.cluster_name)
            aws.create(
                "eks",
                "create_cluster",
                exists=("ResourceInUseException",),
                name=t.cluster_name,
                version=t.kubernetes_version,
                roleArn=arns["cluster"],
                resourcesVpcConfig={
                    "subnetIds": net.subnet_ids,
                    "endpointPublicAccess": True,
                    "endpointPrivateAccess": True,
                },
                accessConfig={
                    "authenticationMode": "API_AND_CONFIG_MAP",
                    "bootstrapClusterCreatorAdminPermissions": True,
                },
                tags=plan.aws_tags(spec, t.cluster_name),
                clientRequestToken=plan_aws.token(spec, "cluster"),
            )
        cluster = aws.wait(lambda: self._active(aws, t.cluster_name), what=f"EKS cluster {t.cluster_name}")
        vpc_config = cluster.get("resourcesVpcConfig", {})
        return ClusterRef(
            kind="eks",
            name=t.cluster_name,
            location=t.region,
            deployment_id=plan.deployment_id(spec),
            endpoint=cluster.get("endpoint"),
            ca_data=cluster.get("certificateAuthority", {}).get("data"),
            version=cluster.get("version"),
            status=cluster["status"],
            details={
                "arn": cluster.get("arn"),
                "vpc_id": net.vpc_id,
                "vpc_cidr": net.cidr,
                "subnet_ids": list(vpc_config.get("subnetIds") or net.subnet_ids),
                "cluster_security_group_id": vpc_config.get("clusterSecurityGroupId"),
                "owned": plan.owned(cluster.get("tags"), spec, plan.AWS_TAG_KEY),
                "role_arns": arns,
            },
        )

    def _describe(self, aws: Aws, name: str) -> dict[str, Any] | None:
        found = aws.get("eks", "describe_cluster", missing=_NF, name=name)
        return found["cluster"] if found else None

    def _active(self, aws: Aws, name: str) -> dict[str, Any] | None:
        cluster = self._describe(aws, name)
        if cluster is None:
            raise TransientError(f"EKS cluster {name} vanished while waiting for it", hint="rerun")
        if cluster["status"] == "FAILED":
            raise PermanentError(
                f"EKS cluster {name} failed to create",
                hint="see the cluster's health in the EKS console; delete it and rerun",
            )
        return cluster if cluster["status"] == "ACTIVE" else None

    def _wait_cluster_gone(self, aws: Aws, name: str) -> None:
        aws.wait(
            lambda: True if self._describe(aws, name) is None else None,
            what=f"deletion of EKS cluster {name}",
        )

    # --- node groups --------------------------------------------------------------------------------

    def ensure_gpu_nodes(self, spec: DeploymentSpec, ref: ClusterRef) -> list[str]:
        """Every node pool of the spec as a managed node group (created together, then waited for)."""
        t = spec.target_as(EksTarget)
        aws = self.aws(t.region)
        for pool in t.node_pools:
            group = self._nodegroup(aws, t.cluster_name, pool.name)
            if group is not None and group["status"] == "DELETING":
                aws.wait(
                    lambda: True if self._nodegroup(aws, t.cluster_name, pool.name) is None else None,
                    what=f"deletion of node group {pool.name}",
                )
                group = None
            if group is None:
                template = self._efa_template(aws, spec, ref, pool) if plan_aws.uses_efa(t, pool) else None
                aws.create(
                    "eks",
                    "create_nodegroup",
                    exists=("ResourceInUseException",),
                    **plan_aws.nodegroup_request(
                        spec,
                        pool,
                        cluster=t.cluster_name,
                        node_role_arn=ref.details["role_arns"]["node"],
                        subnet_ids=list(ref.details["subnet_ids"]),
                        launch_template=template,
                    ),
                )
        for pool in t.node_pools:
            group = aws.wait(
                lambda: self._settled(aws, t.cluster_name, pool.name), what=f"node group {pool.name}"
            )
            self._converge_nodegroup(aws, t.cluster_name, group, pool)
        return [p.name for p in t.node_pools]

    def _nodegroup(self, aws: Aws, cluster: str, name: str) -> dict[str, Any] | None:
        found = aws.get("eks", "describe_nodegroup", missing=_NF, clusterName=cluster, nodegroupName=name)
        return found["nodegroup"] if found else None

    def _settled(self, aws: Aws, cluster: str, name: str) -> dict[str, Any] | None:
        group = self._nodegroup(aws, cluster, name)
        if group is None:
            raise TransientError(f"node group {name} vanished while waiting for it", hint="rerun")
        if group["status"] in ("CREATE_FAILED", "DELETE_FAILED"):
            issues = "; ".join(i.get("message", "") for i in group.get("health", {}).get("issues", []))
            raise PermanentError(
                f"node group {name} is {group['status']}: {issues or 'no details'}",
                hint="fix the cause (quota, instance type in the zones), delete it, rerun",
            )
        return group if group["status"] in ("ACTIVE", "DEGRADED") else None

    def _converge_nodegroup(self, aws: Aws, cluster: str, group: dict[str, Any], pool: Any) -> None:
        """Bring an existing node group's size and labels to the spec (no-op when they match)."""
        changes: dict[str, Any] = {}
        want = plan_aws.scaling(pool)
        if {k: group.get("scalingConfig", {}).get(k) for k in want} != want:
            changes["scalingConfig"] = want
        have = group.get("labels") or {}
        if any(have.get(k) != v for k, v in pool.labels.items()):
            changes["labels"] = {"addOrUpdateLabels": dict(pool.labels)}
        if changes:
            aws.call(
                "eks", "update_nodegroup_config", clusterName=cluster, nodegroupName=pool.name, **changes
            )
            aws.wait(lambda: self._settled(aws, cluster, pool.name), what=f"update of node group {pool.name}")

    def _efa_template(self, aws: Aws, spec: DeploymentSpec, ref: ClusterRef, pool: Any) -> dict[str, str]:
        t = spec.target_as(EksTarget)
        sg = _aws_net.ensure_security_group(
            aws,
            spec,
            ref.details["vpc_id"],
            f"{t.cluster_name}-efa",
            "EFA: all traffic within the group",
            [{"IpProtocol": "-1", "Self": True}],
        )
        groups = [sg] + (
            [ref.details["cluster_security_group_id"]] if ref.details.get("cluster_security_group_id") else []
        )
        pg_name = f"{t.cluster_name}-{pool.name}-efa"
        aws.create(
            "ec2",
            "create_placement_group",
            exists=("InvalidPlacementGroup.Duplicate",),
            GroupName=pg_name,
            Strategy="cluster",
            TagSpecifications=tag_spec("placement-group", plan.aws_tags(spec, pg_name)),
        )
        lt_name = f"{t.cluster_name}-{pool.name}-efa"
        found = aws.get(
            "ec2",
            "describe_launch_templates",
            missing=("InvalidLaunchTemplateName.NotFoundException",),
            LaunchTemplateNames=[lt_name],
        )
        if not found or not found.get("LaunchTemplates"):
            aws.create(
                "ec2",
                "create_launch_template",
                exists=("InvalidLaunchTemplateName.AlreadyExistsException",),
                LaunchTemplateName=lt_name,
                ClientToken=plan_aws.token(spec, f"lt/{pool.name}"),
                LaunchTemplateData=plan_aws.efa_launch_template_data(pool, groups, pg_name),
                TagSpecifications=tag_spec("launch-template", plan.aws_tags(spec, lt_name)),
            )
        return {"name": lt_name, "version": "$Latest"}

    # --- access and storage -------------------------------------------------------------------------

    def kube_access(self, ref: ClusterRef) -> KubeAccess:
        aws = self.aws(ref.location)
        token, expires = _eks_token.get_token(aws.session, ref.location, ref.name, aws.config)
        if not ref.endpoint:
            raise TransientError(
                f"EKS cluster {ref.name} has no endpoint yet", hint="rerun once it is ACTIVE"
            )
        return KubeAccess(
            server=ref.endpoint,
            context=f"dynadeploy-eks-{ref.name}",
            ca_data=ref.ca_data,
            token=token,
            expires_at=expires,
        )

    def storage_class(self, spec: DeploymentSpec, ref: ClusterRef) -> StorageClass:
        t = spec.target_as(EksTarget)
        cache = spec.model.cache
        if cache.storage_class:
            return StorageClass(cache.storage_class, cache.access_mode)
        rwo_name, rwx_name = plan_aws.storage_class_names()
        shared = cache.access_mode != "ReadWriteOnce"
        if shared and not t.efs.enabled:
            raise NotSupportedError(
                f"model.cache.access_mode {cache.access_mode} needs EFS, and target.efs.enabled is false",
                hint="set target.efs.enabled: true, or model.cache.access_mode: ReadWriteOnce",
            )
        notes = self._ensure_addons(spec, ref, "ReadWriteMany" if shared else "ReadWriteOnce")
        if not shared:
            name = rwo_name or "auto-ebs-sc"
            return StorageClass(name, cache.access_mode, (plan_aws.ebs_storage_class(spec, name),), notes)
        fs_id = self._ensure_efs(spec, ref)
        name = rwx_name or "efs-sc"
        return StorageClass(name, cache.access_mode, (plan_aws.efs_storage_class(spec, name, fs_id),), notes)

    def _ensure_addons(self, spec: DeploymentSpec, ref: ClusterRef, access_mode: str) -> tuple[str, ...]:
        t = spec.target_as(EksTarget)
        aws = self.aws(t.region)
        notes = []
        for addon in plan_aws.addons(t, ref.details["role_arns"], access_mode):
            try:
                if (
                    aws.get(
                        "eks",
                        "describe_addon",
                        missing=_NF,
                        clusterName=t.cluster_name,
                        addonName=addon["addonName"],
                    )
                    is None
                ):
                    aws.create(
                        "eks",
                        "create_addon",
                        exists=("ResourceInUseException",),
                        clusterName=t.cluster_name,
                        resolveConflicts="OVERWRITE",
                        tags=plan.aws_tags(spec),
                        clientRequestToken=plan_aws.token(spec, f"addon/{addon['addonName']}"),
                        **addon,
                    )
            except PermanentError as exc:
                # moto has no add-on routes (a bare HTTP 404); on AWS a 404 here is a real error.
                if not (
                    aws.custom_endpoint and exc.__cause__ is not None and http_status(exc.__cause__) == 404
                ):
                    raise
                notes.append(
                    f"add-on {addon['addonName']} not installed: {aws.custom_endpoint} has no EKS add-on API"
                )
                log.warning(notes[-1])
        return tuple(notes)

    def _ensure_efs(self, spec: DeploymentSpec, ref: ClusterRef) -> str:
        t = spec.target_as(EksTarget)
        aws = self.aws(t.region)
        creation = plan_aws.token(spec, "efs")
        found = aws.call("efs", "describe_file_systems", CreationToken=creation)["FileSystems"]
        if not found:
            aws.create(
                "efs",
                "create_file_system",
                exists=("FileSystemAlreadyExists",),
                CreationToken=creation,
                Encrypted=True,
                PerformanceMode="generalPurpose",
                ThroughputMode="elastic",
                Tags=[
                    {"Key": k, "Value": v} for k, v in plan.aws_tags(spec, f"{t.cluster_name}-models").items()
                ],
            )
        fs_id = aws.wait(lambda: self._efs_available(aws, creation), what="EFS file system")
        sg = _aws_net.ensure_security_group(
            aws,
            spec,
            ref.details["vpc_id"],
            f"{t.cluster_name}-efs",
            "NFS to EFS from the cluster VPC",
            [
                {
                    "IpProtocol": "tcp",
                    "FromPort": plan_aws.NFS_PORT,
                    "ToPort": plan_aws.NFS_PORT,
                    "IpRanges": [{"CidrIp": ref.details["vpc_cidr"]}],
                }
            ],
        )
        targets = aws.call("efs", "describe_mount_targets", FileSystemId=fs_id)["MountTargets"]
        zones = {m["AvailabilityZoneName"] for m in targets if "AvailabilityZoneName" in m}
        zones |= {s["AvailabilityZone"] for s in self._subnets(aws, [m["SubnetId"] for m in targets])}
        for subnet in self._subnets(aws, list(ref.details["subnet_ids"])):
            if subnet["AvailabilityZone"] not in zones:  # EFS allows one mount target per zone
                aws.create(
                    "efs",
                    "create_mount_target",
                    exists=("MountTargetConflict",),
                    FileSystemId=fs_id,
                    SubnetId=subnet["SubnetId"],
                    SecurityGroups=[sg],
                )
                zones.add(subnet["AvailabilityZone"])
        aws.wait(
            lambda: (
                True
                if all(
                    m["LifeCycleState"] == "available"
                    for m in aws.call("efs", "describe_mount_targets", FileSystemId=fs_id)["MountTargets"]
                )
                else None
            ),
            what="EFS mount targets",
        )
        return fs_id

    def _efs_available(self, aws: Aws, creation: str) -> str | None:
        found = aws.call("efs", "describe_file_systems", CreationToken=creation)["FileSystems"]
        return found[0]["FileSystemId"] if found and found[0]["LifeCycleState"] == "available" else None

    def _subnets(self, aws: Aws, ids: list[str]) -> list[dict[str, Any]]:
        return aws.call("ec2", "describe_subnets", SubnetIds=ids)["Subnets"] if ids else []

    # --- inventory and teardown ---------------------------------------------------------------------

    def inventory(self, spec: DeploymentSpec) -> list[str]:
        t = spec.target_as(EksTarget)
        aws = self.aws(t.region)
        out: list[str] = []
        cluster = self._describe(aws, t.cluster_name)
        if cluster is not None:
            if plan.owned(cluster.get("tags"), spec, plan.AWS_TAG_KEY):
                out.append(f"eks:cluster/{t.cluster_name}")
            for name in aws.paginate("eks", "list_nodegroups", "nodegroups", clusterName=t.cluster_name):
                group = self._nodegroup(aws, t.cluster_name, name)
                if group and plan.owned(group.get("tags"), spec, plan.AWS_TAG_KEY):
                    out.append(f"eks:nodegroup/{t.cluster_name}/{name}")
        out += [f"efs:file-system/{fs_id}" for fs_id in self._owned_file_systems(aws, spec)]
        out += _aws_iam.roles_inventory(aws, spec, [r.name for r in plan_aws.eks_roles(t).values()])
        out += _aws_net.network_inventory(aws, spec)
        owner = tag_filters({plan.AWS_TAG_KEY: plan.deployment_id(spec)})
        out += [
            f"ec2:launch-template/{lt['LaunchTemplateId']}"
            for lt in aws.call("ec2", "describe_launch_templates", Filters=owner)["LaunchTemplates"]
        ]
        if t.efa:  # (moto has no placement-group API; only EFA pools make them)
            out += [
                f"ec2:placement-group/{pg['GroupName']}"
                for pg in aws.call("ec2", "describe_placement_groups", Filters=owner)["PlacementGroups"]
            ]
        if cluster is None or plan.owned(cluster.get("tags"), spec, plan.AWS_TAG_KEY):
            out += _aws_net.kubernetes_leftovers(aws, t.cluster_name)
        return sorted(set(out))

    def _owned_file_systems(self, aws: Aws, spec: DeploymentSpec) -> list[str]:
        return [
            fs["FileSystemId"]
            for fs in aws.paginate("efs", "describe_file_systems", "FileSystems")
            if plan.owned(tag_dict(fs.get("Tags")), spec, plan.AWS_TAG_KEY)
        ]

    def delete_cluster(self, spec: DeploymentSpec) -> None:
        t = spec.target_as(EksTarget)
        aws = self.aws(t.region)
        cluster = self._describe(aws, t.cluster_name)
        ours = cluster is None or plan.owned(cluster.get("tags"), spec, plan.AWS_TAG_KEY)
        if cluster is not None:
            if ours:
                _aws_net.delete_kubernetes_load_balancers(aws, t.cluster_name)
            groups = [
                n
                for n in aws.paginate("eks", "list_nodegroups", "nodegroups", clusterName=t.cluster_name)
                if ours
                or plan.owned(
                    (self._nodegroup(aws, t.cluster_name, n) or {}).get("tags"), spec, plan.AWS_TAG_KEY
                )
            ]
            for name in groups:
                aws.delete(
                    "eks", "delete_nodegroup", missing=_NF, clusterName=t.cluster_name, nodegroupName=name
                )
            for name in groups:
                aws.wait(
                    lambda: True if self._nodegroup(aws, t.cluster_name, name) is None else None,
                    what=f"deletion of node group {name}",
                )
            if ours:
                aws.retry_dependent(
                    lambda: aws.delete("eks", "delete_cluster", missing=_NF, name=t.cluster_name),
                    what=f"deleting EKS cluster {t.cluster_name}",
                    codes=("ResourceInUseException",),
                )
                self._wait_cluster_gone(aws, t.cluster_name)
        if ours:
            _aws_net.delete_kubernetes_leftovers(aws, t.cluster_name)
        for fs_id in self._owned_file_systems(aws, spec):
            self._delete_efs(aws, fs_id)
        owner = tag_filters({plan.AWS_TAG_KEY: plan.deployment_id(spec)})
        for lt in aws.call("ec2", "describe_launch_templates", Filters=owner)["LaunchTemplates"]:
            aws.delete(
                "ec2",
                "delete_launch_template",
                missing=("InvalidLaunchTemplateId.NotFound",),
                LaunchTemplateId=lt["LaunchTemplateId"],
            )
        for pg in (
            aws.call("ec2", "describe_placement_groups", Filters=owner)["PlacementGroups"] if t.efa else []
        ):
            aws.delete(
                "ec2",
                "delete_placement_group",
                missing=("InvalidPlacementGroup.Unknown",),
                GroupName=pg["GroupName"],
            )
        _aws_iam.delete_roles(aws, spec, [r.name for r in plan_aws.eks_roles(t).values()])
        _aws_net.delete_network(aws, spec)

    def _delete_efs(self, aws: Aws, fs_id: str) -> None:
        def targets() -> list[dict[str, Any]]:
            found = aws.get("efs", "describe_mount_targets", missing=_NF_EFS, FileSystemId=fs_id)
            return found["MountTargets"] if found else []

        for target in targets():
            aws.delete("efs", "delete_mount_target", missing=_NF_MT, MountTargetId=target["MountTargetId"])
        aws.wait(lambda: True if not targets() else None, what=f"deletion of mount targets of {fs_id}")
        aws.retry_dependent(
            lambda: aws.delete("efs", "delete_file_system", missing=_NF_EFS, FileSystemId=fs_id),
            what=f"deleting EFS {fs_id}",
            codes=("FileSystemInUse",),
        )
