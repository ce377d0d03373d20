"""managedFields and server-side apply, simplified.

A field path is a tuple of FieldsV1 elements: ``f:<name>`` for a map key, ``k:{json}`` for an item of an
associative list (its merge key, see patch.list_merge_key), ``v:<json>`` for a member of a set-like list
(metadata.finalizers). Leaves are scalars, atomic lists and empty maps; a path ending in ``k:``/``v:``
means "this item exists". ``metadata.managedFields`` is the source of truth (FieldsV1 JSON, so kubectl's
client-side-to-server-side migration can rewrite it with a JSON patch).

Simplifications (documented in the README): ownership is computed per leaf; the merge key of a list is one
field (the real server uses e.g. containerPort+protocol); custom resources' lists are atomic; an Update
takes ownership of what it changed; apply conflicts are raised when another manager owns a leaf the
applied config sets to a different value; a field the applier stops applying is removed when no other
manager owns it.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from . import errors
from .patch import list_merge_key, strategic_merge

Path = tuple[str, ...]
_SKIP_META = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
}
_MISSING = object()


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_elem(item: dict, key: str) -> str:
    return "k:" + json.dumps({key: item.get(key)}, sort_keys=True, separators=(",", ":"))


def fieldset(obj: dict, kind: str, subresource: str = "") -> set[Path]:
    """The field paths an object (or applied configuration) sets."""
    out: set[Path] = set()
    for top, value in obj.items():
        if top in ("apiVersion", "kind"):
            continue
        if (top == "status") != (subresource == "status"):
            continue
        if top == "metadata" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _SKIP_META}
            if not value:
                continue
        _walk(value, ("f:" + top,), (top,), kind, out)
    return out


def _walk(value: Any, path: Path, names: tuple[str, ...], kind: str, out: set[Path]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _walk(v, path + ("f:" + k,), names + (k,), kind, out)
        return
    if isinstance(value, list) and value:
        if names == ("metadata", "finalizers"):
            out.update(path + ("v:" + json.dumps(x),) for x in value)
            return
        key = list_merge_key(names, kind)
        if key and all(isinstance(x, dict) and key in x for x in value):
            for item in value:
                ip = path + (_key_elem(item, key),)
                out.add(ip)
                for k, v in item.items():
                    _walk(v, ip + ("f:" + k,), names + (k,), kind, out)
            return
    out.add(path)


def get_at(obj: Any, path: Path) -> Any:
    cur = obj
    for elem in path:
        tag, _, rest = elem.partition(":")
        if tag == "f":
            if not isinstance(cur, dict) or rest not in cur:
                return _MISSING
            cur = cur[rest]
        elif tag == "k":
            want = json.loads(rest)
            if not isinstance(cur, list):
                return _MISSING
            cur = next(
                (x for x in cur if isinstance(x, dict) and all(x.get(k) == v for k, v in want.items())),
                _MISSING,
            )
            if cur is _MISSING:
                return cur
        elif tag == "v":
            v = json.loads(rest)
            return v if isinstance(cur, list) and v in cur else _MISSING
    return cur


def remove_at(obj: Any, path: Path) -> None:
    parent = get_at(obj, path[:-1])
    tag, _, rest = path[-1].partition(":")
    if tag == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif tag in ("k", "v") and isinstance(parent, list):
        target = get_at(obj, path)
        if target is not _MISSING:
            parent.remove(target)


def _prune(obj: dict, path: Path, keep: set[Path]) -> None:
    """Drop maps emptied by a removal, up to the first one that is still owned or non-empty."""
    while path and path[-1].startswith("f:") and get_at(obj, path) == {}:
        if any(q[: len(path)] == path for q in keep):
            return
        remove_at(obj, path)
        path = path[:-1]


def _is_presence(p: Path) -> bool:
    return p[-1][:2] in ("k:", "v:")


# ------------------------------------------------------------------------------ FieldsV1 JSON


def to_fields_v1(paths: set[Path]) -> dict:
    root: dict = {}
    for p in sorted(paths):
        node = root
        for elem in p:
            node = node.setdefault(elem, {})
        if _is_presence(p):
            node.setdefault(".", {})
    return root


def from_fields_v1(doc: dict, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for k, v in (doc or {}).items():
        if k == ".":
            out.add(prefix)
            continue
        p = prefix + (k,)
        if v:
            out |= from_fields_v1(v, p)
        else:
            out.add(p)
    return out


def format_path(p: Path) -> str:
    s = ""
    for elem in p:
        tag, _, rest = elem.partition(":")
        if tag == "f":
            s += "." + rest
        elif tag == "k":
            s += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(rest).items()) + "]"
        elif tag == "v":
            s += f"[={rest}]"
    return s


# ------------------------------------------------------------------------------- managers


def _entries(obj: dict) -> list[dict]:
    return copy.deepcopy((obj.get("metadata") or {}).get("managedFields") or [])


def _entry_fields(e: dict) -> set[Path]:
    return from_fields_v1(e.get("fieldsV1") or {})


def _set_entries(obj: dict, entries: list[dict]) -> None:
    kept = [e for e in entries if e.get("fieldsV1")]
    obj.setdefault("metadata", {})["managedFields"] = kept
    if not kept:
        obj["metadata"].pop("managedFields")


def _find(entries: list[dict], manager: str, operation: str, subresource: str) -> dict | None:
    for e in entries:
        if (
            e.get("manager") == manager
            and e.get("operation") == operation
            and e.get("subresource", "") == subresource
        ):
            return e
    return None


def _put_fields(
    entries: list[dict], manager: str, operation: str, subresource: str, api_version: str, fields: set[Path]
) -> None:
    e = _find(entries, manager, operation, subresource)
    if e is None:
        e = {"manager": manager, "operation": operation, "apiVersion": api_version}
        if subresource:
            e["subresource"] = subresource
        entries.append(e)
    e.update(apiVersion=api_version, time=now(), fieldsType="FieldsV1", fieldsV1=to_fields_v1(fields))


def record_update(
    old: dict | None, new: dict, manager: str, kind: str, api_version: str, subresource: str = ""
) -> None:
    """Update ``new``'s managedFields for a non-apply write by ``manager`` (old is None on create)."""
    old = old or {}
    given = (new.get("metadata") or {}).get("managedFields")
    entries = (
        _entries(new)
        if given is not None and given != (old.get("metadata") or {}).get("managedFields")
        else _entries(old)
    )
    old_set = fieldset(old, kind, subresource) if old else set()
    new_set = fieldset(new, kind, subresource)
    changed = {
        p
        for p in new_set
        if (_is_presence(p) and get_at(old, p) is _MISSING)
        or (not _is_presence(p) and get_at(old, p) != get_at(new, p))
    }
    removed = old_set - new_set
    for e in entries:  # fields of other subresources never overlap (status vs the rest)
        e["fieldsV1"] = to_fields_v1(_entry_fields(e) - changed - removed)
    mine = _find(entries, manager, "Update", subresource)
    if changed or mine is not None:
        base = (_entry_fields(mine) if mine else set()) - removed
        _put_fields(entries, manager, "Update", subresource, api_version, base | changed)
    _set_entries(new, entries)


