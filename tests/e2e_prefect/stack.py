"""A real Prefect server, work pool, `prefect deploy` and process worker, all on 127.0.0.1.

Shared by the end-to-end tests (tests/e2e_prefect/) and bench/bench_prefect.py. Everything runs the
way the README tells a person to: `prefect server start`, `prefect work-pool create`, `prefect
--no-prompt deploy` from the project root (prefect.yaml), `prefect worker start --pool
dynadeploy-process` from the project root. Flows run in the worker's subprocesses with
DYNADEPLOY_HOME pointing at a temporary directory; every spec a test writes names that directory as
its state_dir, so nothing touches ~/.dynadeploy.

Every process started here (and everything those start: uvicorn, flow-run subprocesses,
supervisord and the Dynamo processes of the flows) carries ``DYNADEPLOY_E2E_RUN=<token>`` in its
environment; :meth:`PrefectStack.stop` tears the deployments down, stops the worker and the
server, and then scans /proc for that marker, so a leak is found, killed and reported.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
POOL = "dynadeploy-process"
MARK = "DYNADEPLOY_E2E_RUN"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def marked_pids(token: str) -> list[int]:
    """Processes whose environment carries this run's marker (what a stack started, transitively)."""
    marker = f"{MARK}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_group(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group (the child was started in its own session), SIGKILL after a grace."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers in the group (uvicorn, flow subprocesses)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def ts(value: str) -> float:
    """An API timestamp as epoch seconds."""
    return datetime.fromisoformat(value).timestamp()


def chat(
    endpoint: str, model: str, prompt: str = "hello", max_tokens: int = 4, timeout_s: float = 30.0
) -> str:
    """One non-streamed chat completion; returns the text (raises on anything but a 200 with choices)."""
    r = httpx.post(
        f"{endpoint}/v1/chat/completions",
        timeout=timeout_s,
        json={
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "stream": False,
        },
    )
    r.raise_for_status()
    return r.json()["choices"][0]["message"]["content"] or ""


class RetryingClient(httpx.Client):
    """Retries what Prefect's own client retries: a busy server (SQLite locked) answers 503, 502 or 429."""

    def request(self, *args, **kwargs) -> httpx.Response:
        for attempt in range(6):
            r = super().request(*args, **kwargs)
            if r.status_code not in (429, 502, 503) or attempt == 5:
                return r
            time.sleep(0.5 * 2**attempt)
        return r


