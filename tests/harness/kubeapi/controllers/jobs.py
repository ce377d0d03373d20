"""Job controller (with its pods' kubelet part).

A Job gets pods ``<job>-<5 chars>`` (template labels incl. job-name / controller-uid, ownerReference),
up to ``parallelism`` at a time until ``completions`` succeeded. Each pod is scheduled (``base.schedule``:
a pod waiting for a PVC stays Pending), runs, and ``delay`` seconds later terminates: Succeeded (exit 0)
or, when the Job or its pod template is annotated ``kubeapi-sim/fail: "true"``, Failed (exit 1); with
``kubeapi-sim/fail-attempts: "N"`` only the first N attempts fail. The pod's log is the annotation
``kubeapi-sim/log`` (Job or template), served by ``kubectl logs job/NAME``. A failed pod is replaced
until ``backoffLimit`` failures; then the Job is Failed (FailureTarget + Failed, BackoffLimitExceeded),
otherwise Complete (SuccessCriteriaMet + Complete). Status: startTime, completionTime, active, ready,
succeeded, failed, terminating. Events: SuccessfulCreate, Completed, BackoffLimitExceeded.

Not simulated: exponential back-off between attempts, restartPolicy OnFailure restarting in place (a
new pod per attempt instead), Indexed completion, podFailurePolicy, successPolicy,
activeDeadlineSeconds, ttlSecondsAfterFinished, suspend (a suspended Job just waits), CronJobs.
"""

from __future__ import annotations

import time

from ..fieldsets import now
from ..store import Event, Store
from . import base
from .base import (
    annotations,
    controller_of,
    owned_by,
    set_condition,
    template_annotations,
    terminating,
    write_status,
)

FAIL_ANNOTATION = "kubeapi-sim/fail"
FAIL_ATTEMPTS_ANNOTATION = "kubeapi-sim/fail-attempts"
LOG_ANNOTATION = "kubeapi-sim/log"


