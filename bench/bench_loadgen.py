"""How much does runtime/gateways/loadgen.py itself cost, and how fast can it drive load before it is the
limit?

Why: a smoke/SLA gate is only trustworthy if the client adds little to the latencies it reports and
can offer the load asked of it. Two measurements against tests/harness/fake_openai.py, run as a separate
process on uvloop with zero artificial delay, so this process's CPU is the client's alone:

1. Cost per request: sequential requests (concurrency 1) through ``run_load`` vs. the same requests
   through a minimal raw-asyncio HTTP/1.1 keep-alive client (hand-written request bytes, chunked body
   read to the last chunk, no JSON parsing), in alternating rounds of the same run. The client CPU per
   request is the steady figure (wall time swings with the machine's load); it is shown as a ratio to
   the raw client's. Goal (issue 15): under 1 ms of client CPU per request at 64 tokens.
2. Where the time goes, at 64 tokens: the same requests through each candidate stack, side by side:
   httpx's layers (httpcore + h11 alone, httpx's streamed response, httpx-sse's EventSource: the
   loadgen before issue 15), aiohttp's (its C HTTP parser: raw reads, lines split by its reader, raw
   reads through httpx-sse's line and event decoders) and the loadgen itself; each as a ratio to the
   raw client of the same run. ``--profile`` adds a cProfile of the loadgen (CPU time), grouped by
   package.
3. Measurement bias: with the fake adding 50 ms TTFT and 10 ms per token, how far the measured TTFT
   and ITL (per request; runtime/domain/load_report.py) are from those delays at concurrency 1 and 32, and the
   inter-chunk gaps as read.
4. Sustainable open-loop rate: ramp ``rate`` and watch the achieved send rate, the start lag behind the
   schedule and the CPU of the client and of the server; the first step where the achieved rate falls
   under 90 % of the target (or the client CPU saturates) ends the ramp.

Run: ``uv run python -m bench.bench_loadgen`` (``--quick`` for a short run; ``--asyncio`` to run the
client on asyncio's loop instead of the uvloop ``smoke_test`` uses when installed). Prints a table and writes
bench/results/loadgen.json. Figures are reported, never asserted. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from runtime.domain.sla import percentile
from runtime.gateways import loadgen

MODEL = "tiny-mock"
RESULTS = ROOT / "bench" / "results" / "loadgen.json"


# -- the fake server, in its own process ---------------------------------------------------------
class ServerProcess:
    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> Self:
        cmd = [sys.executable, "-m", "tests.harness.fake_openai", "--uvloop", "--models", MODEL]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip() if self.proc.stdout else ""
        if not line.startswith("READY "):
            self.__exit__()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.base_url = line.split()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.stdin:
            self.proc.stdin.close()  # the server exits when its stdin closes
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def cpu_s(self) -> float:
        """utime + stime of the server process, from /proc (Linux)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def handle_times(self) -> list[float]:
        import httpx

        async with httpx.AsyncClient() as client:
            return (await client.get(f"{self.base_url}/fake/stats")).json()["handle_s"]

    async def configure(self, **changes: object) -> None:
        import httpx

        async with httpx.AsyncClient() as client:
            (await client.post(f"{self.base_url}/fake/config", json=changes)).raise_for_status()


# -- the baseline: a minimal raw asyncio HTTP/1.1 client -----------------------------------------
class RawClient:
    """One keep-alive connection; writes fixed request bytes and reads the response to its end."""

    def __init__(self, base_url: str, payload: dict) -> None:
        host_port = base_url.removeprefix("http://")
        self.host, port = host_port.split(":")
        self.port = int(port)
        body = json.dumps(payload).encode()
        self.request = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    async def __aenter__(self) -> Self:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()
        await self.writer.wait_closed()

    async def send(self) -> float:
        started = time.perf_counter()
        self.writer.write(self.request)
        head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        if not head.startswith(b"http/1.1 200"):
            raise RuntimeError(f"raw client got {head[:40]!r}")
        if b"transfer-encoding: chunked" in head:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            await self.reader.readexactly(length)
        return time.perf_counter() - started


