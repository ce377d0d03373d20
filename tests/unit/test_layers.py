"""The architecture's import rules, checked on the source (DESIGN.md section 2).

- Pure runtime modules import no SDK, no HTTP client, no Prefect and nothing that does I/O.
- flows/ orchestrate: no cloud or Kubernetes SDK, no HTTP client.
- tasks/ glue runtime to Prefect: no cloud or Kubernetes SDK either (the gateways in runtime/ own them).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = ["runtime/errors.py", "runtime/spec.py", "runtime/spec_targets.py", "runtime/spec_rules.py",
        "runtime/spec_loading.py", "runtime/naming.py", "runtime/revisions.py", "runtime/sla.py",
        "runtime/local/plan.py", "runtime/capabilities.py", "runtime/canary.py", "runtime/metrics.py",
        "runtime/rollout.py", "runtime/render/__init__.py", "runtime/render/templates.py",
        "runtime/render/common.py", "runtime/render/dgd.py", "runtime/render/cache.py",
        "runtime/render/security.py", "runtime/render/platform.py", "runtime/render/ledger.py",
        "runtime/render/route.py", "runtime/credentials.py",
        "runtime/providers/ecs_revisions.py", "runtime/secret_shapes.py", "runtime/spec_monitoring.py",
        "runtime/monitoring.py", "runtime/monitoring_kube.py", "runtime/dashboard.py", "runtime/local/monitoring.py",
        "runtime/latency_plot.py"]
SDKS = {"boto3", "botocore", "kubernetes", "pyhelm3", "google", "azure", "huggingface_hub"}
IO = {"httpx", "httpx_sse", "aiohttp", "requests", "subprocess", "socket", "prefect", "supervisor", "dynamo"}


def _imports(path: Path):
    """Import nodes of a module, skipping `if TYPE_CHECKING:` blocks (type-only imports)."""
    stack = list(ast.parse(path.read_text()).body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in _imports(path):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def runtime_imports(path: Path) -> set[str]:
    mods = set()
    for node in _imports(path):
        if isinstance(node, ast.ImportFrom) and node.module == "runtime":
            mods |= {f"runtime.{a.name}" for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("runtime"):
            mods.add(node.module)
        elif isinstance(node, ast.Import):
            mods |= {a.name for a in node.names if a.name.startswith("runtime")}
    return mods


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_no_sdk_or_io(module):
    bad = imported_roots(ROOT / module) & (SDKS | IO)
    assert not bad, f"{module} is pure but imports {sorted(bad)}"


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_only_pure_project_modules(module):
    pure_names = {p.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for p in PURE}
    bad = {m for m in runtime_imports(ROOT / module) if m not in pure_names}
    assert not bad, f"{module} is pure but imports effect modules {sorted(bad)}"


@pytest.mark.parametrize("layer", ["flows", "tasks"])
def test_flows_and_tasks_leave_sdks_to_the_gateways(layer):
    offenders = {}
    for path in sorted((ROOT / layer).rglob("*.py")):
        bad = imported_roots(path) & (SDKS | {"httpx", "httpx_sse", "aiohttp", "requests"})
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"SDK imports outside runtime/ gateways: {offenders}"
