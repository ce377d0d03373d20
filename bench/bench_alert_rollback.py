"""Alert to restored serving: how long the whole automatic recovery loop takes on the local target.

    uv run python -m bench.bench_alert_rollback        # ~3-5 min on a loaded 2-core machine

The loop, all real: revision 1 (fast mocker) serves under steady load with monitoring on (short test
windows: 20s/5s at 3x a 10% budget, TTFT target 470 ms); revision 2 slows the worker (mocker speedup
0.04) -> Prometheus fires DynadeployTTFTBudgetBurn -> Alertmanager -> the alert receiver's Prefect event
-> the automation of infra/automations/slo-alert-rollback.yaml (auto_rollback) starts the
rollback deployment, served by a Prefect runner (`flow.serve`) -> the rollback flow restores revision
1's spec as revision 3, re-verifies it with the smoke test -> served again.

Reported (seconds): revision 2's rollout start -> alert received by the receiver, alert -> rollback run
started, alert -> restored (revision 3 serving, smoke passed), alert -> first fast request observed by
the load. Figures only; tests/integration/local/test_monitoring.py asserts the outcome. Loopback only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Self

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
FAST_MONITORING = {
    "scrape_interval": "1s",
    "evaluation_interval": "1s",
    "availability_for": "5s",
    "slo": {
        "latency_objective": 0.9,
        "error_objective": 0.9,
        "window": "1h",
        "burn_alerts": [{"long": "20s", "short": "5s", "burn_rate": 3}],
    },
}
# Only the TTFT SLO is at stake; 470 ms (a bucket boundary) leaves room for a loaded 2-core machine, where
# the fast mocker's TTFT p90 reaches ~150 ms; speedup 0.04 takes it to ~1 s.
SLA = {"ttft_p90_ms": 470, "itl_p90_ms": 1200, "max_error_rate": 0.0}
SLOW = 0.04


def write_spec(directory: Path, name: str, speedup: float, **monitoring) -> Path:
    doc = {
        "apiVersion": "dynadeploy.io/v1",
        "name": name,
        "target": {"kind": "local", "state_dir": str(directory / "home")},
        "serving": {"topology": "agg", "mocker": {"speedup_ratio": speedup}},
        "smoke": {"requests": 10, "concurrency": 2, "sla": SLA},
        "monitoring": {**FAST_MONITORING, **monitoring},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


class Load:
    """Streams small chat requests one after the other; records (start, ttft_s) of each success."""

    def __init__(self, endpoint: str, model: str) -> None:
        self.endpoint, self.model = endpoint, model
        self.stop = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                t0 = time.time()
                try:
                    with client.stream(
                        "POST",
                        f"{self.endpoint}/v1/chat/completions",
                        json={
                            "model": self.model,
                            "messages": [{"role": "user", "content": "hello there"}],
                            "max_tokens": 4,
                            "stream": True,
                        },
                    ) as r:
                        first = None
                        for _ in r.iter_bytes():
                            first = first or time.time()
                    if r.status_code == 200 and first:
                        self.samples.append((t0, first - t0))
                except httpx.HTTPError:
                    time.sleep(0.2)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def _wait(what: str, check, timeout_s: float, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def start_runner(spec_path: Path, deployment: str, api_url: str, log: Path) -> subprocess.Popen:
    """A Prefect runner serving the rollback flow as `rollback/<deployment>` (polling every second)."""
    code = (
        "from flows.rollback import rollback; "
        f"rollback.serve(name={deployment!r}, parameters={{'spec': {str(spec_path)!r}}})"
    )
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def create_automations(api_url: str) -> list[str]:
    from prefect import get_client
    from prefect.events.schemas.automations import AutomationCore

    doc = yaml.safe_load((ROOT / "infra" / "automations" / "slo-alert-rollback.yaml").read_text())
    with get_client(sync_client=True) as client:
        return [str(client.create_automation(AutomationCore.model_validate(a))) for a in doc["automations"]]


def delete_automations(api_url: str, ids: list[str]) -> None:
    """Delete the automations create_automations made (best effort per id, so one failure leaves no other)."""
    from uuid import UUID

    from prefect import get_client

    with get_client(sync_client=True) as client:
        for automation_id in ids:
            try:
                client.delete_automation(UUID(automation_id))
            except Exception as exc:
                print(f"could not delete automation {automation_id}: {exc}", file=sys.stderr)


def alert_rollback_loop(directory: Path, api_url: str, name: str = "monloop") -> dict:
    """Run the loop once; return the timings and what happened (raises if it does not recover)."""
    from prefect import get_client

    from flows.deploy import deploy
    from runtime.render.local_monitoring import files
    from runtime.spec import load_spec
    from runtime.targets.local.backend import LocalBackend

    rollback_name = f"rollback-{name}"
    spec_path = write_spec(
        directory, name, 1.0, rollback_deployment=f"rollback/{rollback_name}", auto_rollback=True
    )
    backend = LocalBackend(load_spec(spec_path))
    runner = start_runner(spec_path, rollback_name, api_url, directory / "runner.log")
    automations: list[str] = []
    try:
        with get_client(sync_client=True) as client:
            _wait("the rollback deployment", lambda: _exists(client, f"rollback/{rollback_name}"), 180, 1)
        automations += create_automations(api_url)
        first = deploy(spec=str(spec_path))
        with Load(first["endpoint"], first["model"]) as load:
            time.sleep(5)
            write_spec(
                directory, name, SLOW, rollback_deployment=f"rollback/{rollback_name}", auto_rollback=True
            )
            try:
                deploy(spec=str(spec_path))
                slow_smoke = "passed"
            except Exception as exc:
                slow_smoke = f"failed: {str(exc)[:120]}"
            rev2 = backend.ledger.get(2)
            t_slow = _created(
                rev2
            )  # revision 2's rollout began (its smoke traffic may already fire the alert)
            log = files(backend.paths.root).alerts_log

            def alert():
                if not log.exists():
                    return None
                for line in log.read_text().splitlines():
                    ev = json.loads(line)
                    if ev["event"] == "dynadeploy.alert.DynadeployTTFTBudgetBurn":
                        return ev
                return None

            ev = _wait("the TTFT burn alert at the receiver", alert, 180)
            t_alert = ev["received_at"]

            def restored():
                revs = {r.number: r for r in backend.revisions()}
                r3 = revs.get(3)
                return r3 if r3 and r3.status == "serving" and r3.smoke.get("passed") else None

            r3 = _wait("revision 3 serving after the rollback", restored, 400, 1)
            t_restored = time.time()
            since = _created(r3)
            fast = _wait(
                "a fast request after the restore",
                lambda: next(
                    (
                        t + ttft
                        for t, ttft in list(load.samples)
                        if t >= since and ttft < SLA["ttft_p90_ms"] / 1000
                    ),
                    None,
                ),
                120,
            )

        def rollback_runs():
            with get_client(sync_client=True) as client:
                runs = [
                    r
                    for r in client.read_flow_runs()
                    if r.parameters.get("reason", "").startswith("SLO burn-rate alert")
                ]
            return runs if runs and all(r.state and r.state.is_final() for r in runs) else None

        rollback_runs = _wait("the rollback run to finish", rollback_runs, 120, 1)
        started = min((r.start_time.timestamp() for r in rollback_runs if r.start_time), default=None)
        return {
            "slow_revision_smoke": slow_smoke,
            "revision_2_serving": rev2.status if rev2 else None,
            "event_sent": ev["sent"],
            "event_related": [r["prefect.resource.id"] for r in ev["related"]],
            "rollback_runs": [
                (r.name, r.state_name, r.parameters.get("auto_approve")) for r in rollback_runs
            ],
            "restored_revision": r3.number,
            "restored_speedup": r3.spec["serving"]["mocker"]["speedup_ratio"],
            "automations": automations,
            "slow_to_alert_s": round(t_alert - t_slow, 1),
            "alert_to_rollback_started_s": round(started - t_alert, 1) if started else None,
            "alert_to_restored_s": round(t_restored - t_alert, 1),
            "alert_to_first_fast_request_s": round(fast - t_alert, 1),
        }
    finally:
        # The automations match every dynadeploy.target.* alert: left on a shared server, any later alert
        # event (another test's, another deployment's) would start a rollback.
        delete_automations(api_url, automations)
        runner.terminate()
        try:
            runner.wait(timeout=20)
        except subprocess.TimeoutExpired:
            runner.kill()
        backend.teardown()


def _created(revision) -> float:
    from datetime import datetime

    return datetime.fromisoformat(revision.created_at).timestamp()


def _exists(client, name: str) -> bool:
    try:
        client.read_deployment_by_name(name)
        return True
    except Exception:
        return False


def main() -> None:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "240")
    with (
        tempfile.TemporaryDirectory(prefix="bench-alert-") as tmp,
        prefect_test_harness(server_startup_timeout=240),
    ):
        result = alert_rollback_loop(Path(tmp), PREFECT_API_URL.value())
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "alert_rollback.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
