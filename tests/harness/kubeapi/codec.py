"""Content negotiation: request body decoding (JSON, YAML, protobuf, patch types) and response encoding
(JSON, protobuf, meta.k8s.io Table for kubectl)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import yaml

from . import errors, protobuf
from .discovery import ResourceType

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
    "application/apply-patch+yaml": "apply",
}


def media_type(header: str | None) -> str:
    return (header or "").split(";")[0].strip().lower()


def parse_accept(header: str | None) -> list[tuple[str, dict[str, str]]]:
    out = []
    for part in (header or "").split(","):
        bits = [b.strip() for b in part.split(";") if b.strip()]
        if not bits:
            continue
        params = dict(b.split("=", 1) for b in bits[1:] if "=" in b)
        out.append((bits[0].lower(), {k.strip(): v.strip() for k, v in params.items()}))
    return out


def wants_table(accept: str | None) -> bool:
    return any(p.get("as") == "Table" for _, p in parse_accept(accept))


def wants_aggregated(accept: str | None) -> bool:
    return any(p.get("as") == "APIGroupDiscoveryList" and p.get("v") == "v2" for _, p in parse_accept(accept))


def response_format(accept: str | None, kind: str = "", prefer_protobuf: bool = False) -> str:
    """json | protobuf: JSON whenever the client accepts it, unless ``prefer_protobuf`` (the simulator
    switch that makes clients decode protobuf replies) and the kind has a protobuf schema here."""
    types = [t for t, p in parse_accept(accept) if "as" not in p]
    json_ok = not types or any(
        t in ("application/json", "*/*", "application/*", "application/yaml") for t in types
    )
    pb_ok = protobuf.CONTENT_TYPE in types and protobuf.can_encode(kind)
    if pb_ok and (prefer_protobuf or not json_ok):
        return "protobuf"
    if json_ok:
        return "json"
    raise errors.not_acceptable(
        "only the following media types are accepted: application/json"
        + (f", {protobuf.CONTENT_TYPE}" if protobuf.can_encode(kind) else "")
    )


def decode_body(raw: bytes, content_type: str | None) -> Any:
    """A create/update body (not a patch)."""
    ct = media_type(content_type)
    if not raw.strip():
        return None
    try:
        if ct in ("", "application/json", "*/*", "text/plain"):
            return json.loads(raw)
        if ct in ("application/yaml", "application/x-yaml"):
            return yaml.safe_load(raw)
        if ct == protobuf.CONTENT_TYPE:
            return protobuf.decode(raw)
    except protobuf.ProtobufError as exc:
        raise errors.unsupported_media_type(ct, ["application/json", "application/yaml"]) from exc
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"error decoding body: {exc}") from None
    raise errors.unsupported_media_type(ct, ["application/json", "application/yaml", protobuf.CONTENT_TYPE])


def patch_type(content_type: str | None) -> str:
    ct = media_type(content_type)
    if ct not in PATCH_TYPES:
        raise errors.unsupported_media_type(ct, list(PATCH_TYPES))
    return PATCH_TYPES[ct]


def encode(obj: Any, fmt: str) -> tuple[bytes, str]:
    if fmt == "protobuf":
        return protobuf.encode(obj), protobuf.CONTENT_TYPE
    return json.dumps(obj, separators=(",", ":")).encode(), "application/json"


# ------------------------------------------------------------------------------------------ Table


def age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    then = datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    s = max(0, int((datetime.now(UTC) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size * 2 or (unit == "m" and s >= 120):
            return f"{s // size}{unit}"
    return f"{s}s"


_FILTER_RE = re.compile(r"^\?\(@\.([\w.]+)\s*==\s*['\"]([^'\"]*)['\"]\)$")


def jsonpath(obj: Any, path: str) -> Any:
    """The small JSONPath subset CRD printer columns use: .a.b, .a[0], .a[?(@.k=="v")].b, .a[*].b (the
    matches joined by spaces, as the server prints several results)"""
    tokens = re.findall(r"\.([\w-]+)|\[([^\]]+)\]", path.strip().lstrip("{").rstrip("}"))
    cur = obj
    for n, (name, idx) in enumerate(tokens):
        if cur is None:
            return None
        if idx == "*":
            rest = "".join(f".{a}" if a else f"[{b}]" for a, b in tokens[n + 1 :])
            vals = [jsonpath(x, rest) if rest else x for x in (cur if isinstance(cur, list) else [])]
            return " ".join(str(v) for v in vals if v is not None) or None
        if name:
            cur = cur.get(name) if isinstance(cur, dict) else None
        elif m := _FILTER_RE.match(idx):
            key, want = m.groups()
            cur = next(
                (x for x in cur or [] if isinstance(x, dict) and str(jsonpath(x, "." + key)) == want), None
            )
        elif idx.lstrip("-").isdigit() and isinstance(cur, list):
            i = int(idx)
            cur = cur[i] if -len(cur) <= i < len(cur) else None
        else:
            return None
    return cur


def table(rt: ResourceType, version: str, objs: list[dict], include: str, list_meta: dict | None) -> dict:
    cols = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}]
    extra = rt.printer_columns.get(version, [])
    for c in extra:
        cols.append(
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
            }
        )
    if not any(c["name"].lower() == "age" for c in extra):
        cols.append({"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0})
    rows = []
    for o in objs:
        cells: list[Any] = [o["metadata"]["name"]]
        for c in extra:
            v = jsonpath(o, c["jsonPath"])
            cells.append(age(v) if c.get("type") == "date" and isinstance(v, str) else v)
        if not any(c["name"].lower() == "age" for c in extra):
            cells.append(age(o["metadata"].get("creationTimestamp")))
        row: dict[str, Any] = {"cells": cells}
        if include == "Object":
            row["object"] = o
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": cols,
        "rows": rows,
    }
