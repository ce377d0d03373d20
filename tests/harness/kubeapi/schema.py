"""Schema validation and pruning on every write, as a real kube-apiserver does it.

Custom resources: the CRD version's structural schema (``openAPIV3Schema``) decides what survives.
- Pruning (the apiextensions rules): a field the schema does not name is dropped, unless the object's schema
  has ``x-kubernetes-preserve-unknown-fields: true`` or ``additionalProperties`` (a map); an object schema
  with no properties (``scalingAdapter: {type: object}``) keeps nothing. ``apiVersion``/``kind``/``metadata``
  at the root are kept, and ``metadata`` is pruned to ObjectMeta. (Every ``null`` was already dropped by
  semantics.default, so ``nullable: true`` fields lose their nulls too, unlike on a real server.)
- Defaulting: ``default:`` of every property whose parent object is present, after pruning.
- Validation (jsonschema's Draft 4 validator on the schema translated from OpenAPI v3: ``nullable``,
  ``x-kubernetes-int-or-string``): type, enum, required, min/max, lengths, pattern, item counts -> 422
  Invalid with the real server's cause shapes (``spec.x: Required value``, ``spec.x: Unsupported value: "y":
  supported values: "a", "b"``, ``spec.x: Invalid value: "string": spec.x in body must be of type integer:
  "string"``).

Built-in kinds: Kubernetes' own OpenAPI schemas, as JSON schemas from the PyPI package kubernetes-validate
(``v1.35.0-local-strict``, the version the simulator reports). Unknown fields are dropped the way the Go
decoder drops them; wrong types answer 400 BadRequest (the decoder's refusal), missing required fields and
unsupported enum values 422 Invalid.

Unknown fields and ``fieldValidation`` (query parameter; the server default is Warn):
- ``Strict``: 400 BadRequest ``strict decoding error: unknown field "spec.x", unknown field "spec.y"``;
- ``Warn``: the fields are dropped and each is reported in a ``Warning: 299 - "unknown field \\"spec.x\\""``
  response header (kubectl prints ``Warning: unknown field "spec.x"``);
- ``Ignore``: dropped silently. Writes through the Python Store API (controllers) use Ignore.

Not simulated: CEL rules (``x-kubernetes-validations``), ``format`` checks, ``x-kubernetes-list-type``
uniqueness/map keys, ``x-kubernetes-embedded-resource`` metadata pruning, built-in kinds' Go validation
beyond their OpenAPI schema (e.g. label value syntax, immutable fields other than ConfigMap/Secret),
ratcheting, duplicate-field detection, and version conversion (each version's schema is applied to the
body as sent).
"""

from __future__ import annotations

import contextvars
import copy
import json
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import errors

K8S_SCHEMA_VERSION = "v1.35.0-local-strict"
_ROOT_KEEP = ("apiVersion", "kind", "metadata")
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


# ------------------------------------------------------------------------------------ request context
@dataclass
class WriteContext:
    """The fieldValidation mode of the request being served and the warnings it produced."""

    mode: str = "Ignore"
    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


CONTEXT: contextvars.ContextVar[WriteContext | None] = contextvars.ContextVar("kubeapi_write", default=None)


def field_validation_mode(value: str | None) -> str:
    if value in (None, ""):
        return "Warn"
    if value not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(f'fieldValidation parameter must be Ignore, Warn, or Strict, got "{value}"')
    return value


def warning_header(text: str) -> str:
    return "299 - " + json.dumps(text)


# ------------------------------------------------------------------------------------ paths and values
def fmt_path(parts: list) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _go_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return '"' + _json_type(value) + '"'
    return json.dumps(value)


# ------------------------------------------------------------------------------------ built-in schemas
def _schema_dir() -> Path | None:
    try:
        import kubernetes_validate
    except ImportError:  # pragma: no cover - dev dependency
        return None
    d = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / K8S_SCHEMA_VERSION
    return d if d.is_dir() else None


_lock = threading.RLock()


@lru_cache(maxsize=1)
def _definitions() -> dict:
    d = _schema_dir()
    if d is None:
        return {}
    return json.loads((d / "_definitions.json").read_text())


def _defs() -> dict:
    return _definitions().get("$defs", {})


def _resolve(schema: dict) -> dict:
    ref = schema.get("$ref")
    while ref:
        schema = _defs().get(ref.rpartition("/")[2], {})
        ref = schema.get("$ref")
    return schema


@lru_cache(maxsize=512)
def _builtin_schema(group: str, version: str, kind: str) -> dict | None:
    d = _schema_dir()
    if d is None:
        return None
    prefix = group.split(".", 1)[0] + "-" if group else ""
    path = d / f"{kind.lower()}-{prefix}{version}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())


