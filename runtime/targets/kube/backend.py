"""The ``kube`` target's stages: an existing cluster from a kubeconfig (context, namespace).

    provision      preflight (read-only, every problem with its fix), then the namespace and its security
                   objects (RBAC, NetworkPolicies, PDB/HPAs when asked)
    detect_gpus    the GPU operator: skipped when nodes already report nvidia.com/gpu (or there are no GPU
                   nodes); else NVIDIA's chart at the pinned version, done when the GPU nodes report
                   allocatable GPUs. Returns the GPU count and the engine the graph runs
    install_platform  the Dynamo platform chart pinned to the release (0.x: the CRDs chart first), CRDs
                   applied explicitly before an install/upgrade; an existing cluster-wide operator of the
                   same release line is used as is; done when the operator Deployment is ready and the DGD
                   CRD is Established
    cache_model    PVC, the HF token Secret (from the resolved token the task passes in), the download Job
                   (waited for, its log surfaced on failure); skipped when the PVC's marker annotation says
                   the revision is cached
    roll_out       render, server-side apply, wait for the full readiness contract (runtime/domain/rollout.py) plus
                   the graph's own workloads; record the revision as a labelled ConfigMap. Same spec: no new
                   revision and no apply
    reach/smoke    the frontend Service's LoadBalancer address when it answers, else kubectl port-forward
    teardown       DGD and its pods, releases in reverse order (shared ones only when nothing else uses
                   them), objects / PVC / namespace by policy, then an inventory by the project's labels

Waits are bounded by ``DYNADEPLOY_KUBE_<WHAT>_TIMEOUT_S`` (seconds): GPU (600, nodes reporting GPUs after
the GPU operator install), CRD (120), PLATFORM (600, the operator ready), CACHE (3500, the download Job),
ROLLOUT (900), MODEL (120, the frontend listing the model before the smoke test), TEARDOWN (300); each
stays below its task's timeout in tasks/stages.py so the stage's own message (what is stuck, and why) wins.

The stages live in modules of one concern each; this class is their facade (it holds what every stage
reads: the spec, the namespace, the Kube and Helm gateways, the provider capabilities, the graph's name):

    provision.py        preflight + namespace        gpu_operator.py   detect_gpus
    dynamo_platform.py  install_platform             model_cache.py    cache_model
    rollout.py          roll_out, graph replacement   readiness.py      the readiness contract, waited for
    ledger.py           revisions, smoke records     frontend.py       endpoint, reach, status
    teardown.py         teardown, inventory          common.py         kinds, marks, wait bounds, KubeModel
    preflight.py        the preflight's decisions    access.py         the access review
    route.py            serving.route, in effect     canary.py         the canary mechanics

Every stage is idempotent and recomputes what it needs from the cluster (tasks run in separate
processes/threads and may be retried). Shared platform pieces (the cluster-wide operator, the GPU
operator) carry the helm release description ``dynadeploy ...``; only those are ever uninstalled.
"""

from __future__ import annotations

import copy
from typing import Any

from runtime.domain import capabilities, naming
from runtime.domain.revisions import Revision
from runtime.errors import PreflightError
from runtime.gateways.kube import Kube, covered
from runtime.spec.serving import Engine
from runtime.targets.base import Accelerators, PlatformEndpoint, Provisioned, Rollout, Status, TeardownReport
from runtime.targets.kube import (
    dynamo_platform,
    frontend,
    gpu_operator,
    ledger,
    model_cache,
    provision,
    rollout,
    teardown,
)
from runtime.targets.kube.common import (
    CACHED_ANNOTATION,
    KubeModel,
    _helm_for,
    component_set,
    tcp_open,
)


class KubeBackend:
    kind = "kube"

    def __init__(self, spec, *, kubeconfig: str | None = None, context: str | None = None) -> None:
        """``kubeconfig``/``context`` override the target's (the cloud backends hand over the kubeconfig
        they wrote for the cluster they made; see runtime/targets/cloud/backend.py)."""
        self.spec = spec
        target = spec.target
        self.ns: str = spec.namespace()
        self.context = context or getattr(target, "context", None)
        self.kube = Kube(kubeconfig or getattr(target, "kubeconfig", None), self.context)
        self.caps = capabilities.for_spec(spec)
        self.dgd_name = naming.dgd_name(spec)
        self._helm = None

    @property
    def helm(self):
        if self._helm is None:
            self._helm = _helm_for(self.kube.kubeconfig, self.context)
        return self._helm

    def where(self) -> str:
        ctx = f" (context {self.context})" if self.context else ""
        return f"{self.kube.server}{ctx}"

    def spec_dict(self) -> dict:
        return self.spec.canonical_dict()

    @staticmethod
    def _same(live: dict, want: dict) -> bool:
        return covered(live, want)

    # ------------------------------------------------------------------ the stages
    def provision(self) -> Provisioned:
        return provision.provision(self)

    def apply_monitoring(self) -> str | None:
        return provision.apply_monitoring(self)

    def detect_gpus(self) -> Accelerators:
        return gpu_operator.detect_gpus(self)

    def install_platform(self) -> PlatformEndpoint:
        return dynamo_platform.install_platform(self)

    def cache_model(self, engine: Engine, token: str | None = None) -> KubeModel:
        return model_cache.cache_model(self, engine, token=token)

    def roll_out(
        self, engine: Engine, model: Any = None, *, reason: str = "deploy", started_by: str = "dynadeploy"
    ) -> Rollout:
        return rollout.roll_out(self, engine, model, reason=reason, started_by=started_by)

    def revisions(self) -> list[Revision]:
        return ledger.revisions(self)

    def record_smoke(self, number: int, smoke: dict) -> None:
        ledger.record_smoke(self, number, smoke)

    def endpoint(self) -> str:
        return frontend.endpoint(self)

    def route_url(self) -> str | None:
        return frontend.route_url(self)

    def reach(self):
        return frontend.reach(self)

    def status(self) -> Status:
        return frontend.status(self)

    def teardown(self, *, keep_model_cache: bool = True) -> TeardownReport:
        return teardown.teardown(self, keep_model_cache=keep_model_cache)

    def inventory(self) -> list[str]:
        return teardown.inventory(self)

    # ------------------------------------------------------------------ other graphs of the deployment
    def graph(self, name: str) -> KubeBackend:
        """This backend looking at graph ``name`` of the same deployment and namespace (a canary's
        candidate beside stable, the bridge of a replacement)."""
        view = copy.copy(self)
        view.dgd_name = name
        return view

    def replacement_plan(self, live: dict, dgd: dict) -> list[str]:
        return rollout.replacement_plan(self, live, dgd)

    def stage_graph(self, dgd: dict, number: int) -> dict:
        return rollout.stage_graph(self, dgd, number)

    def delete_graph(self) -> bool:
        return rollout.delete_graph(self)

    def frontend_pods(self) -> list[dict]:
        return frontend.frontend_pods(self)


__all__ = ["CACHED_ANNOTATION", "KubeBackend", "KubeModel", "PreflightError", "component_set", "tcp_open"]
