"""The simulator's object store: thread-safe, versioned, with an event log feeding watches and controllers.

Objects are plain dicts (the JSON the API serves) keyed by (group, plural, namespace, name); one stored copy
per object whatever version it is read at. Every write bumps a global resourceVersion and emits an Event.

Two ways in:
- the HTTP server calls the ``do_*`` methods with a ResourceType resolved from the URL;
- Python callers (controllers, tests) use the API in pyapi.py (get/list/create/update/update_status/
  patch/apply/delete/subscribe), naming objects by apiVersion + kind.

Deletion, finalizers, garbage collection and namespace/CRD cleanup live in gc.py (the DeletionMixin).
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from . import errors, fieldsets, patch, schema, semantics
from .discovery import Registry, ResourceType
from .gc import DeletionMixin
from .pyapi import DEFAULT_MANAGER, PythonApi
from .selectors import parse_fields, parse_labels

Key = tuple[str, str, str, str]
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class Event:
    """One change. ``object`` is the object after the change (for DELETED: its last state)."""

    type: str  # ADDED | MODIFIED | DELETED
    object: dict
    old: dict | None
    resource_version: int
    group: str
    plural: str
    kind: str

    @property
    def namespace(self) -> str:
        return self.object.get("metadata", {}).get("namespace", "")

    @property
    def name(self) -> str:
        return self.object["metadata"]["name"]


class Store(PythonApi, DeletionMixin):
    def __init__(self, registry: Registry | None = None, *, log_size: int = 50_000) -> None:
        self.registry = registry or Registry()
        self.lock = threading.RLock()
        self._objects: dict[Key, dict] = {}
        self._uids: dict[str, Key] = {}
        self._rv = 100
        self._log: deque[Event] = deque(maxlen=log_size)
        self._subscribers: list[Callable[[Event], None]] = []
        self._pod_logs: dict[tuple[str, str], dict[str, str]] = {}
        # schema validation/pruning on every write (schema.py); False turns it off for a test that needs to
        self.validation = True
        self.schemas = schema.SchemaCache()
        # Validating admission (a webhook stand-in): fn(rt, old or None, new, manager) raises an ApiError to
        # refuse a create/update (status writes excluded); e.g. controllers/dynamo_admission.validate.
        self.admission: list[Callable[[ResourceType, dict | None, dict, str], None]] = []
        ns_rt = self.registry.get("", "namespaces")
        for ns in SYSTEM_NAMESPACES:
            self.do_create(ns_rt, "", {"metadata": {"name": ns}}, manager=DEFAULT_MANAGER)

    # ================================================================= resource-level API (server)
    def present(self, rt: ResourceType, obj: dict, version: str | None = None) -> dict:
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version(version or rt.storage_version)
        out["kind"] = rt.kind
        return out

    def _key(self, rt: ResourceType, ns: str, name: str) -> Key:
        return (rt.group, rt.plural, ns if rt.namespaced else "", name)

    def do_get(self, rt: ResourceType, ns: str, name: str, version: str | None = None) -> dict:
        with self.lock:
            obj = self._objects.get(self._key(rt, ns, name))
            if obj is None:
                raise errors.not_found(rt.plural, name, rt.group)
            return self.present(rt, obj, version)

    def do_list(
        self,
        rt: ResourceType,
        ns: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        version: str | None = None,
    ) -> tuple[list[dict], int]:
        labels_ok = parse_labels(label_selector)
        fields_ok = parse_fields(field_selector, rt.kind)
        with self.lock:
            out = []
            for (g, p, ons, _), obj in sorted(self._objects.items(), key=lambda kv: (kv[0][2], kv[0][3])):
                if g != rt.group or p != rt.plural or (ns and rt.namespaced and ons != ns):
                    continue
                if labels_ok(obj["metadata"].get("labels") or {}) and fields_ok(obj):
                    out.append(self.present(rt, obj, version))
            return out, self._rv

    def do_create(
        self,
        rt: ResourceType,
        ns: str,
        obj: dict,
        *,
        manager: str,
        version: str | None = None,
        privileged: bool = False,
        dry_run: bool = False,
        applied: bool = False,
    ) -> dict:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        with self.lock:
            if rt.namespaced:
                if meta.get("namespace") and ns and meta["namespace"] != ns:
                    raise errors.bad_request(
                        "the namespace of the provided object does not match the "
                        "namespace sent on the request"
                    )
                ns = ns or meta.get("namespace") or "default"
                meta["namespace"] = ns
                self._check_namespace_open(ns)
            else:
                meta.pop("namespace", None)
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = semantics.generate_name(meta["generateName"])
                while self._key(rt, ns, meta["name"]) in self._objects:
                    meta["name"] = semantics.generate_name(meta["generateName"])
            semantics.validate_name(rt, meta.get("name"))
            self._check_crd_open(rt)
            if rt.kind == "CustomResourceDefinition":
                semantics.validate_crd(obj)
            key = self._key(rt, ns, meta["name"])
            if key in self._objects:
                raise errors.already_exists(rt.plural, meta["name"], rt.group)
            for f in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
                meta.pop(f, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = fieldsets.now()
            if semantics.has_generation(rt):
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            if rt.has_status and not privileged:
                obj.pop("status", None)
            api_version = rt.api_version(version)
            obj["apiVersion"], obj["kind"] = api_version, rt.kind
            semantics.default(rt, obj)
            semantics.on_create(rt, obj)
            self._admit(rt, obj, version)
            for admit in list(self.admission):
                admit(rt, None, obj, manager)
            if not applied:
                meta.pop("managedFields", None)
                fieldsets.record_update(None, obj, manager, "" if rt.crd else rt.kind, api_version)
            if rt.kind == "CustomResourceDefinition":
                self._crd_created(obj)
            if dry_run:
                return self.present(rt, obj, version)
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            obj["apiVersion"] = rt.api_version(rt.storage_version)
            self._objects[key] = obj
            self._uids[meta["uid"]] = key
            if rt.kind == "CustomResourceDefinition":
                self.registry.register_crd(obj)
            self._emit("ADDED", rt, obj, None)
            return self.present(rt, obj, version)

    def do_update(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        obj: dict,
        *,
        manager: str,
        subresource: str = "",
        version: str | None = None,
        dry_run: bool = False,
        record: bool = True,
    ) -> dict:
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        with self.lock:
            key = self._key(rt, ns, name)
            old = self._objects.get(key)
            if old is None:
                raise errors.not_found(rt.plural, name, rt.group)
            if meta.get("name") and meta["name"] != name:
                raise errors.bad_request(
                    f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
                )
            if rt.namespaced and meta.get("namespace") and meta["namespace"] != ns:
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt.plural, name, rt.group)
            if meta.get("uid") and meta["uid"] != old["metadata"]["uid"]:
                raise errors.conflict(
                    rt.plural,
                    name,
                    rt.group,
                    "Precondition failed: UID in precondition: "
                    f"{meta['uid']}, UID in object meta: {old['metadata']['uid']}",
                )
            if subresource == "status":
                status = new.get("status")
                new = copy.deepcopy(old)
                new["status"] = status
                if "managedFields" in meta:
                    new["metadata"]["managedFields"] = meta["managedFields"]
                meta = new["metadata"]
            elif rt.has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            for f in (
                "name",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if f in old["metadata"]:
                    meta[f] = old["metadata"][f]
                else:
                    meta.pop(f, None)
            if rt.namespaced:
                meta["namespace"] = ns
            if "managedFields" not in meta and "managedFields" in old["metadata"]:
                meta["managedFields"] = copy.deepcopy(old["metadata"]["managedFields"])
            if old["metadata"].get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
                if added:
                    raise errors.forbidden(
                        rt.plural,
                        name,
                        f"no new finalizers can be added if the object "
                        f"is being deleted, found new finalizers "
                        f"{sorted(added)}",
                        rt.group,
                    )
            api_version = rt.api_version(version)
            new["apiVersion"], new["kind"] = api_version, rt.kind
            semantics.default(rt, new, old)
            self._admit(rt, new, version)
            semantics.check_immutable(rt, old, new)
            if subresource != "status":
                for admit in list(self.admission):
                    admit(rt, self.present(rt, old, version), self.present(rt, new, version), manager)
            if rt.kind == "CustomResourceDefinition":
                semantics.validate_crd(new)
            if "generation" in meta and semantics.spec_changed(old, new):
                meta["generation"] = old["metadata"]["generation"] + 1
            if record:
                fieldsets.record_update(
                    self.present(rt, old, version),
                    new,
                    manager,
                    "" if rt.crd else rt.kind,
                    api_version,
                    subresource,
                )
            new["apiVersion"] = rt.api_version(rt.storage_version)
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
            if _same(old, new) or dry_run:
                return self.present(rt, new if dry_run else old, version)
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._objects[key] = new
            if rt.kind == "CustomResourceDefinition":
                self.registry.register_crd(new)
            self._emit("MODIFIED", rt, new, old)
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                self._remove(rt, key)
            return self.present(rt, new, version)

    def do_patch(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        patch_type: str,
        body: Any,
        *,
        manager: str,
        force: bool = False,
        subresource: str = "",
        version: str | None = None,
        dry_run: bool = False,
    ) -> tuple[dict, bool]:
        """Returns (object, created). patch_type: merge | strategic | json | apply."""
        if isinstance(body, (bytes, str)):
            try:
                body = yaml.safe_load(body) if patch_type == "apply" else _json_loads(body)
            except (ValueError, yaml.YAMLError) as exc:
                raise errors.bad_request(f"error decoding patch: {exc}") from None
        kind = "" if rt.crd else rt.kind
        with self.lock:
            key = self._key(rt, ns, name)
            live = self._objects.get(key)
            if patch_type == "apply":
                if not isinstance(body, dict):
                    raise errors.bad_request("apply patch must be an object")
                meta = body.get("metadata") or {}
                if meta.get("name") and meta["name"] != name:
                    raise errors.bad_request(
                        f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
                    )
                if not body.get("apiVersion") or not body.get("kind"):
                    raise errors.bad_request("invalid object type: apiVersion and kind must be set")
                api_version = rt.api_version(version)
                body = copy.deepcopy(body)
                self._admit(rt, body, version, whole=False)
                if live is None:
                    if subresource:
                        raise errors.not_found(rt.plural, name, rt.group)
                    created = fieldsets.apply(None, body, manager, force, kind, api_version)
                    created.setdefault("metadata", {})["name"] = name
                    return self.do_create(
                        rt, ns, created, manager=manager, version=version, dry_run=dry_run, applied=True
                    ), True
                new = fieldsets.apply(
                    self.present(rt, live, version), body, manager, force, kind, api_version, subresource
                )
                return self.do_update(
                    rt,
                    ns,
                    name,
                    new,
                    manager=manager,
                    subresource=subresource,
                    version=version,
                    dry_run=dry_run,
                    record=False,
                ), False
            if live is None:
                raise errors.not_found(rt.plural, name, rt.group)
            current = self.present(rt, live, version)
            if patch_type == "merge":
                if not isinstance(body, dict):
                    raise errors.bad_request("merge patch must be a JSON object")
                new = patch.merge_patch(current, body)
            elif patch_type == "json":
                new = patch.json_patch(current, body)
            elif patch_type == "strategic":
                if rt.crd:
                    raise errors.unsupported_media_type(
                        "application/strategic-merge-patch+json",
                        [
                            "application/json-patch+json",
                            "application/merge-patch+json",
                            "application/apply-patch+yaml",
                        ],
                    )
                if not isinstance(body, dict):
                    raise errors.bad_request("strategic merge patch must be a JSON object")
                new = patch.strategic_merge(current, body, kind)
            else:
                raise errors.bad_request(f"unknown patch type {patch_type!r}")
            meta = new.setdefault("metadata", {})
            if (
                "resourceVersion" in meta
                and meta["resourceVersion"] == current["metadata"]["resourceVersion"]
            ):
                meta.pop("resourceVersion")  # only an explicit, different RV in the patch is a precondition
            return self.do_update(
                rt, ns, name, new, manager=manager, subresource=subresource, version=version, dry_run=dry_run
            ), False

    # ================================================================= internals
    def _admit(self, rt: ResourceType, obj: dict, version: str | None, whole: bool = True) -> None:
        """Schema pruning, defaulting and validation (schema.py) of one write."""
        if not self.validation:
            return
        crd = (
            self._objects.get(("apiextensions.k8s.io", "customresourcedefinitions", "", rt.crd))
            if rt.crd
            else None
        )
        schema.admit(self.schemas, rt, obj, version, crd, whole=whole)

    def _emit(self, type_: str, rt: ResourceType, obj: dict, old: dict | None) -> None:
        ev = Event(
            type_,
            copy.deepcopy(obj),
            copy.deepcopy(old) if old else None,
            self._rv,
            rt.group,
            rt.plural,
            rt.kind,
        )
        self._log.append(ev)
        for fn in list(self._subscribers):
            fn(ev)

    def events_since(self, rv: int) -> list[Event]:
        """Events after ``rv``; 410 Gone when the log no longer reaches back that far."""
        with self.lock:
            if rv >= self._rv:
                return []
            if not self._log or self._log[0].resource_version > rv + 1:
                raise errors.gone(f"too old resource version: {rv} ({self._rv})")
            return [e for e in self._log if e.resource_version > rv]

    def _check_namespace_open(self, ns: str) -> None:
        nsobj = self._objects.get(("", "namespaces", "", ns))
        if nsobj is None:
            raise errors.not_found("namespaces", ns)
        if nsobj["metadata"].get("deletionTimestamp"):
            raise errors.forbidden(
                "namespaces",
                ns,
                f"unable to create new content in namespace {ns} because it is being terminated",
            )

    def _check_crd_open(self, rt: ResourceType) -> None:
        if rt.crd:
            crd = self._objects.get(("apiextensions.k8s.io", "customresourcedefinitions", "", rt.crd))
            if crd is not None and crd["metadata"].get("deletionTimestamp"):
                raise errors.method_not_allowed(
                    "create not allowed while custom resource definition is terminating"
                )

    def _crd_created(self, crd: dict) -> None:
        spec = crd["spec"]
        crd["metadata"].setdefault("finalizers", [])
        if "customresourcecleanup.apiextensions.k8s.io" not in crd["metadata"]["finalizers"]:
            crd["metadata"]["finalizers"].append("customresourcecleanup.apiextensions.k8s.io")
        t = fieldsets.now()
        crd["status"] = {
            "acceptedNames": dict(spec["names"]),
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": t,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": t,
                },
            ],
            "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")],
        }


def _json_loads(body: bytes | str) -> Any:
    import json

    return json.loads(body)


def _same(old: dict, new: dict) -> bool:
    def norm(o: dict) -> dict:
        o = copy.deepcopy(o)
        for e in o.get("metadata", {}).get("managedFields") or []:
            e.pop("time", None)
        o.pop("apiVersion", None)
        return o

    return norm(old) == norm(new)
