"""This machine's processes: which one is which, found by a marker in its environment, signalled safely.

A PID alone is not a process's identity (the kernel hands it out again); the PID with the kernel's
start time of the process is: start_time() reads it and same_process() checks a recorded pair.
Processes dynadeploy starts carry a marker (KEY=value) in their environment, so a scan of /proc finds
them even when their parent is gone. A process is signalled only through a pidfd opened *before* its
marker (or start time) is checked, so a PID recycled between the check and the signal cannot be hit:
the pidfd pins the process that was checked.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from runtime.domain.waiting import WaitTimeout, wait_until


def carries(pid: int, marker: bytes) -> bool:
    """True when ``marker`` (b"KEY=value") is one of ``pid``'s environment entries."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:  # gone, or another user's process (unreadable): not ours either way
        return False
    return marker in environ.split(b"\0")


def pids_carrying(marker: bytes) -> list[int]:
    """PIDs of live processes (never a zombie, never this one) whose environment carries ``marker``."""
    me = os.getpid()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        if carries(pid, marker) and alive(pid):
            pids.append(pid)
    return sorted(pids)


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot): with the PID, a process's identity."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: fields after it are split from the last ')'
    return int(stat.rsplit(")", 1)[1].split()[19])


def same_process(pid: int, started: int | None) -> bool:
    """True when ``pid`` is still the process that had start time ``started``."""
    return started is not None and alive(pid) and start_time(pid) == started


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # a zombie is as good as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def kill_carrying(marker: bytes, timeout_s: float = 10.0) -> list[int]:
    """SIGTERM, then SIGKILL after ``timeout_s``, every process whose environment carries ``marker``."""
    pinned: dict[int, int] = {}
    for pid in pids_carrying(marker):
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        if carries(pid, marker):  # checked after the pidfd pins the process: a recycled PID is never hit
            pinned[pid] = fd
        else:
            os.close(fd)
    try:
        for fd in pinned.values():
            _send(fd, signal.SIGTERM)
        with contextlib.suppress(WaitTimeout):  # bounded: what outlives SIGTERM gets SIGKILL below
            wait_until(
                lambda: not any(alive(p) for p in pinned),
                timeout_s=timeout_s,
                interval_s=0.1,
                what="the processes to exit",
            )
        for pid, fd in pinned.items():
            if alive(pid):
                _send(fd, signal.SIGKILL)
    finally:
        for fd in pinned.values():
            os.close(fd)
    return sorted(pinned)


def kill_if_same(pid: int, started: int | None, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``pid`` only while it is the process that had start time ``started``.

    Through a pidfd checked against the start time: the process that was verified, nothing else.
    """
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if same_process(pid, started):
            signal.pidfd_send_signal(fd, sig)
    finally:
        os.close(fd)


def has_ancestor_in(pid: int, pids: set[int]) -> bool:
    """True when one of ``pid``'s ancestors (parent, grandparent, ...) is in ``pids``."""
    for _ in range(64):  # bounded walk up the process tree
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if ppid in pids:
            return True
        if ppid <= 1:
            return False
        pid = ppid
    return False


def _send(pidfd: int, sig: int) -> None:
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except OSError:  # already gone
        pass
