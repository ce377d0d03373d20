"""Issue 6 on a real Prefect server: approval-to-serving of a rollback, and how fast a failed canary rolls back.

    uv run python -m bench.bench_prefect [--rounds 3] [--canaries 2]

One `prefect server start` (SQLite), the dynadeploy-process pool, `prefect deploy` of deploy-local,
canary-local and rollback-local from prefect.yaml, and a process worker — the stack of the
end-to-end tests (tests/e2e_prefect/stack.py), all on 127.0.0.1, in a temporary DYNADEPLOY_HOME.

1. Rollback. A target serves spec B (revision 2; spec A is revision 1). Each round starts
   rollback-local with revision=1, waits until the run is Paused on its approval form, then resumes
   it with approve=true (the call the UI's Resume makes) and times, from the start of that call:
   - resume_to_serving_s: until the ledger shows the restored revision serving and the endpoint
     answers a chat request (a poller thread, which runs in the direct rounds too);
   - resume_to_completed_s: until the run is Completed (the server's end time: smoke test passed,
     results recorded, artifacts written, the target's slot released).
   The baseline, direct_stages_s, is the same restore's operations called directly on the backend in
   this process, in the flow's order, no Prefect: provision, gpu, platform, model cache, rollout, the
   smoke test and its record (B is made to serve again first, untimed); direct_to_serving_s is when
   the same poller sees the restored revision answer. ratio_serving = resume_to_serving_s /
   direct_to_serving_s (the issue's goal: <= 1.2), ratio_completed = resume_to_completed_s /
   direct_stages_s.
   Where the time goes, from the server's records of the run (its states, logs and task runs and
   those of any subflow): approval_wait (resume call -> the flow logs "Resuming"), input_load,
   to_first_task (approval -> first restore task starts: a subflow's creation, if there is one),
   in_tasks (time inside task runs), between_tasks (gaps between them: stage logging, engine
   bookkeeping), after_tasks (last task -> run Completed: artifacts, slot release, final state);
   per stage, its task runs' time against the same operation called directly; the CPU seconds each
   group of processes used in the window (Dynamo, the Prefect server, the worker, its flow-run
   process, this bench, everything else on the machine); and Prefect's costs in isolation, in a
   subprocess against the same server (a no-op task run with the stages' options, an empty subflow,
   an artifact, a log record).
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
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
INTERVAL_S = 30
CANARY = {"requests_per_step": 24, "min_samples": 12, "steps": [50, 100], "analysis_interval_s": INTERVAL_S,
          "max_ttft_regression": 3.0, "max_itl_regression": 3.0}


def serving_poller(backend, model: str, after: int, out: dict, stop: threading.Event) -> None:
    """Record when a revision newer than ``after`` is serving and then answers a request. Runs in both
    the Prefect and the direct rounds; it parses the ledger only when its file changed."""
    from tests.e2e_prefect.stack import chat

    seen, ready = None, False
    while not stop.is_set():
        if not ready:
            try:
                stamp = backend.paths.revisions.stat().st_mtime_ns
            except FileNotFoundError:
                stamp = None
            if stamp != seen:
                seen, revs = stamp, backend.revisions()
                ready = bool(revs and revs[-1].number > after and revs[-1].status == "serving")
        if ready:
            try:
                chat(backend.endpoint(), model, max_tokens=2, timeout_s=5)
            except Exception:  # noqa: BLE001 - not answering yet
                time.sleep(0.02)
                continue
            out["serving_at"] = time.monotonic()
            return
        time.sleep(0.02)


def direct_stages(spec, out: dict | None = None) -> dict:
    """The restore's operations for ``spec`` called directly on the backend, no Prefect: the baseline.

    Exactly what the rollback's restore runs, in the same order: provision, gpu, platform and model
    cache, rollout, the smoke test and its record. ``out`` gets the wall time of each."""
    from runtime import loadgen
    from runtime.local.backend import LocalBackend

    backend = LocalBackend(spec)
    each: dict[str, float] = {}
    t0 = last = time.monotonic()

    def lap(name: str) -> None:
        nonlocal last
        now = time.monotonic()
        each[name] = now - last
        last = now

    backend.provision()
    lap("provision")
    engine = backend.detect_gpus()["engine"]
    lap("gpu")
    backend.install_platform()
    lap("platform")
    model = backend.cache_model(engine)
    lap("model-cache")
    rollout = backend.roll_out(engine, model, reason="bench direct", started_by="bench")
    lap("rollout")
    smoke = loadgen.smoke_test(backend.endpoint(), spec.model.served(), spec.smoke)
    backend.record_smoke(rollout.revision, smoke.as_dict())
    lap("smoke")
    if out is not None:
        out["stages"] = each
    return {"direct_stages_s": time.monotonic() - t0, "revision": rollout.revision, "t0": t0}


def timed_direct(stack, backend, spec) -> dict:
    """direct_stages with the serving poller of the Prefect round running too (same load, same
    criterion for serving)."""
    before = backend.revisions()[-1].number
    out: dict = {}
    stop = threading.Event()
    poller = threading.Thread(target=serving_poller, args=(backend, spec.model.served(), before, out, stop))
    poller.start()
    cpu0 = cpu_snapshot(stack)
    row = direct_stages(spec, out)
    cpu = cpu_used(cpu0, cpu_snapshot(stack))
    poller.join(timeout=60)
    stop.set()
    return {"direct_to_serving_s": out["serving_at"] - row["t0"], "direct_stages_s": row["direct_stages_s"],
            "direct_each_s": out["stages"], "direct_cpu_s": cpu}


def cpu_snapshot(stack) -> dict[tuple[int, str], tuple[str, float]]:
    """CPU seconds so far of every live process, by who it is: the Dynamo processes of a deployment
    (their environment names it), the Prefect server, the worker, its flow-run processes (the
    stack's marker), this bench, everything else on the machine (other users of the two cores)."""
    from tests.e2e_prefect.stack import MARK

    tick = os.sysconf("SC_CLK_TCK")
    server, worker = stack.procs["server"].pid, stack.procs["worker"].pid
    marker = f"{MARK}={stack.token}".encode()
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        pid, sid = int(entry.name), int(stat[3])
        if any(e.startswith(b"DYNADEPLOY_DEPLOYMENT=") for e in environ):
            who = "dynamo"
        elif sid == server:
            who = "server"
        elif pid == os.getpid():
            who = "bench"
        elif pid == worker:
            who = "worker"
        elif marker in environ:
            who = "flow"
        else:
            who = "other"
        out[(pid, stat[19])] = (who, (int(stat[11]) + int(stat[12])) / tick)  # keyed by pid and start time
    return out


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds each group used between two snapshots (processes that ended in between are missed)."""
    used: dict[str, float] = dict.fromkeys(("dynamo", "server", "worker", "flow", "bench", "other"), 0.0)
    for key, (who, secs) in after.items():
        used[who] += secs - before.get(key, (who, 0.0))[1]
    return used


def _union(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def timeline(stack, run_id: str, t_wall: float) -> dict:
    """Where the time between the resume call (``t_wall``) and the run's end went, from the server's
    records: the run's states, its logs, and the task runs of it and its subflows."""
    from tests.e2e_prefect.stack import ts

    subs = stack.subflow_runs(run_id)
    ids = [run_id] + [f["id"] for f in subs]
    for _ in range(40):  # logs reach the server in batches, shortly after the run ends
        logs = sorted((e for rid in ids for e in stack.run_logs(rid)), key=lambda e: e["timestamp"])
        if any(e["message"].startswith("stage restore: done") for e in logs):
            break
        time.sleep(0.5)

    def at(prefix: str) -> float | None:
        return next((ts(e["timestamp"]) - t_wall for e in logs if e["message"].startswith(prefix)), None)

    states = stack.http.get("/flow_run_states/", params={"flow_run_id": run_id}).json()
    resumed = [ts(st["timestamp"]) - t_wall for st in states
               if st["type"] == "RUNNING" and ts(st["timestamp"]) >= t_wall - 1]
    fr = stack.flow_run(run_id)
    sub_ids = {f["id"] for f in subs}
    tasks = sorted(((t["name"].rsplit("-", 1)[0], ts(t["start_time"]) - t_wall, ts(t["end_time"]) - t_wall)
                    for t in stack.task_runs(ids)
                    if t["start_time"] and t["end_time"] and ts(t["start_time"]) > t_wall
                    and not (t["flow_run_id"] == run_id and t["name"].startswith("deploy-") and sub_ids)),
                   key=lambda t: t[1])
    spans = [(a, b) for _, a, b in tasks]
    first, last = min(a for a, _ in spans), max(b for _, b in spans)
    approved = at("stage approval: done")
    end = ts(fr["end_time"]) - t_wall
    return {
        "resumed_s": min(resumed) if resumed else None,    # the server's Running state after the resume call
        "noticed_s": at("Resuming flow run execution"),  # the paused flow sees it
        "approved_s": approved,                          # approval input loaded, logged
        "restore_start_s": at("stage restore: start"),
        "subflow_start_s": (ts(subs[0]["start_time"]) - t_wall) if subs else None,
        "first_task_s": first, "last_task_end_s": last, "restore_done_s": at("stage restore: done"), "end_s": end,
        "tasks": [{"name": n, "start_s": a, "s": b - a} for n, a, b in tasks],
        "breakdown": {
            "approval_wait": at("Resuming flow run execution") or approved,
            "input_load": approved - (at("Resuming flow run execution") or approved),
            "to_first_task": first - approved,
            "in_tasks": _union(spans),
            "between_tasks": (last - first) - _union(spans),
            "after_tasks": end - last,
        },
        "task_runs": len(tasks), "subflows": len(subs),
    }


def rollback_round(stack, path_b: Path, spec_a, spec_b) -> dict:
    from runtime.local.backend import LocalBackend

    backend = LocalBackend(spec_b)
    assert backend.revisions()[-1].spec_hash != backend.revisions()[0].spec_hash, "B must be serving"
    run_id = stack.run("rollback/rollback-local", spec=str(path_b), revision=1, reason="bench")
    stack.wait_for_form(run_id, timeout_s=300)
    before = backend.revisions()[-1].number
    out: dict = {}
    stop = threading.Event()
    poller = threading.Thread(target=serving_poller,
                              args=(backend, spec_b.model.served(), before, out, stop))
    poller.start()
    cpu0 = cpu_snapshot(stack)
    t_wall = time.time()
    t0 = time.monotonic()
    stack.resume(run_id, {"approve": True, "note": "bench"})
    done = stack.wait(run_id, timeout_s=300, poll_s=0.5)  # the server's end time says when, not this poll
    cpu = cpu_used(cpu0, cpu_snapshot(stack))
    poller.join(timeout=60)
    stop.set()
    assert done["state_type"] == "COMPLETED", done["state"]
    from tests.e2e_prefect.stack import ts

    row = {"resume_to_serving_s": out["serving_at"] - t0, "resume_to_completed_s": ts(done["end_time"]) - t_wall,
           "timeline": timeline(stack, run_id, t_wall), "cpu_s": cpu}
    # the same transition without Prefect: B serving again (untimed), then the stages for A
    direct_stages(spec_b)
    row |= timed_direct(stack, backend, spec_a)
    direct_stages(spec_b)  # leave B serving for the next round
    row["ratio_completed"] = row["resume_to_completed_s"] / row["direct_stages_s"]
    row["ratio_serving"] = row["resume_to_serving_s"] / row["direct_to_serving_s"]
    row["loadavg_1m"] = os.getloadavg()[0]
    return row


def canary_round(stack, path: Path) -> dict:
    from tests.e2e_prefect.stack import ts

    run_id = stack.run("canary/canary-local", spec=str(path), candidate={"serving": {"mocker": {"speedup_ratio": 0.05}}},
                       reason="bench slow candidate")
    fr = stack.wait(run_id, timeout_s=400)
    assert fr["state_type"] == "FAILED", fr["state"]
    events = stack.wait_events(["dynadeploy.canary."], lambda evs: any(e["event"].endswith("rolled-back") for e in evs),
                               related_id=f"prefect.flow-run.{run_id}")
    at = {e["event"].rsplit(".", 1)[-1]: e for e in events}
    rolled, step = at["rolled-back"], at["step"]
    logs = stack.run_logs(run_id)
    start = next(ts(e["timestamp"]) for e in logs if e["message"].startswith("stage analysis side-by-side: start"))
    return {"withdraw_s": rolled["payload"]["withdraw_s"],
            "analysis_s": ts(step["occurred"]) - start,
            "analysis_to_withdrawn_s": ts(rolled["occurred"]) - start,
            "started_to_withdrawn_s": ts(rolled["occurred"]) - ts(at["started"]["occurred"]),
            "flow_wall_s": ts(fr["end_time"]) - ts(fr["start_time"]),
            "analysis_interval_s": INTERVAL_S, "verdict": step["payload"]["why"][:120]}


def micro(spec_path: str, n: int = 20) -> dict:
    """Prefect's own costs in isolation, in a flow against the bench's server (run in a subprocess
    with the stack's environment): a no-op task with the stages' options called with the spec, an
    empty subflow, an artifact, a log record. Seconds per call, the medians of ``n``."""
    from prefect import flow, get_run_logger, task
    from prefect.artifacts import create_markdown_artifact
    from prefect.cache_policies import NO_CACHE

    from flows._spec import load
    from tasks._policy import TRANSIENT

    @task(name="noop", cache_policy=NO_CACHE, timeout_seconds=900, **TRANSIENT)
    def noop(spec) -> dict:
        return {"ok": True}

    @flow(name="bench-empty-subflow")
    def empty(spec: dict) -> dict:
        return {}

    def per_call(fn, k: int) -> float:
        took = []
        for _ in range(k):
            t = time.perf_counter()
            fn()
            took.append(time.perf_counter() - t)
        return sorted(took)[len(took) // 2]

    @flow(name="bench-prefect-micro")
    def measure() -> dict:
        s = load(spec_path)
        logger = get_run_logger()
        return {
            "task_run_s": per_call(lambda: noop(s), n),
            "submitted_pair_s": per_call(lambda: [f.result() for f in (noop.submit(s), noop.submit(s))], n // 2),
            "subflow_s": per_call(lambda: empty(spec=s.model_dump(mode="json")), max(3, n // 4)),
            "artifact_s": per_call(lambda: create_markdown_artifact(key="bench-micro", markdown="x"), max(3, n // 4)),
            "log_s": per_call(lambda: logger.info("bench"), n),
        }

    return measure()


def med(vals: list) -> float | None:
    vals = sorted(v for v in vals if v is not None)
    return vals[len(vals) // 2] if vals else None


STAGE_OF = {"provision": "provision", "detect-gpus": "gpu", "install-platform": "platform",
            "cache-model": "model-cache", "roll-out": "rollout", "smoke-test": "smoke", "record-smoke": "smoke"}


def stage_medians(rollbacks: list[dict]) -> dict[str, tuple[float, float]]:
    """Per stage: its task runs' time in the flow and its time called directly (medians over rounds)."""
    out = {}
    for name in dict.fromkeys(STAGE_OF.values()):
        flow = [sum(t["s"] for t in r["timeline"]["tasks"] if STAGE_OF.get(t["name"]) == name) for r in rollbacks]
        out[name] = (med(flow), med([r["direct_each_s"][name] for r in rollbacks]))
    return out


def run_micro(stack, path: Path) -> dict:
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "bench.bench_prefect", "--micro", str(path)], cwd=ROOT,
                          env=stack.env, capture_output=True, text=True, timeout=300, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--canaries", type=int, default=2)
    ap.add_argument("--micro", metavar="SPEC", help=argparse.SUPPRESS)  # the subprocess of run_micro
    args = ap.parse_args()
    if args.micro:
        print(json.dumps(micro(args.micro)))
        return
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
            assert stack.wait(stack.run("deploy/deploy-local", spec=str(p)), timeout_s=300)["state_type"] == "COMPLETED"
        spec_a, spec_b = load_spec(path_a), load_spec(path_b)
        rollbacks = [rollback_round(stack, path_b, spec_a, spec_b) for _ in range(args.rounds)]
        micros = [run_micro(stack, path_a) for _ in range(2)]

        canaries = []
        if args.canaries:
            path_c = stack.write_spec("bench-canary", {"mocker": {"speedup_ratio": 10.0}}, canary=CANARY)
            fr = stack.wait(stack.run("deploy/deploy-local", spec=str(path_c)), timeout_s=300)
            assert fr["state_type"] == "COMPLETED"
            canaries = [canary_round(stack, path_c) for _ in range(args.canaries)]
    except BaseException:
        print(f"failed; logs kept in {stack.logs}", file=sys.stderr)
        stack.stop()
        raise
    leaked = stack.stop()
    shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()[0]

    print(f"stack up {stack.timings.get('up_s', 0):.1f} s (server {stack.timings.get('server_start_s', 0):.1f} s, "
          f"deploy {stack.timings.get('deploy_s', 0):.1f} s); load avg {load:.2f}")
    print("\nrollback: approval (resume) -> restored revision serving / run completed, vs the same operations "
          "called directly")
    print(f"{'round':>5} {'load':>5} {'noticed':>8} {'->serving':>10} {'->completed':>12} {'direct_serv':>12} "
          f"{'direct_all':>11} {'serving x':>10} {'completed x':>12}")
    for i, r in enumerate(rollbacks):
        print(f"{i:>5} {r['loadavg_1m']:>5.2f} {r['timeline']['breakdown']['approval_wait']:>8.2f} "
              f"{r['resume_to_serving_s']:>10.2f} {r['resume_to_completed_s']:>12.2f} {r['direct_to_serving_s']:>12.2f} "
              f"{r['direct_stages_s']:>11.2f} {r['ratio_serving']:>10.2f} {r['ratio_completed']:>12.2f}")
    parts = list(rollbacks[0]["timeline"]["breakdown"])
    print("\nwhere resume -> completed goes (medians, s): " + ", ".join(
        f"{k} {med([r['timeline']['breakdown'][k] for r in rollbacks]):.2f}" for k in parts)
        + f"; {rollbacks[0]['timeline']['task_runs']} task runs, {rollbacks[0]['timeline']['subflows']} subflow(s)")
    per_stage = stage_medians(rollbacks)
    print(f"{'stage':>12} {'task run s':>11} {'direct s':>9}")
    for name, (in_flow, direct) in per_stage.items():
        print(f"{name:>12} {in_flow:>11.2f} {direct:>9.2f}")
    groups = list(rollbacks[0]["cpu_s"])
    print("CPU seconds used in the window (medians): " + "; ".join(
        f"{g} {med([r['cpu_s'][g] for r in rollbacks]):.2f} vs {med([r['direct_cpu_s'][g] for r in rollbacks]):.2f}"
        for g in groups) + " (rollback flow vs direct)")
    m = {k: med([x[k] for x in micros]) for k in micros[0]}
    print("prefect alone (medians per call, ms): " + ", ".join(f"{k[:-2]} {v * 1000:.0f}" for k, v in m.items()))
    print(f"\nfailed canary: rollback time vs analysis_interval_s = {INTERVAL_S}")
    print(f"{'run':>4} {'withdraw_s':>11} {'analysis_s':>11} {'analysis->withdrawn':>20} {'started->withdrawn':>19} "
          f"{'flow_wall_s':>12}")
    for i, c in enumerate(canaries):
        print(f"{i:>4} {c['withdraw_s']:>11.2f} {c['analysis_s']:>11.2f} {c['analysis_to_withdrawn_s']:>20.2f} "
              f"{c['started_to_withdrawn_s']:>19.2f} {c['flow_wall_s']:>12.2f}")

    def median(rows, key):
        return med([r[key] for r in rows])

    summary = {
        "stack": stack.timings, "loadavg_1m": load, "leaked_processes": leaked,
        "rollback_rounds": rollbacks, "canary_runs": canaries, "prefect_alone": micros,
        "breakdown_median": {k: med([r["timeline"]["breakdown"][k] for r in rollbacks]) for k in parts},
        "stages_median": per_stage,
        "cpu_median": {g: [med([r["cpu_s"][g] for r in rollbacks]), med([r["direct_cpu_s"][g] for r in rollbacks])]
                       for g in groups},
        "median": {k: median(rollbacks, k) for k in ("resume_to_serving_s", "resume_to_completed_s",
                                                      "direct_to_serving_s", "direct_stages_s", "ratio_serving",
                                                      "ratio_completed", "loadavg_1m")}
        | {k: median(canaries, k) for k in ("withdraw_s", "analysis_s", "analysis_to_withdrawn_s")},
        "goal_ratio": 1.2, "analysis_interval_s": INTERVAL_S,
    }
    (RESULTS / "prefect.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nmedians: {json.dumps({k: v and round(v, 2) for k, v in summary['median'].items()})}")
    if leaked:
        print(f"leaked processes (killed): {leaked}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