@lru_cache(maxsize=512)
def _builtin_validator(group: str, version: str, kind: str):
    import jsonschema
    from referencing import Registry, Resource

    schema = _builtin_schema(group, version, kind)
    if schema is None:
        return None
    registry = Registry().with_resources(
        [
            (schema["$id"], Resource.from_contents(schema)),
            ("https://kubernetes.io/api/_definitions.json", Resource.from_contents(_definitions())),
        ]
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


# ------------------------------------------------------------------------------------ pruning
def prune(value: Any, schema: dict, path: list, unknown: list[str], *, structural: bool) -> None:
    """Drop (in place) what ``schema`` does not allow; append each dropped field's path to ``unknown``.

    ``structural``: CRD rules (an object schema without properties keeps nothing; non-nullable nulls are
    dropped). Otherwise the built-in JSON schemas' rules (``additionalProperties: false`` closes an object).
    """
    schema = _resolve(schema)
    if isinstance(value, dict):
        if not path and structural:
            meta = value.get("metadata")
            if isinstance(meta, dict):
                prune(meta, _defs().get(_OBJECT_META, {}), ["metadata"], unknown, structural=False)
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        types = schema.get("type")
        is_object = types == "object" or (isinstance(types, list) and "object" in types) or props is not None
        for key in list(value):
            if not path and structural and key in _ROOT_KEEP:
                continue
            if not path and not structural and key in ("apiVersion", "kind"):
                continue
            if props is not None and key in props:
                sub = props[key]
            elif isinstance(addl, dict):
                sub = addl
            elif addl is True or preserve:
                continue
            elif (structural and is_object) or addl is False:
                del value[key]
                unknown.append(fmt_path([*path, key]))
                continue
            else:
                continue
            if value[key] is None:
                if structural and not _resolve(sub).get("nullable"):
                    del value[key]
                continue
            prune(value[key], sub, [*path, key], unknown, structural=structural)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(value):
                if v is not None:
                    prune(v, items, [*path, i], unknown, structural=structural)


def apply_defaults(value: Any, schema: dict) -> None:
    """Structural defaulting: set ``default`` of each absent property of every present object."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
                # a defaulted value is itself pruned to its schema, as the real server does
                prune(value[key], sub, [key], [], structural=True)
            if isinstance(value.get(key), (dict, list)):
                apply_defaults(value[key], sub)
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict) and not schema.get("properties"):
            for v in value.values():
                apply_defaults(v, addl)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for v in value:
            apply_defaults(v, schema["items"])


# ------------------------------------------------------------------------------------ validation
_DROP = {"description", "default", "example", "format", "nullable", "externalDocs", "title"}


def to_jsonschema(s: dict) -> dict:
    """OpenAPI v3 (structural) -> JSON schema draft 4."""
    out: dict = {}
    for k, v in s.items():
        if k.startswith("x-kubernetes-") or k in _DROP:
            continue
        if k == "properties":
            out[k] = {p: to_jsonschema(ps) for p, ps in v.items()}
        elif k in ("items", "additionalProperties", "not") and isinstance(v, dict):
            out[k] = to_jsonschema(v)
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = [to_jsonschema(x) for x in v]
        else:
            out[k] = v
    if s.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if s.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


def _cause(err, prefix: list | None = None) -> dict:
    parts = [*(prefix or []), *err.absolute_path]
    where = fmt_path(parts)
    v = err.validator
    if v == "required":
        missing = err.message.split("'")[1] if "'" in err.message else ""
        return {
            "reason": "FieldValueRequired",
            "field": fmt_path([*parts, missing]),
            "message": "Required value",
        }
    if v == "enum":
        allowed = ", ".join(json.dumps(x) for x in err.validator_value if x is not None)
        return {
            "reason": "FieldValueNotSupported",
            "field": where,
            "message": f"Unsupported value: {_go_value(err.instance)}: supported values: {allowed}",
        }
    if v == "type":
        want = (
            err.validator_value
            if isinstance(err.validator_value, str)
            else next(t for t in err.validator_value if t != "null")
        )
        return {
            "reason": "FieldValueTypeInvalid",
            "field": where,
            "message": f'Invalid value: "{_json_type(err.instance)}": {where} in body must be of type '
            f'{want}: "{_json_type(err.instance)}"',
        }
    texts = {
        "minimum": f"should be greater than or equal to {err.validator_value}",
        "maximum": f"should be less than or equal to {err.validator_value}",
        "minLength": f"should be at least {err.validator_value} chars long",
        "maxLength": f"may not be longer than {err.validator_value}",
        "pattern": f"should match '{err.validator_value}'",
        "minItems": f"should have at least {err.validator_value} items",
        "maxItems": f"must have at most {err.validator_value} items",
        "minProperties": f"should have at least {err.validator_value} properties",
        "maxProperties": f"should have at most {err.validator_value} properties",
    }
    text = texts.get(v, err.message)
    return {
        "reason": "FieldValueInvalid",
        "field": where,
        "message": f"Invalid value: {_go_value(err.instance)}: {where} in body {text}",
    }


@lru_cache(maxsize=64)
def _crd_validator(key: tuple, schema_json: str):
    import jsonschema

    return jsonschema.Draft4Validator(to_jsonschema(json.loads(schema_json)))


def _leaf_errors(errs) -> list:
    out = []
    for e in errs:
        if e.validator in ("anyOf", "oneOf") and e.context:
            # int-or-string / quantity: one error for the field, not one per branch
            kinds = [c for c in e.context if c.validator == "type"]
            if len(kinds) == len(e.context):
                e.validator, e.validator_value = (
                    "type",
                    "|".join(
                        t
                        for c in kinds
                        for t in (
                            [c.validator_value] if isinstance(c.validator_value, str) else c.validator_value
                        )
                        if t != "null"
                    ),
                )
                out.append(e)
                continue
        out.append(e)
    return out


# ------------------------------------------------------------------------------------ the admission step
class SchemaCache:
    """Per store: the CRD schemas by (crd name, resourceVersion, version)."""

    def __init__(self) -> None:
        self._crd: dict[tuple, tuple[dict, str]] = {}

    def crd_schema(self, crd_obj: dict, version: str) -> tuple[tuple, dict, str] | None:
        key = (crd_obj["metadata"]["name"], crd_obj["metadata"].get("resourceVersion"), version)
        hit = self._crd.get(key)
        if hit is None:
            for v in crd_obj.get("spec", {}).get("versions") or []:
                if v.get("name") == version:
                    schema = (v.get("schema") or {}).get("openAPIV3Schema")
                    if schema:
                        hit = (schema, json.dumps(schema, sort_keys=True))
                    break
            if hit is None:
                return None
            self._crd[key] = hit
        return key, hit[0], hit[1]


def admit(
    cache: SchemaCache, rt, obj: dict, version: str | None, crd_obj: dict | None, *, whole: bool = True
) -> None:
    """Prune/default/validate ``obj`` in place for a write of ``rt`` at ``version``.

    ``whole=False`` (a server-side apply body): prune only, so the applied field set is what survives.
    Raises ApiError (400/422); warnings go to the request's WriteContext.
    """
    ctx = CONTEXT.get()
    mode = ctx.mode if ctx is not None else "Ignore"
    version = version or rt.storage_version
    unknown: list[str] = []
    if rt.crd:
        if crd_obj is None:
            return
        found = cache.crd_schema(crd_obj, version)
        if found is None:
            return
        key, schema, schema_json = found
        prune(obj, schema, [], unknown, structural=True)
        _unknown_fields(unknown, mode, ctx)
        if not whole:
            return
        apply_defaults(obj, schema)
        validator = _crd_validator(key, schema_json)
        body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
        errs = sorted(
            _leaf_errors(validator.iter_errors(body)), key=lambda e: list(map(str, e.absolute_path))
        )
        if errs:
            raise errors.invalid(
                rt.kind, (obj.get("metadata") or {}).get("name", ""), [_cause(e) for e in errs], rt.group
            )
        return
    schema = _builtin_schema(rt.group, version, rt.kind)
    if schema is None:
        return
    prune(obj, schema, [], unknown, structural=False)
    _unknown_fields(unknown, mode, ctx)
    if not whole:
        return
    validator = _builtin_validator(rt.group, version, rt.kind)
    errs = _leaf_errors(validator.iter_errors(obj))
    if not errs:
        return
    name = (obj.get("metadata") or {}).get("name", "")
    decode = [e for e in errs if e.validator == "type" or (e.validator in ("anyOf", "oneOf"))]
    if decode:
        e = decode[0]
        where = fmt_path(list(e.absolute_path))
        want = (
            e.validator_value
            if isinstance(e.validator_value, str)
            else "|".join(t for t in (e.validator_value or []) if t != "null")
            if isinstance(e.validator_value, list)
            else "value"
        )
        raise errors.bad_request(
            f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}: json: cannot unmarshal '
            f"{_json_type(e.instance)} into Go struct field {rt.kind}.{where} of type {want}"
        )
    raise errors.invalid(rt.kind, name, [_cause(e) for e in errs], rt.group)


def _unknown_fields(unknown: list[str], mode: str, ctx: WriteContext | None) -> None:
    if not unknown:
        return
    if mode == "Strict":
        raise errors.bad_request(
            "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown)
        )
    if mode == "Warn" and ctx is not None:
        for u in unknown:
            ctx.warn(f'unknown field "{u}"')
