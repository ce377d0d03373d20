"""Validating data into a spec model: bounds first, then pydantic, whose errors become ``SpecIssue``s.

Every problem of one spec is raised at once, as one ``SpecError``: the user's dotted path, the
problem in plain words with its line when the spec came from a file, and a concrete fix. Values at
secret-looking paths, and anything that looks like an access token, are never echoed.

Used by ``parse_spec`` (runtime/spec/models.py) and ``load_spec`` (runtime/spec/loading.py, which adds
the YAML and the line of each path); it takes the model class to validate into, so it needs none of
the spec's models itself. Pure: stdlib, pydantic, runtime.domain and runtime.errors.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, Discriminator, Tag, ValidationError
from pydantic.fields import FieldInfo

from runtime.domain import secret_shapes
from runtime.errors import SpecError, SpecIssue
from runtime.spec.base import API_VERSION
from runtime.spec.secret_refs import SECRET_WORDS
from runtime.spec.targets import TARGET_CLASSES, TARGET_KINDS

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_SPEC_BYTES",
    "ROOT",
    "check_data_bounds",
    "join",
    "not_mapping",
    "quoted_key",
    "too_big",
    "validated",
]

M = TypeVar("M", bound=BaseModel)

ROOT = "spec"  # the path of issues about the whole document (syntax, empty file, not a mapping)

# Bounds checked before any other work, so that hostile or mistaken input is refused cheaply: the
# example specs are 1-3 KiB with depth < 10 and < 200 values; these limits are far above any real
# spec and far below what exhausts memory, the stack or the CPU. MAX_NODES counts values *after*
# alias expansion: a 1 KiB "billion laughs" of nested aliases expands to 10^9 values, and the line
# indexer and pydantic would both walk every one of them.
MAX_SPEC_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 50_000


def validated(model: type[M], data: Any, source: str | None, lines: dict[str, int]) -> M:
    """``data`` validated into ``model``; any problem raises one SpecError listing every issue.
    ``lines`` maps a dotted path to its line in the file (empty for data that came from no file)."""
    if not isinstance(data, Mapping):
        raise SpecError([not_mapping(data, 1)], source=source)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = [found for err in exc.errors() for found in _translate_safely(err, lines, model)]
        raise SpecError(list(dict.fromkeys(issues)), source=source) from None


def not_mapping(data: Any, line: int) -> SpecIssue:
    """The issue of a spec whose top level is not a mapping."""
    what = "empty" if data is None else f"a {_type_name(data)}"
    return SpecIssue(
        ROOT,
        f"the top level of the spec is {what}, not a mapping (line {line})",
        f"write the spec as key: value lines, starting with apiVersion: {API_VERSION}",
    )


def too_big(problem: str) -> SpecIssue:
    """An issue about the size or depth of the whole spec."""
    return SpecIssue(
        ROOT, problem, "write the spec plainly (a spec is a few KiB of YAML); examples: infra/targets/"
    )


def check_data_bounds(data: Any, source: str | None) -> None:
    """The same bounds for data that did not come from YAML text (a flow parameter, a Python call).

    Iterative and capped by node count, so even a self-referencing dict ends the walk cheaply.
    """
    stack: list[tuple[Any, str, int]] = [(data, "", 1)]
    count = 0
    while stack:
        value, path, depth = stack.pop()
        count += 1
        where = path or ROOT
        if count > MAX_NODES:
            raise SpecError([too_big(f"the spec has more than {MAX_NODES} values")], source=source)
        if depth > MAX_DEPTH:
            issue_ = SpecIssue(
                where,
                f"the spec nests deeper than {MAX_DEPTH} levels here",
                "write the spec plainly (a spec is a few KiB of YAML); examples: infra/targets/",
            )
            raise SpecError([issue_], source=source)
        if isinstance(value, Mapping):
            count += len(value)  # the keys
            stack.extend((v, join(path, str(k)), depth + 1) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((v, join(path, i), depth + 1) for i, v in enumerate(value))
        elif isinstance(value, str | bytes) and len(value) > MAX_SPEC_BYTES:
            issue_ = SpecIssue(
                where,
                f"the value is longer than {MAX_SPEC_BYTES // 1024} KiB (not shown)",
                f"shorten {where}; a spec is a few KiB of YAML",
            )
            raise SpecError([issue_], source=source)


# --- translating pydantic errors into SpecIssues ----------------------------------------------------------


def join(base: str, part: str | int) -> str:
    """Extend a dotted path: `a.b`, `a[0]`, and `a["x.y/z"]` for keys that are not plain words."""
    if isinstance(part, int):
        return f"{base}[{part}]"
    if base and not re.match(r"^[A-Za-z_][\w-]*$", part):
        return f'{base}["{part}"]'
    return f"{base}.{part}" if base else part


def _line_of(path: str, lines: dict[str, int]) -> int | None:
    """The line of ``path``, or of its nearest written ancestor (a missing field: its parent)."""
    while path:
        if path in lines:
            return lines[path]
        path = path[: max(path.rfind("."), path.rfind("["), 0)]
    return None


def _translate_safely(err: Any, lines: dict[str, int], root: type[BaseModel]) -> list[SpecIssue]:
    """_translate, falling back to pydantic's own words: a bad spec must never crash the loader."""
    try:
        return _translate(err, lines, root)
    except (IndexError, KeyError, TypeError, ValueError, AttributeError):
        path = ".".join(str(p) for p in err.get("loc", ())) or ROOT
        return [SpecIssue(path, str(err.get("msg", "invalid value")), f"correct {path}")]


