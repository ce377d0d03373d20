"""One run per target at a time: a Prefect global concurrency limit keyed by the target's identity.

deploy, canary, rollback and teardown all take the `dynadeploy-target-<name>[-<id>]` slot (limit 1)
for their whole run, so a scheduled canary, a deploy and a rollback started from the UI queue behind
each other instead of fighting over one target. The limit is created on first use. Flows that call
another flow as a subflow (rollback and canary call deploy) pass ``locked=True`` down so the inner
flow does not wait on the slot its parent holds. A local target's limit name carries its state dir's
identity: the same deployment name in two homes is two targets, and one must never wait on the other.

Crash-honest leasing. The slot is a lease the holder renews (every 45 s of a 60 s lease, the
server's minimum), so a holder that dies frees it by itself within about 75 s. Faster and stronger
than that, every holder writes a record (PID + kernel start time, host, lease id) under
$DYNADEPLOY_HOME/locks/; a waiter that can prove the recorded holder is gone (same host, that PID is
no longer that process) releases the dead holder's lease at once, as the holder would have. Leases
live in the Prefect server's memory: after a server restart the count of used slots stays in its
database with no lease left to expire, which would lock the target for ever; the waiter (or the
holder itself, on release) sees the lease is gone and gives the count back. A slot that cannot be
proven free is reported, on timeout, with the command that frees it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency._asyncio import AcquireConcurrencySlotTimeoutError
from prefect.concurrency._events import emit_concurrency_acquisition_events, emit_concurrency_release_events
from prefect.concurrency._leases import maintain_concurrency_lease
from prefect.concurrency._sync import (
    _discard_cleanup_lease,
    acquire_concurrency_slots_with_lease,
    release_concurrency_slots_with_lease,
)
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound, PrefectHTTPStatusError

from flows._slot_report import waiting_reporter
from runtime.errors import TransientError
from runtime.host.home import home
from runtime.host.processes import same_process, start_time

LEASE_S = 60.0  # the Prefect server's minimum; renewed at 75 %
POLL_S = 5.0  # how often a waiter looks for a dead holder while it waits
HEARTBEAT_S = 15.0  # a live holder touches its record this often (the record's mtime = last sign of life)


def limit_name(spec) -> str:
    target = getattr(spec, "target", None)
    if getattr(target, "kind", None) == "local":
        from runtime.targets.local.paths import DeploymentPaths

        return f"dynadeploy-target-{spec.name}-{DeploymentPaths.for_deployment(spec.name, target.state_dir).identity[:8]}"
    return f"dynadeploy-target-{spec.name}"


def ensure_limit(name: str) -> None:
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass


def holder_file(spec, name: str) -> Path:
    return home(getattr(getattr(spec, "target", None), "state_dir", None)) / "locks" / f"{name}.json"


@contextmanager
def target_lock(spec, *, held: bool = False, timeout_s: float | None = 3600):
    if held:
        yield
        return
    name = limit_name(spec)
    ensure_limit(name)
    record = holder_file(spec, name)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with waiting_reporter(spec.name) as acquired:  # says who holds the slot while it waits
        while True:
            reclaim_if_holder_gone(name, record)
            wait = POLL_S if deadline is None else max(0.5, min(POLL_S, deadline - time.monotonic()))
            try:
                lease = acquire_concurrency_slots_with_lease(
                    [name], 1, timeout_seconds=wait, strict=True, lease_duration=LEASE_S
                )
                break
            except AcquireConcurrencySlotTimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TransientError(
                        f"target {spec.name} is still locked after {timeout_s:.0f}s: concurrency slot {name} is held"
                        f" ({describe_holder(record)})",
                        hint=f"wait for that run to finish; if no dynadeploy run is active on this target, free the slot"
                        f" with: prefect gcl update {name} --active-slots 0",
                    ) from None
        acquired()
    lease_id = lease.lease_id
    # The same acquired/released events Prefect's own concurrency() emits, related to this run, so
    # the UI's event feed (and anything automating on it) shows who held the target when.
    events = emit_concurrency_acquisition_events(lease.limits, 1)
    beating = threading.Event()
    try:
        _write_record(record, lease_id)
        threading.Thread(
            target=_heartbeat, args=(record, lease_id, beating), daemon=True, name="dynadeploy-slot-heartbeat"
        ).start()
        # A renewal failure (server restarted) must not kill a deploy half-way: the run goes on and
        # converges; on release below the lost lease's count is given back.
        with maintain_concurrency_lease(lease_id, LEASE_S, raise_on_lease_renewal_failure=False):
            yield
    finally:
        beating.set()
        _discard_cleanup_lease(lease_id)
        try:
            _release(name, lease_id)
        except Exception as e:
            # Server unreachable: keep the record, so the next run can prove this holder gone and
            # free the slot; the lease also expires by itself within LEASE_S.
            logging.getLogger(__name__).warning("could not release concurrency slot %s: %s", name, e)
        else:
            _remove_record(record, lease_id)
            emit_concurrency_release_events(lease.limits, 1, events)


def _heartbeat(record: Path, lease_id: UUID, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        with _record_lock(record):
            rec = _read(record)
            if not rec or rec.get("lease_id") != str(lease_id):
                return
            os.utime(record)


def reclaim_if_holder_gone(name: str, record: Path) -> bool:
    """Free the slot when its recorded holder is proven gone; True when something was freed."""
    with _record_lock(record):
        rec = _read(record)
        if not rec or rec.get("host") != socket.gethostname() or rec.get("uid") != os.getuid():
            return False  # no record, or a holder on another host/user: nothing here can prove it gone
        if same_process(rec["pid"], rec["start"]):
            return False
        # Dead for longer than a lease: its lease expired and the server gave the slot back by
        # itself, so any count left now belongs to someone else (another home's run on a shared
        # kube target) and must not be decremented. Dead more recently: its lease is live, or was
        # lost by a server restart, and giving it back is what the holder would have done.
        recent = time.time() - record.stat().st_mtime < LEASE_S + HEARTBEAT_S
        _release(name, UUID(rec["lease_id"]), give_back_lost=recent)
        record.unlink(missing_ok=True)
        return True


def describe_holder(record: Path) -> str:
    rec = _read(record)
    if not rec:
        return "no holder recorded on this host: a run elsewhere, or a slot left by a Prefect server restart"
    alive = rec.get("host") == socket.gethostname() and same_process(rec["pid"], rec["start"])
    return f"by pid {rec['pid']} on {rec['host']} since {rec['since']}" + ("" if alive else ", which is gone")


def _release(name: str, lease_id: UUID, *, give_back_lost: bool = True) -> None:
    """Give the slot of ``lease_id`` back, whether or not the server still knows the lease
    (``give_back_lost=False``: only while it does)."""
    with get_client(sync_client=True) as client:
        try:
            client.renew_concurrency_lease(lease_id, LEASE_S)
            known = True
        except PrefectHTTPStatusError as e:
            if e.response.status_code not in (404, 410):
                raise
            known = False
    if known:
        release_concurrency_slots_with_lease(lease_id)  # decrements and revokes, as the holder would
        return
    if not give_back_lost:
        return
    # The server lost the lease (restart: leases live in its memory) but kept the used-slot count in
    # its database, where nothing would ever decrement it. (Had the lease instead expired, the
    # server already gave its slot back; any count left is then a holder that wrote no record here,
    # which only a run outside dynadeploy, taking this home's slot by hand, would be. Runs of this
    # home always record themselves, and a live recorded holder is never reclaimed.)
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(name)
        if limit.active_slots > 0:
            client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(active_slots=limit.active_slots - 1)
            )


@contextmanager
def _record_lock(record: Path):
    # Serialises reclaim and record writes between runs of one home, so two waiters cannot both
    # give back one dead holder's slot.
    record.parent.mkdir(parents=True, exist_ok=True)
    with open(record.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read(record: Path) -> dict | None:
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError):
        return None


def _write_record(record: Path, lease_id: UUID) -> None:
    pid = os.getpid()
    rec = {
        "pid": pid,
        "start": start_time(pid),
        "host": socket.gethostname(),
        "uid": os.getuid(),
        "lease_id": str(lease_id),
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with _record_lock(record):
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps(rec))
        os.replace(tmp, record)


def _remove_record(record: Path, lease_id: UUID) -> None:
    with _record_lock(record):
        rec = _read(record)
        if rec and rec.get("lease_id") == str(lease_id):
            record.unlink(missing_ok=True)
