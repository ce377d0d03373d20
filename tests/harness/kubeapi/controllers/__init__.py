"""The simulator's controllers: workloads (Deployments, ReplicaSets, StatefulSets, DaemonSets, Pods), Jobs,
storage (PVC binding), nodes (with GPUs), a GPU operator, Services (LoadBalancer ingress, Endpoints), a
Dynamo operator stand-in, an opt-in process runtime running real Dynamo processes and an opt-in traffic
layer (Gateway API + ingress-nginx with real loopback proxies). Each uses only the Store API and the
controller hook; each module's docstring says what it simulates and what not.

    from tests.harness.kubeapi import Simulator
    from tests.harness.kubeapi.controllers import install_all

    sim = Simulator().start()
    ctl = install_all(sim, workloads={"ready_delay": 0.1}, nodes={"driver_preinstalled": True},
                      dynamo={"early_success": True}, process_runtime={"host": host}, crds=True,
                      traffic={"ingress_port": 18080})   # also installs the Gateway API CRDs
    ctl.workloads.crash.add("main")        # switches are plain attributes, changeable at any time
    ctl.runtime.address("ns", "my-dgd")    # the loopback address a DGD's frontend listens on
    ctl.traffic.gateway_address("ns", "gw")   # a Gateway's proxy address (= its status.addresses[0].value)
    sim.stop()                             # also stops every process the runtime started

Each switch is ``True`` (defaults), ``False`` (not installed), a dict of constructor keyword arguments, or a
ready-made controller instance. Defaults: everything on except ``process_runtime`` and ``traffic``;
``crds=False`` (apply ``dynamo_crds()`` yourself, as the platform chart would, or pass ``crds=True``).
``process_runtime`` takes its ``ProcessHost`` as ``{"host": ...}`` (process_runtime.py; this project's is
tests/harness/dynadeploy_host.py, whose ``install_all`` fills it in).
``dynamo_crds()`` and the HTTPRoute of ``gateway_api_crds()`` are the real upstream CRDs when the upstream
folder is there (tests/harness/upstream.py), so every custom resource is pruned and validated against the
real schema (kubeapi/schema.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import dynamo_admission
from .base import Reconciler
from .dynamo_operator import DynamoOperator, dgd_crd, dgdsa_crd
from .dynamo_operator import dynamo_crds as stand_in_dynamo_crds
from .gpu_operator import GpuOperator
from .jobs import Jobs
from .nodes import DEFAULT_NODES, Nodes, NodeSpec
from .process_runtime import ProcessRuntime, leftover_pids
from .services import Services
from .storage import Storage
from .traffic import (
    BACKEND_HEADER,
    GATEWAY_CONTROLLER,
    NGINX_CONTROLLER,
    Traffic,
    gateway_api_crds,
    install_gateway_api_crds,
)
from .workloads import Workloads

__all__ = [
    "BACKEND_HEADER",
    "DEFAULT_NODES",
    "GATEWAY_CONTROLLER",
    "NGINX_CONTROLLER",
    "DynamoOperator",
    "GpuOperator",
    "Installed",
    "Jobs",
    "NodeSpec",
    "Nodes",
    "ProcessRuntime",
    "Reconciler",
    "Services",
    "Storage",
    "Traffic",
    "Workloads",
    "dgd_crd",
    "dgdsa_crd",
    "dynamo_crds",
    "gateway_api_crds",
    "install_all",
    "install_crds",
    "install_gateway_api_crds",
    "leftover_pids",
]


def dynamo_crds() -> list[dict]:
    """Dynamo's real CRDs (DGD, DGDSA, DCD) from the upstream folder (tests/harness/upstream.py); the
    stand-ins of dynamo_operator.py (preserve-unknown-fields schemas) only when that folder is absent."""
    from ... import upstream

    if upstream.upstream_dir() is None:
        return stand_in_dynamo_crds()
    return upstream.dynamo_crds()


def install_crds(store: Any) -> None:
    """Create Dynamo's CRDs (or leave them) in ``store``, as the platform chart would."""
    from ... import upstream

    upstream.install(store, dynamo_crds())


