"""canary: stage a candidate beside stable, gate it on identical load, shift traffic, promote or roll back.

    stage -> side-by-side analysis -> [shift p% -> analysis]* -> promote (a new revision)
                     |                          |
                     +-- fail / still inconclusive after holds --> withdraw (stable never stops serving)

How real traffic is shifted is the target's (tasks/canary.py picks the mechanics): locally candidate
workers join the stable frontend's pool; on Kubernetes the weights of serving.route (HTTPRoute
backendRefs or an ingress-nginx canary Ingress) send p% to the candidate graph's frontend; without a
way to shift, the plan is side by side only and the run says so.

The candidate is the stable spec with ``candidate`` changes merged in (an image tag, engine args,
a model revision, a chart version...), or a whole spec (``{"spec": "path.yaml"}``). A failed gate
withdraws the candidate right after the analysis that failed, so within one analysis interval, and
ends the run Failed; an inconclusive analysis holds (re-runs) and says why. Every step emits a
Prefect event (dynadeploy.canary.*) that automations can react to.
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from flows._lock import target_lock
from flows._progress import stage
from flows._spec import load, redacted_parameters
from flows.deploy import deploy
from runtime import canary as gate
from runtime import metrics, sla
from runtime.backends import backend_for
from runtime.errors import PermanentError, PreflightError
from tasks import canary as steps

HOLDS = 2  # extra analyses an inconclusive step gets before the candidate is withdrawn


class CanaryFailed(PermanentError):
    """The candidate failed its gate and was withdrawn; stable serves as before."""


def _event(spec, what: str, **payload) -> None:
    emit_event(event=f"dynadeploy.canary.{what}",
               resource={"prefect.resource.id": f"dynadeploy.target.{spec.name}", "prefect.resource.name": spec.name,
                         "dynadeploy.target-kind": spec.target.kind},
               payload=payload)


def candidate_spec(s, candidate: dict):
    if "spec" in candidate:
        whole = load(candidate["spec"])
        if whole.name != s.name:
            raise PermanentError(f"candidate spec is for {whole.name!r}, not {s.name!r}",
                                 hint="a candidate must describe the same deployment name")
        return whole
    return s.with_changes(candidate, source="candidate")


@redacted_parameters  # stored run parameters never hold an inline secret (flows/_spec.py)
@flow(name="canary", log_prints=False)
def canary(spec: str | dict, candidate: dict, reason: str = "canary") -> dict:
    s = load(spec)
    cand = candidate_spec(s, candidate)
    steps.mechanics(s)  # a target without canary mechanics fails here, before the lock or any change
    with target_lock(s):
        return _canary(s, cand, candidate, reason)


def _canary(s, cand, candidate: dict, reason: str) -> dict:
    rows: list[dict] = []
    backend = backend_for(s)
    with stage("baseline") as st:
        status = backend.status()
        if not status.get("models"):
            raise PreflightError(f"{s.name} is not serving, so there is no baseline to compare against",
                                 hint="deploy it first: dynadeploy deploy SPEC")
        plan, how = steps.plan(s, status)
        st.note(f"stable serves at {status['endpoint']}; {how}")
    _event(s, "started", reason=reason, candidate=candidate, plan=[st.label() for st in plan], traffic=how)
    staged = False
    try:
        with stage("stage-candidate") as st:
            info = steps.stage_candidate(s, cand)
            staged = True
            st.note(f"candidate graph staged ({info.get('graph') or info.get('endpoint')})")
        for step in plan:
            verdict, row = _analyse(s, cand, step, info)
            rows.append(row)
            if verdict.status != "pass":
                t_fail = time.monotonic()
                with stage("withdraw") as st:
                    steps.withdraw_candidate(s, cand)
                    staged = False
                    st.note(verdict.summary())
                took = time.monotonic() - t_fail
                _event(s, "rolled-back", step=step.label(), verdict=verdict.summary(), withdraw_s=round(took, 2))
                _publish(s, rows, f"**rolled back** at {step.label()}: {verdict.summary()} (withdrawn in {took:.1f}s)")
                raise CanaryFailed(f"canary of {s.name} rolled back at {step.label()}: {verdict.summary()}",
                                   hint="stable is unchanged; see the canary artifact for the numbers")
        with stage("promote") as st:
            # The candidate spec rolled out to the stable graph; its rollout's last step points any
            # route at stable alone, so the candidate's share ends there.
            result = deploy(spec=cand.model_dump(mode="json"), reason=f"canary promotion: {reason}"[:200],
                            started_by="canary", locked=True)
            st.note(f"revision {result['revision']}")
        with stage("cleanup"):
            steps.withdraw_candidate(s, cand)
            staged = False
    except BaseException:
        if staged:  # a crash mid-canary must not leave the candidate serving beside stable
            steps.withdraw_candidate(s, cand)
        raise
    _event(s, "promoted", revision=result["revision"])
    _publish(s, rows, f"**promoted** as revision {result['revision']}")
    return {"name": s.name, "status": "promoted", "revision": result["revision"], "steps": rows, "traffic": how}


def _analyse(s, cand, step: gate.Step, info: dict):
    c, sm = s.canary, s.smoke
    load = (c.requests_per_step, sm.concurrency, sm.max_tokens, sm.prompt, c.analysis_interval_s)
    for attempt in range(HOLDS + 1):
        with stage(f"analysis {step.label()}" + (f" (hold {attempt})" if attempt else "")) as st:
            if step.shifted:
                steps.shift_traffic(s, cand, step, info)
                m = steps.measure_shifted(s, cand, *load)
                names = tuple(m["ttft_metrics"])
                p_stable = gate.group_ttft_p90_ms(m["before"]["stable"], m["after"]["stable"], names)
                p_canary = gate.group_ttft_p90_ms(m["before"]["candidate"], m["after"]["candidate"], names)
                verdict = gate.shifted_gate(m["report"], p_stable, p_canary, c)
                row = {"step": step.label(), "share": step.share, "stable_ttft_p90_ms": p_stable,
                       "candidate_ttft_p90_ms": p_canary, "errors": m["report"].errors,
                       "requests": m["report"].count}
            else:
                out = steps.measure_side_by_side(s, cand, *load)
                base, new = out["stable"]["report"], out["candidate"]["report"]
                verdict = sla.compare(base, new, c)
                _latency_pictures(s, step.label(), base, new)
                fm = {k: metrics.frontend_summary(v["before"], v["after"]) for k, v in out.items()}
                row = {"step": step.label(), "share": 0.0, "stable_ttft_p90_ms": base.ttft_ms.p90,
                       "candidate_ttft_p90_ms": new.ttft_ms.p90, "stable_itl_p90_ms": base.itl_ms.p90,
                       "candidate_itl_p90_ms": new.itl_ms.p90, "errors": base.errors + new.errors,
                       "requests": base.count + new.count, "frontend_metrics": fm}
            row |= {"verdict": verdict.status, "why": verdict.summary()}
            st.note(verdict.summary())
        _event(s, "step", **{k: v for k, v in row.items() if k != "frontend_metrics"})
        if verdict.status != "inconclusive":
            return verdict, row
    return sla.Verdict("fail", [f"still inconclusive after {HOLDS} holds"], verdict.notes), row


def _latency_pictures(s, label: str, base, new) -> None:
    """Stable vs candidate TTFT/ITL distributions as pictures (runtime/latency_plot.py)."""
    from runtime import latency_plot

    create_markdown_artifact(key=f"canary-latency-{s.name}"[:60],
                             markdown=f"# Canary of {s.name}, {label}\n\n"
                                      + latency_plot.markdown({"stable": base, "candidate": new}, s.smoke.sla),
                             description=f"canary of {s.name}: latency distributions, stable vs candidate")


def _publish(s, rows: list[dict], outcome: str) -> None:
    table = [{k: v for k, v in r.items() if k != "frontend_metrics"} for r in rows]
    create_table_artifact(key=f"canary-{s.name}"[:60], table=table, description=f"canary of {s.name}")
    create_markdown_artifact(key=f"canary-summary-{s.name}"[:60], markdown=f"# Canary of {s.name}\n\n{outcome}")
