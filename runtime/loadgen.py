"""Smoke and SLA load against an OpenAI-compatible endpoint (Dynamo's frontend).

Why our own: the gate needs a bounded, dependency-light client whose numbers we can explain (TTFT to
the first content chunk, ITL between content chunks, usage-based token counts) and which validates the
wire format on every request, so a frontend that answers 200 with garbage fails the smoke test. The
statistics and the verdict live in the pure runtime/sla.py; this module only measures.

- ``check_models``: ``GET /v1/models`` is the readiness truth (the frontend's /health stays 200 with no
  workers registered).
- ``chat_once`` / ``run_load``: exactly ``requests`` requests, at most ``concurrency`` in flight, closed
  loop by default or open loop at ``rate`` requests/s (uniform arrivals; a request waits for a free
  slot, so an overloaded run shows up as a lower achieved rate, not as extra in-flight requests).
  Latency is measured from the moment a request is sent. Non-streaming requests have no ITL and their
  TTFT is their end-to-end time (the first token reaches the caller with the last).
- ``smoke_test``: models -> one non-streaming and one streaming request (format checks) -> load ->
  ``sla.evaluate``; raises SmokeTestFailed with the numbers.

Every request gets one total deadline of ``timeout_s`` (connecting is also capped at 10 s). A response
counts as failed when it is not 200, when its JSON is not a chat completion (chunk), when a stream ends
without ``data: [DONE]`` or carries no content, or on any transport error.

Why the chat requests bypass httpx's client: the load generator is only fit to judge an SLA if it adds
little to what it measures and is not the bottleneck on 2 cores, and httpx's layers (its models,
httpcore's pool, anyio's streams and locks, h11's state machine run once per body chunk) cost 3-5 ms
per streamed request over a minimal raw client in bench/bench_loadgen.py (goal: < 1 ms). So
``ChatClient`` keeps keep-alive HTTP/1.1 connections on a free list (``run_load``'s worker count is
the pool limit), each an asyncio protocol driving h11 (httpx's HTTP/1.1 engine, under httpcore): the
request's h11 events are built once per run and leave in one write; h11 parses every response head and
plain body; a 200 chunked body, the SSE stream with one chunk per event, has its chunk framing
(RFC 9112 7.1) decoded here; and SSE chunks are JSON-decoded only when byte checks cannot vouch for
them (``_SSE``). ``check_models`` is not hot and stays on httpx. httpx and h11 are imported lazily
(effects layer rule).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import urlsplit

from runtime.errors import SmokeTestFailed, TransientError
from runtime.sla import SLA, LoadReport, RequestResult, SmokeResult, evaluate, read_field

if TYPE_CHECKING:
    import h11
    import httpx

T = TypeVar("T")

# used when the smoke section leaves a field out (same values as runtime/spec.py's SmokeSpec)
SMOKE_DEFAULTS: dict[str, Any] = {
    "requests": 40,
    "concurrency": 8,
    "max_tokens": 32,
    "prompt": "Hello from dynadeploy",
    "timeout_s": 60.0,
    "stream": True,
    "rate": None,
}


class _ProtocolError(Exception):
    """The server answered, but not like an OpenAI-compatible chat endpoint."""


def api_root(base_url: str) -> str:
    """``http://h:8000``, ``http://h:8000/`` and ``http://h:8000/v1`` all name the same frontend."""
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


