"""ECS names and task definitions, rendered from infra/templates/ecs/*.yaml. Pure: no SDK, no I/O
beyond reading the packaged templates.

Layout (Dynamo's ECS guide): etcd and NATS on the Fargate cluster, each an ECS service registered in
a Cloud Map private DNS namespace, so the frontend and workers reach them as etcd.<ns> and nats.<ns>
(no private IPs copied by hand); the frontend and the worker roles on the GPU EC2 cluster.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from runtime.domain import naming
from runtime.render import cloud_plan as plan
from runtime.render import kv_events, templates
from runtime.render.cloud_plan_aws import short_name
from runtime.render.dgd import ENGINE_MODULES, resolve_engine

if TYPE_CHECKING:  # pragma: no cover
    from runtime.spec import Component, DeploymentSpec, EcsTarget

FRONTEND_PORT = 8000
ETCD_PORT = 2379
NATS_PORT = 4222
DISCOVERY = ("etcd", "nats")  # Fargate services found through Cloud Map
LOG_RETENTION_DAYS = 14


@dataclass(frozen=True)
class Names:
    """Every ECS-side name of one deployment (a function of the spec, stable across runs)."""

    gpu_cluster: str
    fargate_cluster: str
    namespace: str  # Cloud Map private DNS namespace
    execution_role: str
    instance_role: str
    security_group: str
    launch_template: str
    auto_scaling_group: str
    capacity_provider: str
    secret_prefix: str

    def family(self, spec: DeploymentSpec, role: str) -> str:
        return (
            naming.component_name(spec, role) if role not in DISCOVERY else naming.join_name(spec.name, role)
        )

    def log_group(self, spec: DeploymentSpec, role: str) -> str:
        return f"/ecs/{plan.deployment_id(spec)}/{role}"

    def service(self, spec: DeploymentSpec, role: str) -> str:
        return self.family(spec, role)

    def secret(self, env_name: str) -> str:
        return f"{self.secret_prefix}/{env_name}"


def names(spec: DeploymentSpec) -> Names:
    t = cast("EcsTarget", spec.target)  # the caller chose this renderer by target.kind
    did = plan.deployment_id(spec)
    return Names(
        gpu_cluster=t.cluster_name,
        fargate_cluster=t.fargate_cluster(),
        namespace=f"{did}.dynadeploy.internal",
        execution_role=short_name(t.cluster_name, t.region, "ecs-exec"),
        instance_role=short_name(t.cluster_name, t.region, "ecs-instance"),
        security_group=f"{t.cluster_name}-ecs",
        launch_template=f"{t.cluster_name}-gpu",
        auto_scaling_group=f"{t.cluster_name}-gpu",
        capacity_provider=short_name(t.cluster_name, "gpu", max_len=255),
        secret_prefix=f"dynadeploy/{did}",
    )


def roles(spec: DeploymentSpec) -> list[Component]:
    """The graph's components (frontend, then worker or prefill + decode), as ECS services."""
    return spec.components()


def discovery_env(n: Names) -> dict[str, str]:
    return {
        "ETCD_ENDPOINTS": f"http://etcd.{n.namespace}:{ETCD_PORT}",
        "NATS_SERVER": f"nats://nats.{n.namespace}:{NATS_PORT}",
    }


def command(spec: DeploymentSpec, component: Component) -> str:
    """The shell command line of a component (entryPoint sh -c, as in the guide).

    Without a shared model cache on ECS, vLLM downloads the pinned revision itself (HF_TOKEN)."""
    if component.role == "frontend":
        args = [
            "python3",
            "-m",
            "dynamo.frontend",
            "--http-port",
            str(FRONTEND_PORT),
            "--router-mode",
            spec.router_mode(),
        ]
        return shlex.join(args)
    engine = resolve_engine(spec)
    served = spec.model.served()
    if engine == "vllm":
        args = [
            "python3",
            "-m",
            ENGINE_MODULES[engine],
            "--model",
            spec.model.id,
            "--served-model-name",
            served,
        ]
        if spec.model.revision:
            args += ["--revision", spec.model.revision]
    else:
        args = [
            "python3",
            "-m",
            ENGINE_MODULES[engine],
            "--model-path",
            spec.model.id,
            "--model-name",
            served,
            "--speedup-ratio",
            f"{spec.serving.mocker.speedup_ratio:g}",
        ]
    if component.role in ("prefill", "decode"):
        args += ["--disaggregation-mode", component.role]
    # KV events for the KV router; worker tasks use host networking (several per instance), so each
    # container binds an ipc endpoint in its own filesystem rather than one TCP port.
    args += kv_events.worker_args(
        spec.router_mode(),
        engine,
        component.role,
        given=component.engine_args,
        endpoint=kv_events.ipc_endpoint(component.role),
    )
    return shlex.join(args + list(component.engine_args))


