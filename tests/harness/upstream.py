"""The real upstream material (../shared/upstream or $DYNADEPLOY_UPSTREAM_DIR), read at test time.

Nothing from that folder is copied into the project: the harness reads the real CRDs and values files from
it when a test runs, and tests that need it skip (saying why) when it is absent. The folder's own
README.txt says what each file is and which upstream commit it comes from.

    upstream_dir()                 -> Path | None
    require_upstream()             -> Path, or pytest.skip with the reason
    dynamo_crds()                  -> the DGD, DGDSA and DCD CRDs (dicts), as Dynamo's operator installs them
    gpu_operator_crds()            -> ClusterPolicy and NVIDIADriver
    httproute_crd(version)         -> Gateway API HTTPRoute (v1.3.0 or v1.6.1 standard channel)
    prometheus_crds()              -> PodMonitor, ServiceMonitor, PrometheusRule (Prometheus Operator)
    values(chart)                  -> the real values.yaml of "dynamo-platform", "dynamo-operator",
                                      "gpu-operator"
    harness_charts()               -> a directory of the stand-in charts whose crds/ hold the real CRDs
"""

from __future__ import annotations

import atexit
import copy
import functools
import os
import shutil
import tempfile
from pathlib import Path

import yaml

ENV = "DYNADEPLOY_UPSTREAM_DIR"
REPO = Path(__file__).resolve().parents[2]
STAND_IN_CHARTS = REPO / "tests" / "harness" / "charts"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

DYNAMO_CRDS = (
    "dynamo/crds/nvidia.com_dynamographdeployments.yaml",
    "dynamo/crds/nvidia.com_dynamographdeploymentscalingadapters.yaml",
    "dynamo/crds/nvidia.com_dynamocomponentdeployments.yaml",
)
GPU_OPERATOR_CRDS = (
    "gpu-operator/chart/crds/nvidia.com_clusterpolicies.yaml",
    "gpu-operator/chart/crds/nvidia.com_nvidiadrivers.yaml",
)
PROMETHEUS_CRDS = (
    "prometheus-operator/monitoring.coreos.com_podmonitors.yaml",
    "prometheus-operator/monitoring.coreos.com_servicemonitors.yaml",
    "prometheus-operator/monitoring.coreos.com_prometheusrules.yaml",
)
VALUES = {
    "dynamo-platform": "dynamo/platform-chart/values.yaml",
    "dynamo-operator": "dynamo/platform-chart/components/operator/values.yaml",
    "gpu-operator": "gpu-operator/chart/values.yaml",
}


def upstream_dir() -> Path | None:
    """$DYNADEPLOY_UPSTREAM_DIR, else ../shared/upstream from the project's root (this worktree's or
    main's)."""
    env = os.environ.get(ENV, "").strip()
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "upstream", REPO.parent.parent / "shared" / "upstream"]
    for c in candidates:
        if (c / "dynamo" / "crds").is_dir():
            return c
    return None


def missing_reason() -> str:
    return (
        f"the upstream reference folder (../shared/upstream or ${ENV}) is absent: the real CRDs and "
        f"values files this test holds the project to cannot be read"
    )


def require_upstream() -> Path:
    import pytest

    d = upstream_dir()
    if d is None:
        pytest.skip(missing_reason())
    return d


@functools.lru_cache(maxsize=32)
def _load(rel: str) -> dict:
    d = upstream_dir()
    if d is None:
        raise FileNotFoundError(missing_reason())
    return yaml.load((d / rel).read_text(), Loader=_LOADER)


def load(rel: str) -> dict:
    """One YAML file of the upstream folder (a deep copy: callers may change it)."""
    return copy.deepcopy(_load(rel))


def dynamo_crds() -> list[dict]:
    return [load(p) for p in DYNAMO_CRDS]


def gpu_operator_crds() -> list[dict]:
    return [load(p) for p in GPU_OPERATOR_CRDS]


def httproute_crd(version: str = "v1.6.1") -> dict:
    return load(f"gateway-api/httproutes-{version}.yaml")


def prometheus_crds() -> list[dict]:
    return [load(p) for p in PROMETHEUS_CRDS]


def values(chart: str) -> dict:
    return load(VALUES[chart]) or {}


def install(store, crds: list[dict]) -> None:
    """Create each CRD in a simulator ``store`` unless one of that name exists."""
    for crd in crds:
        if (
            store.try_get("apiextensions.k8s.io/v1", "CustomResourceDefinition", crd["metadata"]["name"])
            is None
        ):
            store.create(crd)


@functools.lru_cache(maxsize=1)
def harness_charts() -> Path:
    """tests/harness/charts with the real CRDs in the charts' crds/ folders (a temporary copy made once per
    process), or the stand-in folder itself when the upstream folder is absent (its charts then ship no
    Dynamo CRDs: callers skip with ``missing_reason()``)."""
    if upstream_dir() is None:
        return STAND_IN_CHARTS
    tmp = tempfile.mkdtemp(prefix="dynadeploy-charts-")
    atexit.register(shutil.rmtree, tmp, True)
    out = Path(tmp) / "charts"
    shutil.copytree(STAND_IN_CHARTS, out)
    targets = {
        out / "dynamo-platform" / "charts" / "dynamo-operator" / "crds": DYNAMO_CRDS,
        out / "gpu-operator" / "crds": GPU_OPERATOR_CRDS,
    }
    for folder, files in targets.items():
        folder.mkdir(parents=True, exist_ok=True)
        for rel in files:
            shutil.copyfile(upstream_dir() / rel, folder / Path(rel).name)
    return out
