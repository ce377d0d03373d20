"""Smoke and SLA load against an OpenAI-compatible endpoint (Dynamo's frontend).

The gate needs a bounded client whose numbers we can explain (TTFT to the first content chunk, ITL per
request, usage-based token counts) and which validates the wire format on every request, so a frontend
that answers 200 with garbage fails the smoke test. The statistics and the verdict live in the pure
runtime/domain/sla.py (which defines ITL and inter-chunk latency); this module only measures.

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

No HTTP parsing lives here: httpx (httpcore + h11) speaks HTTP/1.1, keep-alive and the chunked framing,
and httpx-sse splits the event stream (CRLF, LF or CR line ends, multi-line data, comments, event
types). An earlier hand-written chunked decoder lost its place when a chunk was split across socket
reads and failed healthy endpoints; tests/unit/test_loadgen_framing.py cuts every stream at every byte.
What stays here is cheap by design: the request body and headers are encoded once per run, and SSE
chunks are JSON-decoded only when string checks cannot vouch for them (``_SSE``). The cost per request
is measured against a minimal raw client in bench/bench_loadgen.py. httpx and httpx-sse are imported
lazily (effects layer rule).
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import contextlib
import functools
import json
import re
import ssl
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, TypeVar
from urllib.parse import urlsplit

from runtime.errors import SmokeTestFailed, TransientError
from runtime.domain.sla import SLA, LoadReport, RequestResult, SmokeResult, evaluate, read_field

if TYPE_CHECKING:
    import httpx
    from httpx_sse import ServerSentEvent

T = TypeVar("T")

# used when the smoke section leaves a field out (same values as runtime/spec/models.py's SmokeSpec)
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

    root = api_root(base_url)
    return httpx.AsyncClient(
        base_url=root,
        # plain http has no TLS, so no CA bundle to load (~0.1 s of CPU per client)
        verify=_ssl_context() if root.startswith("https:") else False,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
        trust_env=False,  # like ChatClient: probes go to the endpoint itself, never through HTTP(S)_PROXY
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
            f"itl p90 {_ms(report.itl_ms.p90)} (inter-chunk p90 {_ms(report.inter_chunk_ms.p90)}), "
            f"e2e p99 {_ms(report.e2e_ms.p99)}, "
            f"goodput {report.goodput_ratio:.2f}]",
            report=result.as_dict(),
            hint="see the report; if the targets do not fit this hardware, change smoke.sla in the spec",
        )
    return result


# -- the chat path: aiohttp + httpx-sse's decoders -------------------------------------------------
class ChatClient:
    """Keep-alive HTTP/1.1 connections to one frontend's ``/v1/chat/completions``, through aiohttp.

    aiohttp's C parser (llhttp) speaks HTTP/1.1, keep-alive and the chunked framing; httpx's pure-Python
    h11 cost ~2 ms of CPU per 64-token stream, because the framing runs once per HTTP chunk and Dynamo
    sends one chunk per token (bench/README.md). The pool is unbounded on purpose: callers bound the
    requests in flight (``run_load``'s workers), so no request ever waits inside the client for a
    connection (a wait there would be counted as TTFT). aiohttp closes a connection whose exchange did
    not end cleanly (or that the server means to close) and reuses the others. The session is opened
    on the first request, inside the event loop that runs it.
    """

    def __init__(self, base_url: str, timeout_s: float, *, host: str | None = None) -> None:
        root = api_root(base_url)
        parts = urlsplit(root)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"need an http:// or https:// URL, got {base_url!r}")
        self.url = f"{root}/v1/chat/completions"  # a gateway may route on a path prefix
        self._headers = {
            "User-Agent": "dynadeploy-loadgen",
            "Accept-Encoding": "identity",
            "Content-Type": "application/json",
        }
        if host:
            self._headers["Host"] = host
        self._https = parts.scheme == "https"
        self._connect_s = min(timeout_s, 10.0)
        self._session: Any = None
        self._url: Any = None

    def _open(self) -> Any:
        import aiohttp
        import yarl

        self._url = yarl.URL(self.url)  # parsed once, not per request
        connector = aiohttp.TCPConnector(
            limit=0,  # unbounded: see the class docstring
            # plain http has no TLS, so no CA bundle to load (~0.1 s of CPU per client)
            ssl=_ssl_context() if self._https else False,
        )
        return aiohttp.ClientSession(
            connector=connector,
            # the total deadline is _request's asyncio.timeout; aiohttp caps only connecting
            timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_s),
            auto_decompress=False,  # Accept-Encoding: identity
            cookie_jar=aiohttp.DummyCookieJar(),  # no cookies to keep: saves a jar update per response
            trust_env=False,  # the smoke test measures the endpoint itself, never through a proxy
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def request(self, payload: dict[str, Any]) -> _Prepared:
        """One request's body and headers, encoded once and sent many times."""
        body = json.dumps(payload).encode()
        stream = bool(payload.get("stream"))
        headers = {**self._headers, "Accept": "text/event-stream" if stream else "application/json"}
        return _Prepared(body, headers, stream)

    async def send(self, prepared: _Prepared) -> Any:
        """Sends the request; returns the aiohttp response with its head read and its body not yet
        read (the caller releases it)."""
        if self._session is None:
            self._session = self._open()
        return await self._session.request(
            "POST", self._url, data=prepared.body, headers=prepared.headers, allow_redirects=False
        )


@dataclass(frozen=True, slots=True)
class _Prepared:
    body: bytes
    headers: dict[str, str]
    stream: bool


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
    client: ChatClient, request: _Prepared, stream: bool, timeout_s: float, t0: float
) -> RequestResult:
    import aiohttp

    sent = time.perf_counter()
    result = RequestResult(ok=False, started_at=sent - t0)
    try:
        async with asyncio.timeout(timeout_s):
            response = await client.send(request)
            try:
                result.status = response.status
                if response.status != 200:
                    result.error = _http_error(response.status, await response.read())
                elif stream:
                    await _read_stream(response, sent, result)
                else:
                    _check_completion(await response.read(), result)
                    result.ttft_s = time.perf_counter() - sent
            finally:
                # back to the pool when read to its end; aiohttp closes a connection whose body was not
                response.release()
    except (OSError, aiohttp.ClientError) as exc:  # TimeoutError is an OSError
        result.error = _describe_chat(exc, timeout_s)
    except _ProtocolError as exc:
        result.error = f"protocol: {exc}"
    result.e2e_s = time.perf_counter() - sent
    if result.error is None and result.status == 200:
        result.ok = True
    return result


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
        result.tokens_from = "usage"
    except (ValueError, AttributeError, TypeError) as exc:
        raise _ProtocolError(f"bad chat completion body: {exc}") from exc


