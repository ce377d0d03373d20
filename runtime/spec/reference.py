"""The spec reference (docs/spec-reference.md), generated from the models: every field, its type, default
and description, one table per section.

    uv run python -m runtime.spec.reference > docs/spec-reference.md

Pure: ``reference()`` returns the text; only ``__main__`` prints it. tests/unit/test_spec.py fails when a
spec field has no description or when the checked-in reference differs from what this generates, so the
reference cannot drift from the models.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from runtime.spec.models import DeploymentSpec

__all__ = ["fields", "reference", "sections"]

_HEADER = """\
# Spec reference

Every field of a dynadeploy spec (`apiVersion: dynadeploy.io/v1`), section by section. Generated from the
models in `runtime/spec/` by `uv run python -m runtime.spec.reference > docs/spec-reference.md`; do not edit
it by hand (tests/unit/test_spec.py checks that it is current). The README's "Writing a spec" shows a whole
spec; `infra/targets/` has one example per target kind.

"Unset" means the field may be left out (or set to null) and the description says what happens then. A
field without a default is required. Values are never coerced: a string field needs a string (quote
`"1.30"`), a number field a number.
"""
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _members(tp: Any) -> list[Any]:
    """The members of a union (None left out), else [tp]; Annotated stripped from each."""
    tp = _strip(tp)
    if get_origin(tp) in (Union, UnionType):
        return [_strip(a) for a in get_args(tp) if a is not type(None)]
    return [tp]


def _strip(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _nested(tp: Any) -> list[tuple[str, type[BaseModel]]]:
    """The models a field holds: ("", model) for a mapping, ("[]", model) for a list of them."""
    out = []
    for member in _members(tp):
        if _is_model(member):
            out.append(("", member))
        elif get_origin(member) is list:
            out += [("[]", m) for m in _members(get_args(member)[0]) if _is_model(m)]
    return out


def sections() -> list[tuple[type[BaseModel], list[str]]]:
    """Every model of the spec with the paths it appears at, in the order a spec is read."""
    found: dict[type[BaseModel], list[str]] = {}

    def visit(model: type[BaseModel], path: str, kind: str) -> None:
        found.setdefault(model, []).append(f"{path} (kind: {kind})" if kind else path)
        if len(found[model]) > 1:
            return
        for name, info in model.model_fields.items():
            where = f"{path}.{info.alias or name}" if path else info.alias or name
            children = _nested(info.annotation)
            for suffix, child in children:
                tag = child.model_fields.get("kind")
                # A union of models (target) is told apart by its kind; nested sections keep the kind.
                visit(child, where + suffix, str(tag.default) if tag and len(children) > 1 else kind)

    visit(DeploymentSpec, "", "")
    return list(found.items())


def fields() -> Iterator[tuple[str, str, FieldInfo]]:
    """(section path, field name as written, field) for every field of every section."""
    for model, paths in sections():
        for name, info in model.model_fields.items():
            yield paths[0] or "(top level)", info.alias or name, info


def _type(tp: Any, info: FieldInfo | None = None) -> str:
    members = _members(tp)
    if len(members) > 1:
        if all(_is_model(m) for m in members):
            return "mapping (by `kind`)"
        return " or ".join(_type(m) for m in members)
    tp = members[0]
    origin = get_origin(tp)
    if origin is Literal:
        text = " | ".join(f"`{a}`" for a in get_args(tp))
    elif origin is list:
        text = f"list of {_type(get_args(tp)[0])}"
    elif origin is dict:
        text = f"mapping of string to {_type(get_args(tp)[1])}"
    elif _is_model(tp):
        text = "secret reference" if tp.__name__ == "SecretRef" else "mapping"
    else:
        text = _SCALARS.get(tp, getattr(tp, "__name__", str(tp)))
    return text + _bounds(info)


_BOUNDS = {
    "Ge": ("ge", ">= {}"),
    "Gt": ("gt", "> {}"),
    "Le": ("le", "<= {}"),
    "Lt": ("lt", "< {}"),
    "MinLen": ("min_length", "length >= {}"),
    "MaxLen": ("max_length", "length <= {}"),
}


def _bounds(info: FieldInfo | None) -> str:
    """The bounds pydantic checks (annotated-types metadata, told apart by class name)."""
    if info is None:
        return ""
    out = [
        text.format(getattr(meta, attr))
        for meta in info.metadata
        for attr, text in [_BOUNDS.get(type(meta).__name__, ("", ""))]
        if attr
    ]
    return f", {', '.join(out)}" if out else ""


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, list | dict):
        value = (
            [v.model_dump() if isinstance(v, BaseModel) else v for v in value]
            if isinstance(value, list)
            else value
        )
        return f"`{yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`" if value != "" else '`""`'


def _cell(text: str) -> str:
    # Escaped for a Markdown table: | ends a cell, <name> would read as an HTML tag.
    return re.sub(r"<(?=[A-Za-z])", r"\\<", " ".join(text.split()).replace("|", "\\|"))


def reference() -> str:
    """The whole reference as Markdown."""
    out = [_HEADER.rstrip("\n")]
    for model, paths in sections():
        out += ["", f"## {paths[0] or 'Top level'}", ""]
        if len(paths) > 1:
            out += ["Also at: " + ", ".join(f"`{p}`" for p in paths[1:]) + ".", ""]
        doc = " ".join((model.__doc__ or "").split("\n\n")[0].split())
        if doc:
            out += [doc, ""]
        out += ["| field | type | default | description |", "|---|---|---|---|"]
        for name, info in model.model_fields.items():
            row = (
                f"`{info.alias or name}`",
                _type(info.annotation, info),
                _default(info),
                info.description or "",
            )
            out.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
