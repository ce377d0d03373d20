"""Amazon ECS with boto3: the serving platform of Dynamo's ECS guide (no Kubernetes).

``ensure_cluster``: task execution role (+ read access to this deployment's secrets) and an EC2
  instance role/profile; the VPC (spec's, or a created public one) and a security group (all traffic
  within it, the frontend port from the VPC); the GPU EC2 cluster and the Fargate cluster; a Cloud
  Map private DNS namespace with the etcd and nats discovery services.
``ensure_gpu_nodes``: GPU capacity for the EC2 cluster: a launch template (ECS GPU-optimized AMI from
  SSM, user data joining the cluster with GPU support), an Auto Scaling group of
  target.desired_instances, a capacity provider, attached as the cluster's default strategy.
Serving (task definitions, services, log groups, secrets, the frontend address) is in
ecs_serving.EcsServing; ``delete_cluster`` drains that first, then deletes everything above.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any, ClassVar

from runtime import settings
from runtime.errors import NotSupportedError, PermanentError
from runtime.gateways.aws import Aws, Waits, session_for, tag_dict, tag_list, tag_spec
from runtime.providers import aws_iam as _aws_iam
from runtime.providers import aws_net as _aws_net
from runtime.providers.base import Capability, ClusterRef, KubeAccess, StorageClass
from runtime.render import cloud_plan as plan
from runtime.render import cloud_plan_aws as plan_aws
from runtime.render import ecs_task as ecs_render
from runtime.spec import EcsTarget

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import DeploymentSpec

GPU_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id"
ALLOW_CIDR_ENV = settings.ECS_ALLOW_CIDR
_NF_SD = ("NamespaceNotFound", "ServiceNotFound", "InstanceNotFound")


def role_specs(spec: DeploymentSpec) -> dict[str, plan_aws.RoleSpec]:
    t = spec.target_as(EcsTarget)
    n = ecs_render.names(spec)
    return {
        "execution": plan_aws.RoleSpec(
            n.execution_role,
            ("ecs-tasks.amazonaws.com",),
            (plan_aws.managed_policy_arn(t.region, "service-role/AmazonECSTaskExecutionRolePolicy"),),
        ),
        "instance": plan_aws.RoleSpec(
            n.instance_role,
            ("ec2.amazonaws.com",),
            (plan_aws.managed_policy_arn(t.region, "service-role/AmazonEC2ContainerServiceforEC2Role"),),
            instance_profile=True,
        ),
    }


def secrets_policy(spec: DeploymentSpec) -> str:
    t = spec.target_as(EcsTarget)
    prefix = ecs_render.names(spec).secret_prefix
    arn = f"arn:{plan_aws.partition(t.region)}:secretsmanager:{t.region}:*:secret:{prefix}/*"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [arn]}
            ],
        },
        sort_keys=True,
    )


class EcsProvider:
    name: ClassVar[str] = "ecs"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.CREATES_CLUSTER,
            Capability.GPU_NODE_POOLS,
            Capability.MANAGED_GPU_DRIVER,
            Capability.OWN_SERVING,
            Capability.SERVICE_DISCOVERY,
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

    def serving(self) -> Any:
        from runtime.targets.ecs.serving import EcsServing

        return EcsServing(self)

    # --- platform -----------------------------------------------------------------------------------

    def ensure_cluster(self, spec: DeploymentSpec) -> ClusterRef:
        t = spec.target_as(EcsTarget)
        aws, n = self.aws(t.region), ecs_render.names(spec)
        arns = {k: _aws_iam.ensure_role(aws, spec, r) for k, r in role_specs(spec).items()}
        policy = aws.get(
            "iam",
            "get_role_policy",
            missing=("NoSuchEntity",),
            RoleName=n.execution_role,
            PolicyName="dynadeploy-secrets",
        )
        if policy is None or json.dumps(policy["PolicyDocument"], sort_keys=True) != secrets_policy(spec):
            aws.call(
                "iam",
                "put_role_policy",
                RoleName=n.execution_role,
                PolicyName="dynadeploy-secrets",
                PolicyDocument=secrets_policy(spec),
            )
        net = _aws_net.ensure_network(aws, spec, t.cluster_name, zones=2, cluster=None)
        sg = _aws_net.ensure_security_group(
            aws,
            spec,
            net.vpc_id,
            n.security_group,
            "dynadeploy ECS tasks",
            ecs_render.ingress(net.cidr, settings.ecs_allow_cidr()),
        )
        for cluster, providers in ((n.gpu_cluster, None), (n.fargate_cluster, ["FARGATE", "FARGATE_SPOT"])):
            if self._cluster(aws, cluster) is None:
                extra = {"capacityProviders": providers} if providers else {}
                aws.call(
                    "ecs",
                    "create_cluster",
                    clusterName=cluster,
                    tags=tag_list(plan.aws_tags(spec), "key", "value"),
                    settings=[{"name": "containerInsights", "value": "enabled"}],
                    **extra,
                )
        ns_id = self._ensure_namespace(aws, spec, net.vpc_id)
        registries = {
            name: self._ensure_discovery_service(aws, spec, ns_id, name) for name in ecs_render.DISCOVERY
        }
        return ClusterRef(
            kind="ecs",
            name=n.gpu_cluster,
            location=t.region,
            deployment_id=plan.deployment_id(spec),
            status="ACTIVE",
            details={
                "fargate_cluster": n.fargate_cluster,
                "vpc_id": net.vpc_id,
                "vpc_cidr": net.cidr,
                "subnet_ids": net.subnet_ids,
                "security_group_id": sg,
                "execution_role_arn": arns["execution"],
                "namespace": n.namespace,
                "namespace_id": ns_id,
                "registries": registries,
            },
        )

    def _cluster(self, aws: Aws, name: str) -> dict[str, Any] | None:
        found = aws.call("ecs", "describe_clusters", clusters=[name], include=["TAGS"])["clusters"]
        return found[0] if found and found[0]["status"] in ("ACTIVE", "PROVISIONING") else None

    def _namespace(self, aws: Aws, name: str) -> dict[str, Any] | None:
        return next(
            (
                ns
                for ns in aws.paginate("servicediscovery", "list_namespaces", "Namespaces")
                if ns["Name"] == name
            ),
            None,
        )

    def _ensure_namespace(self, aws: Aws, spec: DeploymentSpec, vpc_id: str) -> str:
        name = ecs_render.names(spec).namespace
        found = self._namespace(aws, name)
        if found is None:
            op = aws.create(
                "servicediscovery",
                "create_private_dns_namespace",
                exists=("NamespaceAlreadyExists",),
                Name=name,
                Vpc=vpc_id,
                CreatorRequestId=plan_aws.token(spec, "namespace"),
                Description=f"dynadeploy {plan.deployment_id(spec)}",
                Tags=tag_list(plan.aws_tags(spec)),
            )
            if op is not None:
                aws.wait(
                    lambda: self._operation_done(aws, op["OperationId"]), what=f"Cloud Map namespace {name}"
                )
            found = aws.wait(lambda: self._namespace(aws, name), what=f"Cloud Map namespace {name}")
        return found["Id"]

    def _operation_done(self, aws: Aws, op_id: str) -> bool | None:
        status = aws.call("servicediscovery", "get_operation", OperationId=op_id)["Operation"]
        if status["Status"] == "FAIL":
            raise PermanentError(
                f"Cloud Map operation failed: {status.get('ErrorMessage', '')}",
                hint="see the Cloud Map console; fix and rerun",
            )
        return True if status["Status"] == "SUCCESS" else None

    def _discovery_services(self, aws: Aws, ns_id: str) -> dict[str, dict[str, Any]]:
        items = aws.paginate(
            "servicediscovery",
            "list_services",
            "Services",
            Filters=[{"Name": "NAMESPACE_ID", "Values": [ns_id], "Condition": "EQ"}],
        )
        return {s["Name"]: s for s in items}

    def _ensure_discovery_service(self, aws: Aws, spec: DeploymentSpec, ns_id: str, name: str) -> str:
        found = self._discovery_services(aws, ns_id).get(name)
        if found is None:
            found = aws.create(
                "servicediscovery",
                "create_service",
                exists=("ServiceAlreadyExists",),
                Name=name,
                NamespaceId=ns_id,
                CreatorRequestId=plan_aws.token(spec, f"discovery/{name}"),
                DnsConfig={"RoutingPolicy": "MULTIVALUE", "DnsRecords": [{"Type": "A", "TTL": 10}]},
                HealthCheckCustomConfig={"FailureThreshold": 1},
                Tags=tag_list(plan.aws_tags(spec)),
            )
            found = found["Service"] if found else self._discovery_services(aws, ns_id)[name]
        return found["Arn"]

    # --- GPU capacity -------------------------------------------------------------------------------

    def ensure_gpu_nodes(self, spec: DeploymentSpec, ref: ClusterRef) -> list[str]:
        t = spec.target_as(EcsTarget)
        aws, n = self.aws(t.region), ecs_render.names(spec)
        found = aws.get(
            "ec2",
            "describe_launch_templates",
            missing=("InvalidLaunchTemplateName.NotFoundException",),
            LaunchTemplateNames=[n.launch_template],
        )
        if not found or not found.get("LaunchTemplates"):
            ami = aws.call("ssm", "get_parameter", Name=GPU_AMI_PARAMETER)["Parameter"]["Value"]
            aws.create(
                "ec2",
                "create_launch_template",
                exists=("InvalidLaunchTemplateName.AlreadyExistsException",),
                LaunchTemplateName=n.launch_template,
                ClientToken=plan_aws.token(spec, "launch-template"),
                TagSpecifications=tag_spec("launch-template", plan.aws_tags(spec, n.launch_template)),
                LaunchTemplateData=self._launch_data(spec, ref, ami),
            )
        groups = aws.call(
            "autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[n.auto_scaling_group]
        )["AutoScalingGroups"]
        if not groups:
            tags = {**plan.aws_tags(spec, n.auto_scaling_group), "AmazonECSManaged": ""}
            aws.create(
                "autoscaling",
                "create_auto_scaling_group",
                exists=("AlreadyExists",),
                AutoScalingGroupName=n.auto_scaling_group,
                MinSize=0,
                MaxSize=t.desired_instances,
                DesiredCapacity=t.desired_instances,
                VPCZoneIdentifier=",".join(ref.details["subnet_ids"]),
                LaunchTemplate={"LaunchTemplateName": n.launch_template, "Version": "$Latest"},
                Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in tags.items()],
            )
            groups = aws.call(
                "autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[n.auto_scaling_group]
            )["AutoScalingGroups"]
        elif (
            groups[0]["DesiredCapacity"] != t.desired_instances or groups[0]["MaxSize"] != t.desired_instances
        ):
            aws.call(
                "autoscaling",
                "update_auto_scaling_group",
                AutoScalingGroupName=n.auto_scaling_group,
                MaxSize=t.desired_instances,
                DesiredCapacity=t.desired_instances,
            )
        if not self._capacity_provider(aws, n.capacity_provider):
            aws.create_or_found(
                "ecs",
                "create_capacity_provider",
                exists=("ClientException",),
                found=lambda: self._capacity_provider(aws, n.capacity_provider),
                name=n.capacity_provider,
                tags=tag_list(plan.aws_tags(spec), "key", "value"),
                autoScalingGroupProvider={
                    "autoScalingGroupArn": groups[0]["AutoScalingGroupARN"],
                    "managedScaling": {"status": "ENABLED", "targetCapacity": 100},
                    "managedTerminationProtection": "DISABLED",
                },
            )
        cluster = self._cluster(aws, n.gpu_cluster) or {}
        if n.capacity_provider not in cluster.get("capacityProviders", []):
            aws.call(
                "ecs",
                "put_cluster_capacity_providers",
                cluster=n.gpu_cluster,
                capacityProviders=[n.capacity_provider],
                defaultCapacityProviderStrategy=[{"capacityProvider": n.capacity_provider, "weight": 1}],
            )
        return [n.auto_scaling_group]

    def _launch_data(self, spec: DeploymentSpec, ref: ClusterRef, ami: str) -> dict[str, Any]:
        t = spec.target_as(EcsTarget)
        n = ecs_render.names(spec)
        return {
            "ImageId": ami,
            "InstanceType": t.instance_type,
            "IamInstanceProfile": {"Name": n.instance_role},
            "NetworkInterfaces": [
                {
                    "DeviceIndex": 0,
                    "AssociatePublicIpAddress": True,
                    "Groups": [ref.details["security_group_id"]],
                }
            ],
            "UserData": base64.b64encode(ecs_render.user_data(n.gpu_cluster).encode()).decode(),
            "BlockDeviceMappings": [
                {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 200, "VolumeType": "gp3"}}
            ],
            "MetadataOptions": {"HttpTokens": "required"},
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tag_list(plan.aws_tags(spec, n.gpu_cluster))}
            ],
        }

    def _capacity_provider(self, aws: Aws, name: str) -> dict[str, Any] | None:
        found = aws.call("ecs", "describe_capacity_providers", capacityProviders=[name])["capacityProviders"]
        return found[0] if found and found[0].get("status") == "ACTIVE" else None

    # --- what ECS does not have ---------------------------------------------------------------------

    def kube_access(self, ref: ClusterRef) -> KubeAccess:
        raise NotSupportedError(
            "ECS has no Kubernetes API", hint="use ecs_serving.EcsServing for ECS targets"
        )

    def storage_class(self, spec: DeploymentSpec, ref: ClusterRef) -> StorageClass:
        return StorageClass(
            None,
            spec.model.cache.access_mode,
            notes=("ECS has no model cache volume: workers download the pinned revision",),
        )

    # --- inventory and teardown ---------------------------------------------------------------------

    def inventory(self, spec: DeploymentSpec) -> list[str]:
        t = spec.target_as(EcsTarget)
        aws, n = self.aws(t.region), ecs_render.names(spec)
        out = self.serving().inventory(spec)
        for name in (n.gpu_cluster, n.fargate_cluster):
            cluster = self._cluster(aws, name)
            if cluster and plan.owned(tag_dict(cluster.get("tags")), spec, plan.AWS_TAG_KEY):
                out.append(f"ecs:cluster/{name}")
        if self._capacity_provider(aws, n.capacity_provider):
            out.append(f"ecs:capacity-provider/{n.capacity_provider}")
        out += [
            f"autoscaling:group/{g['AutoScalingGroupName']}"
            for g in aws.call(
                "autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[n.auto_scaling_group]
            )["AutoScalingGroups"]
            if plan.owned(tag_dict(g.get("Tags")), spec, plan.AWS_TAG_KEY)
        ]
        out += [
            f"ec2:launch-template/{lt['LaunchTemplateId']}"
            for lt in aws.call(
                "ec2",
                "describe_launch_templates",
                Filters=[{"Name": f"tag:{plan.AWS_TAG_KEY}", "Values": [plan.deployment_id(spec)]}],
            )["LaunchTemplates"]
        ]
        ns = self._namespace(aws, n.namespace)
        if ns:
            out.append(f"servicediscovery:namespace/{ns['Id']}")
            out += [
                f"servicediscovery:service/{s['Id']}"
                for s in self._discovery_services(aws, ns["Id"]).values()
            ]
        out += _aws_iam.roles_inventory(aws, spec, [r.name for r in role_specs(spec).values()])
        out += _aws_net.network_inventory(aws, spec)
        return sorted(set(out))

    def delete_cluster(self, spec: DeploymentSpec) -> None:
        t = spec.target_as(EcsTarget)
        aws, n = self.aws(t.region), ecs_render.names(spec)
        self.serving().undeploy(spec)
        gpu = self._cluster(aws, n.gpu_cluster)
        if gpu and n.capacity_provider in gpu.get("capacityProviders", []):
            aws.call(
                "ecs",
                "put_cluster_capacity_providers",
                cluster=n.gpu_cluster,
                capacityProviders=[],
                defaultCapacityProviderStrategy=[],
            )
        aws.delete(
            "autoscaling",
            "delete_auto_scaling_group",
            missing=("ValidationError",),
            AutoScalingGroupName=n.auto_scaling_group,
            ForceDelete=True,
        )
        aws.wait(
            lambda: (
                True
                if not aws.call(
                    "autoscaling",
                    "describe_auto_scaling_groups",
                    AutoScalingGroupNames=[n.auto_scaling_group],
                )["AutoScalingGroups"]
                else None
            ),
            what=f"deletion of {n.auto_scaling_group}",
        )
        if self._capacity_provider(aws, n.capacity_provider):
            aws.retry_dependent(
                lambda: aws.delete(
                    "ecs",
                    "delete_capacity_provider",
                    missing=("ClientException",),
                    capacityProvider=n.capacity_provider,
                ),
                what="deleting the capacity provider",
                codes=("ResourceInUseException",),
            )
            # ClientException also means "in use": wait until it is really gone (a timeout says why).
            aws.wait(
                lambda: None if self._capacity_provider(aws, n.capacity_provider) else True,
                what=f"deletion of capacity provider {n.capacity_provider}",
            )
        for name in (n.gpu_cluster, n.fargate_cluster):
            cluster = self._cluster(aws, name)
            if not cluster or not plan.owned(tag_dict(cluster.get("tags")), spec, plan.AWS_TAG_KEY):
                continue
            for arn in aws.paginate("ecs", "list_container_instances", "containerInstanceArns", cluster=name):
                aws.delete(
                    "ecs",
                    "deregister_container_instance",
                    missing=("ClientException",),
                    cluster=name,
                    containerInstance=arn,
                    force=True,
                )
            aws.retry_dependent(
                lambda: aws.delete(
                    "ecs", "delete_cluster", missing=("ClusterNotFoundException",), cluster=name
                ),
                what=f"deleting ECS cluster {name}",
                codes=(
                    "ClusterContainsTasksException",
                    "ClusterContainsServicesException",
                    "ClusterContainsContainerInstancesException",
                    "UpdateInProgressException",
                ),
            )
        for lt in aws.call(
            "ec2",
            "describe_launch_templates",
            Filters=[{"Name": f"tag:{plan.AWS_TAG_KEY}", "Values": [plan.deployment_id(spec)]}],
        )["LaunchTemplates"]:
            aws.delete(
                "ec2",
                "delete_launch_template",
                missing=("InvalidLaunchTemplateId.NotFound",),
                LaunchTemplateId=lt["LaunchTemplateId"],
            )
        self._delete_namespace(aws, n.namespace)
        _aws_iam.delete_roles(aws, spec, [r.name for r in role_specs(spec).values()])
        _aws_net.delete_network(aws, spec)

    def _delete_namespace(self, aws: Aws, name: str) -> None:
        ns = self._namespace(aws, name)
        if ns is None:
            return
        for service in self._discovery_services(aws, ns["Id"]).values():
            for inst in aws.paginate(
                "servicediscovery", "list_instances", "Instances", ServiceId=service["Id"]
            ):
                aws.delete(
                    "servicediscovery",
                    "deregister_instance",
                    missing=_NF_SD,
                    ServiceId=service["Id"],
                    InstanceId=inst["Id"],
                )
            aws.retry_dependent(
                lambda: aws.delete("servicediscovery", "delete_service", missing=_NF_SD, Id=service["Id"]),
                what=f"deleting Cloud Map service {service['Name']}",
                codes=("ResourceInUse",),
            )
        op = aws.get("servicediscovery", "delete_namespace", missing=_NF_SD, Id=ns["Id"])
        if op is not None:
            aws.wait(
                lambda: self._operation_done(aws, op["OperationId"]), what=f"deletion of namespace {name}"
            )
