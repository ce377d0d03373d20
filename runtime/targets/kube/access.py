"""The access review of a Kubernetes target's preflight: what a deploy run will do on the cluster, as
(verb, resource) pairs, each asked of the API server (SelfSubjectAccessReview) before anything changes;
every denial is reported with the ``kubectl auth can-i`` command that checks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from runtime.domain import naming
from runtime.targets.kube.preflight import Problem, own_operator_namespace


@dataclass(frozen=True)
class Access:
    verb: str
    resource: str
    group: str = ""
    namespace: str | None = None
    subresource: str | None = None

    def __str__(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        res = f"{res}.{self.group}" if self.group else res
        where = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {res} {where}"

    def check_command(self) -> str:
        res = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        res = f"{res}.{self.group}" if self.group else res
        scope = f"-n {self.namespace}" if self.namespace else "--all-namespaces"
        return f"kubectl auth can-i {self.verb} {res} {scope}"


def required_access(spec, *, download: bool, token: bool, install_platform: bool) -> list[Access]:
    """What a deploy run does on the cluster, as (verb, resource) pairs to review."""
    ns = spec.namespace()
    plat_ns = own_operator_namespace(spec)
    out: list[Access] = []

    def add(verbs: str, resource: str, group: str = "", namespace: str | None = None, sub: str | None = None):
        out.extend(Access(v, resource, group, namespace, sub) for v in verbs.split())

    # reads of the preflight and the waits
    add("list", "nodes")
    add("list", "pods")
    add("list", "storageclasses", "storage.k8s.io")
    add("list", "clusterroles", "rbac.authorization.k8s.io")
    add("list", "clusterrolebindings", "rbac.authorization.k8s.io")
    add("list", "roles", "rbac.authorization.k8s.io")
    add("get list", "customresourcedefinitions", "apiextensions.k8s.io")
    # the graph's namespace and what dynadeploy puts in it (server-side apply: patch, and create)
    add("get create patch", "namespaces")
    for res, group in (
        ("serviceaccounts", ""),
        ("configmaps", ""),
        ("persistentvolumeclaims", ""),
        ("roles", "rbac.authorization.k8s.io"),
        ("rolebindings", "rbac.authorization.k8s.io"),
        ("networkpolicies", "networking.k8s.io"),
        ("dynamographdeployments", "nvidia.com"),
    ):
        add("get create patch", res, group, ns)
    add("list", "configmaps", "", ns)
    add("watch", "dynamographdeployments", "nvidia.com", ns)
    add("list watch", "pods", "", ns)
    add("get", "pods", "", ns, "log")
    add("list", "events", "", ns)
    add("get", "services", "", ns)
    if spec.serving.frontend.replicas > 1:
        add("get create patch", "poddisruptionbudgets", "policy", ns)
    if any(w.autoscaling for _, w in spec.serving.roles()):
        add("get create patch", "horizontalpodautoscalers", "autoscaling", ns)
    route = spec.serving.route
    if route is not None:  # the entry point, and a canary's weights on it
        res, group = (
            ("httproutes", "gateway.networking.k8s.io")
            if route.gateway
            else ("ingresses", "networking.k8s.io")
        )
        add("get list create patch delete", res, group, ns)
        add(
            "get",
            "gateways" if route.gateway else "ingressclasses",
            group,
            ((route.gateway.namespace or ns) if route.gateway else None),
        )
    if token:
        add("get create patch", "secrets", "", ns)
    if download:
        add("get create patch delete", "jobs", "batch", ns)
    if install_platform:
        # helm: release records (Secrets) and the charts' objects, cluster-scoped RBAC and CRDs
        add("get list create patch", "secrets", "", plat_ns)
        add("get create patch", "deployments", "apps", plat_ns)
        add("create patch", "customresourcedefinitions", "apiextensions.k8s.io")
        if spec.platform.operator_mode == "cluster":
            add("create", "clusterroles", "rbac.authorization.k8s.io")
            add("create", "clusterrolebindings", "rbac.authorization.k8s.io")
    return list(dict.fromkeys(out))


def gpu_operator_access() -> list[Access]:
    ns = naming.GPU_OPERATOR_NAMESPACE
    return [
        Access("get", "secrets", "", ns),
        Access("create", "secrets", "", ns),
        Access("create", "daemonsets", "apps", ns),
        Access("create", "deployments", "apps", ns),
        Access("create", "clusterroles", "rbac.authorization.k8s.io"),
        Access("create", "clusterrolebindings", "rbac.authorization.k8s.io"),
    ]


def access_problems(kube, needs: Iterable[Access], context: str | None) -> list[Problem]:
    needs = list(needs)

    def allowed(a: Access) -> bool:
        return kube.can_i(a.verb, a.resource, group=a.group, namespace=a.namespace, subresource=a.subresource)

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="access-review") as pool:  # ~40 reviews
        answers = list(pool.map(allowed, needs))
    denied = [a for a, ok in zip(needs, answers, strict=True) if not ok]
    if not denied:
        return []
    who = f"the identity of kubeconfig context {context}" if context else "this run's identity"
    listed = "; ".join(map(str, denied))
    checks = "; ".join(a.check_command() for a in denied[:3])
    return [
        Problem(
            f"{who} may not: {listed}",
            f"grant these with a Role/ClusterRole binding, or use a context with more rights "
            f"(check: {checks}{' ...' if len(denied) > 3 else ''})",
        )
    ]
