"""A stand-in for the Dynamo 1.6 operator: DynamoGraphDeployment -> Deployments + frontend Service.

Install the CRDs first (``install_crds(store)`` or apply ``dynamo_crds()``), as the platform chart does:
DynamoGraphDeployment (``dgd``; nvidia.com/v1beta1 stored, v1alpha1 served, deprecated; status
subresource; Ready/Backend/Age columns) and DynamoGraphDeploymentScalingAdapter (``dgdsa``; status and
scale subresources).

Per DGD ``<dgd>`` in namespace ``<ns>`` (v1beta1 ``spec.components[]``; a v1alpha1 ``spec.services`` map
with ``extraPodSpec.mainContainer`` is read too):
- one Deployment ``<dgd>-<component name lowercased>`` per component, owned by the DGD, labelled (and its
  pods) ``nvidia.com/dynamo-graph-deployment-name``, ``nvidia.com/dynamo-component`` (the component name),
  ``nvidia.com/dynamo-component-type``, ``nvidia.com/selector`` (the selector),
  ``nvidia.com/dynamo-namespace`` and ``nvidia.com/metrics-enabled``; the pod template is the component's
  ``podTemplate`` with the env the operator injects into the ``main`` container (DYN_NAMESPACE=<ns>-<dgd>,
  DYN_COMPONENT, DYN_DISCOVERY_BACKEND=kubernetes, DYN_PARENT_DGD_K8S_NAME/NAMESPACE, POD_NAME/NAMESPACE/UID;
  workers also DYN_SYSTEM_ENABLED=true, DYN_SYSTEM_PORT=9090,
  DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS=["generate"], DYN_FORWARDPASS_METRIC_PORT=20380; the frontend
  DYNAMO_PORT/DYN_HTTP_PORT=8000), ports ``http`` 8000 / ``system`` 9090 and /live + /health probes.
  Rolling-update knobs: the DGD annotations ``nvidia.com/deployment-rolling-update-max-unavailable`` /
  ``-max-surge``.
- a Service ``<dgd>-<frontend component>`` (``<dgd>-frontend``) with port 8000 named ``http``; its type is
  the DGD annotation ``kubeapi-sim/frontend-service-type`` (else ClusterIP, and a type someone else set
  is left alone).
- a DGDSA ``<dgd>-<component>`` per component with ``scalingAdapter`` (v1beta1: present, even ``{}``;
  v1alpha1: ``enabled``); every DGDSA (also ones made
  by hand) writes its ``spec.replicas`` into the DGD component (``kubectl scale dgdsa ...`` works) and
  reports status replicas / selector / lastScaleTime.
- status, as Dynamo 1.6 reports it (v1beta1 field names): ``state`` pending|successful|failed,
  ``conditions`` [Ready: all_resources_are_ready / some_resources_are_not_ready ("Resources not ready:
  <deployment>: Component deployment not ready - Available condition not true") /
  rolling_update_in_progress / rolling_update_failed, with observedGeneration], ``observedGeneration``
  (advanced on every non-failed reconcile), ``components.<name>`` {componentKind: Deployment,
  componentNames, runtimeNamespace, replicas, updatedReplicas, readyReplicas, availableReplicas}, and on a
  change of any worker/prefill/decode spec (replicas excluded) ``rollingUpdate`` {phase Pending ->
  InProgress -> Completed (or Failed when a worker Deployment exceeds its progress deadline), startTime,
  endTime, updatedComponents}; Events RollingUpdateStarted / RollingUpdateCompleted / RollingUpdateFailed.
- ``early_success=True`` reproduces Dynamo issue #3567 (the readiness check before the fix): a component is
  ready as soon as its Deployment's Available condition is True, no rollingUpdate is tracked, so after a
  spec change the DGD reports Ready=True / successful with observedGeneration current while the old pods
  still serve (updatedReplicas < replicas, old pods terminating).
- with a process runtime (``runtime=``), components it can run get the pod annotation
  ``kubeapi-sim/readiness: external``: their pods are Ready when the real process is.

Not simulated: Grove/LWS (multinode), DCDs, the conversion webhook (v1alpha1 reads return the stored v1beta1
shape), admission validation beyond controllers/dynamo_admission.py, planner/EPP specifics, PodMonitors,
ingress/VirtualService, model caching and checkpointing, restarts (``spec.restart``), per-generation worker
namespaces.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from ..fieldsets import now
from ..store import Event, Store
from . import base
from .base import READINESS_ANNOTATION, annotations, condition, owner_ref, set_condition, terminating

GROUP = "nvidia.com"
API = "nvidia.com/v1beta1"
DGD = "DynamoGraphDeployment"
DGDSA = "DynamoGraphDeploymentScalingAdapter"
LABEL_DGD = "nvidia.com/dynamo-graph-deployment-name"
LABEL_COMPONENT = "nvidia.com/dynamo-component"
LABEL_TYPE = "nvidia.com/dynamo-component-type"
LABEL_SUB_TYPE = "nvidia.com/dynamo-sub-component-type"
LABEL_SELECTOR = "nvidia.com/selector"
LABEL_NAMESPACE = "nvidia.com/dynamo-namespace"
LABEL_METRICS = "nvidia.com/metrics-enabled"
SERVICE_TYPE_ANNOTATION = "kubeapi-sim/frontend-service-type"
SPEC_HASH_ANNOTATION = "kubeapi-sim/spec-hash"
MAX_UNAVAILABLE_ANNOTATION = "nvidia.com/deployment-rolling-update-max-unavailable"
MAX_SURGE_ANNOTATION = "nvidia.com/deployment-rolling-update-max-surge"
WORKER_TYPES = ("worker", "prefill", "decode")
FRONTEND_PORT, SYSTEM_PORT, FORWARDPASS_PORT = 8000, 9090, 20380
NOT_AVAILABLE = "Component deployment not ready - Available condition not true"


# ---------------------------------------------------------------------------------------------- CRDs
def _crd(plural: str, kind: str, short: str, *, scale: bool, columns: list[dict]) -> dict:
    schema = {
        "openAPIV3Schema": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    }
    sub: dict = {"status": {}}
    if scale:
        sub["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    versions = [
        {
            "name": v,
            "served": True,
            "storage": v == "v1beta1",
            "schema": copy.deepcopy(schema),
            "subresources": copy.deepcopy(sub),
            "additionalPrinterColumns": copy.deepcopy(columns),
        }
        for v in ("v1beta1", "v1alpha1")
    ]
    versions[1].update(
        deprecated=True,
        deprecationWarning=f"nvidia.com/v1alpha1 {kind} is deprecated; use nvidia.com/v1beta1 {kind}",
    )
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "dynamo-platform"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": [short],
            },
            "versions": versions,
        },
    }


def dgd_crd() -> dict:
    """The DynamoGraphDeployment CRD (status subresource; scale lives on the DGDSA, as in Dynamo)."""
    return _crd(
        "dynamographdeployments",
        DGD,
        "dgd",
        scale=False,
        columns=[
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Backend", "type": "string", "jsonPath": ".spec.backendFramework"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    )


def dgdsa_crd() -> dict:
    """The DynamoGraphDeploymentScalingAdapter CRD (status + scale subresources)."""
    return _crd(
        "dynamographdeploymentscalingadapters",
        DGDSA,
        "dgdsa",
        scale=True,
        columns=[
            {"name": "DGD", "type": "string", "jsonPath": ".spec.dgdRef.name"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    )


def dynamo_crds() -> list[dict]:
    return [dgd_crd(), dgdsa_crd()]


def install_crds(store: Store) -> None:
    """Create the CRDs (or leave them) in ``store``, as ``helm install dynamo-crds`` would."""
    from ... import upstream

    upstream.install(store, dynamo_crds())


# ---------------------------------------------------------------------------------------------- spec
@dataclass
class Component:
    name: str
    type: str
    replicas: int
    template: dict
    scaling_adapter: bool = False
    raw: dict = field(default_factory=dict)

    @property
    def worker(self) -> bool:
        return self.type in WORKER_TYPES


def components(dgd: dict) -> list[Component]:
    """The components of a v1beta1 DGD (``spec.components``) or of a v1alpha1 one (``spec.services``)."""
    spec = dgd.get("spec") or {}
    out = []
    for c in spec.get("components") or []:
        out.append(
            Component(
                c["name"],
                c.get("type") or c.get("componentType") or "worker",
                int(c.get("replicas", 1)),
                copy.deepcopy(c.get("podTemplate") or {}),
                c.get("scalingAdapter") is not None,
                c,
            )
        )  # v1beta1: present (even {}) = on
    for name, s in (spec.get("services") or {}).items() if not out else ():
        pod = copy.deepcopy(s.get("extraPodSpec") or {})
        main = {"name": "main", **pod.pop("mainContainer", {})}
        main.setdefault("env", []).extend(s.get("envs") or [])
        limits = (s.get("resources") or {}).get("limits") or {}
        if limits.get("gpu"):
            main.setdefault("resources", {}).setdefault("limits", {})["nvidia.com/gpu"] = str(limits["gpu"])
        pod["containers"] = [main, *pod.get("containers", [])]
        out.append(
            Component(
                name,
                s.get("componentType") or "worker",
                int(s.get("replicas", 1)),
                {"spec": pod},
                bool((s.get("scalingAdapter") or {}).get("enabled")),
                s,
            )
        )
    return out


def deployment_name(dgd_name: str, component: str) -> str:
    return f"{dgd_name}-{component.lower()}"


def _env(container: dict, values: dict[str, str | dict]) -> None:
    env = container.setdefault("env", [])
    have = {e.get("name") for e in env}
    for k, v in values.items():
        if k not in have:
            env.append({"name": k, "valueFrom": v} if isinstance(v, dict) else {"name": k, "value": v})


# ---------------------------------------------------------------------------------------------- controller
class DynamoOperator(base.Reconciler):
    name = "dynamo-operator"
    manager = "dynamo-operator"

    def __init__(
        self,
        *,
        early_success: bool = False,
        progress_deadline_seconds: int | None = None,
        runtime: object | None = None,
        events: bool = True,
        enabled: bool = True,
        admission: bool = True,
    ) -> None:
        super().__init__(enabled=enabled)
        self.admission = admission  # install_all registers the webhook rules (dynamo_admission) when True
        self.early_success = early_success
        self.progress_deadline_seconds = progress_deadline_seconds
        self.runtime = runtime
        self.events.enabled = events
        self._hash: dict[str, str] = {}  # DGD uid -> worker spec hash that is rolled out
        self._target: dict[str, str] = {}  # DGD uid -> worker spec hash of the latest rolling update

    def observe(self, store: Store, event: Event) -> None:
        obj = event.object
        if event.group == GROUP and event.kind == DGD:
            if event.type == "DELETED":
                self._hash.pop(obj["metadata"].get("uid"), None)
                self._target.pop(obj["metadata"].get("uid"), None)
                return
            self.enqueue(("DGD", event.namespace, event.name))
            if base.kind_available(store, API, DGDSA):
                for sa in store.list(API, DGDSA, event.namespace):
                    if ((sa.get("spec") or {}).get("dgdRef") or {}).get("name") == event.name:
                        self.enqueue(("DGDSA", event.namespace, sa["metadata"]["name"]))
        elif event.group == GROUP and event.kind == DGDSA and event.type != "DELETED":
            self.enqueue(("DGDSA", event.namespace, event.name))
        elif event.kind in ("Deployment", "Service") and LABEL_DGD in (obj["metadata"].get("labels") or {}):
            self.enqueue(("DGD", event.namespace, obj["metadata"]["labels"][LABEL_DGD]))

    def reconcile(self, store: Store, key: tuple) -> float | None:
        if not base.kind_available(store, API, DGD):
            return None
        kind, ns, name = key
        return (
            self._reconcile_adapter(store, ns, name)
            if kind == "DGDSA"
            else self._reconcile_dgd(store, ns, name)
        )

    # ------------------------------------------------------------------ DGD
    def _reconcile_dgd(self, store: Store, ns: str, name: str) -> float | None:
        dgd = store.try_get(API, DGD, name, ns)
        if dgd is None or terminating(dgd):
            return None
        uid, gen = dgd["metadata"]["uid"], dgd["metadata"].get("generation", 1)
        comps = components(dgd)
        workers = [c for c in comps if c.worker]
        whash = base.safe_hash(
            [
                [c.name, c.type, c.template, {k: v for k, v in c.raw.items() if k != "replicas"}]
                for c in workers
            ]
        )
        status = copy.deepcopy(dgd.get("status") or {})
        ru = status.get("rollingUpdate")
        started = False
        rolling = bool(ru) and ru.get("phase") in ("Pending", "InProgress")
        if uid not in self._hash or self.early_success:
            self._hash[uid] = whash
        elif whash != self._hash[uid] and whash != self._target.get(uid):
            self._target[uid] = whash
            if not rolling:
                ru, started = {"phase": "Pending", "startTime": now()}, True
                self.events.record(
                    store,
                    dgd,
                    "RollingUpdateStarted",
                    f"Starting rolling update from worker hash {self._hash[uid]} to {whash}",
                    component=self.manager,
                )
        elif whash == self._hash[uid] and rolling:  # changed back: nothing left to roll
            ru.update(phase="Completed", endTime=now())
        dyn_ns = f"{ns}-{name}"
        deps = {c.name: self._apply_deployment(store, dgd, c, dyn_ns) for c in comps}
        for c in comps:
            if c.type == "frontend":
                self._apply_service(store, dgd, c)
            if c.scaling_adapter and base.kind_available(store, API, DGDSA):
                self._apply_adapter(store, dgd, c)
        wanted = {d["metadata"]["name"] for d in deps.values()}
        for d in store.list("apps/v1", "Deployment", ns, label_selector={LABEL_DGD: name}):
            if d["metadata"]["name"] not in wanted and base.owned_by(d, uid):
                store.delete("apps/v1", "Deployment", d["metadata"]["name"], ns)
        if ru and ru.get("phase") == "Pending" and not started:
            ru["phase"] = "InProgress"
        if ru and ru.get("phase") == "InProgress":
            done = sorted(c.name for c in workers if self._complete(deps[c.name], c.replicas))
            ru["updatedComponents"] = done
            stuck = [
                c.name
                for c in workers
                if (condition(deps[c.name], "Progressing") or {}).get("reason") == "ProgressDeadlineExceeded"
            ]
            if stuck:
                ru.update(phase="Failed", endTime=now())
                self.events.record(
                    store,
                    dgd,
                    "RollingUpdateFailed",
                    f"Rolling update failed: components {', '.join(stuck)} exceeded their progress deadline",
                    "Warning",
                    component=self.manager,
                )
            elif len(done) == len(workers):
                ru.update(phase="Completed", endTime=now())
                self._hash[uid] = whash
                self.events.record(
                    store,
                    dgd,
                    "RollingUpdateCompleted",
                    f"Rolling update to worker hash {whash} completed",
                    component=self.manager,
                )
        comp_status, not_ready = {}, []
        for c in comps:
            dep = deps[c.name]
            ds = dep.get("status") or {}
            comp_status[c.name] = {
                "componentKind": "Deployment",
                "componentNames": [dep["metadata"]["name"]],
                "runtimeNamespace": dyn_ns,
                "replicas": ds.get("replicas", 0),
                "updatedReplicas": ds.get("updatedReplicas", 0),
                "readyReplicas": ds.get("readyReplicas", 0),
                "availableReplicas": ds.get("availableReplicas", 0),
            }
            why = self._not_ready(dep, c)
            if why:
                not_ready.append(f"{dep['metadata']['name']}: {why}")
        phase = (ru or {}).get("phase")
        if phase == "Failed":
            state, ready, reason = "failed", "False", "rolling_update_failed"
            message = "Rolling update failed: a worker component exceeded its progress deadline"
        elif not_ready:
            state, ready, reason = "pending", "False", "some_resources_are_not_ready"
            message = "Resources not ready: " + "; ".join(not_ready)
        elif phase in ("Pending", "InProgress"):
            state, ready, reason, message = (
                "pending",
                "False",
                "rolling_update_in_progress",
                "Rolling update in progress",
            )
        else:
            state, ready, reason, message = (
                "successful",
                "True",
                "all_resources_are_ready",
                "All resources are ready",
            )
        if phase != "Failed":
            status["observedGeneration"] = gen
        status.update(state=state, components=comp_status)
        status["conditions"] = set_condition(
            status.get("conditions"), "Ready", ready, reason, message, observedGeneration=gen
        )
        if ru:
            status["rollingUpdate"] = ru
        base.write_status(store, dgd, status, self.manager)
        return None

    @staticmethod
    def _complete(dep: dict, desired: int) -> bool:
        ds = dep.get("status") or {}
        return (
            ds.get("observedGeneration", 0) >= dep["metadata"].get("generation", 1)
            and ds.get("updatedReplicas", 0) == desired
            and ds.get("replicas", 0) == desired
            and ds.get("availableReplicas", 0) == desired
        )

    def _not_ready(self, dep: dict, c: Component) -> str:
        available = (condition(dep, "Available") or {}).get("status") == "True"
        if self.early_success:
            return "" if available else NOT_AVAILABLE
        ds = dep.get("status") or {}
        gen, observed = dep["metadata"].get("generation", 1), ds.get("observedGeneration", 0)
        if observed < gen:
            return f"spec not yet processed: generation={gen}, observedGeneration={observed}"
        return "" if available and self._complete(dep, c.replicas) else NOT_AVAILABLE

    def _apply(self, store: Store, desired: dict, fields: dict) -> dict:
        """Create ``desired`` or bring the live object's ``fields`` (top-level keys) to it, by spec hash."""
        m = desired["metadata"]
        h = base.safe_hash(fields)
        m.setdefault("annotations", {})[SPEC_HASH_ANNOTATION] = h
        live = store.try_get(desired["apiVersion"], desired["kind"], m["name"], m["namespace"])
        if live is None:
            return store.create(desired, field_manager=self.manager)
        if annotations(live).get(SPEC_HASH_ANNOTATION) == h:
            return live
        live["metadata"].setdefault("labels", {}).update(m.get("labels") or {})
        live["metadata"].setdefault("annotations", {})[SPEC_HASH_ANNOTATION] = h
        for k, v in fields.items():
            if isinstance(v, dict) and isinstance(live.get(k), dict):
                live[k].update(copy.deepcopy(v))
            else:
                live[k] = copy.deepcopy(v)
        return store.update(live, field_manager=self.manager)

    def _apply_deployment(self, store: Store, dgd: dict, c: Component, dyn_ns: str) -> dict:
        ns, dgd_name = dgd["metadata"]["namespace"], dgd["metadata"]["name"]
        name = deployment_name(dgd_name, c.name)
        labels = {
            LABEL_DGD: dgd_name,
            LABEL_COMPONENT: c.name,
            LABEL_TYPE: c.type,
            LABEL_SELECTOR: name,
            LABEL_NAMESPACE: dyn_ns,
        }
        if c.type in ("prefill", "decode"):
            labels[LABEL_SUB_TYPE] = c.type
        if annotations(dgd).get("nvidia.com/enable-metrics") != "false":
            labels[LABEL_METRICS] = "true"
        template = copy.deepcopy(c.template)
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), **labels}
        pod = template.setdefault("spec", {})
        containers = pod.setdefault("containers", [{"name": "main"}])
        main = next((x for x in containers if x.get("name") == "main"), containers[0])
        spec = dgd.get("spec") or {}
        _env(
            main,
            {
                e["name"]: e.get("valueFrom") or e.get("value", "")
                for e in (spec.get("env") or spec.get("envs") or [])
                if e.get("name")
            },
        )

        def field_ref(path: str) -> dict:
            return {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}

        _env(
            main,
            {
                "DYN_NAMESPACE": dyn_ns,
                "DYN_COMPONENT": c.name,
                "DYN_DISCOVERY_BACKEND": "kubernetes",
                "DYN_PARENT_DGD_K8S_NAME": dgd_name,
                "DYN_PARENT_DGD_K8S_NAMESPACE": ns,
                "POD_NAME": field_ref("metadata.name"),
                "POD_NAMESPACE": field_ref("metadata.namespace"),
                "POD_UID": field_ref("metadata.uid"),
            },
        )
        if c.type == "frontend":
            port_name, port = "http", FRONTEND_PORT
            _env(main, {"DYNAMO_PORT": str(port), "DYN_HTTP_PORT": str(port)})
        else:
            port_name, port = "system", SYSTEM_PORT
            if c.worker:
                _env(
                    main,
                    {
                        "DYN_SYSTEM_ENABLED": "true",
                        "DYN_SYSTEM_PORT": str(port),
                        "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS": '["generate"]',
                        "DYN_FORWARDPASS_METRIC_PORT": str(FORWARDPASS_PORT),
                    },
                )
        ports = main.setdefault("ports", [])
        if not any(p.get("name") == port_name for p in ports):
            ports.append({"name": port_name, "containerPort": port, "protocol": "TCP"})
        if c.type == "frontend" or c.worker:
            main.setdefault(
                "livenessProbe",
                {"httpGet": {"path": "/live", "port": port_name}, "periodSeconds": 5, "failureThreshold": 1},
            )
            main.setdefault(
                "readinessProbe",
                {
                    "httpGet": {"path": "/health", "port": port_name},
                    "periodSeconds": 10,
                    "failureThreshold": 3,
                },
            )
        if self.runtime is not None and self.runtime.handles(c.type, main):
            tmeta.setdefault("annotations", {})[READINESS_ANNOTATION] = "external"
        notes = annotations(dgd)
        strategy = {
            "type": "RollingUpdate",
            "rollingUpdate": {
                "maxUnavailable": _int_or_str(notes.get(MAX_UNAVAILABLE_ANNOTATION, "25%")),
                "maxSurge": _int_or_str(notes.get(MAX_SURGE_ANNOTATION, "25%")),
            },
        }
        dspec = {"replicas": c.replicas, "template": template, "strategy": strategy}
        if self.progress_deadline_seconds is not None:
            dspec["progressDeadlineSeconds"] = self.progress_deadline_seconds
        desired = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": labels,
                "ownerReferences": [owner_ref(dgd)],
            },
            "spec": {**dspec, "selector": {"matchLabels": {LABEL_SELECTOR: name}}},
        }
        return self._apply(store, desired, {"spec": dspec})

    def _apply_service(self, store: Store, dgd: dict, c: Component) -> dict:
        ns, dgd_name = dgd["metadata"]["namespace"], dgd["metadata"]["name"]
        name = deployment_name(dgd_name, c.name)
        spec: dict = {
            "selector": {LABEL_SELECTOR: name},
            "ports": [
                {"name": "http", "port": FRONTEND_PORT, "targetPort": FRONTEND_PORT, "protocol": "TCP"}
            ],
        }
        svc_type = annotations(dgd).get(SERVICE_TYPE_ANNOTATION)
        if svc_type:
            spec["type"] = svc_type
        return self._apply(
            store,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "ownerReferences": [owner_ref(dgd)],
                    "labels": {LABEL_DGD: dgd_name, LABEL_COMPONENT: c.name, LABEL_TYPE: c.type},
                },
                "spec": spec,
            },
            {"spec": spec},
        )

    def _apply_adapter(self, store: Store, dgd: dict, c: Component) -> None:
        ns, dgd_name = dgd["metadata"]["namespace"], dgd["metadata"]["name"]
        name = deployment_name(dgd_name, c.name)
        if store.try_get(API, DGDSA, name, ns) is None:
            store.create(
                {
                    "apiVersion": API,
                    "kind": DGDSA,
                    "metadata": {
                        "name": name,
                        "namespace": ns,
                        "labels": {LABEL_DGD: dgd_name, LABEL_COMPONENT: c.name},
                        "ownerReferences": [owner_ref(dgd)],
                    },
                    "spec": {"replicas": c.replicas, "dgdRef": {"name": dgd_name, "componentName": c.name}},
                },  # v1beta1
                field_manager=self.manager,
            )

    # ------------------------------------------------------------------ DGDSA
    def _reconcile_adapter(self, store: Store, ns: str, name: str) -> float | None:
        if not base.kind_available(store, API, DGDSA):
            return None
        sa = store.try_get(API, DGDSA, name, ns)
        if sa is None or terminating(sa):
            return None
        ref = (sa.get("spec") or {}).get("dgdRef") or {}
        comp = ref.get("serviceName") or ref.get("componentName") or ""
        dgd = store.try_get(API, DGD, ref.get("name", ""), ns)
        want = (sa.get("spec") or {}).get("replicas")
        if dgd is None or want is None:
            return None
        status = dict(sa.get("status") or {})
        spec = dgd.get("spec") or {}
        if spec.get("components") is not None:
            idx = next((i for i, c in enumerate(spec["components"]) if c.get("name") == comp), None)
            if idx is None:
                return None
            current, path = spec["components"][idx].get("replicas", 1), f"/spec/components/{idx}"
            ops = [{"op": "test", "path": f"{path}/name", "value": comp}]
        elif comp in (spec.get("services") or {}):
            current, path, ops = spec["services"][comp].get("replicas", 1), f"/spec/services/{comp}", []
        else:
            return None
        if current != want:
            store.patch(
                API,
                DGD,
                dgd["metadata"]["name"],
                ops + [{"op": "add", "path": f"{path}/replicas", "value": want}],
                ns,
                patch_type="json",
                field_manager="dgdsa-controller",
            )
            status["lastScaleTime"] = now()
        status.update(
            replicas=want, selector=f"{LABEL_DGD}={dgd['metadata']['name']},{LABEL_COMPONENT}={comp}"
        )
        base.write_status(store, sa, status, self.manager)
        return None


def _int_or_str(value: str) -> int | str:
    return int(value) if str(value).isdigit() else value