def secret_env(spec: DeploymentSpec) -> list[str]:
    """Env vars whose values come from Secrets Manager: HF_TOKEN (model.token) and secret refs."""
    out = ["HF_TOKEN"] if spec.model.token is not None else []
    for component in spec.components():
        out += [k for k, v in component.env.items() if not isinstance(v, str) and k not in out]
    return out


def task_definition(
    spec: DeploymentSpec,
    role: str,
    *,
    execution_role_arn: str,
    secret_arns: Mapping[str, str],
    component: Component | None = None,
) -> dict[str, Any]:
    """ecs.register_task_definition arguments for ``role`` (etcd, nats, or a graph component)."""
    t = cast("EcsTarget", spec.target)  # the caller chose this renderer by target.kind
    n = names(spec)
    values: dict[str, Any] = {
        "family": n.family(spec, role),
        "executionRoleArn": execution_role_arn,
        "region": t.region,
        "logGroup": n.log_group(spec, role),
        "namespace": n.namespace,
        "tags": [{"key": k, "value": v} for k, v in plan.aws_tags(spec).items()],
    }
    if role in DISCOVERY:
        return templates.fill(
            templates.load(f"templates/ecs/{role}.yaml"), values, f"infra/templates/ecs/{role}.yaml"
        )
    if component is None:
        raise ValueError(f"role {role} needs its component")
    literal = {k: v for k, v in component.env.items() if isinstance(v, str)}
    env = {**discovery_env(n), "HF_HOME": "/opt/models", **literal}
    wanted = [k for k in secret_env(spec) if k == "HF_TOKEN" or k in component.env]
    gpus = component.gpus if resolve_engine(spec) == "vllm" and role != "frontend" else 0
    values.update(
        image=spec.serving.image,
        command=[command(spec, component)],
        environment=[{"name": k, "value": v} for k, v in sorted(env.items())],
        secrets=[{"name": k, "valueFrom": secret_arns[k]} for k in wanted if k in secret_arns] or None,
        resourceRequirements=[{"type": "GPU", "value": str(gpus)}] if gpus else None,
    )
    source = "frontend" if role == "frontend" else "worker"
    body = templates.fill(
        templates.load(f"templates/ecs/{source}.yaml"), values, f"infra/templates/ecs/{source}.yaml"
    )
    if source == "worker":
        body["containerDefinitions"][0]["logConfiguration"]["options"]["awslogs-stream-prefix"] = role
    return body


def user_data(cluster: str) -> str:
    """EC2 user data joining an ECS GPU-optimized instance to ``cluster`` with GPU support."""
    return (
        f"#!/bin/bash\necho ECS_CLUSTER={cluster} >> /etc/ecs/ecs.config\n"
        "echo ECS_ENABLE_GPU_SUPPORT=true >> /etc/ecs/ecs.config\n"
    )


def ingress(vpc_cidr: str, extra_cidr: str | None) -> list[dict[str, Any]]:
    """All traffic within the group (etcd, NATS, NIXL, the request plane), the frontend port from the
    VPC, and from ``extra_cidr`` when given (DYNADEPLOY_ECS_ALLOW_CIDR, e.g. your address for smoke)."""
    rules: list[dict[str, Any]] = [
        {"IpProtocol": "-1", "Self": True},
        {
            "IpProtocol": "tcp",
            "FromPort": FRONTEND_PORT,
            "ToPort": FRONTEND_PORT,
            "IpRanges": [{"CidrIp": vpc_cidr}],
        },
    ]
    if extra_cidr:
        rules.append(
            {
                "IpProtocol": "tcp",
                "FromPort": FRONTEND_PORT,
                "ToPort": FRONTEND_PORT,
                "IpRanges": [{"CidrIp": extra_cidr}],
            }
        )
    return rules
