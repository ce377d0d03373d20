"""Deploy speed of the local target: cold `dynadeploy deploy` to first token, and what Prefect adds.

    uv run python -m bench.bench_deploy [--rounds 3]

1. Cold deploy to first token: a fresh state dir (no processes, model cache warm), the real CLI in a
   subprocess; a poller streams a chat request at the pinned frontend port every 50 ms and records
   when the first token arrives. Reported with the local Prefect server already running (how the CLI
   is used day to day); the one-off cost of starting that server is measured separately.
2. The stack itself: launch of the frontend + worker processes to the first token, without Prefect
   or the CLI (the `stack_s` column).
3. Orchestration overhead: the deploy flow's wall time (in process, against the same server) divided
   by the sum of the same stages run directly on the backend, in the same script (baseline).
Figures only; nothing here asserts a time. Everything binds to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def write_spec(directory: Path, name: str, port: int) -> Path:
    spec = {
        "apiVersion": "dynadeploy.io/v1",
        "name": name,
        "target": {"kind": "local", "state_dir": str(directory), "frontend_port": port},
        "smoke": {"requests": 16, "concurrency": 4},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def first_token_poller(url: str, model: str, started: float, out: dict, stop: threading.Event) -> None:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True}
    while not stop.is_set():
        try:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=5) as r:
                if r.status_code == 200:
                    for line in r.iter_lines():
                        if line.startswith("data:") and '"content"' in line:
                            out["first_token_s"] = time.monotonic() - started
                            return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)


def cli_cold_deploy(home: Path, env: dict, port: int, name: str) -> dict:

    spec = write_spec(home, name, port)
    out: dict = {}
    stop = threading.Event()
    t0 = time.monotonic()
    poller = threading.Thread(
        target=first_token_poller, args=(f"http://127.0.0.1:{port}", "dynadeploy/tiny-mock", t0, out, stop)
    )
    poller.start()
    proc = subprocess.run(
        [shutil.which("dynadeploy") or "dynadeploy", "deploy", str(spec), "--output", "json"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out["cli_wall_s"] = time.monotonic() - t0
    stop.set()
    poller.join()
    if proc.returncode != 0:
        raise SystemExit(f"deploy failed: {proc.stderr[-500:]}")
    subprocess.run(
        [shutil.which("dynadeploy"), "teardown", str(spec), "--output", "json"],
        env=env,
        capture_output=True,
        timeout=300,
        check=True,
    )
    return out


def direct_stages(home: Path, port: int, name: str) -> dict:
    """The stages' own work, no Prefect: the baseline of the overhead ratio."""
    from runtime.gateways import loadgen
    from runtime.spec import load_spec
    from runtime.targets.local.backend import LocalBackend

    spec = load_spec(write_spec(home, name, port))
    backend = LocalBackend(spec)
    t0 = time.monotonic()
    backend.provision()
    engine = backend.detect_gpus().engine
    t_stack = time.monotonic()
    backend.install_platform()
    model = backend.cache_model(engine)
    rollout = backend.roll_out(engine, model)
    stack_s = time.monotonic() - t_stack
    loadgen.smoke_test(backend.endpoint(), spec.model.served(), spec.smoke)
    total = time.monotonic() - t0
    backend.teardown()
    return {"stages_s": total, "stack_s": stack_s, "revision": rollout.revision}


def flow_run(home: Path, port: int, name: str) -> float:
    from flows.deploy import deploy
    from runtime.spec import load_spec
    from runtime.targets.local.backend import LocalBackend

    path = write_spec(home, name, port)
    t0 = time.monotonic()
    deploy(spec=str(path))
    wall = time.monotonic() - t0
    LocalBackend(load_spec(path)).teardown()
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    from runtime.gateways import prefect_server
    from runtime.host.ports import free_port

    work = Path(tempfile.mkdtemp(prefix="dynadeploy-bench-"))
    env = os.environ | {"DYNADEPLOY_HOME": str(work / "home")}
    os.environ["DYNADEPLOY_HOME"] = env["DYNADEPLOY_HOME"]
    os.environ.pop("PREFECT_API_URL", None)
    t0 = time.monotonic()
    api = prefect_server.ensure_server()
    server_start_s = time.monotonic() - t0
    env["PREFECT_API_URL"] = os.environ["PREFECT_API_URL"] = api
    # Warm the model cache once: "cold" below means no processes, not an empty cache.
    direct_stages(work, free_port(), "bench-warm")

    rows = []
    for i in range(args.rounds):
        cli = cli_cold_deploy(work, env, free_port(), f"bench-cli-{i}")
        direct = direct_stages(work, free_port(), f"bench-direct-{i}")
        flow_s = flow_run(work, free_port(), f"bench-flow-{i}")
        rows.append(
            {"round": i, **cli, **direct, "flow_s": flow_s, "overhead_ratio": flow_s / direct["stages_s"]}
        )

    load = os.getloadavg()[0]
    print(f"prefect server start (one-off, first CLI use): {server_start_s:.1f} s; load avg {load:.2f}")
    print(
        f"{'round':>5} {'first_token_s':>14} {'cli_wall_s':>11} {'stack_s':>8} "
        f"{'stages_s':>9} {'flow_s':>7} {'flow/stages':>12}"
    )
    for r in rows:
        print(
            f"{r['round']:>5} {r.get('first_token_s', float('nan')):>14.2f} {r['cli_wall_s']:>11.2f} "
            f"{r['stack_s']:>8.2f} {r['stages_s']:>9.2f} {r['flow_s']:>7.2f} {r['overhead_ratio']:>12.2f}"
        )
    med = sorted(rows, key=lambda r: r["cli_wall_s"])[len(rows) // 2]
    summary = {
        "prefect_server_start_s": server_start_s,
        "rounds": rows,
        "median_round": med,
        "loadavg_1m": load,
    }
    (RESULTS / "deploy.json").write_text(json.dumps(summary, indent=2))
    prefect_server.stop_server()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
