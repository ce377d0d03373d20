"""spec -> the Helm charts of the shared platform (NVIDIA GPU operator, Dynamo) and their values.

Dynamo's install procedure changed between release lines, so the chart version picks the scheme:
1.x is one dynamo-platform chart with ``global.*`` toggles (the operator applies its own CRDs);
0.x is a dynamo-crds chart (installed first, into ``default``) and a dynamo-platform chart with
``etcd.enabled``/``nats.enabled`` style values. Base values live in infra/values; this module
overlays what the spec decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.domain import naming
from runtime.render import common, templates

if TYPE_CHECKING:  # pragma: no cover
    from runtime.domain.capabilities import Capabilities
    from runtime.spec import DeploymentSpec

DYNAMO_CHARTS = "https://helm.ngc.nvidia.com/nvidia/ai-dynamo/charts"
NVIDIA_REPO = "https://helm.ngc.nvidia.com/nvidia"
CRDS_RELEASE = "dynamo-crds"
CRDS_NAMESPACE = "default"
ETCD_IMAGE = "bitnamilegacy/etcd"


@dataclass(frozen=True)
class ChartRef:
    """One Helm release to install: the chart (a .tgz URL, or a name in ``repo``) and where it goes."""

    name: str
    version: str
    url: str  # the chart archive (helm install <url>); the OCI form of Dynamo's docs 404s
    release: str
    namespace: str
    repo: str | None = None  # a classic Helm repo holding ``name`` (helm install --repo)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "url": self.url, "release": self.release,
                "namespace": self.namespace, "repo": self.repo}  # fmt: skip


def major(version: str) -> int:
    return int(version.lstrip("v").split(".", 1)[0])


def _minor(version: str) -> tuple[int, int]:
    parts = version.lstrip("v").split(".")
    return int(parts[0]), int(parts[1])


def _platform_namespace(spec: DeploymentSpec) -> str:
    common.namespace_of(spec)  # Kubernetes targets only
    return naming.platform_namespace(spec) or naming.PLATFORM_NAMESPACE


def platform_charts(spec: DeploymentSpec) -> list[ChartRef]:
    """The Dynamo charts in install order (0.x: dynamo-crds, then dynamo-platform)."""
    version = spec.platform.chart()
    platform = ChartRef(
        name="dynamo-platform",
        version=version,
        url=f"{DYNAMO_CHARTS}/dynamo-platform-{version}.tgz",
        release=naming.PLATFORM_RELEASE,
        namespace=_platform_namespace(spec),
    )
    if major(version) >= 1:
        return [platform]
    crds = ChartRef(
        name="dynamo-crds",
        version=version,
        url=f"{DYNAMO_CHARTS}/dynamo-crds-{version}.tgz",
        release=CRDS_RELEASE,
        namespace=CRDS_NAMESPACE,
    )
    return [crds, platform]


def render_crds_values(spec: DeploymentSpec) -> dict[str, Any]:
    """Values of the 0.x dynamo-crds chart (none to speak of)."""
    return templates.load("values/dynamo-crds-0.x.yaml") or {}


def render_platform_values(spec: DeploymentSpec, provider: Capabilities) -> dict[str, Any]:
    """Values of the dynamo-platform chart, in the scheme of the chart's release line."""
    platform = spec.platform
    restricted = platform.operator_mode == "namespace"
    namespace = common.namespace_of(spec)
    version = platform.chart()
    if major(version) >= 1:
        base = templates.load("values/dynamo-platform-1.x.yaml") or {}
        overlay: dict[str, Any] = {
            "global": {
                "nats": {"install": platform.nats},
                "etcd": {"install": platform.etcd},
                "grove": {"install": platform.grove, "enabled": platform.grove},
                "kai-scheduler": {"install": platform.kai_scheduler, "enabled": platform.kai_scheduler},
            },
            "dynamo-operator": {
                "discoveryBackend": platform.discovery_backend,
                # Helm refuses a namespace-restricted operator that also upgrades the cluster's CRDs.
                "upgradeCRD": not restricted,
                "namespaceRestriction": {"enabled": restricted},
            },
        }
        if restricted:
            overlay["dynamo-operator"]["namespaceRestriction"]["targetNamespace"] = namespace
        if platform.etcd:
            overlay["etcd"] = {
                "image": {"repository": ETCD_IMAGE},
                "global": {"security": {"allowInsecureImages": True}},
            }
        if platform.grove and platform.kai_scheduler and _minor(version) >= (1, 5):
            # Bundled Grove + KAI (1.5+): KAI must not evict Grove's gang-scheduled pods as stale.
            overlay["kai-scheduler"] = {"scheduler": {"args": {"default-staleness-grace-period": "-1s"}}}
        return templates.merge(base, overlay)
    base = templates.load("values/dynamo-platform-0.x.yaml") or {}
    overlay = {
        "grove": {"enabled": platform.grove},
        "kai-scheduler": {"enabled": platform.kai_scheduler},
        "dynamo-operator": {"namespaceRestriction": {"enabled": restricted}},
    }
    if restricted:
        overlay["dynamo-operator"]["namespaceRestriction"]["targetNamespace"] = namespace
    return templates.merge(base, overlay)


def gpu_driver_installed_by_operator(spec: DeploymentSpec, provider: Capabilities) -> bool:
    """True when the GPU operator must install the driver (spec's driver policy, else the provider's)."""
    policy = spec.platform.gpu_operator.driver
    if policy == "auto":
        policy = provider.gpu_driver
    return policy == "install"


def render_gpu_operator_values(spec: DeploymentSpec, provider: Capabilities) -> dict[str, Any]:
    """Values of NVIDIA's gpu-operator chart: base values, driver policy, the provider's extras."""
    base = templates.load("values/gpu-operator.yaml") or {}
    values = templates.merge(base, provider.gpu_operator_values)
    return templates.merge(values, {"driver": {"enabled": gpu_driver_installed_by_operator(spec, provider)}})


def gpu_operator_chart(spec: DeploymentSpec) -> ChartRef:
    """NVIDIA's gpu-operator chart at the version the spec pins."""
    version = spec.platform.gpu_operator.version
    return ChartRef(
        name="gpu-operator",
        version=version,
        url=f"{NVIDIA_REPO}/charts/gpu-operator-{version}.tgz",
        release=naming.GPU_OPERATOR_RELEASE,
        namespace=naming.GPU_OPERATOR_NAMESPACE,
        repo=NVIDIA_REPO,
    )