async def _read_stream(response: Any, sent: float, result: RequestResult) -> None:
    """aiohttp decodes the HTTP/1.1 framing; httpx-sse's decoders (the ones its ``EventSource`` runs)
    split the lines (CRLF, LF or CR, also across reads) and the events (multi-line data, comments,
    event types). Each read is stamped when the client gets it, and its events with that time."""
    from httpx_sse._decoders import SSEDecoder, SSELineDecoder

    content_type = response.headers.get("Content-Type", "").partition(";")[0]
    if "text/event-stream" not in content_type:  # httpx-sse's EventSource check, word for word
        raise _ProtocolError(
            f"Expected response header Content-Type to contain 'text/event-stream', got {content_type!r}"
        )
    sse, lines, events = _SSE(sent, result), SSELineDecoder(), SSEDecoder()
    text = codecs.getincrementaldecoder("utf-8")("replace").decode  # a character may span two reads
    content, feed, decode_lines, decode_event = response.content, sse.feed, lines.decode, events.decode
    with _framing_errors_wake(response):
        while data := await content.readany():
            now = time.perf_counter()
            for line in decode_lines(text(data)):
                if (event := decode_event(line)) is not None:
                    feed(event, now)
    for line in lines.flush():
        if (event := decode_event(line)) is not None:
            feed(event, time.perf_counter())
    sse.finish()


