"""The Store's Python API: what controllers and tests call, naming objects by apiVersion + kind.

    store.get("apps/v1", "Deployment", "web", "ns")          -> dict (ApiError 404 if missing)
    store.try_get(...)                                          -> dict | None
    store.list("v1", "Pod", "ns", label_selector={"app": "web"})  (namespace None: all namespaces)
    store.create(obj)        # keeps obj["status"] as given (a controller shortcut)
    store.update(obj)        # PUT: 409 on a stale metadata.resourceVersion; status ignored where a
                             # status subresource exists, as on the server
    store.update_status(obj) # only .status is written
    store.patch("apps/v1", "Deployment", "web", {"spec": {...}}, "ns", patch_type="merge")
                             # merge | strategic | json | apply; subresource="status" for status
    store.apply(obj, field_manager="ctl", force=False)   # server-side apply, creates when missing
    store.delete("v1", "Pod", "p", "ns", propagation="Background")  # -> None if gone, obj if held
    store.subscribe(fn)      # fn(Event) on every change, under the store lock; returns unsubscribe
    store.set_pod_log / append_pod_log                      # served by GET .../pods/NAME/log

Every write records managedFields for ``field_manager`` (default "kubeapi-sim"), so a controller that
changes a field helm 4 applies will make helm's next apply conflict - as on a real cluster.
Errors are ApiError (code, reason, message) with the API's reasons (NotFound, AlreadyExists,
Conflict, Invalid, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import errors

if TYPE_CHECKING:  # pragma: no cover
    from .discovery import ResourceType
    from .store import Event

DEFAULT_MANAGER = "kubeapi-sim"


def _version(api_version: str) -> str:
    return api_version.rpartition("/")[2]


class PythonApi:
    def resource(self, api_version: str, kind: str) -> ResourceType:
        rt = self.registry.by_kind(api_version, kind)
        if rt is None:
            raise errors.ApiError(404, "NotFound", f'no matches for kind "{kind}" in version "{api_version}"')
        return rt

    def get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict:
        """The object, or ApiError 404."""
        rt = self.resource(api_version, kind)
        return self.do_get(rt, namespace, name, _version(api_version))

    def try_get(self, api_version: str, kind: str, name: str, namespace: str = "") -> dict | None:
        try:
            return self.get(api_version, kind, name, namespace)
        except errors.ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | dict | None = None,
        field_selector: str | None = None,
    ) -> list[dict]:
        """Objects of a kind (namespace None: all namespaces); label_selector may be a dict of labels."""
        rt = self.resource(api_version, kind)
        if isinstance(label_selector, dict):
            label_selector = ",".join(f"{k}={v}" for k, v in label_selector.items())
        items, _ = self.do_list(
            rt,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            version=_version(api_version),
        )
        return items

    def create(self, obj: dict, *, field_manager: str = DEFAULT_MANAGER) -> dict:
        rt = self.resource(obj["apiVersion"], obj["kind"])
        ns = obj.get("metadata", {}).get("namespace", "") if rt.namespaced else ""
        return self.do_create(
            rt, ns, obj, manager=field_manager, version=_version(obj["apiVersion"]), privileged=True
        )

    def update(self, obj: dict, *, field_manager: str = DEFAULT_MANAGER) -> dict:
        """PUT semantics: 409 if metadata.resourceVersion is set and stale."""
        rt, ns, name = self._ident(obj)
        return self.do_update(rt, ns, name, obj, manager=field_manager, version=_version(obj["apiVersion"]))

    def update_status(self, obj: dict, *, field_manager: str = DEFAULT_MANAGER) -> dict:
        rt, ns, name = self._ident(obj)
        return self.do_update(
            rt,
            ns,
            name,
            obj,
            manager=field_manager,
            subresource="status",
            version=_version(obj["apiVersion"]),
        )

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        body: Any,
        namespace: str = "",
        *,
        patch_type: str = "merge",
        subresource: str = "",
        field_manager: str = DEFAULT_MANAGER,
        force: bool = False,
    ) -> dict:
        """patch_type: merge | strategic | json | apply."""
        rt = self.resource(api_version, kind)
        obj, _ = self.do_patch(
            rt,
            namespace,
            name,
            patch_type,
            body,
            manager=field_manager,
            force=force,
            subresource=subresource,
            version=_version(api_version),
        )
        return obj

    def apply(
        self, obj: dict, *, field_manager: str = DEFAULT_MANAGER, force: bool = False, subresource: str = ""
    ) -> dict:
        """Server-side apply (creates when missing)."""
        _, ns, name = self._ident(obj)
        return self.patch(
            obj["apiVersion"],
            obj["kind"],
            name,
            obj,
            ns,
            patch_type="apply",
            subresource=subresource,
            field_manager=field_manager,
            force=force,
        )

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str = "", *, propagation: str | None = None
    ) -> dict | None:
        """Delete; returns the object if it still exists (finalizers / foreground), else None."""
        rt = self.resource(api_version, kind)
        obj, gone = self.do_delete(rt, namespace, name, propagation=propagation)
        return None if gone else obj

    def subscribe(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``fn(event)`` for every future change (under the store lock: keep it quick, don't block)."""
        with self.lock:
            self._subscribers.append(fn)
        return lambda: self._unsubscribe(fn)

    def set_pod_log(self, namespace: str, pod: str, text: str, container: str = "") -> None:
        """Text served by GET .../pods/NAME/log (``container`` "" is the default container)."""
        with self.lock:
            self._pod_logs.setdefault((namespace, pod), {})[container] = text

    def append_pod_log(self, namespace: str, pod: str, text: str, container: str = "") -> None:
        with self.lock:
            logs = self._pod_logs.setdefault((namespace, pod), {})
            logs[container] = logs.get(container, "") + text

    def pod_log(self, namespace: str, pod: str, container: str = "") -> str | None:
        with self.lock:
            logs = self._pod_logs.get((namespace, pod))
            if not logs:
                return None
            return logs.get(container, logs.get("", next(iter(logs.values()))))

    @property
    def resource_version(self) -> int:
        return self._rv

    def _ident(self, obj: dict) -> tuple[ResourceType, str, str]:
        rt = self.resource(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        return rt, (meta.get("namespace", "") if rt.namespaced else ""), meta.get("name", "")

    def _unsubscribe(self, fn: Callable) -> None:
        with self.lock:
            if fn in self._subscribers:
                self._subscribers.remove(fn)
