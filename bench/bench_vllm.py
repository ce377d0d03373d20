"""A real (CPU) vLLM worker: start -> first token under dynadeploy vs the same engine launched by hand,
and memory per worker.

    make vllm-cpu && uv run python -m bench.bench_vllm [--rounds 1]

Three launches per round, one at a time, same model (the built-in tiny Llama), same engine flags
(float32, eager, max-model-len 512, 1 GiB KV cache), same machine, same run:
1. `engine`: vLLM's own OpenAI server by hand (`python -m vllm.entrypoints.openai.api_server`), no Dynamo.
2. `stack`: Dynamo by hand: `dynamo.frontend` + `dynamo.vllm` started together with subprocess.
3. `dynadeploy`: the local target's stages run in this process (provision, frontend, model cache, roll
   out under supervisord with readiness), no Prefect: the orchestration's share is this minus `stack`.
Each: spawn -> first streamed token (a poller every 100 ms), then the memory of the worker's process tree
(RSS and PSS, from /proc/<pid>/smaps_rollup; the engine-core child included), then SIGTERM -> exit.
Figures only, nothing asserted; read them against the load average printed with them (2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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
sys.path.insert(0, str(ROOT))

from runtime.host.ports import free_port
from runtime.render.local_plan import cpu_vllm_env
from runtime.targets.local import model_cache, tiny_llama, vllm_cpu

HOST = "127.0.0.1"
FLAGS = ["--dtype", "float32", "--enforce-eager", "--max-model-len", "512"]
MODEL = tiny_llama.MODEL_ID


def first_token(url: str, started: float, out: dict, stop: threading.Event) -> None:
    body = {"model": MODEL, "prompt": "hello", "max_tokens": 2, "stream": True}
    while not stop.is_set():
        try:
            with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=10) as r:
                if r.status_code == 200:
                    for line in r.iter_lines():
                        if line.startswith("data:") and '"text"' in line:
                            out["first_token_s"] = round(time.monotonic() - started, 2)
                            return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)


def wait_first_token(url: str, started: float, timeout_s: float = 600) -> float:
    out: dict = {}
    stop = threading.Event()
    t = threading.Thread(target=first_token, args=(url, started, out, stop), daemon=True)
    t.start()
    t.join(timeout_s)
    stop.set()
    if "first_token_s" not in out:
        raise TimeoutError(f"no first token from {url} in {timeout_s} s")
    return out["first_token_s"]


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def memory_mb(pid: int) -> dict:
    rss = pss = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("Rss", "Pss"):
                    kb = int(value.split()[0])
                    rss, pss = (rss + kb, pss) if key == "Rss" else (rss, pss + kb)
        except OSError:
            pass
    return {"rss_mb": round(rss / 1024), "pss_mb": round(pss / 1024), "processes": len(tree(pid))}


def stop(popen: subprocess.Popen) -> float:
    t0 = time.monotonic()
    os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
    return round(time.monotonic() - t0, 2)


def spawn(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def base_env(work: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return (
        env
        | cpu_vllm_env(HOST, 1)
        | {
            "PYTHONUNBUFFERED": "1",
            "DYN_LOG": "info",
            "DYN_TCP_RPC_HOST": HOST,
            "DYN_EVENT_PLANE_HOST": HOST,
            "DYN_TCP_RESPONSE_STREAM_HOST": HOST,
            "DYN_FILE_KV": str(work / "kv"),
        }
    )


def engine_by_hand(model: Path, python: str, work: Path) -> dict:
    port = free_port(HOST)
    cmd = [
        python,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        MODEL,
        "--host",
        HOST,
        "--port",
        str(port),
        *FLAGS,
    ]
    t0 = time.monotonic()
    p = spawn(cmd, base_env(work), work / "engine.log")
    try:
        ft = wait_first_token(f"http://{HOST}:{port}", t0)
        mem = memory_mb(p.pid)
    finally:
        stopped = stop(p)
    return {"first_token_s": ft, "worker_memory": mem, "stop_s": stopped}


def stack_by_hand(model: Path, python: str, work: Path) -> dict:
    port, sys_port = free_port(HOST), free_port(HOST, low=True)
    env = base_env(work)
    fe = [
        sys.executable,
        "-m",
        "dynamo.frontend",
        "--discovery-backend",
        "file",
        "--http-host",
        HOST,
        "--http-port",
        str(port),
    ]
    worker = [
        python,
        "-m",
        "dynamo.vllm",
        "--model",
        str(model),
        "--served-model-name",
        MODEL,
        "--discovery-backend",
        "file",
        *FLAGS,
    ]
    t0 = time.monotonic()
    f = spawn(fe, env, work / "frontend.log")
    w = spawn(worker, env | {"DYN_SYSTEM_HOST": HOST, "DYN_SYSTEM_PORT": str(sys_port)}, work / "worker.log")
    try:
        ft = wait_first_token(f"http://{HOST}:{port}", t0)
        mem = memory_mb(w.pid)
    finally:
        stopped = stop(w)
        stop(f)
    return {"first_token_s": ft, "worker_memory": mem, "stop_s": stopped}


def dynadeploy(work: Path) -> dict:
    from runtime.spec import load_spec
    from runtime.targets.local.backend import LocalBackend

    port = free_port(HOST)
    doc = yaml.safe_load((ROOT / "infra" / "targets" / "local-vllm.yaml").read_text())
    doc["name"] = "bench-vllm"
    doc["target"] |= {"state_dir": str(work / "home"), "frontend_port": port}
    doc["serving"]["workers"]["engine_args"] = []
    path = work / "bench-vllm.yaml"
    path.write_text(yaml.safe_dump(doc))
    backend = LocalBackend(load_spec(path))
    t0 = time.monotonic()
    out: dict = {}
    halt = threading.Event()
    poller = threading.Thread(target=first_token, args=(f"http://{HOST}:{port}", t0, out, halt), daemon=True)
    poller.start()
    try:
        backend.provision()
        engine = backend.detect_gpus().engine
        backend.install_platform()
        cached = backend.cache_model(engine)
        rollout = backend.roll_out(engine, cached)
        poller.join(600)
        worker = backend.supervisor.processes()[f"worker-r{rollout.revision}-0"]
        mem = memory_mb(worker.pid)
        t1 = time.monotonic()
        down = backend.teardown()
        return {
            "first_token_s": out.get("first_token_s"),
            "rollout_s": round(rollout.seconds, 2),
            "worker_memory": mem,
            "teardown_s": round(time.monotonic() - t1, 2),
            "leftovers": down.leftovers,
        }
    finally:
        halt.set()
        backend.teardown()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    python = vllm_cpu.find().python
    work = Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    try:
        model = model_cache.ensure_model(work / "models", MODEL, None, weights=True).path
        rounds = []
        for i in range(args.rounds):
            row = {"round": i + 1, "load_before": os.getloadavg()[0]}
            for name, fn in (
                ("engine", lambda: engine_by_hand(model, python, work)),
                ("stack", lambda: stack_by_hand(model, python, work)),
                ("dynadeploy", lambda: dynadeploy(work)),
            ):
                (work / "kv").mkdir(exist_ok=True)
                row[name] = fn()
                shutil.rmtree(work / "kv", ignore_errors=True)
                print(
                    f"round {i + 1} {name:10s} {json.dumps(row[name])}  (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
            row["orchestration_share_s"] = round(
                row["dynadeploy"]["first_token_s"] - row["stack"]["first_token_s"], 2
            )
            row["dynamo_share_s"] = round(row["stack"]["first_token_s"] - row["engine"]["first_token_s"], 2)
            rounds.append(row)
        result = {"versions": vllm_cpu.versions(vllm_cpu.root()), "cores": os.cpu_count(), "rounds": rounds}
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "vllm.json").write_text(json.dumps(result, indent=2))
        print(
            f"\n{'round':>5} {'engine':>8} {'stack':>8} {'dynadeploy':>10} {'orch share':>10} "
            f"{'worker RSS':>10} {'worker PSS':>10} {'load':>5}"
        )
        for r in rounds:
            print(
                f"{r['round']:>5} {r['engine']['first_token_s']:>7}s {r['stack']['first_token_s']:>7}s "
                f"{r['dynadeploy']['first_token_s']:>9}s {r['orchestration_share_s']:>9}s "
                f"{r['dynadeploy']['worker_memory']['rss_mb']:>8}MB "
                f"{r['dynadeploy']['worker_memory']['pss_mb']:>8}MB "
                f"{r['load_before']:>5.1f}"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
