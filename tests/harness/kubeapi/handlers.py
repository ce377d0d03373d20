"""Resource requests: get/list/watch/create/update/patch/delete/deletecollection and the status, scale,
log and finalize subresources; access reviews (always allowed unless a deny rule matches)."""

from __future__ import annotations

import base64
import copy
import json

from aiohttp import web

from . import codec, errors, protobuf, schema, watch
from .discovery import ResourceType
from .patch import json_patch, merge_patch, strategic_merge
from .routing import DROP_AFTER, PREFER_PROTOBUF, Target, truthy
from .selectors import selector_string
from .store import Store

REVIEW_KINDS = {
    "SelfSubjectAccessReview",
    "SelfSubjectRulesReview",
    "SubjectAccessReview",
    "LocalSubjectAccessReview",
}
# Delete answers the object (not a Status) for these, as the real registries do.
RETURNS_DELETED = {"Pod", "Service", "Namespace"}


class ResourceHandlers:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.deny_rules: list[dict] = []

    async def handle(self, request: web.Request, t: Target) -> web.StreamResponse:
        if t.verb not in ("create", "update", "patch"):
            return await self._handle(request, t)
        ctx = schema.WriteContext(schema.field_validation_mode(request.query.get("fieldValidation")))
        token = schema.CONTEXT.set(ctx)
        try:
            resp = await self._handle(request, t)
        finally:
            schema.CONTEXT.reset(token)
        for text in ctx.warnings:
            resp.headers.add("Warning", schema.warning_header(text))
        return resp

    async def _handle(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = dict(request.query)
        rt, ns, name, sub, version = t.rt, t.namespace or "", t.name, t.sub, t.version
        store = self.store
        dry_run = q.get("dryRun") == "All"
        manager = q.get("fieldManager") or _manager_from_agent(request.headers.get("User-Agent", ""))
        verb = "get" if t.verb == "get" and sub else t.verb
        if (
            verb not in rt.verbs
            or (verb in ("update", "patch") and not name)
            or (verb == "create" and name)
            or (sub == "log" and verb != "get")
        ):
            raise errors.method_not_allowed()
        if t.verb == "watch":
            return await watch.serve(request, store, rt, t.namespace, version, q, name, request[DROP_AFTER])
        if t.verb == "list":
            return self._list(request, rt, t.namespace, version, q)
        if t.verb == "get":
            if sub == "log":
                return self._log(rt, ns, name, q)
            obj = store.do_get(rt, ns, name, version)
            return respond(request, rt, version, _scale(rt, obj) if sub == "scale" else obj)
        if t.verb == "create":
            body = _check_kind(rt, await _body(request))
            if rt.kind in REVIEW_KINDS:
                return respond(request, rt, version, self._review(rt, version, body), 201)
            return respond(
                request,
                rt,
                version,
                store.do_create(rt, ns, body, manager=manager, version=version, dry_run=dry_run),
                201,
            )
        if t.verb == "update":
            body = _check_kind(rt, await _body(request), allow_scale=sub == "scale")
            if sub == "scale":
                return respond(request, rt, version, self._set_scale(rt, ns, name, body, manager, version))
            obj = store.do_update(
                rt,
                ns,
                name,
                body,
                manager=manager,
                version=version,
                dry_run=dry_run,
                subresource="status" if sub == "status" else "",
            )
            return respond(request, rt, version, obj)
        if t.verb == "patch":
            ptype = codec.patch_type(request.headers.get("Content-Type"))
            raw = await request.read()
            if ptype == "apply" and not q.get("fieldManager"):
                raise errors.invalid(
                    "PatchOptions",
                    "",
                    [
                        {
                            "reason": "FieldValueRequired",
                            "field": "fieldManager",
                            "message": "Required value: is required for apply patch",
                        }
                    ],
                    "meta.k8s.io",
                )
            if sub == "scale":
                cur = _scale(rt, store.do_get(rt, ns, name, version))
                body = json.loads(raw)
                new = {
                    "merge": lambda: merge_patch(cur, body),
                    "json": lambda: json_patch(cur, body),
                    "strategic": lambda: strategic_merge(cur, body, "Scale"),
                }.get(ptype, lambda: None)()
                if new is None:
                    raise errors.unsupported_media_type(request.headers.get("Content-Type", ""), [])
                return respond(request, rt, version, self._set_scale(rt, ns, name, new, manager, version))
            obj, created = store.do_patch(
                rt,
                ns,
                name,
                ptype,
                raw,
                manager=manager,
                force=truthy(q.get("force")),
                subresource=sub,
                version=version,
                dry_run=dry_run,
            )
            return respond(request, rt, version, obj, 201 if created else 200)
        if t.verb == "delete":
            opts = await _delete_options(request, q)
            obj, gone = store.do_delete(
                rt,
                ns,
                name,
                propagation=opts.get("propagationPolicy"),
                preconditions=opts.get("preconditions"),
                dry_run=dry_run,
            )
            if gone and not rt.crd and rt.kind not in RETURNS_DELETED:
                details = {"name": name, "kind": rt.plural, "uid": obj["metadata"]["uid"]}
                if rt.group:
                    details["group"] = rt.group
                return respond(
                    request,
                    rt,
                    version,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                        "details": details,
                    },
                )
            return respond(request, rt, version, obj)
        if t.verb == "deletecollection":
            opts = await _delete_options(request, q)
            items = store.do_delete_collection(
                rt,
                t.namespace,
                label_selector=q.get("labelSelector"),
                field_selector=q.get("fieldSelector"),
                propagation=opts.get("propagationPolicy"),
            )
            return respond(
                request,
                rt,
                version,
                {"kind": rt.list_kind, "apiVersion": rt.api_version(version), "metadata": {}, "items": items},
            )
        raise errors.method_not_allowed()

    # ------------------------------------------------------------------ helpers
    def _list(
        self, request: web.Request, rt: ResourceType, ns: str | None, version: str, q: dict[str, str]
    ) -> web.Response:
        items, rv = self.store.do_list(
            rt,
            ns,
            label_selector=q.get("labelSelector"),
            field_selector=q.get("fieldSelector"),
            version=version,
        )
        if q.get("continue"):
            try:
                start = tuple(json.loads(base64.urlsafe_b64decode(q["continue"]))["start"])
            except (ValueError, KeyError, TypeError):
                raise errors.bad_request("continue key is not valid") from None
            items = [i for i in items if (i["metadata"].get("namespace", ""), i["metadata"]["name"]) > start]
        meta: dict = {"resourceVersion": str(rv)}
        limit = int(q.get("limit") or 0)
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            token = json.dumps({"rv": rv, "start": [last.get("namespace", ""), last["name"]]}).encode()
            meta["continue"] = base64.urlsafe_b64encode(token).decode()
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        body = {"kind": rt.list_kind, "apiVersion": rt.api_version(version), "metadata": meta, "items": items}
        return respond(request, rt, version, body)

    def _log(self, rt: ResourceType, ns: str, name: str, q: dict[str, str]) -> web.Response:
        self.store.do_get(rt, ns, name)
        text = self.store.pod_log(ns, name, q.get("container", "")) or ""
        if q.get("tailLines"):
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(q["tailLines"]) :]) if int(q["tailLines"]) > 0 else ""
        return web.Response(text=text, content_type="text/plain")

    def _set_scale(
        self, rt: ResourceType, ns: str, name: str, scale: dict, manager: str, version: str
    ) -> dict:
        obj = self.store.do_get(rt, ns, name, version)
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != obj["metadata"]["resourceVersion"]:
            raise errors.conflict(rt.plural, name, rt.group)
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        path = (rt.scale_paths.get("specReplicasPath") or ".spec.replicas").lstrip(".").split(".")
        cur = obj
        for p in path[:-1]:
            cur = cur.setdefault(p, {})
        cur[path[-1]] = replicas
        obj["metadata"].pop("resourceVersion", None)
        return _scale(
            rt, self.store.do_update(rt, ns, name, obj, manager=manager, version=version, subresource="scale")
        )

    def _review(self, rt: ResourceType, version: str, body: dict) -> dict:
        out = copy.deepcopy(body)
        out["apiVersion"], out["kind"] = rt.api_version(version), rt.kind
        if rt.kind == "SelfSubjectRulesReview":
            out["status"] = {
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": False,
            }
            return out
        attrs = (body.get("spec") or {}).get("resourceAttributes") or {}
        denied = next(
            (
                r
                for r in self.deny_rules
                if all(
                    r.get(k) in (None, "*", attrs.get(k))
                    for k in ("verb", "group", "resource", "namespace", "name", "subresource")
                )
            ),
            None,
        )
        out["status"] = {"allowed": denied is None}
        if denied is not None:
            out["status"].update(denied=True, reason=denied.get("reason", "denied by a simulator rule"))
        return out


