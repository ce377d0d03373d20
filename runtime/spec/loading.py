"""Loading a spec: YAML with line numbers, and pydantic's errors translated into ``SpecIssue``s.

Split from runtime/spec/models.py to keep each file readable; pure like it (stdlib, pydantic and yaml; the
only I/O is reading the file in ``load_spec``). runtime.spec.models re-exports ``load_spec`` and
``parse_spec``, so callers keep importing them from there.

Every problem of one spec is raised at once, as one ``SpecError``: the user's dotted path, the
problem in plain words with its line when the spec came from a file, and a concrete fix. Values at
secret-looking paths, and anything that looks like an access token, are never echoed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Discriminator, Tag, ValidationError
from pydantic.fields import FieldInfo

from runtime.domain import secret_shapes
from runtime.errors import SpecError, SpecIssue
from runtime.spec.models import DeploymentSpec
from runtime.spec.rules import API_VERSION, SECRET_WORDS
from runtime.spec.targets import TARGET_CLASSES, TARGET_KINDS

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_SPEC_BYTES", "ROOT", "load_spec", "load_spec_data", "parse_spec"]

ROOT = "spec"  # the path of issues about the whole document (syntax, empty file, not a mapping)

# Bounds checked before any other work, so that hostile or mistaken input is refused cheaply: the
# example specs are 1-3 KiB with depth < 10 and < 200 values; these limits are far above any real
# spec and far below what exhausts memory, the stack or the CPU. MAX_NODES counts values *after*
# alias expansion: a 1 KiB "billion laughs" of nested aliases expands to 10^9 values, and the line
# indexer and pydantic would both walk every one of them.
MAX_SPEC_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 50_000


def load_spec(path: str | Path) -> DeploymentSpec:
    """Read and validate a YAML spec file; any problem raises one SpecError listing every issue."""
    data, lines = load_spec_data(path)
    return _parse(data, str(path), lines)


def load_spec_data(path: str | Path) -> tuple[Any, dict[str, int]]:
    """The spec file's YAML data and the line of each path, read once and bounded (see ``read_bounded``).

    For callers that must read a file exactly once and hand the data on: a spec given as ``<(...)``
    or ``/dev/stdin`` is a pipe, and a second read of it finds nothing.
    """
    source = str(path)
    text = read_bounded(path)
    return _load_yaml(text, source)


def read_bounded(path: str | Path) -> str:
    """The text of a spec file, read once and at most MAX_SPEC_BYTES + 1 bytes of it.

    Reading a bounded number of bytes (not ``read_text``) is what keeps /dev/zero, a multi-gigabyte
    file or an endless pipe from exhausting memory before any check runs.
    """
    source = str(path)

    def fail(problem: str, fix: str) -> SpecError:
        return SpecError([SpecIssue(ROOT, problem, fix)], source=source)

    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise fail(f"cannot read the spec file: {reason}", "check the path; examples: infra/targets/") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise fail(
            f"the spec file is larger than {MAX_SPEC_BYTES // 1024} KiB; a spec is a few KiB of YAML",
            "check the path: it names a data file or device, not a spec (examples: infra/targets/)",
        )
    if b"\0" in raw:
        raise fail("the spec file is binary (it holds NUL bytes), not YAML text",
                   "check the path; a spec is a UTF-8 YAML file (examples: infra/targets/)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(f"the spec file is not UTF-8 text (byte {exc.start + 1})",
                   "save the spec as UTF-8; a spec is a YAML file (examples: infra/targets/)") from None


def parse_spec(data: Any, source: str | None = None) -> DeploymentSpec:
    """Validate an already-loaded mapping (e.g. a flow parameter) into a DeploymentSpec."""
    check_data_bounds(data, source)
    return _parse(data, source, {})


def _parse(data: Any, source: str | None, lines: dict[str, int]) -> DeploymentSpec:
    if not isinstance(data, Mapping):
        raise SpecError([_not_mapping(data, 1)], source=source)
    try:
        return DeploymentSpec.model_validate(data)
    except ValidationError as exc:
        issues = [found for err in exc.errors() for found in _translate_safely(err, lines)]
        raise SpecError(list(dict.fromkeys(issues)), source=source) from None


def _not_mapping(data: Any, line: int) -> SpecIssue:
    what = "empty" if data is None else f"a {_type_name(data)}"
    return SpecIssue(
        ROOT,
        f"the top level of the spec is {what}, not a mapping (line {line})",
        f"write the spec as key: value lines, starting with apiVersion: {API_VERSION}",
    )


def _load_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML keeping the node tree, so issues can name their line and duplicate keys are caught."""
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster
    if len(text) > MAX_SPEC_BYTES:  # load_spec bounds bytes; this bounds text handed in directly
        raise SpecError([_too_big(f"the spec is larger than {MAX_SPEC_BYTES // 1024} KiB")], source=source)
    _check_events(text, loader_class, source)
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            issue_ = SpecIssue(
                ROOT, "the spec file is empty", "write a spec; start from infra/targets/local.yaml"
            )
            raise SpecError([issue_], source=source)
        _check_expansion(node, source)
        lines: dict[str, int] = {}
        duplicates = list(_index(node, "", lines))
        if duplicates:
            raise SpecError(duplicates, source=source)
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    finally:
        loader.dispose()
    if not isinstance(data, Mapping):
        raise SpecError([_not_mapping(data, node.start_mark.line + 1)], source=source)
    return data, lines


