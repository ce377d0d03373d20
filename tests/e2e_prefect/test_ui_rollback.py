"""A rollback started and approved in the Prefect UI, in Debian's headless Chromium driven by Playwright.

The browser is /usr/bin/chromium (nothing downloads a browser), with a fresh profile and the flags
that keep it off the network. It opens the UI the server serves, finds the rollback-local
deployment, starts a custom run with revision=1 and the test's spec, waits for the run to pause on
its typed approval form, fills the form (approve toggle + note) and submits it there, and the
previous revision's spec then serves again as a new revision of the ledger; then the run page and
the run's artifact are screenshotted and checked (a PNG of the page, the expected text visible). A
failing step leaves screenshots in the test's temporary directory (the failure message names it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runtime.spec import load_spec
from runtime.targets.local.backend import LocalBackend
from tests.e2e_prefect.stack import MARK, chat

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason="Debian's chromium is not installed at /usr/bin/chromium (`make debs`)",
    ),
]


@pytest.fixture
def page(stack, tmp_path, request):
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1400, "height": 1000},
            env=os.environ | {MARK: stack.token},
        )
        ctx.set_default_timeout(30_000)
        pg = ctx.new_page()
        console: list[str] = []
        pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"[:300]))
        # the API writes the UI made (method, url, status; None until answered), so a form that did
        # not go through says whether it sent anything and what the server answered
        calls: list[list] = []
        pg.on(
            "request",
            lambda r: (
                calls.append([r.method, r.url, None]) if "/api/" in r.url and r.method != "GET" else None
            ),
        )

        def answered(resp) -> None:
            for call in reversed(calls):
                if call[1] == resp.url and call[0] == resp.request.method and call[2] is None:
                    call[2] = resp.status
                    break

        pg.on("response", answered)
        pg.on("requestfailed", lambda r: console.append(f"failed: {r.method} {r.url} {r.failure}"[:300]))
        pg.dynadeploy_calls = calls  # read by submit() for its retries and its failure message
        yield pg
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            shots.mkdir(exist_ok=True)
            for i, p in enumerate(ctx.pages):
                p.screenshot(path=str(shots / f"page-{i}.png"), full_page=True)
            (shots / "console.txt").write_text(
                "\n".join(console + [f"{m} {u} -> {st}" for m, u, st in calls])
            )
            print(f"screenshots of the failed UI test: {shots}")
        ctx.close()


def test_rollback_started_and_approved_in_the_ui_restores_revision_1(stack, page, tmp_path):
    from playwright.sync_api import expect

    name = "e2e-ui"
    v1 = stack.write_spec(name, {"mocker": {"speedup_ratio": 10.0}})
    v2 = stack.write_spec(name, {"mocker": {"speedup_ratio": 6.0}})
    for path in (v1, v2):
        fr = stack.wait(stack.run("deploy/deploy-local", spec=str(path)), timeout_s=300)
        assert fr["state_type"] == "COMPLETED", fr["state"]
    spec = load_spec(v2)
    backend = LocalBackend(spec)
    assert [(r.number, r.status) for r in backend.revisions()] == [(1, "superseded"), (2, "serving")]

    # the UI is served by the server and talks to this server's API on loopback
    assert stack.http.get(f"{stack.ui}/ui-settings").json()["api_url"] == stack.api

    page.goto(f"{stack.ui}/deployments")
    page.get_by_placeholder("Search deployments").fill("rollback-local")
    page.get_by_role("link", name="rollback-local", exact=True).click()
    dep = stack.deployment("rollback/rollback-local")
    page.wait_for_url(f"**/deployments/deployment/{dep['id']}*")
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Custom run").click()
    page.wait_for_url("**/run?**")
    page.locator(".schema-form-property", has_text="spec").locator("textarea").fill(str(v2))
    revision = page.locator(".schema-form-property", has_text="revision (Optional)")
    revision.get_by_role("button", name="int", exact=True).click()
    revision.locator("input[type=number]").fill("1")
    page.locator(".schema-form-property", has_text="reason (Optional)").locator("textarea").fill(
        "e2e from the UI"
    )
    run_name = page.locator(".p-label", has_text="Run Name").locator("input").input_value()
    assert run_name
    submit(
        stack,
        page,
        page.get_by_role("button", name="Submit"),
        "/create_flow_run",
        done=lambda: bool(stack.runs_named(run_name)),
    )
    runs = stack.runs_named(run_name)
    assert len(runs) == 1, f"one run from the form: {runs}"
    run = runs[0]
    page.wait_for_url(f"**/deployments/deployment/{dep['id']}?tab=Runs", timeout=60_000)

    assert run["parameters"]["revision"] == 1 and run["parameters"]["spec"] == str(v2)
    assert run["parameters"]["auto_approve"] is False
    form = stack.wait_for_form(run["id"], timeout_s=240)["form_schema"]
    assert (
        form["properties"]["approve"]["type"] == "boolean" and form["properties"]["note"]["type"] == "string"
    )

    page.get_by_role("link", name=run_name).first.click()
    page.wait_for_url(f"**/runs/flow-run/{run['id']}")
    badge = page.locator(".page-heading-flow-run__meta .state-badge")
    expect(badge).to_have_text("Paused", timeout=60_000)
    page.get_by_role("button", name="Resume").click()
    modal = page.locator(".p-modal")
    expect(modal.get_by_text(f"Roll {name} back to revision 1?")).to_be_visible()
    approve = modal.get_by_role("switch")
    approve.click()
    expect(approve).to_have_attribute("aria-checked", "true")
    modal.locator(".schema-form-property", has_text="Note").locator("textarea").fill(
        "approved in the Prefect UI"
    )
    t_approved = time.monotonic()
    submit(
        stack,
        page,
        modal.get_by_role("button", name="Submit"),
        f"/flow_runs/{run['id']}/resume",
        done=lambda: stack.flow_run(run["id"])["state_type"] != "PAUSED",
    )
    expect(modal).to_be_hidden()

    done = stack.wait(run["id"], timeout_s=300)
    restore_s = time.monotonic() - t_approved
    assert done["state_type"] == "COMPLETED", done["state"]
    expect(badge).to_have_text("Completed", timeout=60_000)

    revs = {r.number: r for r in backend.revisions()}
    assert sorted(revs) == [1, 2, 3], "the restore is recorded as a new revision"
    assert [revs[n].status for n in (1, 2, 3)] == ["superseded", "superseded", "serving"]
    assert (
        revs[3].spec_hash == revs[1].spec_hash and revs[3].spec["serving"]["mocker"]["speedup_ratio"] == 10.0
    )
    assert revs[3].started_by == "rollback" and revs[3].smoke["passed"]
    assert "rollback to revision 1: e2e from the UI (approved in the Prefect UI)" in revs[3].reason
    assert sorted(n for n in backend.supervisor.processes() if n != "frontend") == ["worker-r3-0"]
    assert chat(backend.endpoint(), spec.model.served())
    logs = " ".join(entry["message"] for entry in stack.run_logs(run["id"]))
    assert "stage approval: done" in logs and "approved: approved in the Prefect UI" in logs
    print(f"approval in the UI -> run Completed: {restore_s:.1f}s")

    # what a person looks at afterwards, captured in the browser and checked: the run page (its state and
    # name) and the run's artifact (the outcome in words)
    shots = tmp_path / "ui"
    shots.mkdir()
    page.goto(f"{stack.ui}/runs/flow-run/{run['id']}")
    expect(badge).to_have_text("Completed", timeout=60_000)
    expect(page.get_by_text(run_name).first).to_be_visible()
    snapshot(page, shots / "run.png")
    (art,) = stack.http.post(
        "/artifacts/filter",
        json={"artifacts": {"key": {"any_": [f"rollback-{name}"]}, "flow_run_id": {"any_": [run["id"]]}}},
    ).json()
    page.goto(f"{stack.ui}/artifacts/artifact/{art['id']}")  # the key's page is only a timeline of versions
    expect(page.get_by_text("rolled back to the spec of revision 1").first).to_be_visible(timeout=60_000)
    expect(page.get_by_text("now serving as revision 3").first).to_be_visible()
    snapshot(page, shots / "artifact.png")
    print(f"UI screenshots: {shots}")


def snapshot(page, path: Path) -> None:
    """A full-page screenshot that is a real picture: a PNG, of the page's size, not a blank page (which
    compresses to a few kB at 1400 px wide)."""
    page.screenshot(path=str(path), full_page=True)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 1000 and height >= 600 and len(data) > 20_000, (path, width, height, len(data))


def submit(stack, page, button, call: str, done, timeout_s: float = 150, attempts: int = 3) -> None:
    """Click a form's Submit until the server has taken what it sent (``done()``), as a person would.

    Prefect's SQLite server answers a write with 503 when the database stays locked by concurrent
    writers (the worker's heartbeats, the event persister, the flow's logs); the UI then shows an
    error toast and keeps the form, and a person submits again. So does this, up to ``attempts``
    clicks, only after the previous write was answered with a 5xx, or was never sent within 45 s
    (the click landed while the form was busy): a write that is pending or succeeded is never
    repeated, so a retry cannot make a second run or resume. A form that never goes through fails
    with what the page showed and every write the UI made.
    """
    calls = page.dynadeploy_calls
    deadline = time.monotonic() + timeout_s
    clicks = 0
    while clicks < attempts and time.monotonic() < deadline:
        mark, clicked_at = len(calls), time.monotonic()
        button.click()
        clicks += 1
        while time.monotonic() < deadline and not done():
            sent = [c for c in calls[mark:] if call in c[1]]
            if (sent and sent[-1][2] is not None and sent[-1][2] >= 500) or (
                not sent and time.monotonic() - clicked_at > 45
            ):
                break  # refused by the server or never sent: submit again
            page.wait_for_timeout(300)
        else:
            if done():
                return
    shown = page.locator(".p-toast, .p-message, .schema-form-property--invalid").all_inner_texts()
    writes = "\n".join(f"{m} {u} -> {st}" for m, u, st in calls[-40:])
    raise AssertionError(
        f"{call} not taken after {clicks} Submit click(s); the page showed {shown!r} at {page.url};"
        f"\nthe UI's writes:\n{writes}\nserver log:\n{stack.log_tail('server')}"
    )
