"""Label selectors (=, ==, !=, in, notin, exists, !key) and field selectors, as the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Callable

from . import errors

_KEY = r"[A-Za-z0-9_./-]+"
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p for p in parts if p.strip()]


Matcher = Callable[[dict], bool]


def parse_labels(selector: str | None) -> Matcher:
    """Compile a labelSelector string; raises 400 BadRequest on a syntax error."""
    if not selector or not selector.strip():
        return lambda labels: True
    reqs: list[Matcher] = []
    for part in _split(selector):
        if m := _SET_RE.match(part):
            key, op = m.group(1), m.group(2)
            values = {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                reqs.append(lambda lb, k=key, vs=values: lb.get(k) in vs)
            else:
                reqs.append(lambda lb, k=key, vs=values: lb.get(k) not in vs)
        elif m := _EQ_RE.match(part):
            key, op, value = m.groups()
            if op == "!=":
                reqs.append(lambda lb, k=key, v=value: lb.get(k) != v)
            else:
                reqs.append(lambda lb, k=key, v=value: k in lb and lb[k] == v)
        elif m := _EXISTS_RE.match(part):
            neg, key = m.groups()
            if neg:
                reqs.append(lambda lb, k=key: k not in lb)
            else:
                reqs.append(lambda lb, k=key: k in lb)
        else:
            raise errors.bad_request(f"unable to parse requirement: invalid label selector {selector!r}")
    return lambda labels: all(r(labels or {}) for r in reqs)


def match_label_selector_object(selector: dict | None, labels: dict) -> bool:
    """Match a structured LabelSelector (``matchLabels`` / ``matchExpressions``) as controllers use it."""
    if selector is None:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        k, op, vals = expr["key"], expr["operator"], set(expr.get("values") or [])
        if op == "In":
            ok = labels.get(k) in vals
        elif op == "NotIn":
            ok = labels.get(k) not in vals
        elif op == "Exists":
            ok = k in labels
        else:
            ok = k not in labels
        if not ok:
            return False
    return True


def selector_string(selector: dict | None) -> str:
    """Render a structured LabelSelector as the string form (what Scale.status.selector carries)."""
    parts = [f"{k}={v}" for k, v in sorted((selector or {}).get("matchLabels", {}).items())]
    for e in (selector or {}).get("matchExpressions") or []:
        vals = ",".join(sorted(e.get("values") or []))
        parts.append(
            {
                "In": f"{e['key']} in ({vals})",
                "NotIn": f"{e['key']} notin ({vals})",
                "Exists": e["key"],
                "DoesNotExist": f"!{e['key']}",
            }[e["operator"]]
        )
    return ",".join(parts)


# Field selectors the real server accepts per kind (beyond metadata.name / metadata.namespace).
_FIELDS = {
    "Pod": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "Event": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "Secret": {"type"},
    "Namespace": {"status.phase"},
    "Node": {"spec.unschedulable"},
    "Job": {"status.successful"},
    "ReplicaSet": {"status.replicas"},
    "ReplicationController": {"status.replicas"},
}
_FIELD_RE = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$")


def _field_value(obj: dict, path: str) -> str:
    cur: object = obj
    for p in path.split("."):
        cur = cur.get(p) if isinstance(cur, dict) else None
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if cur is None else str(cur)


def parse_fields(selector: str | None, kind: str) -> Callable[[dict], bool]:
    if not selector or not selector.strip():
        return lambda obj: True
    allowed = {"metadata.name", "metadata.namespace"} | _FIELDS.get(kind, set())
    reqs = []
    for part in selector.split(","):
        m = _FIELD_RE.match(part)
        if not m:
            raise errors.bad_request(f"invalid field selector: {selector!r}")
        field, op, value = m.groups()
        if field not in allowed:
            raise errors.bad_request(f"field label not supported: {field}")
        if op == "!=":
            reqs.append(lambda o, f=field, v=value: _field_value(o, f) != v)
        else:
            reqs.append(lambda o, f=field, v=value: _field_value(o, f) == v)
    return lambda obj: all(r(obj) for r in reqs)
