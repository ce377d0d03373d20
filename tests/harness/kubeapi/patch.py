"""Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch.

Strategic merge patch knows the merge keys of the built-in lists helm and kubectl patch (containers,
env, ports, volumes, volumeMounts, conditions, ...) by field name, plus the ``$patch``,
``$setElementOrder/``, ``$retainKeys`` and ``$deleteFromPrimitiveList/`` directives. It does not read
OpenAPI; lists it does not know are replaced whole, which is what the real server does for lists
without a patch strategy.
"""

from __future__ import annotations

import copy
from typing import Any

from . import errors

# field name -> merge key, for lists whose patchStrategy is "merge" (by field name, for built-in kinds)
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
    "secrets": "name",
    "webhooks": "name",
    "podIPs": "ip",
    "hostIPs": "ip",
}


def list_merge_key(path: tuple[str, ...], kind: str) -> str | None:
    """The merge key of the list at ``path`` (a tuple of field names), or None if atomic.

    ``kind`` is empty for custom resources: their lists are atomic except metadata's, as on a real
    server for CRD schemas without ``x-kubernetes-list-type: map``.
    """
    name = path[-1]
    if not kind:
        return "uid" if path == ("metadata", "ownerReferences") else None
    if name == "ports":
        if kind == "Service" and path[-2:] == ("spec", "ports"):
            return "port"
        return "containerPort" if "containers" in path or "initContainers" in path else None
    if name == "conditions" and path[:1] != ("status",):
        return None
    return MERGE_KEYS.get(name)


# ------------------------------------------------------------------------------------- merge patch


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


# -------------------------------------------------------------------------------------- JSON patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise errors.bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for p in parts:
        if isinstance(doc, list):
            doc = doc[int(p)]
        elif isinstance(doc, dict):
            doc = doc[p]
        else:
            raise KeyError(p)
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 (add/remove/replace/move/copy/test); errors are 422 like the real server's."""
    if not isinstance(ops, list):
        raise errors.bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        try:
            kind, parts = op["op"], _pointer(op["path"])
            if kind in ("move", "copy"):
                value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
                if kind == "move":
                    doc = _remove(doc, _pointer(op["from"]))
                doc = _add(doc, parts, value)
            elif kind == "add":
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
            elif kind == "remove":
                doc = _remove(doc, parts)
            elif kind == "replace":
                _walk(doc, parts)
                doc = _add(_remove(doc, parts), parts, copy.deepcopy(op["value"]))
            elif kind == "test":
                if _walk(doc, parts) != op["value"]:
                    raise ValueError(f"test failed at {op['path']}")
            else:
                raise ValueError(f"unknown op {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise errors.ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: json patch {op!r}: {exc}",
            ) from None
    return doc


def _add(doc: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        parent[last] = value
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _walk(doc, parts[:-1])
    if isinstance(parent, list):
        del parent[int(parts[-1])]
    else:
        del parent[parts[-1]]
    return doc


# ------------------------------------------------------------------------- strategic merge patch

_DELETE = object()


def strategic_merge(target: Any, patch: Any, kind: str, path: tuple[str, ...] = ()) -> Any:
    out = _smp(target, patch, kind, path)
    return {} if out is _DELETE else out


def _strip(v: Any) -> Any:
    if isinstance(v, dict):
        return {
            k: _strip(x)
            for k, x in v.items()
            if not (
                k.startswith(("$setElementOrder/", "$deleteFromPrimitiveList/"))
                or k in ("$patch", "$retainKeys")
            )
            and x is not None
        }
    if isinstance(v, list):
        return [_strip(x) for x in v]
    return v


def _smp(target: Any, patch: Any, kind: str, path: tuple[str, ...]) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    orders = {}
    for k, v in patch.items():
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v
        elif k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            result[field] = [x for x in result.get(field) or [] if x not in v]
        elif k in ("$patch", "$retainKeys"):
            continue
        elif v is None:
            result.pop(k, None)
        elif isinstance(v, dict):
            merged = _smp(result.get(k), v, kind, path + (k,))
            if merged is _DELETE:
                result.pop(k, None)
            else:
                result[k] = merged
        elif isinstance(v, list):
            result[k] = _merge_list(result.get(k), v, kind, path + (k,))
        else:
            result[k] = v
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"]) | {k for k in patch if not k.startswith("$")}
        result = {k: v for k, v in result.items() if k in keep}
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _reorder(result[field], order, list_merge_key(path + (field,), kind))
    return result


def _merge_list(current: Any, patch: list, kind: str, path: tuple[str, ...]) -> list:
    current = list(current) if isinstance(current, list) else []
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [_strip(x) for x in patch if not (isinstance(x, dict) and x.get("$patch") == "replace")]
    if path == ("metadata", "finalizers"):
        return current + [x for x in patch if x not in current]
    key = list_merge_key(path, kind)
    if key is None:
        return _strip(patch)
    out = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict):
            if item not in out:
                out.append(item)
            continue
        idx = next(
            (i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == item.get(key)), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
            continue
        if idx is None:
            out.append(_strip(item))
        else:
            out[idx] = _smp(out[idx], item, kind, path)
    return out


def _reorder(items: list, order: list, key: str | None) -> list:
    def ident(x: Any) -> Any:
        return x.get(key) if key and isinstance(x, dict) else x

    wanted = [ident(o) for o in order]
    ranked = sorted(
        range(len(items)),
        key=lambda i: wanted.index(ident(items[i])) if ident(items[i]) in wanted else len(wanted) + i,
    )
    return [items[i] for i in ranked]
