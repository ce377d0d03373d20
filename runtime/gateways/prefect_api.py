"""The few Prefect REST calls the no-op converge needs (flows/_converge.py), over plain httpx.

Importing Prefect's client (``prefect.client.orchestration``) costs 1-4 s of CPU on a small machine,
more than the whole no-op converge; these three calls need none of it. They speak the same REST API
the client does (Prefect 3, ``PREFECT_API_URL``, with ``PREFECT_API_KEY`` or
``PREFECT_API_AUTH_STRING`` when set), so the run they record is an ordinary flow run: it shows in the
UI's run list and history with its state, message, parameters and tags.
"""

from __future__ import annotations

import base64
import os
from datetime import datetime
from typing import Any

import httpx

from runtime.errors import TransientError


def _client(api_url: str) -> httpx.Client:
    headers = {}
    if key := os.environ.get("PREFECT_API_KEY"):
        headers["Authorization"] = f"Bearer {key}"
    elif auth := os.environ.get("PREFECT_API_AUTH_STRING"):
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    # plain http (the CLI's local server) has no TLS: no CA bundle to load (~0.1 s of CPU)
    return httpx.Client(
        base_url=api_url.rstrip("/") + "/",
        headers=headers,
        timeout=10.0,
        verify=not api_url.startswith("http:"),
    )


def _call(client: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
    try:
        response = client.request(method, path, **kw)
    except httpx.HTTPError as exc:
        raise TransientError(f"Prefect API {method} {path}: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400 and response.status_code != 404:
        raise TransientError(
            f"Prefect API {method} {path} -> HTTP {response.status_code}: {response.text[:200]}"
        )
    return response


def active_slots(api_url: str, limit_name: str) -> int:
    """Slots of the global concurrency limit ``limit_name`` in use now (0 when it does not exist yet)."""
    with _client(api_url) as client:
        response = _call(client, "GET", f"v2/concurrency_limits/{limit_name}")
        return 0 if response.status_code == 404 else int(response.json().get("active_slots") or 0)


def record_run(
    api_url: str, flow_name: str, *, parameters: dict, tags: list[str], started: datetime, message: str
) -> dict:
    """A flow run of ``flow_name``, Running then Completed with ``message`` (the API sets the states'
    times itself; ``started``, when the work began, is kept in the run's context);
    returns the run as the API answers it (id, name, tags, ...)."""
    with _client(api_url) as client:
        flow_id = _call(client, "POST", "flows/", json={"name": flow_name}).json()["id"]
        run = _call(
            client,
            "POST",
            "flow_runs/",
            json={
                "flow_id": flow_id,
                "parameters": parameters,
                "tags": tags,
                "context": {"started": started.isoformat()},
                "state": {"type": "RUNNING", "name": "Running"},
            },
        ).json()
        answer = _call(
            client,
            "POST",
            f"flow_runs/{run['id']}/set_state",
            json={
                "state": {"type": "COMPLETED", "name": "Completed", "message": message},
            },
        ).json()
        if answer.get("status") != "ACCEPT":
            raise TransientError(f"Prefect did not accept the Completed state of run {run['name']}: {answer}")
        return run
