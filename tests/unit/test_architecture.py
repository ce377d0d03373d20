"""The architecture's import rules, as import-linter contracts (pyproject.toml [tool.importlinter]).

The contracts replace the hand-kept module lists this suite used to carry: the layers (flows > tasks >
runtime; inside runtime targets > providers > gateways | render > host > spec > domain), the pure packages
(spec, domain, render, errors: no SDK, no HTTP client, no Prefect, no effect module), the gateways as the
only importers of an SDK, an HTTP client or subprocess, targets independent of each other, and GKE/AKS free
of the AWS SDK. `make check` runs the same command; running it here too keeps a plain `pytest` honest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout and "KEPT" in proc.stdout
