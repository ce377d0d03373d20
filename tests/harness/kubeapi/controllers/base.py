"""What the controllers share: a due-queue reconciler, ownership and condition helpers, core/v1 Events,
pod status builders and a small scheduler.

A controller is a ``Reconciler``: ``observe(store, event)`` maps a change to keys (``enqueue``), and
``reconcile(store, key)`` makes one object right, returning seconds after which to look again (or None).
Due keys are reconciled on the periodic ticks (``every``), so a burst of events for one object costs one
reconcile; writes that change nothing are no-ops in the store and emit no event, so a level-triggered
reconcile settles.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import secrets
import time
from collections.abc import Hashable, Iterable

from ..errors import ApiError
from ..fieldsets import now
from ..store import Event, Store

TERMINATION_FINALIZER = "kubeapi-sim/graceful-termination"  # holds a deleted pod for terminating_delay
READINESS_ANNOTATION = "kubeapi-sim/readiness"  # "external": the process runtime sets Ready
VIRTUAL_NODE = "kubeapi-sim-node"  # where pods go when no Node objects exist
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes uses for name suffixes
_pod_ips = itertools.count(2)


def rand_suffix(n: int = 5) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def safe_hash(obj: object, n: int = 10) -> str:
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:n])


def next_pod_ip() -> str:
    n = next(_pod_ips)
    return f"10.244.{n // 250 % 250}.{n % 250 + 1}"


class Reconciler:
    """Base controller: ``sim.add_controller(ctl, every=ctl.every, name=ctl.name)``."""

    name = "controller"
    manager = "kubeapi-sim-controller"
    every = 0.05

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._due: dict[Hashable, float] = {}
        self.events = EventRecorder(self.manager)

    def __call__(self, store: Store, event: Event | None) -> None:
        if not self.enabled:
            return
        if event is not None:  # only note what changed: a burst of events costs one reconcile per key,
            self.observe(store, event)  # on the next tick
            return
        self.tick(store)
        self.run_due(store)

    def observe(self, store: Store, event: Event) -> None:  # pragma: no cover - overridden
        pass

    def tick(self, store: Store) -> None:
        pass

    def reconcile(self, store: Store, key: Hashable) -> float | None:  # pragma: no cover - overridden
        return None

    def enqueue(self, key: Hashable, delay: float = 0.0) -> None:
        due = time.monotonic() + delay
        if key not in self._due or due < self._due[key]:
            self._due[key] = due

    def run_due(self, store: Store) -> None:
        t = time.monotonic()
        error: Exception | None = None
        for key in [k for k, due in self._due.items() if due <= t]:
            self._due.pop(key, None)
            try:
                again = self.reconcile(store, key)
            except ApiError as exc:  # 409 on a stale read, 404 when something vanished meanwhile
                again = 0.05 if exc.code in (409, 429, 500, 503) else (0.5 if exc.code != 404 else None)
            except Exception as exc:
                again, error = 1.0, error or exc
            if again is not None:
                self.enqueue(key, again)
        if error is not None:
            raise error


# ---------------------------------------------------------------------------------------------- objects
def meta(obj: dict) -> dict:
    return obj.setdefault("metadata", {})


def owner_ref(owner: dict, *, controller: bool = True) -> dict:
    ref = {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
    }
    if controller:
        ref.update(controller=True, blockOwnerDeletion=True)
    return ref


def controller_of(obj: dict) -> dict | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owned_by(obj: dict, uid: str) -> bool:
    return any(r.get("uid") == uid for r in obj.get("metadata", {}).get("ownerReferences") or [])


def terminating(obj: dict) -> bool:
    return bool(obj.get("metadata", {}).get("deletionTimestamp"))


def annotations(obj: dict) -> dict:
    return obj.get("metadata", {}).get("annotations") or {}


def template_annotations(obj: dict) -> dict:
    return ((obj.get("spec") or {}).get("template") or {}).get("metadata", {}).get("annotations") or {}


def kind_available(store: Store, api_version: str, kind: str) -> bool:
    return store.registry.by_kind(api_version, kind) is not None


def write_status(store: Store, obj: dict, status: dict, manager: str) -> dict | None:
    """Replace ``obj``'s status when it differs (409 on a stale ``obj``, like an informer's copy)."""
    if obj.get("status") == status:
        return obj
    new = dict(obj)
    new["status"] = status
    return store.update_status(new, field_manager=manager)


def set_condition(
    conditions: list[dict] | None,
    ctype: str,
    status: str,
    reason: str,
    message: str,
    *,
    update_time: bool = False,
    **extra: object,
) -> list[dict]:
    """Conditions with ``ctype`` set; timestamps only move when status (or reason/message) changes."""
    out = [dict(c) for c in conditions or []]
    old = next((c for c in out if c.get("type") == ctype), None)
    t = now()
    new = {"type": ctype, "status": status, "reason": reason, "message": message, **extra}
    if update_time:
        new["lastUpdateTime"] = t
    new["lastTransitionTime"] = t
    if old is not None:
        if old.get("status") == status:
            new["lastTransitionTime"] = old.get("lastTransitionTime", t)
        if update_time and (old.get("status"), old.get("reason"), old.get("message")) == (
            status,
            reason,
            message,
        ):
            new["lastUpdateTime"] = old.get("lastUpdateTime", t)
        out[out.index(old)] = new
    else:
        out.append(new)
    return out


def condition(obj: dict, ctype: str) -> dict | None:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == ctype), None
    )


def int_or_percent(value: object, total: int, *, round_up: bool) -> int:
    if value is None:
        return 0
    if isinstance(value, str) and value.endswith("%"):
        frac = int(value[:-1]) * total
        return -(-frac // 100) if round_up else frac // 100
    return int(value)


# ---------------------------------------------------------------------------------------------- events
class EventRecorder:
    """core/v1 Events like a controller's recorder: same (object, reason, message) bumps ``count``."""

    def __init__(self, component: str) -> None:
        self.component = component
        self.enabled = True
        self._seen: dict[tuple, str] = {}

    def record(
        self,
        store: Store,
        obj: dict,
        reason: str,
        message: str,
        type_: str = "Normal",
        *,
        component: str | None = None,
        host: str | None = None,
    ) -> None:
        if not self.enabled or not kind_available(store, "v1", "Event"):
            return
        m = obj["metadata"]
        ns = m.get("namespace") or "default"
        key = (m.get("uid"), reason, message)
        t = now()
        name = self._seen.get(key)
        existing = store.try_get("v1", "Event", name, ns) if name else None
        try:
            if existing is not None:
                existing.update(count=existing.get("count", 1) + 1, lastTimestamp=t)
                store.update(existing, field_manager=self.component)
                return
            name = f"{m['name']}.{time.time_ns():x}"[:253]
            source = {"component": component or self.component}
            if host:
                source["host"] = host
            store.create(
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": name, "namespace": ns},
                    "involvedObject": {
                        "apiVersion": obj.get("apiVersion"),
                        "kind": obj.get("kind"),
                        "name": m["name"],
                        "namespace": m.get("namespace"),
                        "uid": m.get("uid"),
                        "resourceVersion": m.get("resourceVersion"),
                    },
                    "reason": reason,
                    "message": message,
                    "type": type_,
                    "count": 1,
                    "firstTimestamp": t,
                    "lastTimestamp": t,
                    "eventTime": None,
                    "source": source,
                    "reportingComponent": component or self.component,
                    "reportingInstance": host or "kubeapi-sim",
                },
                field_manager=self.component,
            )
            self._seen[key] = name
        except ApiError:  # namespace terminating / gone: events are best effort, as on a cluster
            pass


