"""VPC, subnets, security groups, and what Kubernetes leaves in them, for EKS and ECS.

A VPC given in the spec is used, never changed or deleted. One created here is tagged with the
deployment id (atomically, through TagSpecifications), found again by that tag, and deleted with
everything inside it. Kubernetes' own cloud objects (load balancers, their security groups, EBS
volumes, ENIs) are found by the cluster tag Kubernetes puts on them and deleted before the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.errors import PermanentError
from runtime.gateways.aws import Aws, tag_dict, tag_filters, tag_spec
from runtime.render import cloud_plan as plan
from runtime.render import cloud_plan_aws as plan_aws
from runtime.spec import EcsTarget, EksTarget

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import DeploymentSpec

_NF_VPC = ("InvalidVpcID.NotFound",)
_NF_SUBNET = ("InvalidSubnetID.NotFound",)
_NF_SG = ("InvalidGroup.NotFound", "InvalidGroupId.NotFound")
_NF_IGW = ("InvalidInternetGatewayID.NotFound", "Gateway.NotAttached")
_NF_RT = ("InvalidRouteTableID.NotFound", "InvalidAssociationID.NotFound")


@dataclass(frozen=True)
class Network:
    vpc_id: str
    subnet_ids: list[str]
    cidr: str
    owned: bool  # created by this deployment (deleted with it)
    extra: dict[str, str] = field(default_factory=dict)


def _owner(spec: DeploymentSpec) -> dict[str, str]:
    return {plan.AWS_TAG_KEY: plan.deployment_id(spec)}


def _find(aws: Aws, op: str, key: str, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return aws.call("ec2", op, Filters=filters).get(key, [])


def ensure_network(aws: Aws, spec: DeploymentSpec, name: str, *, zones: int, cluster: str | None) -> Network:
    """The spec's VPC and subnets, or a tagged public VPC with one subnet per zone (create-or-get)."""
    target = spec.target
    if not isinstance(target, EksTarget | EcsTarget):
        raise TypeError(f"an AWS network is made for eks and ecs targets, not {target.kind!r}")
    if target.vpc_id:
        vpcs = aws.call("ec2", "describe_vpcs", VpcIds=[target.vpc_id])["Vpcs"]
        return Network(target.vpc_id, list(target.subnet_ids), vpcs[0]["CidrBlock"], owned=False)
    owner = _owner(spec)
    found = _find(aws, "describe_vpcs", "Vpcs", tag_filters({**owner, "Name": f"{name}-vpc"}))
    if found:
        vpc_id = found[0]["VpcId"]
    else:
        vpc = aws.call(
            "ec2",
            "create_vpc",
            CidrBlock=plan_aws.VPC_CIDR,
            TagSpecifications=tag_spec("vpc", plan.aws_tags(spec, f"{name}-vpc")),
        )["Vpc"]
        vpc_id = vpc["VpcId"]
        # DNS names for EFS mount targets, Cloud Map private DNS and EKS private endpoints.
        for attribute in ("EnableDnsSupport", "EnableDnsHostnames"):
            aws.call("ec2", "modify_vpc_attribute", VpcId=vpc_id, **{attribute: {"Value": True}})
    igw_id = _ensure_igw(aws, spec, name, vpc_id)
    rt_id = _ensure_route_table(aws, spec, name, vpc_id, igw_id)
    azs = plan_aws.choose_zones(
        aws.call("ec2", "describe_availability_zones")["AvailabilityZones"], zones, eks=cluster is not None
    )
    subnet_ids = [
        _ensure_subnet(aws, spec, name, vpc_id, az, cidr, rt_id, cluster)
        for az, cidr in zip(azs, plan_aws.subnet_cidrs(len(azs)), strict=True)
    ]
    return Network(vpc_id, subnet_ids, plan_aws.VPC_CIDR, owned=True, extra={"route_table_id": rt_id})


