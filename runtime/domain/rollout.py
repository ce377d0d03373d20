"""Decisions on objects read from the cluster: is a rollout done, has it failed, and why is it stuck.

Pure: every function takes the objects as plain dicts (as the API returns them; the kube gateway
converts client models with ``to_dict``-style camelCase keys) and returns a verdict.

The DGD readiness contract (facts/dynamo.md, Addendum; Dynamo's own planner decides the same way):

1. condition ``Ready`` is ``True``;
2. ``status.observedGeneration >= metadata.generation`` (the operator has seen this spec);
3. for every component: desired replicas == ``updatedReplicas`` == serving replicas
   (``availableReplicas`` when reported, else ``readyReplicas``);
4. ``status.rollingUpdate.phase`` is empty or ``Completed`` (``Failed`` is terminal);
5. no pod of the graph is terminating (``deletionTimestamp`` set, not yet Succeeded/Failed).

Checking ``Ready`` alone is the known early-success trap: the operator reported ``successful``
before the new pods were rolled (ai-dynamo/dynamo#3567).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.domain import naming

# Labels the Dynamo operator puts on every pod of a graph.
DGD_NAME_LABEL = "nvidia.com/dynamo-graph-deployment-name"
COMPONENT_LABEL = "nvidia.com/dynamo-component"
COMPONENT_TYPE_LABEL = "nvidia.com/dynamo-component-type"
DONE_PHASES = ("", "Completed")
_TERMINAL_POD_PHASES = ("Succeeded", "Failed")
_STUCK_WAITING = {
    "CrashLoopBackOff": "the container keeps crashing; see its logs",
    "ImagePullBackOff": "check serving.image (tag exists, registry reachable, pull secret)",
    "ErrImagePull": "check serving.image (tag exists, registry reachable, pull secret)",
    "InvalidImageName": "fix serving.image",
    "CreateContainerConfigError": "a referenced Secret or ConfigMap is missing (the HF token Secret?)",
    "CreateContainerError": "the container could not be created; see the pod's events",
    "RunContainerError": "the container could not start; see the pod's events",
}


@dataclass(frozen=True)
class Readiness:
    """A verdict: done (all good), failed (will not get better by waiting), and what is off."""

    done: bool
    failed: bool = False
    reasons: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        state = "done" if self.done else "failed" if self.failed else "in progress"
        return f"{state}: {'; '.join(self.reasons)}" if self.reasons else state


def _verdict(reasons: list[str], failed: bool = False) -> Readiness:
    return Readiness(done=not reasons and not failed, failed=failed, reasons=reasons)


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def _generation_reason(obj: Mapping[str, Any], what: str) -> str | None:
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if generation is None:
        return f"{what} reports no metadata.generation, so its status cannot be matched to its spec"
    if observed is None:
        return f"{what} has not observed the spec yet (generation {generation})"
    if int(observed) < int(generation):
        return f"{what} has observed generation {observed}, not {generation} yet"
    return None


def is_terminating(pod: Mapping[str, Any]) -> bool:
    """A pod that is being deleted and has not finished (it may still serve, or hold a GPU)."""
    deleting = (pod.get("metadata") or {}).get("deletionTimestamp")
    return bool(deleting) and (pod.get("status") or {}).get("phase") not in _TERMINAL_POD_PHASES


def pod_component(pod: Mapping[str, Any]) -> str:
    """The graph component a pod belongs to (the operator's label, else dynadeploy's role label)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return (
        labels.get(COMPONENT_LABEL)
        or labels.get(naming.ROLE_KEY)
        or (labels.get(COMPONENT_TYPE_LABEL) or "?")
    )


# --- the DynamoGraphDeployment --------------------------------------------------------------------


