"""Contract-test helpers: the pinned helm/kubectl binaries and a subprocess runner."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "tests" / "harness" / "charts" / "testchart"


def find_binary(name: str, major: int | None = None) -> str | None:
    try:
        from runtime.gateways import toolchain
    except ImportError:
        toolchain = None
    if toolchain is not None:
        try:
            return toolchain.binary(name, major=major)
        except Exception:
            return None
    path = REPO / ".tools" / ("helm3/bin" if major == 3 else "bin") / name
    return str(path) if path.is_file() else None


def require_binary(name: str, major: int | None = None) -> str:
    path = find_binary(name, major)
    if path is None:
        label = f"{name} {major}" if major else name
        pytest.skip(f"{label} is not installed; run `uv run python -m runtime.gateways.toolchain install`")
    return path


@dataclass
class Result:
    rc: int
    out: str
    err: str
    seconds: float


class Tool:
    """Runs a pinned binary against the simulator (its kubeconfig, private caches)."""

    def __init__(self, path: str, env: dict[str, str]) -> None:
        self.path, self.env = path, env

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 90
    ) -> Result:
        t0 = time.monotonic()
        p = subprocess.run(
            [self.path, *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        res = Result(p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
        if check and p.returncode != 0:
            raise AssertionError(
                f"{Path(self.path).name} {' '.join(args)} failed (rc={p.returncode}):\n{p.stdout}\n{p.stderr}"
            )
        return res


@pytest.fixture
def kubectl(kubeapi) -> Tool:
    return Tool(require_binary("kubectl"), kubeapi.env)


@pytest.fixture(params=[4, 3], ids=["helm4", "helm3"])
def helm(request, kubeapi) -> Tool:
    tool = Tool(require_binary("helm", major=request.param), kubeapi.env)
    tool.major = request.param
    return tool


@pytest.fixture
def helm4(kubeapi) -> Tool:
    return Tool(require_binary("helm", major=4), kubeapi.env)


def wait_for(pred, timeout: float = 30.0, what: str = "condition"):
    """Poll ``pred`` every 20 ms until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
