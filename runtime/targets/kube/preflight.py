"""Preflight of a Kubernetes target: read-only checks that report every problem, each with its fix,
before anything on the cluster is changed.

Checks: the API answers and its version is recent enough for Dynamo (1.30+); this run's identity may do
what the run will do (SelfSubjectAccessReview per verb and resource); the GPU nodes have enough free
``nvidia.com/gpu`` for the graph (before the GPU operator runs, GPU nodes are recognised by the labels
GPU feature discovery or the cloud put on them); a StorageClass exists for the model cache; existing
Dynamo operators (cluster-wide vs namespace-restricted, found the way the platform chart's own
validation finds them: ClusterRoles / Roles named ``*-dynamo-operator-*-manager-role``) and CRDs fit the
spec's operator mode. The findings that later stages need (is an operator to be installed or reused?)
are recomputed there from the cluster, never carried in memory between tasks. The access review (what
a run needs, asked of the API server) is runtime/targets/kube/access.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from runtime.domain import naming
from runtime.errors import PreflightError
from runtime.spec import MIN_K8S_MINOR

GPU = "nvidia.com/gpu"
DGD_CRD = "dynamographdeployments.nvidia.com"
DYNAMO_CRDS = (
    DGD_CRD,
    "dynamographdeploymentscalingadapters.nvidia.com",
    "dynamocomponentdeployments.nvidia.com",
)
OPERATOR_INFIX, OPERATOR_SUFFIX = "-dynamo-operator-", "-manager-role"
GPU_COUNT_LABELS = ("nvidia.com/gpu.count", "cloud.google.com/gke-accelerator-count")
GPU_PRESENT_LABELS = ("nvidia.com/gpu.present", "feature.node.kubernetes.io/pci-10de.present")


@dataclass(frozen=True)
class Operator:
    """A Dynamo operator found in the cluster."""

    release: str
    namespace: str
    role: str
    cluster_wide: bool
    version: str | None = None  # the operator image's tag, when its Deployment was found

    def __str__(self) -> str:
        where = "cluster-wide" if self.cluster_wide else "namespace-restricted"
        ver = f" {self.version}" if self.version else ""
        return f"{where} operator{ver} (release {self.release or '?'} in {self.namespace or '?'})"


@dataclass
class Problem:
    problem: str
    fix: str


@dataclass
class GpuInventory:
    nodes: dict[str, dict] = field(default_factory=dict)  # name -> {allocatable, used, labelled}
    reporting: bool = False  # some node reports allocatable nvidia.com/gpu (a device plugin runs)

    @property
    def gpu_nodes(self) -> list[str]:
        return sorted(n for n, v in self.nodes.items() if v["allocatable"] or v["labelled"])

    @property
    def total(self) -> int:
        return sum(v["allocatable"] if self.reporting else v["labelled"] for v in self.nodes.values())

    @property
    def free(self) -> int:
        return sum(self.free_on(n) for n in self.nodes)

    def free_on(self, node: str) -> int:
        v = self.nodes[node]
        return max(0, (v["allocatable"] if self.reporting else v["labelled"]) - v["used"])

    @property
    def max_free_per_node(self) -> int:
        return max((self.free_on(n) for n in self.nodes), default=0)


# --------------------------------------------------------------------------------- cluster readers


def _int(value: object) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _pod_gpus(pod: dict) -> int:
    spec = pod.get("spec") or {}
    total = 0
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        total += _int({**(res.get("limits") or {}), **(res.get("requests") or {})}.get(GPU, 0))
    init = max(
        (
            _int(((c.get("resources") or {}).get("limits") or {}).get(GPU, 0))
            for c in spec.get("initContainers") or []
        ),
        default=0,
    )
    return max(total, init)


def gpu_inventory(nodes: Iterable[dict], pods: Iterable[dict], deployment: str) -> GpuInventory:
    """GPUs per node: allocatable, labelled (GFD/cloud labels), and used by running pods other than the
    deployment's own (a redeploy replaces those)."""
    inv = GpuInventory()
    for node in nodes:
        meta, status = node.get("metadata") or {}, node.get("status") or {}
        labels = meta.get("labels") or {}
        alloc = _int((status.get("allocatable") or {}).get(GPU, 0))
        labelled = next((_int(labels[k]) for k in GPU_COUNT_LABELS if _int(labels.get(k))), 0)
        if not labelled and any(labels.get(k) == "true" for k in GPU_PRESENT_LABELS):
            labelled = 1
        unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
        inv.nodes[meta["name"]] = {
            "allocatable": 0 if unschedulable else alloc,
            "labelled": 0 if unschedulable else max(labelled, alloc),
            "used": 0,
        }
        inv.reporting = inv.reporting or alloc > 0
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        node_name = spec.get("nodeName")
        if node_name not in inv.nodes or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if (meta.get("labels") or {}).get(naming.DEPLOYMENT_KEY) == deployment:
            continue
        inv.nodes[node_name]["used"] += _pod_gpus(pod)
    return inv


