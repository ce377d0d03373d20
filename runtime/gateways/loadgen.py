"""Smoke and SLA load against an OpenAI-compatible endpoint (Dynamo's frontend).

The gate needs a bounded client whose numbers we can explain (TTFT to the first content chunk, ITL per
request, usage-based token counts) and which validates the wire format on every request, so a frontend
that answers 200 with garbage fails the smoke test. The statistics and the verdict live in the pure
runtime/domain/load_report.py (which defines ITL and inter-chunk latency) and sla.py; this module only measures.

- ``check_models``: ``GET /v1/models`` is the readiness truth (the frontend's /health stays 200 with no
  workers registered).
- ``chat_once`` / ``run_load``: exactly ``requests`` requests, at most ``concurrency`` in flight, closed
  loop by default or open loop at ``rate`` requests/s (uniform arrivals; a request waits for a free
  slot, so an overloaded run shows up as a lower achieved rate, not as extra in-flight requests).
  Latency is measured from the moment a request is sent. Non-streaming requests have no ITL and their
  TTFT is their end-to-end time (the first token reaches the caller with the last). Streaming
  requests ask for the usage chunk (``stream_options.include_usage``); tokens are counted from it
  when the server sends it, else from content chunks, and each result says which.
- ``smoke_test``: models -> one non-streaming and one streaming request (format checks) -> load ->
  ``sla.evaluate``; raises SmokeTestFailed with the numbers.

Every request gets one total deadline of ``timeout_s`` (connecting is also capped at 10 s). A response
counts as failed when it is not 200, when its JSON is not a chat completion (chunk), when a stream is
not ``text/event-stream``, ends without ``data: [DONE]`` or carries no content, or on any transport
error (a broken chunked framing included).

No HTTP parsing lives here. The chat path (runtime/gateways/chat_stream.py: ``ChatClient``,
``_request``) runs on aiohttp, whose C parser (llhttp) speaks HTTP/1.1, keep-alive and the chunked
framing, with httpx-sse's line and event decoders; ``check_models`` stays on httpx, like the other
probes of the gateways. httpx's own HTTP/1.1 (h11, pure Python, run once per chunk) cost ~3 ms of CPU
per 64-token stream against ~0.9 ms now (bench/README.md). An earlier hand-written chunked decoder
lost its place when a chunk was split across socket reads and failed healthy endpoints;
tests/unit/test_loadgen_framing.py cuts every stream at every byte. Transport errors are worded as
httpx/h11 word them, so reports read the same whichever client failed. The request body and headers
are encoded once per run. httpx is imported lazily (effects layer rule).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from runtime.domain.sla import SLA, LoadReport, RequestResult, SmokeResult, evaluate, read_field
from runtime.errors import SmokeTestFailed, TransientError
from runtime.gateways.chat_stream import (  # ChatClient, chat_payload: this module's API too
    ChatClient,
    _http_error,
    _request,
    _ssl_context,
    api_root,
    chat_payload,
)

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

# used when the smoke section leaves a field out (same values as runtime/spec/sections.py's SmokeSpec)
SMOKE_DEFAULTS: dict[str, Any] = {
    "requests": 40,
    "concurrency": 8,
    "max_tokens": 32,
    "prompt": "Hello from dynadeploy",
    "timeout_s": 60.0,
    "stream": True,
    "rate": None,
}


def open_client(base_url: str, concurrency: int, timeout_s: float) -> httpx.AsyncClient:
    """An httpx client for the requests that are not hot (``check_models``)."""
    import httpx

    root = api_root(base_url)
    return httpx.AsyncClient(
        base_url=root,
        # plain http has no TLS, so no CA bundle to load (~0.1 s of CPU per client)
        verify=_ssl_context() if root.startswith("https:") else False,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        trust_env=False,  # like ChatClient: probes go to the endpoint itself, never through HTTP(S)_PROXY
    )


async def check_models(
    client_or_base_url: httpx.AsyncClient | str, model: str, timeout_s: float = 10.0
) -> list[str]:
    """Ids served at ``/v1/models``; SmokeTestFailed when ``model`` is not among them."""
    import httpx

    if isinstance(client_or_base_url, str):
        async with open_client(client_or_base_url, 1, timeout_s) as client:
            return await check_models(client, model, timeout_s)
    client = client_or_base_url
    root = api_root(str(client.base_url))
    url = f"{root}/v1/models"
    try:
        response = await client.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise TransientError(
            f"cannot reach {url}: {_describe(exc, timeout_s)}",
            hint="is the frontend running and its port reachable?",
        ) from exc
    if response.status_code >= 500:
        raise TransientError(f"GET {url} -> {_http_error(response.status_code, response.content)}")
    if response.status_code != 200:
        raise SmokeTestFailed(f"GET {url} -> {_http_error(response.status_code, response.content)}")
    try:
        served = [str(entry["id"]) for entry in response.json()["data"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise SmokeTestFailed(
            f"GET {url} did not return an OpenAI model list: {response.text[:200]!r}"
        ) from exc
    if model not in served:
        waiting = " (no workers registered yet?)" if not served else ""
        raise SmokeTestFailed(
            f"model {model!r} not served by {root}; served: {served}{waiting}",
            report={"models": served},
            hint="wait for the workers to register"
            if not served
            else "check the served model name in the spec",
        )
    return served


async def chat_once(
    base_url: str, model: str, prompt: str, max_tokens: int, stream: bool, timeout_s: float
) -> RequestResult:
    """One chat completion, measured and validated; never raises for a failed request."""
    async with ChatClient(base_url, timeout_s) as client:
        request = client.request(chat_payload(model, prompt, max_tokens, stream))
        return await _request(client, request, stream, timeout_s, time.perf_counter())


async def run_load(
    base_url: str,
    model: str,
    *,
    requests: int,
    concurrency: int,
    max_tokens: int,
    prompt: str,
    timeout_s: float,
    stream: bool = True,
    rate: float | None = None,
    client: ChatClient | None = None,
    host: str | None = None,
) -> LoadReport:
    """Send exactly ``requests`` requests, at most ``concurrency`` at a time, optionally at ``rate``/s.
    ``host``: the Host header when it is not the URL's (a gateway routing on a hostname)."""
    if requests < 0 or concurrency < 1 or (rate is not None and rate <= 0):
        raise ValueError(
            f"need requests >= 0, concurrency >= 1, rate > 0; got {requests}, {concurrency}, {rate}"
        )
    if client is None:
        async with ChatClient(base_url, timeout_s, host=host) as own:
            return await run_load(
                base_url,
                model,
                requests=requests,
                concurrency=concurrency,
                max_tokens=max_tokens,
                prompt=prompt,
                timeout_s=timeout_s,
                stream=stream,
                rate=rate,
                client=own,
            )
    request = client.request(chat_payload(model, prompt, max_tokens, stream))
    results: list[RequestResult | None] = [None] * requests
    unsent = iter(range(requests))  # shared: a free worker takes the next request
    t0 = time.perf_counter()

    async def worker() -> None:
        for i in unsent:
            if rate is not None and (delay := t0 + i / rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            results[i] = await _request(client, request, stream, timeout_s, t0)

    # ``concurrency`` workers rather than a task per request: the same bound and arrival times,
    # without a task, a semaphore hand-off and two loop turns per request
    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, requests))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
    return LoadReport([r for r in results if r is not None], time.perf_counter() - t0)


