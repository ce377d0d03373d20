"""A deliberately small stand-in controller so ``helm --wait`` and ``kubectl wait`` can finish in the
simulator's own contract tests. The full controllers (pods, StatefulSets, DaemonSets, PVCs, nodes,
Dynamo) are a separate module; this one can be switched off or replaced.

- Deployment: ``delay`` seconds after a spec change, a ReplicaSet for the current template exists
  (owned by the Deployment, ``pod-template-hash`` label, older ones scaled to 0) and both report all
  replicas ready/available with observedGeneration current and the Available / Progressing
  (NewReplicaSetAvailable) conditions - what helm 3's readiness check and helm 4's kstatus read.
  No Pods are created.
- Job: ``delay`` seconds after creation it is Complete (or Failed when annotated
  ``kubeapi-sim/fail: "true"``).

    sim.add_controller(BasicControllers(delay=0.2), every=0.05)
"""

from __future__ import annotations

import copy
import hashlib
import json
import time

from .fieldsets import now
from .store import Event, Store

FAIL_ANNOTATION = "kubeapi-sim/fail"
MANAGER = "kubeapi-sim-basic-controllers"


def template_hash(template: dict) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


class BasicControllers:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self._due: dict[tuple[str, str, str], float] = {}
        self._synced = False

    def _observe(self, kind: str, type_: str, obj: dict) -> None:
        meta = obj["metadata"]
        key = (kind, meta.get("namespace", ""), meta["name"])
        if (kind == "Deployment" and not self._deployment_done(obj)) or (kind == "Job" and type_ == "ADDED"):
            self._due.setdefault(key, time.monotonic() + self.delay)

    def __call__(self, store: Store, event: Event | None) -> None:
        if not self._synced:  # objects that existed before this controller was added
            self._synced = True
            for dep in store.list("apps/v1", "Deployment"):
                self._observe("Deployment", "ADDED", dep)
            for job in store.list("batch/v1", "Job"):
                if not (job.get("status") or {}).get("conditions"):
                    self._observe("Job", "ADDED", job)
        if event is not None and event.group in ("apps", "batch") and event.type != "DELETED":
            self._observe(event.kind, event.type, event.object)
        t = time.monotonic()
        for key, due in list(self._due.items()):
            if due <= t:
                del self._due[key]
                kind, ns, name = key
                if kind == "Deployment":
                    self._reconcile_deployment(store, ns, name)
                else:
                    self._finish_job(store, ns, name)

    @staticmethod
    def _deployment_done(dep: dict) -> bool:
        st = dep.get("status") or {}
        return (
            st.get("observedGeneration") == dep["metadata"].get("generation")
            and st.get("readyReplicas", 0) == dep["spec"].get("replicas", 1)
            and st.get("updatedReplicas", 0) == dep["spec"].get("replicas", 1)
        )

    def _reconcile_deployment(self, store: Store, ns: str, name: str) -> None:
        dep = store.try_get("apps/v1", "Deployment", name, ns)
        if dep is None or dep["metadata"].get("deletionTimestamp"):
            return
        spec = dep["spec"]
        replicas = spec.get("replicas", 1)
        template = copy.deepcopy(spec.get("template") or {})
        h = template_hash(template)
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = h
        owner = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
            "uid": dep["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        rs_name = f"{name}-{h}"
        owned = [
            rs
            for rs in store.list("apps/v1", "ReplicaSet", ns)
            if any(r.get("uid") == owner["uid"] for r in rs["metadata"].get("ownerReferences") or [])
        ]
        for rs in owned:
            if rs["metadata"]["name"] != rs_name and rs["spec"].get("replicas"):
                rs["spec"]["replicas"] = 0
                rs = store.update(rs, field_manager=MANAGER)
                store.update_status(
                    {
                        **rs,
                        "status": {"replicas": 0, "observedGeneration": rs["metadata"].get("generation", 1)},
                    },
                    field_manager=MANAGER,
                )
        rs = store.try_get("apps/v1", "ReplicaSet", rs_name, ns)
        if rs is None:
            rs = store.create(
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": rs_name,
                        "namespace": ns,
                        "ownerReferences": [owner],
                        "labels": dict(template["metadata"]["labels"]),
                        "annotations": {"deployment.kubernetes.io/revision": str(len(owned) + 1)},
                    },
                    "spec": {"replicas": replicas, "selector": selector, "template": template},
                },
                field_manager=MANAGER,
            )
        elif rs["spec"].get("replicas") != replicas:
            rs["spec"]["replicas"] = replicas
            rs = store.update(rs, field_manager=MANAGER)
        ready = {
            "replicas": replicas,
            "fullyLabeledReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        store.update_status({**rs, "status": ready}, field_manager=MANAGER)
        t = now()
        dep["status"] = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": t,
                    "lastTransitionTime": t,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{rs_name}" has successfully progressed.',
                    "lastUpdateTime": t,
                    "lastTransitionTime": t,
                },
            ],
        }
        store.update_status(dep, field_manager=MANAGER)

    def _finish_job(self, store: Store, ns: str, name: str) -> None:
        job = store.try_get("batch/v1", "Job", name, ns)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        t = now()
        failed = (job["metadata"].get("annotations") or {}).get(FAIL_ANNOTATION) == "true"
        completions = job["spec"].get("completions", 1)
        if failed:
            status = {
                "startTime": t,
                "failed": job["spec"].get("backoffLimit", 6) + 1,
                "active": 0,
                "conditions": [
                    {
                        "type": "FailureTarget",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit",
                        "lastProbeTime": t,
                        "lastTransitionTime": t,
                    },
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "message": "Job has reached the specified backoff limit",
                        "lastProbeTime": t,
                        "lastTransitionTime": t,
                    },
                ],
            }
        else:
            status = {
                "startTime": t,
                "completionTime": t,
                "succeeded": completions,
                "active": 0,
                "ready": 0,
                "conditions": [
                    {
                        "type": "SuccessCriteriaMet",
                        "status": "True",
                        "reason": "CompletionsReached",
                        "message": "Reached expected number of succeeded pods",
                        "lastProbeTime": t,
                        "lastTransitionTime": t,
                    },
                    {
                        "type": "Complete",
                        "status": "True",
                        "reason": "CompletionsReached",
                        "message": "Reached expected number of succeeded pods",
                        "lastProbeTime": t,
                        "lastTransitionTime": t,
                    },
                ],
            }
        job["status"] = status
        store.update_status(job, field_manager=MANAGER)
