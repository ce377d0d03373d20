"""Workload controllers and a kubelet stand-in: Deployments, ReplicaSets, StatefulSets, DaemonSets, Pods.

- Deployment -> ReplicaSet ``<name>-<pod-template-hash>`` -> Pods ``<rs>-<5 chars>``; RollingUpdate honours
  maxSurge / maxUnavailable (new RS scales up, old ones down as pods become ready), Recreate scales old to
  0 first; status (replicas, updated/ready/available/unavailableReplicas, observedGeneration) and the
  Available / Progressing conditions (ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded
  after ``spec.progressDeadlineSeconds``) as kubectl rollout status, helm 3's ready checker and helm 4's
  kstatus read them; revision annotations; old ReplicaSets kept up to revisionHistoryLimit.
- StatefulSet: ordinal pods (OrderedReady or Parallel), PVCs from volumeClaimTemplates, rolling update
  from the highest ordinal down to the partition, ControllerRevisions, currentRevision/updateRevision.
- DaemonSet: one pod per node that fits (nodeSelector, required node affinity, taints), rolling update by
  maxUnavailable; desiredNumberScheduled / numberReady / updatedNumberScheduled...
- Pods: scheduled onto a node (``base.schedule``: selectors, taints, extended resources such as
  nvidia.com/gpu, PVC binding; Unschedulable + FailedScheduling otherwise), Running + Ready with
  containerStatuses ``ready_delay`` seconds later, Scheduled/Pulled/Created/Started Events. Pods deleted
  by a scale-down (or by anyone) stay terminating (deletionTimestamp, not Ready) for
  ``terminating_delay`` seconds, held by the ``kubeapi-sim/graceful-termination`` finalizer the
  controllers put on the pods they create. ``crash`` names containers that crash-loop
  (CrashLoopBackOff, restartCount, a BackOff Event, log text); so does the pod annotation
  ``kubeapi-sim/crash: "main"``. Pods of Jobs are left to the jobs controller; pods annotated
  ``kubeapi-sim/readiness: external`` are scheduled here and made Ready by the process runtime.
- Volumes: a pod on another node than the pod already using a ReadWriteOnce claim stays Pending with its
  containers ContainerCreating and a FailedAttachVolume ``Multi-Attach error`` Event (``multi_attach``).

Not simulated: minReadySeconds, proportional scaling of several active ReplicaSets, pod disruption
budgets, CPU/memory fit, preemption, probes (readiness is the delay), image pulls, container restarts
other than the crash switch, terminatingReplicas, StatefulSet PVC retention policies.
"""

from __future__ import annotations

import copy
import time

from ..fieldsets import now
from ..store import Event, Store
from . import base
from .base import (
    TERMINATION_FINALIZER,
    annotations,
    controller_of,
    owned_by,
    owner_ref,
    pod_active,
    pod_ready,
    set_condition,
    terminating,
    write_status,
)

CRASH_ANNOTATION = "kubeapi-sim/crash"
CRASH_LOG_ANNOTATION = "kubeapi-sim/crash-log"
OWNED = {"ReplicaSet", "StatefulSet", "DaemonSet"}