def smoke_test(base_url: str, model: str, smoke: Any) -> SmokeResult:
    """Sync entry point for tasks: models, format checks, load, verdict. Raises SmokeTestFailed."""
    return run_sync(smoke_test_async(base_url, model, smoke))


async def smoke_test_async(base_url: str, model: str, smoke: Any) -> SmokeResult:
    cfg = {name: read_field(smoke, name, default) for name, default in SMOKE_DEFAULTS.items()}
    sla = SLA.from_obj(read_field(smoke, "sla"))
    root = api_root(base_url)
    timeout_s = float(cfg["timeout_s"])
    models = await check_models(root, model, timeout_s)
    async with ChatClient(root, timeout_s) as client:
        # the format probes go the load's way, so they check the code that measures
        for stream in (False, True):
            request = client.request(chat_payload(model, cfg["prompt"], int(cfg["max_tokens"]), stream))
            probe = await _request(client, request, stream, timeout_s, time.perf_counter())
            if not probe.ok:
                kind = "streaming" if stream else "non-streaming"
                raise SmokeTestFailed(
                    f"{kind} chat completion for {model!r} at {root} failed: {probe.error}",
                    report={"models": models, "status": probe.status, "error": probe.error},
                )
        report = await run_load(
            root,
            model,
            requests=int(cfg["requests"]),
            concurrency=int(cfg["concurrency"]),
            max_tokens=int(cfg["max_tokens"]),
            prompt=cfg["prompt"],
            timeout_s=timeout_s,
            stream=bool(cfg["stream"]),
            rate=cfg["rate"],
            client=client,
        )
    report = report.with_targets(sla)
    verdict = evaluate(report, sla)
    result = SmokeResult(models, report, verdict)
    if not verdict.passed:
        raise SmokeTestFailed(
            f"smoke test of {model!r} at {root} failed: {'; '.join(verdict.breaches)} "
            f"[{report.count} requests, {report.errors} errors, ttft p90 {_ms(report.ttft_ms.p90)}, "
            f"itl p90 {_ms(report.itl_ms.p90)} (inter-chunk p90 {_ms(report.inter_chunk_ms.p90)}), "
            f"e2e p99 {_ms(report.e2e_ms.p99)}, "
            f"goodput {report.goodput_ratio:.2f}]",
            report=result.as_dict(),
            hint="see the report; if the targets do not fit this hardware, change smoke.sla in the spec",
        )
    return result


