"""A no-op converge against `dynadeploy status`, whole processes, on one local deployment (issue 15).

Why: `dynadeploy deploy SPEC` of an unchanged, healthy deployment should cost about what reading its
status costs (goal: at most 2x), while still recording the run in Prefect and checking health
(flows/_converge.py). Measured in one run, on one deployment, as users run them (the console script
in a subprocess; the local Prefect server the CLI starts once is already up):

- ``status``: `dynadeploy status SPEC --output json`
- ``deploy (no-op)``: `dynadeploy deploy SPEC --output json`, which takes the fast path
- ``deploy (full flow)``: the same with ``DYNADEPLOY_CONVERGE=full``: the deploy flow through
  Prefect's engine, which also finds nothing to change (the figure before the fast path)
- ``import flows.cli``: `python -c "import flows.cli"`, the CLI's own start

Each round runs the commands one after the other (alternating, so the machine's load hits them
alike); the table shows medians of ``--rounds`` and each command's ratio to ``status``.

Run: ``uv run python -m bench.bench_converge [--rounds 5]`` (~2-4 min: one cold deploy first, then the
rounds; everything is torn down and the Prefect server stopped at the end). Writes
bench/results/converge.json. Figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "converge.json"
SPEC = """apiVersion: dynadeploy.io/v1
name: bench-converge
target: {{kind: local, discovery: file, gpus: auto, host: 127.0.0.1, state_dir: {state}}}
model: {{id: dynadeploy/tiny-mock}}
serving: {{topology: agg, engine: auto, workers: {{replicas: 1, gpus: 0}}, mocker: {{speedup_ratio: 10.0}}}}
smoke: {{requests: 40, concurrency: 8, max_tokens: 32}}
"""


def timed(cmd: list[str], env: dict, check_json: bool = True) -> tuple[float, dict | None]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600, check=False)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} exited {out.returncode}: {out.stderr[-2000:]}")
    return wall, json.loads(out.stdout) if check_json else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    exe = shutil.which("dynadeploy") or sys.exit("dynadeploy is not installed (uv sync)")
    home = Path(tempfile.mkdtemp(prefix="bench-converge-"))
    spec = home / "bench-converge.yaml"
    spec.write_text(SPEC.format(state=home / "state"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"DYNADEPLOY_HOME": str(home), "PREFECT_HOME": str(home / "prefect-home")}
    commands = {
        "status": ([exe, "status", str(spec), "--output", "json"], env),
        "deploy (no-op)": ([exe, "deploy", str(spec), "--output", "json"], env),
        "deploy (full flow)": (
            [exe, "deploy", str(spec), "--output", "json"],
            env | {"DYNADEPLOY_CONVERGE": "full"},
        ),
        "import flows.cli": ([sys.executable, "-c", "import flows.cli"], env),
    }
    load_before = os.getloadavg()[0]
    walls: dict[str, list[float]] = {name: [] for name in commands}
    try:
        cold, first = timed(commands["deploy (full flow)"][0], env)  # starts the Prefect server too
        print(f"cold deploy (Prefect server start included): {cold:.1f} s, revision {first['revision']}")
        for _ in range(args.rounds):
            for name, (cmd, cmd_env) in commands.items():
                wall, out = timed(cmd, cmd_env, check_json=not name.startswith("import"))
                if name.startswith("deploy"):
                    assert out["revision"] == first["revision"], out  # nothing rolled out
                walls[name].append(wall)
    finally:
        subprocess.run([exe, "teardown", str(spec)], env=env, capture_output=True, timeout=300, check=False)
        subprocess.run([exe, "server", "stop"], env=env, capture_output=True, timeout=60, check=False)
        shutil.rmtree(home, ignore_errors=True)
    status = statistics.median(walls["status"])
    rows = [
        {
            "command": name,
            "median_s": round(statistics.median(v), 2),
            "min_s": round(min(v), 2),
            "max_s": round(max(v), 2),
            "ratio_vs_status": round(statistics.median(v) / status, 2),
        }
        for name, v in walls.items()
    ]
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1m_before": round(load_before, 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        },
        "rounds": args.rounds,
        "cold_deploy_s": round(cold, 2),
        "rows": rows,
        "goal": {
            "noop_over_status": rows[1]["ratio_vs_status"],
            "goal": 2.0,
            "met": rows[1]["ratio_vs_status"] <= 2.0,
        },
    }
    m = result["machine"]
    print(
        f"{m['cpus']} cpus, load average (1 min) {m['loadavg_1m_before']} before, {m['loadavg_1m_after']} after; "
        f"medians of {args.rounds} rounds"
    )
    print(f"{'command':<20} {'median s':>9} {'min s':>7} {'max s':>7} {'x status':>9}")
    for r in rows:
        print(
            f"{r['command']:<20} {r['median_s']:>9} {r['min_s']:>7} {r['max_s']:>7} {r['ratio_vs_status']:>9}"
        )
    goal = result["goal"]
    print(
        f"goal: no-op deploy / status = {goal['noop_over_status']} (at most {goal['goal']}): "
        f"{'met' if goal['met'] else 'NOT met'}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