class Jobs(base.Reconciler):
    name = "jobs"
    manager = "kubeapi-sim-jobs"

    def __init__(
        self, *, delay: float = 0.2, check_resources: bool = True, events: bool = True, enabled: bool = True
    ) -> None:
        super().__init__(enabled=enabled)
        self.delay = delay
        self.check_resources = check_resources
        self.events.enabled = events
        self._running: dict[str, float] = {}  # pod uid -> when it started running

    def observe(self, store: Store, event: Event) -> None:
        if event.group == "batch" and event.kind == "Job":
            self.enqueue(("Job", event.namespace, event.name))
        elif event.group == "" and event.kind == "Pod":
            ref = controller_of(event.object)
            if ref and ref.get("kind") == "Job":
                self.enqueue(("Job", event.namespace, ref["name"]))
        elif event.kind in ("Node", "PersistentVolumeClaim", "StorageClass"):
            for job in store.list("batch/v1", "Job", event.namespace or None):
                if (job.get("status") or {}).get("active"):
                    self.enqueue(("Job", job["metadata"]["namespace"], job["metadata"]["name"]))

    def reconcile(self, store: Store, key: tuple) -> float | None:
        _, ns, name = key
        job = store.try_get("batch/v1", "Job", name, ns)
        if job is None or terminating(job):
            return None
        status = dict(job.get("status") or {})
        if any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in status.get("conditions") or []
        ):
            return None
        spec = job["spec"]
        pods = [p for p in store.list("v1", "Pod", ns) if owned_by(p, job["metadata"]["uid"])]
        again: list[float] = []
        for pod in pods:
            if not terminating(pod) and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                t = self._run_pod(store, job, pod, len([p for p in pods if _phase(p) == "Failed"]))
                if t is not None:
                    again.append(t)
        pods = [p for p in store.list("v1", "Pod", ns) if owned_by(p, job["metadata"]["uid"])]
        succeeded = sum(1 for p in pods if _phase(p) == "Succeeded")
        failed = sum(1 for p in pods if _phase(p) == "Failed")
        active = [p for p in pods if base.pod_active(p)]
        completions = spec.get("completions", 1)
        t = now()
        status.setdefault("startTime", t)
        conds = status.get("conditions")
        if failed > spec.get("backoffLimit", 6):
            msg = "Job has reached the specified backoff limit"
            for c in ("FailureTarget", "Failed"):
                conds = set_condition(conds, c, "True", "BackoffLimitExceeded", msg, lastProbeTime=t)
            for p in active:
                store.delete("v1", "Pod", p["metadata"]["name"], ns)
            active = []
            self.events.record(store, job, "BackoffLimitExceeded", msg, "Warning", component="job-controller")
        elif succeeded >= completions:
            msg = "Reached expected number of succeeded pods"
            for c in ("SuccessCriteriaMet", "Complete"):
                conds = set_condition(conds, c, "True", "CompletionsReached", msg, lastProbeTime=t)
            status["completionTime"] = t
            self.events.record(store, job, "Completed", "Job completed", component="job-controller")
        elif not spec.get("suspend"):
            want = min(spec.get("parallelism", 1), completions - succeeded) - len(active)
            for _ in range(max(0, want)):
                pod = base.new_pod(job, spec.get("template") or {}, f"{name}-{base.rand_suffix()}")
                active.append(store.create(pod, field_manager=self.manager))
                self.events.record(
                    store,
                    job,
                    "SuccessfulCreate",
                    f"Created pod: {pod['metadata']['name']}",
                    component="job-controller",
                )
                again.append(0.0)
        status.update(
            active=len(active),
            succeeded=succeeded,
            failed=failed,
            terminating=0,
            ready=sum(1 for p in active if base.pod_ready(p)),
            uncountedTerminatedPods={},
        )
        for k in ("active", "succeeded", "failed"):
            if not status[k]:
                del status[k]
        if conds:
            status["conditions"] = conds
        write_status(store, job, status, self.manager)
        return min(again) if again else None

    def _run_pod(self, store: Store, job: dict, pod: dict, failures: int) -> float | None:
        """Schedule, start and finish one pod of ``job``; seconds until it needs another look."""
        m = pod["metadata"]
        if not pod["spec"].get("nodeName"):
            node, why = base.schedule(store, pod, check_resources=self.check_resources)
            if node is None:
                if write_status(store, pod, base.unschedulable_status(pod, why), self.manager) is not pod:
                    self.events.record(
                        store, pod, "FailedScheduling", why, "Warning", component="default-scheduler"
                    )
                return 2.0
            pod = base.bind(store, pod, node, self.manager, self.events)
        node = store.try_get("v1", "Node", pod["spec"]["nodeName"])
        status = pod.get("status") or {}
        started = status.get("startTime") or now()
        if status.get("phase") != "Running":
            write_status(
                store,
                pod,
                base.pod_status(pod, node=node, phase="Running", ready=True, started_at=started),
                self.manager,
            )
            for c in pod["spec"].get("containers") or []:
                self.events.record(
                    store,
                    pod,
                    "Started",
                    f"Started container {c['name']}",
                    component="kubelet",
                    host=pod["spec"]["nodeName"],
                )
            pod = store.get("v1", "Pod", m["name"], m["namespace"])
        since = self._running.setdefault(m["uid"], time.monotonic())
        left = since + self.delay - time.monotonic()
        if left > 0:
            return left
        notes = {**annotations(job), **template_annotations(job)}
        fail = notes.get(FAIL_ANNOTATION) == "true"
        if FAIL_ATTEMPTS_ANNOTATION in notes:
            fail = failures < int(notes[FAIL_ATTEMPTS_ANNOTATION])
        code, reason = (1, "Error") if fail else (0, "Completed")
        t = now()
        term = {
            c["name"]: {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": t}
            for c in pod["spec"].get("containers") or []
        }
        status = base.pod_status(
            pod,
            node=node,
            phase="Failed" if fail else "Succeeded",
            ready=False,
            started_at=started,
            terminated=term,
        )
        default_log = (
            f"{m['name']}: simulated failure (exit code 1)\n"
            if fail
            else f"{m['name']}: simulated run completed\n"
        )
        store.set_pod_log(m["namespace"], m["name"], notes.get(LOG_ANNOTATION, default_log))
        write_status(store, pod, status, self.manager)
        self._running.pop(m["uid"], None)
        return 0.0


def _phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase", "")
