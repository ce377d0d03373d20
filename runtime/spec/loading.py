"""Loading a spec file: YAML read once and bounded, with the line of every path and duplicate keys caught.

The only I/O of runtime/spec is reading the file in ``load_spec``. Bounds are checked on the bytes, then
on the parser's event stream, then on the node tree with aliases expanded, before any data is built;
validation (and the translation of pydantic's errors, which names each issue's line) is
runtime/spec/validation.py. Pure otherwise: stdlib, pydantic, yaml, runtime.errors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from runtime.errors import SpecError, SpecIssue
from runtime.spec.models import DeploymentSpec
from runtime.spec.validation import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_SPEC_BYTES,
    ROOT,
    join,
    not_mapping,
    quoted_key,
    too_big,
    validated,
)

__all__ = ["load_spec", "load_spec_data", "read_bounded"]


def load_spec(path: str | Path) -> DeploymentSpec:
    """Read and validate a YAML spec file; any problem raises one SpecError listing every issue."""
    data, lines = load_spec_data(path)
    return validated(DeploymentSpec, data, str(path), lines)


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
        raise fail(
            f"cannot read the spec file: {reason}", "check the path; examples: infra/targets/"
        ) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise fail(
            f"the spec file is larger than {MAX_SPEC_BYTES // 1024} KiB; a spec is a few KiB of YAML",
            "check the path: it names a data file or device, not a spec (examples: infra/targets/)",
        )
    if b"\0" in raw:
        raise fail(
            "the spec file is binary (it holds NUL bytes), not YAML text",
            "check the path; a spec is a UTF-8 YAML file (examples: infra/targets/)",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(
            f"the spec file is not UTF-8 text (byte {exc.start + 1})",
            "save the spec as UTF-8; a spec is a YAML file (examples: infra/targets/)",
        ) from None


def _load_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML keeping the node tree, so issues can name their line and duplicate keys are caught."""
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster
    if len(text) > MAX_SPEC_BYTES:  # load_spec bounds bytes; this bounds text handed in directly
        raise SpecError([too_big(f"the spec is larger than {MAX_SPEC_BYTES // 1024} KiB")], source=source)
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
        raise SpecError([not_mapping(data, node.start_mark.line + 1)], source=source)
    return data, lines


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
                    mark = event.start_mark  # the parser always sets it; the stubs allow None
                    line = mark.line + 1 if mark is not None else "?"
                    raise SpecError(
                        [too_big(f"the spec nests deeper than {MAX_DEPTH} levels (line {line})")],
                        source=source,
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            count += 1
            if count > MAX_NODES:
                raise SpecError([too_big(f"the spec has more than {MAX_NODES} YAML values")], source=source)
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
            [too_big(f"the spec {what} through YAML aliases (&anchor/*alias; the value at line {line})")],
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


def _index(node: yaml.Node, path: str, lines: dict[str, int]) -> Iterator[SpecIssue]:
    """Record the line of every path under ``node``; yield an issue per duplicate key."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.value == "<<":
                continue
            child, line = join(path, key.value), key.start_mark.line + 1
            if key.value in seen:
                yield SpecIssue(
                    child,
                    f"key {quoted_key(key.value)} appears twice (lines {seen[key.value]} and {line}); YAML would "
                    "silently keep the last one",
                    "keep only one of them",
                )
            seen[key.value] = lines[child] = line
            yield from _index(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[f"{path}[{i}]"] = item.start_mark.line + 1
            yield from _index(item, f"{path}[{i}]", lines)
