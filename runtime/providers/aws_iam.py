"""IAM roles (and instance profiles) for EKS and ECS: create-or-get, tagged, deleted only when ours."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from runtime.errors import PermanentError
from runtime.gateways.aws import Aws, tag_dict, tag_list
from runtime.render import cloud_plan as plan
from runtime.render.cloud_plan_aws import RoleSpec

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import DeploymentSpec

_NF = ("NoSuchEntity",)


def ensure_role(aws: Aws, spec: DeploymentSpec, role: RoleSpec) -> str:
    """The role's ARN; created with its trust policy and tags, managed policies attached if missing."""
    found = aws.get("iam", "get_role", missing=_NF, RoleName=role.name)
    if found is None:
        created = aws.create(
            "iam",
            "create_role",
            exists=("EntityAlreadyExists",),
            RoleName=role.name,
            AssumeRolePolicyDocument=role.trust_policy(),
            Description=f"dynadeploy {plan.deployment_id(spec)}",
            Tags=tag_list(plan.aws_tags(spec, role.name)),
        )
        found = created or aws.call("iam", "get_role", RoleName=role.name)
    arn = found["Role"]["Arn"]
    attached = {
        p["PolicyArn"]
        for p in aws.paginate("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=role.name)
    }
    for policy in role.policies:
        if policy not in attached:
            try:
                aws.call("iam", "attach_role_policy", RoleName=role.name, PolicyArn=policy)
            except PermanentError as exc:
                raise PermanentError(
                    exc.message,
                    hint=f"the managed policy {policy} must exist in this "
                    "partition (on moto: start it with MOTO_IAM_LOAD_MANAGED_POLICIES=true)",
                ) from exc
    if role.instance_profile:
        ensure_instance_profile(aws, spec, role.name)
    return arn


def ensure_instance_profile(aws: Aws, spec: DeploymentSpec, name: str) -> str:
    found = aws.get("iam", "get_instance_profile", missing=_NF, InstanceProfileName=name)
    if found is None:
        found = aws.create(
            "iam",
            "create_instance_profile",
            exists=("EntityAlreadyExists",),
            InstanceProfileName=name,
            Tags=tag_list(plan.aws_tags(spec, name)),
        ) or aws.call("iam", "get_instance_profile", InstanceProfileName=name)
    profile = found["InstanceProfile"]
    if not any(r["RoleName"] == name for r in profile.get("Roles", [])):
        aws.create(
            "iam",
            "add_role_to_instance_profile",
            exists=("LimitExceeded", "EntityAlreadyExists"),
            InstanceProfileName=name,
            RoleName=name,
        )
    return profile["Arn"]


def _ours(aws: Aws, spec: DeploymentSpec, name: str) -> bool:
    tags = aws.get("iam", "list_role_tags", missing=_NF, RoleName=name)
    return tags is not None and plan.owned(tag_dict(tags.get("Tags")), spec, plan.AWS_TAG_KEY)


def roles_inventory(aws: Aws, spec: DeploymentSpec, names: Iterable[str]) -> list[str]:
    """The roles of ``names`` that exist and carry this deployment's tag (IAM has no tag search that
    moto and AWS share, and the role names are a function of the spec)."""
    out = []
    for name in names:
        if _ours(aws, spec, name):
            out.append(f"iam:role/{name}")
        profile = aws.get("iam", "get_instance_profile", missing=_NF, InstanceProfileName=name)
        if profile and plan.owned(tag_dict(profile["InstanceProfile"].get("Tags")), spec, plan.AWS_TAG_KEY):
            out.append(f"iam:instance-profile/{name}")
    return out


def delete_roles(aws: Aws, spec: DeploymentSpec, names: Iterable[str]) -> None:
    """Delete the roles of ``names`` that are this deployment's (policies and profiles first)."""
    for name in names:
        profile = aws.get("iam", "get_instance_profile", missing=_NF, InstanceProfileName=name)
        if profile and plan.owned(tag_dict(profile["InstanceProfile"].get("Tags")), spec, plan.AWS_TAG_KEY):
            for role in profile["InstanceProfile"].get("Roles", []):
                aws.delete(
                    "iam",
                    "remove_role_from_instance_profile",
                    missing=_NF,
                    InstanceProfileName=name,
                    RoleName=role["RoleName"],
                )
            aws.delete("iam", "delete_instance_profile", missing=_NF, InstanceProfileName=name)
        if not _ours(aws, spec, name):
            continue
        for profile in aws.paginate(
            "iam", "list_instance_profiles_for_role", "InstanceProfiles", RoleName=name
        ):
            aws.delete(
                "iam",
                "remove_role_from_instance_profile",
                missing=_NF,
                InstanceProfileName=profile["InstanceProfileName"],
                RoleName=name,
            )
        for policy in aws.paginate("iam", "list_attached_role_policies", "AttachedPolicies", RoleName=name):
            aws.delete("iam", "detach_role_policy", missing=_NF, RoleName=name, PolicyArn=policy["PolicyArn"])
        for policy in aws.paginate("iam", "list_role_policies", "PolicyNames", RoleName=name):
            aws.delete("iam", "delete_role_policy", missing=_NF, RoleName=name, PolicyName=policy)
        aws.retry_dependent(
            lambda: aws.delete("iam", "delete_role", missing=_NF, RoleName=name),
            what=f"deleting role {name}",
            codes=("DeleteConflict",),
        )