# -- helpers -----------------------------------------------------------------------------------------
def _describe(exc: BaseException, timeout_s: float) -> str:
    """One line for a transport error (``check_models``'s or the chat path's), in this module's style:
    lower-case, no closing full stop."""
    import httpx

    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return f"timeout after {timeout_s:g} s ({type(exc).__name__})"
    text = str(exc).strip().rstrip(".")
    text = text[:1].lower() + text[1:]
    if isinstance(exc, httpx.ConnectError):
        return f"connect error: {text}"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, on uvloop when installed (ai-dynamo-runtime pulls it
    in): the bench measured ~25 % less client CPU per request than asyncio's loop, which keeps
    ITL/TTFT readings honest at higher concurrency. From inside a running loop (async callers), the
    coroutine runs in a fresh thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_new_loop(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(_run_new_loop, coro).result()


def _run_new_loop(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# -- paired load: the canary's side-by-side comparison ----------------------------------------------
async def run_paired_load(
    base_urls: dict[str, str],
    model: str,
    *,
    requests: int,
    concurrency: int,
    max_tokens: int,
    prompt: str,
    timeout_s: float,
) -> dict[str, LoadReport]:
    """The same ``requests`` streamed requests to every endpoint, paired in time: each of ``concurrency``
    lanes sends request i to all endpoints at once and starts pair i+1 when every answer of pair i is
    in. The endpoint whose request is sent first alternates with i. So every side's i-th sample is taken
    in the same moment of the machine's load and of this client's own event loop as the others' (which,
    on a busy host, is most of a measured TTFT), and neither load drift nor the send order can favour a
    side. Returns a report per endpoint, keyed as ``base_urls``."""
    import contextlib

    names = list(base_urls)
    results: dict[str, list[RequestResult | None]] = {k: [None] * requests for k in names}
    async with contextlib.AsyncExitStack() as stack:
        clients = {k: await stack.enter_async_context(ChatClient(u, timeout_s)) for k, u in base_urls.items()}
        prepared = {k: c.request(chat_payload(model, prompt, max_tokens, True)) for k, c in clients.items()}
        unsent = iter(range(requests))
        t0 = time.perf_counter()

        async def lane() -> None:
            for i in unsent:
                order = names[i % len(names) :] + names[: i % len(names)]
                answers = await asyncio.gather(
                    *(_request(clients[k], prepared[k], True, timeout_s, t0) for k in order)
                )
                for k, r in zip(order, answers, strict=True):
                    results[k][i] = r

        lanes = [asyncio.create_task(lane()) for _ in range(min(concurrency, requests))]
        try:
            await asyncio.gather(*lanes)
        finally:
            for task in lanes:
                task.cancel()
        wall = time.perf_counter() - t0
    return {k: LoadReport([r for r in results[k] if r is not None], wall) for k in names}