def respond(
    request: web.Request, rt: ResourceType, version: str, body: dict, status: int = 200
) -> web.Response:
    accept = request.headers.get("Accept")
    if (
        codec.wants_table(accept)
        and body.get("kind") not in ("Status", "Scale")
        and rt.kind not in REVIEW_KINDS
    ):
        q = request.query
        items = body.get("items", [body])
        meta = (
            {
                k: v
                for k, v in (body.get("metadata") or {}).items()
                if k in ("resourceVersion", "continue", "remainingItemCount")
            }
            if "items" in body
            else {}
        )
        body = codec.table(rt, version, items, q.get("includeObject", "Metadata"), meta)
    fmt = (
        "json"
        if codec.wants_table(accept)
        else codec.response_format(accept, body.get("kind", ""), request.get(PREFER_PROTOBUF, False))
    )
    data, ctype = codec.encode(body, fmt)
    return web.Response(body=data, status=status, headers={"Content-Type": ctype})


def _scale(rt: ResourceType, obj: dict) -> dict:
    paths = rt.scale_paths or {}

    def at(path: str | None, default=None):
        cur = obj
        for p in (path or "").lstrip(".").split("."):
            cur = cur.get(p) if isinstance(cur, dict) else None
        return default if cur is None else cur

    if rt.crd:
        spec_r = at(paths.get("specReplicasPath"), 0)
        status_r = at(paths.get("statusReplicasPath"), 0)
        selector = at(paths.get("labelSelectorPath"), "") if paths.get("labelSelectorPath") else ""
    else:
        spec_r, status_r = at(".spec.replicas", 0), at(".status.replicas", 0)
        selector = selector_string(at(".spec.selector"))
    m = obj["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: m[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp") if k in m
        },
        "spec": {"replicas": spec_r},
        "status": {"replicas": status_r, "selector": selector},
    }