# -- 1. overhead per request ---------------------------------------------------------------------
async def overhead(server: ServerProcess, n: int, rounds: int, max_tokens: int, stream: bool) -> dict:
    payload = loadgen.chat_payload(MODEL, "hi", max_tokens, stream)
    args: dict[str, Any] = {"requests": n, "concurrency": 1, "max_tokens": max_tokens, "prompt": "hi"}
    args |= {"timeout_s": 10.0, "stream": stream}
    await loadgen.run_load(server.base_url, MODEL, **{**args, "requests": 50})  # warm up both sides
    lg_ms, raw_ms, lg_cpu, raw_cpu, server_ms, aio_cpu = [], [], [], [], [], []
    for _ in range(rounds):
        seen = len(await server.handle_times())
        cpu, t = time.process_time(), time.perf_counter()
        report = await loadgen.run_load(server.base_url, MODEL, **args)
        lg_ms.append((time.perf_counter() - t) * 1000 / n)
        lg_cpu.append((time.process_time() - cpu) * 1000 / n)
        assert report.errors == 0, report.first_error()
        server_ms.append(statistics.mean((await server.handle_times())[seen:]) * 1000)
        async with RawClient(server.base_url, payload) as raw:
            await raw.send()
            cpu, t = time.process_time(), time.perf_counter()
            for _ in range(n):
                await raw.send()
            raw_ms.append((time.perf_counter() - t) * 1000 / n)
            raw_cpu.append((time.process_time() - cpu) * 1000 / n)
        aio_cpu.append(await aiohttp_cpu_ms(server.base_url, payload, n))
    med = statistics.median
    return {
        "mode": "stream" if stream else "non-stream",
        "max_tokens": max_tokens,
        "requests_per_round": n,
        "rounds": rounds,
        "loadgen_ms_per_req": round(med(lg_ms), 3),
        "raw_ms_per_req": round(med(raw_ms), 3),
        "overhead_ms_per_req": round(med(lg_ms) - med(raw_ms), 3),
        "loadgen_cpu_ms_per_req": round(med(lg_cpu), 3),
        "raw_cpu_ms_per_req": round(med(raw_cpu), 3),
        "cpu_ratio_vs_raw": round(med(lg_cpu) / med(raw_cpu), 2),
        "cpu_overhead_ms_per_req": round(med(lg_cpu) - med(raw_cpu), 3),
        "aiohttp_cpu_ms_per_req": round(med(aio_cpu), 3),
        "server_handle_ms_per_req": round(med(server_ms), 3),
    }