def network_of(aws: Aws, subnet_ids: list[str]) -> Network:
    """The VPC (and its CIDR) that ``subnet_ids`` belong to, e.g. an existing cluster's."""
    subnets = aws.call("ec2", "describe_subnets", SubnetIds=subnet_ids)["Subnets"] if subnet_ids else []
    if not subnets:
        raise PermanentError(
            "the cluster's subnets cannot be found",
            hint="check the cluster's VPC configuration in the EKS console",
        )
    vpc = aws.call("ec2", "describe_vpcs", VpcIds=[subnets[0]["VpcId"]])["Vpcs"][0]
    return Network(vpc["VpcId"], [s["SubnetId"] for s in subnets], vpc["CidrBlock"], owned=False)


def _ensure_igw(aws: Aws, spec: DeploymentSpec, name: str, vpc_id: str) -> str:
    found = _find(
        aws,
        "describe_internet_gateways",
        "InternetGateways",
        tag_filters({**_owner(spec), "Name": f"{name}-igw"}),
    )
    igw = (
        found[0]
        if found
        else aws.call(
            "ec2",
            "create_internet_gateway",
            TagSpecifications=tag_spec("internet-gateway", plan.aws_tags(spec, f"{name}-igw")),
        )["InternetGateway"]
    )
    if not any(a.get("VpcId") == vpc_id for a in igw.get("Attachments", [])):
        aws.create(
            "ec2",
            "attach_internet_gateway",
            exists=("Resource.AlreadyAssociated",),
            InternetGatewayId=igw["InternetGatewayId"],
            VpcId=vpc_id,
        )
    return igw["InternetGatewayId"]


def _ensure_route_table(aws: Aws, spec: DeploymentSpec, name: str, vpc_id: str, igw_id: str) -> str:
    found = _find(
        aws, "describe_route_tables", "RouteTables", tag_filters({**_owner(spec), "Name": f"{name}-public"})
    )
    rt = (
        found[0]
        if found
        else aws.call(
            "ec2",
            "create_route_table",
            VpcId=vpc_id,
            TagSpecifications=tag_spec("route-table", plan.aws_tags(spec, f"{name}-public")),
        )["RouteTable"]
    )
    if not any(r.get("DestinationCidrBlock") == "0.0.0.0/0" for r in rt.get("Routes", [])):
        aws.create(
            "ec2",
            "create_route",
            exists=("RouteAlreadyExists",),
            RouteTableId=rt["RouteTableId"],
            DestinationCidrBlock="0.0.0.0/0",
            GatewayId=igw_id,
        )
    return rt["RouteTableId"]


