"""canary: stage a candidate beside stable, gate it on identical load, shift traffic, promote or roll back.

    stage -> side-by-side analysis -> [shift p% -> analysis]* -> promote (a new revision)
                     |                          |
                     +-- fail / still inconclusive after holds --> withdraw (stable never stops serving)

How real traffic is shifted is the target's (its CanaryMechanics, runtime/targets/registry.py): locally candidate
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

from flows._candidate import Candidate
from flows._lock import target_lock
from flows._progress import stage
from flows._spec import load, redacted_parameters
from flows.deploy import deploy
from runtime.domain import canary as gate
from runtime.domain import metrics, sla
from runtime.errors import CanaryFailed, PermanentError, PreflightError
from runtime.targets.base import StagedCandidate
from tasks import canary as steps
from tasks.targets import backend, mechanics


def _event(spec, what: str, **payload) -> None:
    emit_event(
        event=f"dynadeploy.canary.{what}",
        resource={
            "prefect.resource.id": f"dynadeploy.target.{spec.name}",
            "prefect.resource.name": spec.name,
            "dynadeploy.target-kind": spec.target.kind,
        },
        payload=payload,
    )


def candidate_spec(s, candidate: dict):
    if "spec" in candidate:
        whole = load(candidate["spec"])
        if whole.name != s.name:
            raise PermanentError(
                f"candidate spec is for {whole.name!r}, not {s.name!r}",
                hint="a candidate must describe the same deployment name",
            )
        return whole
    return s.with_changes(candidate, source="candidate")


@redacted_parameters  # stored run parameters never hold an inline secret (flows/_spec.py)
@flow(name="canary", log_prints=False)
def canary(spec: str | dict, candidate: Candidate | None = None, reason: str = "canary") -> dict:
    """Stage a candidate beside stable, gate it, shift traffic in steps, then promote or roll back.

    Args:
        spec: the stable deployment's spec: a path to its YAML file (relative to the worker's directory) or
            the spec itself as a dict.
        candidate: what the candidate changes (image, engine args, model revision, replicas, any other
            spec changes) or a whole candidate spec; empty re-verifies stable.
        reason: recorded with the promoted revision and in the canary's events.
    """
    s = load(spec)
    candidate = candidate if isinstance(candidate, Candidate) else Candidate.model_validate(candidate or {})
    candidate = candidate.as_changes()
    cand = candidate_spec(s, candidate)
    mechanics(s)  # a target without canary mechanics fails here, before the lock or any change
    with target_lock(s):
        return _canary(s, cand, candidate, reason)


def _canary(s, cand, candidate: dict, reason: str) -> dict:
    rows: list[dict] = []
    stable = backend(s)
    with stage("baseline") as st:
        status = stable.status()
        if not status.models:
            raise PreflightError(
                f"{s.name} is not serving, so there is no baseline to compare against",
                hint="deploy it first: dynadeploy deploy SPEC",
            )
        plan, how = steps.plan(stable, status)
        st.note(f"stable serves at {status.endpoint}; {how}")
    _event(s, "started", reason=reason, candidate=candidate, plan=[st.label() for st in plan], traffic=how)
    staged = False
    try:
        with stage("stage-candidate") as st:
            info = steps.stage_candidate(s, cand)
            staged = True
            st.note(
                f"candidate graph staged ({info.graph or info.endpoint})"
                + (f"; baseline copy of stable staged beside it ({info.baseline})" if info.baseline else "")
            )
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
                _event(
                    s, "rolled-back", step=step.label(), verdict=verdict.summary(), withdraw_s=round(took, 2)
                )
                _publish(
                    s,
                    rows,
                    f"**rolled back** at {step.label()}: {verdict.summary()} (withdrawn in {took:.1f}s)",
                )
                err = CanaryFailed(
                    f"canary of {s.name} rolled back at {step.label()}: {verdict.summary()}",
                    hint="stable is unchanged; see the canary artifact for the numbers",
                )
                err.steps = rows  # the analyses, for a caller that reports them (bench/bench_canary.py)
                raise err
        with stage("promote") as st:
            # The candidate spec rolled out to the stable graph; its rollout's last step points any
            # route at stable alone, so the candidate's share ends there.
            result = deploy(
                spec=cand.model_dump(mode="json"),
                reason=f"canary promotion: {reason}"[:200],
                started_by="canary",
                locked=True,
            )
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
    return {
        "name": s.name,
        "status": "promoted",
        "revision": result["revision"],
        "steps": rows,
        "traffic": how,
    }


def _analyse(s, cand, step: gate.Step, info: StagedCandidate):
    """One step's analysis. An inconclusive one is measured again (``canary.holds`` times) and judged on
    all of the step's samples so far: a hold adds evidence rather than rolling the dice again."""
    c, sm = s.canary, s.smoke
    load = (c.requests_per_step, sm.concurrency, sm.max_tokens, sm.prompt, c.analysis_interval_s)
    holds = gate.GateSettings.of(c).holds
    pooled: dict[str, list] = {"stable": [], "candidate": []}
    first_before = None
    warm = (max(8, 2 * sm.concurrency), *load[1:])
    for attempt in range(holds + 1):
        with stage(f"analysis {step.label()}" + (f" (hold {attempt})" if attempt else "")) as st:
            if step.shifted:
                steps.shift_traffic(s, cand, step, info)
                if not attempt:  # the joining workers' first requests are cold: measured, then dropped
                    steps.measure_shifted(s, cand, *warm)
                m = steps.measure_shifted(s, cand, *load)
                first_before = first_before or m["before"]  # the workers' counters are cumulative
                names = tuple(m["ttft_metrics"])
                p_stable = gate.group_ttft_p90_ms(first_before["stable"], m["after"]["stable"], names)
                p_canary = gate.group_ttft_p90_ms(first_before["candidate"], m["after"]["candidate"], names)
                pooled["stable"].append(m["report"])
                report = gate.pool(pooled["stable"])
                buckets = {
                    side: gate.group_ttft_buckets(first_before[side], m["after"][side], names)
                    for side in ("stable", "candidate")
                }
                verdict = gate.shifted_gate(
                    report,
                    p_stable,
                    p_canary,
                    c,
                    buckets["stable"],
                    buckets["candidate"],
                    latest=m["report"] if attempt else None,
                )
                row = {
                    "step": step.label(),
                    "share": step.share,
                    "stable_ttft_p90_ms": p_stable,
                    "candidate_ttft_p90_ms": p_canary,
                    "errors": report.errors,
                    "requests": report.count,
                }
            else:
                if not attempt:
                    # A freshly started candidate graph answers its first requests slower than a warm stable
                    # (connections, tokenizer, the engine's first batches): a bias, not noise, that no test can
                    # tell from a regression. Both sides get a warm-up load first, and it is not judged.
                    steps.measure_side_by_side(s, cand, *warm)
                out = steps.measure_side_by_side(s, cand, *load)
                pooled["stable"].append(out["stable"]["report"])
                pooled["candidate"].append(out["candidate"]["report"])
                base, new = gate.pool(pooled["stable"]), gate.pool(pooled["candidate"])
                verdict = gate.side_by_side_gate(base, new, c)
                _latency_pictures(s, step.label(), base, new)
                fm = {k: metrics.frontend_summary(v["before"], v["after"]) for k, v in out.items()}
                ps, pc = gate.p90s_ms(base), gate.p90s_ms(new)
                row = {
                    "step": step.label(),
                    "share": 0.0,
                    "stable_ttft_p90_ms": ps["ttft"],
                    "candidate_ttft_p90_ms": pc["ttft"],
                    "stable_itl_p90_ms": ps["itl"],
                    "candidate_itl_p90_ms": pc["itl"],
                    "errors": base.errors + new.errors,
                    "requests": base.count + new.count,
                    "frontend_metrics": fm,
                }
            row |= {"verdict": verdict.status, "why": verdict.summary(), "analyses": attempt + 1}
            st.note(verdict.summary())
        _event(s, "step", **{k: v for k, v in row.items() if k != "frontend_metrics"})
        if verdict.status != "inconclusive":
            return verdict, row
    why = (
        f"still inconclusive after {holds} holds ({attempt + 1} analyses pooled): "
        "the candidate could not be shown to be no worse than stable"
    )
    return sla.Verdict("fail", [why], verdict.notes), row


def _latency_pictures(s, label: str, base, new) -> None:
    """Stable vs candidate TTFT/ITL distributions as pictures (runtime/render/latency_plot.py)."""
    from runtime.render import latency_plot

    create_markdown_artifact(
        key=f"canary-latency-{s.name}"[:60],
        markdown=f"# Canary of {s.name}, {label}\n\n"
        + latency_plot.markdown({"stable": base, "candidate": new}, s.smoke.sla),
        description=f"canary of {s.name}: latency distributions, stable vs candidate",
    )


def _publish(s, rows: list[dict], outcome: str) -> None:
    # the verdict first, latencies to 0.1 ms, shares as percentages
    first = ("verdict", "step", "share")
    table = [
        {"verdict": r["verdict"], "step": r["step"], "share": f"{r['share']:.0%}"}
        | {
            k: (round(v, 1) if isinstance(v, float) else v)
            for k, v in r.items()
            if k not in first and k != "frontend_metrics"
        }
        for r in rows
    ]
    create_table_artifact(key=f"canary-{s.name}"[:60], table=table, description=f"canary of {s.name}")
    create_markdown_artifact(
        key=f"canary-summary-{s.name}"[:60], markdown=f"# Canary of {s.name}\n\n{outcome}"
    )
