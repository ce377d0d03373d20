"""What a run waiting for its target's slot says (flows/_slot_report.py), without a Prefect server."""

from __future__ import annotations

import logging
import time

import pytest

from flows import _progress, _slot_report


@pytest.fixture
def said(monkeypatch):
    records: list[dict] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.dynadeploy)

    monkeypatch.setattr(_progress, "get_run_logger", lambda: logging.getLogger("test-slot"))
    handler = Keep()
    _progress.PROGRESS.addHandler(handler)
    _progress.PROGRESS.setLevel(logging.INFO)
    yield records
    _progress.PROGRESS.removeHandler(handler)


HOLDER = {
    "flow": "rollback",
    "run": "calm-otter",
    "state": "Paused",
    "since": "2026-12-07T21:00:05+00:00",
    "for": "4m10s",
    "url": "http://127.0.0.1:4200/runs/flow-run/abc",
}


def test_describe_names_the_holder_and_how_to_give_up():
    text = _slot_report.describe("demo", [HOLDER], 12.4)
    assert text == (
        "waiting 12s for the slot of demo: held by rollback run calm-otter (Paused, since "
        "2026-12-07 21:00:05 UTC, 4m10s ago) http://127.0.0.1:4200/runs/flow-run/abc; Ctrl-C gives up"
    )
    assert "holder is not a run this server knows of" in _slot_report.describe("demo", [], 3)


def test_waiting_reporter_keeps_saying_who_holds_it_then_stops(said, monkeypatch):
    monkeypatch.setattr(_slot_report, "slot_holders", lambda name, exclude=None: [HOLDER])
    with _slot_report.waiting_reporter("demo", first_after_s=0.1, every_s=0.2) as acquired:
        time.sleep(0.75)
        acquired()
        time.sleep(0.4)
    waits = [r for r in said if r["stage"] == "slot" and r["event"] == "start"]
    assert len(waits) >= 3 and all("held by rollback run calm-otter (Paused" in r["detail"] for r in waits)
    assert all(r["live"] for r in waits)
    assert said[-1]["event"] == "done" and said[-1]["detail"].startswith("waited ")
    assert len([r for r in said if r["event"] == "start"]) == len(waits)  # nothing said after acquiring


def test_a_slot_free_at_once_says_nothing(said, monkeypatch):
    monkeypatch.setattr(_slot_report, "slot_holders", lambda name, exclude=None: [HOLDER])
    with _slot_report.waiting_reporter("demo", first_after_s=0.3) as acquired:
        acquired()
    time.sleep(0.4)
    assert said == []


def test_ctrl_c_while_waiting_gives_up_and_says_so(said, monkeypatch):
    monkeypatch.setattr(_slot_report, "slot_holders", lambda name, exclude=None: [HOLDER])
    with pytest.raises(KeyboardInterrupt), _slot_report.waiting_reporter("demo", first_after_s=0.05) as _acq:  # noqa: PT012 - the context manager under test is part of the raising block
        time.sleep(0.2)
        raise KeyboardInterrupt
    assert said[-1]["event"] == "failed" and said[-1]["detail"].startswith("gave up after waiting")
