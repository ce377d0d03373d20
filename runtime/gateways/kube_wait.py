"""Waiting on Kubernetes objects (mixed into runtime/gateways/kube.Kube): an informer-style wait that lists, then
watches from that resourceVersion, re-evaluating a predicate on every change and every tick, and falls back to
polling when watching keeps failing. Plain polling of a check is runtime/domain/waiting.py ``wait_until``;
this loop is the watch-driven one a Kubernetes object needs (an event wakes it before the next tick).
Its ``WaitTimeout`` is the error tree's (runtime/errors.py), carrying the objects last seen as ``last``.

Waiting is observation, not retrying: ``wait`` keeps reading through transient errors until its deadline (a
blip in a watch must not fail a 10-minute rollout).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from runtime.errors import DynadeployError, TransientError, WaitTimeout
from runtime.gateways.kube_errors import describe

T = TypeVar("T")
log = logging.getLogger("dynadeploy.kube")


def selector(labels: Mapping[str, str | None] | str | None) -> str | None:
    if labels is None or isinstance(labels, str):
        return labels or None
    return ",".join(f"{k}={v}" if v is not None else k for k, v in labels.items()) or None


class Watching:
    """``wait`` for a Kube gateway; the host class supplies ``_resource``, ``_list`` and ``_timeouts``."""

    if TYPE_CHECKING:  # what the host class (runtime/gateways/kube.Kube) supplies

        def _resource(self, api_version: str, kind: str) -> Any | None: ...

        def _list(
            self, res: Any, namespace: str | None, labels: str | None, fields: str | None, page: int = 500
        ) -> tuple[list[dict], str]: ...

        def _timeouts(self, read_s: float | None = None) -> tuple[float, float]: ...

    def wait(
        self,
        api_version: str,
        kind: str,
        predicate: Callable[[list[dict]], T | None],
        *,
        name: str | None = None,
        namespace: str | None = None,
        labels: Mapping[str, str] | str | None = None,
        timeout_s: float = 300.0,
        tick_s: float = 2.0,
        what: str | None = None,
        describe_stuck: Callable[[list[dict]], str] | None = None,
    ) -> T:
        """Wait until ``predicate(objects)`` returns something truthy, and return that.

        ``objects`` are the current objects of the kind matching name/namespace/labels (kept up to date
        by a watch; re-listed after a watch error, and polled every ``tick_s`` when watching fails).
        The predicate also runs every ``tick_s`` without events, so it may read other state. On
        timeout: ``WaitTimeout`` with ``describe_stuck(objects)`` in its message.
        """
        what = what or f"{describe(api_version, kind, name, namespace)} to be ready"
        deadline = time.monotonic() + timeout_s
        fields = f"metadata.name={name}" if name else None
        sel = selector(labels)
        cache: dict[tuple[str, str], dict] = {}
        rv = ""
        watching = True
        last_error: DynadeployError | None = None
        failures = 0

        def objects() -> list[dict]:
            return list(cache.values())

        def key(obj: Mapping[str, Any]) -> tuple[str, str]:
            m = obj.get("metadata") or {}
            return (m.get("namespace") or "", m.get("name") or "")

        relist = True
        while True:
            res = self._resource(api_version, kind)
            if relist or res is None:
                try:
                    items, rv = self._list(res, namespace, sel, fields) if res is not None else ([], "")
                    cache = {key(o): o for o in items}
                    relist = False
                    last_error = None
                except TransientError as exc:
                    last_error = exc
            if last_error is None:
                result = predicate(objects())
                if result:
                    return result
            left = deadline - time.monotonic()
            if left <= 0:
                stuck = describe_stuck(objects()) if describe_stuck else ""
                err = f"; last error: {last_error}" if last_error else ""
                raise WaitTimeout(
                    f"timed out after {timeout_s:.0f}s waiting for {what}"
                    + (f": {stuck}" if stuck else "")
                    + err,
                    last=objects(),
                    what=what,
                    timeout_s=timeout_s,
                    stuck=stuck,
                    last_error=last_error,
                )
            step = min(left, tick_s)
            if res is None or not watching or last_error is not None:
                time.sleep(min(step, 0.5) if res is not None else step)
                relist = True
                continue
            try:
                for ev in self._watch(res, namespace, sel, fields, rv, step):
                    etype, obj = ev["type"], ev["raw_object"]
                    if etype == "BOOKMARK":
                        rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                        if time.monotonic() >= deadline:
                            break
                        continue
                    if etype == "ERROR":
                        relist = True
                        break
                    obj.setdefault("apiVersion", res.group_version)
                    obj.setdefault("kind", res.kind)
                    rv = (obj.get("metadata") or {}).get("resourceVersion") or rv
                    if etype == "DELETED":
                        cache.pop(key(obj), None)
                    else:
                        cache[key(obj)] = obj
                    result = predicate(objects())
                    if result:
                        return result
                    if time.monotonic() >= deadline:
                        break
                failures = 0
            except DynadeployError:
                raise  # the predicate's own verdict (a failed rollout, a refused route), not a broken watch
            except Exception as exc:
                failures += 1
                relist = True
                if failures >= 3:
                    watching = False
                log.debug("watch of %s failed (%s); relisting", kind, type(exc).__name__)

    def _watch(
        self, res: Any, namespace: str | None, labels: str | None, fields: str | None, rv: str, seconds: float
    ):
        from kubernetes import watch

        w = watch.Watch()
        timeout = max(1, int(seconds + 0.999))
        try:
            yield from w.stream(
                res.get,
                namespace=namespace if res.namespaced else None,
                label_selector=labels,
                field_selector=fields,
                resource_version=rv or None,
                serialize=False,
                timeout_seconds=timeout,
                _request_timeout=self._timeouts(timeout + 5),
            )
        finally:
            w.stop()