def _too_big(problem: str) -> SpecIssue:
    return SpecIssue(
        ROOT, problem, "write the spec plainly (a spec is a few KiB of YAML); examples: infra/targets/"
    )


def _yaml_error(exc: yaml.YAMLError, source: str) -> SpecError:
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "an unknown line"
    # Only the parser's description, never the offending text: that line might hold a secret.
    what = ", ".join(t for t in (getattr(exc, "context", None), getattr(exc, "problem", None)) if t)
    what = what or type(exc).__name__
    fix = f"fix the YAML at {where}: check the indentation, ': ' after keys and matching quotes"
    return SpecError([SpecIssue(ROOT, f"the file is not valid YAML: {what} ({where})", fix)], source=source)


def _check_events(text: str, loader_class: type, source: str) -> None:
    """Bound nesting depth and node count on the parser's event stream, before any tree is built.

    The event parser keeps its own stack (no recursion), whereas composing the node tree, the line
    indexer and the constructor all recurse: 100,000 nested '[' would raise RecursionError (or
    overflow libyaml's C stack) there. Checking events first keeps every later step shallow.
    """
    parser = loader_class(text)
    depth = count = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line = event.start_mark.line + 1
                    raise SpecError(
                        [_too_big(f"the spec nests deeper than {MAX_DEPTH} levels (line {line})")],
                        source=source,
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            count += 1
            if count > MAX_NODES:
                raise SpecError([_too_big(f"the spec has more than {MAX_NODES} YAML values")], source=source)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    finally:
        parser.dispose()


def _check_expansion(root: yaml.Node, source: str) -> None:
    """Bound the values and the depth of the node tree once aliases are expanded, in linear time.

    An alias is one node shared by every place that refers to it, so the tree costs little memory;
    but everything that walks it as data (the line indexer, the constructor, pydantic) visits the
    shared node once per reference: 1 KiB of nested aliases is 10^9 values to them. Each node's
    expanded size and depth are computed once (iteratively: an alias chain can be deep) and reused.
    """
    busy = (-1, -1)
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded values, expanded depth)

    def children(node: yaml.Node) -> list[yaml.Node]:
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return list(node.value) if isinstance(node, yaml.SequenceNode) else []

    def refuse(node: yaml.Node, what: str) -> SpecError:
        line = node.start_mark.line + 1
        return SpecError(
            [_too_big(f"the spec {what} through YAML aliases (&anchor/*alias; the value at line {line})")],
            source=source,
        )

    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finishing = stack.pop()
        kids = children(node)
        if not finishing:
            state = done.get(id(node))
            if state is busy:
                raise refuse(node, "refers to itself")
            if state is not None:
                continue
            done[id(node)] = busy
            stack.append((node, True))
            stack.extend((kid, False) for kid in kids)
            continue
        size = 1 + sum(done[id(k)][0] for k in kids)
        depth = 1 + max((done[id(k)][1] for k in kids), default=0)
        done[id(node)] = (size, depth)
        if size > MAX_NODES:
            raise refuse(node, f"expands to more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise refuse(node, f"nests deeper than {MAX_DEPTH} levels")


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
            raise SpecError([_too_big(f"the spec has more than {MAX_NODES} values")], source=source)
        if depth > MAX_DEPTH:
            issue_ = SpecIssue(where, f"the spec nests deeper than {MAX_DEPTH} levels here",
                               "write the spec plainly (a spec is a few KiB of YAML); examples: infra/targets/")
            raise SpecError([issue_], source=source)
        if isinstance(value, Mapping):
            count += len(value)  # the keys
            stack.extend((v, _join(path, str(k)), depth + 1) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((v, _join(path, i), depth + 1) for i, v in enumerate(value))
        elif isinstance(value, str | bytes) and len(value) > MAX_SPEC_BYTES:
            issue_ = SpecIssue(where, f"the value is longer than {MAX_SPEC_BYTES // 1024} KiB (not shown)",
                               f"shorten {where}; a spec is a few KiB of YAML")
            raise SpecError([issue_], source=source)


def _index(node: yaml.Node, path: str, lines: dict[str, int]) -> Iterator[SpecIssue]:
    """Record the line of every path under ``node``; yield an issue per duplicate key."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
                continue
            child, line = _join(path, key.value), key.start_mark.line + 1
            if key.value in seen:
                yield SpecIssue(
                    child,
                    f"key {_key(key.value)} appears twice (lines {seen[key.value]} and {line}); YAML would "
                    "silently keep the last one",
                    "keep only one of them",
                )
            seen[key.value] = lines[child] = line
            yield from _index(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[f"{path}[{i}]"] = item.start_mark.line + 1
            yield from _index(item, f"{path}[{i}]", lines)


# --- translating pydantic errors into SpecIssues ----------------------------------------------------------


def _join(base: str, part: str | int) -> str:
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


def _translate_safely(err: Any, lines: dict[str, int]) -> list[SpecIssue]:
    """_translate, falling back to pydantic's own words: a bad spec must never crash the loader."""
    try:
        return _translate(err, lines)
    except (IndexError, KeyError, TypeError, ValueError, AttributeError):
        path = ".".join(str(p) for p in err.get("loc", ())) or ROOT
        return [SpecIssue(path, str(err.get("msg", "invalid value")), f"correct {path}")]


def _translate(err: Any, lines: dict[str, int]) -> list[SpecIssue]:
    loc = tuple(err["loc"])
    is_key = bool(loc) and loc[-1] == "[key]"  # the error is about a mapping key, not its value
    parts, tp, field = _walk(loc[:-1] if is_key else loc)
    path = ""
    for part in parts:
        path = _join(path, part)
    if err["type"] == "dynadeploy_rules":
        found = [(_join_rel(path, rel), problem, fix) for rel, problem, fix in err["ctx"]["issues"]]
    else:
        problem, fix = _explain(err, path, parts, tp, field, is_key)
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


def _explain(err: Any, path: str, parts: list[Any], tp: Any, field: FieldInfo | None, is_key: bool):
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
        parent = _walk(tuple(err["loc"])[:-1])[1]
        allowed = [i.alias or k for k, i in parent.model_fields.items()] if _is_model(parent) else []
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
        if close:
            return f"unknown field {_key(name)}", f"did you mean {close[0]!r}? rename {_key(name)} to {close[0]!r}"
        return (
            f"unknown field {_key(name)}",
            f"remove {_key(name)}; the fields allowed here are: {', '.join(allowed)}",
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
        return (f"{name} is too long (at most {ctx.get('max_length')})",
                f"shorten {path} to at most {ctx.get('max_length')} {'items' if kind == 'too_long' else 'characters'}")
    if kind == "string_pattern_mismatch" and is_key:
        good = re.sub(r"\W", "_", name).lstrip("0123456789") or "NAME"
        return (
            f"{_key(name)} is not a valid key here (letters, digits and '_', not starting with a digit)",
            f"rename {_key(name)} to e.g. {good if not secret_shapes.looks_secret(name) else 'MY_VAR'!r}",
        )
    if kind == "string_pattern_mismatch":
        return (
            f"{value} is not a valid value for {name}",
            f"set {path} to a value matching {ctx.get('pattern')}",
        )
    return f"{err.get('msg')} (got {value})", f"correct {path or 'the spec'}"


def _walk(loc: tuple[Any, ...]) -> tuple[list[Any], Any, FieldInfo | None]:
    """The user's path parts for a pydantic loc (union tags dropped), the type there, and its field."""
    parts: list[Any] = []
    tp: Any = DeploymentSpec
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


def _key(name: Any) -> str:
    """A key the user wrote, quoted for a message; a pasted secret used as a key is not shown."""
    return "(a key not shown: it may be a secret)" if secret_shapes.looks_secret(repr(name)) else repr(name)


def _type_name(value: Any) -> str:
    names = {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "integer", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
