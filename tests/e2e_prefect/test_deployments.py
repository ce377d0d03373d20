"""prefect.yaml on a real Prefect server, run by a real process worker (the shared `stack` fixture).

The tests in this module follow one local target through its day: `prefect deployment run` of
deploy-local (revision 1), a scheduled-style canary that is promoted (revision 2), a slow canary that
its gate rolls back by itself (the example automation then pauses the canary deployment), and a
deploy and a rollback submitted at once that the per-target concurrency limit runs one after the
other. Revision numbers are read relative to the ledger, so each test also runs on its own.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import contextmanager

import pytest
import yaml

from flows._lock import limit_name
from runtime.gateways import loadgen
from runtime.spec import load_spec
from runtime.targets.local.backend import LocalBackend
from runtime.targets.local.canary import baseline_backend, candidate_backend
from tests.e2e_prefect.stack import POOL, ROOT, chat, related_to, ts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

NAME = "e2e-day"
# The widest regression bounds a spec allows: both sides share two loaded cores, and at 50% the gate
# compares the workers' own TTFT p90 from histogram buckets, a few ms each, where one late request
# moves p90 a bucket (seen: stable 2.6 ms, healthy candidate 16.0 ms, failing a +300% bound). The slow
# candidate (speedup 0.05) fails these by far: TTFT some 18x, ITL thousands of times the stable's.
CANARY = {
    "requests_per_step": 40,
    "min_samples": 12,
    "steps": [50, 100],
    "analysis_interval_s": 30,
    "max_ttft_regression": 10.0,
    "max_itl_regression": 10.0,
}


@pytest.fixture(scope="module")
def target(stack):
    """deploy-local run from the CLI, exactly as the README says, with this module's spec."""
    path = stack.write_spec(NAME, {"mocker": {"speedup_ratio": 10.0}}, canary=CANARY)
    t0 = time.monotonic()
    out = stack.cli(
        "deployment",
        "run",
        "deploy/deploy-local",
        "--param",
        f"spec={path}",
        "--watch",
        "--watch-timeout",
        "400",
        timeout_s=450,
    )
    return {"path": path, "spec": load_spec(path), "cli": out, "cli_s": time.monotonic() - t0}


def ledger(spec) -> list[tuple[int, str]]:
    return [(r.number, r.status) for r in LocalBackend(spec).revisions()]


def test_prefect_deploy_created_every_deployment_with_inactive_canary_schedules(stack):
    want = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    got = {d["name"]: d for d in stack.http.post("/deployments/filter", json={"limit": 200}).json()}
    # `deploy --all` registers the default target's four, not every example target's (issue 16)
    assert len(want) == 4 and set(got) == set(want) == {
        f"{k}-local" for k in ("deploy", "canary", "rollback", "teardown")
    }
    for name, d in got.items():
        kind = name.split("-")[0]
        assert d["entrypoint"] == want[name]["entrypoint"] == f"flows/{kind}.py:{kind}"
        assert d["work_pool_name"] == POOL and d["parameters"]["spec"] == want[name]["parameters"]["spec"]
        assert d["pull_steps"] == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
        ]
        assert "dynadeploy" in d["tags"] and not d["paused"]
        if kind == "canary":
            (sched,) = d["schedules"]
            assert sched["active"] is False
            assert sched["schedule"]["cron"] == "0 3 * * *" and sched["schedule"]["timezone"] == "UTC"
        else:
            assert d["schedules"] == []
    # every target but ECS (no traffic layer to split) gets a canary deployment
    assert sorted(n for n in got if n.startswith("canary-")) == [
        f"canary-{t}"
        for t in sorted(n[len("deploy-") :] for n in got if n.startswith("deploy-"))
        if t != "ecs"
    ]
    # the rollback's approval form is typed: the UI renders the parameters from this schema
    props = got["rollback-local"]["parameter_openapi_schema"]["properties"]
    assert {"spec", "revision", "reason", "auto_approve"} <= set(props)
    pool = stack.http.get(f"/work_pools/{POOL}").json()
    assert pool["type"] == "process" and pool["status"] == "READY"
    # inactive schedules: nothing was scheduled for any canary
    runs = stack.http.post(
        "/flow_runs/filter",
        json={
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
            "deployments": {"name": {"like_": "canary-"}},
        },
    ).json()
    assert runs == []


