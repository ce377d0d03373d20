"""Fault injection and the request log.

A FaultRule matches requests by path regex and verb (a Kubernetes verb - get, list, watch, create,
update, patch, delete, deletecollection - or an HTTP method) and can:
- answer an error status (429 with Retry-After, 500, 503) instead of serving the request,
- add latency before serving it,
- cut a watch stream after N events,
optionally only ``times`` times and/or with probability ``rate`` (seeded, reproducible).
Configure from Python (``sim.faults.add(...)``) or over HTTP (``POST /_sim/faults`` with the same
fields as JSON; ``DELETE /_sim/faults`` clears; ``GET /_sim/faults`` lists).
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import asdict, dataclass, field

from . import errors


@dataclass
class FaultRule:
    path: str = ".*"  # regex, searched in the request path (no query)
    verbs: list[str] | None = None  # k8s verbs or HTTP methods; None: all
    status: int | None = None  # 429 / 500 / 503 (any 4xx/5xx works)
    retry_after: float = 1.0  # seconds, sent as Retry-After with 429 (and 503)
    latency: float = 0.0  # seconds added before the request is served
    drop_watch_after: int | None = None  # close watch streams after this many events
    times: int | None = None  # fire at most this many times; None: unlimited
    rate: float = 1.0  # probability of firing per matching request
    message: str = ""
    hits: int = field(default=0)
    id: int = field(default=0)

    def matches(self, method: str, verb: str, path: str) -> bool:
        if self.verbs and method.lower() not in self._verbs and verb not in self._verbs:
            return False
        return re.search(self.path, path) is not None

    @property
    def _verbs(self) -> set[str]:
        return {v.lower() for v in self.verbs or []}

    def error(self) -> errors.ApiError | None:
        if self.status is None:
            return None
        msg = self.message or f"fault injected by the simulator ({self.status})"
        if self.status == 429:
            return errors.too_many_requests(msg, self.retry_after)
        reason = {
            500: "InternalError",
            503: "ServiceUnavailable",
            504: "Timeout",
            409: "Conflict",
            404: "NotFound",
            403: "Forbidden",
        }.get(self.status, "InternalError")
        headers = {"Retry-After": str(max(1, int(self.retry_after)))} if self.status == 503 else None
        return errors.ApiError(self.status, reason, msg, headers=headers)


class Faults:
    """The active fault rules (thread-safe)."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._rng = random.Random(seed)
        self._ids = 0

    def add(self, path: str = ".*", verbs: list[str] | str | None = None, **kw) -> FaultRule:
        if isinstance(verbs, str):
            verbs = [verbs]
        rule = FaultRule(path=path, verbs=verbs, **kw)
        re.compile(rule.path)
        with self._lock:
            self._ids += 1
            rule.id = self._ids
            self._rules.append(rule)
        return rule

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r.id != rule.id]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict]:
        with self._lock:
            return [asdict(r) for r in self._rules]

    def fire(self, method: str, verb: str, path: str) -> list[FaultRule]:
        """Rules that fire for this request (counts them)."""
        out = []
        with self._lock:
            for r in self._rules:
                if r.times is not None and r.hits >= r.times:
                    continue
                if r.matches(method, verb, path) and (r.rate >= 1 or self._rng.random() < r.rate):
                    r.hits += 1
                    out.append(r)
        return out


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    accept: str
    user_agent: str
    verb: str
    status: int = 0
    response_type: str = ""
    started: float = 0.0
    duration: float = 0.0


class RequestLog:
    """Every request the server answered, in order (``GET /_sim/requests`` serves it as JSON)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[RequestRecord] = []

    def add(self, rec: RequestRecord) -> None:
        with self._lock:
            self._entries.append(rec)

    @property
    def entries(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def find(
        self, method: str | None = None, path: str | None = None, verb: str | None = None, **query: str
    ) -> list[RequestRecord]:
        """Entries by method, path regex, verb and query values (e.g. ``fieldManager="helm"``)."""
        out = []
        for r in self.entries:
            if method and r.method != method.upper():
                continue
            if verb and r.verb != verb:
                continue
            if path and not re.search(path, r.path):
                continue
            if any(r.query.get(k) != v for k, v in query.items()):
                continue
            out.append(r)
        return out

    def as_json(self) -> list[dict]:
        return [asdict(r) for r in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)


def now() -> float:
    return time.monotonic()
