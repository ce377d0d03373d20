"""Issue 6 on a real Prefect server: approval-to-serving of a rollback, and how fast a failed canary rolls
back.

    uv run python -m bench.bench_prefect [--rounds 3] [--canaries 2]

One `prefect server start` (SQLite), the dynadeploy-process pool, `prefect deploy` of deploy-local,
canary-local and rollback-local from prefect.yaml, and a process worker — the stack of the
end-to-end tests (tests/e2e_prefect/stack.py), all on 127.0.0.1, in a temporary DYNADEPLOY_HOME.

1. Rollback. A target serves spec B (revision 2; spec A is revision 1). Each round starts
   rollback-local with revision=1, waits until the run is Paused on its approval form, then resumes
   it with approve=true (the call the UI's Resume makes) and times, from that call:
   - resume_to_serving_s: until the ledger shows the restored revision serving and the endpoint
     answers a chat request;
   - resume_to_completed_s: until the run is Completed (smoke test passed, artifacts written).
   The baseline is the same transition with no Prefect: B serving, then the deploy stages for the
   restored spec A run directly on the backend (provision, gpu, platform, model cache, rollout, smoke)
   — direct_to_serving_s up to the rollout plus a first answer, direct_stages_s through the smoke test.
   The goal is resume_to_completed_s / direct_stages_s <= 1.2.
2. Failed canary. canary-local runs with a candidate 20x slower (mocker speedup_ratio 0.05) than
   stable; its gate fails at the side-by-side analysis. From the run's events and logs: withdraw_s
   (gate decision -> candidate withdrawn, the payload of dynadeploy.canary.rolled-back), the failed
   analysis itself, and analysis start -> withdrawn, each against the spec's analysis_interval_s.

Figures only; nothing asserts a time. Prints a table, writes bench/results/prefect.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
INTERVAL_S = 30
CANARY = {
    "requests_per_step": 24,
    "min_samples": 12,
    "steps": [50, 100],
    "analysis_interval_s": INTERVAL_S,
    "max_ttft_regression": 3.0,
    "max_itl_regression": 3.0,
}


def serving_poller(backend, model: str, after: int, out: dict, stop: threading.Event) -> None:
    """Record when a revision newer than ``after`` is serving and then answers a request."""
    from tests.e2e_prefect.stack import chat

    while not stop.is_set():
        revs = backend.revisions()
        if revs and revs[-1].number > after and revs[-1].status == "serving":
            try:
                chat(backend.endpoint(), model, max_tokens=2, timeout_s=5)
            except Exception:
                time.sleep(0.02)
                continue
            out["serving_at"] = time.monotonic()
            return
        time.sleep(0.02)


def direct_stages(spec, timed: bool = True) -> dict:
    """The deploy stages for ``spec`` run directly on the backend, no Prefect: the baseline."""
    from runtime.gateways import loadgen
    from runtime.targets.local.backend import LocalBackend
    from tests.e2e_prefect.stack import chat

    backend = LocalBackend(spec)
    t0 = time.monotonic()
    backend.provision()
    engine = backend.detect_gpus().engine
    backend.install_platform()
    model = backend.cache_model(engine)
    rollout = backend.roll_out(engine, model, reason="bench direct", started_by="bench")
    chat(backend.endpoint(), spec.model.served(), max_tokens=2)
    to_serving = time.monotonic() - t0
    smoke = loadgen.smoke_test(backend.endpoint(), spec.model.served(), spec.smoke)
    backend.record_smoke(rollout.revision, {"passed": smoke.passed})
    return {
        "direct_to_serving_s": to_serving,
        "direct_stages_s": time.monotonic() - t0,
        "revision": rollout.revision,
    }


def rollback_round(stack, path_b: Path, spec_a, spec_b) -> dict:
    from runtime.targets.local.backend import LocalBackend

    backend = LocalBackend(spec_b)
    assert backend.revisions()[-1].spec_hash != backend.revisions()[0].spec_hash, "B must be serving"
    run_id = stack.run("rollback/rollback-local", spec=str(path_b), revision=1, reason="bench")
    stack.wait_for_form(run_id, timeout_s=300)
    before = backend.revisions()[-1].number
    out: dict = {}
    stop = threading.Event()
    poller = threading.Thread(target=serving_poller, args=(backend, spec_b.model.served(), before, out, stop))
    poller.start()
    t_wall = time.time()
    t0 = time.monotonic()
    stack.resume(run_id, {"approve": True, "note": "bench"})
    done = stack.wait(run_id, timeout_s=300, poll_s=0.1)
    t_done = time.monotonic()
    poller.join(timeout=60)
    stop.set()
    assert done["state_type"] == "COMPLETED", done["state"]
    from tests.e2e_prefect.stack import ts

    noticed = [
        ts(e["timestamp"]) for e in stack.run_logs(run_id) if e["message"].startswith("stage approval: done")
    ]
    (sub,) = stack.subflow_runs(run_id)  # the deploy flow that restores the spec
    for _ in range(40):  # logs reach the server in batches, shortly after the run ends
        stage_s = [
            float(m.group(1))
            for e in stack.run_logs(sub["id"])
            if (m := re.match(r"stage \S+: done in ([\d.]+)s", e["message"]))
        ]
        if len(stage_s) >= 6:
            break
        time.sleep(0.5)
    row = {
        "resume_to_serving_s": out["serving_at"] - t0,
        "resume_to_completed_s": t_done - t0,
        "resume_noticed_s": (noticed[0] - t_wall) if noticed else None,
        "flow_end_s": ts(done["end_time"]) - t_wall,
        "deploy_subflow_s": ts(sub["end_time"]) - ts(sub["start_time"]),
        "deploy_stages_in_flow_s": sum(stage_s),
    }
    # the same transition without Prefect: B serving again (untimed), then the stages for A
    direct_stages(spec_b)
    row |= direct_stages(spec_a)
    direct_stages(spec_b)  # leave B serving for the next round
    row["ratio_completed"] = row["resume_to_completed_s"] / row["direct_stages_s"]
    row["ratio_serving"] = row["resume_to_serving_s"] / row["direct_to_serving_s"]
    return row


def canary_round(stack, path: Path) -> dict:
    from tests.e2e_prefect.stack import ts

    run_id = stack.run(
        "canary/canary-local",
        spec=str(path),
        candidate={"serving": {"mocker": {"speedup_ratio": 0.05}}},
        reason="bench slow candidate",
    )
    fr = stack.wait(run_id, timeout_s=400)
    assert fr["state_type"] == "FAILED", fr["state"]
    events = stack.wait_events(
        ["dynadeploy.canary."],
        lambda evs: any(e["event"].endswith("rolled-back") for e in evs),
        related_id=f"prefect.flow-run.{run_id}",
    )
    at = {e["event"].rsplit(".", 1)[-1]: e for e in events}
    rolled, step = at["rolled-back"], at["step"]
    logs = stack.run_logs(run_id)
    start = next(
        ts(e["timestamp"]) for e in logs if e["message"].startswith("stage analysis side-by-side: start")
    )
    return {
        "withdraw_s": rolled["payload"]["withdraw_s"],
        "analysis_s": ts(step["occurred"]) - start,
        "analysis_to_withdrawn_s": ts(rolled["occurred"]) - start,
        "started_to_withdrawn_s": ts(rolled["occurred"]) - ts(at["started"]["occurred"]),
        "flow_wall_s": ts(fr["end_time"]) - ts(fr["start_time"]),
        "analysis_interval_s": INTERVAL_S,
        "verdict": step["payload"]["why"][:120],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--canaries", type=int, default=2)
    args = ap.parse_args()
    from runtime.spec import load_spec
    from tests.e2e_prefect.stack import PrefectStack

    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dynadeploy-bench-prefect-"))
    stack = PrefectStack(work)
    try:
        stack.up("deploy-local", "canary-local", "rollback-local")
        path_a = stack.write_spec("bench-rb", {"mocker": {"speedup_ratio": 10.0}})
        path_b = stack.write_spec("bench-rb", {"mocker": {"speedup_ratio": 6.0}})
        for p in (path_a, path_b):
            assert (
                stack.wait(stack.run("deploy/deploy-local", spec=str(p)), timeout_s=300)["state_type"]
                == "COMPLETED"
            )
        spec_a, spec_b = load_spec(path_a), load_spec(path_b)
        rollbacks = [rollback_round(stack, path_b, spec_a, spec_b) for _ in range(args.rounds)]

        path_c = stack.write_spec("bench-canary", {"mocker": {"speedup_ratio": 10.0}}, canary=CANARY)
        assert (
            stack.wait(stack.run("deploy/deploy-local", spec=str(path_c)), timeout_s=300)["state_type"]
            == "COMPLETED"
        )
        canaries = [canary_round(stack, path_c) for _ in range(args.canaries)]
    except BaseException:
        print(f"failed; logs kept in {stack.logs}", file=sys.stderr)
        stack.stop()
        raise
    leaked = stack.stop()
    shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]

    t = stack.timings
    print(
        f"stack up {t.get('up_s', 0):.1f} s (server {t.get('server_start_s', 0):.1f} s, "
        f"deploy {t.get('deploy_s', 0):.1f} s); load avg {load:.2f}"
    )
    print("\nrollback: approval (resume) -> restored revision serving, vs the same stages run directly")
    print(
        f"{'round':>5} {'noticed':>8} {'->serving':>10} {'->completed':>12} {'subflow':>8} "
        f"{'its stages':>11} {'direct_serv':>12} {'direct_all':>11} {'serving x':>10} {'completed x':>12}"
    )
    for i, r in enumerate(rollbacks):
        print(
            f"{i:>5} {r['resume_noticed_s'] or float('nan'):>8.2f} {r['resume_to_serving_s']:>10.2f} "
            f"{r['resume_to_completed_s']:>12.2f} {r['deploy_subflow_s']:>8.2f} "
            f"{r['deploy_stages_in_flow_s']:>11.2f} "
            f"{r['direct_to_serving_s']:>12.2f} {r['direct_stages_s']:>11.2f} "
            f"{r['ratio_serving']:>10.2f} {r['ratio_completed']:>12.2f}"
        )
    print(f"\nfailed canary: rollback time vs analysis_interval_s = {INTERVAL_S}")
    print(
        f"{'run':>4} {'withdraw_s':>11} {'analysis_s':>11} {'analysis->withdrawn':>20} "
        f"{'started->withdrawn':>19} {'flow_wall_s':>12}"
    )
    for i, c in enumerate(canaries):
        print(
            f"{i:>4} {c['withdraw_s']:>11.2f} {c['analysis_s']:>11.2f} {c['analysis_to_withdrawn_s']:>20.2f} "
            f"{c['started_to_withdrawn_s']:>19.2f} {c['flow_wall_s']:>12.2f}"
        )

    def median(rows, key):
        vals = sorted(r[key] for r in rows if r[key] is not None)
        return vals[len(vals) // 2] if vals else None

    summary = {
        "stack": stack.timings,
        "loadavg_1m": load,
        "leaked_processes": leaked,
        "rollback_rounds": rollbacks,
        "canary_runs": canaries,
        "median": {
            k: median(rollbacks, k)
            for k in (
                "resume_to_serving_s",
                "resume_to_completed_s",
                "direct_to_serving_s",
                "direct_stages_s",
                "ratio_serving",
                "ratio_completed",
                "resume_noticed_s",
                "deploy_subflow_s",
                "deploy_stages_in_flow_s",
            )
        }
        | {k: median(canaries, k) for k in ("withdraw_s", "analysis_s", "analysis_to_withdrawn_s")},
        "goal_ratio": 1.2,
        "analysis_interval_s": INTERVAL_S,
    }
    (RESULTS / "prefect.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nmedians: {json.dumps({k: v and round(v, 2) for k, v in summary['median'].items()})}")
    if leaked:
        print(f"leaked processes (killed): {leaked}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
