"""Through a real Prefect server: a spec passed to the flows as a dict with secrets in wrong places
is refused, and nothing Prefect keeps about the run (its stored parameters, state, logs, events)
holds the secret. Nothing is deployed: validation fails before any task."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from runtime.errors import SpecError
from tests.unit.test_bad_input import SECRET_CASES

pytestmark = [pytest.mark.integration]

CASES = [
    "token-inline-string",
    "token-as-secret_block",
    "token-as-env-name",
    "eks-credentials-secret-string",
    "eks-credentials-block-secret",
    "env-hf-token-literal",
    "name-aws-secret",
    "unknown-field-named-token",
    "model-revision-aws-secret",
]


def test_refused_specs_leave_no_secret_in_prefect(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.events.worker import EventsWorker

    from flows.deploy import deploy
    from flows.teardown import teardown

    monkeypatch.setenv("DYNADEPLOY_HOME", str(tmp_path / "home"))
    for case in CASES:
        for flow_fn in (deploy, teardown):
            with pytest.raises(SpecError):
                flow_fn(spec=SECRET_CASES[case])
    EventsWorker.drain_all()

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=200)
        logs = client.read_logs(limit=200)
    assert len(runs) >= 2 * len(CASES)  # the runs exist: Prefect stored their parameters
    kept = [
        json.dumps(
            {"parameters": r.parameters, "state": r.state.message if r.state else None, "name": r.name},
            default=str,
        )
        for r in runs
    ]
    kept += [log.message for log in logs]
    page = httpx.post(f"{prefect_api}/events/filter", json={"limit": 50}, timeout=30)
    for _ in range(100):  # every page of events
        assert page.status_code == 200, page.text
        kept.append(page.text)
        following = page.json().get("next_page")
        if not following:
            break
        page = httpx.get(following, timeout=30)
    text = "\n".join(kept)
    assert "marker" not in text.lower(), [t for t in kept if "marker" in t.lower()][:3]
    assert "<redacted>" in text  # what was stored in the secret's place
    assert not (tmp_path / "home").exists()