def open_client(base_url: str, concurrency: int, timeout_s: float) -> httpx.AsyncClient:
    """An httpx client for the requests that are not hot (``check_models``)."""
    import httpx

    return httpx.AsyncClient(
        base_url=api_root(base_url),
        verify=_ssl_context(),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
    )


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle costs ~0.1 s of CPU; readiness loops open many short-lived clients."""
    import httpx

    return httpx.create_ssl_context()


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
            f"itl p90 {_ms(report.itl_ms.p90)}, e2e p99 {_ms(report.e2e_ms.p99)}, "
            f"goodput {report.goodput_ratio:.2f}]",
            report=result.as_dict(),
            hint="see the report; if the targets do not fit this hardware, change smoke.sla in the spec",
        )
    return result


# -- the hot path: h11 on an asyncio protocol ------------------------------------------------------
class ChatClient:
    """Keep-alive HTTP/1.1 connections to one frontend's ``/v1/chat/completions``.

    A free list, not a pool: callers bound the requests in flight (``run_load``'s workers), so there
    are never more connections than that. A connection goes back on the list only when its exchange
    ended cleanly; a failed or cancelled one is closed.
    """

    def __init__(self, base_url: str, timeout_s: float, *, host: str | None = None) -> None:
        parts = urlsplit(api_root(base_url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"need an http:// or https:// URL, got {base_url!r}")
        self._netloc = host or parts.netloc.rpartition("@")[2]
        self._target = f"{parts.path}/v1/chat/completions"  # a gateway may route on a path prefix
        self._host, self._port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl = _ssl_context() if parts.scheme == "https" else None
        self._connect_timeout_s = min(timeout_s, 10.0)
        self._idle: list[_Connection] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.transport.close()

    def request(self, payload: dict[str, Any]) -> tuple[h11.Event, ...]:
        """The h11 events of one request: built and validated once, sent many times (they are frozen)."""
        import h11

        body = json.dumps(payload).encode()
        headers = [
            ("Host", self._netloc),
            ("User-Agent", "dynadeploy-loadgen"),
            ("Accept-Encoding", "identity"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
        ]
        return (
            h11.Request(method="POST", target=self._target, headers=headers),
            h11.Data(data=body),
            h11.EndOfMessage(),
        )

    @contextlib.asynccontextmanager
    async def send(self, request: tuple[h11.Event, ...]) -> AsyncIterator[_Connection]:
        """Sends ``request`` and yields the connection, its response status read."""
        connection = await self._connection()
        try:
            await connection.start(request)
            yield connection
        finally:
            if connection.finish():
                self._idle.append(connection)
            else:
                connection.transport.close()

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not (connection.eof or connection.received):  # else the server closed it while idle
                return connection
            connection.transport.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _, connection = await loop.create_connection(
                    _Connection, self._host, self._port, ssl=self._ssl
                )
        except TimeoutError:
            raise  # an OSError too, but reported as a timeout
        except OSError as exc:
            raise _ConnectError(str(exc) or type(exc).__name__) from exc
        return connection


class _ConnectError(Exception):
    pass


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, fed by an asyncio protocol. h11 writes the request and reads the
    response head, and the body too unless it is a 200 chunked stream: the SSE stream sends one chunk
    per event, and h11's state machine per chunk was half the client's CPU, so that body's framing
    (RFC 9112 7.1) is decoded here; the next request starts on a fresh h11 state machine."""

    def __init__(self) -> None:
        import h11

        self.h11 = h11.Connection(h11.CLIENT)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set on connection_made
        self.received: list[bytes] = []
        self.eof, self.lost = False, None
        self.waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.chunked: bytes | None = None  # a chunked body being decoded here, from offset self.at
        self.at, self.body_done, self.keep_alive = 0, False, True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received.append(data)
        self._wake()

    def eof_received(self) -> None:
        self.eof = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof, self.lost = True, exc
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def start(self, request: tuple[h11.Event, ...]) -> None:
        """Sends the request in one write and reads the response head."""
        import h11

        self.transport.write(b"".join([self.h11.send(event) for event in request]))
        while type(event := await self._next_event()) is not h11.Response:
            pass  # 1xx
        self.status = event.status_code
        if self.status == 200:
            headers = dict(event.headers)  # h11 lower-cases the names
            if b"transfer-encoding" in headers:  # and accepts no transfer coding but chunked
                self.chunked, self.at, self.body_done = self.h11.trailing_data[0], 0, False
                self.keep_alive = b"close" not in headers.get(b"connection", b"").lower()

    async def read(self) -> bytes | None:
        """The next piece of the response body (one chunk, usually one SSE event); None at its end."""
        import h11

        if self.chunked is not None:
            return await self._read_chunk()
        event = await self._next_event()
        return bytes(event.data) if type(event) is h11.Data else None

    def finish(self) -> bool:
        """After a response: True when the connection can carry another request."""
        import h11

        if self.chunked is not None:
            leftover = self.at < len(self.chunked) or self.received or self.eof
            clean = self.body_done and self.keep_alive and not leftover
            self.chunked = None
            if clean:
                self.h11 = h11.Connection(h11.CLIENT)
            return clean
        if self.h11.our_state is self.h11.their_state is h11.DONE and not self.eof:
            self.h11.start_next_cycle()
            return True
        return False

    async def _read_chunk(self) -> bytes | None:
        """``size[;ext] CRLF data CRLF``, the last one ``0 CRLF [trailer lines] CRLF``."""
        import h11

        if self.body_done:
            return None
        while (eol := self.chunked.find(b"\r\n", self.at)) < 0:
            await self._fill()
        if not (size_line := _CHUNK_SIZE.fullmatch(self.chunked, self.at, eol)):
            raise h11.RemoteProtocolError(f"bad chunk size line {self.chunked[self.at : eol][:40]!r}")
        size = int(size_line[1], 16)
        if size == 0:
            while (end := self.chunked.find(b"\r\n\r\n", eol)) < 0:
                await self._fill()
            self.at, self.body_done = end + 4, True
            return None
        end = eol + 2 + size
        while len(self.chunked) < end + 2:
            await self._fill()
        if self.chunked[end : end + 2] != b"\r\n":
            raise h11.RemoteProtocolError("chunk data not followed by CRLF")
        self.at = end + 2
        return self.chunked[eol + 2 : end]

    async def _fill(self) -> None:
        import h11

        await self._wait()
        if not self.received:
            raise h11.RemoteProtocolError(
                "peer closed connection without sending complete message body: incomplete chunked read"
            )
        self.chunked = self.chunked[self.at :] + b"".join(self.received)  # type: ignore[index]
        self.at = 0
        self.received.clear()

    async def _next_event(self) -> h11.Event:
        import h11

        while (event := self.h11.next_event()) is h11.NEED_DATA:
            await self._wait()
            data = b"".join(self.received)
            self.received.clear()
            if not data and self.h11.their_state is h11.SEND_RESPONSE:
                raise h11.RemoteProtocolError("server disconnected without sending a response")
            self.h11.receive_data(data)  # b"": the peer closed; h11 decides whether that is an error
        return event  # type: ignore[return-value]

    async def _wait(self) -> None:
        """Until data arrived or the connection ended (raises if it was reset)."""
        while not (self.received or self.eof):
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if not self.received and self.lost is not None:
            raise OSError(f"connection lost: {self.lost}") from self.lost


_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?")


# -- one request -------------------------------------------------------------------------------------
def chat_payload(model: str, prompt: str, max_tokens: int, stream: bool) -> dict[str, Any]:
    """The request body every loadgen request sends (streaming asks for the usage chunk)."""
    payload: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": stream,
    }
    if stream:
        payload["stream_options"] = {"include_usage": True}
    return payload


