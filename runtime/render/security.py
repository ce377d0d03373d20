"""spec -> the objects that make a deployment's namespace safe and highly available.

Namespace (labelled, Pod Security baseline), the ServiceAccount + namespaced Role/RoleBinding of
dynadeploy's own Jobs, NetworkPolicies that admit only the frontend port from outside the graph,
and the optional HA objects: a PodDisruptionBudget when there is more than one frontend, an HPA per
worker role with ``autoscaling`` (through the operator's scaling adapter, switched on in the DGD).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.domain import naming
from runtime.render import common, templates
from runtime.render.cache import job_service_account

if TYPE_CHECKING:  # pragma: no cover
    from runtime.domain.capabilities import Capabilities
    from runtime.spec import DeploymentSpec


def _fill(relpath: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    return [templates.fill(doc, values, f"infra/{relpath}") for doc in templates.load_all(relpath)]


def render_namespace(spec: DeploymentSpec) -> dict[str, Any]:
    namespace = common.namespace_of(spec)
    (doc,) = _fill("templates/namespace.yaml", {"name": namespace})
    return common.with_labels(doc, common.labels(spec))


def render_security(
    spec: DeploymentSpec, provider: Capabilities, *, name: str | None = None
) -> list[dict[str, Any]]:
    """Namespace, RBAC, NetworkPolicies, then PDB / HPAs when the spec asks; in apply order.

    ``name`` is the graph the HPAs scale (default: the stable graph).
    """
    namespace = common.namespace_of(spec)
    graph = name or naming.dgd_name(spec)
    own = common.labels(spec)
    selector = naming.labels(spec.name)
    frontend_selector = common.role_labels(spec, "frontend")
    out = [render_namespace(spec)]
    out += _fill("templates/rbac.yaml", {"name": job_service_account(spec), "namespace": namespace})
    out += _fill(
        "templates/networkpolicy.yaml",
        {
            "graphPolicy": naming.join_name(spec.name, "allow-graph"),
            "frontendPolicy": naming.join_name(spec.name, "allow-frontend"),
            "namespace": namespace,
            "selector": selector,
            "frontendSelector": frontend_selector,
            "frontendPort": common.FRONTEND_PORT,
        },
    )
    if spec.serving.frontend.replicas > 1:
        out += _fill(
            "templates/pdb.yaml",
            {"name": naming.join_name(spec.name, "frontend-pdb"), "namespace": namespace,
             "selector": frontend_selector},
        )  # fmt: skip
    for role, worker in spec.serving.roles():
        scaling = worker.autoscaling
        if scaling is None:
            continue
        adapter = naming.join_name(graph, role)  # the operator names it <graph>-<component>
        out += _fill(
            "templates/hpa.yaml",
            {
                "name": naming.join_name(adapter, "hpa"),
                "namespace": namespace,
                "adapter": adapter,
                "minReplicas": scaling.min_replicas,
                "maxReplicas": scaling.max_replicas,
                "targetCpu": scaling.target_cpu_percent,
            },
        )
    return [common.with_labels(obj, own) for obj in out]
