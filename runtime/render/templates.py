"""The template language of infra/templates and infra/values: plain YAML with ``${name}`` placeholders.

Rules (kept small on purpose, so the files stay editable without reading Python):

- a string that is exactly one placeholder takes the value as it is (a list, a mapping, a number);
- a placeholder inside a longer string is replaced by the value's text;
- a mapping key or list item whose placeholder value is None is left out (an optional field);
- an unknown placeholder is an error naming the file, so a typo never renders silently.

``merge`` overlays one document on another the way the DGD topology files need: mappings merge key
by key, lists whose items all have a ``name`` merge item by item (containers, env, volumes), any other
value is replaced.

Pure: reading the packaged template files is the only I/O.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from runtime.errors import NotSupportedError

INFRA = Path(__file__).resolve().parents[2] / "infra"
_WHOLE = re.compile(r"^\$\{([A-Za-z][\w.-]*)\}$")
_INNER = re.compile(r"\$\{([A-Za-z][\w.-]*)\}")
_MISSING = object()


@functools.cache
def _read(relpath: str) -> tuple[Any, ...]:
    path = INFRA / relpath
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotSupportedError(
            f"template infra/{relpath} cannot be read: {exc.strerror or type(exc).__name__}",
            hint="restore it from the repository",
        ) from None
    return tuple(doc for doc in yaml.safe_load_all(text) if doc is not None)


def load(relpath: str) -> Any:
    """The (single) document of infra/<relpath>, as a fresh copy the caller may change."""
    docs = _read(relpath)
    return copy.deepcopy(docs[0]) if docs else {}


def load_all(relpath: str) -> list[Any]:
    """Every document of a multi-document file under infra/, as fresh copies."""
    return copy.deepcopy(list(_read(relpath)))


def fill(node: Any, values: Mapping[str, Any], source: str = "template") -> Any:
    """``node`` with every placeholder replaced from ``values`` (see the module docstring)."""
    if isinstance(node, str):
        whole = _WHOLE.match(node)
        if whole:
            return copy.deepcopy(_value(whole.group(1), values, source))

        def text(match: re.Match[str]) -> str:
            value = _value(match.group(1), values, source)
            return "" if value is None else str(value)

        return _INNER.sub(text, node)
    if isinstance(node, Mapping):
        out = {}
        for key, child in node.items():
            filled = fill(child, values, source)
            if filled is not None or child is None:
                out[key] = filled
        return out
    if isinstance(node, list):
        return [filled for child in node if (filled := fill(child, values, source)) is not None]
    return node


def _value(name: str, values: Mapping[str, Any], source: str) -> Any:
    value = values.get(name, _MISSING)
    if value is _MISSING:
        raise NotSupportedError(
            f"{source} uses placeholder ${{{name}}}, which dynadeploy does not provide",
            hint=f"use one of: {', '.join(sorted(values))}",
        )
    return value


def merge(base: Any, overlay: Any) -> Any:
    """``overlay`` laid over ``base`` (new objects; neither argument is changed)."""
    if isinstance(base, Mapping) and isinstance(overlay, Mapping):
        out = dict(copy.deepcopy(base))
        for key, value in overlay.items():
            out[key] = merge(out[key], value) if key in out else copy.deepcopy(value)
        return out
    if _named_list(base) and _named_list(overlay):
        out_list = copy.deepcopy(list(base))
        index = {item["name"]: i for i, item in enumerate(out_list)}
        for item in overlay:
            if item["name"] in index:
                out_list[index[item["name"]]] = merge(out_list[index[item["name"]]], item)
            else:
                out_list.append(copy.deepcopy(item))
        return out_list
    return copy.deepcopy(overlay)


def _named_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, Mapping) and "name" in item for item in value)
    )


def upsert_named(items: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``items`` with each of ``new`` replacing the item of the same name in place, or appended."""
    out = list(items)
    index = {item.get("name"): i for i, item in enumerate(out)}
    for item in new:
        if item.get("name") in index:
            out[index[item["name"]]] = item
        else:
            index[item.get("name")] = len(out)
            out.append(item)
    return out
