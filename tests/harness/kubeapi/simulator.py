"""Simulator: the HTTP server on its own thread and event loop, plus the controller dispatcher.

    sim = Simulator().start()          # binds 127.0.0.1 on a free port
    sim.write_kubeconfig(path)         # for helm / kubectl / the kubernetes client
    sim.add_controller(fn, every=0.1)  # fn(store, event) per change; fn(store, None) every 0.1 s
    sim.stop()

Controllers run one at a time on a single dispatcher thread, in event order, and see their own writes
as events (like an informer). An exception in a controller is recorded in ``sim.controller_errors``
and does not stop the others.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from aiohttp import web

from . import helmrelease
from .faults import Faults, RequestLog
from .kubeconfig import write_kubeconfig
from .server import ApiServer
from .store import Event, Store

ControllerFn = Callable[[Store, "Event | None"], None]


@dataclass(eq=False)
class Controller:
    fn: ControllerFn
    every: float | None = None
    name: str = ""
    next_due: float = field(default=0.0)
    enabled: bool = True


class Simulator:
    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, seed: int = 0, aggregated_discovery: bool = True
    ) -> None:
        if host != "127.0.0.1":
            raise ValueError("the simulator only listens on 127.0.0.1")
        self.host, self.port = host, port
        self.store = Store()
        self.faults = Faults(seed)
        self.requests = RequestLog()
        self.server = ApiServer(
            self.store, self.faults, self.requests, aggregated_discovery=aggregated_discovery
        )
        self.kubeconfig: Path | None = None
        self.env: dict[str, str] = {}  # set by the pytest fixture: tool_env() of its temp home
        self.controller_errors: list[tuple[str, BaseException, str]] = []
        self._controllers: list[Controller] = []
        self._events: queue.Queue = queue.Queue()
        self._busy = threading.Event()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._threads: list[threading.Thread] = []
        self._stop_hooks: list[Callable[[], None]] = []
        self._unsubscribe = self.store.subscribe(self._events.put)

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Simulator:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        t = threading.Thread(target=run, name="kubeapi-sim-http", daemon=True)
        t.start()
        ready.wait(30)
        if failure:
            raise RuntimeError(f"kubeapi simulator failed to start: {failure[0]!r}")
        c = threading.Thread(target=self._dispatch, name="kubeapi-sim-controllers", daemon=True)
        c.start()
        self._threads = [t, c]
        return self

    async def _serve(self) -> None:
        self._runner = web.AppRunner(self.server.build_app(), access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, shutdown_timeout=0.1)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        self._stop.set()
        self._events.put(None)
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        for t in self._threads:
            t.join(10)
        self._unsubscribe()
        while self._stop_hooks:  # after the controllers stopped: nothing restarts what a hook stops
            hook = self._stop_hooks.pop()
            try:
                hook()
            except Exception as exc:
                self.controller_errors.append(("stop-hook", exc, traceback.format_exc()))

    def on_stop(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Call ``fn()`` when the simulator stops (after the controllers; last registered runs first)."""
        self._stop_hooks.append(fn)
        return fn

    def __enter__(self) -> Self:
        return self.start() if self._loop is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: str | Path, namespace: str = "default") -> Path:
        self.kubeconfig = write_kubeconfig(path, self.url, namespace=namespace)
        return self.kubeconfig

    def tool_env(self, home: str | Path, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for helm/kubectl subprocesses: this kubeconfig, and caches under ``home`` so runs
        never share discovery caches (or touch ~/.kube, ~/.cache/helm)."""
        if self.kubeconfig is None:
            raise RuntimeError("call write_kubeconfig() first")
        home = Path(home)
        env = dict(os.environ if base is None else base)
        for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "KUBECONFIG"):
            env.pop(k, None)
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            KUBECACHEDIR=str(home / "kube-cache"),
            HELM_CACHE_HOME=str(home / "helm-cache"),
            HELM_CONFIG_HOME=str(home / "helm-config"),
            HELM_DATA_HOME=str(home / "helm-data"),
            NO_PROXY="127.0.0.1,localhost",
        )
        return env

    def api_client(self, retries: object = None):
        """A kubernetes.client.ApiClient for this simulator (the real client, over HTTP).

        ``retries`` goes to urllib3 (its default retries 429/503 after Retry-After); pass ``False`` to
        see every error status as an ApiException.
        """
        from kubernetes import client, config

        if self.kubeconfig is None:
            raise RuntimeError("call write_kubeconfig() first")
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=cfg)
        if retries is not None:
            cfg.retries = retries
        return client.ApiClient(cfg)

    def set_helm_release_status(
        self, name: str, namespace: str, status: str = "pending-upgrade", revision: int | None = None
    ) -> dict:
        """Fault: leave a helm release's latest (or given) revision in ``status`` (pending-upgrade makes
        ``helm upgrade`` fail with "another operation (install/upgrade/rollback) is in progress")."""
        return helmrelease.set_release_status(self.store, name, namespace, status, revision)

    def deny(self, **attrs: str) -> dict:
        """Make access reviews (``kubectl auth can-i``, SelfSubjectAccessReview) answer "no" for requests
        matching ``attrs`` (verb, group, resource, subresource, namespace, name; "*" or absent = any).
        Only the reviews consult it: requests themselves are never refused (no RBAC enforcement)."""
        self.server.handlers.deny_rules.append(dict(attrs))
        return dict(attrs)

    # ------------------------------------------------------------------ controllers
    def add_controller(self, fn: ControllerFn, *, every: float | None = None, name: str = "") -> Controller:
        """Register ``fn(store, event)``; with ``every`` it is also called as ``fn(store, None)``
        periodically."""
        ctl = Controller(fn=fn, every=every, name=name or getattr(fn, "__name__", type(fn).__name__))
        self._controllers.append(ctl)
        return ctl

    def remove_controller(self, ctl: Controller) -> None:
        ctl.enabled = False
        if ctl in self._controllers:
            self._controllers.remove(ctl)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event has been handled by the controllers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._events.unfinished_tasks == 0 and not self._busy.is_set():
                return True
            time.sleep(0.01)
        return False

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            due = [c.next_due for c in self._controllers if c.every and c.enabled]
            wait = max(0.0, min(due) - now) if due else 0.2
            try:
                ev = self._events.get(timeout=min(wait, 0.2))
            except queue.Empty:
                ev = None
                got = False
            else:
                got = True
            self._busy.set()
            try:
                if ev is not None:
                    for c in list(self._controllers):
                        self._call(c, ev)
                now = time.monotonic()
                for c in list(self._controllers):
                    if c.every and c.enabled and c.next_due <= now:
                        c.next_due = now + c.every
                        self._call(c, None)
            finally:
                self._busy.clear()
                if got:
                    self._events.task_done()

    def _call(self, c: Controller, ev: Event | None) -> None:
        if not c.enabled:
            return
        try:
            c.fn(self.store, ev)
        except Exception as exc:
            self.controller_errors.append((c.name, exc, traceback.format_exc()))
