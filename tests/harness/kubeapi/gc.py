"""Deletion: preconditions, finalizers, deletionTimestamp, ownerReference garbage collection
(Background / Foreground / Orphan), namespace and CRD cleanup.

Unlike a real cluster this all happens synchronously inside the delete call (and inside the write that
removes the last finalizer), so a test sees the cascade finished when the DELETE returns, unless a
finalizer holds something back.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from . import errors, fieldsets

if TYPE_CHECKING:  # pragma: no cover
    from .discovery import ResourceType

FOREGROUND = "foregroundDeletion"
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"


class DeletionMixin:
    # provided by Store
    lock: object
    _objects: dict
    _uids: dict
    _rv: int
    _pod_logs: dict

    def do_delete(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: dict | None = None,
        dry_run: bool = False,
    ) -> tuple[dict, bool]:
        """Returns (object, gone): gone is False while finalizers keep the object."""
        with self.lock:
            key = self._key(rt, ns, name)
            obj = self._objects.get(key)
            if obj is None:
                raise errors.not_found(rt.plural, name, rt.group)
            meta = obj["metadata"]
            pre = preconditions or {}
            for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                if pre.get(field) and pre[field] != meta.get(field):
                    raise errors.conflict(
                        rt.plural,
                        name,
                        rt.group,
                        f"Precondition failed: {label} in precondition: {pre[field]}, "
                        f"{label} in object meta: {meta.get(field)}",
                    )
            if propagation not in (None, "Background", "Foreground", "Orphan"):
                raise errors.bad_request(f"unsupported propagationPolicy {propagation!r}")
            if dry_run:
                return self.present(rt, obj), True
            if meta.get("deletionTimestamp"):
                return self.present(rt, obj), False
            if rt.kind == "Namespace" and not rt.crd:
                return self._delete_namespace(rt, key)
            finalizers = list(meta.get("finalizers") or [])
            if propagation == "Orphan":
                self._orphan_dependents(meta["uid"])
            elif propagation == "Foreground" and self._dependents(meta["uid"]):
                finalizers.append(FOREGROUND)
            if not finalizers:
                self._remove(rt, key)
                return self.present(rt, obj), True
            new = copy.deepcopy(obj)
            new["metadata"].update(
                deletionTimestamp=fieldsets.now(), deletionGracePeriodSeconds=0, finalizers=finalizers
            )
            self._put(rt, key, new, obj)
            if FOREGROUND in finalizers:
                for dkey in self._dependents(meta["uid"]):
                    self._delete_key(dkey, "Foreground")
                self._check_foreground(meta["uid"])
            if rt.kind == "CustomResourceDefinition" and not rt.crd:
                self._cleanup_crd(name)
            current = self._objects.get(key)
            return self.present(rt, current or new), current is None

    def do_delete_collection(
        self,
        rt: ResourceType,
        ns: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation: str | None = None,
    ) -> list[dict]:
        with self.lock:
            items, _ = self.do_list(rt, ns, label_selector=label_selector, field_selector=field_selector)
            for item in items:
                m = item["metadata"]
                key = self._key(rt, m.get("namespace", ""), m["name"])
                if key in self._objects:
                    self.do_delete(rt, key[2], key[3], propagation=propagation)
            return items

    # ------------------------------------------------------------------ internals
    def _put(self, rt: ResourceType, key: tuple, new: dict, old: dict | None) -> None:
        self._rv += 1
        new["metadata"]["resourceVersion"] = str(self._rv)
        self._objects[key] = new
        self._emit("MODIFIED", rt, new, old)

    def _rt(self, key: tuple) -> ResourceType | None:
        return self.registry.get(key[0], key[1])

    def _delete_key(self, key: tuple, propagation: str) -> None:
        rt = self._rt(key)
        if rt is not None and key in self._objects:
            self.do_delete(rt, key[2], key[3], propagation=propagation)

    def _remove(self, rt: ResourceType, key: tuple) -> None:
        obj = self._objects.pop(key, None)
        if obj is None:
            return
        meta = obj["metadata"]
        self._uids.pop(meta["uid"], None)
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        self._emit("DELETED", rt, obj, None)
        if rt.kind == "Pod":
            self._pod_logs.pop((key[2], key[3]), None)
        if rt.kind == "CustomResourceDefinition" and not rt.crd:
            for k in [k for k in self._objects if self._rt(k) and self._rt(k).crd == key[3]]:
                self._remove(self._rt(k), k)
            self.registry.unregister_crd(key[3])
        self._collect_dependents(meta["uid"])
        for ref in meta.get("ownerReferences") or []:
            self._check_foreground(ref.get("uid"))
        if key[2]:
            self._maybe_finish_namespace(key[2])
        if rt.crd:
            self._maybe_finish_crd(rt.crd)

    def _dependents(self, uid: str) -> list[tuple]:
        return [
            k
            for k, o in self._objects.items()
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])
        ]

    def _collect_dependents(self, uid: str) -> None:
        """Background GC after an owner is gone: delete orphans, drop dangling references otherwise."""
        for key in self._dependents(uid):
            obj = self._objects.get(key)
            if obj is None:
                continue
            refs = obj["metadata"].get("ownerReferences") or []
            alive = [r for r in refs if r.get("uid") != uid and r.get("uid") in self._uids]
            if alive:
                new = copy.deepcopy(obj)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                self._put(self._rt(key), key, new, obj)
            elif not obj["metadata"].get("deletionTimestamp"):
                deleting_fg = FOREGROUND in (obj["metadata"].get("finalizers") or [])
                self._delete_key(key, "Foreground" if deleting_fg else "Background")

    def _orphan_dependents(self, uid: str) -> None:
        for key in self._dependents(uid):
            obj = self._objects[key]
            new = copy.deepcopy(obj)
            new["metadata"]["ownerReferences"] = [
                r for r in obj["metadata"]["ownerReferences"] if r.get("uid") != uid
            ]
            if not new["metadata"]["ownerReferences"]:
                del new["metadata"]["ownerReferences"]
            self._put(self._rt(key), key, new, obj)

    def _drop_finalizer(self, key: tuple, finalizer: str) -> None:
        obj = self._objects.get(key)
        if obj is None or finalizer not in (obj["metadata"].get("finalizers") or []):
            return
        new = copy.deepcopy(obj)
        new["metadata"]["finalizers"] = [f for f in obj["metadata"]["finalizers"] if f != finalizer]
        rt = self._rt(key)
        if not new["metadata"]["finalizers"]:
            del new["metadata"]["finalizers"]
            if new["metadata"].get("deletionTimestamp"):
                self._put(rt, key, new, obj)
                self._remove(rt, key)
                return
        self._put(rt, key, new, obj)

    def _check_foreground(self, uid: str | None) -> None:
        key = self._uids.get(uid) if uid else None
        obj = self._objects.get(key) if key else None
        if obj and FOREGROUND in (obj["metadata"].get("finalizers") or []) and not self._dependents(uid):
            self._drop_finalizer(key, FOREGROUND)

    def _delete_namespace(self, rt: ResourceType, key: tuple) -> tuple[dict, bool]:
        obj = self._objects[key]
        new = copy.deepcopy(obj)
        new["metadata"]["deletionTimestamp"] = fieldsets.now()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new.setdefault("status", {})["phase"] = "Terminating"
        self._put(rt, key, new, obj)
        ns = key[3]
        for k in [k for k in self._objects if k[2] == ns]:
            if k in self._objects and not self._objects[k]["metadata"].get("deletionTimestamp"):
                self._delete_key(k, "Background")
        self._maybe_finish_namespace(ns)
        current = self._objects.get(key)
        return self.present(rt, current or new), current is None

    def _maybe_finish_namespace(self, ns: str) -> None:
        key = ("", "namespaces", "", ns)
        obj = self._objects.get(key)
        if (
            obj is None
            or not obj["metadata"].get("deletionTimestamp")
            or obj["metadata"].get("finalizers")
            or any(k[2] == ns for k in self._objects)
        ):
            return
        self._remove(self._rt(key), key)

    def _cleanup_crd(self, crd_name: str) -> None:
        for k in [k for k in self._objects if self._rt(k) and self._rt(k).crd == crd_name]:
            self._delete_key(k, "Background")
        self._maybe_finish_crd(crd_name)

    def _maybe_finish_crd(self, crd_name: str) -> None:
        key = ("apiextensions.k8s.io", "customresourcedefinitions", "", crd_name)
        obj = self._objects.get(key)
        if obj is None or not obj["metadata"].get("deletionTimestamp"):
            return
        if any(self._rt(k) and self._rt(k).crd == crd_name for k in self._objects):
            return
        self._drop_finalizer(key, CRD_CLEANUP)
