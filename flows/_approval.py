"""Wait for a person's answer on a paused flow run, woken by the server's event stream.

Prefect's ``pause_flow_run`` reads the run's state every ``poll_interval`` seconds (10 by default), so
an approval is seen on average half an interval late, and a shorter interval means more API reads
for as long as nobody answers (up to an hour). ``wait_for_answer`` pauses the same way (a Paused
state carrying the typed form that the UI's Resume dialog renders; the answer read from the run
input the resume stores) but wakes on the server's ``prefect.flow-run.Running`` event for this run,
pushed over the events websocket, as Prefect's own ``wait_for_flow_run`` waits. It still reads the
run's state every ``poll_interval_s`` seconds, so an event stream that is down or absent (no
PREFECT_API_URL) costs latency, never the answer.

Measured on the 2-core box against a real server (bench/bench_prefect.py): the resume call to the
flow seeing it, 0.1-0.25 s, against 0.5-1 s when polling every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import TypeVar

from prefect import get_client, get_run_logger
from prefect.context import FlowRunContext
from prefect.events.clients import get_events_subscriber
from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter
from prefect.exceptions import Abort, FlowPauseTimeout
from prefect.input import keyset_from_paused_state
from prefect.input.run_input import run_input_subclass_from_type
from prefect.settings import PREFECT_API_URL
from prefect.states import Paused
from prefect.utilities.engine import propose_state_sync

T = TypeVar("T")


class _Wakeup:
    """A thread that sets ``event`` whenever the server announces the run entering Running."""

    def __init__(self, flow_run_id) -> None:
        self.event = threading.Event()
        self._filter = EventFilter(event=EventNameFilter(name=["prefect.flow-run.Running"]),
                                   resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, name="approval-wakeup", daemon=True)

    def start(self) -> _Wakeup:
        if PREFECT_API_URL.value():  # an ephemeral API has no stream worth starting a server for
            self._loop = asyncio.new_event_loop()
            self._task = self._loop.create_task(self._listen())
            self._thread.start()
        return self

    def _run(self) -> None:
        assert self._loop is not None and self._task is not None
        asyncio.set_event_loop(self._loop)
        with contextlib.suppress(BaseException):  # the stream only speeds things up; the reads decide
            self._loop.run_until_complete(self._task)
        self._loop.close()

    async def _listen(self) -> None:
        async with get_events_subscriber(filter=self._filter) as subscriber:
            async for _ in subscriber:
                self.event.set()

    def stop(self) -> None:
        if self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                self._loop.call_soon_threadsafe(self._task.cancel)
            self._thread.join(timeout=1)  # closing the websocket must not hold up the restore


def wait_for_answer(form: type[T], *, timeout_s: int, key: str, poll_interval_s: float = 2.0) -> T:
    """Pause the current flow run until it is resumed with ``form`` filled in; return the answer.

    Raises FlowPauseTimeout (the run then fails) when nobody answers within ``timeout_s``.
    """
    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        raise RuntimeError("wait_for_answer runs inside a flow run")
    run_id = ctx.flow_run.id
    logger = get_run_logger()
    run_input = run_input_subclass_from_type(form)
    proposed = Paused(timeout_seconds=timeout_s, reschedule=False, pause_key=key)
    keyset = keyset_from_paused_state(proposed)
    proposed.state_details.run_input_keyset = keyset

    wakeup = _Wakeup(run_id).start()  # subscribed before the pause, so no resume can slip past it
    try:
        with get_client(sync_client=True) as client:
            try:
                state = propose_state_sync(client=client, state=proposed, flow_run_id=run_id)
            except Abort as exc:
                raise RuntimeError(f"Flow run cannot be paused: {exc}") from exc
            if state.is_running():  # this pause was answered before (a rerun of the flow)
                return run_input.load(keyset)
            if not state.is_paused():
                raise RuntimeError(f"Flow run cannot be paused. Received non-paused state from API: {state}")
            run_input.save(keyset)  # the form the UI shows; a resume is accepted once it is stored
            logger.info("Paused for approval; execution continues when this flow run is resumed.")
            deadline = time.monotonic() + timeout_s
            while True:
                wakeup.event.wait(max(0.0, min(poll_interval_s, deadline - time.monotonic())))
                woke = wakeup.event.is_set()
                wakeup.event.clear()
                for delay in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4) if woke else (0.0,):
                    # an event can arrive before the state it announces is visible to reads
                    time.sleep(delay)
                    run = client.read_flow_run(run_id)
                    if run.state and run.state.is_running():
                        logger.info("Resuming flow run execution!")
                        return run_input.load(keyset)
                if time.monotonic() >= deadline:
                    break
    finally:
        wakeup.stop()
    raise FlowPauseTimeout("Flow run was paused and never resumed.")
