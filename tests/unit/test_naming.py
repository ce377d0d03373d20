"""runtime.domain.naming: DNS-1123 checks, deterministic names, labels and the two identities of a spec
(spec_hash: what runs; deployment_id: where it lives). Also keeps the spec modules pure."""

from __future__ import annotations

import ast
import hashlib
import re
import sys
from pathlib import Path

import pytest

from runtime.domain import naming
from runtime.spec import API_VERSION, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "infra" / "targets").glob("*.yaml"))
SHA = "c1899de289a04d12100db370d81485cdf75e47ca"
EKS_TARGET = {
    "kind": "eks",
    "region": "us-east-1",
    "cluster_name": "demo",
    "node_pools": [{"name": "gpu", "instance_type": "g6e.2xlarge", "gpu": {"count": 1}}],
}


def eks(**changes: object) -> dict:
    data = {
        "apiVersion": API_VERSION,
        "name": "demo",
        "target": dict(EKS_TARGET),
        "model": {"id": "Qwen/Qwen3-0.6B", "revision": SHA},
    }
    for key, value in changes.items():
        section, _, field = key.partition("__")
        data[section] = {**data[section], field: value} if field else value  # type: ignore[dict-item]
    return data


# --- DNS-1123 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "demo", "my-demo-1", "0abc", "a" * 63])
def test_valid_labels(value: str) -> None:
    assert naming.is_dns1123_label(value)
    assert naming.dns1123_label_problem(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "empty"),
        ("a" * 64, "64 characters"),
        ("Demo", "uppercase"),
        ("my_demo", "'_'"),
        ("my.demo", "'.'"),
        ("-demo", "start and end"),
        ("demo-", "start and end"),
    ],
)
def test_invalid_labels_say_why(value: str, problem: str) -> None:
    assert not naming.is_dns1123_label(value)
    assert problem in (naming.dns1123_label_problem(value) or "")


def test_label_max_len_is_a_parameter() -> None:
    assert naming.is_dns1123_label("a" * 40, naming.NAME_MAX)
    assert not naming.is_dns1123_label("a" * 41, naming.NAME_MAX)


@pytest.mark.parametrize("value", ["dynamo.nvidia.com", "a", "a-b.c-d", "x" * 63 + "." + "y" * 63])
def test_valid_subdomains(value: str) -> None:
    assert naming.is_dns1123_subdomain(value)


@pytest.mark.parametrize("value", ["", "a..b", ".a", "A.b", "a_b.c", "x" * 254])
def test_invalid_subdomains(value: str) -> None:
    assert not naming.is_dns1123_subdomain(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("My_Demo!", "my-demo"), ("--x--", "x"), ("___", "dynadeploy"), ("A" * 80, "a" * 40)],
)
def test_suggest_makes_a_valid_label(value: str, expected: str) -> None:
    suggestion = naming.suggest_dns1123_label(value, 40)
    assert suggestion == expected and naming.is_dns1123_label(suggestion, 40)


@pytest.mark.parametrize("key", ["app", "app.kubernetes.io/name", "dynadeploy.io/deployment", "a_b.c-d"])
def test_valid_label_keys(key: str) -> None:
    assert naming.is_label_key(key)


@pytest.mark.parametrize("key", ["", "bad key", "Example.COM/x", "x/" + "a" * 64, "-a", "a/"])
def test_invalid_label_keys(key: str) -> None:
    assert not naming.is_label_key(key)


def test_label_values() -> None:
    assert naming.is_label_value("") and naming.is_label_value("v1.2_x-y")
    assert (
        not naming.is_label_value("-x")
        and not naming.is_label_value("a" * 64)
        and not naming.is_label_value("a b")
    )


# --- labels and names ----------------------------------------------------------------------------------


