"""Fixtures for the kube target: the Kubernetes API simulator with its full controllers, the real helm and
kubectl binaries, the stand-in charts, and specs pointing at the simulator.

What is real: the kube gateway (kubernetes client), helm 4 (through pyhelm3) and kubectl, the Prefect
flows and tasks, and - with the process runtime on - the Dynamo frontend and mocker processes that serve
the graph (on loopback addresses). What is simulated: the API server and its controllers (pods,
PVCs, Jobs, nodes with GPUs, a GPU operator's device plugin, a Dynamo operator), see
tests/harness/README.md and tests/harness/kubeapi/controllers.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from runtime.spec import parse_spec
from runtime.targets.kube.charts import CHART_DIR_ENV
from tests.harness import upstream
from tests.harness.dynadeploy_host import install_all
from tests.harness.kubeapi import Simulator

REPO = Path(__file__).resolve().parents[3]
# the stand-in charts with the real CRDs from the upstream folder in their crds/ (tests/harness/upstream.py)
CHARTS = upstream.harness_charts()
FAST = {"workloads": {"ready_delay": 0.05, "terminating_delay": 0.2}, "jobs": {"delay": 0.1}}
DEFAULT_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "kubeapi-sim.io/provisioner",
    "volumeBindingMode": "Immediate",
}
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _require_tools() -> None:
    from runtime.errors import ToolError
    from runtime.gateways import toolchain

    try:
        toolchain.binary("helm")
        toolchain.binary("kubectl")
    except ToolError:
        pytest.skip(
            "helm/kubectl are not installed; run `uv run python -m runtime.gateways.toolchain install`"
        )


@pytest.fixture(scope="module")
def chart_env(tmp_path_factory):
    """The stand-in charts instead of the real https ones, and private helm caches."""
    upstream.require_upstream()  # the charts install the real CRDs read from it
    home = tmp_path_factory.mktemp("helm-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CHART_DIR_ENV, str(CHARTS))
        for var, sub in (
            ("HELM_CACHE_HOME", "cache"),
            ("HELM_CONFIG_HOME", "config"),
            ("HELM_DATA_HOME", "data"),
        ):
            mp.setenv(var, str(home / sub))
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            mp.delenv(var, raising=False)
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        # Waits end well inside pytest's 300 s limit, so a stuck stage fails with its own message.
        for what, seconds in (
            ("GPU", 90),
            ("PLATFORM", 90),
            ("ROLLOUT", 120),
            ("TEARDOWN", 90),
            ("MODEL", 60),
        ):
            mp.setenv(f"DYNADEPLOY_KUBE_{what}_TIMEOUT_S", str(seconds))
        yield home


def start_cluster(tmp_path_factory, *, storage_class: bool = True, **switches) -> Simulator:
    """A started simulator with every controller (``switches`` override FAST for install_all)."""
    _require_tools()
    home = tmp_path_factory.mktemp("kube")
    sim = Simulator().start()
    sim.ctl = install_all(sim, **{**FAST, **switches})
    sim.write_kubeconfig(home / "kubeconfig")
    sim.env = sim.tool_env(home)
    if storage_class:
        sim.store.create(dict(DEFAULT_CLASS))
    return sim


def stop_cluster(sim: Simulator) -> None:
    sim.stop()
    errors = [e for e in sim.controller_errors if e[0] != "stop-hook"]
    assert not errors, "\n".join(e[2] for e in errors)


def spec_doc(sim: Simulator, name: str, serving: dict | None = None, **sections) -> dict:
    """A kube spec document for the simulator: mocker engine, a short smoke test unless overridden."""
    target = {"kind": "kube", "kubeconfig": str(sim.kubeconfig), **sections.pop("target", {})}
    return {
        "apiVersion": "dynadeploy.io/v1",
        "name": name,
        "target": target,
        "serving": {"engine": "mocker", **(serving or {})},
        "smoke": sections.pop("smoke", {"requests": 12, "concurrency": 4, "max_tokens": 8}),
        **sections,
    }


def make_spec(sim: Simulator, name: str, serving: dict | None = None, **sections):
    return parse_spec(spec_doc(sim, name, serving, **sections), source=f"test:{name}")


def labelled(sim: Simulator, api_version: str, kind: str, name: str) -> list[dict]:
    """Objects of ``kind`` carrying deployment ``name``'s labels, anywhere in the cluster."""
    from runtime.domain import naming

    return sim.store.list(api_version, kind, label_selector=naming.labels(name))


def leftovers(sim: Simulator, name: str) -> list[str]:
    """Every object in the store labelled for deployment ``name``, over every kind the store serves."""
    from runtime.domain import naming

    out = []
    selector = naming.labels(name)
    for rt in sim.store.registry.all():
        if "list" not in (getattr(rt, "verbs", None) or ["list"]):
            continue
        try:
            objs = sim.store.list(rt.api_version(), rt.kind, label_selector=selector)
        except Exception:
            continue
        out += [f"{rt.kind} {o['metadata'].get('namespace', '')}/{o['metadata']['name']}" for o in objs]
    return sorted(out)


def writes(sim: Simulator, since: int = 0) -> list[str]:
    """Mutating requests seen by the simulator since request number ``since`` (SSARs excluded)."""
    out = []
    for r in sim.requests.entries[since:]:
        if r.method in WRITES and "accessreviews" not in r.path:
            out.append(f"{r.method} {r.path}")
    return out


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0", "false")


def graph_processes(sim: Simulator, ns: str) -> list[dict]:
    """The process runtime's processes of the graphs in namespace ``ns``."""
    return [p for p in sim.ctl.runtime.processes() if p["pod"].startswith(f"{ns}/")]


def simulate_port_forward(sim: Simulator, monkeypatch) -> list[tuple]:
    """``kubectl port-forward`` as far as the simulator allows. It has no pods/portforward stream, so the
    forward goes straight to the process behind the target: ``pod/<name>`` that pod's, ``svc/<name>`` a
    ready process of a ready pod the Service selects (what the real one reaches). Returns the calls made.
    Used where an address does not answer, e.g. after a rolling update moved a graph's frontend."""
    calls: list[tuple] = []

    @contextlib.contextmanager
    def forward(kubeconfig, context, namespace, target, remote_port, **_):
        calls.append((namespace, target, remote_port))
        kind, _, name = target.partition("/")
        if kind in ("svc", "service"):
            svc = sim.store.get("v1", "Service", name, namespace)
            pods = sim.store.list("v1", "Pod", namespace, label_selector=svc["spec"].get("selector") or {})
            names = {f"{namespace}/{p['metadata']['name']}" for p in pods}
        else:
            names = {f"{namespace}/{name}"}
        procs = [p for p in graph_processes(sim, namespace) if p["pod"] in names and p["ready"]]
        assert procs, f"no ready process to forward {target} to"
        yield f"http://{procs[0]['host']}:{procs[0]['port']}"

    monkeypatch.setattr("runtime.gateways.portforward.port_forward", forward)
    return calls


@pytest.fixture(scope="module")
def sim(tmp_path_factory, chart_env):
    """One simulator per test module, with every controller and the process runtime (modules needing other
    switches define their own ``sim``)."""
    sim = start_cluster(tmp_path_factory, process_runtime=True)
    yield sim
    stop_cluster(sim)


@pytest.fixture
def port_forward(sim, monkeypatch):
    """The simulated ``kubectl port-forward`` (``simulate_port_forward``); the calls it got."""
    return simulate_port_forward(sim, monkeypatch)
