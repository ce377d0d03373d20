"""runtime.settings: the one reader of the DYNADEPLOY_* environment. Every variable is named and documented
there, read when asked (so monkeypatching works), and no other module reads one from os.environ."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from runtime import settings

ROOT = Path(__file__).resolve().parents[2]


def _env_reads(tree: ast.AST) -> list[str]:
    """The literal names (or f-string prefixes) read through os.environ.get/[...]/os.getenv."""
    out = []
    for node in ast.walk(tree):
        arg = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            target = ast.unparse(node.func)
            if target in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                arg = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ"):
            arg = node.slice
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            out.append(arg.value)
        elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
            out.append(str(arg.values[0].value))
    return out


def test_only_the_settings_module_reads_dynadeploy_variables() -> None:
    offenders = []
    for package in ("runtime", "flows", "tasks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "runtime" / "settings.py":
                continue
            reads = [n for n in _env_reads(ast.parse(path.read_text())) if n.startswith("DYNADEPLOY_")]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in reads]
    assert not offenders, f"read these through runtime/settings.py: {offenders}"


def test_every_variable_is_in_the_table() -> None:
    names = [v for k, v in vars(settings).items() if k.isupper() and isinstance(v, str)]
    names += ["DYNADEPLOY_KUBE_<WHAT>_TIMEOUT_S", "DYNADEPLOY_ECS_<WHAT>_TIMEOUT_S"]
    assert len(names) > 10
    doc = settings.__doc__ or ""
    assert [n for n in names if f"| ``{n}`` |" not in doc] == []


def test_values_are_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.HOME, raising=False)
    assert settings.home() is None
    monkeypatch.setenv(settings.HOME, "")
    assert settings.home() is None  # empty: the default
    monkeypatch.setenv(settings.HOME, "/tmp/x")
    assert settings.home() == "/tmp/x"
    monkeypatch.setenv(settings.TOOLS_DIR, "  /opt/tools ")
    assert settings.tools_dir() == "/opt/tools"
    monkeypatch.setenv(settings.PREFECT, "ephemeral")
    assert settings.prefect_ephemeral()


def test_timeouts_fall_back_to_the_default_on_a_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.kube_timeout_name("GPU"), raising=False)
    assert settings.kube_timeout_s("GPU", 600) == 600
    monkeypatch.setenv(settings.kube_timeout_name("GPU"), "30")
    assert settings.kube_timeout_s("GPU", 600) == 30.0
    monkeypatch.setenv(settings.ecs_timeout_name("ROLLOUT"), "soon")
    assert settings.ecs_timeout_s("ROLLOUT", 1800) == 1800
    monkeypatch.setenv(settings.KUBE_ROUTE_TIMEOUT_S, "soon")
    with pytest.raises(ValueError):  # as before: the route wait's variable was never forgiving  # noqa: PT011 - the raised message is checked below / any ValueError is the contract
        settings.kube_route_timeout_s()