async def _request(
    client: ChatClient, request: tuple[h11.Event, ...], stream: bool, timeout_s: float, t0: float
) -> RequestResult:
    import h11

    sent = time.perf_counter()
    result = RequestResult(ok=False, started_at=sent - t0)
    try:
        async with asyncio.timeout(timeout_s), client.send(request) as connection:
            result.status = connection.status
            if connection.status != 200:
                result.error = _http_error(connection.status, await _read_all(connection))
            elif stream:
                await _read_stream(connection, sent, result)
            else:
                _check_completion(await _read_all(connection), result)
                result.ttft_s = time.perf_counter() - sent
    except (OSError, _ConnectError, h11.ProtocolError) as exc:  # TimeoutError is an OSError
        result.error = _describe(exc, timeout_s)
    except _ProtocolError as exc:
        result.error = f"protocol: {exc}"
    result.e2e_s = time.perf_counter() - sent
    if result.error is None and result.status == 200:
        result.ok = True
    return result


async def _read_all(connection: _Connection) -> bytes:
    parts = []
    while (part := await connection.read()) is not None:
        parts.append(part)
    return b"".join(parts)


def _check_completion(content: bytes, result: RequestResult) -> None:
    try:
        body = json.loads(content)
        if body.get("object") != "chat.completion":
            raise _ProtocolError(f"object is {body.get('object')!r}, expected 'chat.completion'")
        if not body.get("choices"):
            raise _ProtocolError("no choices in chat completion")
        if not isinstance(body.get("usage"), dict):
            raise _ProtocolError("no usage in chat completion")
        result.output_tokens = int(body["usage"].get("completion_tokens") or 0)
    except (ValueError, AttributeError, TypeError) as exc:
        raise _ProtocolError(f"bad chat completion body: {exc}") from exc