async def aiohttp_cpu_ms(base_url: str, payload: dict, n: int) -> float:
    """For scale only: the CPU cost of the same requests through aiohttp's client (body read, no JSON)."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        url = f"{base_url}/v1/chat/completions"
        cpu = time.process_time()
        for _ in range(n):
            async with session.post(url, json=payload) as response:
                await response.read()
        return (time.process_time() - cpu) * 1000 / n


# -- 2. where the time goes ------------------------------------------------------------------------
async def layers(server: ServerProcess, n: int, rounds: int, max_tokens: int) -> list[dict]:
    """Client CPU per streamed request through each candidate stack, alternating, medians of ``rounds``:
    httpx's layers (httpcore + h11, httpx's stream, httpx-sse's EventSource: the loadgen before issue
    15), aiohttp's (its C parser; lines split by its reader, then raw reads through httpx-sse's
    decoders) and the loadgen itself, each as a ratio to the raw client of the same run."""
    import codecs

    import aiohttp
    import httpcore
    import httpx
    import httpx_sse
    from httpx_sse._decoders import SSEDecoder, SSELineDecoder

    payload = loadgen.chat_payload(MODEL, "hi", max_tokens, True)
    body, url = json.dumps(payload).encode(), f"{server.base_url}/v1/chat/completions"
    headers = {"Content-Type": "application/json"}
    pool, client = httpcore.AsyncConnectionPool(), httpx.AsyncClient()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=False))
    chat = loadgen.ChatClient(server.base_url, 10.0)
    prepared = chat.request(payload)

    async def httpcore_stream() -> None:
        async with pool.stream("POST", url, content=body, headers=headers) as response:
            async for _ in response.aiter_stream():
                pass

    async def httpx_raw() -> None:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            async for _ in response.aiter_raw():
                pass

    async def httpx_sse_events() -> None:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            async for _ in httpx_sse.EventSource(response).aiter_sse():
                pass

    async def aiohttp_raw() -> None:
        async with session.post(url, data=body, headers=headers) as response:
            while await response.content.readany():
                pass

    async def aiohttp_lines() -> None:
        async with session.post(url, data=body, headers=headers) as response:
            async for _ in response.content:  # llhttp decodes the chunks; lines split by its reader
                pass

    async def aiohttp_sse_decoders() -> None:
        async with session.post(url, data=body, headers=headers) as response:
            lines, events = SSELineDecoder(), SSEDecoder()
            text = codecs.getincrementaldecoder("utf-8")("replace").decode
            while data := await response.content.readany():
                for line in lines.decode(text(data)):
                    events.decode(line)

    async def run_loadgen() -> None:
        result = await loadgen._request(chat, prepared, True, 10.0, 0.0)
        assert result.ok, result.error

    steps = [
        ("httpcore + h11 (chunks)", httpcore_stream),
        ("httpx aiter_raw", httpx_raw),
        ("httpx + httpx-sse events (old loadgen)", httpx_sse_events),
        ("aiohttp raw reads", aiohttp_raw),
        ("aiohttp lines (its reader)", aiohttp_lines),
        ("aiohttp + httpx-sse decoders", aiohttp_sse_decoders),
        ("loadgen (aiohttp + decoders + checks)", run_loadgen),
    ]
    cpu: dict[str, list[float]] = {name: [] for name, _ in [("raw client", None), *steps]}
    try:
        async with RawClient(server.base_url, payload) as raw:
            for _ in range(rounds):
                for name, step in [("raw client", raw.send), *steps]:
                    await step()  # warm: connection open, code paths hot
                    start = time.process_time()
                    for _ in range(n):
                        await step()
                    cpu[name].append((time.process_time() - start) * 1000 / n)
    finally:
        await pool.aclose()
        await client.aclose()
        await session.close()
        await chat.__aexit__()
    raw_ms = statistics.median(cpu["raw client"])
    return [
        {"client": name, "cpu_ms_per_req": round(statistics.median(v), 3),
         "ratio_vs_raw": round(statistics.median(v) / raw_ms, 2)}
        for name, v in cpu.items()
    ]  # fmt: skip


async def profile(server: ServerProcess, n: int, max_tokens: int) -> list[dict]:
    """cProfile of ``n`` loadgen requests on CPU time, own time grouped by package."""
    import cProfile

    args = {"requests": n, "concurrency": 1, "max_tokens": max_tokens, "prompt": "hi", "timeout_s": 10.0}
    await loadgen.run_load(server.base_url, MODEL, **{**args, "requests": 20})
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    await loadgen.run_load(server.base_url, MODEL, **args)
    profiler.disable()
    groups: dict[str, float] = {}
    for entry in profiler.getstats():  # what pstats reads: own time is inlinetime; a str code is a builtin
        filename, function = (
            ("~", entry.code) if isinstance(entry.code, str) else (entry.code.co_filename, entry.code.co_name)
        )
        own = entry.inlinetime
        path = filename.replace("\\", "/")
        group = next(
            (name for name in ("h11", "httpcore", "httpx_sse", "httpx", "anyio", "aiohttp", "yarl", "multidict",
                          "uvloop", "asyncio", "json")
             if f"/{name}/" in path),
            "loadgen" if path.endswith(("runtime/gateways/loadgen.py", "runtime/gateways/chat_stream.py")) else
            f"builtin {function}" if filename == "~" else "other",
        )  # fmt: skip
        groups[group] = groups.get(group, 0.0) + own
    total = sum(groups.values())
    rows = sorted(groups.items(), key=lambda kv: -kv[1])
    return [
        {"where": k, "cpu_ms_per_req": round(v * 1000 / n, 3), "share": f"{v / total:.0%}"}
        for k, v in rows[:14]
    ]


# -- 3. measurement bias under realistic delays --------------------------------------------------
async def bias(server: ServerProcess, concurrency: int, ttft_ms: float, token_ms: float) -> dict:
    await server.configure(ttft_s=ttft_ms / 1000, token_delay_s=token_ms / 1000)
    try:
        report = await loadgen.run_load(
            server.base_url, MODEL, requests=4 * concurrency, concurrency=concurrency, max_tokens=16,
            prompt="hi", timeout_s=30.0,
        )  # fmt: skip
    finally:
        await server.configure(ttft_s=0.0, token_delay_s=0.0)
    return {
        "concurrency": concurrency,
        "server_ttft_ms": ttft_ms,
        "server_token_ms": token_ms,
        "ttft_p50_ms": round(report.ttft_ms.p50, 2),
        "ttft_bias_p50_ms": round(report.ttft_ms.p50 - ttft_ms, 2),
        "itl_mean_ms": round(report.itl_ms.mean, 3),
        "itl_bias_mean_ms": round(report.itl_ms.mean - token_ms, 3),
        "itl_p90_ms": round(report.itl_ms.p90, 3),
        "inter_chunk_p50_ms": round(report.inter_chunk_ms.p50, 3),
        "inter_chunk_p90_ms": round(report.inter_chunk_ms.p90, 3),
    }


# -- 4. open-loop ramp ---------------------------------------------------------------------------
async def ramp_step(
    server: ServerProcess, rate: float, seconds: float, max_tokens: int, concurrency: int
) -> dict:
    n = max(int(rate * seconds), 20)
    cpu, server_cpu, t = time.process_time(), server.cpu_s(), time.perf_counter()
    report = await loadgen.run_load(
        server.base_url, MODEL, requests=n, concurrency=concurrency, max_tokens=max_tokens, prompt="hi",
        timeout_s=30.0, rate=rate,
    )  # fmt: skip
    wall = time.perf_counter() - t
    starts = [r.started_at for r in report.results]
    lag_ms = [(s - i / rate) * 1000 for i, s in enumerate(starts)]
    send_span = starts[-1] - starts[0]
    achieved = (n - 1) / send_span if send_span > 0 else float("inf")
    return {
        "target_rps": rate,
        "requests": n,
        "achieved_send_rps": round(achieved, 1),
        "completed_rps": round(n / wall, 1),
        "errors": report.errors,
        "start_lag_p50_ms": round(percentile(lag_ms, 50), 2),
        "start_lag_p99_ms": round(percentile(lag_ms, 99), 2),
        "ttft_p50_ms": report.ttft_ms.p50 and round(report.ttft_ms.p50, 2),
        "e2e_p99_ms": report.e2e_ms.p99 and round(report.e2e_ms.p99, 2),
        "client_cpu_pct": round((time.process_time() - cpu) / wall * 100, 1),
        "server_cpu_pct": round((server.cpu_s() - server_cpu) / wall * 100, 1),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


async def ramp(
    server: ServerProcess, rates: list[float], seconds: float, max_tokens: int
) -> tuple[list, dict]:
    def kept_up(s: dict) -> bool:
        target = s["target_rps"]
        return (
            s["achieved_send_rps"] >= 0.95 * target and s["completed_rps"] >= 0.9 * target and not s["errors"]
        )

    steps: list[dict] = []
    for rate in rates:
        steps.append(await ramp_step(server, rate, seconds, max_tokens, concurrency=128))
        if not kept_up(steps[-1]) or steps[-1]["client_cpu_pct"] >= 95:
            break
    sustained = [s for s in steps if kept_up(s)]
    best = max(sustained, key=lambda s: s["target_rps"]) if sustained else None
    last = steps[-1]
    limit = (
        "none reached (ramp ended)" if last is best
        else f"client CPU ({last['client_cpu_pct']} %)" if last["client_cpu_pct"] >= 75
        else f"server CPU ({last['server_cpu_pct']} %)" if last["server_cpu_pct"] >= 75
        else "unclear (neither process at 75 % CPU)"
    )  # fmt: skip
    limit += f"; load average {last['loadavg_1m']} on {os.cpu_count()} cpus"
    return steps, {"max_sustained_rps": best and best["target_rps"], "limited_by": limit}


# -- report --------------------------------------------------------------------------------------
def table(rows: list[dict], columns: list[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c))) for r in rows)) for c in columns]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(str(r.get(c)).rjust(w) for c, w in zip(columns, widths, strict=True)) for r in rows]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict:
    n, rounds, seconds = (100, 3, 1.0) if args.quick else (300, 5, 2.0)
    rates = [50, 100, 150, 200, 300, 400, 600, 800, 1000, 1500, 2000]
    load_before = os.getloadavg()[0]
    with ServerProcess() as server:
        overheads = [
            await overhead(server, n, rounds, max_tokens=16, stream=True),
            await overhead(server, n, rounds, max_tokens=64, stream=True),
            await overhead(server, n, rounds, max_tokens=16, stream=False),
        ]
        # wall time is pipelined with the server's, so split the client's CPU time instead
        c16, c64 = overheads[0]["loadgen_cpu_ms_per_req"], overheads[1]["loadgen_cpu_ms_per_req"]
        per_chunk = (c64 - c16) / 48  # 48 more content chunks per request
        split = {"cpu_per_chunk_ms": round(per_chunk, 4), "cpu_fixed_ms": round(c16 - 16 * per_chunk, 3)}
        breakdown = await layers(server, n // 2, rounds, max_tokens=64)
        profiled = await profile(server, n, max_tokens=64) if args.profile else []
        biases = [await bias(server, c, ttft_ms=50, token_ms=10) for c in (1, 32)]
        steps, verdict = await ramp(server, rates, seconds, max_tokens=16) if not args.no_ramp else ([], {})
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_1m_before": round(load_before, 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
        },
        "client_loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "overhead": overheads,
        "stream_overhead_split": split,
        "goal": {
            "client_cpu_ms_per_req_at_64_tokens": c64,
            "raw_cpu_ms_per_req_at_64_tokens": overheads[1]["raw_cpu_ms_per_req"],
            "ratio_vs_raw": overheads[1]["cpu_ratio_vs_raw"],
            "goal_ms": 1.0,
            "met": c64 < 1.0,
        },
        "layers_64_tokens": breakdown,
        "profile_64_tokens": profiled,
        "bias": biases,
        "ramp": {
            "max_tokens": 16,
            "concurrency_cap": 128,
            "seconds_per_step": seconds,
            "steps": steps,
            **verdict,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="loadgen client overhead and sustainable rate")
    parser.add_argument("--quick", action="store_true", help="fewer requests and shorter ramp steps")
    parser.add_argument("--asyncio", action="store_true", help="plain asyncio loop instead of smoke_test's")
    parser.add_argument("--profile", action="store_true", help="cProfile the loadgen at 64 tokens (CPU time)")
    parser.add_argument(
        "--no-ramp", action="store_true", help="skip the open-loop ramp (it loads the machine)"
    )
    args = parser.parse_args()
    result = asyncio.run(main_async(args)) if args.asyncio else loadgen.run_sync(main_async(args))
    machine = result["machine"]
    print(f"client loop: {result['client_loop']}; cpus: {machine['cpus']}; load average (1 min) "
          f"{machine['loadavg_1m_before']} before, {machine['loadavg_1m_after']} after")  # fmt: skip
    print("\n1. client cost per request (concurrency 1, zero server delay; goal < 1 ms CPU at 64 tokens)")
    print(table(result["overhead"], ["mode", "max_tokens", "loadgen_ms_per_req", "raw_ms_per_req",
                                     "overhead_ms_per_req", "loadgen_cpu_ms_per_req", "raw_cpu_ms_per_req",
                                     "cpu_ratio_vs_raw", "aiohttp_cpu_ms_per_req",
                                     "server_handle_ms_per_req"]))  # fmt: skip
    split = result["stream_overhead_split"]
    print(
        f"client CPU per streamed request = {split['cpu_fixed_ms']} ms "
        f"+ {split['cpu_per_chunk_ms']} ms per token"
    )
    goal = result["goal"]
    print(f"goal: {goal['client_cpu_ms_per_req_at_64_tokens']} ms CPU per request at 64 tokens "
          f"({goal['ratio_vs_raw']}x the raw client's {goal['raw_cpu_ms_per_req_at_64_tokens']} ms); "
          f"under {goal['goal_ms']} ms: {'met' if goal['met'] else 'NOT met'}")  # fmt: skip
    print("\n2. where the time goes: client CPU per streamed request at 64 tokens, by layer")
    print(table(result["layers_64_tokens"], ["client", "cpu_ms_per_req", "ratio_vs_raw"]))
    if result["profile_64_tokens"]:
        print("\ncProfile of the loadgen (CPU time, own time by package)")
        print(table(result["profile_64_tokens"], ["where", "cpu_ms_per_req", "share"]))
    print("\n3. measurement bias (server TTFT 50 ms, 10 ms/token, 16 tokens, closed loop)")
    print(table(result["bias"], ["concurrency", "ttft_p50_ms", "ttft_bias_p50_ms", "itl_mean_ms",
                                 "itl_bias_mean_ms", "itl_p90_ms", "inter_chunk_p50_ms",
                                 "inter_chunk_p90_ms"]))  # fmt: skip
    ramp_result = result["ramp"]
    if not ramp_result["steps"]:
        print("\n4. open-loop ramp: skipped (--no-ramp)")
    else:
        print(f"\n4. open-loop ramp (max_tokens {ramp_result['max_tokens']}, concurrency cap 128)")
        print(table(ramp_result["steps"], ["target_rps", "achieved_send_rps", "completed_rps", "errors",
                                           "start_lag_p99_ms", "ttft_p50_ms", "client_cpu_pct",
                                           "server_cpu_pct", "loadavg_1m"]))  # fmt: skip
        print(
            f"max sustained: {ramp_result['max_sustained_rps']} req/s; "
            f"limited by: {ramp_result['limited_by']}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