def assess_dgd(
    dgd: Mapping[str, Any] | None,
    pods: Iterable[Mapping[str, Any]] = (),
    workloads: Iterable[Mapping[str, Any]] = (),
) -> Readiness:
    """The full readiness contract for a DGD and the pods of that graph (see the module docstring).

    ``workloads`` are the graph's Deployments (label nvidia.com/dynamo-graph-deployment-name): the
    operator can copy their counts before they have seen the new template, so each must also have
    observed its own generation and have every replica updated.
    """
    if not dgd:
        return _verdict(["the graph does not exist (yet)"])
    status = dgd.get("status") or {}
    reasons: list[str] = []
    failed = False

    rolling = status.get("rollingUpdate") or {}
    phase = rolling.get("phase") or ""
    if phase == "Failed":
        failed = True
        detail = rolling.get("message") or rolling.get("reason")
        reasons.append("rolling update failed" + (f": {detail}" if detail else ""))
    elif phase not in DONE_PHASES:
        updated = rolling.get("updatedServices") or rolling.get("updatedComponents")
        suffix = f" (updated so far: {', '.join(map(str, updated))})" if updated else ""
        reasons.append(f"rolling update {phase}{suffix}")

    ready = _condition(dgd, "Ready")
    if ready is None:
        reasons.append("no Ready condition yet")
    elif ready.get("status") != "True":
        why = ": ".join(str(x) for x in (ready.get("reason"), ready.get("message")) if x)
        reasons.append(f"Ready is {ready.get('status')}" + (f" ({why})" if why else ""))

    lag = _generation_reason(dgd, "the operator")
    if lag:
        reasons.append(lag)

    statuses = status.get("components") or status.get("services") or {}
    for component in (dgd.get("spec") or {}).get("components") or []:
        name = component.get("name", "?")
        desired = component.get("replicas", 1)
        if desired is None:
            desired = 1
        reasons.extend(_component_reasons(name, int(desired), statuses.get(name)))

    for workload in workloads:
        meta, wst = workload.get("metadata") or {}, workload.get("status") or {}
        wname = meta.get("name", "?")
        if int(wst.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
            reasons.append(f"{wname}: the Deployment has not observed its latest spec yet")
        elif int(wst.get("replicas") or 0) != int(wst.get("updatedReplicas") or 0):
            updated, replicas = wst.get("updatedReplicas") or 0, wst.get("replicas") or 0
            reasons.append(f"{wname}: {updated}/{replicas} pods on the new template")

    terminating: dict[str, list[str]] = {}
    for pod in pods:
        if is_terminating(pod):
            terminating.setdefault(pod_component(pod), []).append(
                (pod.get("metadata") or {}).get("name", "?")
            )
    for name, pod_names in sorted(terminating.items()):
        reasons.append(f"{name}: {len(pod_names)} pod(s) terminating ({', '.join(sorted(pod_names))})")
    return _verdict(reasons, failed)


def _component_reasons(name: str, desired: int, status: Mapping[str, Any] | None) -> list[str]:
    if status is None:
        return [] if desired == 0 else [f"{name}: no status reported yet (0/{desired} ready)"]
    updated = int(status.get("updatedReplicas") or 0)
    if status.get("availableReplicas") is not None:
        serving, word = int(status["availableReplicas"]), "available"
    else:
        serving, word = int(status.get("readyReplicas") or 0), "ready"
    out = []
    total = status.get("replicas")
    if total is not None and int(total) != desired:
        # more pods than wanted: the old ones still serve beside the new (Dynamo issue #3567)
        out.append(f"{name}: {total} replicas running, {desired} wanted")
    if updated != desired:
        out.append(f"{name}: {updated}/{desired} updated")
    if serving != desired:
        out.append(f"{name}: {serving}/{desired} {word}")
    return out


# --- why is it stuck ------------------------------------------------------------------------------


def _events_for(pod_name: str, events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    out = []
    for event in events:
        about = event.get("involvedObject") or event.get("regarding") or {}
        if about.get("name") == pod_name and about.get("kind", "Pod") == "Pod":
            out.append(event)
    return sorted(out, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


def _message(event: Mapping[str, Any]) -> str:
    return " ".join(str(event.get("message") or event.get("note") or "").split())


def pod_problem(pod: Mapping[str, Any], events: Iterable[Mapping[str, Any]] = ()) -> tuple[int, str] | None:
    """(severity, one line) for what keeps ``pod`` from serving, or None when it is fine."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    name = meta.get("name", "?")
    events = _events_for(name, events)
    if is_terminating(pod):
        return 1, f"pod {name} is terminating"
    if status.get("phase") == "Failed":
        return 5, f"pod {name} failed: {status.get('reason') or ''} {status.get('message') or ''}".rstrip()
    containers = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    for cs in containers:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        last = (cs.get("lastState") or {}).get("terminated") or {}
        restarts = int(cs.get("restartCount") or 0)
        if reason in _STUCK_WAITING or last.get("reason") == "OOMKilled":
            parts = [f"container {cs.get('name')} {reason or 'restarting'}"]
            if restarts:
                parts.append(f"{restarts} restart(s)")
            if last:
                code = last.get("exitCode")
                parts.append(f"last exit {last.get('reason') or ''} code {code}".replace("  ", " "))
            detail = " ".join(str(waiting.get("message") or "").split())
            line = f"pod {name}: {', '.join(parts)}" + (f": {detail[:300]}" if detail else "")
            hint = (
                "raise the memory the pod may use (or a smaller model / fewer max tokens)"
                if last.get("reason") == "OOMKilled"
                else _STUCK_WAITING.get(reason or "", "")
            )
            return 4, f"{line} ({hint})" if hint else line
    scheduled = _condition(pod, "PodScheduled")
    if status.get("phase") == "Pending" and scheduled is not None and scheduled.get("status") == "False":
        failed = [e for e in events if e.get("reason") == "FailedScheduling"]
        message = _message(failed[-1]) if failed else " ".join(str(scheduled.get("message") or "").split())
        return 3, f"pod {name} is unschedulable: {message or scheduled.get('reason') or 'no node fits'}"
    mount = [e for e in events if e.get("reason") in ("FailedMount", "FailedAttachVolume")]
    if status.get("phase") == "Pending" and mount:
        text = _message(mount[-1])
        hint = " (use model.cache.access_mode ReadWriteMany)" if "Multi-Attach" in text else ""
        return 3, f"pod {name} cannot mount a volume: {text}{hint}"
    if status.get("phase") == "Pending":
        waiting = [cs for cs in containers if (cs.get("state") or {}).get("waiting")]
        what = (waiting[0]["state"]["waiting"].get("reason") if waiting else None) or "starting"
        return 2, f"pod {name} is pending ({what})"
    ready = _condition(pod, "Ready")
    if status.get("phase") == "Running" and (ready is None or ready.get("status") != "True"):
        probes = [e for e in events if e.get("reason") == "Unhealthy"]
        detail = f": {_message(probes[-1])}" if probes else " (still loading the model?)"
        restarts = sum(int(cs.get("restartCount") or 0) for cs in containers)
        more = f", {restarts} restart(s)" if restarts else ""
        return 2, f"pod {name} is running but not ready{more}{detail}"
    return None


def diagnose(pods: Iterable[Mapping[str, Any]], events: Iterable[Mapping[str, Any]] = ()) -> list[str]:
    """One line per stuck component: its worst pod problem (crash loops, pulls, OOM, scheduling...)."""
    events = list(events)
    found: dict[str, list[tuple[int, str]]] = {}
    for pod in pods:
        problem = pod_problem(pod, events)
        if problem is not None:
            found.setdefault(pod_component(pod), []).append(problem)
    out = []
    for component, problems in sorted(found.items()):
        _, line = max(problems, key=lambda p: p[0])
        others = f" (+{len(problems) - 1} more pod(s) not ready)" if len(problems) > 1 else ""
        out.append(f"{component}: {line}{others}")
    return out


# --- other workloads ------------------------------------------------------------------------------


def assess_deployment(obj: Mapping[str, Any] | None) -> Readiness:
    """A Deployment, DaemonSet or StatefulSet (the Dynamo operator, the GPU operator's operands)."""
    if not obj:
        return _verdict(["it does not exist (yet)"])
    kind = obj.get("kind", "Deployment")
    name = (obj.get("metadata") or {}).get("name", "?")
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    reasons: list[str] = []
    lag = _generation_reason(obj, f"{kind} {name}")
    if lag:
        reasons.append(lag)
    if kind == "DaemonSet":
        desired = int(status.get("desiredNumberScheduled") or 0)
        updated = int(status.get("updatedNumberScheduled") or 0)
        available = int(status.get("numberAvailable") or 0)
        if updated != desired:
            reasons.append(f"{kind} {name}: {updated}/{desired} nodes updated")
        if available != desired:
            reasons.append(f"{kind} {name}: {available}/{desired} nodes available")
        return _verdict(reasons)
    desired = spec.get("replicas", 1)
    desired = 1 if desired is None else int(desired)
    updated = int(status.get("updatedReplicas") or 0)
    ready_word = "available" if kind == "Deployment" else "ready"
    serving = int(status.get("availableReplicas" if kind == "Deployment" else "readyReplicas") or 0)
    if updated != desired:
        reasons.append(f"{kind} {name}: {updated}/{desired} updated")
    if serving != desired:
        reasons.append(f"{kind} {name}: {serving}/{desired} {ready_word}")
    if int(status.get("replicas") or 0) > desired:
        reasons.append(
            f"{kind} {name}: {status.get('replicas')} replicas, {desired} desired (old ones going)"
        )
    if (
        kind == "StatefulSet"
        and status.get("updateRevision")
        and (status.get("currentRevision") != status.get("updateRevision"))
    ):
        reasons.append(f"{kind} {name}: rolling to {status.get('updateRevision')}")
    progressing = _condition(obj, "Progressing")
    failed = bool(progressing and progressing.get("reason") == "ProgressDeadlineExceeded")
    if failed:
        reasons.append(
            f"{kind} {name}: progress deadline exceeded ({(progressing or {}).get('message') or ''})"
        )
    return _verdict(reasons, failed)


def assess_job(job: Mapping[str, Any] | None) -> Readiness:
    """A Job (the model download): done when Complete, failed when Failed (backoff limit reached)."""
    if not job:
        return _verdict(["the Job does not exist (yet)"])
    name = (job.get("metadata") or {}).get("name", "?")
    failed = _condition(job, "Failed")
    if failed is not None and failed.get("status") == "True":
        why = ": ".join(str(x) for x in (failed.get("reason"), failed.get("message")) if x)
        return _verdict([f"Job {name} failed" + (f" ({why})" if why else "")], failed=True)
    complete = _condition(job, "Complete")
    if complete is not None and complete.get("status") == "True":
        return _verdict([])
    status = job.get("status") or {}
    active, failures = int(status.get("active") or 0), int(status.get("failed") or 0)
    return _verdict([f"Job {name} running ({active} active, {failures} failed)"])


def crd_established(crd: Mapping[str, Any] | None) -> bool:
    """True when a CustomResourceDefinition is Established (its API is served)."""
    cond = _condition(crd or {}, "Established")
    return cond is not None and cond.get("status") == "True"
