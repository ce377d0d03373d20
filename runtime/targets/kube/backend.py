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

Every stage is idempotent and recomputes what it needs from the cluster (tasks run in separate
processes/threads and may be retried). Shared platform pieces (the cluster-wide operator, the GPU
operator) carry the helm release description ``dynadeploy ...``; only those are ever uninstalled.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from runtime import settings
from runtime.domain import capabilities, naming
from runtime.targets.kube import route as kube_route
from runtime import render
from runtime.targets.kube import preflight as pf
from runtime.errors import PermanentError, PreflightError, RolloutFailed, TransientError
from runtime.gateways.kube import Kube, WaitTimeout, covered, poll
from runtime.targets.kube.charts import chart_source
from runtime.domain.revisions import Revision, current, next_number, now_iso
from runtime.domain.rollout import (
    DGD_NAME_LABEL,
    assess_deployment,
    assess_dgd,
    assess_job,
    crd_established,
    diagnose,
)

DGD_API, DGD_KIND = "nvidia.com/v1beta1", "DynamoGraphDeployment"
DGDSA_KIND = "DynamoGraphDeploymentScalingAdapter"
CRD_API, CRD_KIND = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
CACHED_ANNOTATION = "dynadeploy.io/cached-model"  # on the cache PVC: <model id>@<revision> once downloaded
SHARED_LABEL = "dynadeploy.io/shared"  # on namespaces dynadeploy created for shared releases
OWNER_PREFIX = "dynadeploy"  # helm release description of releases dynadeploy installed
MARKER_MANAGER = "dynadeploy-cache-marker"
GPU = "nvidia.com/gpu"
log = logging.getLogger("dynadeploy.kube")
TRACK_KEY, BRIDGE = "dynadeploy.io/track", "bridge"  # the label of a graph that bridges a replacement


def _timeout(name: str, default: float) -> float:
    return settings.kube_timeout_s(name, default)


def _plain(values: Any) -> Any:
    return json.loads(json.dumps(values or {}, default=str))


@dataclass
class KubeModel:
    """The model cache of a Kubernetes target (what the rollout mounts)."""

    model_id: str
    revision: str | None
    reused: bool
    pvc: str
    path: str