def _translate(err: Any, lines: dict[str, int], root: type[BaseModel]) -> list[SpecIssue]:
    loc = tuple(err["loc"])
    is_key = bool(loc) and loc[-1] == "[key]"  # the error is about a mapping key, not its value
    parts, tp, field = _walk(loc[:-1] if is_key else loc, root)
    path = ""
    for part in parts:
        path = join(path, part)
    if err["type"] == "dynadeploy_rules":
        found = [(_join_rel(path, rel), problem, fix) for rel, problem, fix in err["ctx"]["issues"]]
    else:
        problem, fix = _explain(err, path, parts, tp, field, is_key, root)
        where = f"{path}.kind" if err["type"].startswith("union_tag") else path or ROOT
        found = [(where, problem, fix.replace("{path}", path or ROOT))]
    out = []
    for where, problem, fix in found:
        line = _line_of(where, lines)
        out.append(SpecIssue(where, f"{problem} (line {line})" if line else problem, fix))
    return out


def _join_rel(base: str, rel: str) -> str:
    if not rel:
        return base or ROOT
    return f"{base}{rel}" if rel.startswith("[") or not base else f"{base}.{rel}"


_TYPES = {
    "string": "a string",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "dict": "a mapping (key: value lines)",
    "model": "a mapping (key: value lines)",
    "model_attributes": "a mapping (key: value lines)",
    "list": "a list",
}
_BOUNDS = {  # error type -> (problem phrase, fix phrase before/after the limit)
    "greater_than_equal": ("at least", "to {limit} or more"),
    "greater_than": ("more than", "to more than {limit}"),
    "less_than_equal": ("at most", "to {limit} or less"),
    "less_than": ("less than", "to less than {limit}"),
}


def _explain(
    err: Any,
    path: str,
    parts: list[Any],
    tp: Any,
    field: FieldInfo | None,
    is_key: bool,
    root: type[BaseModel],
) -> tuple[str, str]:
    """(problem, fix) for one pydantic error; values at secret-looking paths are never shown."""
    kind, ctx, raw = err["type"], err.get("ctx") or {}, err.get("input")
    name = str(parts[-1]) if parts else ROOT
    if len(parts) > 1 and isinstance(parts[-1], int):
        name = f"{parts[-2]}[{parts[-1]}]"  # a list item: "steps[1]", not "1"
    value = _shown(raw, path)
    if kind == "dynadeploy":
        return ctx["problem"], ctx["fix"]
    if kind == "invalid_key" or (is_key and kind == "string_type"):
        if secret_shapes.looks_secret(repr(raw)):
            return "a key is not a string (not shown: it may be a secret)", "remove that key"
        return f"key {raw!r} is not a string", f'quote the key ("{raw}": ...), or remove it'
    if kind == "extra_forbidden":
        parent = _walk(tuple(err["loc"])[:-1], root)[1]
        allowed = [i.alias or k for k, i in parent.model_fields.items()] if _is_model(parent) else []
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
        if close:
            return (
                f"unknown field {quoted_key(name)}",
                f"did you mean {close[0]!r}? rename {quoted_key(name)} to {close[0]!r}",
            )
        return (
            f"unknown field {quoted_key(name)}",
            f"remove {quoted_key(name)}; the fields allowed here are: {', '.join(allowed)}",
        )
    if kind == "missing":
        example = field.examples[0] if field is not None and field.examples else "<value>"
        return f"required field {name!r} is missing", f"add {path}: {example}"
    if kind == "literal_error":
        allowed = [str(a) for a in get_args(tp)] if get_origin(tp) is Literal else [str(ctx.get("expected"))]
        return f"{value} is not one of: {', '.join(allowed)}", f"set {path} to {_one_of(raw, allowed)}"
    if kind == "union_tag_invalid":
        problem = f"unknown target kind {_shown(ctx.get('tag'), path)}"
        return problem, f"set {path}.kind to {_one_of(ctx.get('tag'), list(TARGET_KINDS))}"
    if kind == "union_tag_not_found":
        return f"{path} has no kind", f"add {path}.kind: one of {', '.join(TARGET_KINDS)}"
    if kind.endswith(("_type", "_parsing")) and kind.rsplit("_", 1)[0] in _TYPES:
        want = _TYPES[kind.rsplit("_", 1)[0]]
        quote = (
            " (quote it: YAML reads 1.30 as a number and yes/no as booleans)" if want == "a string" else ""
        )
        if want == "a string" and "env" in parts[:-1]:
            quote = ", or a secret reference {secret_block: <block-name>}"
        return f"expected {want}, got {_type_name(raw)} {value}", f"set {path} to {want}{quote}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        words, fix = _BOUNDS[kind]
        extra = (
            ", or use topology agg" if parts[:2] in (["serving", "prefill"], ["serving", "decode"]) else ""
        )
        return f"{name} must be {words} {limit}, got {value}", f"set {path} {fix.format(limit=limit)}{extra}"
    if kind == "too_short":
        need = ctx.get("min_length")
        return (
            f"{name} needs at least {need} item(s), got {ctx.get('actual_length', 0)}",
            f"add at least {need} item(s) to {path}",
        )
    if kind in ("string_too_long", "too_long"):
        return (
            f"{name} is too long (at most {ctx.get('max_length')})",
            f"shorten {path} to at most {ctx.get('max_length')} {'items' if kind == 'too_long' else 'characters'}",
        )
    if kind == "string_pattern_mismatch" and is_key:
        good = re.sub(r"\W", "_", name).lstrip("0123456789") or "NAME"
        return (
            f"{quoted_key(name)} is not a valid key here (letters, digits and '_', not starting with a digit)",
            f"rename {quoted_key(name)} to e.g. {good if not secret_shapes.looks_secret(name) else 'MY_VAR'!r}",
        )
    if kind == "string_pattern_mismatch":
        return (
            f"{value} is not a valid value for {name}",
            f"set {path} to a value matching {ctx.get('pattern')}",
        )
    return f"{err.get('msg')} (got {value})", f"correct {path or 'the spec'}"