def test_labels_and_selector() -> None:
    assert naming.labels("demo") == {
        "app.kubernetes.io/managed-by": "dynadeploy",
        "dynadeploy.io/deployment": "demo",
    }
    assert naming.labels("demo", **{naming.ROLE_KEY: "worker"})[naming.ROLE_KEY] == "worker"
    assert naming.selector("demo") == "app.kubernetes.io/managed-by=dynadeploy,dynadeploy.io/deployment=demo"
    for key, value in naming.labels("demo").items():
        assert naming.is_label_key(key) and naming.is_label_value(value)


def test_join_name_is_deterministic_and_bounded() -> None:
    assert naming.join_name("demo", "model-cache") == "demo-model-cache"
    long = naming.join_name("a" * 40, "canary", "frontend", "extra-long-suffix-for-testing")
    assert len(long) == 63 and naming.is_dns1123_label(long)
    assert long == naming.join_name("a" * 40, "canary", "frontend", "extra-long-suffix-for-testing")
    other = naming.join_name("a" * 40, "canary", "frontend", "extra-long-suffix-for-testinh")
    assert other != long and other[:50] == long[:50]  # same prefix, different hash


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_derived_name_is_a_valid_label(path: Path) -> None:
    spec = load_spec(path)
    names = [
        naming.dgd_name(spec),
        naming.dgd_name(spec, canary=True),
        naming.frontend_service_name(naming.dgd_name(spec, canary=True)),
        naming.model_cache_pvc_name(spec),
        naming.model_download_job_name(spec),
        naming.hf_token_secret_name(spec),
        naming.ledger_name(spec, 12345),
        naming.local_program_name(spec, "prefill", 3),
        naming.deployment_id(spec),
        *(naming.component_name(spec, c.role, canary=True) for c in spec.components()),
    ]
    for name in names:
        assert naming.is_dns1123_label(name), name
    ns = naming.namespace(spec)
    assert (ns is None) == (spec.target.kind in ("local", "ecs"))
    assert ns is None or naming.is_dns1123_label(ns)


def test_names_of_the_longest_spec_name_still_fit() -> None:
    spec = parse_spec({"apiVersion": API_VERSION, "name": "a" * 40})
    assert naming.frontend_service_name(naming.dgd_name(spec, canary=True)) == "a" * 40 + "-canary-frontend"
    assert len(naming.component_name(spec, "prefill", canary=True)) <= 63


def test_namespaces() -> None:
    spec = parse_spec(eks())
    assert naming.namespace(spec) == "demo" and naming.platform_namespace(spec) == "dynamo-system"
    spec = parse_spec(eks(target__namespace="team-a", platform={"operator_mode": "namespace"}))
    assert naming.namespace(spec) == "team-a" and naming.platform_namespace(spec) == "team-a"
    assert naming.platform_namespace(parse_spec({"apiVersion": API_VERSION, "name": "x"})) is None


# --- identities ----------------------------------------------------------------------------------------


def test_spec_hash_is_sha256_of_canonical_json() -> None:
    spec = parse_spec(eks())
    digest = naming.spec_hash(spec)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    canonical = naming.canonical_json(spec)
    assert canonical.startswith('{"apiVersion":"dynadeploy.io/v1"') and ": " not in canonical
    assert digest == hashlib.sha256(canonical.encode()).hexdigest()


def test_spec_hash_ignores_layout_and_explicit_defaults(tmp_path: Path) -> None:
    terse = tmp_path / "a.yaml"
    terse.write_text("apiVersion: dynadeploy.io/v1\nname: demo\n")
    verbose = tmp_path / "b.yaml"
    verbose.write_text(
        "# comments do not count\nname: demo\napiVersion: dynadeploy.io/v1\n"
        "serving: {topology: agg, workers: {replicas: 1, gpus: 1}}\ntarget: {kind: local, host: 127.0.0.1}\n"
    )
    assert naming.spec_hash(load_spec(terse)) == naming.spec_hash(load_spec(verbose))