def _ensure_subnet(
    aws: Aws,
    spec: DeploymentSpec,
    name: str,
    vpc_id: str,
    az: str,
    cidr: str,
    rt_id: str,
    cluster: str | None,
) -> str:
    found = _find(
        aws,
        "describe_subnets",
        "Subnets",
        [*tag_filters({**_owner(spec), "Name": f"{name}-{az}"}), {"Name": "vpc-id", "Values": [vpc_id]}],
    )
    if found:
        subnet_id = found[0]["SubnetId"]
    else:
        tags = plan.aws_tags(spec, f"{name}-{az}", **plan_aws.subnet_tags(cluster))
        subnet = aws.create(
            "ec2",
            "create_subnet",
            exists=("InvalidSubnet.Conflict",),
            VpcId=vpc_id,
            CidrBlock=cidr,
            AvailabilityZone=az,
            TagSpecifications=tag_spec("subnet", tags),
        )
        if subnet is None:  # a lost answer: the subnet exists but the tag lookup raced it
            subnet = {
                "Subnet": _find(
                    aws,
                    "describe_subnets",
                    "Subnets",
                    [{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "cidr-block", "Values": [cidr]}],
                )[0]
            }
        subnet_id = subnet["Subnet"]["SubnetId"]
        aws.call("ec2", "modify_subnet_attribute", SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
    tables = _find(
        aws,
        "describe_route_tables",
        "RouteTables",
        [{"Name": "association.subnet-id", "Values": [subnet_id]}],
    )
    if not any(t["RouteTableId"] == rt_id for t in tables):
        aws.call("ec2", "associate_route_table", RouteTableId=rt_id, SubnetId=subnet_id)
    return subnet_id


def ensure_security_group(
    aws: Aws, spec: DeploymentSpec, vpc_id: str, name: str, description: str, ingress: list[dict[str, Any]]
) -> str:
    """A tagged security group with at least the ``ingress`` permissions (create-or-get)."""
    filters = [{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}]
    found = _find(aws, "describe_security_groups", "SecurityGroups", filters)
    if found:
        group = found[0]
    else:
        created = aws.create(
            "ec2",
            "create_security_group",
            exists=("InvalidGroup.Duplicate",),
            GroupName=name,
            Description=description,
            VpcId=vpc_id,
            TagSpecifications=tag_spec("security-group", plan.aws_tags(spec, name)),
        )
        group = (
            _find(aws, "describe_security_groups", "SecurityGroups", filters)[0]
            if created is None
            else {"GroupId": created["GroupId"], "IpPermissions": []}
        )
    missing = [p for p in ingress if not _has_permission(group.get("IpPermissions", []), p, group["GroupId"])]
    if missing:
        aws.create(
            "ec2",
            "authorize_security_group_ingress",
            exists=("InvalidPermission.Duplicate",),
            GroupId=group["GroupId"],
            IpPermissions=[_resolve_self(p, group["GroupId"]) for p in missing],
        )
    return group["GroupId"]


def _resolve_self(permission: Mapping[str, Any], group_id: str) -> dict[str, Any]:
    out = dict(permission)
    if out.pop("Self", False):
        out["UserIdGroupPairs"] = [{"GroupId": group_id}]
    return out


def _has_permission(existing: list[dict[str, Any]], wanted: Mapping[str, Any], group_id: str) -> bool:
    want = _resolve_self(wanted, group_id)
    for perm in existing:
        if (perm.get("IpProtocol"), perm.get("FromPort"), perm.get("ToPort")) != (
            want.get("IpProtocol"),
            want.get("FromPort"),
            want.get("ToPort"),
        ):
            continue
        cidrs = {r["CidrIp"] for r in perm.get("IpRanges", [])}
        groups = {g["GroupId"] for g in perm.get("UserIdGroupPairs", [])}
        if {r["CidrIp"] for r in want.get("IpRanges", [])} <= cidrs and {
            g["GroupId"] for g in want.get("UserIdGroupPairs", [])
        } <= groups:
            return True
    return False


# --- inventory and teardown ---------------------------------------------------------------------------


def owned_vpcs(aws: Aws, spec: DeploymentSpec) -> list[str]:
    return [v["VpcId"] for v in _find(aws, "describe_vpcs", "Vpcs", tag_filters(_owner(spec)))]


def network_inventory(aws: Aws, spec: DeploymentSpec) -> list[str]:
    owner = tag_filters(_owner(spec))
    out = [f"ec2:vpc/{v}" for v in owned_vpcs(aws, spec)]
    out += [f"ec2:subnet/{s['SubnetId']}" for s in _find(aws, "describe_subnets", "Subnets", owner)]
    out += [
        f"ec2:internet-gateway/{g['InternetGatewayId']}"
        for g in _find(aws, "describe_internet_gateways", "InternetGateways", owner)
    ]
    out += [
        f"ec2:route-table/{t['RouteTableId']}"
        for t in _find(aws, "describe_route_tables", "RouteTables", owner)
    ]
    out += [
        f"ec2:security-group/{g['GroupId']}"
        for g in _find(aws, "describe_security_groups", "SecurityGroups", owner)
    ]
    return out


def kubernetes_leftovers(aws: Aws, cluster: str) -> list[str]:
    """What Kubernetes created in AWS for ``cluster``: load balancers, volumes, ENIs, their SGs."""
    key = plan_aws.k8s_owned_tag(cluster)
    out = [f"elbv2:loadbalancer/{arn}" for arn in _elbv2_for(aws, cluster)]
    out += [f"elb:loadbalancer/{n}" for n in _classic_elbs_for(aws, cluster)]
    for filters in (
        [{"Name": "tag-key", "Values": [key]}],
        [{"Name": "tag:KubernetesCluster", "Values": [cluster]}],
    ):
        out += [f"ec2:volume/{v['VolumeId']}" for v in _find(aws, "describe_volumes", "Volumes", filters)]
    out += [
        f"ec2:network-interface/{n['NetworkInterfaceId']}"
        for n in _find(
            aws,
            "describe_network_interfaces",
            "NetworkInterfaces",
            [{"Name": "tag:cluster.k8s.amazonaws.com/name", "Values": [cluster]}],
        )
    ]
    out += [
        f"ec2:security-group/{g['GroupId']}"
        for g in _find(
            aws, "describe_security_groups", "SecurityGroups", [{"Name": "tag-key", "Values": [key]}]
        )
    ]
    return sorted(set(out))


def _elbv2_for(aws: Aws, cluster: str) -> list[str]:
    arns = [lb["LoadBalancerArn"] for lb in aws.paginate("elbv2", "describe_load_balancers", "LoadBalancers")]
    out = []
    for i in range(0, len(arns), 20):
        for desc in aws.call("elbv2", "describe_tags", ResourceArns=arns[i : i + 20])["TagDescriptions"]:
            tags = tag_dict(desc.get("Tags"))
            if plan_aws.k8s_owned_tag(cluster) in tags or tags.get("elbv2.k8s.aws/cluster") == cluster:
                out.append(desc["ResourceArn"])
    return out


def _classic_elbs_for(aws: Aws, cluster: str) -> list[str]:
    names = [
        lb["LoadBalancerName"]
        for lb in aws.paginate("elb", "describe_load_balancers", "LoadBalancerDescriptions")
    ]
    out = []
    for i in range(0, len(names), 20):
        for desc in aws.call("elb", "describe_tags", LoadBalancerNames=names[i : i + 20])["TagDescriptions"]:
            if plan_aws.k8s_owned_tag(cluster) in tag_dict(desc.get("Tags")):
                out.append(desc["LoadBalancerName"])
    return out


def delete_kubernetes_load_balancers(aws: Aws, cluster: str) -> None:
    """Delete the load balancers Kubernetes made for ``cluster`` (before the cluster: they hold ENIs)."""
    for arn in _elbv2_for(aws, cluster):
        aws.delete("elbv2", "delete_load_balancer", missing=("LoadBalancerNotFound",), LoadBalancerArn=arn)
    for name in _classic_elbs_for(aws, cluster):
        aws.delete("elb", "delete_load_balancer", missing=("LoadBalancerNotFound",), LoadBalancerName=name)


def delete_kubernetes_leftovers(aws: Aws, cluster: str) -> None:
    """Delete everything else Kubernetes made for ``cluster`` (after the cluster and its nodes are gone,
    so EKS's own cluster security group is already deleted and volumes are detached)."""
    delete_kubernetes_load_balancers(aws, cluster)
    for item in kubernetes_leftovers(aws, cluster):
        kind, _, ident = item.partition("/")
        if kind == "ec2:volume":
            aws.retry_dependent(
                lambda: aws.delete(
                    "ec2", "delete_volume", missing=("InvalidVolume.NotFound",), VolumeId=ident
                ),
                what=f"deleting {item}",
            )
        elif kind == "ec2:network-interface":
            aws.retry_dependent(
                lambda: aws.delete(
                    "ec2",
                    "delete_network_interface",
                    missing=("InvalidNetworkInterfaceID.NotFound",),
                    NetworkInterfaceId=ident,
                ),
                what=f"deleting {item}",
            )
        elif kind == "ec2:security-group":
            delete_security_group(aws, ident)


def delete_security_group(aws: Aws, group_id: str) -> None:
    aws.retry_dependent(
        lambda: aws.delete("ec2", "delete_security_group", missing=_NF_SG, GroupId=group_id),
        what=f"deleting security group {group_id}",
    )


def delete_owned_security_groups(aws: Aws, spec: DeploymentSpec) -> None:
    groups = _find(aws, "describe_security_groups", "SecurityGroups", tag_filters(_owner(spec)))
    for group in groups:  # rules that reference another group block its deletion
        if group.get("IpPermissions"):
            aws.delete(
                "ec2",
                "revoke_security_group_ingress",
                missing=_NF_SG + ("InvalidPermission.NotFound",),
                GroupId=group["GroupId"],
                IpPermissions=group["IpPermissions"],
            )
    for group in groups:
        delete_security_group(aws, group["GroupId"])


def delete_network(aws: Aws, spec: DeploymentSpec) -> None:
    """Delete this deployment's VPCs with everything left in them, and its tagged SGs elsewhere."""
    delete_owned_security_groups(aws, spec)
    for vpc_id in owned_vpcs(aws, spec):
        in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]
        for eni in _find(aws, "describe_network_interfaces", "NetworkInterfaces", in_vpc):
            if eni.get("Status") == "available":
                aws.delete(
                    "ec2",
                    "delete_network_interface",
                    missing=("InvalidNetworkInterfaceID.NotFound",),
                    NetworkInterfaceId=eni["NetworkInterfaceId"],
                )
        for group in _find(aws, "describe_security_groups", "SecurityGroups", in_vpc):
            if group.get("GroupName") != "default":
                delete_security_group(aws, group["GroupId"])
        for subnet in _find(aws, "describe_subnets", "Subnets", in_vpc):
            aws.retry_dependent(
                lambda: aws.delete("ec2", "delete_subnet", missing=_NF_SUBNET, SubnetId=subnet["SubnetId"]),
                what=f"deleting subnet in {vpc_id}",
            )
        for table in _find(aws, "describe_route_tables", "RouteTables", in_vpc):
            if any(a.get("Main") for a in table.get("Associations", [])):
                continue
            for assoc in table.get("Associations", []):
                aws.delete(
                    "ec2",
                    "disassociate_route_table",
                    missing=_NF_RT,
                    AssociationId=assoc["RouteTableAssociationId"],
                )
            aws.delete("ec2", "delete_route_table", missing=_NF_RT, RouteTableId=table["RouteTableId"])
        for igw in _find(
            aws,
            "describe_internet_gateways",
            "InternetGateways",
            [{"Name": "attachment.vpc-id", "Values": [vpc_id]}],
        ):
            aws.delete(
                "ec2",
                "detach_internet_gateway",
                missing=_NF_IGW,
                InternetGatewayId=igw["InternetGatewayId"],
                VpcId=vpc_id,
            )
        aws.retry_dependent(
            lambda: aws.delete("ec2", "delete_vpc", missing=_NF_VPC, VpcId=vpc_id),
            what=f"deleting VPC {vpc_id}",
        )
    for igw in _find(aws, "describe_internet_gateways", "InternetGateways", tag_filters(_owner(spec))):
        for attachment in igw.get("Attachments", []):
            aws.delete(
                "ec2",
                "detach_internet_gateway",
                missing=_NF_IGW,
                InternetGatewayId=igw["InternetGatewayId"],
                VpcId=attachment["VpcId"],
            )
        aws.delete(
            "ec2", "delete_internet_gateway", missing=_NF_IGW, InternetGatewayId=igw["InternetGatewayId"]
        )
