"""The traffic controllers' data plane: HTTP/1.1 reverse proxies on loopback (see traffic.py).

One asyncio loop on its own thread (``ProxyLoop``) serves every listener, so no request runs on the
simulator's dispatcher thread. A ``Listener`` holds a routing table (traffic_routes.py) that the controller
replaces whole when it syncs; each request reads the table once, so an in-flight request finishes on the
backend it started with while new requests see the new table at once (like Envoy / an nginx reload).

Per request: the table picks a ``Backend`` or answers a status itself (404 no route, 500 invalid backend
reference or every weight 0); an endpoint is taken round robin from the backend's ready endpoints (503
"no healthy upstream" when there are none); the request - method, raw path and query, body, end-to-end
headers with Host as sent, plus X-Forwarded-For / X-Forwarded-Proto - goes to the endpoint, and the
response comes back chunk by chunk as it arrives (SSE is not buffered) with ``x-kubeapi-sim-backend:
<namespace>/<service>`` added. An endpoint that cannot be reached gets the listener's ``connect_error``
(503 like Envoy, 502 like nginx); an upstream that breaks off mid-response breaks the client's response.

Not simulated: TLS, HTTP/2 and h2c, WebSocket/Upgrade, request body streaming (bodies are read whole
before forwarding), timeouts and retries, connection draining beyond ``shutdown_timeout``, access logs.
"""

from __future__ import annotations

import asyncio
import functools
import random
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

BACKEND_HEADER = "x-kubeapi-sim-backend"
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
    }
)
_SKIP_AUTO = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


@dataclass(frozen=True)
class Backend:
    """A resolved Service: its ready endpoints, or ``error`` (the status an invalid reference answers)."""

    namespace: str
    service: str
    endpoints: tuple[tuple[str, int], ...] = ()
    error: int = 0

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.service}"


@dataclass(frozen=True)
class RequestView:
    """What routing looks at: method, host (lowercased, no port), decoded path, headers, query."""

    method: str
    host: str
    path: str
    headers: Any  # case-insensitive multidict
    query: Any


class Table(Protocol):
    def select(self, req: RequestView, rng: random.Random) -> tuple[int, Backend | None]:
        """(0, backend) to forward, or (status, backend or None) to answer locally."""


class NoRoutes:
    def select(self, req: RequestView, rng: random.Random) -> tuple[int, Backend | None]:
        return 404, None


@dataclass(eq=False)
class Listener:
    host: str
    port: int
    table: Table
    connect_error: int = 503
    runner: web.AppRunner | None = None


class ProxyLoop:
    """Every proxy listener of one controller, on one event loop thread (started on first use)."""

    def __init__(
        self, *, seed: int | None = None, connect_timeout: float = 5.0, shutdown_timeout: float = 0.5
    ) -> None:
        self.rng = random.Random(seed)
        self.connect_timeout = connect_timeout
        self.shutdown_timeout = shutdown_timeout
        self.listeners: list[Listener] = []
        self._rr: dict[tuple, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ called from the controller thread
    def listen(self, host: str, port: int, table: Table, *, connect_error: int = 503) -> Listener:
        """Bind ``host:port`` and serve ``table``; OSError when the port is taken."""
        lis = Listener(host, port, table, connect_error)
        self._run(self._start(lis))
        with self._lock:
            self.listeners.append(lis)
        return lis

    def close(self, lis: Listener) -> None:
        """Stop listening; in-flight requests get ``shutdown_timeout`` to finish."""
        with self._lock:
            if lis not in self.listeners:
                return
            self.listeners.remove(lis)
        self._run(self._stop(lis), timeout=self.shutdown_timeout + 10)

    def stop(self) -> None:
        with self._lock:
            loop, thread, listeners = self._loop, self._thread, list(self.listeners)
            self.listeners.clear()
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(listeners), loop).result(
                self.shutdown_timeout + 10
            )
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()
                    loop.close()

                self._thread = threading.Thread(target=run, name="kubeapi-sim-traffic", daemon=True)
                self._thread.start()
                ready.wait(10)
                self._loop = loop
            return self._loop

    def _run(self, coro: Coroutine, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop()).result(timeout)

    # ------------------------------------------------------------------ on the proxy loop
    async def _start(self, lis: Listener) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                auto_decompress=False,
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
            )
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", functools.partial(self._handle, lis))
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=self.shutdown_timeout
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, lis.host, lis.port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        lis.runner = runner

    async def _stop(self, lis: Listener) -> None:
        if lis.runner is not None:
            await lis.runner.cleanup()
            lis.runner = None

    async def _shutdown(self, listeners: list[Listener]) -> None:
        for lis in listeners:
            await self._stop(lis)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _handle(self, lis: Listener, request: web.Request) -> web.StreamResponse:
        host = (request.headers.get("Host") or "").lower()
        host = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        view = RequestView(request.method, host, request.path, request.headers, request.query)
        status, backend = lis.table.select(view, self.rng)
        if not status and backend is not None and backend.error:
            status = backend.error
        if status or backend is None:
            return _local(status or 404, backend, "no route" if status == 404 else "invalid backend")
        if not backend.endpoints:
            return _local(503, backend, "no healthy upstream")
        key = (backend.namespace, backend.service, backend.endpoints)
        n = self._rr.get(key, 0)
        self._rr[key] = n + 1
        ip, port = backend.endpoints[n % len(backend.endpoints)]
        body = await request.read()
        drop = HOP_BY_HOP | {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
        headers = CIMultiDict(
            (k, v)
            for k, v in request.headers.items()
            if k.lower() not in drop and k.lower() != "content-length"
        )
        headers["X-Forwarded-For"] = ", ".join(
            filter(None, [request.headers.get("X-Forwarded-For"), request.remote])
        )
        headers["X-Forwarded-Proto"] = "http"
        url = URL(f"http://{ip}:{port}{request.raw_path}", encoded=True)
        assert self._session is not None
        resp: web.StreamResponse | None = None
        try:
            async with self._session.request(
                request.method,
                url,
                headers=headers,
                allow_redirects=False,
                data=body if body or request.method in ("POST", "PUT", "PATCH") else None,
                skip_auto_headers=_SKIP_AUTO,
            ) as up:
                resp = web.StreamResponse(status=up.status, reason=up.reason)
                up_drop = HOP_BY_HOP | {
                    t.strip().lower() for t in up.headers.get("Connection", "").split(",")
                }
                for k, v in up.headers.items():
                    if k.lower() not in up_drop and k.lower() != "content-length":
                        resp.headers.add(k, v)
                if "Content-Length" in up.headers and "Transfer-Encoding" not in up.headers:
                    resp.content_length = int(up.headers["Content-Length"])
                resp.headers[BACKEND_HEADER] = backend.label
                await resp.prepare(request)
                async for chunk in up.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
        except (TimeoutError, aiohttp.ClientError) as exc:
            if resp is not None and resp.prepared:
                raise ConnectionResetError(f"upstream {ip}:{port} broke off: {exc}") from exc
            return _local(lis.connect_error, backend, f"upstream connect error: {exc}")


def _local(status: int, backend: Backend | None, message: str) -> web.Response:
    headers = {BACKEND_HEADER: backend.label} if backend is not None else {}
    return web.Response(status=status, text=message + "\n", headers=headers)
