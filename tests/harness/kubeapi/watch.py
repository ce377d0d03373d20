"""Watch streams: newline-delimited JSON events over a chunked response.

Supports resourceVersion resume (410 Expired as an ERROR event when the log no longer reaches back),
synthetic ADDED events for rv unset/"0", ``sendInitialEvents=true`` + ``resourceVersionMatch=NotOlderThan``
with the ``k8s.io/initial-events-end`` bookmark (client-go's WatchList, used by helm 4's kstatus),
periodic BOOKMARKs when ``allowWatchBookmarks=true``, ``timeoutSeconds``, selector transitions (an object
leaving a label selector is sent as DELETED), Table-wrapped events for kubectl, and the fault that cuts
a stream after N events.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from aiohttp import web

from . import codec, errors
from .discovery import ResourceType
from .routing import truthy
from .selectors import parse_fields, parse_labels
from .store import Event, Store

BOOKMARK_INTERVAL = 1.0


async def serve(
    request: web.Request,
    store: Store,
    rt: ResourceType,
    ns: str | None,
    version: str,
    q: dict[str, str],
    name: str | None = None,
    drop_after: int | None = None,
) -> web.StreamResponse:
    field_sel = q.get("fieldSelector") or ""
    if name:
        field_sel = ",".join(x for x in (field_sel, f"metadata.name={name}") if x)
    labels_ok = parse_labels(q.get("labelSelector"))
    fields_ok = parse_fields(field_sel, rt.kind)
    send_initial = truthy(q.get("sendInitialEvents"))
    bookmarks = truthy(q.get("allowWatchBookmarks"))
    if send_initial and (q.get("resourceVersionMatch") != "NotOlderThan" or not bookmarks):
        raise errors.invalid(
            "ListOptions",
            "",
            [
                {
                    "reason": "FieldValueForbidden",
                    "field": "sendInitialEvents",
                    "message": "Forbidden: sendInitialEvents requires setting "
                    "resourceVersionMatch=NotOlderThan and allowWatchBookmarks=true",
                }
            ],
            "meta.k8s.io",
        )
    try:
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else 1800.0
    except ValueError:
        raise errors.bad_request("timeoutSeconds must be a number") from None
    table = codec.wants_table(request.headers.get("Accept"))
    include = q.get("includeObject", "Metadata")
    rv = q.get("resourceVersion", "")

    def matches(obj: dict | None) -> bool:
        if obj is None:
            return False
        if ns and rt.namespaced and obj["metadata"].get("namespace") != ns:
            return False
        return labels_ok(obj["metadata"].get("labels") or {}) and fields_ok(obj)

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Event] = asyncio.Queue()

    def on_event(ev: Event) -> None:
        if ev.group == rt.group and ev.plural == rt.plural:
            loop.call_soon_threadsafe(queue.put_nowait, ev)

    initial: list[dict] = []
    backlog: list[Event] = []
    expired: errors.ApiError | None = None
    with store.lock:
        current_rv = store.resource_version
        if send_initial or rv in ("", "0"):
            initial, current_rv = store.do_list(
                rt, ns, label_selector=q.get("labelSelector"), field_selector=field_sel, version=version
            )
        else:
            try:
                backlog = store.events_since(int(rv))
            except ValueError:
                raise errors.bad_request(f"invalid resourceVersion {rv!r}") from None
            except errors.ApiError as exc:
                expired = exc
        unsubscribe = store.subscribe(on_event)

    resp = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    resp.enable_chunked_encoding()
    sent = 0
    try:
        await resp.prepare(request)

        async def write(type_: str, obj: dict) -> None:
            if table and type_ != "BOOKMARK" and type_ != "ERROR":
                obj = codec.table(
                    rt,
                    version,
                    [obj],
                    include,
                    {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                )
            await resp.write(
                json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n"
            )

        def bookmark(rv_: int, end: bool = False) -> dict:
            meta: dict = {"resourceVersion": str(rv_)}
            if end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            return {"kind": rt.kind, "apiVersion": rt.api_version(version), "metadata": meta}

        if expired is not None:
            await write("ERROR", expired.status())
            return resp
        last_rv = current_rv
        for obj in initial:
            await write("ADDED", obj)
            sent += 1
            if drop_after is not None and sent >= drop_after:
                return resp
        if send_initial:
            await write("BOOKMARK", bookmark(current_rv, end=True))
        deadline = time.monotonic() + timeout
        pending = list(backlog)
        while True:
            if not pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    pending.append(await asyncio.wait_for(queue.get(), min(remaining, BOOKMARK_INTERVAL)))
                except TimeoutError:
                    if bookmarks:
                        await write("BOOKMARK", bookmark(max(last_rv, store.resource_version)))
                    continue
            ev = pending.pop(0)
            last_rv = max(last_rv, ev.resource_version)
            out = _transform(ev, matches)
            if out is None:
                continue
            await write(out[0], store.present(rt, out[1], version))
            sent += 1
            if drop_after is not None and sent >= drop_after:
                break
    except ConnectionResetError:
        pass
    finally:
        unsubscribe()
    return resp


def _transform(ev: Event, matches: Callable[[dict | None], bool]) -> tuple[str, dict] | None:
    new_ok = matches(ev.object)
    if ev.type == "MODIFIED":
        old_ok = matches(ev.old)
        if new_ok and old_ok:
            return "MODIFIED", ev.object
        if new_ok:
            return "ADDED", ev.object
        if old_ok:
            return "DELETED", ev.object
        return None
    return (ev.type, ev.object) if new_ok else None