def apply(
    live: dict | None,
    applied: dict,
    manager: str,
    force: bool,
    kind: str,
    api_version: str,
    subresource: str = "",
) -> dict:
    """Server-side apply ``applied`` onto ``live`` (None: create). Returns the new object."""
    applied_fields = fieldset(applied, kind, subresource)
    if live is None:
        obj = copy.deepcopy(applied)
        entries: list[dict] = []
        _put_fields(entries, manager, "Apply", subresource, api_version, applied_fields)
        _set_entries(obj, entries)
        return obj
    entries = _entries(live)
    own = _find(entries, manager, "Apply", subresource)
    owned_before = _entry_fields(own) if own else set()
    conflicts: list[tuple[dict, Path]] = []
    for e in entries:  # any manager, whatever subresource it wrote through (e.g. scale)
        if e is own:
            continue
        for p in _entry_fields(e) & applied_fields:
            if not _is_presence(p) and get_at(live, p) != get_at(applied, p):
                conflicts.append((e, p))
    if conflicts and not force:
        raise errors.apply_conflict(
            [
                {
                    "type": "FieldManagerConflict",
                    "field": format_path(p),
                    "message": f'conflict with "{e["manager"]}"'
                    + (" using " + e["apiVersion"] if e.get("apiVersion") else "")
                    + f": {format_path(p)}",
                }
                for e, p in conflicts
            ]
        )
    for e, p in conflicts:
        e["fieldsV1"] = to_fields_v1(_entry_fields(e) - {p})
    merged = strategic_merge(live, _drop_status(applied, subresource), kind)
    others = set().union(*(_entry_fields(e) for e in entries if e is not own)) if entries else set()
    for p in sorted(owned_before - applied_fields, key=len, reverse=True):
        if any(q[: len(p)] == p for q in others):
            continue
        remove_at(merged, p)
        _prune(merged, p[:-1], others | applied_fields)
    merged.setdefault("metadata", {})["managedFields"] = entries
    _put_fields(entries, manager, "Apply", subresource, api_version, applied_fields)
    _set_entries(merged, entries)
    return merged


def _drop_status(applied: dict, subresource: str) -> dict:
    if subresource == "status":
        return {"status": applied.get("status") or {}}
    return {k: v for k, v in applied.items() if k != "status"}
