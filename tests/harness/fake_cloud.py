"""What the fake cloud APIs share (fake_gke.py, fake_aks.py, and the AWS fault proxy of the provider
tests): a threaded HTTP server on 127.0.0.1, a request log, and fault rules.

Faults (``server.faults``):
    add(status=429, times=2, method="POST", path=r"/clusters$", retry_after=1)
        answer the next ``times`` matching requests with ``status`` (and Retry-After, or retry-after-ms
        below one second) instead of
        serving them: throttling and 5xx as a front end would give them, before any state changes.
    kill_after(k)
        serve ``k`` more requests, then answer every request with 400 ``KilledByTest`` until
        ``clear()``: to the client this is a run that died after its k-th call (nothing after it
        reaches the cloud; operations already started go on server-side).
Requests (``server.requests``): ``(method, path)`` tuples; ``count(method, regex)``.
Credentials: ``server.authorizations`` holds the Authorization header of every request ('' when none), so a
test can tell which credentials a client used; ``server.authorize = fn(header) -> bool`` makes the server
answer 401 to a request whose header ``fn`` refuses (before faults and state).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit


@dataclass
class Fault:
    status: int
    times: int
    method: str | None = None
    path: str | None = None
    retry_after: float | None = None
    killed: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or bool(re.search(self.path, path))
        )


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[Fault] = []
        self.kill_in: int | None = None
        self.injected = 0

    def add(
        self,
        status: int = 429,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = 1,
    ) -> None:
        with self._lock:
            self.rules.append(Fault(status, times, method, path, retry_after))

    def kill_after(self, k: int) -> None:
        with self._lock:
            self.kill_in = k

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.kill_in = None
            self.injected = 0

    def pick(self, method: str, path: str) -> Fault | None:
        """The fault for this request, if any (consumes one use of it)."""
        with self._lock:
            if self.kill_in is not None:
                if self.kill_in <= 0:
                    return Fault(400, 1, retry_after=None, killed=True)
                self.kill_in -= 1
            for rule in self.rules:
                if rule.times > 0 and rule.matches(method, path):
                    rule.times -= 1
                    self.injected += 1
                    return rule
            return None


def authorization(headers: dict[str, str]) -> str:
    """The request's Authorization header ('' when it has none)."""
    return next((v for k, v in headers.items() if k.lower() == "authorization"), "")


class RequestLog(list):
    def count(self, method: str | None = None, path: str = "") -> int:
        return sum(1 for m, p in self if (method is None or m == method) and re.search(path, p))


class FakeServer:
    """A ThreadingHTTPServer whose handler calls ``self.handle(method, path, query, body, headers)``.

    Subclasses implement ``handle`` returning ``(status, body_dict_or_None, extra_headers)`` and
    ``fault_body(status, killed)``.
    """

    def __init__(self) -> None:
        self.faults = Faults()
        self.requests = RequestLog()
        self.authorizations: list[str] = []
        self.authorize: Callable[[str], bool] | None = None
        self.lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms stalls

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, data, headers = fake.respond(self.command, self.path, raw, dict(self.headers))
                self.send_response(status)
                headers = {
                    k: v
                    for k, v in headers.items()
                    if k.lower()
                    not in ("content-length", "connection", "transfer-encoding", "date", "server")
                }
                headers.setdefault("Content-Type", "application/json")
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def respond(
        self, method: str, target: str, raw: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes, dict]:
        """Log the request, answer an injected fault if one matches, else ``handle`` it (JSON)."""
        parts = urlsplit(target)
        self.requests.append((method, parts.path))
        auth = authorization(headers)
        self.authorizations.append(auth)
        if self.authorize is not None and not self.authorize(auth):
            return 401, json.dumps(self.fault_body(401, False)).encode(), {}
        fault = self.faults.pick(method, parts.path)
        if fault is not None:
            out: dict[str, str] = {}
            if fault.retry_after is not None and fault.retry_after >= 1:
                out["Retry-After"] = str(round(fault.retry_after))
            elif (
                fault.retry_after is not None
            ):  # sub-second: the ms header (azure-core reads it; ARM sends it)
                out["retry-after-ms"] = str(int(fault.retry_after * 1000))
            return fault.status, json.dumps(self.fault_body(fault.status, fault.killed)).encode(), out
        try:
            body_in = json.loads(raw) if raw else None
        except ValueError:
            body_in = None
        with self.lock:
            status, body, out = self.handle(method, parts.path, parts.query, body_in, headers)
        return status, b"" if body is None else json.dumps(body).encode(), out

    def handle(self, method: str, path: str, query: str, body: Any, headers: dict[str, str]):
        raise NotImplementedError

    def fault_body(self, status: int, killed: bool) -> dict[str, Any]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
