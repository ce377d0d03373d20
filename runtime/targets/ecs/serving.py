"""ECS serving: secrets, log groups, task definitions, services, the frontend address, and draining.

    serving = EcsProvider().serving()
    serving.deploy(spec, ref, secrets={"HF_TOKEN": token})   # idempotent; a new task definition
                                                            # revision only when the rendering changed
    serving.converge(spec, ref, secrets=..., recorded={"worker": [arn, ...]})
                                                            # the same, preferring recorded revisions
                                                            # (a rollback); says what it reused/registered
    serving.frontend_address(spec)                          # "http://<ip>:8000" or None (no task yet)
    serving.undeploy(spec)                                  # scale to 0, delete services, deregister
                                                            # task definitions, log groups, secrets

etcd and NATS run as Fargate services registered in Cloud Map; the frontend and the workers run on the
GPU EC2 cluster through its capacity provider.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.errors import PreflightError
from runtime.gateways.aws import Aws, tag_dict, tag_list
from runtime.render import cloud_plan as plan
from runtime.render import ecs_task as ecs_render
from runtime.render.cloud_plan_aws import token
from runtime.spec import EcsTarget
from runtime.targets.ecs.revisions import family_of, reusable, why_not

if TYPE_CHECKING:  # pragma: no cover
    from runtime.providers.base import ClusterRef
    from runtime.spec import DeploymentSpec
    from runtime.targets.ecs.provider import EcsProvider

log = logging.getLogger("dynadeploy.ecs")


@dataclass(frozen=True)
class Converged:
    """What EcsServing.converge settled on: role -> the task definition ARN its service runs, and how
    each was found: "latest" (the family's latest revision renders the same), "recorded" (a revision
    the ledger recorded, e.g. the one a rollback restores), "registered" (a new revision)."""

    arns: dict[str, str]
    how: dict[str, str] = field(default_factory=dict)


class EcsServing:
    def __init__(self, provider: EcsProvider) -> None:
        self.provider = provider

    def _aws(self, spec: DeploymentSpec) -> Aws:
        return self.provider.aws(spec.target_as(EcsTarget).region)

    # --- deploy -------------------------------------------------------------------------------------

    def deploy(
        self, spec: DeploymentSpec, ref: ClusterRef, secrets: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """Create-or-update every service of the graph; returns role -> task definition ARN."""
        return self.converge(spec, ref, secrets).arns

    def converge(
        self,
        spec: DeploymentSpec,
        ref: ClusterRef,
        secrets: Mapping[str, str] | None = None,
        recorded: Mapping[str, Sequence[str]] | None = None,
    ) -> Converged:
        """Create-or-update every service of the graph, reusing a task definition revision that renders the
        same when there is one: the family's latest, else one of ``recorded`` (role -> ARNs, preferred
        first; EcsBackend passes those its ledger recorded for this spec).

        Why reuse instead of registering: a rollback runs the deploy flow on the recorded spec, and the
        restored revision should run the very task definition revision it ran before (revision N, not an
        identical N+2), so the services point back at it, the ledger's ARNs stay meaningful and a rerun
        after a crash finds the services already there (no duplicate revision, no second service
        deployment). A recorded revision that was deregistered cannot run tasks; a new revision is then
        registered from the rendering of the recorded spec (``how`` says "registered").
        """
        aws, n = self._aws(spec), ecs_render.names(spec)
        recorded = recorded or {}
        how: dict[str, str] = {}
        secret_arns = {
            name: self._ensure_secret(aws, spec, name, value) for name, value in (secrets or {}).items()
        }
        missing = [k for k in ecs_render.secret_env(spec) if k not in secret_arns]
        if missing:
            raise PreflightError(
                f"secret values for {', '.join(missing)} were not given to the ECS deploy",
                hint="resolve model.token and env secret refs before deploying",
            )
        out: dict[str, str] = {}
        for role in ecs_render.DISCOVERY:
            td = ecs_render.task_definition(
                spec, role, execution_role_arn=ref.details["execution_role_arn"], secret_arns=secret_arns
            )
            out[role], how[role] = self._converge_task_definition(aws, spec, role, td, recorded.get(role, ()))
            self._ensure_service(
                aws,
                spec,
                n.fargate_cluster,
                role,
                out[role],
                1,
                {
                    "launchType": "FARGATE",
                    "networkConfiguration": {
                        "awsvpcConfiguration": {
                            "subnets": list(ref.details["subnet_ids"]),
                            "securityGroups": [ref.details["security_group_id"]],
                            "assignPublicIp": "ENABLED",
                        }
                    },
                    "serviceRegistries": [{"registryArn": ref.details["registries"][role]}],
                },
            )
        for component in ecs_render.roles(spec):
            td = ecs_render.task_definition(
                spec,
                component.role,
                execution_role_arn=ref.details["execution_role_arn"],
                secret_arns=secret_arns,
                component=component,
            )
            out[component.role], how[component.role] = self._converge_task_definition(
                aws, spec, component.role, td, recorded.get(component.role, ())
            )
            self._ensure_service(
                aws,
                spec,
                n.gpu_cluster,
                component.role,
                out[component.role],
                component.replicas,
                {
                    "capacityProviderStrategy": [{"capacityProvider": n.capacity_provider, "weight": 1}],
                    # GPUs leave no room for a surge task: replace in place.
                    "deploymentConfiguration": {"minimumHealthyPercent": 0, "maximumPercent": 100},
                    "placementStrategy": [{"type": "spread", "field": "instanceId"}],
                },
            )
        return Converged(out, how)

    def _ensure_secret(self, aws: Aws, spec: DeploymentSpec, env_name: str, value: str) -> str:
        name = ecs_render.names(spec).secret(env_name)
        found = aws.get(
            "secretsmanager", "describe_secret", missing=("ResourceNotFoundException",), SecretId=name
        )
        if found is None or found.get("DeletedDate"):
            if found is not None:
                aws.call("secretsmanager", "restore_secret", SecretId=name)
            else:
                created = aws.create(
                    "secretsmanager",
                    "create_secret",
                    exists=("ResourceExistsException",),
                    Name=name,
                    SecretString=value,
                    Tags=tag_list(plan.aws_tags(spec)),
                    ClientRequestToken=_uuid_token(spec, f"secret/{env_name}"),
                )
                if created is not None:
                    return created["ARN"]
            found = aws.call("secretsmanager", "describe_secret", SecretId=name)
        current = aws.call("secretsmanager", "get_secret_value", SecretId=name)["SecretString"]
        if current != value:
            aws.call("secretsmanager", "put_secret_value", SecretId=name, SecretString=value)
        return found["ARN"]

    def _ensure_log_group(self, aws: Aws, spec: DeploymentSpec, role: str) -> None:
        name = ecs_render.names(spec).log_group(spec, role)
        groups = aws.call("logs", "describe_log_groups", logGroupNamePrefix=name)["logGroups"]
        if not any(g["logGroupName"] == name for g in groups):
            aws.create(
                "logs",
                "create_log_group",
                exists=("ResourceAlreadyExistsException",),
                logGroupName=name,
                tags=plan.aws_tags(spec),
            )
            aws.call(
                "logs",
                "put_retention_policy",
                logGroupName=name,
                retentionInDays=ecs_render.LOG_RETENTION_DAYS,
            )

    def _ensure_task_definition(self, aws: Aws, spec: DeploymentSpec, role: str, td: dict[str, Any]) -> str:
        """The latest revision's ARN when it renders the same, else a newly registered revision."""
        return self._converge_task_definition(aws, spec, role, td, ())[0]

    def _converge_task_definition(
        self, aws: Aws, spec: DeploymentSpec, role: str, td: dict[str, Any], recorded: Sequence[str]
    ) -> tuple[str, str]:
        """(ARN, how): the family's latest revision when it renders as ``td``, else the first of ``recorded``
        that is still ACTIVE and renders as ``td``, else a newly registered revision. One describe in the
        common case (the latest matches); a rollback adds one per recorded candidate, never a family scan."""
        self._ensure_log_group(aws, spec, role)
        seen: set[str] = set()
        candidates = [("latest", td["family"])] + [
            ("recorded", arn) for arn in dict.fromkeys(recorded) if family_of(arn) == td["family"]
        ]
        for how, ref in candidates:
            if ref in seen:  # the latest revision was a recorded one: already judged
                continue
            found = aws.get(
                "ecs", "describe_task_definition", missing=("ClientException",), taskDefinition=ref
            )
            have = (found or {}).get("taskDefinition")
            if have is not None:
                seen.add(have["taskDefinitionArn"])
                if reusable(have, td):
                    return have["taskDefinitionArn"], how
            if how == "recorded":
                log.warning(
                    "recorded task definition %s of %s cannot be reused: %s", ref, role, why_not(have, td)
                )
        arn = aws.call("ecs", "register_task_definition", **td)["taskDefinition"]["taskDefinitionArn"]
        if len(candidates) > 1:
            log.warning(
                "registered %s for %s from the recorded spec: no recorded revision is reusable", arn, role
            )
        return arn, "registered"

    def _service(self, aws: Aws, cluster: str, name: str) -> dict[str, Any] | None:
        found = aws.get(
            "ecs",
            "describe_services",
            missing=("ClusterNotFoundException",),
            cluster=cluster,
            services=[name],
            include=["TAGS"],
        )
        services = (found or {}).get("services", [])
        return services[0] if services and services[0]["status"] != "INACTIVE" else None

    def _ensure_service(
        self,
        aws: Aws,
        spec: DeploymentSpec,
        cluster: str,
        role: str,
        td_arn: str,
        desired: int,
        placement: dict[str, Any],
    ) -> None:
        name = ecs_render.names(spec).service(spec, role)
        service = self._service(aws, cluster, name)
        if service is not None and service["status"] == "DRAINING":
            aws.wait(
                lambda: True if self._service(aws, cluster, name) is None else None,
                what=f"draining of {name}",
            )
            service = None
        if service is None:
            aws.create_or_found(
                "ecs",
                "create_service",
                exists=("InvalidParameterException",),
                found=lambda: self._service(aws, cluster, name),
                cluster=cluster,
                serviceName=name,
                taskDefinition=td_arn,
                desiredCount=desired,
                tags=tag_list(plan.aws_tags(spec), "key", "value"),
                propagateTags="SERVICE",
                enableECSManagedTags=True,
                **placement,
            )
        elif service["taskDefinition"] != td_arn or service["desiredCount"] != desired:
            aws.call(
                "ecs",
                "update_service",
                cluster=cluster,
                service=name,
                taskDefinition=td_arn,
                desiredCount=desired,
            )

    # --- the address --------------------------------------------------------------------------------

    def frontend_address(self, spec: DeploymentSpec) -> str | None:
        """http://<public or private IP>:8000 of a RUNNING frontend task's instance; None if none runs."""
        aws, n = self._aws(spec), ecs_render.names(spec)
        name = n.service(spec, "frontend")
        arns = (
            aws.call("ecs", "list_tasks", cluster=n.gpu_cluster, serviceName=name, desiredStatus="RUNNING")[
                "taskArns"
            ]
            if self._service(aws, n.gpu_cluster, name)
            else []
        )
        tasks = aws.call("ecs", "describe_tasks", cluster=n.gpu_cluster, tasks=arns)["tasks"] if arns else []
        running = [
            t["containerInstanceArn"]
            for t in tasks
            if t.get("lastStatus") == "RUNNING" and t.get("containerInstanceArn")
        ]
        if not running:
            return None
        inst = aws.call(
            "ecs", "describe_container_instances", cluster=n.gpu_cluster, containerInstances=running[:1]
        )["containerInstances"][0]
        ec2 = aws.call("ec2", "describe_instances", InstanceIds=[inst["ec2InstanceId"]])["Reservations"]
        host = ec2[0]["Instances"][0] if ec2 and ec2[0]["Instances"] else {}
        ip = host.get("PublicIpAddress") or host.get("PrivateIpAddress")
        return f"http://{ip}:{ecs_render.FRONTEND_PORT}" if ip else None

    # --- inventory and teardown ---------------------------------------------------------------------

    def _families(self, spec: DeploymentSpec) -> list[str]:
        n = ecs_render.names(spec)
        roles = list(ecs_render.DISCOVERY) + ["frontend", "worker", "prefill", "decode"]
        return sorted({n.family(spec, role) for role in roles})

    def _services(self, aws: Aws, spec: DeploymentSpec) -> list[tuple[str, str]]:
        n = ecs_render.names(spec)
        out = []
        for cluster in (n.gpu_cluster, n.fargate_cluster):
            arns = aws.get("ecs", "list_services", missing=("ClusterNotFoundException",), cluster=cluster)
            for i in range(0, len((arns or {}).get("serviceArns", [])), 10):
                described = aws.call(
                    "ecs",
                    "describe_services",
                    cluster=cluster,
                    services=arns["serviceArns"][i : i + 10],
                    include=["TAGS"],
                )["services"]
                out += [
                    (cluster, s["serviceName"])
                    for s in described
                    if s["status"] != "INACTIVE"
                    and plan.owned(tag_dict(s.get("tags")), spec, plan.AWS_TAG_KEY)
                ]
        return out

    def inventory(self, spec: DeploymentSpec) -> list[str]:
        aws, n = self._aws(spec), ecs_render.names(spec)
        out = [f"ecs:service/{c}/{s}" for c, s in self._services(aws, spec)]
        for family in self._families(spec):
            out += [
                f"ecs:task-definition/{arn.rsplit('/', 1)[-1]}"
                for arn in aws.paginate(
                    "ecs", "list_task_definitions", "taskDefinitionArns", familyPrefix=family, status="ACTIVE"
                )
                if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family
            ]
        prefix = f"/ecs/{plan.deployment_id(spec)}/"
        out += [
            f"logs:log-group/{g['logGroupName']}"
            for g in aws.paginate("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=prefix)
        ]
        out += [
            f"secretsmanager:secret/{s['Name']}"
            for s in aws.paginate(
                "secretsmanager",
                "list_secrets",
                "SecretList",
                Filters=[{"Key": "name", "Values": [n.secret_prefix + "/"]}],
            )
            if s["Name"].startswith(n.secret_prefix + "/")
        ]
        return out

    def undeploy(self, spec: DeploymentSpec) -> None:
        """Scale every service of the deployment to 0, delete it, wait until ECS drained it; then task
        definitions, log groups and secrets. Absent things are success."""
        aws, n = self._aws(spec), ecs_render.names(spec)
        services = self._services(aws, spec)
        for cluster, name in services:
            aws.get(
                "ecs",
                "update_service",
                missing=("ServiceNotFoundException", "ServiceNotActiveException"),
                cluster=cluster,
                service=name,
                desiredCount=0,
            )
            aws.delete(
                "ecs",
                "delete_service",
                missing=("ServiceNotFoundException",),
                cluster=cluster,
                service=name,
                force=True,
            )
        for cluster, name in services:
            # _service says None for an INACTIVE service too (one describe, no race between two)
            aws.wait(
                lambda: True if self._service(aws, cluster, name) is None else None,
                what=f"draining of ECS service {name}",
            )
        for cluster in (n.gpu_cluster, n.fargate_cluster):
            tasks = aws.get("ecs", "list_tasks", missing=("ClusterNotFoundException",), cluster=cluster)
            for arn in (tasks or {}).get("taskArns", []):
                aws.get(
                    "ecs",
                    "stop_task",
                    missing=("InvalidParameterException",),
                    cluster=cluster,
                    task=arn,
                    reason="dynadeploy teardown",
                )
        for family in self._families(spec):
            for arn in aws.paginate(
                "ecs", "list_task_definitions", "taskDefinitionArns", familyPrefix=family, status="ACTIVE"
            ):
                if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family:
                    aws.call("ecs", "deregister_task_definition", taskDefinition=arn)
        prefix = f"/ecs/{plan.deployment_id(spec)}/"
        for group in aws.paginate("logs", "describe_log_groups", "logGroups", logGroupNamePrefix=prefix):
            aws.delete(
                "logs",
                "delete_log_group",
                missing=("ResourceNotFoundException",),
                logGroupName=group["logGroupName"],
            )
        for secret in aws.paginate(
            "secretsmanager",
            "list_secrets",
            "SecretList",
            Filters=[{"Key": "name", "Values": [n.secret_prefix + "/"]}],
        ):
            if secret["Name"].startswith(n.secret_prefix + "/"):
                aws.delete(
                    "secretsmanager",
                    "delete_secret",
                    missing=("ResourceNotFoundException",),
                    SecretId=secret["ARN"],
                    ForceDeleteWithoutRecovery=True,
                )


def _uuid_token(spec: DeploymentSpec, what: str) -> str:
    """Secrets Manager wants a 32-64 character token."""
    return token(spec, what)[:40]