async def _body(request: web.Request) -> dict:
    body = codec.decode_body(await request.read(), request.headers.get("Content-Type"))
    if not isinstance(body, dict):
        raise errors.bad_request("the request body must be an object")
    return body


def _check_kind(rt: ResourceType, body: dict, allow_scale: bool = False) -> dict:
    kind = body.get("kind")
    if kind and kind != rt.kind and not (allow_scale and kind == "Scale"):
        raise errors.bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
        )
    api_version = body.get("apiVersion") or ""
    group = api_version.rpartition("/")[0]
    if api_version and group != rt.group and not (allow_scale and group == "autoscaling"):
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected "
            f"API version ({rt.api_version()})"
        )
    return body


async def _delete_options(request: web.Request, q: dict[str, str]) -> dict:
    raw = await request.read()
    opts: dict = {}
    if raw.strip():
        ct = codec.media_type(request.headers.get("Content-Type"))
        try:
            opts = protobuf.decode(raw) if ct == protobuf.CONTENT_TYPE else json.loads(raw)
        except (ValueError, protobuf.ProtobufError) as exc:
            raise errors.bad_request(f"invalid DeleteOptions: {exc}") from None
    if q.get("propagationPolicy"):
        opts["propagationPolicy"] = q["propagationPolicy"]
    orphan = q.get("orphanDependents", opts.get("orphanDependents"))
    if (orphan is True or truthy(str(orphan))) and not opts.get("propagationPolicy"):
        opts["propagationPolicy"] = "Orphan"
    return opts


def _manager_from_agent(agent: str) -> str:
    return (agent.split("/", 1)[0] or "unknown")[:128]
