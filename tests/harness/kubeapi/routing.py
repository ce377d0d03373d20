"""Map a request path to what it addresses (resource type, namespace, name, subresource, verb)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from . import errors
from .discovery import Registry, ResourceType


@dataclass
class Target:
    verb: str  # k8s verb, or "discovery"/"other"
    rt: ResourceType | None = None
    group: str = ""
    version: str = ""
    namespace: str | None = None  # None: cluster-scoped, or all namespaces for list/watch
    name: str | None = None
    sub: str = ""
    watch: bool = False


TARGET = web.RequestKey("target", Target)
DROP_AFTER = web.RequestKey("drop_after", object)
PREFER_PROTOBUF = web.RequestKey("prefer_protobuf", bool)


def truthy(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


def not_found_path() -> errors.ApiError:
    return errors.ApiError(404, "NotFound", "the server could not find the requested resource", details={})


def _verb(method: str, name: str | None, watch: bool) -> str:
    if method == "GET":
        return "watch" if watch else ("get" if name else "list")
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return method.lower()


def parse(method: str, path: str, query: dict[str, str], reg: Registry) -> Target:
    segs = [s for s in path.split("/") if s]
    if not segs or segs[0] not in ("api", "apis"):
        return Target(verb="other")
    if segs[0] == "api":
        group, head = "", segs[1:2]
        rest = segs[2:]
    else:
        if len(segs) < 3:
            return Target(verb="discovery", group=segs[1] if len(segs) > 1 else "")
        group, head, rest = segs[1], segs[2:3], segs[3:]
    version = head[0] if head else ""
    if not rest:
        return Target(verb="discovery", group=group, version=version)
    watch = truthy(query.get("watch"))
    if rest[0] == "watch":
        watch, rest = True, rest[1:]
        if not rest:
            raise not_found_path()
    ns: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        inner = reg.resolve(group, version, rest[2])
        if inner is not None and inner.namespaced:
            ns, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3:
        raise not_found_path()
    rt = reg.resolve(group, version, plural)
    if rt is None or (ns is not None and not rt.namespaced):
        raise not_found_path()
    if rt.namespaced and ns is None and (name is not None or method not in ("GET",)):
        raise not_found_path()
    if sub and sub not in rt.subresources:
        raise not_found_path()
    return Target(
        verb=_verb(method, name, watch),
        rt=rt,
        group=group,
        version=version,
        namespace=ns,
        name=name,
        sub=sub,
        watch=watch,
    )
