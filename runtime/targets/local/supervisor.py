"""One deployment's supervisord: start it, reconcile its programs, read their state.

supervisord is started as a daemon with a scrubbed environment (PATH, HOME, locale, temp dir), so
credentials in the caller's environment never reach the serving processes; each program gets the
environment its Program declares. Programs are files under programs/ so adding or retiring one is a
file write plus supervisord's own reread/update (reloadConfig + add/removeProcessGroup). Launching
the daemon and the XML-RPC transport are the gateway's (runtime/gateways/supervisor.py); which
programs, which environment and what to wait for are decided here.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

from runtime.domain.waiting import WaitTimeout, wait_until
from runtime.errors import TransientError
from runtime.gateways import supervisor as supervisord
from runtime.host import processes
from runtime.host.home import writable
from runtime.render.local_plan import Program
from runtime.targets.local import inventory
from runtime.targets.local.paths import IDENTITY_ENV, DeploymentPaths

_KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
RUNNING_STATES = {"RUNNING", "STARTING", "BACKOFF"}


@dataclass(frozen=True)
class ProcessState:
    name: str
    state: str
    pid: int
    exitstatus: int
    uptime_s: float
    start: float = 0.0  # supervisord's spawn time: a new value means the program was restarted


def render_supervisord_conf(paths: DeploymentPaths) -> str:
    return f"""; written by dynadeploy; one [program:*] per file in programs/
[unix_http_server]
file={paths.socket}
chmod=0700

[supervisord]
pidfile={paths.pidfile}
logfile={paths.logs / "supervisord.log"}
logfile_maxbytes=5MB
logfile_backups=2
childlogdir={paths.logs}
directory={paths.root}
identifier=dynadeploy-{paths.name}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{paths.socket}

[include]
files = {paths.programs}/*.conf
"""


def render_program_conf(program: Program, paths: DeploymentPaths) -> str:
    command = " ".join(shlex.quote(a) for a in program.command).replace("%", "%%")
    env = ",".join(f"{k}={_quote_env(v)}" for k, v in sorted(program.env.items()))
    return f"""[program:{program.name}]
command={command}
environment={env}
directory={paths.root}
autostart=true
autorestart=true
startsecs=1
startretries=20
stopsignal=TERM
stopwaitsecs={program.stop_wait_s}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={paths.logs / (program.name + ".log")}
stdout_logfile_maxbytes=10MB
stdout_logfile_backups=1
"""


def _quote_env(value: str) -> str:
    # supervisord parses environment= with shlex (posix): single quotes keep JSON intact.
    return "'" + value.replace("%", "%%").replace("'", "'\"'\"'") + "'"


class Supervisor:
    def __init__(self, paths: DeploymentPaths) -> None:
        self.paths = paths

    # -- lifecycle -------------------------------------------------------------------------
    def proxy(self) -> supervisord.Client:
        return supervisord.Client(self.paths.socket)

    def is_running(self) -> bool:
        return self.proxy().running()

    def pid(self) -> int | None:
        """supervisord's PID, only when that PID is still this deployment's supervisord.

        A stale pid file (supervisord SIGKILLed, host rebooted) may name a PID the kernel has since
        given to anyone's process; it counts only if that process carries this deployment's identity
        in its environment (ensure_started puts it there).
        """
        try:
            pid = int(self.paths.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if inventory.carries_identity(pid, self.paths) and _is_supervisord(pid) else None

    def ensure_started(self, timeout_s: float = 20.0) -> bool:
        """Start supervisord unless it already runs; True when this call started it."""
        if self.is_running():
            return False
        self.paths.make()
        with writable(self.paths.supervisord_conf):
            self.paths.supervisord_conf.write_text(render_supervisord_conf(self.paths))
        env = {k: os.environ[k] for k in _KEEP_ENV if k in os.environ}
        env[IDENTITY_ENV] = self.paths.identity  # inherited by every program: the inventory's marker
        supervisord.start_daemon(
            self.paths.supervisord_conf, env, timeout_s=timeout_s, log=self.paths.logs / "supervisord.log"
        )
        try:
            return wait_until(self.is_running, timeout_s=timeout_s, interval_s=0.05, what="supervisord")
        except WaitTimeout:
            raise TransientError(
                f"supervisord did not answer on {self.paths.socket} within {timeout_s:.0f}s"
            ) from None

    def shutdown(self, timeout_s: float = 30.0) -> None:
        pid = self.pid()  # verified: carries this deployment's identity, never a recycled PID
        started = processes.start_time(pid) if pid else None
        if self.is_running():
            self.proxy().shutdown()
        if pid:  # bounded: a supervisord that ignores the shutdown is killed below
            with contextlib.suppress(WaitTimeout):
                wait_until(
                    lambda: not processes.same_process(pid, started),
                    timeout_s=timeout_s,
                    interval_s=0.1,
                    what="supervisord to exit",
                )
        if pid and processes.same_process(pid, started):
            processes.kill_if_same(pid, started)  # the process we verified, nothing else

    # -- programs --------------------------------------------------------------------------
    def processes(self) -> dict[str, ProcessState]:
        if not self.is_running():
            return {}
        now = time.time()
        out = {}
        for info in self.proxy().process_info():
            up = now - info["start"] if info["statename"] == "RUNNING" and info["start"] else 0.0
            out[info["name"]] = ProcessState(
                info["name"],
                info["statename"],
                info["pid"],
                info["exitstatus"],
                up,
                float(info["start"] or 0),
            )
        return out

    def configured(self) -> dict[str, str]:
        """Program name -> its config text, as currently written."""
        return {p.stem: p.read_text() for p in sorted(self.paths.programs.glob("*.conf"))}

    def apply(
        self, programs: list[Program], *, retire: AbstractSet[str] = frozenset()
    ) -> dict[str, list[str]]:
        """Make supervisord run ``programs`` (plus what is already configured) and drop ``retire``.

        Unchanged programs are left alone; a program whose config changed is restarted.
        Returns {"added": [...], "changed": [...], "removed": [...]}.
        """
        for program in programs:
            conf = self.paths.programs / f"{program.name}.conf"
            text = render_program_conf(program, self.paths)
            if not conf.exists() or conf.read_text() != text:
                tmp = conf.with_suffix(".tmp")
                with writable(tmp):
                    tmp.write_text(text)
                os.replace(tmp, conf)
        for name in retire:
            (self.paths.programs / f"{name}.conf").unlink(missing_ok=True)
        rpc = self.proxy()
        added, changed, removed = rpc.reload()
        for name in removed + changed:
            rpc.stop_and_remove(name)
        for name in changed + added:
            rpc.add_group(name)
        return {"added": sorted(added), "changed": sorted(changed), "removed": sorted(removed)}

    def restart(self, name: str) -> None:
        self.proxy().restart(name)

    def signal(self, name: str, sig: str) -> None:
        """Send ``sig`` ("HUP", ...) to one of this deployment's programs through its supervisord."""
        self.proxy().signal(name, sig)

    def tail(self, name: str, nbytes: int = 2000) -> str:
        log = self.paths.logs / f"{name}.log"
        try:
            with open(log, "rb") as fh:
                fh.seek(max(0, log.stat().st_size - nbytes))
                return fh.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


def _is_supervisord(pid: int) -> bool:
    try:
        return b"supervisor.supervisord" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def supervisor_for(paths: DeploymentPaths) -> Supervisor:
    return Supervisor(paths)


def program_names_on_disk(programs_dir: Path) -> set[str]:
    return {p.stem for p in programs_dir.glob("*.conf")}
