"""The kube target's roll_out stage: render, server-side apply, wait for the readiness contract
(runtime/targets/kube/readiness.py), record the revision in the ledger. Same spec: no new revision and no
apply. A change of the graph's component set replaces the graph (bridged through serving.route when there is
one). Also the other graphs of a deployment (a canary's candidate): staged, deleted.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from runtime import render
from runtime.domain import naming
from runtime.domain.revisions import Revision, current, next_number, now_iso
from runtime.domain.rollout import (
    DGD_NAME_LABEL,
)
from runtime.errors import PermanentError, RolloutFailed
from runtime.gateways.kube import covered
from runtime.targets.base import Rollout
from runtime.targets.kube import frontend, ledger, readiness, teardown
from runtime.targets.kube import route as kube_route
from runtime.targets.kube.common import (
    BRIDGE,
    CACHED_ANNOTATION,
    DGD_API,
    DGD_KIND,
    TRACK_KEY,
    _timeout,
    component_set,
    log,
)

if TYPE_CHECKING:
    from runtime.spec.serving import Engine
    from runtime.targets.kube.backend import KubeBackend


def roll_out(
    kb: KubeBackend,
    engine: Engine,
    model: Any = None,
    *,
    reason: str = "deploy",
    started_by: str = "dynadeploy",
) -> Rollout:
    spec = kb.spec
    t0 = time.monotonic()
    check_cache(kb)
    revisions = kb.revisions()
    serving = current(revisions)

    def desired(number: int) -> dict:
        return render.render_dgd(spec, revision=number, provider=kb.caps, engine=engine)

    live = kb.kube.get(DGD_API, DGD_KIND, kb.dgd_name, kb.ns)
    if (
        serving is not None
        and serving.rendered
        and serving.rendered[0] == desired(serving.number)
        and live is not None
        and covered(live, serving.rendered[0])
    ):
        ready = readiness.judge(kb, live)
        if ready[0]:
            kube_route.ensure(kb.kube, spec)
            return Rollout(
                serving.number,
                changed=False,
                endpoint=frontend.lb_url(kb),
                seconds=time.monotonic() - t0,
                details={"dgd": kb.dgd_name, "polls": 0, "observed": ready[1]},
            )
    latest = revisions[-1] if revisions else None
    reuse = next(
        (
            r
            for r in (latest, serving)
            if r is not None
            and r.status in ("pending", "failed", "serving")
            and r.rendered
            and r.rendered[0] == desired(r.number)
        ),
        None,
    )
    number = reuse.number if reuse is not None else next_number(revisions)
    dgd = desired(number)
    revision = reuse or Revision(
        number=number,
        spec_hash=naming.spec_hash(spec),
        spec=spec.canonical_dict(),
        created_at=now_iso(),
        reason=reason,
        started_by=started_by,
        status="pending",
        model={"id": spec.model.id, "revision": spec.model.revision},
        versions=ledger.versions(kb, engine),
        rendered=[dgd],
    )
    if reuse is None or reuse.status == "failed":
        revision.status = "pending" if revision.status != "serving" else revision.status
        ledger.put_revision(kb, revision)
    bridge, replaced = None, live is not None and component_set(live) != component_set(dgd)
    if replaced and live is not None:  # (replaced says live is not None)
        bridge = replace_graph(kb, live, dgd, number, engine)
        live = None
    if live is None or not covered(live, dgd):
        kb.kube.apply(keep_adapter_replicas(dgd, live), force=True)
    try:
        polls, observed = readiness.wait_ready(kb, number)
    except RolloutFailed:
        if revision.status != "serving":
            revision.status = "failed"
            ledger.put_revision(kb, revision)
        raise
    for rev in revisions:
        if rev.status == "serving" and rev.number != number:
            rev.status = "superseded"
            ledger.put_revision(kb, rev)
    # Clients entering through serving.route reach the new revision (and only it: a candidate's
    # share from a canary ends here, the candidate being what was just rolled out).
    kube_route.ensure(kb.kube, spec)
    note = ""
    if bridge is None:  # a bridge left by an earlier run that failed after the route moved to it
        left = kb.kube.get(DGD_API, DGD_KIND, naming.dgd_name(spec, canary=True), kb.ns)
        if left is not None and (left["metadata"].get("labels") or {}).get(TRACK_KEY) == BRIDGE:
            bridge = kb.graph(left["metadata"]["name"])
    if bridge is not None:  # step 4 of the replacement: the bridge graph goes once the route left it
        log.info("replacing %s/%s: deleting the bridge graph %s", kb.ns, kb.dgd_name, bridge.dgd_name)
        bridge.delete_graph()
        note = f"graph replaced (component set changed; bridged by {bridge.dgd_name})"
    elif replaced:
        note = "graph replaced (component set changed; deleted, then created)"
    revision.status = "serving"
    ledger.put_revision(kb, revision)
    return Rollout(
        number,
        changed=True,
        endpoint=frontend.lb_url(kb),
        note=note,
        seconds=time.monotonic() - t0,
        details={"dgd": kb.dgd_name, "polls": polls, "observed": observed},
    )


def replacement_plan(kb: KubeBackend, live: dict, dgd: dict) -> list[str]:
    """What a rollout does when the graph's component set changes (the operator's webhook refuses
    that in place: "component topology is immutable"), in order."""
    was, will = sorted(n for n, _ in component_set(live)), sorted(n for n, _ in component_set(dgd))
    head = (
        f"the components of {kb.ns}/{kb.dgd_name} change from {was} to {will}; the Dynamo operator "
        "refuses that on the live graph, so it is replaced"
    )
    if kb.spec.serving.route is None:
        return [
            head,
            f"1. delete graph {kb.dgd_name} and wait until its pods are gone (no serving.route: "
            f"clients reach Service {naming.frontend_service_name(kb.dgd_name)}, which belongs "
            "to the graph, so nothing serves until step 2 is ready; set serving.route to keep "
            "serving through a replacement)",
            f"2. create graph {kb.dgd_name} with the new components and wait until it is ready",
        ]
    bridge = naming.dgd_name(kb.spec, canary=True)
    return [
        head,
        f"1. start graph {bridge} with the new components beside {kb.dgd_name} and wait until it is ready",
        f"2. switch serving.route to {bridge} (all requests), then delete graph {kb.dgd_name}",
        f"3. create graph {kb.dgd_name} with the new components, wait until it is ready and switch the "
        "route back to it",
        f"4. delete graph {bridge}",
    ]


def replace_graph(kb: KubeBackend, live: dict, dgd: dict, number: int, engine: Engine) -> KubeBackend | None:
    """Steps before the new graph is applied under the stable name; returns the bridge graph (to delete
    once the route is back on the stable name) or None."""
    steps = kb.replacement_plan(live, dgd)
    for line in steps:  # said before anything is done
        log.warning("%s", line)
    if kb.spec.serving.route is None:
        kb.delete_graph()
        return None
    bridge = kb.graph(naming.dgd_name(kb.spec, canary=True))
    staged = render.render_dgd(
        kb.spec, revision=number, provider=kb.caps, name=bridge.dgd_name, engine=engine
    )
    staged["metadata"]["labels"] = {**staged["metadata"].get("labels", {}), TRACK_KEY: BRIDGE}
    bridge_live = kb.kube.get(DGD_API, DGD_KIND, bridge.dgd_name, kb.ns)
    if bridge_live is not None and component_set(bridge_live) != component_set(staged):
        bridge.delete_graph()  # a leftover candidate of another shape
    bridge.stage_graph(staged, number)
    kube_route.ensure(kb.kube, kb.spec, canary_percent=100)
    kb.delete_graph()
    return bridge


def keep_adapter_replicas(dgd: dict, live: dict | None) -> dict:
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


def stage_graph(kb: KubeBackend, dgd: dict, number: int) -> dict:
    """Apply a graph the ledger does not record (a candidate) and wait for the readiness contract."""
    live = kb.kube.get(DGD_API, DGD_KIND, kb.dgd_name, kb.ns)
    if live is not None and component_set(live) != component_set(dgd):
        # a leftover graph of another shape (the operator refuses to change the component set in place):
        # it serves no client of stable, so it is deleted and created again
        log.warning(
            "graph %s/%s has components %s, not %s: deleting it, then creating it again",
            kb.ns,
            kb.dgd_name,
            sorted(n for n, _ in component_set(live)),
            sorted(n for n, _ in component_set(dgd)),
        )
        kb.delete_graph()
        live = None
    if live is None or not covered(live, dgd):
        kb.kube.apply(keep_adapter_replicas(dgd, live), force=True)
    return readiness.wait_ready(kb, number)[1]


def delete_graph(kb: KubeBackend) -> bool:
    """Delete this graph and wait until its pods are gone; False when it did not exist."""
    deleted = kb.kube.delete(DGD_API, DGD_KIND, kb.dgd_name, kb.ns, propagation="Background")
    teardown.wait_none(kb, "v1", "Pod", kb.ns, {DGD_NAME_LABEL: kb.dgd_name}, _timeout("TEARDOWN", 300))
    return deleted


def check_cache(kb: KubeBackend) -> None:
    model = kb.spec.model
    if model.is_builtin():
        return
    pvc = kb.kube.get("v1", "PersistentVolumeClaim", naming.model_cache_pvc_name(kb.spec), kb.ns)
    marker = ((pvc or {}).get("metadata", {}).get("annotations") or {}).get(CACHED_ANNOTATION)
    if marker != f"{model.id}@{model.revision}":
        raise PermanentError(
            f"the model cache does not hold {model.id}@{model.revision} yet (marker: {marker or 'none'})",
            hint="run the model-cache stage first (the deploy flow does); the rollout waits for the cache",
        )