@dataclass
class RolloutResult:
    revision: int
    changed: bool
    dgd: str = ""
    seconds: float = 0.0
    endpoint: str | None = None
    polls: int = 0
    observed: dict = field(default_factory=dict)  # the DGD status and workloads when it was judged ready
    note: str = ""  # e.g. how the graph was replaced when its component set changed


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

    # ================================================================== 1. provision (preflight)
    def provision(self) -> dict:
        spec = self.spec
        where = self.where()
        version = self.kube.version()
        problems = pf.version_problems(version)
        # Reads first: without them nothing else can be judged.
        reads = [a for a in pf.required_access(spec, download=False, token=False, install_platform=False)
                 if a.verb in ("list", "get") and a.namespace is None]
        denied = pf.access_problems(self.kube, reads, self.context)
        if denied:
            pf.raise_problems(problems + denied, where)
        nodes = self.kube.list("v1", "Node")
        inv = pf.gpu_inventory(nodes, self.kube.list("v1", "Pod"), spec.name)
        engine = spec.engine(gpus_available=bool(inv.gpu_nodes))
        problems += self._gpu_problems(inv, engine)
        problems += self._storage_problems(nodes)
        operators = pf.find_operators(self.kube)
        problems += pf.operator_problems(spec, operators)
        crds = {c["metadata"]["name"]: c for c in self.kube.list(CRD_API, CRD_KIND)
                if c["metadata"]["name"] in pf.DYNAMO_CRDS}
        problems += pf.crd_problems(spec, crds, operators)
        problems += kube_route.preflight_problems(self.kube, spec)
        reuse = pf.reusable_operator(spec, operators)
        needs = pf.required_access(spec, download=not spec.model.is_builtin(), token=spec.model.token is not None,
                                   install_platform=reuse is None)
        if self._gpu_operator_wanted(inv):
            needs += pf.gpu_operator_access()
        problems += pf.access_problems(self.kube, [a for a in needs if a not in reads], self.context)
        pf.raise_problems(problems, where)

        # Nothing was changed up to here. Now the namespace and what secures it.
        objs = render.render_security(spec, self.caps)
        for obj in objs:
            self.kube.apply(obj)
        monitoring_note = self.apply_monitoring()
        operator = (f"using {reuse}" if reuse else
                    "installing" if not any(pf.is_own(op, spec) for op in operators) else "managed by dynadeploy")
        return {"cluster": where, "server_version": version.get("gitVersion"), "namespace": self.ns,
                "gpus": inv.total, "gpu_nodes": inv.gpu_nodes, "engine": engine, "operator": operator,
                "crds": sorted(crds), "objects": len(objs), **({"monitoring": monitoring_note} if monitoring_note else {})}

    def apply_monitoring(self) -> str | None:
        """PodMonitors + PrometheusRule (+ Grafana dashboard ConfigMap) when the spec asks for monitoring and
        the cluster runs the Prometheus Operator; said plainly (logged, returned) when it does not."""
        from runtime.render import dashboard, monitoring_kube

        if self.spec.monitoring is None or not self.spec.monitoring.prometheus:
            # monitoring was turned off: remove what an earlier deploy applied (nothing when it never did)
            gone = [f"{kind} {o['metadata']['name']}" for api, kind, labels in monitoring_kube.owned(self.spec)
                    for o in self.kube.list(api, kind, self.ns, labels=labels)
                    if self.kube.delete(api, kind, o["metadata"]["name"], self.ns)]
            return "removed " + ", ".join(gone) if gone else None
        served = {c["metadata"]["name"] for c in self.kube.list(CRD_API, CRD_KIND)}
        missing = [c for c in monitoring_kube.CRDS if c not in served]
        if missing:
            note = monitoring_kube.absent_message(missing)
            _warn(note)
            return note
        objs = monitoring_kube.render(self.spec, dashboard.render(self.spec))
        for obj in objs:
            self.kube.apply(obj)
        return "applied " + ", ".join(f"{o['kind']} {o['metadata']['name']}" for o in objs)

    def _gpu_problems(self, inv: pf.GpuInventory, engine: str) -> list[pf.Problem]:
        spec = self.spec
        need = render.total_gpus(spec, engine)
        if need == 0:
            return []
        per_replica = max((c.gpus for c in spec.components() if c.role != "frontend"), default=0)
        counted = "" if inv.reporting else (" (counted from node labels: no node reports nvidia.com/gpu yet, "
                                            "the GPU operator is not installed)")
        if not inv.gpu_nodes:
            return [pf.Problem(
                f"the graph needs {need} GPU(s) but no node has an NVIDIA GPU (none reports nvidia.com/gpu or "
                "carries the nvidia.com/gpu.present / gpu.count labels)",
                "add GPU nodes to the cluster, or set serving.engine: mocker to run without GPUs")]
        out = []
        if not inv.reporting and not spec.platform.gpu_operator.enabled:
            out.append(pf.Problem(
                "GPU nodes exist but none reports nvidia.com/gpu, and platform.gpu_operator.enabled is false",
                "set platform.gpu_operator.enabled: true, or install NVIDIA's device plugin yourself"))
        if inv.free < need:
            per_node = ", ".join(f"{n}: {inv.free_on(n)}" for n in inv.gpu_nodes)
            out.append(pf.Problem(
                f"the graph needs {need} GPU(s) but only {inv.free} of {inv.total} are free{counted} ({per_node})",
                "lower serving replicas or gpus per worker, free GPUs held by other pods, or add GPU nodes"))
        elif per_replica > inv.max_free_per_node:
            out.append(pf.Problem(
                f"a worker replica asks for {per_replica} GPU(s) but no node has more than "
                f"{inv.max_free_per_node} free{counted}",
                f"set the workers' gpus to {inv.max_free_per_node} or less, or add nodes with more GPUs"))
        return out

    def _storage_problems(self, nodes: list[dict] | None = None) -> list[pf.Problem]:
        out = self._shared_cache_problems(nodes or [])
        return out + self._storage_class_problems()

    def _shared_cache_problems(self, nodes: list[dict]) -> list[pf.Problem]:
        """The frontend, every worker and the download Job mount the model cache: a ReadWriteOnce volume
        attaches to one node, so on a cluster of several schedulable nodes the pods that land on another
        node stay Pending (Multi-Attach). Only a one-node cluster may share an RWO cache."""
        if self.spec.model.cache.access_mode != "ReadWriteOnce":
            return []
        usable = sorted(n["metadata"]["name"] for n in nodes if not (n.get("spec") or {}).get("unschedulable"))
        if len(usable) <= 1:
            return []
        rwx = self.caps.storage.rwx_class
        return [pf.Problem(
            f"model.cache.access_mode is ReadWriteOnce, but the frontend, the workers and the download Job all "
            f"mount the cache and the cluster has {len(usable)} schedulable nodes ({', '.join(usable[:5])}"
            f"{', ...' if len(usable) > 5 else ''}): an RWO volume attaches to one node, so pods on another "
            "stay Pending (Multi-Attach)",
            "set model.cache.access_mode: ReadWriteMany with a StorageClass that can share a volume across nodes "
            f"(model.cache.storage_class: {rwx or 'an NFS / CephFS / cloud file-store class'})")]

    def _storage_class_problems(self) -> list[pf.Problem]:
        wanted = render.storage_class(self.spec, self.caps)
        classes = self.kube.list("storage.k8s.io/v1", "StorageClass")
        names = sorted(c["metadata"]["name"] for c in classes)
        if wanted:
            if wanted in names:
                return []
            return [pf.Problem(f"StorageClass {wanted} (for the model cache) does not exist",
                               f"set model.cache.storage_class to one of: {', '.join(names) or 'none exist'}")]
        default = [c for c in classes if ((c["metadata"].get("annotations") or {}).get(
            "storageclass.kubernetes.io/is-default-class") == "true")]
        if default:
            return []
        return [pf.Problem(
            "the cluster has no default StorageClass, so the model cache PVC would stay Pending",
            f"set model.cache.storage_class (or target.provider_hints.storage_class) to one of: "
            f"{', '.join(names) or 'none exist; install a CSI driver and a StorageClass'}, or mark one default")]

    def _gpu_operator_wanted(self, inv: pf.GpuInventory) -> bool:
        return self.spec.platform.gpu_operator.enabled and not inv.reporting and bool(inv.gpu_nodes)

    # ================================================================== 2. GPU operator
    def detect_gpus(self) -> dict:
        spec = self.spec
        inv = pf.gpu_inventory(self.kube.list("v1", "Node"), self.kube.list("v1", "Pod"), spec.name)
        engine = spec.engine(gpus_available=bool(inv.gpu_nodes))
        if inv.reporting:
            state = "skipped: nodes already report nvidia.com/gpu"
        elif not inv.gpu_nodes:
            state = "skipped: no GPU nodes"
        elif not spec.platform.gpu_operator.enabled:
            state = "skipped: platform.gpu_operator.enabled is false"
        else:
            state = self._install_gpu_operator(inv)
            inv = pf.gpu_inventory(self.kube.list("v1", "Node"), [], spec.name)
        return {"gpus": inv.total, "engine": engine, "gpu_operator": state, "gpu_nodes": inv.gpu_nodes}

    def _install_gpu_operator(self, inv: pf.GpuInventory) -> str:
        chart = render.gpu_operator_chart(self.spec)
        values = render.render_gpu_operator_values(self.spec, self.caps)
        self._ensure_shared_namespace(chart.namespace)
        src = chart_source(chart)
        info = self.helm.ensure(chart.release, src.ref, values, chart.namespace, recover=True,
                                description=f"{OWNER_PREFIX}: GPU operator for {self.spec.name}", **src.kwargs())
        wanted = set(inv.gpu_nodes)

        def reporting(nodes: list[dict]):
            ok = {n["metadata"]["name"] for n in nodes
                  if int(str(((n.get("status") or {}).get("allocatable") or {}).get(GPU, 0) or 0)) > 0}
            return wanted <= ok

        def stuck(_nodes: list[dict]) -> str:
            pods = self.kube.list("v1", "Pod", chart.namespace)
            lines = diagnose(pods, self.kube.events_in(chart.namespace))
            return "; ".join(lines) or "device plugin pods are not ready on every GPU node"

        try:
            self.kube.wait("v1", "Node", reporting, timeout_s=_timeout("GPU", 600), tick_s=2,
                           what="the GPU nodes to report allocatable nvidia.com/gpu", describe_stuck=stuck)
        except WaitTimeout as exc:
            raise PermanentError(str(exc), hint=f"check the GPU operator's pods: kubectl get pods -n {chart.namespace}"
                                 ) from None
        driver = "with driver" if values.get("driver", {}).get("enabled") else "driver preinstalled"
        return f"gpu-operator {info.chart_version} ({driver})"

    def _ensure_shared_namespace(self, name: str) -> None:
        self.kube.create_if_missing({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": name, "labels": {naming.MANAGED_BY_KEY: naming.MANAGED_BY_VALUE, SHARED_LABEL: "true"}}})

    # ================================================================== 3. Dynamo platform
    def install_platform(self) -> dict:
        spec = self.spec
        endpoint = f"http://{naming.frontend_service_name(self.dgd_name)}.{self.ns}.svc.cluster.local:{render.FRONTEND_PORT}"
        operators = pf.find_operators(self.kube)
        reuse = pf.reusable_operator(spec, operators)
        if reuse is not None:
            self._wait_platform(reuse.release, reuse.namespace)
            return {"endpoint": endpoint, "note": f"using the existing {reuse}", "changed": False}
        problems = pf.operator_problems(spec, operators)
        if problems:  # the cluster changed since the preflight
            pf.raise_problems(problems, self.where())
        values = render.render_platform_values(spec, self.caps)
        charts = render.platform_charts(spec)
        changed = False
        for chart in charts:
            if chart.namespace != self.ns:
                self._ensure_shared_namespace(chart.namespace)
            if chart.name == "dynamo-crds":
                if self.kube.get(CRD_API, CRD_KIND, pf.DGD_CRD) is None:
                    src = chart_source(chart)
                    self.helm.ensure(chart.release, src.ref, render.render_crds_values(spec), chart.namespace,
                                     recover=True, description=f"{OWNER_PREFIX}: Dynamo CRDs", **src.kwargs())
                    changed = True
                continue
            changed |= self._ensure_platform_release(chart, values)
        platform = charts[-1]
        self._wait_platform(platform.release, platform.namespace)
        state = "installed/upgraded" if changed else "unchanged"
        return {"endpoint": endpoint, "changed": changed,
                "note": f"dynamo-platform {platform.version} in {platform.namespace} ({state})"}

    def _ensure_platform_release(self, chart, values: dict) -> bool:
        current = self.helm.current(chart.release, chart.namespace)
        if (current is not None and current.status == "deployed" and current.chart == chart.name
                and current.chart_version == chart.version and current.values == _plain(values)):
            return False
        src = chart_source(chart)
        applied = False
        # A 1.x namespace-restricted install brings no CRDs (upgradeCRD: false): the cluster-wide operator's
        # CRDs serve it (preflight checked they are there), so only a cluster-wide install applies them.
        manages_crds = self.spec.platform.operator_mode == "cluster"
        if int(chart.version.split(".")[0]) >= 1 and manages_crds:
            # Helm never upgrades what is in crds/ and skips CRDs that already exist: apply them first, so an
            # upgrade (or a cluster with older CRDs) gets the chart's CRDs before its operator.
            docs = self.helm.template(src.ref, chart.release, values, chart.namespace, include_crds=True,
                                      **src.kwargs())
            crds = [d for d in docs if d.get("kind") == CRD_KIND]
            for crd in crds:
                self._apply_crd(crd)
            applied = bool(crds)
        self.helm.ensure(chart.release, src.ref, values, chart.namespace, recover=True, skip_crds=applied,
                         description=f"{OWNER_PREFIX}: Dynamo platform ({self.spec.platform.operator_mode} mode)",
                         **src.kwargs())
        return True

    def _apply_crd(self, crd: dict) -> None:
        body = {k: v for k, v in crd.items() if k != "status"}
        name = body["metadata"]["name"]
        meta = dict(body["metadata"])
        live = self.kube.get(CRD_API, CRD_KIND, name)
        live_labels = ((live or {}).get("metadata") or {}).get("labels") or {}
        # Marked as dynadeploy's when it creates the CRD (teardown deletes only those); the mark is
        # re-applied on every apply, or server-side apply would drop it.
        if live is None or live_labels.get(naming.MANAGED_BY_KEY) == naming.MANAGED_BY_VALUE:
            meta["labels"] = {**(meta.get("labels") or {}), naming.MANAGED_BY_KEY: naming.MANAGED_BY_VALUE}
        body["metadata"] = meta
        self.kube.apply(body, force=True)
        try:
            self.kube.wait(CRD_API, CRD_KIND, lambda objs: bool(objs) and crd_established(objs[0]), name=name,
                           timeout_s=_timeout("CRD", 120), what=f"CRD {name} to be Established")
        except WaitTimeout as exc:
            raise TransientError(str(exc)) from None

    def _wait_platform(self, release: str, namespace: str) -> None:
        name = f"{release}-dynamo-operator-controller-manager"

        def ready(objs: list[dict]):
            return bool(objs) and assess_deployment(objs[0]).done and crd_established(
                self.kube.get(CRD_API, CRD_KIND, pf.DGD_CRD))

        def stuck(objs: list[dict]) -> str:
            verdict = assess_deployment(objs[0] if objs else None)
            crd = "" if crd_established(self.kube.get(CRD_API, CRD_KIND, pf.DGD_CRD)) else \
                f"; CRD {pf.DGD_CRD} is not Established"
            pods = self.kube.list("v1", "Pod", namespace)
            why = diagnose([p for p in pods if p["metadata"]["name"].startswith(name)], self.kube.events_in(namespace))
            return f"{verdict}{crd}" + (f"; {'; '.join(why)}" if why else "")

        try:
            self.kube.wait("apps/v1", "Deployment", ready, name=name, namespace=namespace,
                           timeout_s=_timeout("PLATFORM", 600), tick_s=1, what=f"the Dynamo operator {namespace}/{name}",
                           describe_stuck=stuck)
        except WaitTimeout as exc:
            raise PermanentError(str(exc), hint=f"kubectl describe deployment {name} -n {namespace}") from None

    # ================================================================== 4. model cache
    def cache_model(self, engine: str, token: str | None = None) -> KubeModel:
        spec, model = self.spec, self.spec.model
        objs = render.render_model_cache(spec, self.caps)
        pvc, job = objs[0], (objs[1] if len(objs) > 1 else None)
        pvc_name = pvc["metadata"]["name"]
        secret = render.render_token_secret_ref(spec)
        if secret and token:
            self.kube.ensure_secret(secret, self.ns, {render.HF_TOKEN_KEY: token}, labels=naming.labels(spec.name))
        elif secret:
            raise PermanentError("model.token is set but no token value was resolved",
                                 hint="check the Prefect Secret block or environment variable model.token names")
        live = self.kube.get("v1", "PersistentVolumeClaim", pvc_name, self.ns)
        if live is None or not self._same(live, pvc):
            live = self.kube.apply(pvc)
        path = render.model_path(spec)
        if job is None:  # the built-in model: nothing to download
            return KubeModel(model.id, model.revision, True, pvc_name, path)
        marker = f"{model.id}@{model.revision}"
        if ((live.get("metadata") or {}).get("annotations") or {}).get(CACHED_ANNOTATION) == marker:
            return KubeModel(model.id, model.revision, True, pvc_name, path)
        self._run_download(job)
        self.kube.patch_merge("v1", "PersistentVolumeClaim", pvc_name,
                              {"metadata": {"annotations": {CACHED_ANNOTATION: marker}}}, self.ns,
                              field_manager=MARKER_MANAGER)
        return KubeModel(model.id, model.revision, False, pvc_name, path)

    def _run_download(self, job: dict) -> None:
        name = job["metadata"]["name"]
        live = self.kube.get("batch/v1", "Job", name, self.ns)
        if live is not None and (_job_env(live) != _job_env(job) or assess_job(live).failed):
            # Jobs are immutable: a Job for another revision, or one that failed, is replaced.
            self.kube.delete("batch/v1", "Job", name, self.ns, propagation="Background", wait=True)
            live = None
        if live is None:
            self.kube.apply(job)

        def finished(objs: list[dict]):
            verdict = assess_job(objs[0] if objs else None)
            return verdict if (verdict.done or verdict.failed) else None

        def stuck(objs: list[dict]) -> str:
            return "; ".join([str(assess_job(objs[0] if objs else None))] + self._job_pod_problems(name))

        try:
            verdict = self.kube.wait("batch/v1", "Job", finished, name=name, namespace=self.ns,
                                     timeout_s=_timeout("CACHE", 3500), tick_s=2,
                                     what=f"the model download Job {self.ns}/{name}", describe_stuck=stuck)
        except WaitTimeout as exc:
            raise PermanentError(str(exc) + self._job_logs(name), hint=f"kubectl logs job/{name} -n {self.ns}") from None
        if verdict.failed:
            raise PermanentError(
                f"the model download Job {self.ns}/{name} failed: {'; '.join(verdict.reasons)}" + self._job_logs(name),
                hint=f"check model.id, model.revision and model.token; then rerun (the failed Job is replaced); "
                     f"kubectl logs job/{name} -n {self.ns}")

    def _job_pods(self, job_name: str) -> list[dict]:
        pods = self.kube.list("v1", "Pod", self.ns, labels={"job-name": job_name})
        return sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))

    def _job_pod_problems(self, job_name: str) -> list[str]:
        return diagnose(self._job_pods(job_name), self.kube.events_in(self.ns))

    def _job_logs(self, job_name: str, lines: int = 40) -> str:
        from runtime.gateways.helm import redact

        pods = self._job_pods(job_name)
        if not pods:
            return ""
        pod = pods[-1]["metadata"]["name"]
        text = self.kube.pod_logs(pod, self.ns, tail_lines=lines).strip()
        return f"\n--- last {lines} log lines of pod {pod} ---\n{redact(text)}" if text else ""

    # ================================================================== 5. rollout
    def roll_out(self, engine: str, model: Any = None, *, reason: str = "deploy",
                 started_by: str = "dynadeploy") -> RolloutResult:
        spec = self.spec
        t0 = time.monotonic()
        self._check_cache()
        revisions = self.revisions()
        serving = current(revisions)

        def desired(number: int) -> dict:
            return render.render_dgd(spec, revision=number, provider=self.caps, engine=engine)

        live = self.kube.get(DGD_API, DGD_KIND, self.dgd_name, self.ns)
        if serving is not None and serving.rendered and serving.rendered[0] == desired(serving.number) \
                and live is not None and self._same(live, serving.rendered[0]):
            ready = self._judge(live)
            if ready[0]:
                kube_route.ensure(self.kube, spec)
                return RolloutResult(serving.number, changed=False, dgd=self.dgd_name, endpoint=self._lb_url(),
                                     seconds=time.monotonic() - t0, observed=ready[1])
        latest = revisions[-1] if revisions else None
        reuse = next((r for r in (latest, serving) if r is not None and r.status in ("pending", "failed", "serving")
                      and r.rendered and r.rendered[0] == desired(r.number)), None)
        number = reuse.number if reuse is not None else next_number(revisions)
        dgd = desired(number)
        revision = reuse or Revision(
            number=number, spec_hash=naming.spec_hash(spec), spec=spec.canonical_dict(), created_at=now_iso(),
            reason=reason, started_by=started_by, status="pending",
            model={"id": spec.model.id, "revision": spec.model.revision}, versions=self._versions(engine),
            rendered=[dgd])
        if reuse is None or reuse.status == "failed":
            revision.status = "pending" if revision.status != "serving" else revision.status
            self._put_revision(revision)
        bridge, replaced = None, live is not None and component_set(live) != component_set(dgd)
        if replaced:
            bridge = self._replace_graph(live, dgd, number, engine)
            live = None
        if live is None or not self._same(live, dgd):
            self.kube.apply(self._keep_adapter_replicas(dgd, live), force=True)
        try:
            polls, observed = self._wait_ready(number)
        except RolloutFailed:
            if revision.status != "serving":
                revision.status = "failed"
                self._put_revision(revision)
            raise
        for rev in revisions:
            if rev.status == "serving" and rev.number != number:
                rev.status = "superseded"
                self._put_revision(rev)
        # Clients entering through serving.route reach the new revision (and only it: a candidate's
        # share from a canary ends here, the candidate being what was just rolled out).
        kube_route.ensure(self.kube, spec)
        note = ""
        if bridge is None:  # a bridge left by an earlier run that failed after the route moved to it
            left = self.kube.get(DGD_API, DGD_KIND, naming.dgd_name(spec, canary=True), self.ns)
            if left is not None and (left["metadata"].get("labels") or {}).get(TRACK_KEY) == BRIDGE:
                bridge = self.graph(left["metadata"]["name"])
        if bridge is not None:  # step 4 of the replacement: the bridge graph goes once the route left it
            log.info("replacing %s/%s: deleting the bridge graph %s", self.ns, self.dgd_name, bridge.dgd_name)
            bridge.delete_graph()
            note = f"graph replaced (component set changed; bridged by {bridge.dgd_name})"
        elif replaced:
            note = "graph replaced (component set changed; deleted, then created)"
        revision.status = "serving"
        self._put_revision(revision)
        return RolloutResult(number, changed=True, dgd=self.dgd_name, seconds=time.monotonic() - t0,
                             endpoint=self._lb_url(), polls=polls, observed=observed, note=note)

    # -- a change of the component set (topology) ------------------------------------------------------
    def replacement_plan(self, live: dict, dgd: dict) -> list[str]:
        """What a rollout does when the graph's component set changes (the operator's webhook refuses
        that in place: "component topology is immutable"), in order."""
        was, will = sorted(n for n, _ in component_set(live)), sorted(n for n, _ in component_set(dgd))
        head = (f"the components of {self.ns}/{self.dgd_name} change from {was} to {will}; the Dynamo operator "
                "refuses that on the live graph, so it is replaced")
        if self.spec.serving.route is None:
            return [head, f"1. delete graph {self.dgd_name} and wait until its pods are gone (no serving.route: "
                          f"clients reach Service {naming.frontend_service_name(self.dgd_name)}, which belongs "
                          "to the graph, so nothing serves until step 2 is ready; set serving.route to keep "
                          "serving through a replacement)",
                    f"2. create graph {self.dgd_name} with the new components and wait until it is ready"]
        bridge = naming.dgd_name(self.spec, canary=True)
        return [head,
                f"1. start graph {bridge} with the new components beside {self.dgd_name} and wait until it is ready",
                f"2. switch serving.route to {bridge} (all requests), then delete graph {self.dgd_name}",
                f"3. create graph {self.dgd_name} with the new components, wait until it is ready and switch the "
                "route back to it",
                f"4. delete graph {bridge}"]

    def _replace_graph(self, live: dict, dgd: dict, number: int, engine: str) -> KubeBackend | None:
        """Steps before the new graph is applied under the stable name; returns the bridge graph (to delete
        once the route is back on the stable name) or None."""
        steps = self.replacement_plan(live, dgd)
        for line in steps:  # said before anything is done
            log.warning("%s", line)
        if self.spec.serving.route is None:
            self.delete_graph()
            return None
        bridge = self.graph(naming.dgd_name(self.spec, canary=True))
        staged = render.render_dgd(self.spec, revision=number, provider=self.caps, name=bridge.dgd_name,
                                   engine=engine)
        staged["metadata"]["labels"] = {**staged["metadata"].get("labels", {}), TRACK_KEY: BRIDGE}
        bridge_live = self.kube.get(DGD_API, DGD_KIND, bridge.dgd_name, self.ns)
        if bridge_live is not None and component_set(bridge_live) != component_set(staged):
            bridge.delete_graph()  # a leftover candidate of another shape
        bridge.stage_graph(staged, number)
        kube_route.ensure(self.kube, self.spec, canary_percent=100)
        self.delete_graph()
        return bridge

    def _keep_adapter_replicas(self, dgd: dict, live: dict | None) -> dict:
        """``dgd`` with, for every component under the scaling adapter, the live replica count (the
        adapter's/HPA's): the render sends none, and the webhook refuses anyone but the operator/planner
        changing it, so a redeploy must neither reset nor drop it."""
        by_name = {c.get("name"): c for c in ((live or {}).get("spec") or {}).get("components") or []}
        out = copy.deepcopy(dgd)
        for comp in out["spec"].get("components") or []:
            have = by_name.get(comp.get("name")) or {}
            if "scalingAdapter" in comp and "replicas" not in comp and "replicas" in have:
                comp["replicas"] = have["replicas"]
        return out

    # -- other graphs of the deployment (a canary's candidate beside stable) -----------------------------
    def graph(self, name: str) -> KubeBackend:
        """This backend looking at graph ``name`` of the same deployment and namespace."""
        view = copy.copy(self)
        view.dgd_name = name
        return view

    def stage_graph(self, dgd: dict, number: int) -> dict:
        """Apply a graph the ledger does not record (a candidate) and wait for the readiness contract."""
        live = self.kube.get(DGD_API, DGD_KIND, self.dgd_name, self.ns)
        if live is not None and component_set(live) != component_set(dgd):
            # a leftover graph of another shape (the operator refuses to change the component set in place):
            # it serves no client of stable, so it is deleted and created again
            log.warning("graph %s/%s has components %s, not %s: deleting it, then creating it again", self.ns,
                        self.dgd_name, sorted(n for n, _ in component_set(live)),
                        sorted(n for n, _ in component_set(dgd)))
            self.delete_graph()
            live = None
        if live is None or not self._same(live, dgd):
            self.kube.apply(self._keep_adapter_replicas(dgd, live), force=True)
        return self._wait_ready(number)[1]

    def delete_graph(self) -> bool:
        """Delete this graph and wait until its pods are gone; False when it did not exist."""
        deleted = self.kube.delete(DGD_API, DGD_KIND, self.dgd_name, self.ns, propagation="Background")
        self._wait_none("v1", "Pod", self.ns, {DGD_NAME_LABEL: self.dgd_name}, _timeout("TEARDOWN", 300))
        return deleted

    def frontend_pods(self) -> list[dict]:
        """The graph's ready frontend pods (each serves its own /metrics)."""
        pods = self.kube.list("v1", "Pod", self.ns, labels={DGD_NAME_LABEL: self.dgd_name})
        return [p for p in pods if (p["metadata"].get("labels") or {}).get(naming.ROLE_KEY) == "frontend"
                and _pod_ready(p) and not p["metadata"].get("deletionTimestamp")]

    def _check_cache(self) -> None:
        model = self.spec.model
        if model.is_builtin():
            return
        pvc = self.kube.get("v1", "PersistentVolumeClaim", naming.model_cache_pvc_name(self.spec), self.ns)
        marker = ((pvc or {}).get("metadata", {}).get("annotations") or {}).get(CACHED_ANNOTATION)
        if marker != f"{model.id}@{model.revision}":
            raise PermanentError(
                f"the model cache does not hold {model.id}@{model.revision} yet (marker: {marker or 'none'})",
                hint="run the model-cache stage first (the deploy flow does); the rollout waits for the cache")

    @staticmethod
    def _same(live: dict, want: dict) -> bool:
        return covered(live, want)

    def _judge(self, dgd: dict | None) -> tuple[bool, dict, list[str], bool]:
        """(ready, observed, reasons, failed) by the readiness contract plus the graph's Deployments."""
        pods = self.kube.list("v1", "Pod", self.ns, labels={DGD_NAME_LABEL: self.dgd_name})
        verdict = assess_dgd(dgd, pods)
        reasons = list(verdict.reasons)
        workloads: dict[str, dict] = {}
        if verdict.done and dgd is not None:
            # The contract reads the operator's summary; the summary can be computed from Deployments
            # whose own status is still from the previous generation (ai-dynamo/dynamo#3567), so the
            # Deployments behind each component are judged too.
            status = dgd.get("status") or {}
            for comp, st in (status.get("components") or status.get("services") or {}).items():
                if (st.get("componentKind") or "Deployment") != "Deployment":
                    continue
                for dep_name in st.get("componentNames") or []:
                    dep = self.kube.get("apps/v1", "Deployment", dep_name, self.ns)
                    workloads[dep_name] = (dep or {}).get("status") or {}
                    reasons += [f"{comp}: {r}" for r in assess_deployment(dep).reasons]
        observed = {"status": (dgd or {}).get("status") or {}, "generation": ((dgd or {}).get("metadata") or {})
                    .get("generation"), "deployments": workloads,
                    "pods": sorted(p["metadata"]["name"] for p in pods)}
        return (not reasons and verdict.done, observed, reasons, verdict.failed)

    def _wait_ready(self, number: int) -> tuple[int, dict]:
        polls = 0
        last: dict = {}

        def check(objs: list[dict]):
            nonlocal polls, last
            polls += 1
            ready, observed, reasons, failed = self._judge(objs[0] if objs else None)
            last = {"reasons": reasons, "observed": observed}
            if failed:
                raise RolloutFailed(self._stuck_message(number, reasons, "failed"),
                                    hint=f"kubectl describe dgd {self.dgd_name} -n {self.ns}")
            return observed if ready else None

        try:
            observed = self.kube.wait(DGD_API, DGD_KIND, check, name=self.dgd_name, namespace=self.ns,
                                      timeout_s=_timeout("ROLLOUT", 900), tick_s=1.0,
                                      what=f"revision {number} of {self.ns}/{self.dgd_name}")
        except WaitTimeout:
            raise RolloutFailed(self._stuck_message(number, last.get("reasons") or [], "is not ready after "
                                                    f"{_timeout('ROLLOUT', 900):.0f}s"),
                                hint=f"kubectl describe dgd {self.dgd_name} -n {self.ns}; kubectl get pods -n {self.ns}"
                                ) from None
        return polls, observed

    def _stuck_message(self, number: int, reasons: list[str], what: str) -> str:
        pods = self.kube.list("v1", "Pod", self.ns, labels={DGD_NAME_LABEL: self.dgd_name})
        why = diagnose(pods, self.kube.events_in(self.ns))
        text = f"revision {number} of {self.ns}/{self.dgd_name} {what}: {'; '.join(reasons) or 'no reason reported'}"
        return text + (f"; stuck: {'; '.join(why)}" if why else "")

    def _versions(self, engine: str) -> dict:
        p = self.spec.platform
        return {"dynamo": p.dynamo_version, "chart": p.chart(), "image": self.spec.serving.image, "engine": engine,
                "gpu_operator": p.gpu_operator.version}

    # -- the ledger -----------------------------------------------------------------------------
    def revisions(self) -> list[Revision]:
        """The ledger (labelled ConfigMaps in the graph's namespace), oldest first."""
        cms = self.kube.list("v1", "ConfigMap", self.ns,
                             labels={**naming.labels(self.spec.name), naming.REVISION_KEY: None})
        out = []
        for cm in cms:
            try:
                out.append(render.parse_revision_record(cm))
            except (PermanentError, ValueError, KeyError):
                continue
        return sorted(out, key=lambda r: r.number)

    def _put_revision(self, revision: Revision) -> None:
        self.kube.apply(render.render_revision_record(revision, self.ns), force=True)

    def record_smoke(self, number: int, smoke: dict) -> None:
        rev = next((r for r in self.revisions() if r.number == number), None)
        if rev is not None:
            rev.smoke = smoke
            self._put_revision(rev)

    def spec_dict(self) -> dict:
        return self.spec.canonical_dict()

    # ================================================================== 6. reaching the frontend
    def _frontend_service(self) -> dict | None:
        return self.kube.get("v1", "Service", naming.frontend_service_name(self.dgd_name), self.ns)

    def _lb_url(self) -> str | None:
        svc = self._frontend_service()
        if svc is None:
            return None
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        host = next((i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")), None)
        return f"http://{host}:{_service_port(svc)}" if host else None

    def route_url(self) -> str | None:
        """Where clients enter through serving.route (the Gateway's / ingress controller's address)."""
        if self.spec.serving.route is None:
            return None
        found = kube_route.entry(self.kube, self.spec)
        return found[0] if found else None

    def endpoint(self) -> str:
        return self._lb_url() or (f"http://{naming.frontend_service_name(self.dgd_name)}.{self.ns}.svc.cluster.local:"
                                  f"{render.FRONTEND_PORT}")

    @contextlib.contextmanager
    def reach(self):
        """A base URL of the frontend for this process: the Service's LoadBalancer address when it has one
        that accepts connections, else a ``kubectl port-forward`` to the Service (stopped on exit)."""
        svc = self._frontend_service()
        if svc is None:
            raise PermanentError(f"Service {self.ns}/{naming.frontend_service_name(self.dgd_name)} does not exist",
                                 hint="run the rollout stage first")
        url = self._lb_url()
        if url and tcp_open(url, 3.0):
            self._wait_model_listed(url)
            yield url
            return
        from runtime.gateways.portforward import port_forward

        with port_forward(self.kube.kubeconfig, self.context, self.ns,
                          f"svc/{svc['metadata']['name']}", _service_port(svc)) as local:
            self._wait_model_listed(local)
            yield local

    def _wait_model_listed(self, url: str) -> None:
        """Wait (bounded) until the frontend lists the served model: a frontend can be Ready before it has
        discovered its workers (ai-dynamo/dynamo#11178). On timeout the smoke test reports what it sees."""
        served = self.spec.model.served()
        deadline = time.monotonic() + _timeout("MODEL", 120)
        while served not in _models(url) and time.monotonic() < deadline:
            time.sleep(0.25)

    # ================================================================== status / teardown
    def status(self) -> dict:
        dgd = self.kube.get(DGD_API, DGD_KIND, self.dgd_name, self.ns)
        pods = self.kube.list("v1", "Pod", self.ns, labels={DGD_NAME_LABEL: self.dgd_name})
        ready, _, reasons, _ = self._judge(dgd) if dgd else (False, {}, ["no graph"], False)
        url = self._lb_url()
        models: list[str] = []
        if url and tcp_open(url, 2.0):
            models = _models(url)
        workers = [p for p in pods if (p["metadata"].get("labels") or {}).get(naming.ROLE_KEY) != "frontend"]
        return {
            "target": self.spec.target.kind, "name": self.spec.name, "namespace": self.ns,
            "endpoint": self.endpoint(), "ready": ready, "reasons": reasons,
            "state": ((dgd or {}).get("status") or {}).get("state"),
            "models": models,
            "route": self.route_url(),
            "workers_discovered": sum(1 for p in workers if _pod_ready(p)),
            "processes": {p["metadata"]["name"]: {"state": (p.get("status") or {}).get("phase", "?"), "pid": "-",
                                                  "uptime_s": "-"} for p in pods},
            "revisions": [{"number": r.number, "status": r.status, "created_at": r.created_at, "reason": r.reason,
                           "spec_hash": r.spec_hash[:12], "model": r.model, "smoke_passed": r.smoke.get("passed")}
                          for r in self.revisions()],
        }

    def teardown(self, *, keep_model_cache: bool = True) -> dict:
        spec = self.spec
        keep_ns = spec.teardown.keep_namespace or keep_model_cache
        own = naming.labels(spec.name)
        # 1. the graph, and its pods gone. Background propagation: the DGD goes at once and the garbage
        # collector removes what the operator made; the pods are waited for below (a foreground delete
        # would hold the DGD until then, and hang on a dependent the operator recreates meanwhile).
        kube_route.remove(self.kube, spec)  # clients stop entering before the graph goes
        for dgd in self.kube.list(DGD_API, DGD_KIND, self.ns, labels=own):
            self.kube.delete(DGD_API, DGD_KIND, dgd["metadata"]["name"], self.ns, propagation="Background")
        timeout = _timeout("TEARDOWN", 300)
        self._wait_none(DGD_API, DGD_KIND, self.ns, own, timeout)
        self._wait_none("v1", "Pod", self.ns, {DGD_NAME_LABEL: self.dgd_name}, timeout)
        # 2. releases, in reverse install order
        released, kept = self._uninstall_releases()
        # 3. the namespace's objects, the cache PVC and the namespace itself by policy
        deleted = 0
        if not keep_ns:
            deleted += self.kube.delete("v1", "Namespace", self.ns, propagation="Background", wait=True,
                                        timeout_s=timeout)
        else:
            for api_version, kind in _NAMESPACED_KINDS:
                if kind == "PersistentVolumeClaim" and keep_model_cache:
                    continue
                for obj in self.kube.list(api_version, kind, self.ns, labels=own):
                    deleted += self.kube.delete(api_version, kind, obj["metadata"]["name"], self.ns,
                                                propagation="Background")
        left = self.inventory()
        return {"leftovers": left, "model_cache_kept": keep_model_cache, "namespace_kept": keep_ns,
                "released": released, "kept_shared": kept, "deleted": deleted,
                "note": f"released {', '.join(released) or 'nothing'}"
                        + (f"; kept shared {', '.join(kept)}" if kept else "")
                        + ("; namespace kept" if keep_ns else "")}

    def _wait_none(self, api_version: str, kind: str, namespace: str, labels: dict, timeout: float) -> None:
        try:
            self.kube.wait(api_version, kind, lambda objs: not objs, namespace=namespace, labels=labels,
                           timeout_s=timeout, what=f"every {kind} of {self.spec.name} to be gone",
                           describe_stuck=lambda objs: ", ".join(o["metadata"]["name"] for o in objs))
        except WaitTimeout as exc:
            raise TransientError(str(exc), hint="rerun teardown") from None

    def _others(self) -> list[str]:
        """Other dynadeploy deployments on this cluster (by their namespaces' labels)."""
        out = []
        for ns in self.kube.list("v1", "Namespace", labels={naming.MANAGED_BY_KEY: naming.MANAGED_BY_VALUE}):
            dep = (ns["metadata"].get("labels") or {}).get(naming.DEPLOYMENT_KEY)
            if dep and dep != self.spec.name and not ns["metadata"].get("deletionTimestamp"):
                out.append(dep)
        return out

    def _owned_release(self, release: str, namespace: str):
        info = self.helm.current(release, namespace)
        return info if info is not None and (info.description or "").startswith(OWNER_PREFIX) else None

    def _uninstall_releases(self) -> tuple[list[str], list[str]]:
        spec = self.spec
        released, kept = [], []
        others = self._others()
        plat_ns = pf.own_operator_namespace(spec)
        charts = list(reversed(render.platform_charts(spec)))
        graphs = [f"{d['metadata'].get('namespace')}/{d['metadata']['name']}"
                  for d in self.kube.list(DGD_API, DGD_KIND)] if self.kube.served(DGD_API, DGD_KIND) else []
        shared_users = others + graphs
        for chart in charts:
            info = self._owned_release(chart.release, chart.namespace)
            if info is None:
                continue
            if chart.namespace == self.ns or not shared_users:
                self.helm.uninstall(chart.release, chart.namespace, wait=True)
                released.append(f"{chart.release} ({chart.namespace})")
            else:
                kept.append(f"{chart.release} ({chart.namespace}, used by {', '.join(sorted(shared_users)[:3])})")
        if released and not shared_users and not pf.find_operators(self.kube):
            # The last Dynamo operator is gone and no graph is left: the CRDs dynadeploy created go too.
            for crd in self.kube.list(CRD_API, CRD_KIND, labels={naming.MANAGED_BY_KEY: naming.MANAGED_BY_VALUE}):
                if crd["metadata"]["name"] in pf.DYNAMO_CRDS:
                    self.kube.delete(CRD_API, CRD_KIND, crd["metadata"]["name"], wait=True)
        if released and plat_ns != self.ns and not shared_users:
            self._delete_shared_namespace(plat_ns)
        gpu = render.gpu_operator_chart(spec)
        info = self._owned_release(gpu.release, gpu.namespace)
        if info is not None:
            gpu_users = [f"{p['metadata'].get('namespace')}/{p['metadata']['name']}" for p in self.kube.list("v1", "Pod")
                         if p["metadata"].get("namespace") != gpu.namespace and pf._pod_gpus(p) > 0]
            users = others + gpu_users
            if users:
                kept.append(f"{gpu.release} ({gpu.namespace}, used by {', '.join(sorted(users)[:3])})")
            else:
                self.helm.uninstall(gpu.release, gpu.namespace, wait=True)
                released.append(f"{gpu.release} ({gpu.namespace})")
                self._delete_shared_namespace(gpu.namespace)
        return released, kept

    def _delete_shared_namespace(self, name: str) -> None:
        ns = self.kube.get("v1", "Namespace", name)
        labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
        if ns is not None and labels.get(SHARED_LABEL) == "true" and labels.get(naming.MANAGED_BY_KEY) == \
                naming.MANAGED_BY_VALUE:
            self.kube.delete("v1", "Namespace", name, wait=True, timeout_s=_timeout("TEARDOWN", 300))

    def inventory(self) -> list[str]:
        """What this deployment left on the cluster, by the project's labels (and the operator's labels for
        the graph), minus what the teardown policy keeps (the cache PVC and its namespace)."""
        spec = self.spec
        keep_cache = spec.teardown.keep_model_cache
        keep_ns = spec.teardown.keep_namespace or keep_cache
        pvc = naming.model_cache_pvc_name(spec)
        found: set[str] = set()

        def add(obj: dict) -> None:
            m = obj.get("metadata") or {}
            kind, name, ns = obj.get("kind", "?"), m.get("name"), m.get("namespace")
            if kind == "Namespace" and name == self.ns and keep_ns:
                return
            if kind == "PersistentVolumeClaim" and name == pvc and ns == self.ns and keep_cache:
                return
            found.add(f"{kind} {ns}/{name}" if ns else f"{kind} {name}")

        for api_version, kind in [("v1", "Namespace"), *_NAMESPACED_KINDS, ("v1", "Pod"), ("v1", "Service"),
                                  ("apps/v1", "Deployment"), (DGD_API, DGD_KIND), (DGD_API, DGDSA_KIND)]:
            for obj in self.kube.list(api_version, kind, labels=naming.labels(spec.name)):
                add(obj)
        for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service"), ("v1", "Pod")):
            for obj in self.kube.list(api_version, kind, self.ns, labels={DGD_NAME_LABEL: self.dgd_name}):
                add(obj)
        if (spec.platform.operator_mode == "namespace" and self.kube.get("v1", "Namespace", self.ns) is not None
                and self.helm.current(naming.PLATFORM_RELEASE, self.ns) is not None):
            found.add(f"helm release {self.ns}/{naming.PLATFORM_RELEASE}")
        return sorted(found)


_HELMS: dict[tuple, Any] = {}
_HELMS_LOCK = threading.Lock()


def component_set(dgd: dict) -> set[tuple[str, str]]:
    """(name, type) of every component of a graph: what the operator does not let change in place."""
    return {(c.get("name", ""), c.get("type", "")) for c in (dgd.get("spec") or {}).get("components") or []}


def _helm_for(kubeconfig: str, context: str | None):
    """One Helm gateway per cluster and thread (its client runs ``helm version`` once when built)."""
    from runtime.gateways.helm import Helm

    key = (kubeconfig, context, threading.get_ident())
    with _HELMS_LOCK:
        if key not in _HELMS:
            _HELMS[key] = Helm(kubeconfig, context)
        return _HELMS[key]


def _warn(message: str) -> None:
    try:
        from prefect import get_run_logger

        get_run_logger().warning(message)
    except Exception:  # noqa: BLE001 - outside a flow/task run
        import logging

        logging.getLogger("dynadeploy").warning(message)


_NAMESPACED_KINDS = [("monitoring.coreos.com/v1", "PodMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule"),
                     ("batch/v1", "Job"), ("v1", "Secret"), ("v1", "ConfigMap"), ("v1", "ServiceAccount"),
                     ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
                     ("networking.k8s.io/v1", "NetworkPolicy"), ("policy/v1", "PodDisruptionBudget"),
                     ("autoscaling/v2", "HorizontalPodAutoscaler"), ("v1", "PersistentVolumeClaim"),
                     (render.route.GATEWAY_API, "HTTPRoute"), (render.route.INGRESS_API, "Ingress")]


def _job_env(job: dict) -> dict:
    containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return {e.get("name"): e.get("value") for c in containers for e in c.get("env") or []}


def _service_port(svc: dict) -> int:
    ports = (svc.get("spec") or {}).get("ports") or []
    port = next((p for p in ports if p.get("name") == "http"), ports[0] if ports else {})
    return int(port.get("port") or render.FRONTEND_PORT)


def tcp_open(url: str, timeout: float) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout):
            return True
    except OSError:
        return False


def _models(url: str) -> list[str]:
    import httpx

    try:
        r = httpx.get(f"{url}/v1/models", timeout=3.0, trust_env=False)
        return [m.get("id") for m in (r.json().get("data") or [])] if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        return []


def _pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


__all__ = ["KubeBackend", "KubeModel", "PreflightError", "RolloutResult", "poll"]