@dataclass
class PrefectStack:
    """One Prefect server (SQLite in ``work``, or the database in ``db_url``) with a process worker."""

    work: Path
    db_url: str | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    specs: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.home = self.work / "dynadeploy-home"  # DYNADEPLOY_HOME of the worker, and every spec's state_dir
        self.logs = self.work / "logs"
        for d in (self.home, self.logs, self.work / "prefect-home", self.work / "specs"):
            d.mkdir(parents=True, exist_ok=True)
        self.api = f"http://{HOST}:{self.port}/api"
        self.ui = f"http://{HOST}:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "DYNADEPLOY_HOME"}
        env |= {
            "PREFECT_HOME": str(self.work / "prefect-home"),
            "PREFECT_API_URL": self.api,
            "PREFECT_UI_API_URL": self.api,  # what the UI in the browser calls: loopback, this server
            "PREFECT_UI_ENABLED": "true",
            "PREFECT_SERVER_UI_V2_ENABLED": "false",  # the classic UI is the default at /
            "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "2",  # pick up a new run in ~2 s instead of ~10 s
            "PREFECT_CLI_COLORS": "false",
            "COLUMNS": "200",
            "DYNADEPLOY_HOME": str(self.home),
            "PWD": str(ROOT),  # prefect.yaml's pull step resolves {{ $PWD }} at deploy time
            MARK: self.token,
        }
        if self.db_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.db_url
        self.env = env
        self.http = RetryingClient(base_url=self.api, timeout=30)

    # -- processes ------------------------------------------------------------------------------
    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:  # the child keeps its own copy of the fd
            proc = subprocess.Popen(
                [sys.executable, "-m", "prefect", *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, chars: int = 3000) -> str:
        try:
            return (self.logs / f"{name}.log").read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def cli(self, *args: str, timeout_s: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """A `prefect` CLI command from the project root, against this server."""
        proc = subprocess.run(
            [sys.executable, "-m", "prefect", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"prefect {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    def start_server(self, timeout_s: float = 240) -> None:
        t0 = time.monotonic()
        proc = self._spawn("server", "server", "start", "--host", HOST, "--port", str(self.port))
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited with {proc.returncode}:\n{self.log_tail('server')}"
                )
            try:
                if self.http.get("/health", timeout=2).json() is True:
                    self.timings["server_start_s"] = time.monotonic() - t0
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"prefect server not healthy after {timeout_s:.0f}s:\n{self.log_tail('server')}")

    def create_pool(self) -> None:
        t0 = time.monotonic()
        self.cli("work-pool", "create", POOL, "--type", "process", timeout_s=180)
        self.timings["pool_create_s"] = time.monotonic() - t0

    def deploy(self, *names: str, prefect_file: str | None = None) -> subprocess.CompletedProcess:
        """`prefect --no-prompt deploy --all` (or --name for each of ``names``) from the project root,
        reading prefect.yaml or ``prefect_file`` (e.g. infra/prefect/targets.yaml)."""
        t0 = time.monotonic()
        which = [a for n in names for a in ("--name", n)] if names else ["--all"]
        which += ["--prefect-file", prefect_file] if prefect_file else []
        out = self.cli("--no-prompt", "deploy", *which, timeout_s=420)
        self.timings["deploy_s"] = time.monotonic() - t0
        return out

    def start_worker(self, name: str = "e2e-worker") -> None:
        self._spawn("worker", "worker", "start", "--pool", POOL, "--name", name)

    def wait_worker(self, timeout_s: float = 180) -> None:
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            if self.procs["worker"].poll() is not None:
                raise RuntimeError(f"prefect worker exited:\n{self.log_tail('worker')}")
            workers = self.http.post(f"/work_pools/{POOL}/workers/filter", json={}).json()
            if any(w.get("status") == "ONLINE" for w in workers):
                self.timings["worker_online_s"] = time.monotonic() - t0
                return
            time.sleep(0.5)
        raise RuntimeError(f"worker not online after {timeout_s:.0f}s:\n{self.log_tail('worker')}")

    def up(self, *deploy_names: str) -> PrefectStack:
        """Server, pool, then `prefect deploy` and the worker side by side."""
        t0 = time.monotonic()
        self.start_server()
        self.create_pool()
        self.start_worker()
        self.deployed = self.deploy(*deploy_names)
        self.wait_worker()
        self.timings["up_s"] = time.monotonic() - t0
        return self

    def stop(self) -> list[str]:
        """Tear down every spec's deployment, stop worker and server; returns what had to be killed."""
        from runtime.spec import load_spec
        from runtime.targets.local.backend import LocalBackend

        for path in dict.fromkeys(self.specs):
            try:
                LocalBackend(load_spec(path)).teardown()
            except Exception as exc:
                print(f"teardown of {path.name} failed: {exc}", file=sys.stderr)
        for name in ("worker", "server"):
            if name in self.procs:
                stop_group(self.procs[name])
        self.http.close()
        leaked = []
        deadline = time.monotonic() + 10
        while (pids := [p for p in marked_pids(self.token) if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:200]
                leaked.append(f"{pid}: {cmdline.decode(errors='replace')}")
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return leaked

    # -- specs ----------------------------------------------------------------------------------
    def write_spec(self, name: str, serving: dict | None = None, **sections) -> Path:
        """A local-target spec whose state_dir is this stack's DYNADEPLOY_HOME."""
        doc = {
            "apiVersion": "dynadeploy.io/v1",
            "name": name,
            "target": {"kind": "local", "state_dir": str(self.home)},
            "model": {"id": "dynadeploy/tiny-mock"},
            "serving": {"topology": "agg", **(serving or {})},
            "smoke": {"requests": 10, "concurrency": 4, "max_tokens": 16},
            **sections,
        }
        path = self.work / "specs" / f"{name}-{len(self.specs)}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.specs.append(path)
        return path

    # -- API ------------------------------------------------------------------------------------
    def deployment(self, full_name: str) -> dict:
        flow, name = full_name.split("/")
        r = self.http.get(f"/deployments/name/{flow}/{name}")
        r.raise_for_status()
        return r.json()

    def run(self, full_name: str, **parameters) -> str:
        """Create a flow run of a deployment (what `prefect deployment run` and the UI do); returns its id."""
        dep = self.deployment(full_name)
        r = self.http.post(f"/deployments/{dep['id']}/create_flow_run", json={"parameters": parameters})
        r.raise_for_status()
        return r.json()["id"]

    def flow_run(self, run_id: str) -> dict:
        r = self.http.get(f"/flow_runs/{run_id}")
        r.raise_for_status()
        return r.json()

    def wait(
        self, run_id: str, states: set[str] = FINAL, timeout_s: float = 300, poll_s: float = 0.5
    ) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            fr = self.flow_run(run_id)
            if fr["state_type"] in states:
                return fr
            if fr["state_type"] in FINAL:
                raise AssertionError(
                    f"run {fr['name']} ended {fr['state_type']} while waiting for {states}: "
                    f"{(fr.get('state') or {}).get('message')}"
                )
            time.sleep(poll_s)
        raise AssertionError(
            f"run {run_id} not in {states} after {timeout_s:.0f}s "
            f"(state {self.flow_run(run_id)['state_type']}); worker log:\n{self.log_tail('worker')}"
        )

    def wait_for_form(self, run_id: str, timeout_s: float = 300) -> dict:
        """Wait until the run is Paused and its typed input form (the JSON schema) is stored: the flow
        saves the schema just after entering Paused, and a resume before that is rejected."""
        fr = self.wait(run_id, {"PAUSED"}, timeout_s=timeout_s)
        key = fr["state"]["state_details"]["run_input_keyset"]["schema"]
        deadline = time.monotonic() + 30
        while self.http.get(f"/flow_runs/{run_id}/input/{key}").status_code != 200:
            assert time.monotonic() < deadline, f"run {run_id} paused but its input form never appeared"
            time.sleep(0.2)
        fr["form_schema"] = self.http.get(f"/flow_runs/{run_id}/input/{key}").json()
        return fr

    def resume(self, run_id: str, run_input: dict) -> None:
        r = self.http.post(f"/flow_runs/{run_id}/resume", json={"run_input": run_input})
        r.raise_for_status()
        assert r.json().get("status") == "ACCEPT", r.text

    def runs_named(self, name: str) -> list[dict]:
        return self.http.post("/flow_runs/filter", json={"flow_runs": {"name": {"any_": [name]}}}).json()

    def subflow_runs(self, run_id: str) -> list[dict]:
        return self.http.post(
            "/flow_runs/filter", json={"flow_runs": {"parent_flow_run_id": {"any_": [run_id]}}}
        ).json()

    def task_runs(self, run_ids: list[str]) -> list[dict]:
        return self.http.post(
            "/task_runs/filter", json={"flow_runs": {"id": {"any_": run_ids}}, "limit": 200}
        ).json()

    def events(
        self,
        prefixes: list[str],
        resource_id: str | None = None,
        related_id: str | None = None,
        pages: int = 20,
    ) -> list[dict]:
        """Events oldest first, following the API's pages (50 events each)."""
        flt: dict = {"event": {"prefix": prefixes}, "order": "ASC"}
        if resource_id:
            flt["resource"] = {"id": [resource_id]}
        if related_id:
            flt["related"] = {"id": [related_id]}
        r = self.http.post("/events/filter", json={"filter": flt, "limit": 50})
        out: list[dict] = []
        for _ in range(pages):
            r.raise_for_status()
            page = r.json()
            out += page["events"]
            if not page.get("next_page"):
                break
            r = self.http.get(page["next_page"])
        return out

    def wait_events(
        self,
        prefixes: list[str],
        until,
        resource_id: str | None = None,
        related_id: str | None = None,
        timeout_s: float = 30,
    ) -> list[dict]:
        """Events arrive asynchronously (client websocket -> server -> database): poll until ``until(events)``."""
        deadline = time.monotonic() + timeout_s
        while True:
            events = self.events(prefixes, resource_id, related_id)
            if until(events) or time.monotonic() > deadline:
                return events
            time.sleep(0.5)

    def run_logs(self, run_id: str) -> list[dict]:
        r = self.http.post(
            "/logs/filter",
            json={"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200},
        )
        r.raise_for_status()
        return r.json()


def related_to(event: dict, resource_id: str) -> bool:
    return any(r["prefect.resource.id"] == resource_id for r in event.get("related", []))


# -- a throwaway PostgreSQL cluster (Debian's postgresql) --------------------------------------------


def postgres_bin() -> Path | None:
    for version in ("15", *sorted((p.name for p in Path("/usr/lib/postgresql").glob("*")), reverse=True)):
        b = Path("/usr/lib/postgresql") / version / "bin"
        if (b / "initdb").exists() and (b / "pg_ctl").exists():
            return b
    return None


def postgres_user() -> str | None:
    """Who runs the cluster: ourselves, or the `postgres` user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError("running as root and there is no `postgres` user to run the cluster as") from None
    return "postgres"


@dataclass
class PostgresCluster:
    """initdb + pg_ctl in a temporary directory, on a free loopback port; trust auth on loopback only."""

    bin: Path
    user: str | None
    token: str
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        # Under /tmp itself: pytest's temp dirs are 0700 root, which the postgres user cannot enter.
        self.dir = Path(
            subprocess.check_output(["mktemp", "-d", "/tmp/dynadeploy-pg-XXXXXXXX"], text=True).strip()
        )
        self.data = self.dir / "data"
        if self.user:
            shutil.chown(self.dir, self.user)
        self.url = f"postgresql+asyncpg://prefect@{HOST}:{self.port}/prefect"
        self.timings: dict[str, float] = {}

    def _run(self, *args: str, timeout_s: float = 120) -> str:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {
            MARK: self.token,
            "LC_ALL": "C",
        }
        proc = subprocess.run(
            cmd,
            cwd=self.dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            )
        return proc.stdout

    def start(self) -> PostgresCluster:
        t0 = time.monotonic()
        self._run("initdb", "-D", str(self.data), "-U", "prefect", "--auth=trust", "-E", "UTF8", "--no-sync")
        opts = (
            f"-c listen_addresses={HOST} -p {self.port} -c unix_socket_directories={self.dir} "
            f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "postgres.log"),
            "-o",
            opts,
            "-w",
            "-t",
            "90",
            "start",
        )
        self._run("createdb", "-h", HOST, "-p", str(self.port), "-U", "prefect", "prefect")
        self.timings["postgres_start_s"] = time.monotonic() - t0
        return self

    def psql(self, sql: str) -> str:
        return self._run(
            "psql", "-h", HOST, "-p", str(self.port), "-U", "prefect", "-d", "prefect", "-tAc", sql
        )

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> list[int]:
        """pg_ctl stop -m fast, then remove the cluster; returns (and kills) any of its processes left."""
        if self.postmaster_pid() is not None:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
            except RuntimeError as exc:
                print(f"pg_ctl stop failed: {exc}", file=sys.stderr)
        deadline = time.monotonic() + 10
        while (left := [p for p in marked_pids(self.token) if _alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.3)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
        return left


def dump(obj) -> str:
    return json.dumps(obj, indent=1, default=str)[:4000]
