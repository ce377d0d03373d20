"""Issue 16: does the canary gate cry wolf? Real local canaries, counted.

    uv run python -m bench.bench_canary [--healthy 10] [--slow 10] [--slow-speedup 0.7] [--busy 2]

The README's canary example on the local target: infra/targets/local.yaml (one mocker worker at
speedup_ratio 10, the default canary section: 40 requests per side, steps [10, 50, 100]) is deployed
once; then, alternating:

- healthy: `canary` with candidate `{"serving": {"mocker": {"speedup_ratio": 12}}}` (a faster engine). A
  promotion is right; a rollback is a false rollback. After a promotion the original spec is deployed
  again, so every healthy run starts from the same stable.
- slow: candidate speedup_ratio 0.7 (`--slow-speedup`): the mocker's simulated prefill, a few ms of
  a ~30 ms TTFT at speedup 10, grows 14-fold, so TTFT about doubles on a quiet machine (speedup 5 did
  not move the measured TTFT past the load's noise). The measured stable/candidate TTFT p90s of every
  step are recorded. A rollback is right; a promotion is a missed regression.

Everything runs in-process through the real flows (Dynamo frontend and mocker processes, supervisord, a
Prefect server under a temporary DYNADEPLOY_HOME, loopback only). Each run records its outcome, every
step's verdict, how many analyses it took, the wall time and the 1-minute load average before and after.
`--busy N` adds N busy-loop processes for the bench's duration (each
ends by itself after --budget-s + 600 s at the latest, and is stopped when the bench ends), so the figures
come from a loaded machine whatever else runs. Figures only; nothing asserts. Writes bench/results/canary.json after every run (so a cut-short bench
still reports what it did) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
HEALTHY = {"serving": {"mocker": {"speedup_ratio": 12.0}}}


def write_spec(work: Path, port: int) -> Path:
    doc = yaml.safe_load((ROOT / "infra" / "targets" / "local.yaml").read_text())
    doc["name"] = "bench-canary"
    doc["target"] |= {"state_dir": str(work / "state"), "frontend_port": port}
    path = work / "bench-canary.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def one(kind: str, path: Path, candidate: dict) -> dict:
    from flows.canary import CanaryFailed, canary
    from flows.deploy import deploy

    load_before = os.getloadavg()[0]
    t0 = time.monotonic()
    try:
        result = canary(spec=str(path), candidate=candidate, reason=f"bench {kind}")
        outcome, rows, why = "promoted", result["steps"], ""
    except CanaryFailed as exc:
        outcome, rows, why = "rolled back", getattr(exc, "steps", None), str(exc)
    wall = time.monotonic() - t0
    load_after = os.getloadavg()[0]
    redeploy = None
    if outcome == "promoted":
        try:
            deploy(spec=str(path), reason="bench: back to the original stable")
        except Exception as exc:
            redeploy = f"{type(exc).__name__}: {exc}"[:300]
    return {
        "kind": kind,
        "outcome": outcome,
        "wall_s": round(wall, 1),
        "load_before": load_before,
        "load_after": load_after,
        "why": why[:600],
        "steps": rows,
        "redeploy_error": redeploy,
    }


def _ms(v) -> str:
    return "-" if v is None else f"{v:.0f}"


def summarise(runs: list[dict]) -> dict:
    healthy = [r for r in runs if r["kind"] == "healthy"]
    slow = [r for r in runs if r["kind"] == "slow"]
    loads = [x for r in runs for x in (r["load_before"], r["load_after"])]
    return {
        "healthy_runs": len(healthy),
        "healthy_promoted": sum(r["outcome"] == "promoted" for r in healthy),
        "false_rollback_rate": (sum(r["outcome"] != "promoted" for r in healthy) / len(healthy))
        if healthy
        else None,
        "slow_runs": len(slow),
        "slow_rolled_back": sum(r["outcome"] == "rolled back" for r in slow),
        "missed_regression_rate": (sum(r["outcome"] == "promoted" for r in slow) / len(slow))
        if slow
        else None,
        "load_1min_min": min(loads) if loads else None,
        "load_1min_max": max(loads) if loads else None,
        "load_1min_mean": round(sum(loads) / len(loads), 2) if loads else None,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--healthy", type=int, default=10)
    ap.add_argument("--slow", type=int, default=10)
    ap.add_argument("--slow-speedup", type=float, default=0.7)
    ap.add_argument("--budget-s", type=float, default=3000, help="start no new run after this many seconds")
    ap.add_argument("--busy", type=int, default=0, help="busy-loop processes to run meanwhile (load)")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dynadeploy-bench-canary-"))
    os.environ["DYNADEPLOY_HOME"] = str(work / "home")
    os.environ.pop("PREFECT_API_URL", None)
    from runtime.gateways import prefect_server

    # the server first: Prefect reads PREFECT_API_URL when it is imported
    os.environ["PREFECT_API_URL"] = prefect_server.ensure_server(timeout_s=600)
    from flows.deploy import deploy
    from runtime.host.ports import free_port
    from runtime.spec import load_spec
    from runtime.targets.local.backend import LocalBackend

    path = write_spec(work, free_port())
    slow = {"serving": {"mocker": {"speedup_ratio": args.slow_speedup}}}
    order = []
    for i in range(max(args.healthy, args.slow)):
        order += [("healthy", HEALTHY)] if i < args.healthy else []
        order += [("slow", slow)] if i < args.slow else []
    runs: list[dict] = []
    t_start = time.monotonic()
    out = RESULTS / "canary.json"
    # each busy loop is bounded by itself, so a killed bench cannot leave one spinning for long
    busy = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import time\nend = time.time() + {args.budget_s + 600}\nwhile time.time() < end: pass",
            ]
        )
        for _ in range(args.busy)
    ]
    try:
        deploy(spec=str(path), reason="bench: stable")
        for kind, candidate in order:
            if time.monotonic() - t_start > args.budget_s:
                print(
                    f"budget of {args.budget_s:.0f} s spent: stopping after {len(runs)} runs", file=sys.stderr
                )
                break
            runs.append(one(kind, path, candidate))
            r = runs[-1]
            sbs = (r["steps"] or [{}])[0]
            fm = sbs.get("frontend_metrics") or {}
            print(
                f"{len(runs):>2} {kind:<8} {r['outcome']:<12} {r['wall_s']:>6.1f}s load {r['load_before']:.1f}"
                f"->{r['load_after']:.1f}  side-by-side ttft p90 client {_ms(sbs.get('stable_ttft_p90_ms'))}/"
                f"{_ms(sbs.get('candidate_ttft_p90_ms'))}, frontends {_ms(fm.get('stable', {}).get('ttft_p90_ms'))}/"
                f"{_ms(fm.get('candidate', {}).get('ttft_p90_ms'))}  {r['why'][:160]}",
                flush=True,
            )
            out.write_text(
                json.dumps(
                    {"args": vars(args), "summary": summarise(runs), "runs": runs}, indent=1, default=str
                )
            )
    finally:
        for p in busy:
            p.kill()
            p.wait()
        try:
            LocalBackend(load_spec(path)).teardown()
        except Exception as exc:
            print(f"teardown: {exc}", file=sys.stderr)
        prefect_server.stop_server()
    print(json.dumps(summarise(runs), indent=1))


if __name__ == "__main__":
    main()