async def _read_stream(connection: _Connection, sent: float, result: RequestResult) -> None:
    sse, pending = _SSE(sent, result), b""
    # one arrival time per body chunk; a chunk is usually exactly one event ("data: {...}\n\n")
    while (data := await connection.read()) is not None:
        now = time.perf_counter()
        *lines, pending = (pending + data).split(b"\n") if pending else data.split(b"\n")
        for line in lines:
            if line:  # not the blank line that ends an event
                sse.feed(line, now)
    if pending:
        sse.feed(pending, time.perf_counter())
    sse.finish()


class _SSE:
    """Turns the event-stream lines of one chat completion into TTFT, ITL and a token count.

    JSON decoding is most of a chunk's cost, so only the first data chunk and the unusual ones are
    decoded (usage, anything mentioning "error", anything not in the compact form every known server
    sends); the others are read by byte checks that give the same answer for well-formed compact
    chunks: the object marker, and whether a (reasoning) content string is non-empty.
    """

    def __init__(self, sent: float, result: RequestResult) -> None:
        self.sent, self.result = sent, result
        self.done = self.error_event = False
        self.last, self.chunks, self.usage_tokens = 0.0, 0, None
        self.decode_next = True

    def feed(self, line: bytes, now: float) -> None:
        if line.startswith(b"data:"):
            data = line[5:].strip()
        elif line.startswith(b"event:"):
            self.error_event = line[6:].strip() == b"error"
            return
        else:
            return  # blank separator, ":" comment or another field
        if self.done:
            return  # after [DONE], the caller still reads to the end so the connection is reused
        if data == b"[DONE]":
            self.done = True
            return
        if self.error_event:
            raise _ProtocolError(f"error event in stream: {data[:200]!r}")
        if (
            self.decode_next
            or _CHUNK_OBJECT not in data
            or not data.endswith(b"}")
            or b'"error"' in data
            or b'"usage":{' in data
        ):
            self.decode_next = False
            content = self._decode(data)
        else:
            content = _CONTENT.search(data) is not None
        if content:
            if self.chunks == 0:
                self.result.ttft_s = now - self.sent
            else:
                self.result.itl_s.append(now - self.last)
            self.last, self.chunks = now, self.chunks + 1

    def _decode(self, data: bytes) -> bool:
        """Validates one chunk fully; True when it carries content."""
        try:
            chunk = json.loads(data)
            if "error" in chunk:
                raise _ProtocolError(f"error in stream: {data[:200]!r}")
            if chunk.get("object") != "chat.completion.chunk":
                raise _ProtocolError(
                    f"chunk object is {chunk.get('object')!r}, expected 'chat.completion.chunk'"
                )
            if chunk.get("usage"):
                self.usage_tokens = chunk["usage"].get("completion_tokens")
            deltas = [c.get("delta") or {} for c in chunk.get("choices") or ()]
            return any(d.get("content") or d.get("reasoning_content") for d in deltas)
        except (ValueError, AttributeError, TypeError) as exc:
            raise _ProtocolError(f"bad chunk {data[:200]!r}: {exc}") from exc

    def finish(self) -> None:
        if not self.done:
            raise _ProtocolError(f"stream ended without data: [DONE] after {self.chunks} content chunks")
        if self.chunks == 0:
            raise _ProtocolError("stream carried no content")
        self.result.output_tokens = int(self.usage_tokens) if self.usage_tokens is not None else self.chunks


_CHUNK_OBJECT = b'"object":"chat.completion.chunk"'
# a non-empty "content" or "reasoning_content" string; quotes inside strings are escaped, so these
# keys cannot match inside a value
_CONTENT = re.compile(rb'"(?:reasoning_)?content":"[^"]')


# -- helpers -----------------------------------------------------------------------------------------
def _http_error(status: int, body: bytes) -> str:
    """``HTTP 404: Model not found`` from Dynamo's ``{"message", "type", "code"}`` (or OpenAI's) body."""
    text = body.decode("utf-8", "replace").strip()
    try:
        parsed = json.loads(text)
        error = parsed.get("error", parsed)
        text = str(error.get("message", text)) if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        pass
    return f"HTTP {status}: {text[:200]}" if text else f"HTTP {status}"


def _describe(exc: BaseException, timeout_s: float) -> str:
    """One line for a transport error: httpx's (``check_models``) or the chat path's."""
    import httpx

    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return f"timeout after {timeout_s:g} s ({type(exc).__name__})"
    if isinstance(exc, (_ConnectError, httpx.ConnectError)):
        return f"connect error: {exc}"
    return f"{type(exc).__name__}: {exc}"


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