# ---------------------------------------------------------------------------------------------- pods
def pod_ready(pod: dict) -> bool:
    c = condition(pod, "Ready")
    return bool(c and c.get("status") == "True")


def pod_active(pod: dict) -> bool:
    """Counted by its controller: not terminating and not finished."""
    return not terminating(pod) and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def new_pod(
    owner: dict,
    template: dict,
    name: str,
    *,
    labels: dict | None = None,
    finalizer: bool = False,
    node_name: str | None = None,
) -> dict:
    tmpl = copy.deepcopy(template or {})
    tm = tmpl.get("metadata") or {}
    spec = tmpl.get("spec") or {}
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    if node_name:
        spec["nodeName"] = node_name
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": {**(tm.get("labels") or {}), **(labels or {})},
            "ownerReferences": [owner_ref(owner)],
        },
        "spec": spec,
        "status": {"phase": "Pending", "qosClass": qos_class(spec)},
    }
    if tm.get("annotations"):
        pod["metadata"]["annotations"] = dict(tm["annotations"])
    if finalizer:
        pod["metadata"]["finalizers"] = [TERMINATION_FINALIZER]
    return pod


def qos_class(spec: dict) -> str:
    res = [c.get("resources") or {} for c in spec.get("containers") or []]
    if not any(r.get("requests") or r.get("limits") for r in res):
        return "BestEffort"
    if all(
        r.get("limits", {}).get(k) and (r.get("requests") or r["limits"]).get(k) == r["limits"][k]
        for r in res
        for k in ("cpu", "memory")
    ):
        return "Guaranteed"
    return "Burstable"