def _release_of(obj: dict, name: str) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return (
        annotations.get("meta.helm.sh/release-name")
        or labels.get("release")
        or labels.get("app.kubernetes.io/instance")
        or name.split(OPERATOR_INFIX, 1)[0]
    )


def _is_operator_role(name: str) -> bool:
    return OPERATOR_INFIX in name and name.endswith(OPERATOR_SUFFIX)


def operator_image_tag(kube, release: str, namespace: str) -> str | None:
    dep = kube.get("apps/v1", "Deployment", f"{release}-dynamo-operator-controller-manager", namespace)
    for c in ((((dep or {}).get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []:
        image = c.get("image") or ""
        tail = image.rsplit("/", 1)[-1]
        if ":" in tail:
            return tail.split(":", 1)[1].split("@", 1)[0]
    return None


def find_operators(kube) -> list[Operator]:
    """Every Dynamo operator in the cluster, as the platform chart's validation finds them."""
    out: list[Operator] = []
    bindings = kube.list("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
    for cr in kube.list("rbac.authorization.k8s.io/v1", "ClusterRole"):
        name = cr["metadata"]["name"]
        if not _is_operator_role(name):
            continue
        ns = ""
        for b in bindings:
            if (b.get("roleRef") or {}).get("name") == name:
                ns = next(
                    (
                        s.get("namespace")
                        for s in b.get("subjects") or []
                        if s.get("kind") == "ServiceAccount" and s.get("namespace")
                    ),
                    ns,
                )
        release = _release_of(cr, name)
        out.append(Operator(release, ns, name, True, operator_image_tag(kube, release, ns) if ns else None))
    for role in kube.list("rbac.authorization.k8s.io/v1", "Role"):
        name = role["metadata"]["name"]
        if _is_operator_role(name):
            ns = role["metadata"].get("namespace", "")
            release = _release_of(role, name)
            out.append(Operator(release, ns, name, False, operator_image_tag(kube, release, ns)))
    return out


def own_operator_namespace(spec) -> str:
    return naming.platform_namespace(spec) or naming.PLATFORM_NAMESPACE


def is_own(op: Operator, spec) -> bool:
    """The operator dynadeploy would install for this spec (same release and namespace)."""
    return (
        op.release == naming.PLATFORM_RELEASE
        and op.namespace == own_operator_namespace(spec)
        and (op.cluster_wide == (spec.platform.operator_mode == "cluster"))
    )


def reusable_operator(spec, operators: list[Operator]) -> Operator | None:
    """A cluster-wide operator installed by someone else that this cluster-mode spec will use as is."""
    if spec.platform.operator_mode != "cluster":
        return None
    return next((op for op in operators if op.cluster_wide and not is_own(op, spec)), None)


def operator_problems(spec, operators: list[Operator]) -> list[Problem]:
    mode = spec.platform.operator_mode
    ns = spec.namespace()
    want = spec.platform.chart()
    problems: list[Problem] = []
    cluster = [op for op in operators if op.cluster_wide]
    restricted = [op for op in operators if not op.cluster_wide]
    if mode == "cluster":
        if restricted:
            where = ", ".join(sorted({op.namespace for op in restricted}))
            problems.append(
                Problem(
                    f"namespace-restricted Dynamo operators run in namespaces {where}; a cluster-wide operator "
                    "beside them would manage the same graphs (the platform chart refuses to install)",
                    f"uninstall them (helm uninstall <release> -n <namespace>), or set platform.operator_mode: "
                    f"namespace to install one more namespace-restricted operator in {ns}",
                )
            )
        foreign = [op for op in cluster if not is_own(op, spec)]
        if len(foreign) > 1:
            problems.append(
                Problem(
                    f"{len(foreign)} cluster-wide Dynamo operators are installed ({'; '.join(map(str, foreign))})",
                    "keep one cluster-wide operator per cluster: helm uninstall the others",
                )
            )
        elif foreign and foreign[0].version and _minor(foreign[0].version) != _minor(want):
            op = foreign[0]
            problems.append(
                Problem(
                    f"a {op} is already installed and serves every namespace, but the spec pins Dynamo {want}",
                    f"set platform.dynamo_version to {op.version} to use that operator, or upgrade/uninstall it "
                    f"(helm uninstall {op.release} -n {op.namespace}) so dynadeploy installs {want}",
                )
            )
    elif _major(spec.platform.dynamo_version) >= 1:
        # The 1.x chart's contract: a namespace-restricted operator is installed with upgradeCRD: false, so
        # the chart brings no CRDs; it uses the CRDs a cluster-wide operator applies, and the cluster-wide
        # operator leaves the namespace to it (a namespace-ownership Lease). The cluster-wide one comes first.
        if not cluster:
            problems.append(
                Problem(
                    f"platform.operator_mode: namespace needs a cluster-wide Dynamo operator first: the Dynamo {want} "
                    "chart installs a namespace-restricted operator without CRDs (upgradeCRD: false) and relies on "
                    "the CRDs a cluster-wide operator applies; this cluster has none",
                    f"install a cluster-wide dynamo-platform {want} first (helm install dynamo-platform "
                    f"{NGC_CHARTS}/dynamo-platform-{want}.tgz -n dynamo-system --create-namespace), or set "
                    "platform.operator_mode: cluster and let dynadeploy install it",
                )
            )
        for op in cluster:
            if op.version and _minor(op.version) != _minor(want):
                problems.append(
                    Problem(
                        f"the {op} provides the cluster's Dynamo CRDs, but the spec pins Dynamo {want}; a namespace-"
                        "restricted operator must match the CRDs it serves",
                        f"set platform.dynamo_version to {op.version}, or upgrade that operator to {want} "
                        f"(helm upgrade {op.release} -n {op.namespace})",
                    )
                )
    else:
        for op in cluster:
            problems.append(
                Problem(
                    f"a {op} already manages every namespace, including {ns}; a namespace-restricted operator "
                    "there would fight it",
                    f"set platform.operator_mode: cluster to use that operator, or uninstall it "
                    f"(helm uninstall {op.release} -n {op.namespace})",
                )
            )
    if mode != "cluster":
        for op in restricted:
            if op.namespace == ns and op.release != naming.PLATFORM_RELEASE:
                problems.append(
                    Problem(
                        f"a {op} is already installed in {ns}",
                        f"deploy into another namespace (target.namespace), or uninstall it "
                        f"(helm uninstall {op.release} -n {ns})",
                    )
                )
    return problems


NGC_CHARTS = "https://helm.ngc.nvidia.com/nvidia/ai-dynamo/charts"


def _major(version: str) -> int:
    head = version.lstrip("v").split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _minor(version: str) -> tuple[str, ...]:
    return tuple(version.lstrip("v").split("-", 1)[0].split(".")[:2])


def crd_problems(spec, crds: dict[str, dict], operators: list[Operator]) -> list[Problem]:
    """Existing Dynamo CRDs that the run could not use (CRDs that are merely present are fine: 1.x
    installs apply them before the chart)."""
    dgd = crds.get(DGD_CRD)
    if dgd is None:
        if (
            spec.platform.operator_mode == "namespace"
            and _major(spec.platform.dynamo_version) >= 1
            and any(op.cluster_wide for op in operators)
        ):
            # without a cluster-wide operator, operator_problems already says what to install first
            return [
                Problem(
                    f"the {DGD_CRD} CRD is not installed: in namespace mode the Dynamo {spec.platform.chart()} chart "
                    "ships no CRDs, and the cluster-wide operator has not applied them",
                    "check the cluster-wide operator (its crd-apply init container, upgradeCRD: true) or apply the "
                    "CRDs of its release, then rerun",
                )
            ]
        return []
    served = {v.get("name") for v in (dgd.get("spec") or {}).get("versions") or [] if v.get("served")}
    if "v1beta1" in served:
        return []
    manages_crds = spec.platform.operator_mode == "cluster" and reusable_operator(spec, operators) is None
    if manages_crds:
        return []
    return [
        Problem(
            f"the cluster's {DGD_CRD} CRD serves only {', '.join(sorted(served)) or 'nothing'} (Dynamo 0.x), but "
            "dynadeploy renders nvidia.com/v1beta1 graphs, and this run does not manage the cluster's CRDs",
            "upgrade the Dynamo CRDs to 1.x (a cluster-wide dynamo-platform 1.x install applies them), or use "
            "platform.operator_mode: cluster",
        )
    ]


# ---------------------------------------------------------------------------------------- version


def server_minor(version: dict) -> tuple[int, int]:
    major = int(re.sub(r"\D", "", str(version.get("major") or "0")) or 0)
    minor = int(re.sub(r"\D.*", "", str(version.get("minor") or "0")) or 0)
    if not minor and version.get("gitVersion"):
        m = re.match(r"v?(\d+)\.(\d+)", version["gitVersion"])
        if m:
            major, minor = int(m.group(1)), int(m.group(2))
    return major, minor


def version_problems(version: dict) -> list[Problem]:
    major, minor = server_minor(version)
    if (major, minor) < (1, MIN_K8S_MINOR):
        return [
            Problem(
                f"the cluster runs Kubernetes {version.get('gitVersion') or f'{major}.{minor}'}; Dynamo's platform "
                f"chart needs 1.{MIN_K8S_MINOR} or later",
                f"upgrade the cluster to Kubernetes 1.{MIN_K8S_MINOR}+ (or point target.context at one that is)",
            )
        ]
    return []


# ------------------------------------------------------------------------------------------ report


def raise_problems(problems: list[Problem], where: str) -> None:
    if not problems:
        return
    lines = "; ".join(f"({i}) {p.problem}" for i, p in enumerate(problems, 1))
    fixes = "; ".join(f"({i}) {p.fix}" for i, p in enumerate(problems, 1))
    raise PreflightError(
        f"preflight of {where} found {len(problems)} problem(s), nothing was changed: {lines}",
        hint=fixes,
        problems=problems,
    )
