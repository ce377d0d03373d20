"""The smoke client's chat path: one measured, validated chat completion over keep-alive HTTP/1.1.

runtime/gateways/loadgen.py drives the load and judges it; this module sends one request and reads its
answer. aiohttp's C parser (llhttp) speaks HTTP/1.1, keep-alive and the chunked framing; httpx-sse's
decoders (the line and event decoders its ``EventSource`` runs) split the event stream; ``_SSE`` turns
the events into TTFT, inter-chunk gaps and a token count. No HTTP parsing lives here. aiohttp is
imported lazily (effects layer rule).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import json
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from runtime.domain.sla import RequestResult

if TYPE_CHECKING:
    from httpx_sse import ServerSentEvent


class _ProtocolError(Exception):
    """The server answered, but not like an OpenAI-compatible chat endpoint."""


def api_root(base_url: str) -> str:
    """``http://h:8000``, ``http://h:8000/`` and ``http://h:8000/v1`` all name the same frontend."""
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle costs ~0.1 s of CPU; readiness loops open many short-lived clients."""
    import httpx

    return httpx.create_ssl_context()


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
        said = " ".join(str(getattr(cause, "message", cause)).split())[:200]  # llhttp's is multi-line
        for needle, words in _PAYLOAD_ERRORS:
            if needle in said:
                return f"RemoteProtocolError: {words} ({_lower(said)})"
        return f"RemoteProtocolError: {_lower(said)}"
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
