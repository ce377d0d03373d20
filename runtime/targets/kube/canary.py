"""The Kubernetes targets' canary mechanics (kube, eks, gke, aks): a candidate graph beside stable, and
real traffic shifted to it by weight through the cluster's own traffic layer.

- staged: the candidate runs as its own DynamoGraphDeployment, ``<name>-canary``, in the stable graph's
  namespace, on the same platform and model-cache PVC, with its own frontend Service (the operator gives
  each graph its own Dynamo namespace, so the two never share workers). Identical load goes to both
  frontends; stable's capacity is not touched.
- shifted (with serving.route only): the route sends p% of the requests that enter through it to the
  candidate's frontend - HTTPRoute backendRefs weights (Gateway API), or an ingress-nginx canary Ingress
  with canary-weight. A step counts once the traffic layer took it (kube_route). The gate reads each
  graph's frontend TTFT histogram (dynamo_frontend_time_to_first_token_seconds) from every frontend pod.
  Without serving.route there is nothing to shift with: the plan is side by side only, and says so.
- abort: weights back to stable (taken by the traffic layer) before the candidate graph is deleted, so
  no request is sent to a frontend that is going away. Promotion is an ordinary rollout of the candidate
  spec to the stable graph, whose last step points the route at stable alone.

Each function takes the backends of the stable spec and of the candidate spec (runtime/targets/base.py
CanaryMechanics): a KubeBackend, or a cloud target's CloudBackend whose kube stages run on its cluster.

A candidate that changes the platform (the Dynamo chart) cannot run beside stable: one operator serves
every graph of the cluster. That is refused before anything changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from runtime import render
from runtime.domain import canary as gate
from runtime.domain import naming
from runtime.domain.canary import Reach, Step
from runtime.domain.revisions import next_number
from runtime.errors import NotSupportedError, PermanentError
from runtime.targets.base import StagedCandidate, Status
from runtime.targets.kube import route as kube_route
from runtime.targets.kube.backend import KubeBackend, tcp_open

TRACK_KEY = "dynadeploy.io/track"
FRONTEND_TTFT = ("dynamo_frontend_time_to_first_token_seconds",)


def _kube(backend) -> KubeBackend:
    """The kube stages of a backend (a KubeBackend, or the one a cloud target runs on its cluster)."""
    return backend if isinstance(backend, KubeBackend) else backend.kube()


def _candidate_graph(candidate) -> KubeBackend:
    return _kube(candidate).graph(naming.dgd_name(candidate.spec, canary=True))


def plan(stable, status: Status) -> tuple[list[Step], str]:
    """The steps before promotion, and a note on how traffic is shifted (or why it is not)."""
    spec = stable.spec
    if spec.serving.route is None:
        return gate.side_by_side_plan(), (
            "side by side only: the spec has no serving.route, so nothing in the "
            "cluster can shift real traffic (set serving.route.gateway or .ingress)"
        )
    how = "HTTPRoute weights" if spec.serving.route.gateway else "ingress-nginx canary-weight"
    return gate.weighted_plan(list(spec.canary.steps)), f"real traffic shifted by {how}"


def stage(stable, candidate, token: str | None = None) -> StagedCandidate:
    spec = stable.spec
    if candidate.spec.platform != spec.platform:
        raise NotSupportedError(
            "the candidate changes the platform (the Dynamo chart or operator); on Kubernetes one operator "
            "serves every graph, so a candidate platform cannot run beside stable",
            hint="canary graph changes (image, engine args, model revision); roll the platform with "
            "`dynadeploy deploy` (a rollback restores it)",
        )
    kb = _kube(stable)
    cand = _candidate_graph(candidate)
    engine = cand.detect_gpus().engine
    cand.cache_model(engine, token=token)
    dgd = render.render_dgd(
        candidate.spec,
        revision=next_number(kb.revisions()),
        provider=cand.caps,
        name=cand.dgd_name,
        engine=engine,
    )
    dgd["metadata"]["labels"] = {**dgd["metadata"].get("labels", {}), TRACK_KEY: "canary"}
    cand.stage_graph(dgd, int(dgd["metadata"]["annotations"][render.REVISION_ANNOTATION]))
    if spec.serving.route is not None:  # listed at weight 0: staged, no real traffic yet
        kube_route.ensure(kb.kube, spec, canary_percent=0)
    return StagedCandidate(engine=engine, graph=cand.dgd_name)


def shift(stable, candidate, step: Step, staged: StagedCandidate) -> dict:
    return kube_route.ensure(_kube(stable).kube, stable.spec, canary_percent=step.percent)


def unshift(stable) -> dict:
    """Every request through the route to stable again (no-op without a route)."""
    return kube_route.ensure(_kube(stable).kube, stable.spec)


def drop(stable, candidate) -> dict:
    cand = _candidate_graph(candidate)
    return {"graph": cand.dgd_name, "deleted": cand.delete_graph()}


@contextlib.contextmanager
def reach(stable, candidate) -> Iterator[Reach]:
    """Addresses this process can use, for as long as the ``with`` lasts (port-forwards if need be)."""
    spec = stable.spec
    kb, cand = _kube(stable), _candidate_graph(candidate)
    with contextlib.ExitStack() as stack:
        stable_url = stack.enter_context(kb.reach())
        cand_pods = cand.frontend_pods()
        cand_url = stack.enter_context(cand.reach()) if cand_pods else None
        entry = kube_route.entry(kb.kube, spec) if spec.serving.route is not None else None
        if spec.serving.route is not None and entry is None:
            raise PermanentError(
                "serving.route has no address yet (the Gateway or ingress controller reports none)",
                hint="check the Gateway's / Ingress's status: kubectl describe",
            )
        groups = {
            "stable": [_metrics_url(stack, kb, p) for p in kb.frontend_pods()],
            "candidate": [_metrics_url(stack, cand, p) for p in cand_pods],
        }
        yield Reach(
            stable=stable_url,
            candidate=cand_url,
            entry=entry[0] if entry else stable_url,
            entry_host=entry[1] if entry else None,
            groups=groups,
            ttft_metrics=FRONTEND_TTFT,
        )


def _metrics_url(stack: contextlib.ExitStack, kb: KubeBackend, pod: dict) -> str:
    """A frontend pod's own address when this process can reach it (a worker inside the cluster), else a
    port-forward to that pod: a Service would spread the scrapes over the replicas."""
    direct = f"http://{pod['status'].get('podIP')}:{render.FRONTEND_PORT}"
    if pod["status"].get("podIP") and tcp_open(direct, 1.0):
        return direct
    from runtime.gateways.portforward import port_forward

    return stack.enter_context(
        port_forward(
            kb.kube.kubeconfig, kb.context, kb.ns, f"pod/{pod['metadata']['name']}", render.FRONTEND_PORT
        )
    )