def test_another_example_target_is_registered_by_name_from_the_targets_file(stack):
    """The README's path for a target beyond local: its four deployments, by a name pattern, and no others."""
    before = {d["name"] for d in stack.http.post("/deployments/filter", json={"limit": 200}).json()}
    out = stack.deploy("*-kube", prefect_file="infra/prefect/targets.yaml")
    deps = stack.http.post("/deployments/filter", json={"limit": 200}).json()
    try:
        added = {d["name"] for d in deps} - before
        assert added == {"deploy-kube", "canary-kube", "rollback-kube", "teardown-kube"}, (
            added,
            out.stdout[-2000:],
        )
        for d in deps:
            if d["name"] in added:
                assert d["parameters"]["spec"] == "infra/targets/kube.yaml" and "target:kube" in d["tags"]
                assert d["pull_steps"] == [
                    {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
                ]
    finally:  # the rest of the tier sees the README's default: local's four
        for d in deps:
            if d["name"].endswith("-kube"):
                stack.http.delete(f"/deployments/{d['id']}")


def test_canary_candidate_is_a_typed_described_form_on_the_server(stack):
    """What the UI's Run form is built from: the deployment's parameter schema as the server holds it."""
    schema = stack.deployment("canary/canary-local")["parameter_openapi_schema"]
    assert all(p.get("description") for p in schema["properties"].values())
    ref = schema["properties"]["candidate"]
    cand = schema["definitions"]["Candidate"]["properties"]
    assert "Candidate" in str(ref) and set(cand) == {
        "image",
        "engine_args",
        "model_revision",
        "replicas",
        "spec",
        "changes",
    }
    assert cand["replicas"]["anyOf"][0]["type"] == "integer" and all(
        p.get("description") for p in cand.values()
    )
    rollback = stack.deployment("rollback/rollback-local")["parameter_openapi_schema"]["properties"]
    assert rollback["revision"]["description"].startswith("the revision to restore")


def test_deploy_local_from_the_cli_serves(stack, target):
    out = target["cli"]
    assert "Completed" in out.stdout, out.stdout[-2000:]
    spec = target["spec"]
    backend = LocalBackend(spec)
    first = backend.revisions()[0]
    assert (first.number, first.started_by) == (1, "dynadeploy") and first.smoke["passed"]
    assert first.spec["serving"]["mocker"]["speedup_ratio"] == 10.0
    assert backend.revisions()[-1].status == "serving"
    assert str(stack.home) in str(backend.paths.root)  # the temporary home, never ~/.dynadeploy
    assert chat(backend.endpoint(), spec.model.served())
    run = stack.http.post(
        "/flow_runs/filter",
        json={"deployments": {"name": {"any_": ["deploy-local"]}}, "sort": "START_TIME_ASC"},
    ).json()[0]
    assert run["state_type"] == "COMPLETED" and run["parameters"] == {"spec": str(target["path"])}


def test_healthy_canary_is_promoted(stack, target):
    spec = target["spec"]
    before = LocalBackend(spec).revisions()
    run_id = stack.run(
        "canary/canary-local",
        spec=str(target["path"]),
        candidate={"serving": {"mocker": {"speedup_ratio": 12.0}}},
        reason="e2e healthy candidate",
    )
    fr = stack.wait(run_id, timeout_s=400)
    assert fr["state_type"] == "COMPLETED", fr["state"]
    revs = {r.number: r for r in LocalBackend(spec).revisions()}
    new = before[-1].number + 1
    assert new == 2 or len(before) > 1
    assert revs[new].status == "serving" and revs[new].started_by == "canary"
    assert revs[new].spec["serving"]["mocker"]["speedup_ratio"] == 12.0 and revs[new].smoke["passed"]
    assert all(revs[r.number].status == "superseded" for r in before)
    events = stack.wait_events(
        ["dynadeploy.canary."],
        lambda evs: any(e["event"].endswith(".promoted") for e in evs),
        f"dynadeploy.target.{NAME}",
        f"prefect.flow-run.{run_id}",
    )
    names = [e["event"].rsplit(".", 1)[-1] for e in events]
    assert names[0] == "started" and names[-1] == "promoted" and names.count("step") == 2, names
    assert [e["payload"]["step"] for e in events if e["event"].endswith(".step")] == ["side-by-side", "50%"]
    assert events[-1]["payload"]["revision"] == new
    assert candidate_backend(spec).inventory() == []
    workers = sorted(n for n in LocalBackend(spec).supervisor.processes() if n != "frontend")
    assert workers == [f"worker-r{new}-0"]
    assert chat(LocalBackend(spec).endpoint(), spec.model.served())
    assert baseline_backend(spec).inventory() == []  # the side-by-side baseline graph went with it


def _latest_artifact(stack, key: str) -> dict:
    arts = stack.http.post(
        "/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1}
    ).json()
    assert arts, f"no artifact {key!r}"
    return arts[0]


def _rows(artifact: dict) -> list[dict]:
    data = artifact["data"]
    return json.loads(data) if isinstance(data, str) else data


def _decimals(v) -> int:
    text = repr(v)
    return len(text.split(".", 1)[1]) if isinstance(v, float) and "." in text and "e" not in text else 0


def test_deploy_and_canary_artifacts_are_readable(stack, target):
    """What the UI shows of a run: the verdict first, numbers rounded to what matters, model and revision in
    separate fields (the UI turns `id@revision` into a mailto link), no value cut short. Reads the artifacts
    the deploy and the healthy canary above wrote, as the server holds them."""
    canary_rows = _rows(_latest_artifact(stack, f"canary-{NAME}"))
    assert canary_rows and all(list(r)[:3] == ["verdict", "step", "share"] for r in canary_rows), canary_rows
    assert all(
        r["verdict"] in ("pass", "fail", "inconclusive") and r["share"].endswith("%") for r in canary_rows
    )
    for r in canary_rows:
        assert all(_decimals(v) <= 1 for v in r.values()), r  # latencies to 0.1 ms
        assert not any(str(v).endswith(("…", "...")) for v in r.values()), r
    summary = _latest_artifact(stack, f"canary-summary-{NAME}")["data"]
    assert summary.startswith(f"# Canary of {NAME}") and (
        "**promoted**" in summary or "**rolled back**" in summary
    )
    for key in (f"revisions-{NAME}", f"deploy-{NAME}"):
        rows = _rows(_latest_artifact(stack, key))
        assert rows and all(next(iter(r)) == "smoke" and r["smoke"] in ("pass", "FAIL", "-") for r in rows), (
            rows
        )
        assert all("@" not in str(r["model"]) for r in rows), rows
        assert not any(str(v).endswith(("…", "...")) for r in rows for v in r.values()), rows
    revisions = _rows(_latest_artifact(stack, f"revisions-{NAME}"))
    assert all(r["model_revision"] for r in revisions) and len({r["revision"] for r in revisions}) == len(
        revisions
    )


@pytest.fixture(scope="module")
def automation(stack):
    out = stack.cli("automation", "create", "--from-file", "infra/automations/canary-rolled-back.yaml")
    assert "Created automation" in out.stdout
    autos = stack.http.post("/automations/filter", json={}).json()
    (auto,) = [a for a in autos if a["name"] == "dynadeploy-pause-canary-after-rollback"]
    return auto


def test_slow_canary_rolls_back_by_itself_and_the_automation_pauses_it(stack, target, automation):
    spec = target["spec"]
    before = ledger(spec)
    endpoint = LocalBackend(spec).endpoint()
    canary_dep = stack.deployment("canary/canary-local")
    stop = threading.Event()
    reports = []

    def stable_client() -> None:
        while not stop.is_set():
            reports.append(
                asyncio.run(
                    loadgen.run_load(
                        endpoint,
                        spec.model.served(),
                        requests=8,
                        concurrency=2,
                        max_tokens=8,
                        prompt="stable traffic",
                        timeout_s=60,
                    )
                )
            )

    client = threading.Thread(target=stable_client)
    client.start()
    try:
        run_id = stack.run(
            "canary/canary-local",
            spec=str(target["path"]),
            candidate={"serving": {"mocker": {"speedup_ratio": 0.05}}},
            reason="e2e slow candidate",
        )
        fr = stack.wait(run_id, timeout_s=400)
    finally:
        stop.set()
        client.join(timeout=120)
    try:
        assert fr["state_type"] == "FAILED"
        assert "rolled back at side-by-side" in fr["state"]["message"], fr["state"]["message"]
        failed = [res.error for r in reports for res in r.results if not res.ok]
        assert sum(r.count for r in reports) > 0 and failed == [], failed[:5]
        assert ledger(spec) == before, "stable is unchanged: no new revision, the same one serving"
        assert candidate_backend(spec).inventory() == []
        assert not [n for n in LocalBackend(spec).supervisor.processes() if n.startswith("canary-")]
        (rolled,) = stack.wait_events(
            ["dynadeploy.canary.rolled-back"], bool, f"dynadeploy.target.{NAME}", f"prefect.flow-run.{run_id}"
        )
        assert rolled["payload"]["withdraw_s"] < CANARY["analysis_interval_s"]
        # Prefect relates the event to the deployment that ran it, so `source: inferred` resolves
        assert related_to(rolled, f"prefect.deployment.{canary_dep['id']}")

        deadline = time.monotonic() + 60
        while not (dep := stack.deployment("canary/canary-local"))["paused"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert dep["paused"], "the automation did not pause canary-local"
        assert [s["active"] for s in dep["schedules"]] == [False]
        executed = [
            e
            for e in stack.wait_events(
                ["prefect.automation.action.executed"], bool, f"prefect.automation.{automation['id']}"
            )
            if ts(e["occurred"]) >= ts(rolled["occurred"])
        ]
        assert executed and executed[0]["payload"]["action_type"] == "pause-deployment"
        assert executed[0]["payload"]["status_code"] == 200
        assert not stack.deployment("deploy/deploy-local")["paused"], "only the canary that failed is paused"
    finally:
        stack.http.post(f"/deployments/{canary_dep['id']}/resume_deployment")  # as `Resume` in the UI would


def _lock_windows(stack, run_ids: list[str], limit: str) -> dict[str, tuple[float, float]]:
    out = {}
    for rid in run_ids:
        mine = [
            e
            for e in stack.wait_events(
                ["prefect.concurrency-limit."],
                lambda evs: any(e["event"].endswith(".released") for e in evs),
                related_id=f"prefect.flow-run.{rid}",
            )
            if e["resource"]["prefect.resource.name"] == limit
        ]
        acquired = [ts(e["occurred"]) for e in mine if e["event"].endswith(".acquired")]
        released = [ts(e["occurred"]) for e in mine if e["event"].endswith(".released")]
        assert len(acquired) == 1 and len(released) == 1, [e["event"] for e in mine]
        out[rid] = (acquired[0], released[0])
    return out


@contextmanager
def holding_slot(stack, limit: str):
    """Hold a target's slot as a flow run holds it (flows/_lock.py: a lease on the global limit).

    Plain calls to the server's API: Prefect's own client here would start process-wide services
    (the events worker) bound to this server, which outlive it and swallow the events of later
    tests in this pytest process.
    """
    r = stack.http.post(
        "/v2/concurrency_limits/increment-with-lease",
        json={"names": [limit], "slots": 1, "mode": "concurrency", "lease_duration": 600},
    )
    assert r.status_code == 200, f"the test could not take {limit}: {r.status_code} {r.text}"
    lease_id = r.json()["lease_id"]
    try:
        yield
    finally:
        stack.http.post("/v2/concurrency_limits/decrement-with-lease", json={"lease_id": lease_id})


def _work_window(stack, run_id: str) -> tuple[float, float]:
    """First task start to last task end of a run and any subflows it ran."""
    ids = [run_id] + [f["id"] for f in stack.subflow_runs(run_id)]
    tasks = [t for t in stack.task_runs(ids) if t["start_time"] and t["end_time"]]
    assert tasks
    return min(ts(t["start_time"]) for t in tasks), max(ts(t["end_time"]) for t in tasks)


def test_concurrency_limit_runs_a_deploy_and_a_rollback_one_after_the_other(stack, target):
    spec = target["spec"]
    before = LocalBackend(spec).revisions()
    if len(before) < 2:  # run alone: make a second revision to roll back from
        stack.wait(
            stack.run(
                "deploy/deploy-local",
                spec=str(target["path"]),
                overrides={"serving": {"mocker": {"speedup_ratio": 12.0}}},
            ),
            timeout_s=300,
        )
        before = LocalBackend(spec).revisions()
    # The test holds the target's slot until both runs are Running, so they meet at the slot
    # whatever the worker's timing: without it, a deploy that finishes before the worker has started
    # the rollback's process (seconds on a busy box) would test nothing.
    with holding_slot(stack, limit_name(spec)):
        deploy_id = stack.run(
            "deploy/deploy-local",
            spec=str(target["path"]),
            overrides={"serving": {"mocker": {"speedup_ratio": 8.0}}},
            reason="e2e concurrent deploy",
        )
        rollback_id = stack.run(
            "rollback/rollback-local",
            spec=str(target["path"]),
            revision=1,
            auto_approve=True,
            reason="e2e concurrent rollback",
        )
        for rid in (deploy_id, rollback_id):
            stack.wait(rid, states={"RUNNING"}, timeout_s=300)
    runs = {rid: stack.wait(rid, timeout_s=400) for rid in (deploy_id, rollback_id)}
    assert all(fr["state_type"] == "COMPLETED" for fr in runs.values()), {
        r["name"]: r["state"] for r in runs.values()
    }

    # Both flow runs were Running at once (one waited inside for the slot) ...
    starts = {rid: ts(fr["start_time"]) for rid, fr in runs.items()}
    ends = {rid: ts(fr["end_time"]) for rid, fr in runs.items()}
    assert max(starts.values()) < min(ends.values()), "the two runs were meant to be submitted together"
    # ... but they held the target's slot, and did their work, one after the other.
    locks = sorted(_lock_windows(stack, [deploy_id, rollback_id], limit_name(spec)).values())
    assert locks[0][1] <= locks[1][0], f"slot windows overlap: {locks}"
    work = sorted(_work_window(stack, rid) for rid in (deploy_id, rollback_id))
    assert work[0][1] <= work[1][0], f"work windows overlap: {work}"

    revs = {r.number: r for r in LocalBackend(spec).revisions()}
    n = before[-1].number
    assert sorted(revs) == list(range(1, n + 3))
    assert {revs[n + 1].started_by, revs[n + 2].started_by} == {"dynadeploy", "rollback"}
    assert [revs[k].status for k in sorted(revs)][-1] == "serving"
    restored = next(r for r in (revs[n + 1], revs[n + 2]) if r.started_by == "rollback")
    assert restored.spec_hash == revs[1].spec_hash
    assert chat(LocalBackend(spec).endpoint(), spec.model.served())