def test_spec_hash_changes_with_any_effective_change() -> None:
    base = naming.spec_hash(parse_spec(eks()))
    assert naming.spec_hash(parse_spec(eks(model={"id": "Qwen/Qwen3-0.6B", "revision": "0" * 40}))) != base
    assert naming.spec_hash(parse_spec(eks(smoke={"requests": 41}))) != base


def test_spec_hash_survives_round_trip() -> None:
    for path in EXAMPLES:
        spec = load_spec(path)
        assert naming.spec_hash(parse_spec(spec.canonical_dict())) == naming.spec_hash(spec)


def test_deployment_id_is_stable_across_revisions_but_not_across_places() -> None:
    base = parse_spec(eks())
    same_place = parse_spec(
        eks(model={"id": "Qwen/Qwen3-0.6B", "revision": "0" * 40}, smoke={"requests": 10})
    )
    assert naming.deployment_id(base) == naming.deployment_id(same_place)
    assert naming.spec_hash(base) != naming.spec_hash(same_place)
    elsewhere = [
        parse_spec(eks(target__region="eu-west-1")),
        parse_spec(eks(target__cluster_name="other")),
        parse_spec(eks(target__namespace="team-a")),
        parse_spec({**eks(), "name": "demo2"}),
    ]
    ids = {naming.deployment_id(s) for s in [base, *elsewhere]}
    assert len(ids) == 5
    assert re.fullmatch(r"demo-[0-9a-f]{10}", naming.deployment_id(base))


def test_deployment_id_of_explicit_default_namespace_equals_implicit() -> None:
    implicit = parse_spec(eks())
    explicit = parse_spec(eks(target__namespace="demo"))
    assert naming.deployment_id(implicit) == naming.deployment_id(explicit)


# --- purity --------------------------------------------------------------------------------------------

# Every module of the spec package (and naming, which the spec uses): import-linter's contracts forbid the
# SDKs and effect modules; this holds the spec to the stricter rule of stdlib + pydantic + yaml only.
PURE = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "runtime" / "spec").glob("*.py")) + [
    "runtime/domain/naming.py"
]
ALLOWED = {"pydantic", "pydantic_core", "yaml", "runtime"}


@pytest.mark.parametrize("module", PURE)
def test_spec_modules_import_only_stdlib_pydantic_yaml_and_runtime(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops = [node.module.split(".")[0]]
            if tops[0] == "runtime":
                assert node.module == "runtime.errors" or node.module.startswith(
                    ("runtime.spec", "runtime.domain")
                ), (
                    f"{module} imports {node.module}: the spec builds on runtime.errors, runtime.domain and itself only"
                )
        else:
            continue
        for top in tops:
            assert top in sys.stdlib_module_names or top in ALLOWED, f"{module} imports {top}"


def _spec_imports(module: str) -> tuple[set[str], list[str]]:
    """(the runtime.spec modules ``module`` imports at its top level, imports found anywhere else)."""
    tree = ast.parse((ROOT / module).read_text())
    top = {id(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)}
    deps: set[str] = set()
    late = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if id(node) not in top:
            late.append(f"line {node.lineno}: {ast.unparse(node)}")
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        deps |= {n for n in names if n == "runtime.spec" or n.startswith("runtime.spec.")}
    return deps, late


def test_spec_package_has_no_import_cycle_and_no_late_import() -> None:
    modules = {
        f"runtime.spec.{Path(m).stem}": m
        for m in PURE
        if m.startswith("runtime/spec/") and not m.endswith("__init__.py")
    }
    graph = {}
    for name, path in modules.items():
        deps, late = _spec_imports(path)
        assert not late, f"{path} imports inside a function or block (a late import hides a cycle): {late}"
        assert "runtime.spec" not in deps, (
            f"{path} imports the package runtime.spec (its __init__ imports every module)"
        )
        graph[name] = deps
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        assert name not in chain, f"import cycle in runtime/spec: {' -> '.join((*chain, name))}"
        if name not in done:
            for dep in graph.get(name, ()):
                visit(dep, (*chain, name))
            done.add(name)

    for name in graph:
        visit(name, ())
