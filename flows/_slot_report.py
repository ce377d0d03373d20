"""Who holds a target's slot, said while a run waits for it (flows/_lock.py calls ``waiting_reporter``).

Prefect's global concurrency limit does not say who holds a slot, so the holder is found among the
runs that take slots: deploy, canary, rollback and teardown runs that are Running or Paused (a rollback
waiting for approval holds its slot) and name this target, by their ``target:<name>`` tag or their
``spec`` parameter. A subflow called with ``locked=True`` runs inside its parent's slot and is skipped.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime

SLOT_FLOWS = ["deploy", "canary", "rollback", "teardown"]
REPEAT_S = 15.0  # how often the waiting run says it again


def _spec_name(param) -> str | None:
    if isinstance(param, dict):
        return param.get("name")
    if isinstance(param, str) and os.path.isfile(param):
        import yaml

        try:
            doc = yaml.safe_load(open(param, encoding="utf-8"))  # noqa: SIM115 - small file, read once
        except (OSError, yaml.YAMLError):
            return None
        return doc.get("name") if isinstance(doc, dict) else None
    return None


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "?"
    s = int((now - when).total_seconds())
    return (
        f"{s}s"
        if s < 120
        else f"{s // 60}m{s % 60:02d}s"
        if s < 7200
        else f"{s // 3600}h{s % 3600 // 60:02d}m"
    )


def slot_holders(name: str, exclude=None) -> list[dict]:
    """The runs that hold (or may hold) the slot of target ``name``: flow, run, state, since, url."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )

    with get_client(sync_client=True) as client:
        flows = {
            f.id: f.name
            for f in client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=SLOT_FLOWS)))
        }
        if not flows:
            return []
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=SLOT_FLOWS)),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=["RUNNING", "PAUSED"]))
            ),
            limit=50,
        )
    api = os.environ.get("PREFECT_API_URL", "").rstrip("/").removesuffix("/api")
    now = datetime.now(UTC)
    out = []
    for r in runs:
        if exclude is not None and str(r.id) == str(exclude):
            continue
        if (r.parameters or {}).get("locked") is True:
            continue
        if f"target:{name}" not in (r.tags or []) and _spec_name((r.parameters or {}).get("spec")) != name:
            continue
        since = r.start_time or r.expected_start_time
        out.append(
            {
                "flow": flows.get(r.flow_id, "?"),
                "run": r.name,
                "state": r.state.name if r.state else "?",
                "since": since.isoformat() if since else None,
                "for": _ago(since, now),
                "url": f"{api}/runs/flow-run/{r.id}",
            }
        )
    return out


def describe(name: str, holders: list[dict], waited_s: float) -> str:
    if not holders:
        return (
            f"waiting {waited_s:.0f}s for the slot of {name} (dynadeploy-target-{name}); its holder is not "
            "a run this server knows of"
        )
    h = holders[0]
    more = f" (+{len(holders) - 1} more)" if len(holders) > 1 else ""
    return (
        f"waiting {waited_s:.0f}s for the slot of {name}: held by {h['flow']} run {h['run']} ({h['state']}, "
        f"since {h['since'][:19].replace('T', ' ') if h['since'] else '?'} UTC, {h['for']} ago) {h['url']}"
        f"{more}; Ctrl-C gives up"
    )


@contextmanager
def waiting_reporter(name: str, first_after_s: float = 2.0, every_s: float | None = None):
    """While the block waits for the slot, say who holds it (after ``first_after_s``, then every
    ``every_s``), as a live progress line of stage ``slot``; call the yielded function once the slot is
    held. A Ctrl-C while waiting says what was given up."""
    from flows._progress import _emit

    try:
        from prefect.runtime import flow_run

        me = flow_run.id
    except Exception:
        me = None
    got = threading.Event()
    t0 = time.monotonic()
    said: list[str] = []

    def report() -> None:
        wait = first_after_s
        while not got.wait(wait):
            try:
                text = describe(name, slot_holders(name, exclude=me), time.monotonic() - t0)
            except Exception as exc:
                text = f"waiting {time.monotonic() - t0:.0f}s for the slot of {name} (holder unknown: {exc})"
            if got.is_set():
                return
            said.append(text)
            _emit("slot", "start", text, live=True)
            wait = every_s or REPEAT_S

    # the run's context (its logger) travels with the thread
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(report,), name=f"slot-report-{name}", daemon=True
    )
    thread.start()

    def acquired() -> None:
        got.set()
        if said:
            _emit("slot", "done", f"waited {time.monotonic() - t0:.0f}s", time.monotonic() - t0)

    try:
        yield acquired
    except KeyboardInterrupt:
        if not got.is_set():
            got.set()
            _emit(
                "slot",
                "failed",
                f"gave up after waiting {time.monotonic() - t0:.0f}s for the slot of {name}",
                time.monotonic() - t0,
            )
        raise
    finally:
        got.set()