@dataclass
class Installed:
    """What ``install_all`` set up; ``None`` for a controller that was switched off."""

    sim: Any
    nodes: Nodes | None = None
    gpu_operator: GpuOperator | None = None
    storage: Storage | None = None
    workloads: Workloads | None = None
    jobs: Jobs | None = None
    services: Services | None = None
    dynamo: DynamoOperator | None = None
    runtime: ProcessRuntime | None = None
    traffic: Traffic | None = None
    handles: list = field(default_factory=list)
    admission: Any = None  # the operator's validating webhook stand-in, registered on the store

    def remove(self) -> None:
        """Unregister every controller (the runtime's processes and the traffic proxies stop with it)."""
        for h in self.handles:
            self.sim.remove_controller(h)
        self.handles.clear()
        if self.admission is not None and self.admission in self.sim.store.admission:
            self.sim.store.admission.remove(self.admission)
        if self.runtime is not None:
            self.runtime.stop()
        if self.traffic is not None:
            self.traffic.stop()


def _make(switch: Any, cls: type, **fixed: Any) -> Any:
    if switch is False or switch is None:
        return None
    if isinstance(switch, Reconciler):
        return switch
    return cls(**fixed, **(switch if isinstance(switch, dict) else {}))


def install_all(
    sim: Any,
    *,
    nodes: Any = True,
    gpu_operator: Any = True,
    storage: Any = True,
    workloads: Any = True,
    jobs: Any = True,
    services: Any = True,
    dynamo: Any = True,
    process_runtime: Any = False,
    traffic: Any = False,
    crds: bool = False,
    every: float | None = None,
) -> Installed:
    """Install the controllers on a started ``Simulator``; returns them (an ``Installed``).

    Order matters only for who sees an event first: nodes, gpu-operator, storage, workloads, jobs,
    services, dynamo-operator, process-runtime, traffic. ``every`` overrides each controller's tick period.
    ``traffic`` installs the Gateway API CRDs unless ``traffic={"crds": False}`` (``"stand-in"``: the
    stand-in HTTPRoute CRD, preserve-unknown-fields, instead of the real one).
    """
    out = Installed(sim)
    out.nodes = _make(nodes, Nodes)
    if out.nodes is not None:
        out.nodes.install(sim.store)
    if out.nodes is not None:
        out.gpu_operator = _make(gpu_operator, GpuOperator, nodes=out.nodes)
    out.storage = _make(storage, Storage)
    out.workloads = _make(workloads, Workloads)
    out.jobs = _make(jobs, Jobs)
    out.services = _make(services, Services)
    out.runtime = _make(process_runtime, ProcessRuntime)
    if out.runtime is not None:
        sim.on_stop(out.runtime.stop)
    if dynamo is not False and dynamo is not None and not isinstance(dynamo, Reconciler):
        dynamo = {"runtime": out.runtime, **(dynamo if isinstance(dynamo, dict) else {})}
    out.dynamo = _make(dynamo, DynamoOperator)
    out.traffic = _make(traffic, Traffic)
    if out.traffic is not None:
        sim.on_stop(out.traffic.stop)
        if out.traffic.crds:
            install_gateway_api_crds(sim.store, real=out.traffic.crds != "stand-in")
    if crds:
        install_crds(sim.store)
    if out.dynamo is not None and out.dynamo.admission:
        sim.store.admission.append(dynamo_admission.validate)
        out.admission = dynamo_admission.validate
    for ctl in (
        out.gpu_operator,
        out.storage,
        out.workloads,
        out.jobs,
        out.services,
        out.dynamo,
        out.runtime,
        out.traffic,
    ):
        if ctl is not None:
            out.handles.append(sim.add_controller(ctl, every=every or ctl.every, name=ctl.name))
    return out
