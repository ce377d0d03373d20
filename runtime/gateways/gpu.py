"""GPU detection on the local host with nvidia-smi (absent binary or no devices = no GPU)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GpuInfo:
    count: int
    names: list[str] = field(default_factory=list)
    driver: str | None = None

    @property
    def present(self) -> bool:
        return self.count > 0


def detect() -> GpuInfo:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return GpuInfo(0)
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return GpuInfo(0)
    rows = [r.split(",") for r in out.strip().splitlines() if r.strip()]
    return GpuInfo(
        len(rows), [r[0].strip() for r in rows], rows[0][1].strip() if rows and len(rows[0]) > 1 else None
    )