class Workloads(base.Reconciler):
    name = "workloads"
    manager = "kubeapi-sim-workloads"

    def __init__(
        self,
        *,
        ready_delay: float = 0.2,
        terminating_delay: float = 0.5,
        crash: tuple | set = (),
        crash_interval: float = 2.0,
        check_resources: bool = True,
        events: bool = True,
        enabled: bool = True,
    ) -> None:
        super().__init__(enabled=enabled)
        self.ready_delay = ready_delay
        self.terminating_delay = terminating_delay
        self.crash = set(crash)
        self.crash_interval = crash_interval
        self.check_resources = check_resources
        self.events.enabled = events
        self._seen: dict[str, float] = {}  # pod uid -> when first seen scheduled
        self._deleting: dict[str, float] = {}  # pod uid -> when first seen terminating
        self._crashes: dict[str, tuple[int, float]] = {}
        self._progress: dict[str, tuple[tuple, float]] = {}

    # ------------------------------------------------------------------ events -> keys
    def observe(self, store: Store, event: Event) -> None:
        kind, ns = event.kind, event.namespace
        if event.group == "apps" and kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
            self.enqueue((kind, ns, event.name))
            ref = controller_of(event.object)
            if kind == "ReplicaSet" and ref and ref.get("kind") == "Deployment":
                self.enqueue(("Deployment", ns, ref["name"]))
        elif event.group == "" and kind == "Pod":
            self.enqueue(("Pod", ns, event.name))
            ref = controller_of(event.object)
            if ref and ref.get("kind") in OWNED:
                self.enqueue((ref["kind"], ns, ref["name"]))
        elif event.group == "" and kind == "Node":
            for ds in store.list("apps/v1", "DaemonSet"):
                self.enqueue(("DaemonSet", ds["metadata"]["namespace"], ds["metadata"]["name"]))
            self._pending_pods(store, None)
        elif (event.group == "" and kind == "PersistentVolumeClaim") or kind == "StorageClass":
            self._pending_pods(store, ns or None)

    def _pending_pods(self, store: Store, ns: str | None) -> None:
        for pod in store.list("v1", "Pod", ns, field_selector="spec.nodeName="):
            self.enqueue(("Pod", pod["metadata"]["namespace"], pod["metadata"]["name"]))

    def reconcile(self, store: Store, key: tuple) -> float | None:
        kind, ns, name = key
        return getattr(self, f"_reconcile_{kind.lower()}")(store, ns, name)

    # ------------------------------------------------------------------ pods (kubelet + scheduler)
    def _reconcile_pod(self, store: Store, ns: str, name: str) -> float | None:
        pod = store.try_get("v1", "Pod", name, ns)
        if pod is None:
            return None
        uid = pod["metadata"]["uid"]
        if terminating(pod):
            return self._terminate(store, pod)
        ref = controller_of(pod)
        status = pod.get("status") or {}
        if (ref and ref.get("kind") == "Job") or status.get("phase") in ("Succeeded", "Failed"):
            return None
        if not pod["spec"].get("nodeName"):
            node, why = base.schedule(store, pod, check_resources=self.check_resources)
            if node is None:
                if (
                    base.write_status(store, pod, base.unschedulable_status(pod, why), self.manager)
                    is not pod
                ):
                    self.events.record(
                        store, pod, "FailedScheduling", why, "Warning", component="default-scheduler"
                    )
                return 2.0
            pod = base.bind(store, pod, node, self.manager, self.events)
        blocked = multi_attach(store, pod)
        if blocked:
            node = store.try_get("v1", "Node", pod["spec"]["nodeName"])
            pending = base.pod_status(
                pod, node=node, phase="Pending", ready=False, started_at=status.get("startTime") or now()
            )
            if write_status(store, pod, pending, self.manager) is not pod:
                self.events.record(
                    store, pod, "FailedAttachVolume", blocked, "Warning", component="attachdetach-controller"
                )
            return 2.0
        if annotations(pod).get(base.READINESS_ANNOTATION) == "external":
            return None
        seen = self._seen.setdefault(uid, time.monotonic())
        left = seen + self.ready_delay - time.monotonic()
        if left > 0:
            return left
        node = store.try_get("v1", "Node", pod["spec"]["nodeName"])
        started = status.get("startTime") or now()
        crashing = self._crashing(pod)
        if crashing:
            return self._crash(store, pod, node, started, crashing)
        new = base.pod_status(pod, node=node, phase="Running", ready=True, started_at=started)
        if new != status:
            first = status.get("phase") != "Running"
            write_status(store, pod, new, self.manager)
            if first:
                self._started_events(store, pod)
        return None

    def _started_events(self, store: Store, pod: dict) -> None:
        host = pod["spec"].get("nodeName")
        for c in pod["spec"].get("containers") or []:
            self.events.record(
                store,
                pod,
                "Pulled",
                f'Container image "{c.get("image", "")}" already present on machine',
                component="kubelet",
                host=host,
            )
            self.events.record(
                store, pod, "Created", f"Created container: {c['name']}", component="kubelet", host=host
            )
            self.events.record(
                store, pod, "Started", f"Started container {c['name']}", component="kubelet", host=host
            )

    def _crashing(self, pod: dict) -> list[str]:
        wanted = set(self.crash) | {
            c.strip() for c in annotations(pod).get(CRASH_ANNOTATION, "").split(",") if c
        }
        return [c["name"] for c in pod["spec"].get("containers") or [] if c["name"] in wanted]

    def _crash(self, store: Store, pod: dict, node: dict | None, started: str, names: list[str]) -> float:
        m = pod["metadata"]
        count, last, stamp = self._crashes.get(m["uid"], (0, 0.0, ""))
        if time.monotonic() - last >= self.crash_interval:
            count, last, stamp = count + 1, time.monotonic(), now()
            self._crashes[m["uid"]] = (count, last, stamp)
        pod_ref = f"{m['name']}_{m['namespace']}({m['uid']})"
        back_off = min(10 * 2 ** (count - 1), 300)
        waiting = {
            n: {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {back_off}s restarting failed container={n} pod={pod_ref}",
            }
            for n in names
        }
        last_state = {
            n: {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": stamp, "finishedAt": stamp}}
            for n in names
        }
        status = base.pod_status(
            pod,
            node=node,
            phase="Running",
            ready=False,
            started_at=started,
            waiting=waiting,
            restarts=dict.fromkeys(names, count),
            last_state=last_state,
        )
        if write_status(store, pod, status, self.manager) is not pod:
            for n in names:
                text = annotations(pod).get(CRASH_LOG_ANNOTATION) or (
                    f"starting {n}\nTraceback (most recent call last):\n"
                    '  File "main.py", line 1, in <module>\n'
                    f"RuntimeError: simulated crash of container {n} (kubeapi-sim crash switch)\n"
                )
                store.set_pod_log(m["namespace"], m["name"], text, container=n)
                store.set_pod_log(m["namespace"], m["name"], text)
                self.events.record(
                    store,
                    pod,
                    "BackOff",
                    f"Back-off restarting failed container {n} in pod {pod_ref}",
                    "Warning",
                    component="kubelet",
                    host=pod["spec"].get("nodeName"),
                )
        return max(0.05, last + self.crash_interval - time.monotonic())

    def _terminate(self, store: Store, pod: dict) -> float | None:
        uid = pod["metadata"]["uid"]
        if TERMINATION_FINALIZER not in (pod["metadata"].get("finalizers") or []):
            return None
        since = self._deleting.setdefault(uid, time.monotonic())
        status = pod.get("status") or {}
        if pod_ready(pod):
            conds = set_condition(status.get("conditions"), "Ready", "False", "", "")
            conds = set_condition(conds, "ContainersReady", "False", "", "")
            write_status(
                store,
                pod,
                {**status, "conditions": [{k: v for k, v in c.items() if v != ""} for c in conds]},
                self.manager,
            )
            for c in pod["spec"].get("containers") or []:
                self.events.record(
                    store,
                    pod,
                    "Killing",
                    f"Stopping container {c['name']}",
                    component="kubelet",
                    host=pod["spec"].get("nodeName"),
                )
        left = since + self.terminating_delay - time.monotonic()
        if left > 0:
            return left
        pod = store.get("v1", "Pod", pod["metadata"]["name"], pod["metadata"]["namespace"])
        pod["metadata"]["finalizers"] = [
            f for f in pod["metadata"].get("finalizers") or [] if f != TERMINATION_FINALIZER
        ]
        store.update(pod, field_manager=self.manager)
        for d in (self._seen, self._deleting, self._crashes):
            d.pop(uid, None)
        return None

    def _delete_pod(self, store: Store, owner: dict, pod: dict) -> None:
        m = pod["metadata"]
        store.delete("v1", "Pod", m["name"], m["namespace"])
        self.events.record(
            store,
            owner,
            "SuccessfulDelete",
            f"Deleted pod: {m['name']}",
            component=f"{owner['kind'].lower()}-controller",
        )

    def _create_pod(
        self, store: Store, owner: dict, template: dict, name: str, labels: dict, node: str | None = None
    ) -> dict:
        pod = base.new_pod(
            owner, template, name, labels=labels, finalizer=self.terminating_delay > 0, node_name=node
        )
        pod = store.create(pod, field_manager=self.manager)
        self.events.record(
            store,
            owner,
            "SuccessfulCreate",
            f"Created pod: {name}",
            component=f"{owner['kind'].lower()}-controller",
        )
        return pod

    def _pods_of(self, store: Store, owner: dict) -> list[dict]:
        uid = owner["metadata"]["uid"]
        return [p for p in store.list("v1", "Pod", owner["metadata"]["namespace"]) if owned_by(p, uid)]

    # ------------------------------------------------------------------ replicasets
    def _reconcile_replicaset(self, store: Store, ns: str, name: str) -> float | None:
        rs = store.try_get("apps/v1", "ReplicaSet", name, ns)
        if rs is None or terminating(rs):
            return None
        want = rs["spec"].get("replicas", 1)
        pods = self._pods_of(store, rs)
        active = [p for p in pods if pod_active(p)]
        tmpl = rs["spec"].get("template") or {}
        for _ in range(want - len(active)):
            active.append(self._create_pod(store, rs, tmpl, f"{name}-{base.rand_suffix()}", {}))
        if len(active) > want:  # unscheduled first, then not ready, then the newest
            victims = sorted(active, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)
            victims.sort(key=lambda p: (bool(p["spec"].get("nodeName")), pod_ready(p)))
            for pod in victims[: len(active) - want]:
                self._delete_pod(store, rs, pod)
                active.remove(pod)
        ready = sum(1 for p in active if pod_ready(p))
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(active),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        write_status(store, rs, status, self.manager)
        return None

    # ------------------------------------------------------------------ deployments
    def _reconcile_deployment(self, store: Store, ns: str, name: str) -> float | None:
        dep = store.try_get("apps/v1", "Deployment", name, ns)
        if dep is None or terminating(dep):
            return None
        spec = dep["spec"]
        replicas = spec.get("replicas", 1)
        template = copy.deepcopy(spec.get("template") or {})
        h = base.safe_hash(template)
        uid = dep["metadata"]["uid"]
        all_rs = [
            rs for rs in store.list("apps/v1", "ReplicaSet", ns) if owned_by(rs, uid) and not terminating(rs)
        ]
        new = next(
            (rs for rs in all_rs if rs["metadata"].get("labels", {}).get("pod-template-hash") == h), None
        )
        old = [rs for rs in all_rs if rs is not new]
        revision = max(
            [int(annotations(rs).get("deployment.kubernetes.io/revision", "0")) for rs in all_rs] or [0]
        )
        strategy = spec.get("strategy") or {}
        ru = strategy.get("rollingUpdate") or {}
        surge = base.int_or_percent(ru.get("maxSurge", "25%"), replicas, round_up=True)
        unavail = base.int_or_percent(ru.get("maxUnavailable", "25%"), replicas, round_up=False)
        if surge == 0 and unavail == 0:
            unavail = 1
        old_active = sum(rs["spec"].get("replicas", 0) for rs in old)
        if spec.get("paused"):
            pass
        elif strategy.get("type") == "Recreate":
            for rs in old:
                self._scale(store, dep, rs, 0)
            old_pods = [p for rs in old for p in self._pods_of(store, rs)]
            if not old_pods:
                new = self._scale(store, dep, new, replicas, template, h, revision)
        elif new is None or not old_active:
            target = replicas if not old_active else min(replicas, max(0, replicas + surge - old_active))
            new = self._scale(store, dep, new, target, template, h, revision)
        else:
            total = old_active + new["spec"].get("replicas", 0)
            up = min(replicas, new["spec"].get("replicas", 0) + max(0, replicas + surge - total))
            new = self._scale(store, dep, new, up, template, h, revision)
            available = sum((rs.get("status") or {}).get("availableReplicas", 0) for rs in old + [new])
            budget = max(0, available - (replicas - unavail))
            for rs in sorted(
                old, key=lambda r: int(annotations(r).get("deployment.kubernetes.io/revision", "0"))
            ):
                cur = rs["spec"].get("replicas", 0)
                unready = max(0, cur - (rs.get("status") or {}).get("availableReplicas", 0))
                down = min(cur, unready + budget)
                budget -= max(0, down - unready)
                if down:
                    self._scale(store, dep, rs, cur - down)
        if new is not None and annotations(dep).get("deployment.kubernetes.io/revision") != annotations(
            new
        ).get("deployment.kubernetes.io/revision"):
            dep = copy.deepcopy(dep)
            dep["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = annotations(
                new
            )["deployment.kubernetes.io/revision"]
            dep = store.update(dep, field_manager=self.manager)
        self._prune_history(store, dep, old)
        return self._deployment_status(store, dep, new, old, replicas, unavail)

    def _scale(
        self,
        store: Store,
        dep: dict,
        rs: dict | None,
        n: int,
        template: dict | None = None,
        h: str = "",
        revision: int = 0,
    ) -> dict:
        dname = dep["metadata"]["name"]
        if rs is None:
            template = copy.deepcopy(template)
            template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
            selector = copy.deepcopy(dep["spec"].get("selector") or {})
            selector.setdefault("matchLabels", {})["pod-template-hash"] = h
            rs_name = f"{dname}-{h}"
            rs = store.create(
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "metadata": {
                        "name": rs_name,
                        "namespace": dep["metadata"]["namespace"],
                        "labels": dict(template["metadata"]["labels"]),
                        "ownerReferences": [owner_ref(dep)],
                        "annotations": {
                            "deployment.kubernetes.io/revision": str(revision + 1),
                            "deployment.kubernetes.io/desired-replicas": str(dep["spec"].get("replicas", 1)),
                            "deployment.kubernetes.io/max-replicas": str(dep["spec"].get("replicas", 1)),
                        },
                    },
                    "spec": {"replicas": n, "selector": selector, "template": template},
                },
                field_manager=self.manager,
            )
            self.events.record(
                store,
                dep,
                "ScalingReplicaSet",
                f"Scaled up replica set {rs_name} from 0 to {n}",
                component="deployment-controller",
            )
            return rs
        cur = rs["spec"].get("replicas", 0)
        if cur == n:
            return rs
        rs = copy.deepcopy(rs)
        rs["spec"]["replicas"] = n
        rs = store.update(rs, field_manager=self.manager)
        self.events.record(
            store,
            dep,
            "ScalingReplicaSet",
            f"Scaled {'up' if n > cur else 'down'} replica set {rs['metadata']['name']} from {cur} to {n}",
            component="deployment-controller",
        )
        return rs

    def _prune_history(self, store: Store, dep: dict, old: list[dict]) -> None:
        limit = dep["spec"].get("revisionHistoryLimit", 10)
        idle = [
            rs
            for rs in old
            if not rs["spec"].get("replicas") and not (rs.get("status") or {}).get("replicas")
        ]
        idle.sort(key=lambda r: int(annotations(r).get("deployment.kubernetes.io/revision", "0")))
        for rs in idle[: max(0, len(idle) - limit)]:
            store.delete("apps/v1", "ReplicaSet", rs["metadata"]["name"], rs["metadata"]["namespace"])

    def _deployment_status(
        self, store: Store, dep: dict, new: dict | None, old: list[dict], replicas: int, unavail: int
    ) -> float | None:
        rss = [
            store.try_get("apps/v1", "ReplicaSet", rs["metadata"]["name"], rs["metadata"]["namespace"])
            for rs in old + ([new] if new else [])
        ]
        rss = [rs for rs in rss if rs]

        def st(rs: dict, k: str) -> int:
            return (rs.get("status") or {}).get(k, 0)

        total = sum(st(rs, "replicas") for rs in rss)
        updated = st(rss[-1], "replicas") if new and rss else 0
        ready = sum(st(rs, "readyReplicas") for rs in rss)
        available = sum(st(rs, "availableReplicas") for rs in rss)
        wanted = sum(rs["spec"].get("replicas", 0) for rs in rss)
        status = dict(dep.get("status") or {})
        status.update(
            observedGeneration=dep["metadata"].get("generation", 1),
            replicas=total,
            updatedReplicas=updated,
            readyReplicas=ready,
            availableReplicas=available,
            unavailableReplicas=max(0, wanted - available),
        )
        for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"):
            if not status[k]:
                del status[k]  # Go omitempty, as a real server shows them
        conds = status.get("conditions")
        if available >= replicas - unavail:
            conds = set_condition(
                conds,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                update_time=True,
            )
        else:
            conds = set_condition(
                conds,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                update_time=True,
            )
        rs_name = new["metadata"]["name"] if new else ""
        complete = updated == replicas and total == replicas and available == replicas
        uid = dep["metadata"]["uid"]
        sig = (rs_name, total, updated, ready, available)
        prev = self._progress.get(uid)
        t = time.monotonic()
        if prev is None or prev[0] != sig:
            self._progress[uid] = prev = (sig, t)
        deadline = dep["spec"].get("progressDeadlineSeconds", 600)
        again = None
        if dep["spec"].get("paused"):
            conds = set_condition(
                conds, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", update_time=True
            )
        elif complete:
            conds = set_condition(
                conds,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
                update_time=True,
            )
        elif t - prev[1] > deadline:
            conds = set_condition(
                conds,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                update_time=True,
            )
        else:
            conds = set_condition(
                conds,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{rs_name}" is progressing.',
                update_time=True,
            )
            again = max(0.05, deadline - (t - prev[1]) + 0.01)
        status["conditions"] = sorted(conds, key=lambda c: c["type"] != "Available")
        write_status(store, dep, status, self.manager)
        return again

    # ------------------------------------------------------------------ statefulsets
    def _reconcile_statefulset(self, store: Store, ns: str, name: str) -> float | None:
        sts = store.try_get("apps/v1", "StatefulSet", name, ns)
        if sts is None or terminating(sts):
            return None
        spec = sts["spec"]
        replicas = spec.get("replicas", 1)
        template = spec.get("template") or {}
        rev = f"{name}-{base.safe_hash(template)}"
        self._controller_revision(store, sts, rev, template)
        pods = {p["metadata"]["name"]: p for p in self._pods_of(store, sts)}
        label = "controller-revision-hash"
        parallel = spec.get("podManagementPolicy") == "Parallel"
        busy = any(terminating(p) for p in pods.values())
        for i in range(replicas):
            pname = f"{name}-{i}"
            if pname in pods:
                continue
            if not parallel and (
                busy or not all(f"{name}-{j}" in pods and pod_ready(pods[f"{name}-{j}"]) for j in range(i))
            ):
                break
            tmpl = self._with_claims(store, sts, template, i)
            pods[pname] = self._create_pod(
                store,
                sts,
                tmpl,
                pname,
                {
                    label: rev,
                    "statefulset.kubernetes.io/pod-name": pname,
                    "apps.kubernetes.io/pod-index": str(i),
                },
            )
            if not parallel:
                break
        extra = sorted(
            (p for n, p in pods.items() if int(n.rsplit("-", 1)[1]) >= replicas and not terminating(p)),
            key=lambda p: -int(p["metadata"]["name"].rsplit("-", 1)[1]),
        )
        for pod in extra[: None if parallel else 1]:
            self._delete_pod(store, sts, pod)
        strategy = spec.get("updateStrategy") or {}
        partition = (strategy.get("rollingUpdate") or {}).get("partition", 0)
        live = [p for n, p in pods.items() if int(n.rsplit("-", 1)[1]) < replicas]
        if (
            strategy.get("type", "RollingUpdate") == "RollingUpdate"
            and not extra
            and len(live) == replicas
            and all(pod_ready(p) and not terminating(p) for p in live)
        ):
            stale = sorted(
                (
                    p
                    for p in live
                    if p["metadata"]["labels"].get(label) != rev
                    and int(p["metadata"]["name"].rsplit("-", 1)[1]) >= partition
                ),
                key=lambda p: -int(p["metadata"]["name"].rsplit("-", 1)[1]),
            )
            if stale:
                self._delete_pod(store, sts, stale[0])
        active = [p for p in live if not terminating(p)]
        updated = sum(1 for p in active if p["metadata"]["labels"].get(label) == rev)
        ready = sum(1 for p in active if pod_ready(p))
        status = dict(sts.get("status") or {})
        current = status.get("currentRevision") or rev
        if updated == replicas and ready == replicas:
            current = rev
        status.update(
            observedGeneration=sts["metadata"].get("generation", 1),
            replicas=len(active),
            readyReplicas=ready,
            availableReplicas=ready,
            updatedReplicas=updated,
            currentReplicas=sum(1 for p in active if p["metadata"]["labels"].get(label) == current),
            currentRevision=current,
            updateRevision=rev,
            collisionCount=0,
        )
        write_status(store, sts, status, self.manager)
        return None

    def _controller_revision(self, store: Store, owner: dict, rev: str, template: dict) -> dict:
        ns = owner["metadata"]["namespace"]
        cr = store.try_get("apps/v1", "ControllerRevision", rev, ns)
        if cr is None:
            n = 1 + max(
                [
                    c.get("revision", 0)
                    for c in store.list("apps/v1", "ControllerRevision", ns)
                    if owned_by(c, owner["metadata"]["uid"])
                ]
                or [0]
            )
            cr = store.create(
                {
                    "apiVersion": "apps/v1",
                    "kind": "ControllerRevision",
                    "metadata": {
                        "name": rev,
                        "namespace": ns,
                        "ownerReferences": [owner_ref(owner)],
                        "labels": dict((owner["spec"].get("selector") or {}).get("matchLabels") or {}),
                    },
                    "data": {"spec": {"template": {**template, "$patch": "replace"}}},
                    "revision": n,
                },
                field_manager=self.manager,
            )
        return cr

    def _with_claims(self, store: Store, sts: dict, template: dict, ordinal: int) -> dict:
        tmpl = copy.deepcopy(template)
        ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
        for vct in sts["spec"].get("volumeClaimTemplates") or []:
            claim = f"{vct['metadata']['name']}-{name}-{ordinal}"
            if store.try_get("v1", "PersistentVolumeClaim", claim, ns) is None:
                pvc = copy.deepcopy(vct)
                pvc.update(apiVersion="v1", kind="PersistentVolumeClaim")
                pvc["metadata"] = {
                    "name": claim,
                    "namespace": ns,
                    "labels": dict((sts["spec"].get("selector") or {}).get("matchLabels") or {}),
                }
                pvc.pop("status", None)
                store.create(pvc, field_manager=self.manager)
            vols = tmpl.setdefault("spec", {}).setdefault("volumes", [])
            vols[:] = [v for v in vols if v.get("name") != vct["metadata"]["name"]]
            vols.append({"name": vct["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}})
        return tmpl

    # ------------------------------------------------------------------ daemonsets
    def _reconcile_daemonset(self, store: Store, ns: str, name: str) -> float | None:
        ds = store.try_get("apps/v1", "DaemonSet", name, ns)
        if ds is None or terminating(ds):
            return None
        template = ds["spec"].get("template") or {}
        h = base.safe_hash(template)
        self._controller_revision(store, ds, f"{name}-{h}", template)
        nodes = [
            n for n in base.list_nodes(store) if base.node_mismatch(n, template.get("spec") or {}) is None
        ]
        eligible = {n["metadata"]["name"] for n in nodes}
        pods = list(self._pods_of(store, ds))
        by_node: dict[str, list[dict]] = {}
        for p in pods:
            by_node.setdefault(p["spec"].get("nodeName", ""), []).append(p)
        for p in pods:
            if p["spec"].get("nodeName") not in eligible and not terminating(p):
                self._delete_pod(store, ds, p)
        for node in sorted(eligible):
            if not any(not terminating(p) for p in by_node.get(node, [])):
                p = self._create_pod(
                    store,
                    ds,
                    template,
                    f"{name}-{base.rand_suffix()}",
                    {
                        "controller-revision-hash": h,
                        "pod-template-generation": str(ds["metadata"].get("generation", 1)),
                    },
                    node=node,
                )
                by_node.setdefault(node, []).append(p)
        active = [p for n in eligible for p in by_node.get(n, []) if not terminating(p)]
        strategy = ds["spec"].get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            max_unavail = (
                base.int_or_percent(
                    (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1),
                    len(eligible),
                    round_up=True,
                )
                or 1
            )
            unavailable = len(eligible) - sum(1 for p in active if pod_ready(p))
            stale = [p for p in active if p["metadata"]["labels"].get("controller-revision-hash") != h]
            ready_stale = [p for p in stale if pod_ready(p)]
            for p in [p for p in stale if not pod_ready(p)] + ready_stale[
                : max(0, max_unavail - unavailable)
            ]:
                self._delete_pod(store, ds, p)
        ready = sum(1 for p in active if pod_ready(p))
        status = {
            "observedGeneration": ds["metadata"].get("generation", 1),
            "desiredNumberScheduled": len(eligible),
            "currentNumberScheduled": len(active),
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "updatedNumberScheduled": sum(
                1 for p in active if p["metadata"]["labels"].get("controller-revision-hash") == h
            ),
        }
        if len(eligible) - ready:
            status["numberUnavailable"] = len(eligible) - ready
        write_status(store, ds, status, self.manager)
        return None


def multi_attach(store: Store, pod: dict) -> str | None:
    """The attach/detach controller's Multi-Attach refusal, or None.

    A ReadWriteOnce volume attaches to one node: a pod on another node than an active pod already using the
    same RWO claim stays Pending/ContainerCreating with a FailedAttachVolume event (pods on the same node
    share it, as on a real cluster). ReadWriteMany/ReadOnlyMany claims attach anywhere. Not simulated: the
    detach delay after the first pod goes, ReadWriteOncePod (refused by the scheduler on a real cluster).
    """
    ns, host = pod["metadata"]["namespace"], pod["spec"].get("nodeName")
    claims = [
        (v.get("persistentVolumeClaim") or {}).get("claimName") for v in pod["spec"].get("volumes") or []
    ]
    for claim in [c for c in claims if c]:
        pvc = store.try_get("v1", "PersistentVolumeClaim", claim, ns)
        if pvc is None:
            continue
        modes = (
            (pvc.get("status") or {}).get("accessModes") or (pvc.get("spec") or {}).get("accessModes") or []
        )
        if "ReadWriteMany" in modes or "ReadOnlyMany" in modes or "ReadWriteOnce" not in modes:
            continue
        users = [
            p
            for p in store.list("v1", "Pod", ns)
            if base.pod_active(p)
            and p["spec"].get("nodeName")
            and claim
            in [
                (v.get("persistentVolumeClaim") or {}).get("claimName")
                for v in p["spec"].get("volumes") or []
            ]
        ]
        running = [p for p in users if (p.get("status") or {}).get("phase") == "Running"]
        first = min(
            running or users or [pod],
            key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]),
        )
        holder = first["spec"].get("nodeName")
        if holder and holder != host:
            volume = (pvc.get("spec") or {}).get("volumeName") or claim
            names = ", ".join(sorted(p["metadata"]["name"] for p in users if p["spec"]["nodeName"] == holder))
            return f'Multi-Attach error for volume "{volume}" Volume is already used by pod(s) {names}'
    return None