@contextlib.contextmanager
def _framing_errors_wake(response: Any) -> Iterator[None]:
    """aiohttp 3.14's C parser drops the body's reader without an error when the chunked framing is
    malformed (a bad chunk size or chunk end): the connection is closed, but the reader waits until
    the deadline. While the body is read, the connection's close hands the parser's error to the
    reader, as its Python parser does."""
    connection = response.connection
    protocol = connection.protocol if connection is not None else None
    if protocol is None:
        yield
        return
    content = response.content

    def wake(_: object) -> None:
        if not content.is_eof() and content.exception() is None:
            import aiohttp

            cause = protocol.exception()
            error = aiohttp.ClientPayloadError(f"Response payload is not completed: {cause!r}")
            error.__cause__ = cause
            content.set_exception(error)

    closed = protocol.closed  # None once the connection is lost
    if closed is None:
        wake(None)
        yield
        return
    closed.add_done_callback(wake)
    try:
        yield
    finally:
        closed.remove_done_callback(wake)


class _SSE:
    """Turns the events of one chat completion stream into TTFT, inter-chunk gaps and a token count.

    JSON decoding is most of an event's cost, so only the first data event and the unusual ones are
    decoded (usage, anything mentioning "error", anything not in the compact form every known server
    sends); the others are read by string checks that give the same answer for well-formed compact
    chunks: the object marker, and whether a (reasoning) content string is non-empty.
    """

    def __init__(self, sent: float, result: RequestResult) -> None:
        self.sent, self.result = sent, result
        self.done = False
        self.last, self.chunks, self.usage_tokens = 0.0, 0, None
        self.decode_next = True

    def feed(self, event: ServerSentEvent, now: float) -> None:
        data = event.data
        if (
            self.decode_next
            or self.done
            or event.event != "message"
            or not data.endswith("}")
            or _CHUNK_OBJECT not in data
            or '"error"' in data
            or '"usage":{' in data
        ):
            content = self._unusual(event.event, data)
            if content is None:
                return
        else:  # the common case: a compact chunk after the first, read by string checks
            content = _CONTENT.search(data) is not None
        if content:
            if self.chunks == 0:
                self.result.ttft_s = now - self.sent
            else:
                self.result.itl_s.append(now - self.last)
            self.last, self.chunks = now, self.chunks + 1

    def _unusual(self, kind: str, data: str) -> bool | None:
        """Whether an event that the string checks cannot vouch for carries content; None when it is
        not a chunk (anything after [DONE], a keep-alive, [DONE] itself)."""
        if self.done:
            return None  # after [DONE], the stream is still read to its end so the connection is reused
        if kind == "error":
            raise _ProtocolError(f"error event in stream: {data[:200]!r}")
        if not data:
            return None  # an event with no data (a keep-alive, an id or retry line) carries nothing
        if data == "[DONE]":
            self.done = True
            return None
        self.decode_next = False
        return self._decode(data)

    def _decode(self, data: str) -> bool:
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
        self.result.content_chunks = self.chunks
        if self.usage_tokens is not None:
            self.result.output_tokens, self.result.tokens_from = int(self.usage_tokens), "usage"
        else:
            self.result.output_tokens, self.result.tokens_from = self.chunks, "chunks"


_CHUNK_OBJECT = '"object":"chat.completion.chunk"'
# a non-empty "content" or "reasoning_content" string; quotes inside strings are escaped, so these
# keys cannot match inside a value
_CONTENT = re.compile(r'"(?:reasoning_)?content":"[^"]')


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


def _describe_chat(exc: BaseException, timeout_s: float) -> str:
    """One line for a transport error of the chat path (aiohttp), in the words ``_describe`` gives
    httpx's (and h11's) errors, so reports and the gate read the same whichever client failed."""
    import aiohttp

    if isinstance(exc, TimeoutError):
        return f"timeout after {timeout_s:g} s ({type(exc).__name__})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connect error: {_lower(str(exc))}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "RemoteProtocolError: server disconnected without sending a response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        cause = exc.__cause__ or exc
        cause = " ".join(str(getattr(cause, "message", cause)).split())[:200]  # llhttp's is multi-line
        for needle, words in _PAYLOAD_ERRORS:
            if needle in cause:
                return f"RemoteProtocolError: {words} ({_lower(cause)})"
        return f"RemoteProtocolError: {_lower(cause)}"
    text = _lower(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# llhttp's reason (inside aiohttp's payload error) -> h11's words for the same defect
_PAYLOAD_ERRORS = (
    ("Not enough data", "peer closed connection without sending complete message body"),
    ("chunk size", "illegal chunk header"),
    ("after chunk data", "malformed chunk footer"),
)


def _lower(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:]


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