def pod_status(
    pod: dict,
    *,
    node: dict | None,
    phase: str,
    ready: bool,
    started_at: str,
    waiting: dict[str, dict] | None = None,
    terminated: dict[str, dict] | None = None,
    restarts: dict[str, int] | None = None,
    last_state: dict[str, dict] | None = None,
    ip: str | None = None,
) -> dict:
    """A kubelet-shaped pod status. ``waiting``/``terminated``: container name -> state detail."""
    old = pod.get("status") or {}
    spec = pod.get("spec") or {}
    waiting, terminated = waiting or {}, terminated or {}
    restarts, last_state = restarts or {}, last_state or {}
    containers = []
    for c in spec.get("containers") or []:
        name = c["name"]
        if name in terminated:
            state, c_ready = {"terminated": terminated[name]}, False
        elif name in waiting:
            state, c_ready = {"waiting": waiting[name]}, False
        elif phase == "Running":
            state, c_ready = {"running": {"startedAt": started_at}}, ready
        else:
            state, c_ready = {"waiting": {"reason": "ContainerCreating"}}, False
        containers.append(
            {
                "name": name,
                "image": c.get("image", ""),
                "imageID": "",
                "ready": c_ready,
                "started": "running" in state,
                "restartCount": restarts.get(name, 0),
                "state": state,
                "lastState": last_state.get(name, {}),
                **(
                    {"containerID": f"containerd://{safe_hash([pod['metadata'].get('uid'), name], 32)}"}
                    if "waiting" not in state or restarts.get(name)
                    else {}
                ),
            }
        )
    finished = phase in ("Succeeded", "Failed")
    why = (
        {"reason": "PodFailed" if phase == "Failed" else "PodCompleted"}
        if finished
        else ({} if ready else {"reason": "ContainersNotReady"})
    )
    conds = old.get("conditions")
    conds = set_condition(
        conds, "PodReadyToStartContainers", "True" if phase != "Pending" else "False", "", ""
    )
    conds = set_condition(conds, "Initialized", "True", "", "")
    conds = set_condition(conds, "Ready", "True" if ready else "False", why.get("reason", ""), "")
    conds = set_condition(conds, "ContainersReady", "True" if ready else "False", why.get("reason", ""), "")
    conds = set_condition(conds, "PodScheduled", "True", "", "")
    conds = [{k: v for k, v in c.items() if v != ""} for c in conds]
    host_ip = _node_ip(node)
    pod_ip = ip or old.get("podIP") or next_pod_ip()
    status = {
        "phase": phase,
        "conditions": conds,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": old.get("startTime") or started_at,
        "qosClass": old.get("qosClass") or qos_class(spec),
        "containerStatuses": containers,
    }
    init = spec.get("initContainers") or []
    if init:
        status["initContainerStatuses"] = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "restartCount": 0,
                "ready": c.get("restartPolicy") == "Always" and phase == "Running",
                "started": c.get("restartPolicy") == "Always" and phase == "Running",
                "state": (
                    {"running": {"startedAt": started_at}}
                    if c.get("restartPolicy") == "Always"
                    else {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": started_at,
                            "finishedAt": started_at,
                        }
                    }
                ),
            }
            for c in init
        ]
    return status


def unschedulable_status(pod: dict, message: str) -> dict:
    old = pod.get("status") or {}
    conds = set_condition(old.get("conditions"), "PodScheduled", "False", "Unschedulable", message)
    return {
        "phase": "Pending",
        "conditions": conds,
        "qosClass": old.get("qosClass") or qos_class(pod["spec"]),
    }


def _node_ip(node: dict | None) -> str:
    for a in ((node or {}).get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return a["address"]
    return "10.0.0.1"


# ---------------------------------------------------------------------------------------------- scheduling
def pod_requests(spec: dict) -> dict[str, int]:
    """Extended resources (names with a '/', e.g. nvidia.com/gpu) a pod asks for; requests default to
    limits."""
    total: dict[str, int] = {}
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        for k, v in {**(res.get("limits") or {}), **(res.get("requests") or {})}.items():
            if "/" in k:
                total[k] = total.get(k, 0) + int(str(v))
    for c in spec.get("initContainers") or []:
        for k, v in ((c.get("resources") or {}).get("limits") or {}).items():
            if "/" in k:
                total[k] = max(total.get(k, 0), int(str(v)))
    return total


def _tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expr_ok(labels: dict, e: dict) -> bool:
    op, key, values = e.get("operator"), e.get("key"), e.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels:
        a, b = int(labels[key]), int(values[0])
        return a > b if op == "Gt" else a < b
    return False


def node_mismatch(node: dict, spec: dict) -> str | None:
    """Why ``spec`` cannot go to ``node`` (selector, affinity, taints, cordon), or None."""
    labels = node["metadata"].get("labels") or {}
    if (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable"
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return "node(s) didn't match Pod's node affinity/selector"
    terms = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms") or []
    fields = {"metadata.name": node["metadata"]["name"]}
    if terms and not any(
        all(_expr_ok(labels, e) for e in t.get("matchExpressions") or [])
        and all(_expr_ok(fields, e) for e in t.get("matchFields") or [])
        for t in terms
    ):
        return "node(s) didn't match Pod's node affinity/selector"
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
            spec.get("tolerations") or [], taint
        ):
            value = f": {taint['value']}" if taint.get("value") else ""
            return f"node(s) had untolerated taint {{{taint['key']}{value}}}"
    return None


def list_nodes(store: Store) -> list[dict]:
    nodes = store.list("v1", "Node")
    if nodes:
        return nodes
    return [
        {
            "metadata": {"name": VIRTUAL_NODE, "labels": {"kubernetes.io/hostname": VIRTUAL_NODE}},
            "spec": {},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]},
        }
    ]


