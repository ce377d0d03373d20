"""A small OpenAI-compatible server that answers like Dynamo's frontend, for loadgen tests and benches.

Why a fake: the load generator's behaviour under slow first tokens, slow decoding, 5xx bursts, dropped
streams and a missing model has to be tested in seconds and without an engine. The wire format copies
what Dynamo 1.6.1's frontend sent on this machine (captured against ``dynamo.frontend`` + mocker):

- ``GET /v1/models`` -> ``{"object":"list","data":[{"id","object":"model","created","owned_by":"nvidia",
  "context_window":0}]}`` (an empty ``data`` while no worker is registered);
- ``POST /v1/chat/completions`` non-streaming -> ``object: "chat.completion"``, ``finish_reason: "length"``,
  ``usage {prompt_tokens, completion_tokens, total_tokens, prompt_tokens_details{cached_tokens}}``;
- streaming -> ``text/event-stream`` of ``data: {json}\\n\\n`` events: one token per
  ``chat.completion.chunk`` (the first delta also carries ``role``), a chunk with ``delta: {}`` and
  ``finish_reason: "length"``, a usage chunk with ``choices: []`` when ``stream_options.include_usage``,
  then ``data: [DONE]``;
- errors -> ``{"message", "type", "code"}`` JSON, e.g. 404 ``Model not found``, 400 for empty messages.

Knobs (``FakeConfig``, mutable while serving): served models, TTFT delay, per-token delay, an error rate
(deterministic: exactly floor(n * rate) of the first n chat requests fail) with its status, and a mid-
stream disconnect. ``FakeStats`` records requests, in-flight peak and server-side handling time.
Out of process, ``GET /fake/stats`` returns the stats and ``POST /fake/config`` changes knobs.

Use it in-process (``with FakeOpenAI(ttft_s=0.05) as fake: fake.base_url``: the server runs on its own
event loop in a daemon thread) or as a process for benchmarks:
``python -m tests.harness.fake_openai [--uvloop]`` prints ``READY http://127.0.0.1:PORT``.
Binds 127.0.0.1 only, port 0 (the OS picks a free one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Self

from aiohttp import web


@dataclass
class FakeConfig:
    models: list[str] = field(default_factory=lambda: ["tiny-mock"])
    ttft_s: float = 0.0  # delay before the first token
    token_delay_s: float = 0.0  # delay before each later token
    error_rate: float = 0.0  # fraction of chat requests answered with error_status
    error_status: int = 500
    disconnect_after_tokens: int | None = None  # close the stream (no [DONE]) after this many tokens
    send_usage: bool = True  # honour stream_options.include_usage (False: like servers that ignore it)
    default_max_tokens: int = 16


@dataclass
class FakeStats:
    chat_requests: int = 0
    model_requests: int = 0
    injected_errors: int = 0
    inflight: int = 0
    max_inflight: int = 0
    handle_s: list[float] = field(default_factory=list)  # per successful chat: handler entry -> last byte


class FakeOpenAI:
    """The fake server. ``start()``/``stop()`` run it on a private loop in a thread; the async variants
    run it on the caller's loop."""

    def __init__(self, config: FakeConfig | None = None, **overrides: object) -> None:
        self.config = config or FakeConfig()
        for key, value in overrides.items():
            if not hasattr(self.config, key):
                raise TypeError(f"unknown FakeConfig field {key!r}")
            setattr(self.config, key, value)
        self.stats = FakeStats()
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[asyncio.Task] = set()  # chat handlers still running

    # -- lifecycle -------------------------------------------------------------------------------
    async def start_async(self) -> str:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/health", self._health)
        app.router.add_get("/fake/stats", self._stats)
        app.router.add_post("/fake/config", self._configure)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock, shutdown_timeout=1.0, backlog=1024).start()
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self.base_url

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # aiohttp's shutdown forgets the handlers of connections the client already closed (after its
        # deadline, say); end them here so that none is still pending when the loop closes
        for task in self._handlers:
            task.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=5.0)

    def start(self) -> str:
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fake-openai", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            return asyncio.run_coroutine_threadsafe(self.start_async(), loop).result(10)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.stop_async(), loop).result(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
            self._loop = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_stats(self) -> None:
        self.stats = FakeStats()

    # -- handlers --------------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        self.stats.model_requests += 1
        created = int(time.time())
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": "nvidia", "context_window": 0}
            for m in self.config.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy", "endpoints": [], "instances": []})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.stats))

    async def _configure(self, request: web.Request) -> web.Response:
        """Change knobs of a server running in another process (benchmarks); body: FakeConfig fields."""
        changes = await request.json()
        unknown = sorted(set(changes) - set(asdict(self.config)))
        if unknown:
            return _error(400, f"unknown FakeConfig fields {unknown}")
        for key, value in changes.items():
            setattr(self.config, key, value)
        return web.json_response(asdict(self.config))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        entered = time.perf_counter()
        stats, cfg = self.stats, self.config
        k = stats.chat_requests  # this request's index, taken before any await
        stats.chat_requests += 1
        stats.inflight += 1
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
        stats.max_inflight = max(stats.max_inflight, stats.inflight)
        try:
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "Failed to parse the request body as JSON")
            if body.get("model") not in cfg.models:
                return _error(404, "Model not found")
            if not body.get("messages"):
                return _error(400, "Validation: The 'messages' field cannot be empty.")
            if self._inject_error(k):
                return _error(cfg.error_status, "injected failure")
            n = int(body.get("max_tokens") or body.get("max_completion_tokens") or cfg.default_max_tokens)
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"]) + 4
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": n,
                "total_tokens": prompt_tokens + n,
                "prompt_tokens_details": {"cached_tokens": 0},
            }
            head = {"id": f"chatcmpl-{uuid.uuid4()}", "created": int(time.time()), "model": body["model"]}
            if body.get("stream"):
                include_usage = cfg.send_usage and bool(
                    (body.get("stream_options") or {}).get("include_usage")
                )
                response = await self._stream(request, head, n, usage if include_usage else None)
            else:
                response = await self._complete(head, n, usage)
            stats.handle_s.append(time.perf_counter() - entered)
            return response
        finally:
            stats.inflight -= 1
            self._handlers.discard(handler)

    def _inject_error(self, k: int) -> bool:
        rate = self.config.error_rate
        if rate > 0 and int((k + 1) * rate) > int(k * rate):
            self.stats.injected_errors += 1
            return True
        return False

    async def _complete(self, head: dict, n: int, usage: dict) -> web.Response:
        await _sleep(self.config.ttft_s + self.config.token_delay_s * max(n - 1, 0))
        message = {"content": "".join(_token(i) for i in range(n)), "refusal": None, "role": "assistant"}
        choice = {"index": 0, "message": message, "finish_reason": "length", "logprobs": None}
        return web.json_response({**head, "choices": [choice], "object": "chat.completion", "usage": usage})

    async def _stream(
        self, request: web.Request, head: dict, n: int, usage: dict | None
    ) -> web.StreamResponse:
        cfg = self.config
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
        )
        await response.prepare(request)
        for i in range(n):
            await _sleep(cfg.ttft_s if i == 0 else cfg.token_delay_s)
            if cfg.disconnect_after_tokens is not None and i >= cfg.disconnect_after_tokens:
                if request.transport is not None:
                    request.transport.close()
                return response
            delta = {"content": _token(i), "role": "assistant"} if i == 0 else {"content": _token(i)}
            await response.write(
                _event(head, [{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}])
            )
        await response.write(
            _event(head, [{"index": 0, "delta": {}, "finish_reason": "length", "logprobs": None}])
        )
        if usage is not None:
            await response.write(_event(head, [], usage=usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _event(head: dict, choices: list, **extra: object) -> bytes:
    chunk = {
        "id": head["id"],
        "choices": choices,
        "created": head["created"],
        "model": head["model"],
        "object": "chat.completion.chunk",
        **extra,
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"message": message, "type": HTTPStatus(status).phrase, "code": status}, status=status
    )


def _token(i: int) -> str:
    return f" tok{i}"


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny-mock", help="comma-separated model ids")
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--token-delay-ms", type=float, default=0.0)
    parser.add_argument("--uvloop", action="store_true", help="serve on uvloop (benchmarks)")
    args = parser.parse_args(argv)
    fake = FakeOpenAI(
        models=args.models.split(","), ttft_s=args.ttft_ms / 1000, token_delay_s=args.token_delay_ms / 1000
    )

    async def serve() -> None:
        print(f"READY {await fake.start_async()}", flush=True)
        # serve until stdin closes (the parent exits or closes the pipe)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await fake.stop_async()

    if args.uvloop:
        import uvloop

        uvloop.run(serve())
    else:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