def _walk(loc: tuple[Any, ...], root: type[BaseModel]) -> tuple[list[Any], Any, FieldInfo | None]:
    """The user's path parts for a pydantic loc (union tags dropped), the type there, and its field."""
    parts: list[Any] = []
    tp: Any = root
    field: FieldInfo | None = None
    tagged = False
    for item in loc:
        if tagged:  # this element is the tag of a discriminated union: descend into that member
            tp, tagged = _unwrap(_member(tp, item))
            continue
        # A number is a list index only in a list; elsewhere it is a mapping key YAML read as a number.
        parts.append(item if get_origin(tp) is list else str(item))
        field = None
        if _is_model(tp) and isinstance(item, str):
            field = next((i for k, i in tp.model_fields.items() if item in (k, i.alias)), None)
            tp, tagged = _unwrap(field.annotation) if field else (None, False)
            tagged = tagged or bool(field and field.discriminator)
        elif get_origin(tp) is list and isinstance(item, int):
            tp, tagged = _unwrap(get_args(tp)[0])
        elif get_origin(tp) is dict:
            tp, tagged = _unwrap(get_args(tp)[1])
        else:
            tp, tagged = None, False
    return parts, tp, field


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """Strip Annotated and Optional; also say whether what is left is a discriminated union."""
    tagged = False
    while True:
        if get_origin(tp) is Annotated:
            base, *meta = get_args(tp)
            tagged = tagged or any(
                isinstance(m, Discriminator) or getattr(m, "discriminator", None) for m in meta
            )
            tp = base
        elif (
            get_origin(tp) in (Union, UnionType)
            and len(members := [a for a in get_args(tp) if a is not type(None)]) == 1
        ):
            tp = members[0]
        else:
            return tp, tagged


def _member(union: Any, tag: Any) -> Any:
    for member in get_args(union):
        if get_origin(member) is Annotated:
            if any(isinstance(m, Tag) and m.tag == tag for m in get_args(member)[1:]):
                return get_args(member)[0]
        elif member is TARGET_CLASSES.get(tag):
            return member
    return None


def _one_of(raw: Any, allowed: list[str]) -> str:
    """'one of: a, b, c', with a did-you-mean when the bad value is close to one of them."""
    if len(allowed) == 1:
        return allowed[0]
    close = difflib.get_close_matches(str(raw), allowed, n=1, cutoff=0.6)
    return f"one of: {', '.join(allowed)}" + (f" (did you mean {close[0]}?)" if close else "")


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _shown(value: Any, path: str) -> str:
    """The value for a message, unless it sits at a secret-looking path or looks like a token."""
    words = set(re.split(r"[^A-Z]+", path.upper()))
    text = repr(value)
    if words & (SECRET_WORDS | {"ENV", "CREDENTIALS", "BLOCK"}) or secret_shapes.looks_secret(text):
        return "(value not shown)"
    return text if len(text) <= 60 else text[:57] + "..."


def quoted_key(name: Any) -> str:
    """A key the user wrote, quoted for a message; a pasted secret used as a key is not shown."""
    return "(a key not shown: it may be a secret)" if secret_shapes.looks_secret(repr(name)) else repr(name)


def _type_name(value: Any) -> str:
    names = {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