def pvc_blocker(store: Store, pod: dict) -> str | None:
    """Why the pod's PersistentVolumeClaims keep it from scheduling, or None."""
    ns = pod["metadata"]["namespace"]
    for vol in pod["spec"].get("volumes") or []:
        claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
        if not claim:
            continue
        pvc = store.try_get("v1", "PersistentVolumeClaim", claim, ns)
        if pvc is None:
            return f'persistentvolumeclaim "{claim}" not found'
        if terminating(pvc):
            return f'persistentvolumeclaim "{claim}" is being deleted'
        if (pvc.get("status") or {}).get("phase") == "Bound":
            continue
        sc_name = (pvc.get("spec") or {}).get("storageClassName")
        sc = store.try_get("storage.k8s.io/v1", "StorageClass", sc_name) if sc_name else None
        if not sc or sc.get("volumeBindingMode") != "WaitForFirstConsumer":
            return "pod has unbound immediate PersistentVolumeClaims"
    return None


def schedule(store: Store, pod: dict, *, check_resources: bool = True) -> tuple[dict | None, str]:
    """Pick a node for ``pod`` (fewest pods among those that fit) or say why none fits, as the scheduler
    would."""
    blocker = pvc_blocker(store, pod)
    nodes = list_nodes(store)
    if blocker:
        return None, f"0/{len(nodes)} nodes are available: {blocker}."
    want = pod_requests(pod["spec"]) if check_resources else {}
    pods = (
        [p for p in store.list("v1", "Pod") if p["spec"].get("nodeName") and pod_active(p)] if nodes else []
    )
    reasons: dict[str, int] = {}
    fits = []
    for node in nodes:
        why = node_mismatch(node, pod["spec"])
        if why is None and want:
            alloc = (node.get("status") or {}).get("allocatable") or {}
            on_node = [p for p in pods if p["spec"]["nodeName"] == node["metadata"]["name"]]
            for res, n in sorted(want.items()):
                used = sum(pod_requests(p["spec"]).get(res, 0) for p in on_node)
                if int(str(alloc.get(res, "0"))) - used < n:
                    why = f"Insufficient {res}"
                    break
        if why is None:
            fits.append(node)
        else:
            reasons[why] = reasons.get(why, 0) + 1
    if fits:
        count = {n["metadata"]["name"]: 0 for n in fits}
        for p in pods:
            if p["spec"]["nodeName"] in count:
                count[p["spec"]["nodeName"]] += 1
        return min(fits, key=lambda n: (count[n["metadata"]["name"]], n["metadata"]["name"])), ""
    detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
    return None, (
        f"0/{len(nodes)} nodes are available: {detail}. preemption: 0/{len(nodes)} nodes are "
        f"available: {len(nodes)} Preemption is not helpful for scheduling."
    )


def bind(store: Store, pod: dict, node: dict, manager: str, events: EventRecorder) -> dict:
    """Set ``spec.nodeName`` and PodScheduled, with the scheduler's Scheduled event."""
    pod = copy.deepcopy(pod)
    pod["spec"]["nodeName"] = node["metadata"]["name"]
    pod = store.update(pod, field_manager=manager)
    conds = set_condition((pod.get("status") or {}).get("conditions"), "PodScheduled", "True", "", "")
    status = {
        **(pod.get("status") or {}),
        "conditions": [{k: v for k, v in c.items() if v != ""} for c in conds],
    }
    pod = write_status(store, pod, status, manager)
    m = pod["metadata"]
    events.record(
        store,
        pod,
        "Scheduled",
        f"Successfully assigned {m['namespace']}/{m['name']} to {node['metadata']['name']}",
        component="default-scheduler",
    )
    return pod


def matches(labels: dict, selector: dict | None) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against labels; an empty selector matches nothing."""
    if not selector:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_expr_ok(labels, e) for e in selector.get("matchExpressions") or [])


def keys_of(objs: Iterable[dict], kind: str) -> list[tuple[str, str, str]]:
    return [(kind, o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objs]
