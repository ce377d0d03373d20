"""Fixtures for the local target: specs in a temp state dir, real Dynamo processes, real flows.

What is real: the Dynamo frontend and mocker processes (ai-dynamo 1.6.1), supervisord, etcd/NATS,
the Prefect flows and tasks on a temporary Prefect server, the httpx load generator. What is not: a
GPU (the mocker engine stands in for vLLM; the vLLM path runs only on a GPU host).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runtime.spec import load_spec
from runtime.targets.local.backend import LocalBackend


def write_spec(directory: Path, name: str, serving: dict | None = None, **sections) -> Path:
    doc = {
        "apiVersion": "dynadeploy.io/v1",
        "name": name,
        "target": {"kind": "local", "state_dir": str(directory / "home"), **sections.pop("target", {})},
        "serving": serving or {},
        **sections,
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def spec_dir(tmp_path):
    made: list[Path] = []

    def make(name: str, serving: dict | None = None, **sections) -> Path:
        path = write_spec(tmp_path, name, serving, **sections)
        made.append(path)
        return path

    yield make
    # Whatever a test leaves running is stopped here, so one failure cannot leak into the next test.
    for path in made:
        try:
            LocalBackend(load_spec(path)).teardown()
        except Exception:
            pass
