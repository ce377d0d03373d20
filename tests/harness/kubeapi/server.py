"""The aiohttp application: middleware (request log, faults, Status errors), discovery, OpenAPI, the
simulator's own /_sim endpoints, and dispatch of resource requests to handlers.py."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from dataclasses import fields

from aiohttp import web

from . import codec, discovery, errors, helmrelease, openapi, routing
from .faults import FaultRule, Faults, RequestLog, RequestRecord
from .handlers import ResourceHandlers
from .store import Store

VERSION_INFO = {
    "major": "1",
    "minor": "35",
    "gitVersion": "v1.35.0",
    "gitCommit": "kubeapi-simulator",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


class ApiServer:
    def __init__(
        self, store: Store, faults: Faults, requests: RequestLog, *, aggregated_discovery: bool = True
    ) -> None:
        self.store = store
        self.registry = store.registry
        self.faults = faults
        self.requests = requests
        self.aggregated_discovery = aggregated_discovery
        # answer protobuf to clients that accept it first (helm's Secret storage) - proves the encoder
        self.prefer_protobuf = False
        self.handlers = ResourceHandlers(store)

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    # ------------------------------------------------------------------ middleware
    @web.middleware
    async def _middleware(self, request: web.Request, handler) -> web.StreamResponse:
        q = dict(request.query)
        rec = RequestRecord(
            method=request.method,
            path=request.path,
            query=q,
            content_type=request.headers.get("Content-Type", ""),
            accept=request.headers.get("Accept", ""),
            user_agent=request.headers.get("User-Agent", ""),
            verb="",
            started=time.time(),
        )
        t0 = time.monotonic()
        try:
            target = routing.parse(request.method, request.path, q, self.registry)
            rec.verb = target.verb
            request[routing.TARGET] = target
            request[routing.DROP_AFTER] = None
            request[routing.PREFER_PROTOBUF] = self.prefer_protobuf
            if not request.path.startswith("/_sim"):
                for rule in self.faults.fire(request.method, target.verb, request.path):
                    if rule.latency:
                        await asyncio.sleep(rule.latency)
                    if rule.drop_watch_after is not None:
                        request[routing.DROP_AFTER] = rule.drop_watch_after
                    err = rule.error()
                    if err is not None:
                        raise err
            resp = await handler(request)
        except errors.ApiError as exc:
            resp = status_response(exc)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            resp = status_response(errors.internal(f"kubeapi simulator error: {exc!r}"))
        rec.status = resp.status
        rec.response_type = resp.headers.get("Content-Type", "")
        rec.duration = time.monotonic() - t0
        self.requests.add(rec)
        return resp

    # ------------------------------------------------------------------ dispatch
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        t: routing.Target = request[routing.TARGET]
        if t.verb == "other":
            return await self._other(request)
        if t.verb == "discovery":
            return self._discovery(request, t)
        return await self.handlers.handle(request, t)

    def _discovery(self, request: web.Request, t: routing.Target) -> web.Response:
        if request.method != "GET":
            raise errors.method_not_allowed()
        accept = request.headers.get("Accept")
        path = request.path.rstrip("/")
        if path in ("/api", "/apis"):
            if self.aggregated_discovery and codec.wants_aggregated(accept):
                body = discovery.aggregated(self.registry, legacy=path == "/api")
                return web.Response(
                    body=json.dumps(body).encode(),
                    content_type=None,
                    headers={"Content-Type": discovery.AGGREGATED_V2},
                )
            if path == "/api":
                return json_response(discovery.api_versions(request.host))
            return json_response(discovery.api_group_list(self.registry))
        if not t.version:
            body = discovery.api_group(self.registry, t.group)
        else:
            body = discovery.api_resource_list(self.registry, t.group, t.version)
        if body is None:
            raise routing.not_found_path()
        return json_response(body)

    async def _other(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/") or "/"
        if path == "/version":
            return json_response(VERSION_INFO)
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if path == "/openapi/v3":
            return json_response(openapi.index(self.registry))
        if path.startswith("/openapi/v3/"):
            gv = path[len("/openapi/v3/") :].split("/")
            group, version = (
                ("", gv[1])
                if gv[0] == "api" and len(gv) == 2
                else ((gv[1], gv[2]) if gv[0] == "apis" and len(gv) == 3 else (None, None))
            )
            doc = openapi.gv_document(self.registry, group, version) if group is not None else None
            if doc is None:
                raise routing.not_found_path()
            return json_response(doc)
        if path.startswith("/_sim/"):
            return await self._sim(request, path)
        raise routing.not_found_path()

    async def _sim(self, request: web.Request, path: str) -> web.Response:
        if path == "/_sim/requests":
            if request.method == "DELETE":
                self.requests.clear()
                return json_response({})
            return json_response(self.requests.as_json())
        if path == "/_sim/faults":
            if request.method == "POST":
                spec = await request.json()
                allowed = {f.name for f in fields(FaultRule)} - {"hits", "id"}
                unknown = set(spec) - allowed
                if unknown:
                    raise errors.bad_request(
                        f"unknown fault fields {sorted(unknown)}; known: {sorted(allowed)}"
                    )
                rule = self.faults.add(**spec)
                return json_response({"id": rule.id, **spec}, status=201)
            if request.method == "DELETE":
                self.faults.clear()
                return json_response({})
            return json_response(self.faults.rules())
        if path == "/_sim/helm-release-status" and request.method == "POST":
            spec = await request.json()
            try:
                secret = helmrelease.set_release_status(
                    self.store,
                    spec["name"],
                    spec["namespace"],
                    spec.get("status", "pending-upgrade"),
                    spec.get("revision"),
                )
            except LookupError as exc:
                raise errors.ApiError(404, "NotFound", str(exc)) from None
            return json_response(secret)
        if path == "/_sim/deny" and request.method in ("POST", "DELETE"):
            if request.method == "DELETE":
                self.handlers.deny_rules.clear()
            else:
                self.handlers.deny_rules.append(await request.json())
            return json_response(self.handlers.deny_rules)
        raise routing.not_found_path()


def json_response(body, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(), status=status, content_type="application/json"
    )


def status_response(exc: errors.ApiError) -> web.Response:
    resp = json_response(exc.status(), status=exc.code)
    for k, v in exc.headers.items():
        resp.headers[k] = v
    return resp
