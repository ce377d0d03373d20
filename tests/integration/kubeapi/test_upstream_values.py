"""Helm values the project renders against the real charts' values (../shared/upstream or
$DYNADEPLOY_UPSTREAM_DIR; skipped, saying so, when absent): a key the real chart does not read is an error.

dynamo-platform: every leaf key dynadeploy renders (infra/values/dynamo-platform-1.x.yaml + the overlay of
runtime/render/platform.py, over the specs of infra/targets and the platform switches) must be a key of the
real platform values.yaml, of the operator subchart's values.yaml under ``dynamo-operator.``, or of the
1.6.0 chart README's values table. gpu-operator: every key of infra/values/gpu-operator.yaml merged with
each provider's ``gpu_operator_values`` must be a key of the real v25.10.1 values.yaml.

Not covered: keys of subcharts whose values files are not in the upstream folder (bitnami etcd, NATS, Grove,
KAI) beyond the few the upstream material names (listed in SUBCHART_KEYS with where each comes from);
value types and allowed values (the charts have no values.schema.json); what the chart templates do with a
value; the 0.x chart line.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.harness import upstream

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
# Keys of subcharts not kept upstream, each named by upstream material:
SUBCHART_KEYS = {
    # bitnami etcd 12.x's documented switch to run a non-bitnami image (the chart refuses bitnamilegacy/etcd
    # otherwise, see tests/harness/charts/dynamo-platform/README.md); not in any upstream file here
    "etcd.global.security.allowInsecureImages",
    # quoted from the v1.5.0 upgrade notes of the 1.6.0 platform README
    "kai-scheduler.scheduler.args.default-staleness-grace-period",
}


def leaves(values, prefix: str = "") -> set[str]:
    """Dotted key paths of ``values``; an empty map or a list is a leaf."""
    if isinstance(values, dict) and values:
        out: set[str] = set()
        for k, v in values.items():
            out |= leaves(v, f"{prefix}{k}.")
        return out
    return {prefix[:-1]} if prefix else set()


def known(values, prefix: str = "") -> set[str]:
    """Every key path of ``values`` (inner maps too)."""
    out: set[str] = set()
    if isinstance(values, dict):
        for k, v in values.items():
            out.add(f"{prefix}{k}")
            out |= known(v, f"{prefix}{k}.")
    return out


def unread(rendered: dict, allowed: set[str], open_maps: set[str]) -> list[str]:
    """Rendered leaves the real chart does not read (a key under an open map, e.g. ``podLabels: {}``, is
    the chart's to pass on)."""
    bad = []
    for path in sorted(leaves(rendered)):
        if path in allowed or any(path.startswith(m + ".") for m in open_maps):
            continue
        bad.append(path)
    return bad


def _open_maps(values, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(values, dict):
        for k, v in values.items():
            if isinstance(v, dict) and not v:
                out.add(f"{prefix}{k}")
            out |= _open_maps(v, f"{prefix}{k}.")
    return out


def platform_keys() -> tuple[set[str], set[str]]:
    root = upstream.require_upstream()
    platform = upstream.values("dynamo-platform")
    operator = upstream.values("dynamo-operator")
    keys = known(platform) | {f"dynamo-operator.{k}" for k in known(operator)}
    readme = (root / "dynamo" / "platform-README-1.6.0.md").read_text()
    keys |= set(re.findall(r"^\| ([\w.\-]+) \|", readme, flags=re.MULTILINE))
    opened = _open_maps(platform) | {f"dynamo-operator.{k}" for k in _open_maps(operator)}
    return keys | SUBCHART_KEYS, opened


def _docs() -> list[dict]:
    import yaml

    out = []
    for path in sorted((REPO / "infra" / "targets").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if (doc.get("target") or {}).get("kind") in ("kube", "eks", "gke", "aks"):
            out.append(doc)
    return out


def _specs() -> list:
    from runtime.spec import parse_spec

    return [parse_spec(d, source=f"infra/targets {d.get('name')}") for d in _docs()]


def _variants() -> list:
    """Each Kubernetes target's spec plus the platform switches that change the rendered values."""
    from runtime.spec import parse_spec

    out = []
    for doc in _docs():
        out.append(parse_spec(doc, source="infra/targets"))
        for switch in (
            {"operator_mode": "namespace"},
            {"nats": True, "etcd": True},
            {"grove": True, "kai_scheduler": True},
        ):
            d = {**doc, "platform": {**(doc.get("platform") or {}), **switch}}
            try:
                out.append(parse_spec(d, source=f"infra/targets {doc.get('name')} with {switch}"))
            except Exception:
                continue
    return out


def test_dynamo_platform_values_use_only_keys_the_real_chart_reads():
    """What runtime/render/platform.py renders for dynamo-platform 1.x, over every Kubernetes target in
    infra/targets and the platform switches, names only keys of the real chart. Not covered: subcharts'
    own values (see the module docstring) and value types."""
    from runtime.domain import capabilities
    from runtime.render import platform

    keys, opened = platform_keys()
    checked = 0
    for variant in _variants():
        values = platform.render_platform_values(variant, capabilities.for_spec(variant))
        bad = unread(values, keys, opened)
        assert not bad, f"{variant.name}: keys the real dynamo-platform chart does not read: {bad}"
        checked += 1
    assert checked >= 4


def test_gpu_operator_values_use_only_keys_the_real_chart_reads():
    """infra/values/gpu-operator.yaml and every provider's gpu_operator_values (infra/providers.yaml), as
    runtime/render/platform.py merges them, against the real gpu-operator v25.10.1 values.yaml. Not
    covered: the node-feature-discovery subchart's own keys, value types."""
    from runtime.domain import capabilities
    from runtime.render import platform

    upstream.require_upstream()
    real = upstream.values("gpu-operator")
    keys, opened = known(real), _open_maps(real)
    for spec in _specs():
        values = platform.render_gpu_operator_values(spec, capabilities.for_spec(spec))
        bad = unread(values, keys, opened)
        assert not bad, f"{spec.name}: keys the real gpu-operator chart does not read: {bad}"
    for name in ("kube", "eks", "gke", "aks"):
        extra = capabilities.capabilities(name).gpu_operator_values
        bad = unread(extra, keys, opened)
        assert not bad, f"provider {name}: gpu_operator_values keys the real chart does not read: {bad}"


def test_the_key_check_catches_a_key_the_chart_does_not_read():
    """The check itself: a misspelt key is reported, an open map's keys are not."""
    keys, opened = platform_keys()
    assert unread({"dynamo-operator": {"namespaceRestriction": {"enable": True}}}, keys, opened) == [
        "dynamo-operator.namespaceRestriction.enable"
    ]
    assert unread({"dynamo-operator": {"controllerManager": {"podLabels": {"a": "b"}}}}, keys, opened) == []
